//! A long-running tree that shows everything it can tell about itself: a
//! flaky worker that panics every second, a "server" that takes a moment to
//! become ready, and a nested supervisor.
//!
//! * Every lifecycle event of every process reaches this (root) process and
//!   is printed in one place (`on_event`).
//! * Once every worker is ready, `on_ready` prints the tree, and under
//!   systemd (`NOTIFY_SOCKET`) the root sends `READY=1`; see
//!   `examples/systemd/supertrees-observe.service`.
//! * The live status is served on a Unix socket: in another terminal, run
//!   `cargo run --example status` (or pass the socket path), or the
//!   `supertrees` command (`cargo run -p supertrees-cli -- --socket PATH
//!   status`, `top`, `stop root/flaky`, ...). Its nodes have names:
//!   `root/server`, `root/flaky`, `root/steady/...`.
//! * The engine's own `tracing` events go to stderr, coloured only when
//!   stderr is a terminal (`RUST_LOG=debug` for more).
//!
//! Run it with `cargo run --example observe`. Stop it with Ctrl-C or SIGTERM;
//! kill any of its processes with `kill -9` and watch it heal.

use std::io::IsTerminal;
use std::time::Duration;

use supertrees::{BackoffPolicy, Intensity, Readiness, Restartable, Supertree, Worker};
use tracing_subscriber::EnvFilter;

struct Steady;

impl Worker for Steady {
    fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        Box::pin(async {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    }
}

impl Restartable for Steady {}

/// Takes 500 ms to "bind its listener", then declares itself ready.
struct Server;

impl Worker for Server {
    fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            supertrees::ready();
            std::future::pending::<()>().await;
        })
    }

    fn readiness(&self) -> Readiness {
        Readiness::Notify
    }
}

impl Restartable for Server {}

struct Flaky;

impl Worker for Flaky {
    fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("flaky worker gave out");
        })
    }
}

impl Restartable for Flaky {
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
            Duration::from_secs(10),
            2.0,
        )
    }
}

/// Where the status socket goes: `$XDG_RUNTIME_DIR` (a per-user directory)
/// when there is one, else the temporary directory; in a directory of its
/// own that only this user may enter.
pub fn socket_path() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let user = nix::unistd::getuid();
    base.join(format!("supertrees-observe-{user}"))
        .join("status.sock")
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let socket = socket_path();
    println!("status socket: {}", socket.display());
    let tree = Supertree::new()
        .with_intensity(Intensity::new(20, Duration::from_secs(10)))
        // Named: root/server, root/flaky, root/steady/0, root/steady/1/0.
        .add_named_worker("server", Server)
        .add_named_worker("flaky", Flaky)
        .add_supervisor(|s| {
            s.with_name("steady")
                .add_worker(Steady)
                .add_supervisor(|s| s.add_worker(Steady))
        })
        .on_event(|event| println!("event: {event}"))
        .on_ready(|status| println!("the whole tree is up:\n{status}"))
        .status_socket(socket);
    match tree.start() {
        Ok(()) => println!("tree stopped cleanly"),
        Err(err) => {
            eprintln!("tree failed: {err}");
            std::process::exit(1);
        }
    }
}
