//! Exact timelines of machines with what is above them: a machine built
//! from a tree, as both drivers build it, and a worker host's leases beside
//! its supervisor's machine.

use std::time::Duration;

use crate::lease::Leases;
use crate::machine::tests::*;
use crate::machine::*;
use crate::{BackoffPolicy, ChildExit, RestartPolicy, Shutdown};
use Action::Exit;

use crate::ChildExit::{Panicked, Signaled};

/// A worker that never ends, for machines built from a tree.
struct Idle;

impl crate::Worker for Idle {
    fn init(&self) -> crate::BoxFuture {
        Box::pin(std::future::pending())
    }
}

impl crate::Restartable for Idle {}

#[test]
fn a_child_supervisor_is_waited_for_and_workers_have_their_own_shutdown() {
    // Built from a tree, as both drivers build it: the root's 100 ms would
    // race the child supervisor's own 300 ms if it applied to it.
    let tree = crate::Supertree::new()
        .with_shutdown(Shutdown::Timeout(ms(100)))
        .add_worker(Idle)
        .add_supervisor(|s| s.with_shutdown(Shutdown::Timeout(ms(300))).add_worker(Idle));
    let mut h = Harness::one_for_one(vec![]);
    h.m = tree.machine("root".to_owned(), 1, None);
    assert_eq!(h.start(0), [Start(0), Start(1)]);
    assert_eq!(h.shutdown(10), [Stop([1])]);
    // No deadline: the child supervisor kills its own stuck workers.
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(10_000), []);
    assert_eq!(h.exit(1, Signaled(SIGTERM), 10_310), [Stop([0])]);
    // The root's own workers: dropped after their own `shutdown()` (the
    // default 5 s), not the supervisor's 100 ms.
    assert_eq!(h.next_timeout(), Some(15_310));
    assert_eq!(h.timeout(15_310), [kill([0])]);
    assert_eq!(
        h.exit(0, ChildExit::Stopped, 15_311),
        [Exit(Outcome::Normal)]
    );
}

#[test]
fn a_host_death_after_in_place_restarts_continues_the_backoff() {
    // 20 ms ×2: the host restarted the worker in place after 20, 40, 80,
    // 160 ms; its death is the fifth consecutive failure: 320 ms.
    let policy = ChildPolicy {
        backoff: BackoffPolicy::new(ms(20), ms(10_000), Duration::from_secs(60), 2.0),
        ..worker(RestartPolicy::Always)
    };
    let mut h = Harness::one_for_one(vec![policy]);
    h.start(0);
    let lease = h.m.lease(idx(0)).expect("a OneForOne worker is leased");
    let mut leases = Leases::new(
        h.m.leasable(),
        Grant {
            budget: None,
            as_of: 0,
        },
    );
    leases.start(idx(0), Some(lease));
    let mut t = 0;
    for expected in [20, 40, 80, 160] {
        t += 1;
        let (delay, state) = leases.spend(idx(0), &Panicked, ms(1)).unwrap();
        assert_eq!(delay, ms(expected));
        let now = h.at(t);
        h.m.handle_restarted(idx(0), Panicked, None, delay, state, now);
        t += expected;
    }
    assert_eq!(h.drain(), []);
    assert_eq!(h.exit(0, Signaled(9), t + 5), []);
    assert_eq!(h.next_timeout(), Some(t + 5 + 320));
}
