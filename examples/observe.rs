//! A long-running tree that shows its lifecycle as `tracing` events: a flaky
//! worker that panics every second, a steady one, and a nested supervisor.
//! Stop it with Ctrl-C (SIGINT) or SIGTERM; kill any of its processes with
//! `kill -9` and watch it heal.
//!
//! Run it with `RUST_LOG=info cargo run --example observe`
//! (`RUST_LOG=debug` shows every worker start and exit too). Each line names
//! the supervisor (`root/1`), the child position, pids, exit statuses and
//! backoff delays as structured fields.

use std::time::Duration;

use supertrees::{BackoffPolicy, Intensity, Restartable, Supertree, Worker};
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

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let tree = Supertree::new()
        .with_intensity(Intensity::new(20, Duration::from_secs(10)))
        .add_worker(Steady)
        .add_worker(Flaky)
        .add_supervisor(|s| {
            s.add_worker(Steady)
                .add_supervisor(|s| s.add_worker(Steady))
        });
    match tree.start() {
        Ok(()) => println!("tree stopped cleanly"),
        Err(err) => {
            eprintln!("tree failed: {err}");
            std::process::exit(1);
        }
    }
}
