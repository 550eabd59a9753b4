//! Plugging in your own executor: a `Spawner` built on `futures`'
//! single-threaded `LocalPool`, and a `Timer` that sleeps on a helper thread.
//! The engine calls `block_on` once inside each forked worker host, so the
//! pool is created after fork, in the process that uses it.
//!
//! Mailboxes work on it too: a `Spawner` that does not override
//! `register` gets supertrees' own small reactor (a thread that polls the
//! sockets its tasks wait on), as the `Echo` server and its caller, in two
//! processes, show.
//!
//! Run it with `cargo run --example custom_executor`.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use futures::executor::{LocalPool, LocalSpawner};
use futures::task::SpawnExt;
use supertrees::{
    BackoffPolicy, BoxFuture, RestartPolicy, Restartable, Spawner, Supertree, Timer, Worker,
};

thread_local! {
    static CURRENT: RefCell<Option<LocalSpawner>> = const { RefCell::new(None) };
}

/// Runs every worker host on a `futures::executor::LocalPool`.
#[derive(Clone, Debug, Default)]
struct PoolSpawner;

impl Spawner for PoolSpawner {
    fn block_on(&self, fut: BoxFuture) {
        let mut pool = LocalPool::new();
        CURRENT.with(|c| *c.borrow_mut() = Some(pool.spawner()));
        pool.run_until(fut);
        CURRENT.with(|c| *c.borrow_mut() = None);
    }

    fn spawn(&self, fut: BoxFuture) {
        CURRENT.with(|c| match c.borrow().as_ref() {
            Some(spawner) => {
                if let Err(err) = spawner.spawn(fut) {
                    eprintln!("pool is shut down: {err}");
                }
            }
            None => eprintln!("spawn outside block_on: task dropped"),
        });
    }

    fn is_inside_runtime(&self) -> bool {
        CURRENT.with(|c| c.borrow().is_some())
    }
}

/// Real time; sleeps complete from a helper thread.
#[derive(Clone, Debug, Default)]
struct ThreadTimer;

impl Timer for ThreadTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            let _ = tx.send(());
        });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

struct Job {
    timer: ThreadTimer,
    num: u32,
}

impl Worker for Job {
    fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let (timer, num) = (self.timer.clone(), self.num);
        Box::pin(async move {
            timer.sleep(Duration::from_millis(2)).await;
            println!(
                "job {num} ran on the LocalPool in pid {}",
                std::process::id()
            );
        })
    }
}

impl Restartable for Job {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Once
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::immediate()
    }
}

/// Answers one call on the mailbox "echo", then ends.
struct Echo;

impl Worker for Echo {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            let mut inbox = supertrees::inbox::<String>("echo").expect("echo is ours");
            if let Some(envelope) = inbox.recv().await {
                let reply = format!("pong-{}", envelope.message());
                envelope.reply(reply);
            }
        })
    }
}

impl Restartable for Echo {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::OnFailure
    }
}

/// Calls "echo" from another supervisor's process.
struct Asker;

impl Worker for Asker {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            let echo = supertrees::mailbox::<String>("echo").expect("echo is declared");
            match echo
                .call::<String>("ping".into(), Duration::from_secs(5))
                .await
            {
                Ok(reply) => println!("asked across processes: {reply}"),
                Err(err) => println!("the call failed: {err}"),
            }
        })
    }
}

impl Restartable for Asker {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Never
    }
}

fn main() {
    let timer = ThreadTimer;
    let tree = Supertree::new()
        .with_mailbox("echo")
        .add_worker(Echo)
        .add_worker(Job {
            timer: timer.clone(),
            num: 1,
        })
        .add_supervisor(|s| {
            s.add_worker(Job {
                timer: timer.clone(),
                num: 2,
            })
            .add_worker(Asker)
        });
    if let Err(err) = tree.start_with(PoolSpawner, timer) {
        eprintln!("tree failed: {err}");
        std::process::exit(1);
    }
    println!("done");
}
