//! A key-value server in one supervisor process, a client in another: the
//! client reaches the server by name (`supertrees::mailbox`) with casts
//! (`send`) and calls (`call`, with a timeout), across processes.
//!
//! ```sh
//! cargo run --example kv
//! ```
//!
//! The server's state lives in its run; the mailbox belongs to its
//! supervisor, so the client's handle and the messages waiting in it
//! survive the server's restarts. Here the server is asked to crash once:
//! the call that it held fails at once (`Error::NoReply`), the server is
//! restarted, and the messages sent meanwhile reach its next run.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use supertrees::{BackoffPolicy, BoxFuture, Error, RestartPolicy, Restartable, Supertree, Worker};

/// The server's protocol: what any worker of the tree may send to "kv".
#[derive(Debug, Serialize, Deserialize)]
enum Kv {
    Put(String, u64),
    Get(String),
    /// Fail (a bug, in a real server): the server panics.
    Crash,
    /// The work is done: the server returns, and is not restarted.
    Stop,
}

struct KvServer;

impl Worker for KvServer {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            let mut inbox =
                supertrees::inbox::<Kv>("kv").expect("kv is declared by our supervisor");
            let mut map: HashMap<String, u64> = HashMap::new();
            println!("server: serving kv in process {}", std::process::id());
            while let Some(envelope) = inbox.recv().await {
                match envelope.message() {
                    Kv::Put(key, value) => {
                        map.insert(key.clone(), *value);
                    }
                    Kv::Get(key) => {
                        let value = map.get(key).copied();
                        envelope.reply(value);
                    }
                    Kv::Crash => panic!("asked to crash"),
                    Kv::Stop => return,
                }
            }
        })
    }
}

impl Restartable for KvServer {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure
    }
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::immediate()
    }
}

struct Client;

impl Worker for Client {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            let kv = supertrees::mailbox::<Kv>("kv").expect("kv is declared in the tree");
            let timeout = Duration::from_secs(1);
            println!("client: running in process {}", std::process::id());
            kv.send(Kv::Put("apples".into(), 3)).await.expect("queued");
            let apples: Option<u64> = kv
                .call(Kv::Get("apples".into()), timeout)
                .await
                .expect("answered");
            println!("client: apples = {apples:?}");

            // The server crashes holding this call: it fails at once.
            match kv.call::<Option<u64>>(Kv::Crash, timeout).await {
                Err(Error::NoReply { .. }) => println!("client: the server crashed with our call"),
                other => println!("client: unexpected {other:?}"),
            }
            // Sent while it restarts: they wait in the mailbox for its next run.
            kv.send(Kv::Put("pears".into(), 5)).await.expect("queued");
            let pears: Option<u64> = kv
                .call(Kv::Get("pears".into()), timeout)
                .await
                .expect("answered");
            let apples: Option<u64> = kv
                .call(Kv::Get("apples".into()), timeout)
                .await
                .expect("answered");
            println!("client: after the restart pears = {pears:?}, apples = {apples:?} (its state went with it)");
            kv.send(Kv::Stop).await.expect("queued");
        })
    }
}

impl Restartable for Client {
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
    Supertree::new()
        .add_supervisor(|s| s.with_mailbox("kv").add_worker(KvServer))
        .add_supervisor(|s| s.add_worker(Client))
        .start()?;
    println!("done");
    Ok(())
}
