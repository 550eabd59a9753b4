//! Exact timelines of the supervisor state machine: every test feeds events
//! with explicit instants and asserts the precise sequence of actions and
//! timeouts that follows.

use super::*;
use crate::{BackoffPolicy, RestartPolicy, Shutdown};

use crate::ChildExit::{GaveUp, Normal, Panicked, Signaled};

pub(crate) const SIGTERM: i32 = 15;

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 100 ms → 800 ms, ×2, reset after 10 s.
pub(crate) fn backoff() -> BackoffPolicy {
    BackoffPolicy::new(ms(100), ms(800), Duration::from_secs(10), 2.0)
}

pub(crate) fn worker(restart: RestartPolicy) -> ChildPolicy {
    ChildPolicy {
        restart,
        backoff: backoff(),
        // Kill deadlines have tests of their own.
        shutdown: Shutdown::Infinity,
        start_timeout: None,
        is_supervisor: false,
        watchdog: None,
    }
}

pub(crate) fn supervisor(restart: RestartPolicy) -> ChildPolicy {
    ChildPolicy {
        start_timeout: None,
        is_supervisor: true,
        watchdog: None,
        ..worker(restart)
    }
}

/// A machine and the instant its timeline starts at.
pub(crate) struct Harness {
    pub(crate) m: Machine,
    pub(crate) base: Instant,
    /// The time of the last event fed in.
    pub(crate) now: Instant,
    /// Whether every started child declares itself ready at once, as a
    /// worker with `Readiness::OnStart` does when it is first polled.
    pub(crate) auto_ready: bool,
    /// `Action::Grant`s issued so far.
    pub(crate) grants: usize,
}

impl Harness {
    pub(crate) fn new(
        children: Vec<ChildPolicy>,
        strategy: Strategy,
        intensity: Intensity,
    ) -> Self {
        let base = Instant::now();
        Self {
            m: Machine::new(
                "root".to_owned(),
                children,
                strategy,
                intensity,
                Shutdown::Infinity,
                None,
            ),
            base,
            now: base,
            auto_ready: true,
            grants: 0,
        }
    }

    pub(crate) fn one_for_one(children: Vec<ChildPolicy>) -> Self {
        Self::new(children, Strategy::OneForOne, Intensity::unlimited())
    }

    pub(crate) fn at(&mut self, t: u64) -> Instant {
        self.now = self.base + ms(t);
        self.now
    }

    /// The actions issued, but for `Grant`s, which are counted in `grants`.
    pub(crate) fn drain(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(action) = self.m.poll_action() {
            if action == Action::Grant {
                self.grants += 1;
                continue;
            }
            if let (Action::Start(n), true) = (&action, self.auto_ready) {
                self.m.handle_ready(*n, self.now);
            }
            actions.push(action);
        }
        actions
    }

    pub(crate) fn ready(&mut self, n: usize, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_ready(idx(n), now);
        self.drain()
    }

    pub(crate) fn reports(&mut self) -> Vec<Report> {
        std::iter::from_fn(|| self.m.poll_report()).collect()
    }

    pub(crate) fn start(&mut self, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_start(now);
        self.drain()
    }

    pub(crate) fn exit(&mut self, n: usize, exit: ChildExit, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_exit(idx(n), exit, now);
        self.drain()
    }

    /// The driver's answer to `Action::Stop(n)`: the child's exit, as a
    /// signal, at `t`.
    pub(crate) fn stopped(&mut self, n: usize, t: u64) -> Vec<Action> {
        self.exit(n, Signaled(SIGTERM), t)
    }

    pub(crate) fn timeout(&mut self, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_timeout(now);
        self.drain()
    }

    pub(crate) fn shutdown(&mut self, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_shutdown(now);
        self.drain()
    }

    /// The machine's restart budget at `t`.
    pub(crate) fn budget(&self, t: u64) -> Option<u32> {
        self.m.budget(self.base + ms(t))
    }

    /// The next timeout, in ms after `base`.
    pub(crate) fn next_timeout(&self) -> Option<u64> {
        self.m
            .poll_timeout()
            .map(|at| at.duration_since(self.base).as_millis() as u64)
    }
}

use Action::Exit;

pub(crate) fn idx(n: usize) -> ChildIdx {
    ChildIdx::new(n).unwrap()
}

/// `Action::Start` of child `n`.
#[allow(non_snake_case)]
pub(crate) fn Start(n: usize) -> Action {
    Action::Start(idx(n))
}

/// `Action::Stop` of the children `n`, in this order.
#[allow(non_snake_case)]
pub(crate) fn Stop<const N: usize>(n: [usize; N]) -> Action {
    Action::Stop(n.iter().map(|&n| idx(n)).collect())
}

// ---------------------------------------------------------------------------
// Start, end of work
// ---------------------------------------------------------------------------

#[test]
fn starts_every_child_in_order() {
    let mut h = Harness::one_for_one(vec![
        worker(RestartPolicy::Always),
        supervisor(RestartPolicy::Always),
        worker(RestartPolicy::Never),
    ]);
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.next_timeout(), None);
    // A second handle_start is ignored.
    assert_eq!(h.start(5), []);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn zero_children_exit_normally_at_once() {
    let mut h = Harness::one_for_one(vec![]);
    assert_eq!(h.start(0), [Exit(Outcome::Normal)]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(1000), []);
    assert_eq!(h.shutdown(1000), []);
}

#[test]
fn exits_normally_once_every_child_is_done() {
    let mut h = Harness::one_for_one(vec![
        worker(RestartPolicy::Never),
        worker(RestartPolicy::OnFailure),
        supervisor(RestartPolicy::Always),
    ]);
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(1, Normal, 10), []);
    assert_eq!(h.exit(0, Panicked, 20), []);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.exit(2, Normal, 30), [Exit(Outcome::Normal)]);
    // Nothing happens after the exit.
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(5000), []);
    assert_eq!(h.exit(0, Panicked, 5000), []);
    assert_eq!(h.shutdown(5000), []);
}

#[test]
fn exits_of_unknown_or_idle_children_are_ignored() {
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::Always)]);
    assert_eq!(h.start(0), [Start(0)]);
    assert_eq!(h.exit(7, Panicked, 1), []);
    assert_eq!(h.next_timeout(), None);
    // Child 0 is waiting for its restart: a second exit report is ignored.
    assert_eq!(h.exit(0, Panicked, 2), []);
    assert_eq!(h.next_timeout(), Some(102));
    assert_eq!(h.exit(0, Panicked, 3), []);
    assert_eq!(h.next_timeout(), Some(102));
    assert_eq!(h.timeout(102), [Start(0)]);
}

// ---------------------------------------------------------------------------
// OneForOne, backoff, restart policies
// ---------------------------------------------------------------------------

#[test]
fn one_for_one_restarts_only_the_child_after_its_backoff() {
    let mut h = Harness::one_for_one(vec![
        worker(RestartPolicy::Always),
        worker(RestartPolicy::Always),
    ]);
    assert_eq!(h.start(0), [Start(0), Start(1)]);
    // min 100, max 800, ×2: restarts at 100, 300, 700, 1500, 2300, 3100.
    let mut t = 0;
    for expected in [100, 300, 700, 1500, 2300, 3100] {
        assert_eq!(h.exit(1, Normal, t), []);
        assert_eq!(h.next_timeout(), Some(expected));
        assert_eq!(h.timeout(expected - 1), [], "too early at {}", expected - 1);
        assert_eq!(h.next_timeout(), Some(expected));
        assert_eq!(h.timeout(expected), [Start(1)]);
        assert_eq!(h.next_timeout(), None);
        t = expected;
    }
}

#[test]
fn a_late_timeout_starts_everything_that_is_due_in_order() {
    let mut h = Harness::one_for_one(vec![
        worker(RestartPolicy::Always),
        worker(RestartPolicy::Always),
        worker(RestartPolicy::Always),
    ]);
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(2, Panicked, 0), []);
    assert_eq!(h.exit(0, Panicked, 50), []);
    assert_eq!(h.exit(1, Panicked, 60), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(155), [Start(0), Start(2)]);
    assert_eq!(h.next_timeout(), Some(160));
    assert_eq!(h.timeout(160), [Start(1)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn backoff_resets_after_a_run_of_reset_after() {
    let policy = ChildPolicy {
        restart: RestartPolicy::Always,
        backoff: BackoffPolicy::new(ms(100), ms(800), ms(1000), 2.0),
        shutdown: Shutdown::default(),
        start_timeout: None,
        is_supervisor: false,
        watchdog: None,
    };
    let mut h = Harness::one_for_one(vec![policy]);
    assert_eq!(h.start(0), [Start(0)]);
    assert_eq!(h.exit(0, Panicked, 0), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(100), [Start(0)]);
    // Ran 999 ms: no reset, 200 ms.
    assert_eq!(h.exit(0, Panicked, 1099), []);
    assert_eq!(h.next_timeout(), Some(1299));
    assert_eq!(h.timeout(1299), [Start(0)]);
    // Ran exactly 1000 ms: back to 100 ms.
    assert_eq!(h.exit(0, Panicked, 2299), []);
    assert_eq!(h.next_timeout(), Some(2399));
    assert_eq!(h.timeout(2399), [Start(0)]);
    // And the sequence grows again from there.
    assert_eq!(h.exit(0, Panicked, 2399), []);
    assert_eq!(h.next_timeout(), Some(2599));
}

#[test]
fn always_restarts_after_normal_exits_and_failures() {
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::Always)]);
    assert_eq!(h.start(0), [Start(0)]);
    let mut t = 0;
    for exit in [Normal, Panicked, ChildExit::Exited(3), Signaled(9), Normal] {
        assert_eq!(h.exit(0, exit, t), []);
        let at = h.next_timeout().expect("a restart is scheduled");
        assert_eq!(h.timeout(at), [Start(0)]);
        t = at;
    }
    assert_eq!(t, 100 + 200 + 400 + 800 + 800);
}

#[test]
fn once_runs_at_most_twice() {
    for (first, second) in [(Normal, Normal), (Panicked, Panicked), (Normal, Panicked)] {
        let mut h = Harness::one_for_one(vec![worker(RestartPolicy::Once)]);
        assert_eq!(h.start(0), [Start(0)]);
        assert_eq!(h.exit(0, first, 10), []);
        assert_eq!(h.next_timeout(), Some(110));
        assert_eq!(h.timeout(110), [Start(0)]);
        assert_eq!(h.exit(0, second, 120), [Exit(Outcome::Normal)]);
        assert_eq!(h.next_timeout(), None);
    }
}

#[test]
fn never_is_not_restarted_after_any_exit() {
    for exit in [Normal, Panicked, Signaled(9)] {
        let mut h = Harness::one_for_one(vec![
            worker(RestartPolicy::Never),
            worker(RestartPolicy::Always),
        ]);
        assert_eq!(h.start(0), [Start(0), Start(1)]);
        assert_eq!(h.exit(0, exit, 10), []);
        assert_eq!(h.next_timeout(), None);
        assert_eq!(h.timeout(10_000), []);
    }
}

#[test]
fn on_failure_restarts_failures_but_not_normal_exits() {
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::OnFailure)]);
    assert_eq!(h.start(0), [Start(0)]);
    assert_eq!(h.exit(0, Panicked, 0), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(100), [Start(0)]);
    assert_eq!(h.exit(0, ChildExit::Exited(1), 100), []);
    assert_eq!(h.next_timeout(), Some(300));
    assert_eq!(h.timeout(300), [Start(0)]);
    assert_eq!(h.exit(0, Signaled(9), 300), []);
    assert_eq!(h.next_timeout(), Some(700));
    assert_eq!(h.timeout(700), [Start(0)]);
    assert_eq!(h.exit(0, Normal, 750), [Exit(Outcome::Normal)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn supervisor_child_is_done_after_a_normal_exit_whatever_its_policy() {
    let mut h = Harness::one_for_one(vec![
        supervisor(RestartPolicy::Always),
        supervisor(RestartPolicy::Once),
        supervisor(RestartPolicy::OnFailure),
    ]);
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(0, Normal, 5), []);
    assert_eq!(h.exit(1, Normal, 6), []);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.exit(2, Normal, 7), [Exit(Outcome::Normal)]);
}

