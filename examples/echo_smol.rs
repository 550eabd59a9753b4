//! `examples/echo.rs` on smol (async-executor + async-io): a TCP echo
//! server that declares itself ready once bound, serves each connection in
//! a subtask it owns (`supertrees::spawn`, which needs no handle from the
//! executor), and drains on `supertrees::stopping()`.
//!
//! ```sh
//! cargo run --example echo_smol --features smol     # 127.0.0.1:7878
//! ```

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::{Async, Timer};
use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt};
use supertrees::smol::{SmolSpawner, SmolTimer};
use supertrees::{BackoffPolicy, BoxFuture, Readiness, Restartable, Shutdown, Supertree, Worker};

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
            let listener = match Async::<TcpListener>::bind(addr) {
                Ok(listener) => listener,
                Err(err) => panic!("binding {addr}: {err}"),
            };
            let local = listener.get_ref().local_addr().unwrap_or(addr);
            println!("listening on {local}");
            supertrees::ready();
            let open = Arc::new(AtomicUsize::new(0));
            let mut stop = Box::pin(supertrees::stopping());
            loop {
                let accept = Box::pin(listener.accept());
                match select(accept, stop).await {
                    Either::Left((accepted, pending_stop)) => {
                        stop = pending_stop;
                        let Ok((stream, _)) = accepted else { continue };
                        open.fetch_add(1, Ordering::SeqCst);
                        let open = open.clone();
                        supertrees::spawn(async move {
                            echo(stream).await;
                            open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Either::Right(((), _)) => break,
                }
            }
            drop(listener);
            println!("draining {} connection(s)", open.load(Ordering::SeqCst));
            while open.load(Ordering::SeqCst) > 0 {
                Timer::after(Duration::from_millis(10)).await;
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
async fn echo(mut stream: Async<TcpStream>) {
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
        .start_with(SmolSpawner::new(), SmolTimer::new())?;
    println!("stopped");
    Ok(())
}
