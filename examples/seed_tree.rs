//! The example of supertrees 0.1, unchanged but for `main`'s exit and the
//! `tracing` subscriber it installs:
//! a root with one worker, a supervisor with one worker, and a nested
//! supervisor with one more. Each `Once` worker runs twice, then the tree has
//! no work left and `start()` returns in the calling process only, so "done"
//! is printed exactly once.
//!
//! Run it with `cargo run --example seed_tree`; set `RUST_LOG=info` to see
//! the lifecycle events on stderr (by default only warnings go there, and
//! stdout is the same whatever `RUST_LOG` says).

use std::io::IsTerminal;

use supertrees::{RestartPolicy, Restartable, Supertree, Worker};
use tracing_subscriber::EnvFilter;

#[derive(Debug)]
struct W {
    num: i32,
}

impl Worker for W {
    fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let num = self.num;
        Box::pin(async move {
            println!("worker {num}");
        })
    }
}

impl Restartable for W {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Once
    }
}

fn main() {
    // Installed before `start()`, so every forked process inherits it.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let root = Supertree::new()
        .add_worker(W { num: 1 })
        .add_supervisor(|s| {
            s.add_worker(W { num: 2 })
                .add_supervisor(|s| s.add_worker(W { num: 3 }))
        });
    if let Err(err) = root.start() {
        eprintln!("tree failed: {err}");
        std::process::exit(1);
    }
    println!("done");
}