#[test]
fn supervisor_child_is_restarted_after_a_failure() {
    let mut h = Harness::one_for_one(vec![
        supervisor(RestartPolicy::Always),
        supervisor(RestartPolicy::Once),
    ]);
    assert_eq!(h.start(0), [Start(0), Start(1)]);
    assert_eq!(h.exit(0, GaveUp, 10), []);
    assert_eq!(h.exit(1, Signaled(9), 20), []);
    assert_eq!(h.next_timeout(), Some(110));
    assert_eq!(h.timeout(110), [Start(0)]);
    assert_eq!(h.next_timeout(), Some(120));
    assert_eq!(h.timeout(120), [Start(1)]);
    // Its own backoff grows for the next failure...
    assert_eq!(h.exit(0, GaveUp, 130), []);
    assert_eq!(h.next_timeout(), Some(330));
    assert_eq!(h.timeout(330), [Start(0)]);
    // ...its Once is used up...
    assert_eq!(h.exit(1, GaveUp, 400), []);
    assert_eq!(h.next_timeout(), None);
    // ...and a normal exit after a restart still ends it.
    assert_eq!(h.exit(0, Normal, 500), [Exit(Outcome::Normal)]);
}

// ---------------------------------------------------------------------------
// OneForAll, RestForOne
// ---------------------------------------------------------------------------

pub(crate) fn always(n: usize) -> Vec<ChildPolicy> {
    vec![worker(RestartPolicy::Always); n]
}

pub(crate) fn supervisors(n: usize) -> Vec<ChildPolicy> {
    vec![supervisor(RestartPolicy::Always); n]
}

#[test]
fn one_for_all_stops_the_others_one_at_a_time_in_reverse_then_starts_all_in_order() {
    let mut h = Harness::new(always(4), Strategy::OneForAll, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2), Start(3)]);
    assert_eq!(h.exit(1, Panicked, 10), [Stop([3])]);
    // No timeout while the group is still stopping.
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(500), []);
    assert_eq!(h.stopped(3, 12), [Stop([2])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.stopped(2, 15), [Stop([0])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.stopped(0, 20), []);
    // The failed child's backoff counts from its exit at 10.
    assert_eq!(h.next_timeout(), Some(110));
    assert_eq!(h.timeout(109), []);
    assert_eq!(h.timeout(110), [Start(0), Start(1), Start(2), Start(3)]);
    assert_eq!(h.next_timeout(), None);

    // The next failure: the last child, 200 ms (its 2nd consecutive restart
    // counts only for child 1; child 3 is on its first).
    assert_eq!(h.exit(3, Normal, 110), [Stop([2])]);
    assert_eq!(h.stopped(2, 111), [Stop([1])]);
    assert_eq!(h.stopped(1, 112), [Stop([0])]);
    assert_eq!(h.stopped(0, 113), []);
    assert_eq!(h.next_timeout(), Some(210));
    assert_eq!(h.timeout(210), [Start(0), Start(1), Start(2), Start(3)]);
}

#[test]
fn one_for_all_starts_at_once_when_stopping_outlasts_the_backoff() {
    let mut h = Harness::new(always(3), Strategy::OneForAll, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(0, Panicked, 0), [Stop([2])]);
    assert_eq!(h.stopped(2, 60), [Stop([1])]);
    assert_eq!(h.stopped(1, 250), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn one_for_all_with_a_single_child_restarts_it_after_its_backoff() {
    let mut h = Harness::new(always(1), Strategy::OneForAll, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0)]);
    assert_eq!(h.exit(0, Panicked, 0), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(100), [Start(0)]);
}

#[test]
fn rest_for_one_only_affects_later_children() {
    let mut h = Harness::new(always(4), Strategy::RestForOne, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2), Start(3)]);
    assert_eq!(h.exit(1, Panicked, 0), [Stop([3])]);
    assert_eq!(h.stopped(3, 1), [Stop([2])]);
    assert_eq!(h.stopped(2, 2), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(100), [Start(1), Start(2), Start(3)]);

    // The last child fails: only it restarts.
    assert_eq!(h.exit(3, Panicked, 150), []);
    assert_eq!(h.next_timeout(), Some(250));
    assert_eq!(h.timeout(250), [Start(3)]);

    // The first child fails: everything restarts.
    assert_eq!(h.exit(0, Panicked, 300), [Stop([3])]);
    assert_eq!(h.stopped(3, 300), [Stop([2])]);
    assert_eq!(h.stopped(2, 300), [Stop([1])]);
    assert_eq!(h.stopped(1, 300), []);
    assert_eq!(h.next_timeout(), Some(400));
    assert_eq!(h.timeout(400), [Start(0), Start(1), Start(2), Start(3)]);
}

#[test]
fn rest_for_one_group_grows_when_an_earlier_child_fails() {
    let mut h = Harness::new(always(3), Strategy::RestForOne, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    // The last child: a group of one, due at 100.
    assert_eq!(h.exit(2, Panicked, 0), []);
    assert_eq!(h.next_timeout(), Some(100));
    // Child 0 fails before that: 0..3 restart together, after 0's backoff.
    assert_eq!(h.exit(0, Panicked, 50), [Stop([1])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.stopped(1, 60), []);
    assert_eq!(h.next_timeout(), Some(150));
    assert_eq!(h.timeout(100), []);
    assert_eq!(h.timeout(150), [Start(0), Start(1), Start(2)]);
}

#[test]
fn siblings_stopped_by_a_group_restart_run_again_only_if_their_policy_allows() {
    let mut h = Harness::new(
        vec![
            worker(RestartPolicy::Always),
            worker(RestartPolicy::Never),
            worker(RestartPolicy::Once),
            worker(RestartPolicy::OnFailure),
        ],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2), Start(3)]);
    assert_eq!(h.exit(0, Panicked, 0), [Stop([3])]);
    assert_eq!(h.stopped(3, 1), [Stop([2])]);
    assert_eq!(h.stopped(2, 2), [Stop([1])]);
    assert_eq!(h.stopped(1, 3), []);
    assert_eq!(h.next_timeout(), Some(100));
    // Never is not restarted; Once uses its one restart; OnFailure runs again.
    assert_eq!(h.timeout(100), [Start(0), Start(2), Start(3)]);

    // Second group restart: Once has run twice and stays down.
    assert_eq!(h.exit(0, Panicked, 100), [Stop([3])]);
    assert_eq!(h.stopped(3, 101), [Stop([2])]);
    assert_eq!(h.stopped(2, 102), []);
    assert_eq!(h.next_timeout(), Some(300));
    assert_eq!(h.timeout(300), [Start(0), Start(3)]);
}

#[test]
fn a_child_that_is_not_restarted_does_not_trigger_its_strategy() {
    let mut h = Harness::new(
        vec![
            worker(RestartPolicy::Always),
            worker(RestartPolicy::Never),
            worker(RestartPolicy::OnFailure),
        ],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(1, Panicked, 10), []);
    assert_eq!(h.exit(2, Normal, 20), []);
    assert_eq!(h.next_timeout(), None);
    // Child 0 failing restarts only what still runs or may run again.
    assert_eq!(h.exit(0, Panicked, 30), []);
    assert_eq!(h.next_timeout(), Some(130));
    assert_eq!(h.timeout(130), [Start(0)]);
}

#[test]
fn a_child_failing_while_a_group_restart_is_in_progress() {
    let mut h = Harness::new(always(3), Strategy::OneForAll, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(2, Panicked, 0), [Stop([1])]);
    // Child 0 fails while child 1 is being stopped: no second stop is
    // issued, and the group waits for the later of both backoffs.
    assert_eq!(h.exit(0, Panicked, 10), []);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.stopped(1, 20), []);
    assert_eq!(h.next_timeout(), Some(110));
    assert_eq!(h.timeout(100), []);
    assert_eq!(h.timeout(110), [Start(0), Start(1), Start(2)]);

    // Child 2's backoff kept growing: 200 ms on its second failure.
    assert_eq!(h.exit(2, Panicked, 110), [Stop([1])]);
    assert_eq!(h.stopped(1, 110), [Stop([0])]);
    assert_eq!(h.stopped(0, 110), []);
    assert_eq!(h.next_timeout(), Some(310));
    assert_eq!(h.timeout(310), [Start(0), Start(1), Start(2)]);
}

#[test]
fn a_never_sibling_exiting_by_itself_during_a_group_restart_is_not_restarted() {
    let mut h = Harness::new(
        vec![
            worker(RestartPolicy::Always),
            worker(RestartPolicy::Never),
            worker(RestartPolicy::Always),
        ],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(0, Panicked, 0), [Stop([2])]);
    // The Never child exits by itself meanwhile: it is done.
    assert_eq!(h.exit(1, Normal, 5), []);
    assert_eq!(h.stopped(2, 10), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(100), [Start(0), Start(2)]);
}

#[test]
fn a_group_restart_counts_as_one_restart_for_intensity() {
    let mut h = Harness::new(
        always(3),
        Strategy::OneForAll,
        Intensity::new(1, Duration::from_secs(1)),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(1, Panicked, 0), [Stop([2])]);
    assert_eq!(h.stopped(2, 0), [Stop([0])]);
    assert_eq!(h.stopped(0, 0), []);
    assert_eq!(h.timeout(100), [Start(0), Start(1), Start(2)]);
    // The second restart within 1 s is one too many: the workers still
    // running stop together, in reverse order.
    assert_eq!(h.exit(1, Panicked, 200), [Stop([2, 0])]);
    assert_eq!(h.stopped(2, 201), []);
    assert_eq!(h.stopped(0, 202), [Exit(Outcome::GaveUp)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn a_second_failure_during_a_group_restart_can_exceed_the_intensity() {
    let mut h = Harness::new(
        always(3),
        Strategy::OneForAll,
        Intensity::new(1, Duration::from_secs(1)),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(2, Panicked, 0), [Stop([1])]);
    // Exceeded while child 1 is still being stopped: wait for it, stop
    // nothing else (child 0 has exited), give up, start nothing.
    assert_eq!(h.exit(0, Panicked, 10), []);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.stopped(1, 20), [Exit(Outcome::GaveUp)]);
    assert_eq!(h.timeout(1000), []);
}

// ---------------------------------------------------------------------------
// Intensity, shutdown
// ---------------------------------------------------------------------------

#[test]
fn intensity_exceeded_stops_running_children_in_reverse_then_gives_up() {
    let mut h = Harness::new(
        always(3),
        Strategy::OneForOne,
        Intensity::new(2, Duration::from_secs(1)),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(1, Panicked, 0), []);
    assert_eq!(h.timeout(100), [Start(1)]);
    assert_eq!(h.exit(1, Panicked, 100), []);
    assert_eq!(h.timeout(300), [Start(1)]);
    // Third restart within 1 s: more than 2.
    assert_eq!(h.exit(1, Panicked, 300), [Stop([2, 0])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.stopped(2, 310), []);
    assert_eq!(h.stopped(0, 320), [Exit(Outcome::GaveUp)]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(10_000), []);
}

#[test]
fn restarts_that_left_the_window_do_not_count() {
    let mut h = Harness::new(
        vec![ChildPolicy {
            restart: RestartPolicy::Always,
            backoff: BackoffPolicy::new(ms(100), ms(100), Duration::from_secs(60), 1.0),
            shutdown: Shutdown::default(),
            start_timeout: None,
            is_supervisor: false,
            watchdog: None,
        }],
        Strategy::OneForOne,
        Intensity::new(1, ms(150)),
    );
    assert_eq!(h.start(0), [Start(0)]);
    let mut t = 0;
    // One restart per 200 ms never makes two within 150 ms.
    for _ in 0..10 {
        assert_eq!(h.exit(0, Panicked, t), []);
        assert_eq!(h.timeout(t + 100), [Start(0)]);
        t += 200;
    }
    assert_eq!(h.exit(0, Panicked, t), []);
    // Two within 150 ms: given up; nothing else runs, so it exits at once.
    assert_eq!(h.timeout(t + 100), [Start(0)]);
    assert_eq!(h.exit(0, Panicked, t + 100), [Exit(Outcome::GaveUp)]);
}

#[test]
fn giving_up_cancels_scheduled_restarts() {
    let mut h = Harness::new(
        always(3),
        Strategy::OneForOne,
        Intensity::new(1, Duration::from_secs(1)),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(0, Panicked, 0), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.exit(2, Panicked, 50), [Stop([1])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.stopped(1, 60), [Exit(Outcome::GaveUp)]);
    assert_eq!(h.timeout(100), []);
}

#[test]
fn zero_intensity_gives_up_on_the_first_restart() {
    let mut h = Harness::new(
        always(2),
        Strategy::OneForOne,
        Intensity::new(0, Duration::from_secs(1)),
    );
    assert_eq!(h.start(0), [Start(0), Start(1)]);
    assert_eq!(h.exit(1, Normal, 0), [Stop([0])]);
    assert_eq!(h.stopped(0, 0), [Exit(Outcome::GaveUp)]);
}

#[test]
fn not_restarting_a_child_does_not_count_for_intensity() {
    let mut h = Harness::new(
        vec![
            worker(RestartPolicy::Never),
            worker(RestartPolicy::OnFailure),
            worker(RestartPolicy::Always),
        ],
        Strategy::OneForOne,
        Intensity::new(0, Duration::from_secs(1)),
    );
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.exit(0, Panicked, 0), []);
    assert_eq!(h.exit(1, Normal, 0), []);
    assert_eq!(h.exit(2, Normal, 0), [Exit(Outcome::GaveUp)]);
}

#[test]
fn shutdown_stops_workers_together_in_reverse_then_exits_normally() {
    let mut h = Harness::one_for_one(always(3));
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.shutdown(50), [Stop([2, 1, 0])]);
    assert_eq!(h.shutdown(55), []);
    assert_eq!(h.stopped(2, 60), []);
    assert_eq!(h.stopped(1, 70), []);
    assert_eq!(h.stopped(0, 80), [Exit(Outcome::Normal)]);
}

#[test]
fn shutdown_stops_child_supervisors_one_at_a_time_in_reverse() {
    let mut h = Harness::one_for_one(supervisors(3));
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.shutdown(50), [Stop([2])]);
    // A second request changes nothing.
    assert_eq!(h.shutdown(55), []);
    assert_eq!(h.stopped(2, 60), [Stop([1])]);
    assert_eq!(h.stopped(1, 70), [Stop([0])]);
    assert_eq!(h.stopped(0, 80), [Exit(Outcome::Normal)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn shutdown_skips_children_that_wait_for_a_restart_or_exit_meanwhile() {
    let mut h = Harness::one_for_one(supervisors(4));
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2), Start(3)]);
    assert_eq!(h.exit(2, Panicked, 0), []);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.shutdown(10), [Stop([3])]);
    assert_eq!(h.next_timeout(), None);
    // Child 0 exits by itself while 3 is stopping: it is not restarted.
    assert_eq!(h.exit(0, Panicked, 15), []);
    assert_eq!(h.stopped(3, 20), [Stop([1])]);
    assert_eq!(h.stopped(1, 30), [Exit(Outcome::Normal)]);
    assert_eq!(h.timeout(100), []);
}

