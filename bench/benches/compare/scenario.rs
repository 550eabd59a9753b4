// The trees of the benchmark, written once against the seed's API (supertrees
// 0.1.2) and compiled twice: `include!`d by `mod ours` and `mod seed` in
// trees.rs, where `st` names the crate under test and `start_tree` starts a
// tree of that crate. Everything here must stay source-compatible with both.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::shm::{self, Behavior, Shared};

/// A worker that records every start (the first poll of the future its
/// `init()` returns) in shared memory, then behaves as told.
#[derive(Debug)]
pub struct Probe {
    shm: &'static Shared,
    behavior: Behavior,
    backoff: st::BackoffPolicy,
}

impl Probe {
    pub fn new(shm: &'static Shared, behavior: Behavior, backoff: st::BackoffPolicy) -> Self {
        Self {
            shm,
            behavior,
            backoff,
        }
    }
}

impl st::Worker for Probe {
    fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let shm = self.shm;
        let behavior = self.behavior;
        Box::pin(async move {
            shm::record_start(shm, behavior);
            match behavior {
                Behavior::Return => {}
                Behavior::Pend => std::future::pending::<()>().await,
                Behavior::Panic => panic!("supertrees-bench: deliberate worker panic"),
            }
        })
    }
}

impl st::Restartable for Probe {
    fn restart_policy(&self) -> st::RestartPolicy {
        st::RestartPolicy::Always
    }

    fn backoff_policy(&self) -> st::BackoffPolicy {
        self.backoff
    }
}

/// `restart_rate`: one worker that returns at once, restarted always after
/// 1-2 µs.
pub fn restart_rate_tree(shm: &'static Shared) -> st::Supertree {
    let backoff = st::BackoffPolicy::new(
        Duration::from_micros(1),
        Duration::from_micros(2),
        Duration::from_secs(1),
        2.0,
    );
    st::Supertree::new().add_worker(Probe::new(shm, Behavior::Return, backoff))
}

/// `tree_start`: a root with `n` supervisors of 10 workers each that never
/// finish.
pub fn supervisors_tree(shm: &'static Shared, n: usize) -> st::Supertree {
    (0..n).fold(st::Supertree::new(), |tree, _| {
        tree.add_supervisor(|s| {
            (0..10).fold(s, |s, _| {
                s.add_worker(Probe::new(
                    shm,
                    Behavior::Pend,
                    st::BackoffPolicy::default(),
                ))
            })
        })
    })
}

/// Runs `tree` in this (forked, single-threaded) process; returns the exit
/// code for `_exit`. With the seed, forked children of the tree return here
/// too: the caller must `_exit` right away, whatever this returns.
pub fn run(shm: &'static Shared, tree: st::Supertree) -> i32 {
    shm.t0
        .store(shm::now_ns(), std::sync::atomic::Ordering::SeqCst);
    match start_tree(tree) {
        Ok(()) => 0,
        Err(err) => {
            shm.failed.store(1, std::sync::atomic::Ordering::SeqCst);
            eprintln!("supertrees-bench: start() failed: {err}");
            1
        }
    }
}
