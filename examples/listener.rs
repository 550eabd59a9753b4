//! A TCP echo server whose listening socket belongs to the tree, not to the
//! worker: the root binds it before anything is forked (`with_listener`),
//! and the worker takes a fresh duplicate on every start
//! (`supertrees::tcp_listener`). A connection that arrives while the worker
//! restarts, even after a SIGKILL of its host, waits in the socket's
//! backlog and is served by the next run: no client is refused.
//!
//! ```sh
//! cargo run --example listener             # listens on 127.0.0.1:7880
//! ECHO_ADDR=127.0.0.1:0 cargo run --example listener
//! nc 127.0.0.1 7880                         # type lines, they come back
//! ```
//!
//! To see a restart that refuses no one: connect with `nc`, then kill the
//! worker host (the pid in the `host <pid>` line) with
//! `kill -9 <pid>`. The open connection ends with its host; connect again
//! at once (`nc 127.0.0.1 7880`): the connection is accepted by the kernel,
//! waits in the backlog through the restart's backoff, and the new run
//! echoes it. The same with `examples/echo.rs`, which binds its own socket,
//! gets "Connection refused" until the worker is back.
//!
//! Under systemd socket activation (`LISTEN_FDS` set) the socket is the one
//! systemd passes, named `echo`: see `examples/systemd/supertrees-echo.socket`,
//! or try it without systemd:
//!
//! ```sh
//! cargo build --example listener
//! systemd-socket-activate --fdname=echo -l 127.0.0.1:7880 target/debug/examples/listener
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use supertrees::{BackoffPolicy, BoxFuture, Listen, Restartable, Shutdown, Supertree, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Echo;

impl Worker for Echo {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            println!("host {}", std::process::id());
            let listener = supertrees::tcp_listener("echo")
                .and_then(tokio::net::TcpListener::from_std)
                // A panic: the event shows it, and the worker is restarted.
                .unwrap_or_else(|err| panic!("the tree's listener: {err}"));
            match listener.local_addr() {
                Ok(addr) => println!("listening on {addr}"),
                Err(err) => println!("listening on an unknown address: {err}"),
            }
            let stop = supertrees::stopping();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        // Owned by this run: dropped when it ends.
                        supertrees::spawn(echo(stream));
                    }
                    () = &mut stop => break,
                }
            }
            // What is not accepted yet stays in the backlog, for the next
            // run (or, when the whole tree stops, is reset: the tree shuts
            // its listeners down as soon as it begins to stop, so new
            // clients are refused instead of waiting).
            println!("stopped accepting");
        })
    }
}

impl Restartable for Echo {
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(
            Duration::from_millis(50),
            Duration::from_secs(5),
            Duration::from_secs(30),
            2.0,
        )
    }

    fn shutdown(&self) -> Shutdown {
        Shutdown::Timeout(Duration::from_secs(2))
    }
}

/// Echoes what the peer sends until it closes the connection.
async fn echo(mut stream: tokio::net::TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() -> Result<(), supertrees::Error> {
    let listen = if std::env::var_os("LISTEN_FDS").is_some() {
        Listen::systemd("echo")
    } else {
        let addr = std::env::var("ECHO_ADDR")
            .ok()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7880)));
        Listen::tcp(addr)
    };
    Supertree::new()
        .with_listener("echo", listen)
        .add_worker(Echo)
        .on_event(|event| println!("event {event}"))
        .start()?;
    println!("stopped");
    Ok(())
}