#[test]
fn shutdown_during_a_group_restart_waits_for_the_stop_under_way() {
    let mut h = Harness::new(always(4), Strategy::OneForAll, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2), Start(3)]);
    assert_eq!(h.exit(1, Panicked, 0), [Stop([3])]);
    assert_eq!(h.shutdown(5), []);
    // The workers left stop together once the stop under way is done.
    assert_eq!(h.stopped(3, 10), [Stop([2, 0])]);
    assert_eq!(h.stopped(2, 20), []);
    assert_eq!(h.stopped(0, 30), [Exit(Outcome::Normal)]);
    assert_eq!(h.timeout(1000), []);
}

#[test]
fn shutdown_before_start_exits_without_starting_anything() {
    let mut h = Harness::one_for_one(always(2));
    assert_eq!(h.shutdown(0), [Exit(Outcome::Normal)]);
    assert_eq!(h.start(0), []);
}

#[test]
fn accessors() {
    let limit = Intensity::new(3, Duration::from_secs(5));
    let h = Harness::new(always(1), Strategy::OneForOne, limit);
    assert_eq!(h.m.path(), "root");
    assert_eq!(h.m.intensity(), limit);
}

// Restarts done in place by a worker host (`handle_restarted`).

#[test]
fn restarts_in_place_count_towards_the_intensity() {
    let mut h = Harness::new(
        vec![worker(RestartPolicy::Always), worker(RestartPolicy::Always)],
        Strategy::OneForOne,
        Intensity::new(2, ms(1000)),
    );
    h.start(0);
    {
        let now = h.at(10);
        h.m.handle_restarted(
            idx(1),
            Panicked,
            None,
            Duration::ZERO,
            RecordState::default(),
            now,
        )
    };
    {
        let now = h.at(20);
        h.m.handle_restarted(
            idx(1),
            Normal,
            None,
            Duration::ZERO,
            RecordState::default(),
            now,
        )
    };
    assert_eq!(h.drain(), []);
    assert_eq!(h.m.poll_timeout(), None);
    // The third restart inside the window exceeds 2 per second: both children
    // (the in-place one included, still running in its host) are stopped.
    {
        let now = h.at(30);
        h.m.handle_restarted(
            idx(1),
            Panicked,
            None,
            Duration::ZERO,
            RecordState::default(),
            now,
        )
    };
    assert_eq!(h.drain(), [Stop([1, 0])]);
    assert_eq!(h.stopped(1, 31), []);
    assert_eq!(h.stopped(0, 32), [Action::Exit(Outcome::GaveUp)]);
}

#[test]
fn restarts_in_place_advance_the_restart_count() {
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::Once)]);
    h.start(0);
    {
        let now = h.at(5);
        // The host applied the rule to its lease: one restart used.
        let state = RecordState {
            restarts: 1,
            ..RecordState::default()
        };
        h.m.handle_restarted(idx(0), Normal, None, Duration::ZERO, state, now)
    };
    // Its second run ends: `Once` has used its restart.
    assert_eq!(h.exit(0, Normal, 9), [Action::Exit(Outcome::Normal)]);
}

#[test]
fn restarts_in_place_of_children_not_running_are_ignored() {
    let mut h = Harness::new(
        vec![worker(RestartPolicy::Always)],
        Strategy::OneForOne,
        Intensity::new(0, ms(1000)),
    );
    assert!(h.m.leasable()[0].is_some());
    h.start(0);
    {
        let now = h.at(1);
        h.m.handle_shutdown(now)
    };
    assert_eq!(h.drain(), [Stop([0])]);
    // Reported before the stop arrived: not a restart, no give-up.
    {
        let now = h.at(2);
        h.m.handle_restarted(
            idx(0),
            Normal,
            None,
            Duration::ZERO,
            RecordState::default(),
            now,
        )
    };
    assert_eq!(h.drain(), []);
    assert_eq!(h.stopped(0, 3), [Action::Exit(Outcome::Normal)]);
}

#[test]
fn only_one_for_one_workers_are_leased() {
    let h = Harness::new(
        vec![
            worker(RestartPolicy::Always),
            supervisor(RestartPolicy::Always),
        ],
        Strategy::OneForOne,
        Intensity::unlimited(),
    );
    assert!(h.m.leasable()[0].is_some());
    assert!(h.m.leasable()[1].is_none());
    let h = Harness::new(
        vec![worker(RestartPolicy::Always)],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    assert!(h.m.leasable()[0].is_none());
}

// Readiness and reports.

#[test]
fn one_for_all_starts_each_child_once_the_one_before_is_ready() {
    let mut h = Harness::new(
        vec![worker(RestartPolicy::Always); 3],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    h.auto_ready = false;
    assert_eq!(h.start(0), [Start(0)]);
    assert_eq!(h.ready(0, 5), [Start(1)]);
    // Readiness of a child that is already ready, or unknown, changes nothing.
    assert_eq!(h.ready(0, 6), []);
    assert_eq!(h.ready(7, 6), []);
    assert_eq!(h.ready(1, 9), [Start(2)]);
    assert_eq!(
        h.reports(),
        [Report::ChildReady(idx(0)), Report::ChildReady(idx(1))]
    );
    assert_eq!(h.ready(2, 12), []);
    assert_eq!(h.reports(), [Report::ChildReady(idx(2)), Report::Ready]);
}

#[test]
fn a_group_restart_also_starts_in_order_and_the_tree_stays_ready() {
    let mut h = Harness::new(
        vec![worker(RestartPolicy::Always); 2],
        Strategy::RestForOne,
        Intensity::unlimited(),
    );
    h.start(0);
    h.reports();
    h.auto_ready = false;
    assert_eq!(h.exit(0, Panicked, 10), [Stop([1])]);
    assert_eq!(h.stopped(1, 11), []);
    assert_eq!(h.timeout(110), [Start(0)]);
    assert_eq!(h.ready(0, 120), [Start(1)]);
    assert_eq!(
        h.reports(),
        [
            Report::Exited {
                child: idx(0),
                exit: Panicked,
                restart: Some(ms(100)),
                reason: None,
            },
            Report::Exited {
                child: idx(1),
                exit: ChildExit::Stopped,
                restart: Some(ms(99)),
                reason: None,
            },
            Report::ChildReady(idx(0)),
        ]
    );
    // `Ready` is reported once, for the first start only.
    h.ready(1, 121);
    assert_eq!(h.reports(), [Report::ChildReady(idx(1))]);
}

#[test]
fn one_for_one_starts_all_at_once_and_is_ready_when_all_are() {
    let mut h = Harness::one_for_one(vec![
        worker(RestartPolicy::Never),
        worker(RestartPolicy::Always),
    ]);
    h.auto_ready = false;
    assert_eq!(h.start(0), [Start(0), Start(1)]);
    h.ready(1, 1);
    assert_eq!(h.reports(), [Report::ChildReady(idx(1))]);
    // Child 0 ends for good without ever being ready: nothing to wait for.
    h.exit(0, Normal, 2);
    assert_eq!(
        h.reports(),
        [
            Report::Exited {
                child: idx(0),
                exit: Normal,
                restart: None,
                reason: None,
            },
            Report::Ready,
        ]
    );
}

#[test]
fn a_child_done_before_it_was_ready_lets_the_next_one_start() {
    let mut h = Harness::new(
        vec![worker(RestartPolicy::Never), worker(RestartPolicy::Always)],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    h.auto_ready = false;
    assert_eq!(h.start(0), [Start(0)]);
    assert_eq!(h.exit(0, Normal, 3), [Start(1)]);
}

#[test]
fn shutdown_and_give_up_are_reported() {
    let mut h = Harness::new(
        vec![worker(RestartPolicy::Always)],
        Strategy::OneForOne,
        Intensity::new(0, ms(1000)),
    );
    h.start(0);
    h.reports();
    assert_eq!(h.exit(0, Panicked, 1), [Exit(Outcome::GaveUp)]);
    assert_eq!(
        h.reports(),
        [
            Report::Exited {
                child: idx(0),
                exit: Panicked,
                restart: None,
                reason: None,
            },
            Report::Stopping(Outcome::GaveUp),
        ]
    );
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::Always)]);
    h.start(0);
    h.reports();
    assert_eq!(h.shutdown(1), [Stop([0])]);
    assert_eq!(h.stopped(0, 2), [Exit(Outcome::Normal)]);
    assert_eq!(
        h.reports(),
        [
            Report::Stopping(Outcome::Normal),
            Report::Exited {
                child: idx(0),
                exit: ChildExit::Stopped,
                restart: None,
                reason: None,
            },
        ]
    );
}

// ---------------------------------------------------------------------------
// Stops: words, kill deadlines
// ---------------------------------------------------------------------------

pub(crate) fn with_shutdown(mut policy: ChildPolicy, shutdown: Shutdown) -> ChildPolicy {
    policy.shutdown = shutdown;
    policy
}

/// `Action::Kill` of the children `n`.
pub(crate) fn kill<const N: usize>(n: [usize; N]) -> Action {
    Action::Kill(n.iter().map(|&n| idx(n)).collect())
}

#[test]
fn a_child_stopped_on_request_is_reported_stopped_whatever_its_process_said() {
    let mut h = Harness::one_for_one(supervisors(1));
    h.start(0);
    h.reports();
    assert_eq!(h.shutdown(1), [Stop([0])]);
    // A supervisor process reports the SIGTERM that stopped it.
    assert_eq!(h.exit(0, Signaled(SIGTERM), 2), [Exit(Outcome::Normal)]);
    assert_eq!(
        h.reports(),
        [
            Report::Stopping(Outcome::Normal),
            Report::Exited {
                child: idx(0),
                exit: ChildExit::Stopped,
                restart: None,
                reason: None,
            }
        ]
    );
}

