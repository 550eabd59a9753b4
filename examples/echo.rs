//! The whole worker lifecycle on Tokio: a TCP echo server that declares
//! itself ready once its socket is bound, serves each connection in a
//! subtask it owns (`supertrees::spawn`), and on a stop request
//! (`supertrees::stopping()`: Ctrl-C, SIGTERM, a sibling's restart) stops
//! accepting and drains its open connections within its `shutdown()` time.
//!
//! ```sh
//! cargo run --example echo                 # listens on 127.0.0.1:7878
//! ECHO_ADDR=127.0.0.1:0 cargo run --example echo
//! nc 127.0.0.1 7878                        # type lines, they come back
//! ```
//!
//! Every event is printed; a bind that fails is a panic, whose message the
//! `Exited` event shows, and the worker is restarted after its backoff.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use supertrees::{BackoffPolicy, BoxFuture, Readiness, Restartable, Shutdown, Supertree, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Echo {
    addr: SocketAddr,
}

impl Worker for Echo {
    fn readiness(&self) -> Readiness {
        Readiness::Notify
    }

    fn init(&self) -> BoxFuture {
        let addr = self.addr;
        Box::pin(async move {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => listener,
                Err(err) => panic!("binding {addr}: {err}"),
            };
            let local = listener.local_addr().unwrap_or(addr);
            println!("listening on {local}");
            supertrees::ready();
            let open = Arc::new(AtomicUsize::new(0));
            let stop = supertrees::stopping();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        open.fetch_add(1, Ordering::SeqCst);
                        let open = open.clone();
                        // Owned by this run: dropped if it ends, and a panic
                        // in it fails the worker.
                        supertrees::spawn(async move {
                            echo(stream).await;
                            open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    () = &mut stop => break,
                }
            }
            drop(listener);
            println!("draining {} connection(s)", open.load(Ordering::SeqCst));
            // Returning drops what is still open; the engine drops the run
            // anyway once `shutdown()` has passed.
            while open.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            println!("drained");
        })
    }
}

impl Restartable for Echo {
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(
            Duration::from_millis(100),
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
    let addr = std::env::var("ECHO_ADDR")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878)));
    Supertree::new()
        .add_supervisor(|s| s.add_worker(Echo { addr }))
        .on_event(|event| println!("event {event}"))
        .start()?;
    println!("stopped");
    Ok(())
}
