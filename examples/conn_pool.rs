//! One child per connection, started at run time: an acceptor hands each
//! accepted TCP connection to a child of the template `conn`
//! (`supertrees::start_child`), which echoes lines until the client
//! closes, then ends and is removed. At most 4 connections are served at
//! once (`with_max_children`); a fifth client is told `busy`, and the
//! connection closed cleanly (see `turn_away`).
//!
//! ```sh
//! cargo run --example conn_pool             # listens on 127.0.0.1:7879
//! ECHO_ADDR=127.0.0.1:0 cargo run --example conn_pool
//! nc 127.0.0.1 7879                         # type lines, they come back
//! ```
//!
//! The acceptor and the connections are workers of one supervisor, so they
//! run in one worker host: the acceptor leaves each accepted socket in a
//! table of that process, and the child's argument names its slot.
//! Connection children are never restarted (a connection that failed is
//! gone); the acceptor is, and so is the whole supervisor by its parent.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use supertrees::{BoxFuture, Error, Readiness, RestartPolicy, Restartable, Supertree, Worker};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Accepted sockets waiting for their child, by slot: in the worker host
/// process, which runs the acceptor and the children alike.
static ACCEPTED: Mutex<Option<HashMap<u64, std::net::TcpStream>>> = Mutex::new(None);
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

/// The argument of a `conn` child.
#[derive(Debug, Serialize, Deserialize)]
struct ConnArgs {
    slot: u64,
}

struct Acceptor {
    addr: SocketAddr,
}

impl Worker for Acceptor {
    fn readiness(&self) -> Readiness {
        Readiness::Notify
    }

    fn init(&self) -> BoxFuture {
        let addr = self.addr;
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .unwrap_or_else(|err| panic!("binding {addr}: {err}"));
            println!("listening on {}", listener.local_addr().unwrap_or(addr));
            supertrees::ready();
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let Ok(std_stream) = stream.into_std() else {
                    continue;
                };
                let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut table) = ACCEPTED.lock() {
                    table
                        .get_or_insert_with(HashMap::new)
                        .insert(slot, std_stream);
                }
                match supertrees::start_child("conn", ConnArgs { slot }).await {
                    Ok(id) => println!("connection from {peer}: child {id}"),
                    Err(err) => {
                        println!("connection from {peer} refused: {err}");
                        let refused = ACCEPTED
                            .lock()
                            .ok()
                            .and_then(|mut table| table.as_mut()?.remove(&slot));
                        if let Some(stream) = refused {
                            supertrees::spawn(turn_away(stream));
                        }
                    }
                }
            }
        })
    }
}

impl Restartable for Acceptor {}

/// Tells a client there is no room for it, and closes the connection
/// cleanly: `busy`, then the end of our side (a FIN after it), then what
/// the client sent is read and dropped until it closes too, for a second
/// at most. Closing a socket with data unread makes the kernel reset the
/// connection (RST) instead, and a reset can destroy the `busy` on its way
/// or before the client read it.
async fn turn_away(stream: std::net::TcpStream) {
    let Ok(mut stream) = tokio::net::TcpStream::from_std(stream) else {
        return;
    };
    if stream.write_all(b"busy\n").await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut unread = [0; 1024];
    let drained = async { while let Ok(1..) = stream.read(&mut unread).await {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
}

/// One connection: echoes lines until the client closes.
struct Conn {
    slot: u64,
}

impl Worker for Conn {
    fn init(&self) -> BoxFuture {
        let slot = self.slot;
        Box::pin(async move {
            let taken = ACCEPTED
                .lock()
                .ok()
                .and_then(|mut table| table.as_mut()?.remove(&slot));
            // Gone with a previous worker host: nothing to serve.
            let Some(stream) = taken else { return };
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                return;
            };
            let (reader, mut writer) = stream.into_split();
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if writer
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            println!("connection in slot {slot} closed");
        })
    }
}

impl Restartable for Conn {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Never
    }
}

fn main() -> Result<(), Error> {
    // Colours only for a terminal, not in a file.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let addr = std::env::var("ECHO_ADDR")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7879)));
    Supertree::new()
        .on_event(|event| println!("event {event}"))
        .add_supervisor(|s| {
            s.add_worker(Acceptor { addr })
                .add_dynamic("conn", |arg: ConnArgs| Conn { slot: arg.slot })
                .with_max_children(4)
        })
        .start()?;
    println!("stopped");
    Ok(())
}