#[test]
fn a_child_that_does_not_stop_in_time_is_killed_and_reported_as_killed() {
    let policy = with_shutdown(
        supervisor(RestartPolicy::Always),
        Shutdown::Timeout(ms(500)),
    );
    let mut h = Harness::one_for_one(vec![policy; 2]);
    h.start(0);
    h.reports();
    assert_eq!(h.shutdown(100), [Stop([1])]);
    assert_eq!(h.next_timeout(), Some(600));
    assert_eq!(h.timeout(599), []);
    assert_eq!(h.timeout(600), [kill([1])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.exit(1, Signaled(9), 601), [Stop([0])]);
    // Child 0 stops in time.
    assert_eq!(h.exit(0, Signaled(SIGTERM), 700), [Exit(Outcome::Normal)]);
    let exits: Vec<ChildExit> = h
        .reports()
        .into_iter()
        .filter_map(|r| match r {
            Report::Exited { exit, .. } => Some(exit),
            _ => None,
        })
        .collect();
    assert_eq!(exits, [Signaled(9), ChildExit::Stopped]);
}

#[test]
fn shutdown_kill_kills_at_once_and_infinity_waits_forever() {
    let kill_policy = with_shutdown(worker(RestartPolicy::Always), Shutdown::Kill);
    let mut h = Harness::one_for_one(vec![kill_policy; 2]);
    h.start(0);
    assert_eq!(h.shutdown(10), [kill([1, 0])]);
    // Their host is killed if they have not ended within the drop grace.
    assert_eq!(h.next_timeout(), Some(1010));
    assert_eq!(h.exit(1, Signaled(9), 11), []);
    assert_eq!(h.exit(0, Signaled(9), 11), [Exit(Outcome::Normal)]);

    let mut h = Harness::one_for_one(supervisors(1));
    h.start(0);
    assert_eq!(h.shutdown(10), [Stop([0])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(1_000_000), []);
}

#[test]
fn a_group_restart_kills_a_sibling_that_does_not_stop_in_time() {
    let policy = with_shutdown(worker(RestartPolicy::Always), Shutdown::Timeout(ms(50)));
    let mut h = Harness::new(vec![policy; 2], Strategy::OneForAll, Intensity::unlimited());
    h.start(0);
    assert_eq!(h.exit(0, Panicked, 10), [Stop([1])]);
    assert_eq!(h.next_timeout(), Some(60));
    assert_eq!(h.timeout(60), [kill([1])]);
    // Killed, it still restarts with the group, after the backoff.
    assert_eq!(h.exit(1, Signaled(9), 61), []);
    assert_eq!(h.next_timeout(), Some(110));
    assert_eq!(h.timeout(110), [Start(0), Start(1)]);
}

// ---------------------------------------------------------------------------
// Failures of the engine's machinery: a floor under the backoff
// ---------------------------------------------------------------------------

/// A worker restarted at once after any exit.
pub(crate) fn immediate(restart: RestartPolicy) -> ChildPolicy {
    ChildPolicy {
        backoff: BackoffPolicy::immediate(),
        ..worker(restart)
    }
}

/// The restart delays of the `Exited` reports issued so far, in ms.
pub(crate) fn restart_delays(h: &mut Harness) -> Vec<Option<u128>> {
    h.reports()
        .into_iter()
        .filter_map(|r| match r {
            Report::Exited { restart, .. } => Some(restart.map(|d| d.as_millis())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_engine_failure_waits_a_floor_that_doubles_up_to_one_second() {
    let mut h = Harness::one_for_one(vec![immediate(RestartPolicy::Always)]);
    // Never ready: its process is never set up.
    h.auto_ready = false;
    assert_eq!(h.start(0), [Start(0)]);
    let floors = [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000];
    let mut t = 0;
    for (k, floor) in floors.into_iter().enumerate() {
        let exit = if k % 2 == 0 {
            ChildExit::ForkFailed(11)
        } else {
            ChildExit::SetupFailed
        };
        assert_eq!(h.exit(0, exit, t), []);
        assert_eq!(h.next_timeout(), Some(t + floor));
        assert_eq!(h.timeout(t + floor - 1), []);
        t += floor;
        assert_eq!(h.timeout(t), [Start(0)]);
    }
    // The events say so.
    assert_eq!(restart_delays(&mut h), floors.map(|f| Some(u128::from(f))));
}

#[test]
fn the_floor_starts_over_once_the_child_runs() {
    let mut h = Harness::one_for_one(vec![immediate(RestartPolicy::Always)]);
    h.auto_ready = false;
    h.start(0);
    h.exit(0, ChildExit::ForkFailed(11), 0);
    assert_eq!(h.timeout(10), [Start(0)]);
    h.exit(0, ChildExit::SetupFailed, 10);
    assert_eq!(h.timeout(30), [Start(0)]);
    // Ready: the engine started it; the next failure starts over at 10 ms.
    h.ready(0, 31);
    h.exit(0, ChildExit::ForkFailed(11), 40);
    assert_eq!(h.next_timeout(), Some(50));
    assert_eq!(h.timeout(50), [Start(0)]);
    h.exit(0, ChildExit::ForkFailed(11), 50);
    assert_eq!(h.timeout(70), [Start(0)]);
    // A failure of its own (its code ran): its backoff alone, at once, and
    // the engine's count starts over.
    assert_eq!(h.exit(0, Panicked, 80), [Start(0)]);
    h.exit(0, ChildExit::ForkFailed(11), 80);
    assert_eq!(h.next_timeout(), Some(90));
    assert_eq!(
        restart_delays(&mut h),
        [Some(10), Some(20), Some(10), Some(20), Some(0), Some(10)]
    );
}

#[test]
fn a_backoff_longer_than_the_floor_is_kept() {
    // Backoff 100 ms ×2: above the floor's 10, 20 ms.
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::Always)]);
    h.auto_ready = false;
    h.start(0);
    h.exit(0, ChildExit::ForkFailed(11), 0);
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(100), [Start(0)]);
    h.exit(0, ChildExit::ForkFailed(11), 100);
    assert_eq!(h.next_timeout(), Some(300));
}

#[test]
fn the_floor_holds_for_a_group_restart_and_restart_policies_still_apply() {
    let mut h = Harness::new(
        vec![immediate(RestartPolicy::Always); 2],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    h.start(0);
    h.ready(0, 0);
    h.ready(1, 0);
    h.reports();
    h.auto_ready = false;
    assert_eq!(h.exit(0, ChildExit::ForkFailed(11), 5), [Stop([1])]);
    assert_eq!(h.stopped(1, 6), []);
    assert_eq!(h.next_timeout(), Some(15));
    assert_eq!(h.timeout(15), [Start(0)]);
    assert_eq!(restart_delays(&mut h), [Some(10), Some(9)]);

    // `Never`: not restarted, engine failure or not.
    let mut h = Harness::one_for_one(vec![immediate(RestartPolicy::Never)]);
    h.start(0);
    assert_eq!(
        h.exit(0, ChildExit::ForkFailed(11), 0),
        [Exit(Outcome::Normal)]
    );
}

#[test]
fn the_floor_is_what_the_rule_says() {
    let ms_of = |n| engine_floor(n).as_millis();
    assert_eq!(ms_of(1), 10);
    assert_eq!(ms_of(2), 20);
    assert_eq!(ms_of(7), 640);
    assert_eq!(ms_of(8), 1000);
    assert_eq!(ms_of(u32::MAX), 1000);
}

// ---------------------------------------------------------------------------
// Leases: in-place restarts share the machine's one state
// ---------------------------------------------------------------------------

#[test]
fn restarts_decided_here_shrink_the_grant_and_in_place_ones_do_not() {
    let mut h = Harness::new(
        vec![
            worker(RestartPolicy::Always),
            supervisor(RestartPolicy::Always),
        ],
        Strategy::OneForOne,
        Intensity::new(5, Duration::from_secs(1)),
    );
    h.start(0);
    assert_eq!(h.budget(0), Some(5));
    {
        let now = h.at(1);
        h.m.handle_restarted(idx(0), Panicked, None, ms(100), RecordState::default(), now);
    }
    assert_eq!(h.drain(), []);
    assert_eq!(h.grants, 0);
    assert_eq!(h.budget(1), Some(4));
    // The child supervisor's restart is decided here: the host must know.
    assert_eq!(h.exit(1, Signaled(9), 2), []);
    assert_eq!(h.grants, 1);
    assert_eq!(h.budget(2), Some(3));
    // The window slides.
    assert_eq!(h.budget(1001), Some(4));
    // Unlimited intensity never needs a grant.
    let mut h = Harness::one_for_one(vec![
        worker(RestartPolicy::Always),
        supervisor(RestartPolicy::Always),
    ]);
    h.start(0);
    h.exit(1, Signaled(9), 2);
    assert_eq!(h.grants, 0);
    assert_eq!(h.budget(2), None);
}

#[test]
fn events_made_from_reports_name_their_subject() {
    let mut h = Harness::one_for_one(vec![
        worker(RestartPolicy::Always),
        supervisor(RestartPolicy::Always),
    ]);
    h.start(0);
    let events: Vec<_> = h.reports().iter().filter_map(|r| h.m.event(r)).collect();
    // The worker's readiness, then the supervisor's own once all are ready
    // (the child supervisor reports its own readiness itself).
    assert_eq!(
        events,
        [
            (Subject::Child(idx(0)), crate::EventKind::Ready),
            (Subject::Supervisor, crate::EventKind::Ready),
        ]
    );
}

// ---------------------------------------------------------------------------
// Worker lifecycle: graceful stops, drops at the deadline, start timeouts
// ---------------------------------------------------------------------------

/// The `Exited` reports issued so far: (child, exit, restart delay in ms).
pub(crate) fn exits(h: &mut Harness) -> Vec<(usize, ChildExit, Option<u128>)> {
    h.reports()
        .into_iter()
        .filter_map(|r| match r {
            Report::Exited {
                child,
                exit,
                restart,
                ..
            } => Some((child.get(), exit, restart.map(|d| d.as_millis()))),
            _ => None,
        })
        .collect()
}

#[test]
fn a_worker_that_returns_within_its_shutdown_is_stopped_without_a_kill() {
    let policy = with_shutdown(worker(RestartPolicy::Always), Shutdown::Timeout(ms(300)));
    let mut h = Harness::one_for_one(vec![policy]);
    h.start(0);
    assert_eq!(h.shutdown(10), [Stop([0])]);
    assert_eq!(h.next_timeout(), Some(310));
    // It drained for 200 ms and returned by itself.
    assert_eq!(h.exit(0, Normal, 210), [Exit(Outcome::Normal)]);
    assert_eq!(exits(&mut h), [(0, ChildExit::Stopped, None)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn a_worker_dropped_at_its_deadline_is_reported_stopped() {
    let policy = with_shutdown(worker(RestartPolicy::Always), Shutdown::Timeout(ms(300)));
    let mut h = Harness::one_for_one(vec![policy]);
    h.start(0);
    assert_eq!(h.shutdown(10), [Stop([0])]);
    assert_eq!(h.timeout(309), []);
    assert_eq!(h.timeout(310), [kill([0])]);
    // Whatever its driver reports for the dropped future, it was stopped.
    assert_eq!(h.exit(0, Signaled(9), 310), [Exit(Outcome::Normal)]);
    assert_eq!(exits(&mut h), [(0, ChildExit::Stopped, None)]);
}

#[test]
fn kill_drops_at_once_and_infinity_waits() {
    let mut h = Harness::one_for_one(vec![
        with_shutdown(worker(RestartPolicy::Always), Shutdown::Infinity),
        with_shutdown(worker(RestartPolicy::Always), Shutdown::Kill),
    ]);
    h.start(0);
    // Reverse order: child 1 dropped at once, child 0 asked and waited for.
    assert_eq!(h.shutdown(10), [kill([1]), Stop([0])]);
    assert_eq!(h.exit(1, ChildExit::Stopped, 10), []);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(1_000_000), []);
    assert_eq!(h.exit(0, Normal, 2_000_000), [Exit(Outcome::Normal)]);
    assert_eq!(
        exits(&mut h),
        [(1, ChildExit::Stopped, None), (0, ChildExit::Stopped, None)]
    );
}

#[test]
fn a_worker_not_ready_within_its_start_timeout_fails_and_restarts() {
    let mut policy = worker(RestartPolicy::Always);
    policy.start_timeout = Some(ms(500));
    let mut h = Harness::new(
        vec![policy, worker(RestartPolicy::Always)],
        Strategy::OneForAll,
        Intensity::new(1, Duration::from_secs(10)),
    );
    h.auto_ready = false;
    assert_eq!(h.start(0), [Start(0)]);
    assert_eq!(h.next_timeout(), Some(500));
    assert_eq!(h.timeout(499), []);
    // Not ready in time: dropped, then a failure restarted after its
    // backoff (100 ms), counted by the intensity.
    assert_eq!(h.timeout(500), [kill([0])]);
    assert_eq!(h.exit(0, ChildExit::Stopped, 500), []);
    assert_eq!(
        exits(&mut h),
        [(0, ChildExit::StartTimeout(ms(500)), Some(100))]
    );
    assert_eq!(h.next_timeout(), Some(600));
    assert_eq!(h.timeout(600), [Start(0)]);
    // Its new deadline runs from the restart; being ready clears it, and
    // the next sibling starts.
    assert_eq!(h.next_timeout(), Some(1_100));
    assert_eq!(h.ready(0, 700), [Start(1)]);
    assert_eq!(h.ready(1, 700), []);
    assert_eq!(h.next_timeout(), None);
    // The start timeout counted towards the intensity (1 in 10 s): the
    // next failure gives up.
    assert_eq!(h.exit(0, Panicked, 800), [Stop([1])]);
    assert_eq!(h.exit(1, ChildExit::Stopped, 800), [Exit(Outcome::GaveUp)]);
}

#[test]
fn a_start_timeout_counts_from_an_in_place_restart() {
    let mut policy = worker(RestartPolicy::Always);
    policy.start_timeout = Some(ms(500));
    let mut h = Harness::one_for_one(vec![policy]);
    h.auto_ready = false;
    h.start(0);
    let now = h.at(100);
    h.m.handle_restarted(
        idx(0),
        Panicked,
        Some("boom".into()),
        ms(50),
        RecordState::default(),
        now,
    );
    assert_eq!(h.drain(), []);
    let reports = h.reports();
    assert!(
        matches!(&reports[..], [Report::Exited { reason: Some(r), .. }] if r == "boom"),
        "{reports:?}"
    );
    // Running again from 150 ms: not ready by 650 ms.
    assert_eq!(h.next_timeout(), Some(650));
    assert_eq!(h.timeout(650), [kill([0])]);
}

#[test]
fn a_panic_message_reaches_the_exit_report() {
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::Always)]);
    h.start(0);
    h.reports();
    let now = h.at(10);
    h.m.handle_exit_because(idx(0), Panicked, Some("boom-42".into()), now);
    let reports = h.reports();
    let (_, kind) = h.m.event(&reports[0]).unwrap();
    assert_eq!(
        kind,
        EventKind::Exited {
            exit: Panicked,
            restart: Some(ms(100)),
            reason: Some("boom-42".into()),
        }
    );
    // The next exit, without a reason, has none.
    h.drain();
    h.timeout(110);
    h.exit(0, Normal, 120);
    let reasons: Vec<Option<String>> = h
        .reports()
        .into_iter()
        .filter_map(|r| match r {
            Report::Exited { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [None]);
}

// ---------------------------------------------------------------------------
// Children started at run time (`with_dynamic`, `handle_add`, `handle_remove`)
// ---------------------------------------------------------------------------

impl Harness {
    /// A machine with these static children that also serves dynamic ones,
    /// at most `max` of them.
    pub(crate) fn dynamic(
        children: Vec<ChildPolicy>,
        strategy: Strategy,
        intensity: Intensity,
        max: Option<u32>,
    ) -> Self {
        let h = Self::new(children, strategy, intensity);
        Self {
            m: h.m.with_dynamic(max, 1),
            ..h
        }
    }

    /// Adds a dynamic child at `t`: its position and id. Its actions are
    /// left to drain.
    pub(crate) fn add(
        &mut self,
        policy: ChildPolicy,
        t: u64,
    ) -> Result<(usize, ChildId), AddError> {
        let now = self.at(t);
        self.m.handle_add(policy, now).map(|(c, id)| (c.get(), id))
    }

    /// Adds a dynamic child at `t`, which must be accepted: its position,
    /// id and the actions that followed.
    pub(crate) fn added(&mut self, policy: ChildPolicy, t: u64) -> (usize, ChildId, Vec<Action>) {
        let (n, id) = self.add(policy, t).expect("the child is added");
        (n, id, self.drain())
    }

    /// Asks at `t` for the removal of the dynamic child `id`. Its actions
    /// are left to drain.
    pub(crate) fn remove(&mut self, id: ChildId, t: u64) -> Result<usize, RemoveError> {
        let now = self.at(t);
        self.m.handle_remove(id, now).map(|c| c.get())
    }
}

/// `Report::Removed` of child `n`, started as `id`.
pub(crate) fn removed(n: usize, id: ChildId) -> Report {
    Report::Removed { child: idx(n), id }
}

/// `Report::Exited` of child `n` stopped on request, not restarted.
pub(crate) fn stopped_for_good(n: usize) -> Report {
    Report::Exited {
        child: idx(n),
        exit: ChildExit::Stopped,
        restart: None,
        reason: None,
    }
}

#[test]
fn an_added_child_starts_at_once_even_behind_queued_static_children() {
    let mut h = Harness::dynamic(always(2), Strategy::OneForAll, Intensity::unlimited(), None);
    h.auto_ready = false;
    assert_eq!(h.start(0), [Start(0)]);
    // Child 1 is queued behind child 0; the dynamic child is not.
    let (n, id, actions) = h.added(worker(RestartPolicy::Always), 5);
    assert_eq!((n, id.get()), (2, 1));
    assert_eq!(actions, [Start(2)]);
    assert_eq!(h.next_timeout(), None);
    // It holds up nobody, and the supervisor's readiness is the static
    // children's.
    assert_eq!(h.ready(0, 10), [Start(1)]);
    assert_eq!(h.ready(1, 20), []);
    assert_eq!(
        h.reports(),
        [
            Report::ChildReady(idx(0)),
            Report::ChildReady(idx(1)),
            Report::Ready
        ]
    );
    assert_eq!(h.ready(2, 30), []);
    assert_eq!(h.reports(), [Report::ChildReady(idx(2))]);
    // Its first start is not a restart.
    assert_eq!(h.m.lease(idx(2)), Some(RecordState::default()));
    assert!(h.m.is_dynamic(idx(2)));
    assert!(!h.m.is_dynamic(idx(1)));
    assert_eq!(h.m.child_id(idx(2)), Some(id));
    assert_eq!(h.m.child_id(idx(0)), None);
    assert_eq!(h.m.find(id), Some(idx(2)));
    assert_eq!(h.m.dynamic_count(), 1);
}

#[test]
fn a_child_added_before_the_start_starts_with_the_others() {
    let mut h = Harness::dynamic(
        always(2),
        Strategy::RestForOne,
        Intensity::unlimited(),
        None,
    );
    h.auto_ready = false;
    let (n, _, actions) = h.added(worker(RestartPolicy::Always), 0);
    assert_eq!((n, actions), (2, vec![]));
    assert_eq!(h.start(1), [Start(0), Start(2)]);
    // Added and removed before the start: never started.
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), None);
    let (_, id, _) = h.added(worker(RestartPolicy::Always), 0);
    assert_eq!(h.remove(id, 0), Ok(0));
    assert_eq!(h.reports(), [removed(0, id)]);
    assert_eq!(h.start(1), []);
    assert_eq!(h.reports(), [Report::Ready]);
}

#[test]
fn ids_are_never_reused_while_slots_are() {
    let mut h = Harness::dynamic(always(1), Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    let mut ids = Vec::new();
    for t in 1..=3 {
        let (n, id, actions) = h.added(worker(RestartPolicy::Always), t);
        assert_eq!(actions, [Start(n)]);
        ids.push((n, id.get()));
    }
    assert_eq!(ids, [(1, 1), (2, 2), (3, 3)]);
    let id = |n: u64| ChildId::new(n);
    h.reports();
    // Remove the children in slots 2 and 1.
    assert_eq!(h.remove(id(2), 10), Ok(2));
    assert_eq!(h.drain(), [Stop([2])]);
    assert_eq!(h.stopped(2, 11), []);
    assert_eq!(h.remove(id(1), 12), Ok(1));
    assert_eq!(h.drain(), [Stop([1])]);
    assert_eq!(h.stopped(1, 13), []);
    assert_eq!(
        h.reports(),
        [
            stopped_for_good(2),
            removed(2, id(2)),
            stopped_for_good(1),
            removed(1, id(1))
        ]
    );
    assert_eq!(
        h.m.child_indices().map(|c| c.get()).collect::<Vec<_>>(),
        [0, 3]
    );
    assert_eq!((h.m.child_id(idx(1)), h.m.find(id(1))), (None, None));
    assert!(h.m.is_dynamic(idx(1)));
    assert_eq!(h.m.leasable().len(), 4);
    assert!(h.m.leasable()[1].is_none());
    // The lowest free slot first, with new ids.
    let (n, new, actions) = h.added(worker(RestartPolicy::Always), 20);
    assert_eq!((n, new.get(), actions), (1, 4, vec![Start(1)]));
    let (n, new, actions) = h.added(worker(RestartPolicy::Always), 21);
    assert_eq!((n, new.get(), actions), (2, 5, vec![Start(2)]));
    let (n, new, _) = h.added(worker(RestartPolicy::Always), 22);
    assert_eq!((n, new.get()), (4, 6));
    assert_eq!(h.m.dynamic_count(), 4);
    // The old ids name nothing, even though their slots are taken.
    assert_eq!(h.remove(id(1), 30), Err(RemoveError::Unknown));
    assert_eq!(h.remove(id(2), 30), Err(RemoveError::Unknown));
    assert_eq!(h.drain(), []);
    assert_eq!(h.m.find(id(4)), Some(idx(1)));
}

#[test]
fn max_children_bounds_the_dynamic_children_that_exist() {
    let mut h = Harness::dynamic(
        always(1),
        Strategy::OneForOne,
        Intensity::unlimited(),
        Some(2),
    );
    h.start(0);
    let (_, first, _) = h.added(worker(RestartPolicy::Always), 1);
    h.added(worker(RestartPolicy::Always), 2);
    let full = h.add(worker(RestartPolicy::Always), 3);
    assert_eq!(full, Err(AddError::Full { max: 2 }));
    assert_eq!(
        AddError::Full { max: 2 }.to_string(),
        "the supervisor is full: it takes at most 2 children at run time"
    );
    assert_eq!(h.drain(), []);
    // A child being removed still counts until it stopped.
    assert_eq!(h.remove(first, 4), Ok(1));
    assert_eq!(h.drain(), [Stop([1])]);
    assert_eq!(
        h.add(worker(RestartPolicy::Always), 5),
        Err(AddError::Full { max: 2 })
    );
    assert_eq!(h.stopped(1, 6), []);
    // Its slot is free once the driver has seen it removed.
    assert_eq!(h.reports().last(), Some(&removed(1, first)));
    let (n, id, actions) = h.added(worker(RestartPolicy::Always), 7);
    assert_eq!((n, id.get(), actions), (1, 3, vec![Start(1)]));
    // Zero: none at all.
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), Some(0));
    h.start(0);
    assert_eq!(
        h.add(worker(RestartPolicy::Always), 1),
        Err(AddError::Full { max: 0 })
    );
}

#[test]
fn a_slot_is_reused_only_once_its_removal_was_reported() {
    // A driver that handles a request before it polls the reports of an
    // exit (as a supervisor process reading its host, then its template's
    // socket, in one turn) must find every report about a slot still about
    // the child that held it: the machine hands the slot out again only
    // after its `Removed` was polled.
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    let (n, first, _) = h.added(worker(RestartPolicy::Never), 1);
    assert_eq!(n, 0);
    h.reports();
    let now = h.at(2);
    h.m.handle_exit(idx(0), ChildExit::Normal, now);
    // Not polled yet: the next child takes another slot.
    let (n, second, actions) = h.added(worker(RestartPolicy::Never), 3);
    assert_eq!((n, actions), (1, vec![Start(1)]));
    assert_eq!(
        h.reports(),
        [
            Report::Exited {
                child: idx(0),
                exit: ChildExit::Normal,
                restart: None,
                reason: None,
            },
            removed(0, first),
            Report::ChildReady(idx(1)),
        ]
    );
    // Polled: slot 0 is free for the next one, with a new id.
    let (n, third, _) = h.added(worker(RestartPolicy::Never), 4);
    assert_eq!(n, 0);
    assert!(first < second && second < third);
}

#[test]
fn ids_start_where_the_driver_says_and_are_never_reused() {
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), None);
    h.m = Machine::new(
        "root".to_owned(),
        [],
        Strategy::OneForOne,
        Intensity::unlimited(),
        Shutdown::Infinity,
        None,
    )
    .with_dynamic(None, 1_000);
    h.start(0);
    let mut seen = BTreeSet::new();
    for t in 1..50 {
        let (n, id, _) = h.added(worker(RestartPolicy::Never), t);
        assert!(id.get() >= 1_000 && seen.insert(id), "{id} given twice");
        let now = h.at(t);
        h.m.handle_exit(idx(n), ChildExit::Normal, now);
        h.reports();
    }
    assert_eq!(h.m.next_id(), 1_049);
}

