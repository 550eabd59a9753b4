//! The same tree on smol: workers use `async-io` timers, and the tree runs on
//! `SmolSpawner`/`SmolTimer` through `start_with`. (Built with
//! `--no-default-features --features smol`, plain `start()` picks smol.)
//!
//! Run it with `cargo run --example smol_tree --features smol`.

use std::time::Duration;

use supertrees::smol::{SmolSpawner, SmolTimer};
use supertrees::{BackoffPolicy, RestartPolicy, Restartable, Supertree, Worker};

struct Tick {
    name: &'static str,
}

impl Worker for Tick {
    fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let name = self.name;
        Box::pin(async move {
            async_io::Timer::after(Duration::from_millis(5)).await;
            println!("{name} ticked on smol in pid {}", std::process::id());
        })
    }
}

impl Restartable for Tick {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Once
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::immediate()
    }
}

fn main() {
    let tree = Supertree::new()
        .add_worker(Tick { name: "a" })
        .add_supervisor(|s| s.add_worker(Tick { name: "b" }));
    if let Err(err) = tree.start_with(SmolSpawner::new(), SmolTimer::new()) {
        eprintln!("tree failed: {err}");
        std::process::exit(1);
    }
    println!("done");
}
