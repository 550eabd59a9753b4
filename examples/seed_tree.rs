//! The example of supertrees 0.1, unchanged but for `main`'s return type:
//! a root with one worker, a supervisor with one worker, and a nested
//! supervisor with one more. Each `Once` worker runs twice, then the tree has
//! no work left and `start()` returns in the calling process only, so "done"
//! is printed exactly once.
//!
//! Run it with `cargo run --example seed_tree`; set `RUST_LOG=info` to see
//! the lifecycle events.

use supertrees::{RestartPolicy, Restartable, Supertree, Worker};

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