#[test]
fn no_child_is_added_to_a_supervisor_shutting_down_or_ended() {
    let mut h = Harness::dynamic(always(1), Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    assert_eq!(h.shutdown(10), [Stop([0])]);
    assert_eq!(
        h.add(worker(RestartPolicy::Always), 11),
        Err(AddError::ShuttingDown)
    );
    assert_eq!(h.stopped(0, 12), [Exit(Outcome::Normal)]);
    assert_eq!(
        h.add(worker(RestartPolicy::Always), 13),
        Err(AddError::ShuttingDown)
    );
    assert_eq!(h.drain(), []);
    assert_eq!(
        AddError::ShuttingDown.to_string(),
        "the supervisor is shutting down"
    );
}

#[test]
fn no_child_is_added_to_a_supervisor_without_dynamic_children() {
    let mut h = Harness::one_for_one(always(1));
    h.start(0);
    assert_eq!(
        h.add(worker(RestartPolicy::Always), 1),
        Err(AddError::NotDynamic)
    );
    assert_eq!(h.drain(), []);
    assert_eq!(h.m.dynamic_count(), 0);
    assert!(!h.m.is_dynamic(idx(0)));
    assert_eq!(h.remove(ChildId::new(1), 2), Err(RemoveError::Unknown));
    assert_eq!(
        AddError::NotDynamic.to_string(),
        "the supervisor does not take children at run time"
    );
}

#[test]
fn a_running_child_is_stopped_then_removed() {
    let policy = with_shutdown(worker(RestartPolicy::Always), Shutdown::Timeout(ms(300)));
    let mut h = Harness::dynamic(always(1), Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    let (n, id, _) = h.added(policy, 10);
    h.reports();
    assert_eq!(h.remove(id, 100), Ok(n));
    assert_eq!(h.drain(), [Stop([1])]);
    assert_eq!(h.next_timeout(), Some(400));
    // Asked again while it stops: nothing more.
    assert_eq!(h.remove(id, 150), Ok(n));
    assert_eq!(h.drain(), []);
    assert_eq!(h.reports(), []);
    // It stops in time, whatever it said: stopped, not restarted, removed.
    assert_eq!(h.exit(1, Panicked, 200), []);
    assert_eq!(h.reports(), [stopped_for_good(1), removed(1, id)]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(10_000), []);
    assert_eq!(h.remove(id, 10_001), Err(RemoveError::Unknown));
    let events: Vec<_> = [removed(1, id)]
        .iter()
        .filter_map(|r| h.m.event(r))
        .collect();
    assert_eq!(
        events,
        [(Subject::Child(idx(1)), crate::EventKind::Removed)]
    );
}

#[test]
fn a_child_that_does_not_stop_in_time_is_killed_then_removed() {
    let policy = with_shutdown(worker(RestartPolicy::Always), Shutdown::Timeout(ms(300)));
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    let (n, id, _) = h.added(policy, 10);
    h.reports();
    assert_eq!(h.remove(id, 100), Ok(n));
    assert_eq!(h.drain(), [Stop([0])]);
    assert_eq!(h.next_timeout(), Some(400));
    assert_eq!(h.timeout(399), []);
    assert_eq!(h.timeout(400), [kill([0])]);
    // Dropped: its host is killed if it has not ended a second on.
    assert_eq!(h.next_timeout(), Some(1400));
    assert_eq!(h.exit(0, Signaled(9), 401), []);
    assert_eq!(h.reports(), [stopped_for_good(0), removed(0, id)]);
    // `Shutdown::Kill`: killed at once.
    let (n, id, _) = h.added(
        with_shutdown(worker(RestartPolicy::Always), Shutdown::Kill),
        500,
    );
    h.reports();
    assert_eq!(h.remove(id, 600), Ok(n));
    assert_eq!(h.drain(), [kill([0])]);
    assert_eq!(h.next_timeout(), Some(1600));
    assert_eq!(h.exit(0, Signaled(9), 601), []);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.reports(), [stopped_for_good(0), removed(0, id)]);
}

#[test]
fn a_child_waiting_for_its_restart_is_removed_at_once() {
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    let (n, id, _) = h.added(worker(RestartPolicy::Always), 0);
    assert_eq!(h.exit(n, Panicked, 10), []);
    assert_eq!(h.next_timeout(), Some(110));
    h.reports();
    assert_eq!(h.remove(id, 50), Ok(n));
    // Not running: no stop, no exit, gone.
    assert_eq!(h.drain(), []);
    assert_eq!(h.reports(), [removed(0, id)]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(110), []);
    assert_eq!(h.m.dynamic_count(), 0);
}

#[test]
fn removing_an_unknown_child_fails() {
    let mut h = Harness::dynamic(always(1), Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    assert_eq!(h.remove(ChildId::new(1), 1), Err(RemoveError::Unknown));
    assert_eq!(h.remove(ChildId::new(0), 1), Err(RemoveError::Unknown));
    let (_, id, _) = h.added(worker(RestartPolicy::Always), 2);
    assert_eq!(
        h.remove(ChildId::new(id.get() + 1), 3),
        Err(RemoveError::Unknown)
    );
    assert_eq!(h.drain(), []);
    assert_eq!(
        RemoveError::Unknown.to_string(),
        "no such child: it was never started, or is already gone"
    );
}

#[test]
fn a_dynamic_child_is_restarted_alone_under_one_for_all() {
    let mut h = Harness::dynamic(always(2), Strategy::OneForAll, Intensity::unlimited(), None);
    h.start(0);
    let (n, _, _) = h.added(worker(RestartPolicy::Always), 5);
    h.reports();
    // Its failure stops no sibling; it runs again after its own backoff.
    assert_eq!(h.exit(n, Panicked, 10), []);
    assert_eq!(exits(&mut h), [(2, Panicked, Some(100))]);
    assert_eq!(h.next_timeout(), Some(110));
    assert_eq!(h.timeout(110), [Start(2)]);
    // Its second failure in a row: 200 ms.
    assert_eq!(h.exit(n, Panicked, 120), []);
    assert_eq!(exits(&mut h), [(2, Panicked, Some(200))]);
    assert_eq!(h.timeout(320), [Start(2)]);
    // Under RestForOne alike, even when it is not the last child.
    let mut h = Harness::dynamic(
        always(1),
        Strategy::RestForOne,
        Intensity::unlimited(),
        None,
    );
    h.start(0);
    h.added(worker(RestartPolicy::Always), 0);
    h.added(worker(RestartPolicy::Always), 0);
    assert_eq!(h.exit(1, Panicked, 10), []);
    assert_eq!(h.timeout(110), [Start(1)]);
}

#[test]
fn a_static_group_restart_leaves_dynamic_children_running() {
    let mut h = Harness::dynamic(always(2), Strategy::OneForAll, Intensity::unlimited(), None);
    h.start(0);
    h.added(worker(RestartPolicy::Always), 1);
    // Child 0 fails: its group is the static children alone.
    assert_eq!(h.exit(0, Panicked, 10), [Stop([1])]);
    assert_eq!(h.stopped(1, 20), []);
    assert_eq!(h.next_timeout(), Some(110));
    assert_eq!(h.timeout(110), [Start(0), Start(1)]);
    // The dynamic child ran all along: its exit is its own.
    assert_eq!(h.exit(2, Normal, 120), []);
    assert_eq!(h.timeout(220), [Start(2)]);
}

#[test]
fn a_removal_and_a_group_restart_do_not_wait_for_each_other() {
    let mut h = Harness::dynamic(always(3), Strategy::OneForAll, Intensity::unlimited(), None);
    h.start(0);
    let (_, a, _) = h.added(worker(RestartPolicy::Always), 1);
    let (_, b, _) = h.added(worker(RestartPolicy::Always), 1);
    // A group restart is under way: a removal stops its child at once.
    assert_eq!(h.exit(0, Panicked, 10), [Stop([2])]);
    assert_eq!(h.remove(a, 11), Ok(3));
    assert_eq!(h.drain(), [Stop([3])]);
    // The removal under way does not hold up the group's next stop.
    assert_eq!(h.stopped(2, 12), [Stop([1])]);
    assert_eq!(h.remove(b, 13), Ok(4));
    assert_eq!(h.drain(), [Stop([4])]);
    assert_eq!(h.stopped(1, 14), []);
    assert_eq!(h.timeout(110), [Start(0), Start(1), Start(2)]);
    h.reports();
    assert_eq!(h.stopped(4, 120), []);
    assert_eq!(h.stopped(3, 130), []);
    assert_eq!(
        h.reports(),
        [
            stopped_for_good(4),
            removed(4, b),
            stopped_for_good(3),
            removed(3, a)
        ]
    );
}

#[test]
fn dynamic_restarts_count_towards_the_intensity_and_giving_up_stops_all() {
    let mut h = Harness::dynamic(
        always(1),
        Strategy::OneForAll,
        Intensity::new(1, Duration::from_secs(1)),
        None,
    );
    h.start(0);
    h.added(worker(RestartPolicy::Always), 1);
    h.added(worker(RestartPolicy::Always), 1);
    h.reports();
    assert_eq!(h.exit(2, Panicked, 10), []);
    assert_eq!(h.timeout(110), [Start(2)]);
    // The second restart within 1 s: every child still running stops, in
    // reverse order, dynamic ones included.
    assert_eq!(h.exit(2, Panicked, 200), [Stop([1, 0])]);
    assert_eq!(h.stopped(1, 201), []);
    assert_eq!(h.stopped(0, 202), [Exit(Outcome::GaveUp)]);
    let reports = h.reports();
    assert!(reports.contains(&Report::Stopping(Outcome::GaveUp)));
    // Stopped by giving up: not removed.
    assert!(!reports.iter().any(|r| matches!(r, Report::Removed { .. })));
}

#[test]
fn a_dynamic_supervisor_with_no_child_left_runs_until_shut_down() {
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), None);
    // No static child: ready at once, and no exit.
    assert_eq!(h.start(0), []);
    assert_eq!(h.reports(), [Report::Ready]);
    let (n, id, _) = h.added(worker(RestartPolicy::Never), 10);
    h.reports();
    assert_eq!(h.exit(n, Normal, 20), []);
    assert_eq!(
        h.reports(),
        [
            Report::Exited {
                child: idx(0),
                exit: Normal,
                restart: None,
                reason: None
            },
            removed(0, id)
        ]
    );
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(10_000), []);
    // Static children done for good neither.
    let mut h = Harness::dynamic(
        vec![worker(RestartPolicy::Never)],
        Strategy::OneForOne,
        Intensity::unlimited(),
        None,
    );
    h.start(0);
    assert_eq!(h.exit(0, Normal, 10), []);
    assert_eq!(h.shutdown(20), [Exit(Outcome::Normal)]);
}

#[test]
fn a_dynamic_child_done_by_its_policy_is_removed() {
    let mut h = Harness::dynamic(always(1), Strategy::OneForAll, Intensity::unlimited(), None);
    h.start(0);
    let (_, never, _) = h.added(worker(RestartPolicy::Never), 1);
    let (_, on_failure, _) = h.added(worker(RestartPolicy::OnFailure), 1);
    let (_, sup, _) = h.added(supervisor(RestartPolicy::Always), 1);
    h.reports();
    assert_eq!(h.exit(1, Panicked, 10), []);
    assert_eq!(h.exit(2, Normal, 11), []);
    // A child supervisor whose work is done.
    assert_eq!(h.exit(3, Normal, 12), []);
    assert_eq!(
        h.reports(),
        [
            Report::Exited {
                child: idx(1),
                exit: Panicked,
                restart: None,
                reason: None
            },
            removed(1, never),
            Report::Exited {
                child: idx(2),
                exit: Normal,
                restart: None,
                reason: None
            },
            removed(2, on_failure),
            Report::Exited {
                child: idx(3),
                exit: Normal,
                restart: None,
                reason: None
            },
            removed(3, sup),
        ]
    );
    assert_eq!(h.m.dynamic_count(), 0);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn shutdown_stops_dynamic_children_in_reverse_order_with_the_others() {
    let mut h = Harness::dynamic(
        vec![
            worker(RestartPolicy::Always),
            supervisor(RestartPolicy::Always),
        ],
        Strategy::OneForOne,
        Intensity::unlimited(),
        None,
    );
    h.start(0);
    let (_, a, _) = h.added(worker(RestartPolicy::Always), 1);
    let (_, b, _) = h.added(worker(RestartPolicy::Always), 1);
    h.reports();
    assert_eq!(h.shutdown(10), [Stop([3, 2])]);
    // A removal asked during the shutdown is part of it, and reported.
    assert_eq!(h.remove(b, 11), Ok(3));
    assert_eq!(h.drain(), []);
    assert_eq!(h.stopped(3, 12), []);
    assert_eq!(h.stopped(2, 13), [Stop([1])]);
    assert_eq!(h.stopped(1, 14), [Stop([0])]);
    assert_eq!(h.stopped(0, 15), [Exit(Outcome::Normal)]);
    let reports = h.reports();
    let gone: Vec<&Report> = reports
        .iter()
        .filter(|r| matches!(r, Report::Removed { .. }))
        .collect();
    assert_eq!(gone, [&removed(3, b)]);
    assert_eq!(h.remove(a, 20), Err(RemoveError::Unknown));
}

#[test]
fn a_removal_asked_in_a_shutdown_of_a_stopped_child_is_answered_at_once() {
    let mut h = Harness::dynamic(always(1), Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    let (_, id, _) = h.added(supervisor(RestartPolicy::Always), 1);
    assert_eq!(h.shutdown(10), [Stop([1])]);
    assert_eq!(h.stopped(1, 11), [Stop([0])]);
    h.reports();
    assert_eq!(h.remove(id, 12), Ok(1));
    assert_eq!(h.drain(), []);
    assert_eq!(h.reports(), [removed(1, id)]);
    assert_eq!(h.remove(id, 13), Err(RemoveError::Unknown));
    assert_eq!(h.stopped(0, 14), [Exit(Outcome::Normal)]);
}

#[test]
fn dynamic_workers_are_leased_under_every_strategy() {
    let mut h = Harness::dynamic(
        always(1),
        Strategy::OneForAll,
        Intensity::new(5, Duration::from_secs(1)),
        None,
    );
    h.start(0);
    let (w, _, _) = h.added(worker(RestartPolicy::Always), 1);
    let (s, _, _) = h.added(supervisor(RestartPolicy::Always), 1);
    let leasable = h.m.leasable();
    assert_eq!(leasable.len(), 3);
    assert!(leasable[0].is_none(), "a static worker under OneForAll");
    assert!(leasable[w].is_some());
    assert!(leasable[s].is_none(), "a child supervisor");
    assert_eq!(h.m.lease(idx(0)), None);
    assert_eq!(h.m.lease(idx(w)), Some(RecordState::default()));
    assert_eq!(h.m.lease(idx(s)), None);
    // Its host restarts it in place: counted, and the grant shrinks.
    let state = RecordState {
        restarts: 1,
        ..RecordState::default()
    };
    let now = h.at(10);
    h.m.handle_restarted(idx(w), Panicked, None, ms(100), state, now);
    assert_eq!(h.drain(), []);
    assert_eq!(h.budget(10), Some(4));
    assert_eq!(h.m.lease(idx(w)), Some(state));
    // A restart decided here: the host holding a lease learns its smaller
    // budget, even under OneForAll.
    assert_eq!(h.grants, 0);
    assert_eq!(h.exit(0, Panicked, 20), []);
    assert_eq!(h.grants, 1);
    assert_eq!(h.budget(20), Some(3));
}

#[test]
fn a_child_dropped_for_its_start_timeout_and_removed_meanwhile_is_not_restarted() {
    let mut policy = worker(RestartPolicy::Always);
    policy.start_timeout = Some(ms(500));
    let mut h = Harness::dynamic(always(2), Strategy::OneForAll, Intensity::unlimited(), None);
    h.start(0);
    h.auto_ready = false;
    let (n, id, actions) = h.added(policy, 0);
    assert_eq!(actions, [Start(2)]);
    assert_eq!(h.next_timeout(), Some(500));
    // Not ready in time: dropped, and restarted alone after its backoff.
    assert_eq!(h.timeout(500), [kill([2])]);
    assert_eq!(h.exit(n, ChildExit::Stopped, 510), []);
    h.reports();
    assert_eq!(h.next_timeout(), Some(610));
    assert_eq!(h.timeout(610), [Start(2)]);
    // Dropped again, and its removal asked before its exit: the exit ends
    // it, with no restart.
    assert_eq!(h.timeout(1_110), [kill([2])]);
    assert_eq!(h.remove(id, 1_111), Ok(n));
    assert_eq!(h.drain(), []);
    assert_eq!(h.exit(n, ChildExit::Stopped, 1_120), []);
    assert_eq!(h.reports(), [stopped_for_good(2), removed(2, id)]);
    assert_eq!(h.next_timeout(), None);
}

// ---------------------------------------------------------------------------
// Deadlines of processes: the watchdog, a drop's grace, the host's exit
// ---------------------------------------------------------------------------

impl Harness {
    /// A `OneForOne` machine whose supervisor has `shutdown` and
    /// `watchdog`.
    pub(crate) fn watched(
        children: Vec<ChildPolicy>,
        shutdown: Shutdown,
        watchdog: Option<Duration>,
    ) -> Self {
        let mut h = Self::one_for_one(vec![]);
        h.m = Machine::new(
            "root".to_owned(),
            children,
            Strategy::OneForOne,
            Intensity::unlimited(),
            shutdown,
            watchdog,
        );
        h
    }

    pub(crate) fn host_started(&mut self, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_host_started(now);
        self.drain()
    }

    /// The host ended with `exit` at `t`, and each of `workers` with it:
    /// the exit the machine gave them, and the actions.
    pub(crate) fn host_exit(
        &mut self,
        exit: ChildExit,
        workers: &[usize],
        t: u64,
    ) -> (ChildExit, Vec<Action>) {
        let now = self.at(t);
        let exit = self.m.handle_host_exit(exit, now);
        for &n in workers {
            self.m.handle_exit(idx(n), exit, now);
        }
        (exit, self.drain())
    }

    pub(crate) fn alive(&mut self, watched: Watched, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_alive(watched, now);
        self.drain()
    }

    pub(crate) fn reprieve(&mut self, watched: Watched, why: Reprieve, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_reprieve(watched, why, now);
        self.drain()
    }

    pub(crate) fn cut(&mut self, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_host_cut(now);
        self.drain()
    }
}

#[allow(non_snake_case)]
pub(crate) fn KillHost(why: HostKill) -> Action {
    Action::KillHost(why)
}

/// `Report::Exited` of child `n`, which hung, restarted after `ms`.
pub(crate) fn hung(n: usize, restart: Option<u64>) -> Report {
    Report::Exited {
        child: idx(n),
        exit: ChildExit::Hung,
        restart: restart.map(ms),
        reason: None,
    }
}

#[test]
fn a_silent_host_is_killed_as_hung_a_period_after_its_last_sign_of_life() {
    let mut h = Harness::watched(
        vec![worker(RestartPolicy::Always), worker(RestartPolicy::Never)],
        Shutdown::Infinity,
        Some(ms(200)),
    );
    assert_eq!(h.start(0), [Start(0), Start(1)]);
    // No host yet: nothing to watch.
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.m.alive_by(Watched::Host), None);
    // Forked at 5: two periods for its start-up.
    assert_eq!(h.host_started(5), []);
    assert_eq!(h.next_timeout(), Some(405));
    assert_eq!(h.alive(Watched::Host, 10), []);
    assert_eq!(h.next_timeout(), Some(210));
    assert_eq!(h.alive(Watched::Host, 60), []);
    assert_eq!(h.next_timeout(), Some(260));
    assert_eq!(h.timeout(259), []);
    assert_eq!(h.timeout(260), [KillHost(HostKill::Hung)]);
    // Once: nothing more is due, a late sign of life changes nothing.
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.alive(Watched::Host, 261), []);
    assert_eq!(h.timeout(1000), []);
    h.reports();
    // Its workers exit hung, whatever killed it: restarted by their policy.
    let (exit, actions) = h.host_exit(Signaled(9), &[0, 1], 1001);
    assert_eq!((exit, actions), (ChildExit::Hung, vec![]));
    assert_eq!(h.reports(), [hung(0, Some(100)), hung(1, None)]);
    assert_eq!(h.next_timeout(), Some(1101));
    assert_eq!(h.timeout(1101), [Start(0)]);
    // A new host is watched from its own start.
    assert_eq!(h.host_started(1102), []);
    assert_eq!(h.next_timeout(), Some(1502));
    // One that ends by itself (not killed) gives its workers its exit.
    let (exit, _) = h.host_exit(Signaled(6), &[0], 1200);
    assert_eq!(exit, Signaled(6));
    assert_eq!(h.next_timeout(), Some(1400));
}

#[test]
fn a_starved_process_gets_more_time_for_as_long_as_it_is() {
    let mut h = Harness::watched(
        vec![worker(RestartPolicy::Always)],
        Shutdown::Infinity,
        Some(ms(200)),
    );
    h.start(0);
    h.host_started(0);
    h.alive(Watched::Host, 0);
    assert_eq!(h.next_timeout(), Some(200));
    // Starved, exiting, looked at late: half a period more each time.
    assert_eq!(h.reprieve(Watched::Host, Reprieve::Starved, 200), []);
    assert_eq!(h.next_timeout(), Some(300));
    assert_eq!(h.m.alive_by(Watched::Host), Some(h.base + ms(300)));
    assert_eq!(h.reprieve(Watched::Host, Reprieve::Starved, 300), []);
    assert_eq!(h.reprieve(Watched::Host, Reprieve::LookedLate, 400), []);
    assert_eq!(h.reprieve(Watched::Host, Reprieve::Exiting, 500), []);
    assert_eq!(h.next_timeout(), Some(600));
    // A window too short to judge: a quarter period.
    assert_eq!(h.reprieve(Watched::Host, Reprieve::ShortWindow, 600), []);
    assert_eq!(h.next_timeout(), Some(650));
    assert_eq!(h.timeout(649), []);
    // It answers: a period from then.
    assert_eq!(h.alive(Watched::Host, 640), []);
    assert_eq!(h.next_timeout(), Some(840));
    assert_eq!(h.timeout(840), [KillHost(HostKill::Hung)]);
    // A reprieve after the kill changes nothing.
    assert_eq!(h.reprieve(Watched::Host, Reprieve::Starved, 841), []);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn an_unwatched_supervisor_has_no_liveness_deadline() {
    let mut h = Harness::watched(
        vec![
            worker(RestartPolicy::Always),
            supervisor(RestartPolicy::Always),
        ],
        Shutdown::Infinity,
        None,
    );
    h.start(0);
    h.host_started(0);
    assert_eq!(h.alive(Watched::Host, 10), []);
    assert_eq!(
        h.reprieve(Watched::Child(idx(1)), Reprieve::Starved, 10),
        []
    );
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.m.alive_by(Watched::Host), None);
    assert_eq!(h.m.alive_by(Watched::Child(idx(1))), None);
    assert_eq!(h.m.watchdog_of(idx(1)), None);
}

#[test]
fn a_silent_child_supervisor_is_killed_and_exits_hung() {
    let own = ChildPolicy {
        watchdog: Some(ms(100)),
        ..supervisor(RestartPolicy::Always)
    };
    let mut h = Harness::watched(
        vec![
            own,
            supervisor(RestartPolicy::Always),
            worker(RestartPolicy::Always),
        ],
        Shutdown::Infinity,
        Some(ms(300)),
    );
    assert_eq!(h.m.watchdog_of(idx(0)), Some(ms(100)));
    assert_eq!(h.m.watchdog_of(idx(1)), Some(ms(300)));
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    h.reports();
    // Two periods for their start-up: 200 (its own), 600 (inherited).
    assert_eq!(h.next_timeout(), Some(200));
    // Forked late (a starved supervisor): from then on.
    let forked = h.at(30);
    h.m.handle_forked(idx(0), forked);
    assert_eq!(h.next_timeout(), Some(230));
    // A worker is not watched: nothing moves.
    h.m.handle_forked(idx(2), forked);
    assert_eq!(h.next_timeout(), Some(230));
    assert_eq!(h.alive(Watched::Child(idx(0)), 50), []);
    assert_eq!(h.next_timeout(), Some(150));
    assert_eq!(h.timeout(150), [kill([0])]);
    // Killed once; it exits hung whatever ended it, and is restarted.
    assert_eq!(h.timeout(151), []);
    assert_eq!(h.exit(0, Signaled(9), 155), []);
    assert_eq!(h.reports(), [hung(0, Some(100))]);
    assert_eq!(h.next_timeout(), Some(255));
    assert_eq!(h.timeout(255), [Start(0)]);
    h.reports();
    // Its new run is watched from its start; the other still from 0.
    assert_eq!(h.m.alive_by(Watched::Child(idx(0))), Some(h.base + ms(455)));
    assert_eq!(h.next_timeout(), Some(455));
    // Starved: half its period more.
    assert_eq!(
        h.reprieve(Watched::Child(idx(0)), Reprieve::Starved, 455),
        []
    );
    assert_eq!(h.next_timeout(), Some(505));
    assert_eq!(h.alive(Watched::Child(idx(0)), 501), []);
    assert_eq!(h.next_timeout(), Some(600));
    assert_eq!(h.timeout(600), [kill([1])]);
    // An exit of its own after the kill is still the hang.
    assert_eq!(h.exit(1, Normal, 601), []);
    assert_eq!(h.reports(), [hung(1, Some(100))]);
}

#[test]
fn a_child_supervisor_that_stops_is_watched_until_it_is_killed() {
    let mut h = Harness::watched(
        vec![supervisor(RestartPolicy::Always)],
        Shutdown::Infinity,
        Some(ms(100)),
    );
    h.start(0);
    h.alive(Watched::Child(idx(0)), 0);
    assert_eq!(h.shutdown(50), [Stop([0])]);
    // Its stop has no deadline (`Infinity`), its silence has.
    assert_eq!(h.next_timeout(), Some(100));
    assert_eq!(h.timeout(100), [kill([0])]);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.exit(0, Signaled(9), 101), [Exit(Outcome::Normal)]);
    assert_eq!(
        h.reports()
            .into_iter()
            .filter(|r| matches!(r, Report::Exited { .. }))
            .collect::<Vec<_>>(),
        [Report::Exited {
            child: idx(0),
            exit: ChildExit::Hung,
            restart: None,
            reason: None,
        }]
    );
}

#[test]
fn a_dropped_worker_that_does_not_end_gets_its_host_killed_after_the_drop_grace() {
    let policy = with_shutdown(worker(RestartPolicy::Always), Shutdown::Timeout(ms(300)));
    let mut h = Harness::watched(vec![policy; 2], Shutdown::Infinity, None);
    h.start(0);
    h.host_started(0);
    assert_eq!(h.shutdown(100), [Stop([1, 0])]);
    assert_eq!(h.exit(1, Normal, 150), []);
    assert_eq!(h.next_timeout(), Some(400));
    assert_eq!(h.timeout(400), [kill([0])]);
    // Dropped: its host is killed if it has not ended a second on.
    assert_eq!(h.next_timeout(), Some(1400));
    assert_eq!(h.timeout(1399), []);
    assert_eq!(
        h.timeout(1400),
        [KillHost(HostKill::DropOverdue(vec![idx(0)]))]
    );
    assert_eq!(h.next_timeout(), None);
    let (exit, actions) = h.host_exit(Signaled(9), &[0], 1401);
    assert_eq!(exit, Signaled(9));
    // Its exit is its stop's; the host is gone: nothing to wait for.
    assert_eq!(actions, [Exit(Outcome::Normal)]);
    assert_eq!(h.next_timeout(), None);

    // One that ends within its grace: no kill.
    let mut h = Harness::watched(vec![policy], Shutdown::Infinity, None);
    h.start(0);
    h.host_started(0);
    h.shutdown(0);
    assert_eq!(h.timeout(300), [kill([0])]);
    assert_eq!(h.exit(0, Normal, 1299), [Exit(Outcome::Normal)]);
    assert_eq!(h.next_timeout(), Some(1299 + 5000));
    // A worker dropped with no host to kill (the driver has none).
    let mut h = Harness::watched(vec![policy], Shutdown::Infinity, None);
    h.start(0);
    h.shutdown(0);
    assert_eq!(h.timeout(300), [kill([0])]);
    assert_eq!(h.timeout(1300), []);
}

#[test]
fn a_worker_dropped_at_its_start_timeout_or_at_once_has_the_same_grace() {
    let late = ChildPolicy {
        start_timeout: Some(ms(100)),
        ..worker(RestartPolicy::Always)
    };
    let at_once = with_shutdown(worker(RestartPolicy::Always), Shutdown::Kill);
    let mut h = Harness::watched(vec![late, at_once], Shutdown::Infinity, None);
    h.auto_ready = false;
    assert_eq!(h.start(0), [Start(0), Start(1)]);
    h.host_started(0);
    assert_eq!(h.timeout(100), [kill([0])]);
    assert_eq!(h.next_timeout(), Some(1100));
    assert_eq!(
        h.timeout(1100),
        [KillHost(HostKill::DropOverdue(vec![idx(0)]))]
    );
    let (_, actions) = h.host_exit(Signaled(9), &[0, 1], 1101);
    assert_eq!(actions, []);
    h.reports();
    // Both run again (child 0 after its start timeout, 1 after the host).
    assert_eq!(h.timeout(1201), [Start(0), Start(1)]);
    h.host_started(1201);
    assert_eq!(h.ready(1, 1201), []);
    h.ready(0, 1202);
    assert_eq!(h.shutdown(1300), [kill([1]), Stop([0])]);
    assert_eq!(h.next_timeout(), Some(2300));
}

#[test]
fn the_host_has_the_supervisors_shutdown_time_to_exit_after_it_ended() {
    for (shutdown, grace) in [
        (Shutdown::Timeout(ms(300)), 300),
        (Shutdown::Infinity, 5_000),
        (Shutdown::Kill, 0),
    ] {
        let mut h = Harness::watched(vec![worker(RestartPolicy::Never)], shutdown, None);
        h.start(0);
        h.host_started(0);
        assert_eq!(h.exit(0, Normal, 10), [Exit(Outcome::Normal)]);
        assert_eq!(h.next_timeout(), Some(10 + grace), "{shutdown:?}");
        if grace > 0 {
            assert_eq!(h.timeout(10 + grace - 1), [], "{shutdown:?}");
        }
        assert_eq!(h.timeout(10 + grace), [KillHost(HostKill::ExitOverdue)]);
        assert_eq!(h.next_timeout(), None);
        assert_eq!(h.host_exit(Signaled(9), &[], 11 + grace).0, Signaled(9));
    }
    // A host that exits in time is not killed; no host, no deadline.
    let mut h = Harness::watched(vec![worker(RestartPolicy::Never)], Shutdown::Infinity, None);
    h.start(0);
    h.host_started(0);
    h.exit(0, Normal, 10);
    h.host_exit(ChildExit::Stopped, &[], 20);
    assert_eq!(h.next_timeout(), None);
    assert_eq!(h.timeout(5_010), []);
    let mut h = Harness::watched(vec![worker(RestartPolicy::Never)], Shutdown::Infinity, None);
    h.start(0);
    assert_eq!(h.exit(0, Normal, 10), [Exit(Outcome::Normal)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn a_hung_host_after_the_end_is_killed_as_hung_first() {
    // The supervisor ended; the host neither exits nor shows life: its
    // watchdog deadline comes first.
    let mut h = Harness::watched(
        vec![worker(RestartPolicy::Never)],
        Shutdown::Infinity,
        Some(ms(200)),
    );
    h.start(0);
    h.host_started(0);
    h.alive(Watched::Host, 0);
    assert_eq!(h.exit(0, Normal, 10), [Exit(Outcome::Normal)]);
    assert_eq!(h.next_timeout(), Some(200));
    assert_eq!(h.timeout(200), [KillHost(HostKill::Hung)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn a_host_whose_channel_is_cut_is_killed_unless_it_exits_in_time() {
    let mut h = Harness::watched(
        vec![worker(RestartPolicy::Always)],
        Shutdown::Infinity,
        None,
    );
    h.start(0);
    h.host_started(0);
    assert_eq!(h.cut(50), []);
    // Once is enough: a second finding does not move it.
    assert_eq!(h.cut(60), []);
    assert_eq!(h.next_timeout(), Some(150));
    assert_eq!(h.timeout(150), [KillHost(HostKill::Cut)]);
    let (exit, _) = h.host_exit(Signaled(9), &[0], 151);
    assert_eq!(exit, Signaled(9));
    // Its worker runs again, in a new host that is not cut.
    assert_eq!(h.timeout(251), [Start(0)]);
    h.host_started(251);
    assert_eq!(h.next_timeout(), None);
    // Cut, then exits within the grace: not killed.
    h.cut(300);
    h.host_exit(Signaled(9), &[0], 350);
    assert_eq!(h.timeout(400), []);
}

#[test]
fn a_kill_decided_before_the_host_ended_is_taken_back() {
    let mut h = Harness::watched(
        vec![worker(RestartPolicy::Always)],
        Shutdown::Infinity,
        Some(ms(100)),
    );
    h.start(0);
    h.host_started(0);
    let now = h.at(200);
    h.m.handle_timeout(now);
    // The host died before the driver carried the kill out.
    let exit = h.m.handle_host_exit(Signaled(6), now);
    assert_eq!(exit, ChildExit::Hung);
    assert_eq!(h.drain(), []);
}

#[test]
fn a_shutdown_awaits_a_child_killed_as_hung_without_asking_it_to_stop() {
    // Found by the model: a child supervisor killed as hung was asked to
    // stop by a shutdown that came before its exit, and read as stopped.
    let mut h = Harness::watched(
        vec![
            supervisor(RestartPolicy::Always),
            supervisor(RestartPolicy::Always),
        ],
        Shutdown::Infinity,
        Some(ms(20)),
    );
    h.start(0);
    h.alive(Watched::Child(idx(0)), 0);
    h.alive(Watched::Child(idx(1)), 30);
    assert_eq!(h.timeout(20), [kill([0])]);
    h.reports();
    // Its kill is under way, as a stop: the next stop waits for its exit,
    // which is its hang; it is never asked to stop.
    assert_eq!(h.shutdown(21), []);
    assert_eq!(h.exit(0, Signaled(9), 22), [Stop([1])]);
    assert_eq!(h.exit(1, Signaled(SIGTERM), 23), [Exit(Outcome::Normal)]);
    let exits: Vec<Report> = h
        .reports()
        .into_iter()
        .filter(|r| matches!(r, Report::Exited { .. }))
        .collect();
    assert_eq!(exits, [hung(0, None), stopped_for_good(1)]);
}

mod operator;
mod orders;
