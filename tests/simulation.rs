//! Exact timelines of whole trees on virtual time, through the public API
//! only: `run_simulated` on a `FakeTimer`, no processes, no sleeps.
//!
//! Every worker here is a [`Probe`]: it follows a script (one [`Run`] per
//! start, the last one repeating) and writes what happens to a shared
//! [`Log`], stamped with `timer.elapsed()` in ms: `start` when `init()` is
//! called, `exit` when its future returns, `panic` when it panics, and
//! `dropped` when its supervisor drops it before it ended.
//!
//! Simultaneous events of different supervisors (e.g. a nested supervisor's
//! workers and its parent's) are compared per worker with [`Log::of`]; the
//! full order is asserted where it is fixed by causality or by start order.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use supertrees::testing::{run_simulated, FakeTimer};
use supertrees::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What a probe does in one run.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// Returns at once (a normal exit).
    Exit,
    /// Panics at once (a failure).
    Panic,
    /// Sleeps on the fake timer for this many ms, then returns.
    SleepExit(u64),
    /// Sleeps on the fake timer for this many ms, then panics.
    SleepPanic(u64),
    /// Awaits a future that never completes and that nothing wakes.
    Pending,
    /// Sleeps the first ms, logs `ready` and calls `ready()`, sleeps the
    /// second ms, then returns.
    ReadyThenExit(u64, u64),
    /// Sleeps on the fake timer for this many ms, logs `hang`, then hangs
    /// its worker host ([`supertrees::testing::hang`]).
    SleepHang(u64),
}

/// The shared timeline: `"<ms> <name> <event>"`.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, timer: &FakeTimer, name: &str, event: &str) {
        let t = timer.elapsed().as_millis();
        let mut events = self.0.lock().unwrap();
        // Bounded, so that a runaway tree does not eat the memory while the
        // watchdog in `simulate` waits.
        if events.len() < 10_000 {
            events.push(format!("{t} {name} {event}"));
        }
    }

    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The events of `name` alone: `"<ms> <event>"`.
    fn of(&self, name: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| {
                let (t, rest) = e.split_once(' ')?;
                let (n, event) = rest.split_once(' ')?;
                (n == name).then(|| format!("{t} {event}"))
            })
            .collect()
    }

    /// The times (ms) at which `name` started.
    fn starts(&self, name: &str) -> Vec<u64> {
        self.events()
            .iter()
            .filter_map(|e| {
                let mut parts = e.split(' ');
                let t = parts.next()?.parse().ok()?;
                (parts.next()? == name && parts.next()? == "start").then_some(t)
            })
            .collect()
    }
}

/// Logs `dropped` unless disarmed: the future was dropped before it ended.
struct Guard {
    name: &'static str,
    timer: FakeTimer,
    log: Log,
    armed: bool,
}

impl Guard {
    fn end(mut self, event: &str) {
        self.armed = false;
        self.log.push(&self.timer, self.name, event);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            self.log.push(&self.timer, self.name, "dropped");
        }
    }
}

struct Probe {
    name: &'static str,
    timer: FakeTimer,
    log: Log,
    script: Vec<Run>,
    runs: AtomicUsize,
    restart: RestartPolicy,
    backoff: BackoffPolicy,
    readiness: Readiness,
}

impl Probe {
    /// `Always`, 100 ms → 800 ms, ×2, reset after 10 s.
    fn new(name: &'static str, timer: &FakeTimer, log: &Log, script: &[Run]) -> Self {
        assert!(!script.is_empty());
        Self {
            name,
            timer: timer.clone(),
            log: log.clone(),
            script: script.to_vec(),
            runs: AtomicUsize::new(0),
            restart: RestartPolicy::Always,
            backoff: BackoffPolicy::new(ms(100), ms(800), secs(10), 2.0),
            readiness: Readiness::OnStart,
        }
    }

    /// Ready only once its run calls `ready()`.
    fn notify(mut self) -> Self {
        self.readiness = Readiness::Notify;
        self
    }

    fn restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }

    fn backoff(mut self, backoff: BackoffPolicy) -> Self {
        self.backoff = backoff;
        self
    }
}

impl Restartable for Probe {
    fn restart_policy(&self) -> RestartPolicy {
        self.restart
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        self.backoff
    }
}

impl Worker for Probe {
    fn readiness(&self) -> Readiness {
        self.readiness
    }

    fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        let step = self.script[run.min(self.script.len() - 1)];
        self.log.push(&self.timer, self.name, "start");
        let guard = Guard {
            name: self.name,
            timer: self.timer.clone(),
            log: self.log.clone(),
            armed: true,
        };
        let timer = self.timer.clone();
        let name = self.name;
        Box::pin(async move {
            let panics = match step {
                Run::Exit => false,
                Run::Panic => true,
                Run::SleepExit(t) => {
                    timer.sleep(ms(t)).await;
                    false
                }
                Run::SleepPanic(t) => {
                    timer.sleep(ms(t)).await;
                    true
                }
                Run::Pending => {
                    futures::future::pending::<()>().await;
                    false
                }
                Run::SleepHang(t) => {
                    timer.sleep(ms(t)).await;
                    guard.log.push(&timer, name, "hang");
                    supertrees::testing::hang().await;
                    false
                }
                Run::ReadyThenExit(ready, exit) => {
                    timer.sleep(ms(ready)).await;
                    guard.log.push(&timer, name, "ready");
                    assert!(supertrees::ready());
                    timer.sleep(ms(exit)).await;
                    false
                }
            };
            if panics {
                guard.end("panic");
                panic!("probe {name} fails on purpose");
            }
            guard.end("exit");
        })
    }
}

/// [`run_simulated`] on its own thread, so that a regression that makes a
/// tree restart forever (which takes no virtual time to notice, but never
/// ends) fails the test instead of hanging it.
fn simulate(tree: Supertree, timer: &FakeTimer) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel();
    let timer = timer.clone();
    std::thread::spawn(move || {
        let _ = tx.send(run_simulated(tree, timer));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the simulation did not end (within 20 s of real time)")
}

fn assert_intensity_exceeded(result: Result<(), Error>, max: u32, window: Duration) {
    match result {
        Err(Error::IntensityExceeded {
            path,
            max_restarts,
            within,
            ..
        }) => {
            assert_eq!(path, "root");
            assert_eq!((max_restarts, within), (max, window));
        }
        other => panic!("expected IntensityExceeded at the root, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Restart policies
// ---------------------------------------------------------------------------

#[test]
fn always_restarts_until_the_intensity_is_exceeded() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let constant = BackoffPolicy::new(ms(10), ms(10), secs(10), 1.0);
    let tree = Supertree::new()
        .with_intensity(Intensity::new(3, secs(1)))
        .add_worker(Probe::new("a", &timer, &log, &[Run::Exit, Run::Panic]).backoff(constant));

    assert_intensity_exceeded(simulate(tree, &timer), 3, secs(1));
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 a exit",
            "10 a start",
            "10 a panic",
            "20 a start",
            "20 a panic",
            "30 a start",
            "30 a panic",
        ]
    );
    assert_eq!(timer.elapsed(), ms(30));
}

#[test]
fn once_runs_exactly_twice() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .add_worker(Probe::new("a", &timer, &log, &[Run::Exit]).restart(RestartPolicy::Once))
        .add_worker(
            Probe::new("b", &timer, &log, &[Run::SleepPanic(50)]).restart(RestartPolicy::Once),
        );

    simulate(tree, &timer).unwrap();
    assert_eq!(log.starts("a"), [0, 100]);
    assert_eq!(log.starts("b"), [0, 150]);
    assert_eq!(timer.elapsed(), ms(200));
}

#[test]
fn never_runs_once() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .add_worker(Probe::new("a", &timer, &log, &[Run::Panic]).restart(RestartPolicy::Never))
        .add_worker(
            Probe::new("b", &timer, &log, &[Run::SleepExit(70)]).restart(RestartPolicy::Never),
        );

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        ["0 a start", "0 b start", "0 a panic", "70 b exit"]
    );
    assert_eq!(timer.elapsed(), ms(70));
}

#[test]
fn on_failure_restarts_panics_but_not_normal_exits() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::SleepExit(30)]).restart(RestartPolicy::OnFailure),
        )
        .add_worker(
            Probe::new(
                "b",
                &timer,
                &log,
                &[Run::Panic, Run::SleepPanic(10), Run::Exit],
            )
            .restart(RestartPolicy::OnFailure),
        );

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 b panic",
            "30 a exit",
            "100 b start",
            "110 b panic",
            "310 b start",
            "310 b exit",
        ]
    );
}

#[test]
fn a_panic_inside_init_is_a_failure() {
    struct Bad {
        timer: FakeTimer,
        starts: Arc<Mutex<Vec<u128>>>,
    }
    impl Restartable for Bad {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::OnFailure
        }
    }
    impl Worker for Bad {
        fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
            let mut starts = self.starts.lock().unwrap();
            starts.push(self.timer.elapsed().as_millis());
            if starts.len() == 1 {
                drop(starts);
                panic!("init fails on purpose");
            }
            Box::pin(async {})
        }
    }

    let timer = FakeTimer::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let tree = Supertree::new().add_worker(Bad {
        timer: timer.clone(),
        starts: starts.clone(),
    });
    simulate(tree, &timer).unwrap();
    // The default backoff: 50 ms.
    assert_eq!(*starts.lock().unwrap(), [0, 50]);
}

// ---------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------

#[test]
fn backoff_doubles_up_to_its_cap() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .with_intensity(Intensity::new(5, secs(10)))
        .add_worker(Probe::new("a", &timer, &log, &[Run::Exit]));

    assert_intensity_exceeded(simulate(tree, &timer), 5, secs(10));
    assert_eq!(log.starts("a"), [0, 100, 300, 700, 1500, 2300]);
    assert_eq!(timer.elapsed(), ms(2300));
}

#[test]
fn backoff_starts_again_from_min_delay_after_a_run_of_reset_after() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let script = [Run::Panic, Run::SleepPanic(1000), Run::Panic, Run::Exit];
    let tree = Supertree::new()
        // Reset after exactly the 1000 ms that run 2 lasts.
        .add_worker(
            Probe::new("a", &timer, &log, &script)
                .restart(RestartPolicy::OnFailure)
                .backoff(BackoffPolicy::new(ms(100), ms(800), ms(1000), 2.0)),
        )
        // 1 ms more: no reset.
        .add_worker(
            Probe::new("b", &timer, &log, &script)
                .restart(RestartPolicy::OnFailure)
                .backoff(BackoffPolicy::new(ms(100), ms(800), ms(1001), 2.0)),
        );

    simulate(tree, &timer).unwrap();
    assert_eq!(log.starts("a"), [0, 100, 1200, 1400]);
    assert_eq!(log.starts("b"), [0, 100, 1300, 1700]);
    assert_eq!(timer.elapsed(), ms(1700));
}

#[test]
fn immediate_backoff_restarts_at_the_same_instant() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .with_intensity(Intensity::new(3, secs(1)))
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::SleepPanic(5)])
                .backoff(BackoffPolicy::immediate()),
        );

    assert_intensity_exceeded(simulate(tree, &timer), 3, secs(1));
    assert_eq!(log.starts("a"), [0, 5, 10, 15]);
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

#[test]
fn one_for_one_leaves_sleeping_siblings_alone() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::SleepExit(1000)]).restart(RestartPolicy::Never),
        )
        .add_worker(
            Probe::new("b", &timer, &log, &[Run::SleepPanic(200), Run::Exit])
                .restart(RestartPolicy::OnFailure),
        )
        .add_worker(
            Probe::new("c", &timer, &log, &[Run::SleepExit(500)]).restart(RestartPolicy::Never),
        );

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 c start",
            "200 b panic",
            "300 b start",
            "300 b exit",
            "500 c exit",
            "1000 a exit",
        ]
    );
}

#[test]
fn one_for_all_drops_sleeping_siblings_in_reverse_and_restarts_all_in_order() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let on_failure = |p: Probe| p.restart(RestartPolicy::OnFailure);
    let tree = Supertree::new()
        .with_strategy(Strategy::OneForAll)
        .add_worker(on_failure(Probe::new(
            "a",
            &timer,
            &log,
            &[Run::SleepExit(1000), Run::SleepExit(10)],
        )))
        .add_worker(on_failure(Probe::new(
            "b",
            &timer,
            &log,
            &[Run::SleepPanic(200), Run::SleepExit(20)],
        )))
        .add_worker(on_failure(Probe::new(
            "c",
            &timer,
            &log,
            &[Run::SleepExit(1000), Run::SleepExit(30)],
        )));

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 c start",
            "200 b panic",
            "200 c dropped",
            "200 a dropped",
            "300 a start",
            "300 b start",
            "300 c start",
            "310 a exit",
            "320 b exit",
            "330 c exit",
        ]
    );
    assert_eq!(timer.elapsed(), ms(330));
}

#[test]
fn one_for_all_keeps_never_siblings_down_and_waits_for_the_failed_childs_backoff() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .with_strategy(Strategy::OneForAll)
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::SleepExit(1000)]).restart(RestartPolicy::Never),
        )
        .add_worker(
            Probe::new("b", &timer, &log, &[Run::SleepExit(1000), Run::Exit])
                .restart(RestartPolicy::Once),
        )
        .add_worker(
            Probe::new(
                "c",
                &timer,
                &log,
                &[Run::SleepPanic(100), Run::SleepPanic(100), Run::Exit],
            )
            .restart(RestartPolicy::OnFailure),
        );

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 c start",
            // c fails: b then a are stopped; a is Never, so it stays down.
            "100 c panic",
            "100 b dropped",
            "100 a dropped",
            // OneForAll starts in order, each child once the one before is
            // ready: b (ready at its first poll) runs its second, instant
            // run before c starts. b has used its one restart.
            "200 b start",
            "200 b exit",
            "200 c start",
            // c fails again after 100 ms and waits 200 ms this time.
            "300 c panic",
            "500 c start",
            "500 c exit",
        ]
    );
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_later_ones_in_order() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let on_failure = |p: Probe| p.restart(RestartPolicy::OnFailure);
    let tree = Supertree::new()
        .with_strategy(Strategy::RestForOne)
        .add_worker(on_failure(Probe::new(
            "a",
            &timer,
            &log,
            &[Run::SleepExit(1000)],
        )))
        .add_worker(on_failure(Probe::new(
            "b",
            &timer,
            &log,
            &[Run::SleepPanic(200), Run::Exit],
        )))
        .add_worker(on_failure(Probe::new(
            "c",
            &timer,
            &log,
            &[Run::SleepExit(1000), Run::Exit],
        )))
        .add_worker(on_failure(Probe::new(
            "d",
            &timer,
            &log,
            &[Run::SleepExit(500), Run::SleepExit(5)],
        )));

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 c start",
            "0 d start",
            "200 b panic",
            "200 d dropped",
            "200 c dropped",
            // One at a time, each once the one before is ready.
            "300 b start",
            "300 b exit",
            "300 c start",
            "300 c exit",
            "300 d start",
            "305 d exit",
            "1000 a exit",
        ]
    );
}

#[test]
fn rest_for_one_group_waits_for_the_latest_backoff_when_an_earlier_child_fails_meanwhile() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let on_failure = |p: Probe| p.restart(RestartPolicy::OnFailure);
    let tree = Supertree::new()
        .with_strategy(Strategy::RestForOne)
        .add_worker(on_failure(Probe::new(
            "a",
            &timer,
            &log,
            &[Run::SleepPanic(50), Run::Exit],
        )))
        .add_worker(on_failure(Probe::new(
            "b",
            &timer,
            &log,
            &[Run::SleepExit(1000), Run::Exit],
        )))
        .add_worker(on_failure(Probe::new(
            "c",
            &timer,
            &log,
            &[Run::Panic, Run::Exit],
        )));

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 c start",
            // c is last: it alone waits, until 100.
            "0 c panic",
            // a fails meanwhile: b is stopped, and a, b, c start together
            // after a's backoff (150), not c's (100).
            "50 a panic",
            "50 b dropped",
            "150 a start",
            "150 a exit",
            "150 b start",
            "150 b exit",
            "150 c start",
            "150 c exit",
        ]
    );
}

#[test]
fn one_for_all_drops_a_nested_supervisor_and_its_workers_in_reverse() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let tree = Supertree::new()
        .with_strategy(Strategy::OneForAll)
        .add_worker(
            Probe::new(
                "a",
                &timer,
                &log,
                &[Run::SleepPanic(100), Run::SleepExit(50)],
            )
            .restart(RestartPolicy::OnFailure),
        )
        .add_supervisor(move |s| {
            s.add_worker(
                Probe::new("x", &t, &l, &[Run::SleepExit(1000), Run::Exit])
                    .restart(RestartPolicy::OnFailure),
            )
            .add_worker(
                Probe::new("y", &t, &l, &[Run::SleepExit(1000), Run::Exit])
                    .restart(RestartPolicy::OnFailure),
            )
        });

    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 x start",
            "0 y start",
            "100 a panic",
            // Stopping the supervisor stops its children in reverse order.
            "100 y dropped",
            "100 x dropped",
            "200 a start",
            "200 x start",
            "200 y start",
            "200 x exit",
            "200 y exit",
            "250 a exit",
        ]
    );
    assert_eq!(timer.elapsed(), ms(250));
}

// ---------------------------------------------------------------------------
// Nested supervisors: intensity escalates, work finishes
// ---------------------------------------------------------------------------

#[test]
fn nested_intensity_escalates_to_the_parent_which_applies_its_own_policy_and_backoff() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let tree = Supertree::new()
        .with_intensity(Intensity::new(2, secs(10)))
        .add_worker(Probe::new("x", &timer, &log, &[Run::SleepExit(100_000)]))
        .add_supervisor(move |s| {
            s.with_intensity(Intensity::new(1, secs(1)))
                // How the root treats this supervisor when it gives up:
                .with_restart_policy(RestartPolicy::Always)
                .with_backoff_policy(BackoffPolicy::new(ms(1000), ms(8000), secs(60), 2.0))
                .add_worker(
                    Probe::new("w", &t, &l, &[Run::Panic]).backoff(BackoffPolicy::new(
                        ms(100),
                        ms(100),
                        secs(10),
                        1.0,
                    )),
                )
                .add_worker(Probe::new("y", &t, &l, &[Run::SleepExit(10_000)]))
        });

    assert_intensity_exceeded(simulate(tree, &timer), 2, secs(10));
    // The nested supervisor gives up on w's 2nd restart within 1 s (at 100,
    // 1200, 3300); the root restarts it after 1000, then 2000 ms, and gives
    // up itself on its 3rd restart within 10 s.
    assert_eq!(log.starts("w"), [0, 100, 1100, 1200, 3200, 3300]);
    assert_eq!(
        log.of("y"),
        [
            "0 start",
            "100 dropped",
            "1100 start",
            "1200 dropped",
            "3200 start",
            "3300 dropped"
        ]
    );
    assert_eq!(log.of("x"), ["0 start", "3300 dropped"]);
    // Exact order at the end: the nested supervisor stops y and gives up,
    // then the root stops x.
    let events = log.events();
    assert_eq!(
        events[events.len() - 4..],
        [
            "3300 w start",
            "3300 w panic",
            "3300 y dropped",
            "3300 x dropped"
        ]
    );
    assert_eq!(timer.elapsed(), ms(3300));
}

#[test]
fn giving_up_propagates_through_every_level_to_the_root() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let zero = Intensity::new(0, secs(1));
    let tree = Supertree::new()
        .with_intensity(zero)
        .add_worker(Probe::new("a", &timer, &log, &[Run::SleepExit(100_000)]))
        .add_supervisor(move |s| {
            let (t2, l2) = (t.clone(), l.clone());
            s.with_intensity(zero)
                .add_worker(Probe::new("b", &t, &l, &[Run::SleepExit(100_000)]))
                .add_supervisor(move |s| {
                    s.with_intensity(zero)
                        .add_worker(Probe::new("c", &t2, &l2, &[Run::SleepExit(100_000)]))
                        .add_worker(Probe::new("w", &t2, &l2, &[Run::SleepPanic(40)]))
                })
        });

    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 c start",
            "0 w start",
            "40 w panic",
            "40 c dropped",
            "40 b dropped",
            "40 a dropped",
        ]
    );
    assert_eq!(timer.elapsed(), ms(40));
}

#[test]
fn a_nested_supervisor_that_gives_up_is_not_restarted_under_never() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let tree = Supertree::new()
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::SleepExit(300)]).restart(RestartPolicy::Never),
        )
        .add_supervisor(move |s| {
            s.with_intensity(Intensity::new(0, secs(1)))
                .with_restart_policy(RestartPolicy::Never)
                .add_worker(Probe::new("w", &t, &l, &[Run::SleepPanic(20)]))
        });

    // The nested supervisor fails, but Never means the root neither restarts
    // it nor counts a restart: the tree ends normally once a is done.
    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        ["0 a start", "0 w start", "20 w panic", "300 a exit"]
    );
    assert_eq!(timer.elapsed(), ms(300));
}

#[test]
fn nested_supervisors_that_finish_their_work_end_the_tree_with_ok() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let tree = Supertree::new()
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::SleepExit(10)]).restart(RestartPolicy::Never),
        )
        .add_supervisor(move |s| {
            let (t2, l2) = (t.clone(), l.clone());
            // Always: but a supervisor that finishes is never restarted.
            s.with_restart_policy(RestartPolicy::Always)
                .add_worker(Probe::new("b", &t, &l, &[Run::Exit]).restart(RestartPolicy::Once))
                .add_supervisor(move |s| {
                    s.with_restart_policy(RestartPolicy::Always).add_worker(
                        Probe::new("c", &t2, &l2, &[Run::Panic, Run::SleepExit(500)])
                            .restart(RestartPolicy::OnFailure),
                    )
                })
        });

    simulate(tree, &timer).unwrap();
    assert_eq!(log.of("a"), ["0 start", "10 exit"]);
    assert_eq!(log.of("b"), ["0 start", "0 exit", "100 start", "100 exit"]);
    assert_eq!(log.of("c"), ["0 start", "0 panic", "100 start", "600 exit"]);
    assert_eq!(timer.elapsed(), ms(600));
}

#[test]
fn the_seed_tree_runs_every_once_worker_twice_and_ends() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let once = |name, t: &FakeTimer, l: &Log| {
        Probe::new(name, t, l, &[Run::Exit])
            .restart(RestartPolicy::Once)
            .backoff(BackoffPolicy::default())
    };
    let tree = Supertree::new()
        .add_worker(once("1", &timer, &log))
        .add_supervisor(move |s| {
            let (t2, l2) = (t.clone(), l.clone());
            s.add_worker(once("2", &t, &l))
                .add_supervisor(move |s| s.add_worker(once("3", &t2, &l2)))
        });

    simulate(tree, &timer).unwrap();
    for name in ["1", "2", "3"] {
        assert_eq!(log.starts(name), [0, 50], "worker {name}");
    }
    assert_eq!(timer.elapsed(), ms(50));
}

#[test]
fn an_empty_tree_ends_at_once() {
    let timer = FakeTimer::new();
    simulate(Supertree::new(), &timer).unwrap();
    simulate(Supertree::new().add_supervisor(|s| s), &timer).unwrap();
    assert_eq!(timer.elapsed(), Duration::ZERO);
}

// ---------------------------------------------------------------------------
// Stalled
// ---------------------------------------------------------------------------

#[test]
fn a_worker_waiting_on_nothing_stalls_the_simulation() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new().add_worker(Probe::new("a", &timer, &log, &[Run::Pending]));

    let result = simulate(tree, &timer);
    assert!(matches!(result, Err(Error::Stalled)), "got {result:?}");
    assert_eq!(log.of("a"), ["0 start", "0 dropped"]);
    assert_eq!(timer.elapsed(), Duration::ZERO);
}

#[test]
fn the_simulation_stalls_only_once_nothing_else_can_happen() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let tree = Supertree::new()
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::SleepExit(500)]).restart(RestartPolicy::Never),
        )
        .add_supervisor(move |s| {
            s.add_worker(Probe::new("p", &t, &l, &[Run::Pending]))
                .add_worker(
                    Probe::new("b", &t, &l, &[Run::SleepPanic(100), Run::SleepExit(100)])
                        .restart(RestartPolicy::OnFailure),
                )
        });

    let result = simulate(tree, &timer);
    assert!(matches!(result, Err(Error::Stalled)), "got {result:?}");
    assert_eq!(
        log.of("b"),
        ["0 start", "100 panic", "200 start", "300 exit"]
    );
    assert_eq!(log.of("a"), ["0 start", "500 exit"]);
    assert_eq!(log.of("p"), ["0 start", "500 dropped"]);
    assert_eq!(timer.elapsed(), ms(500));
}

// ---------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------

#[test]
fn one_for_all_starts_each_child_once_the_previous_one_is_ready() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .with_strategy(Strategy::OneForAll)
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::ReadyThenExit(100, 1000)])
                .notify()
                .restart(RestartPolicy::Never),
        )
        // A supervisor is ready once all its children are: c at 250.
        .add_supervisor(|s| {
            s.add_worker(
                Probe::new("c", &timer, &log, &[Run::ReadyThenExit(150, 1000)])
                    .notify()
                    .restart(RestartPolicy::Never),
            )
        })
        .add_worker(
            Probe::new("d", &timer, &log, &[Run::SleepExit(10)]).restart(RestartPolicy::Never),
        );
    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "100 a ready",
            "100 c start",
            "250 c ready",
            "250 d start",
            "260 d exit",
            "1100 a exit",
            "1250 c exit",
        ]
    );
}

#[test]
fn one_for_one_starts_everything_at_once_whatever_the_readiness() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::ReadyThenExit(100, 0)])
                .notify()
                .restart(RestartPolicy::Never),
        )
        .add_worker(Probe::new("b", &timer, &log, &[Run::Exit]).restart(RestartPolicy::Never));
    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        [
            "0 a start",
            "0 b start",
            "0 b exit",
            "100 a ready",
            "100 a exit"
        ]
    );
}

/// Code written for supertrees 0.1 that set the root's own policies still
/// compiles (deprecated): no parent ever applies them, so they change
/// nothing.
#[test]
#[allow(deprecated)]
fn the_roots_own_policies_still_compile_and_change_nothing() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let tree = Supertree::new()
        .with_restart_policy(RestartPolicy::Never)
        .with_backoff_policy(BackoffPolicy::immediate())
        .add_worker(Probe::new("a", &timer, &log, &[Run::Exit]).restart(RestartPolicy::Once));
    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.events(),
        ["0 a start", "0 a exit", "100 a start", "100 a exit"]
    );
}

/// One helper configures the root and any supervisor alike: they are two
/// kinds of one builder.
#[test]
fn a_helper_generic_over_the_kind_configures_root_and_supervisors() {
    fn never_twice<K>(tree: Tree<K>) -> Tree<K> {
        tree.with_intensity(Intensity::new(0, secs(1)))
    }
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let tree = never_twice(Supertree::new()).add_supervisor(move |s| {
        never_twice(s)
            .with_restart_policy(RestartPolicy::Never)
            .add_worker(Probe::new("w", &t, &l, &[Run::Panic]))
    });
    // The supervisor gives up on its first restart; Never: the root does not
    // restart it (nor count a restart), so the tree ends normally.
    simulate(tree, &timer).unwrap();
    assert_eq!(log.events(), ["0 w start", "0 w panic"]);
}

/// The policies are plain values: `RestartPolicy` and `BackoffPolicy` stay
/// `Copy` (as in supertrees 0.1), and so do the other policies; the enums
/// that may grow are `#[non_exhaustive]`, so matching them needs a wildcard.
#[test]
fn policies_are_copy_and_their_enums_are_matched_with_a_wildcard() {
    fn copy<T: Copy>(value: T) -> (T, T) {
        (value, value)
    }
    let _ = copy(RestartPolicy::Once);
    let _ = copy(BackoffPolicy::immediate());
    let _ = copy(Strategy::OneForAll);
    let _ = copy(Intensity::unlimited());
    let _ = copy(Shutdown::Kill);
    let _ = copy(Readiness::Notify);
    // Outside the crate, the wildcard arm is required.
    let twice = match RestartPolicy::Once {
        RestartPolicy::Once => true,
        RestartPolicy::Always | RestartPolicy::Never | RestartPolicy::OnFailure => false,
        _ => false,
    };
    assert!(twice);
}

// ---------------------------------------------------------------------------
// Events in simulation, and stops as the machine decides them
// ---------------------------------------------------------------------------

/// Collects every event as `"<ms> <event>"`, with the fake clock's time.
fn record_events(timer: &FakeTimer) -> (Arc<Mutex<Vec<String>>>, impl FnMut(&Event) + Send) {
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let (sink, timer) = (events.clone(), timer.clone());
    let record = move |event: &Event| {
        assert_eq!(event.pid, None, "no process, no pid: {event}");
        sink.lock()
            .unwrap()
            .push(format!("{} {event}", timer.elapsed().as_millis()));
    };
    (events, record)
}

#[test]
fn on_event_sees_the_same_events_as_in_processes_without_pids() {
    let timer = FakeTimer::new();
    let log = Log::default();
    let (events, record) = record_events(&timer);
    let ready = Arc::new(Mutex::new(None));
    let seen_ready = ready.clone();
    let tree = Supertree::new()
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::Panic, Run::Exit]).restart(RestartPolicy::Once),
        )
        .add_supervisor(|s| {
            s.add_worker(
                Probe::new("b", &timer, &log, &[Run::SleepExit(30)]).restart(RestartPolicy::Never),
            )
        })
        .on_event(record)
        .on_ready(move |status| {
            *seen_ready.lock().unwrap() = Some(status.to_string());
        });
    simulate(tree, &timer).unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        [
            "0 root/0: worker started",
            "0 root/1: supervisor started",
            "0 root/1/0: worker started",
            "0 root/1/0: ready",
            "0 root/1: ready",
            "0 root/0: ready",
            "0 root/0: panicked: probe a fails on purpose; restarting after 100ms",
            "30 root/1/0: exited normally; not restarted",
            "30 root/1: exited normally; not restarted",
            // root/0 failed before the tree was up: it is up once root/0's
            // second run is ready.
            "100 root/0: ready",
            "100 root: ready",
            "100 root/0: exited normally; not restarted",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    );
    let status = ready.lock().unwrap().clone().expect("on_ready was called");
    assert!(status.contains("root/1/0"), "{status}");
}

#[test]
fn in_place_restarts_spend_the_intensity_like_any_other() {
    // 10 ms backoff, at most 3 restarts per second: the simulated host
    // restarts in place at 10, 30 and 70 ms; the fourth failure, at 70 ms,
    // is one too many and the root gives up then.
    let timer = FakeTimer::new();
    let log = Log::default();
    let (events, record) = record_events(&timer);
    let tree = Supertree::new()
        .with_intensity(Intensity::new(3, secs(1)))
        .add_worker(
            Probe::new("a", &timer, &log, &[Run::Panic]).backoff(BackoffPolicy::new(
                ms(10),
                secs(1),
                secs(10),
                2.0,
            )),
        )
        .on_event(record);
    assert_intensity_exceeded(simulate(tree, &timer), 3, secs(1));
    assert_eq!(log.starts("a"), [0, 10, 30, 70]);
    let exits: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains("panicked"))
        .cloned()
        .collect();
    assert_eq!(
        exits,
        [
            "0 root/0: panicked: probe a fails on purpose; restarting after 10ms",
            "10 root/0: panicked: probe a fails on purpose; restarting after 20ms",
            "30 root/0: panicked: probe a fails on purpose; restarting after 40ms",
            "70 root/0: panicked: probe a fails on purpose; not restarted",
        ]
    );
    assert_eq!(timer.elapsed(), ms(70));
}

#[test]
fn stopped_children_read_as_stopped_and_killed_ones_as_killed() {
    // Giving up stops the siblings: workers are asked to stop (these never
    // called `stopping()`, so they are dropped at once) and read as stopped
    // whatever the supervisor's `with_shutdown`, which bounds only its
    // worker host's exit. A child supervisor is asked to stop and waited
    // for either way: its own shutdown bounds its stop.
    for (shutdown, word) in [
        (Shutdown::Timeout(ms(500)), "stopped"),
        (Shutdown::Kill, "stopped"),
    ] {
        let timer = FakeTimer::new();
        let log = Log::default();
        let (events, record) = record_events(&timer);
        let tree = Supertree::new()
            .with_intensity(Intensity::new(0, secs(1)))
            .with_shutdown(shutdown)
            .add_worker(Probe::new("a", &timer, &log, &[Run::Pending]))
            .add_supervisor(|s| s.add_worker(Probe::new("b", &timer, &log, &[Run::Pending])))
            .add_worker(Probe::new("c", &timer, &log, &[Run::SleepPanic(5)]))
            .on_event(record);
        assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
        let events = events.lock().unwrap().clone();
        let exit_of = |path: &str| {
            events
                .iter()
                .find(|e| e.starts_with(&format!("5 {path}: ")) && e.ends_with("not restarted"))
                .cloned()
                .unwrap_or_else(|| panic!("no exit of {path} in {events:#?}"))
        };
        assert_eq!(
            exit_of("root/0"),
            format!("5 root/0: {word}; not restarted")
        );
        assert_eq!(exit_of("root/1"), "5 root/1: stopped; not restarted");
        assert_eq!(log.of("a"), ["0 start", "5 dropped"]);
        assert_eq!(log.of("b"), ["0 start", "5 dropped"]);
        // A supervisor asked to stop stops its own children first.
        assert!(
            events.contains(&"5 root/1: stopping all children".to_owned()),
            "{events:#?}"
        );
        assert!(events.contains(&"5 root/1/0: stopped; not restarted".to_owned()));
    }
}

// ---------------------------------------------------------------------------
// Worker lifecycle: stopping(), spawn(), shutdown(), start_timeout()
// ---------------------------------------------------------------------------

#[path = "common/life.rs"]
mod life;
use life::Life;

fn gives_up_after(timer: &FakeTimer, after: u64) -> Life {
    let timer = timer.clone();
    let mut life = Life::new(move || {
        let timer = timer.clone();
        Box::pin(async move {
            timer.sleep(ms(after)).await;
            panic!("give up");
        })
    });
    life.restart = RestartPolicy::Always;
    life
}

#[test]
fn a_drain_of_200ms_takes_200_virtual_ms() {
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let t = timer.clone();
    let drained = Arc::new(AtomicUsize::new(0));
    let d = drained.clone();
    let drains = Life::new(move || {
        let (t, d) = (t.clone(), d.clone());
        Box::pin(async move {
            supertrees::stopping().await;
            t.sleep(ms(200)).await;
            d.store(t.elapsed().as_millis() as usize, Ordering::SeqCst);
        })
    });
    let tree = Supertree::new()
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(drains)
        .add_worker(gives_up_after(&timer, 100))
        .on_event(record);
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    assert_eq!(drained.load(Ordering::SeqCst), 300);
    assert_eq!(timer.elapsed(), ms(300));
    let events = events.lock().unwrap().clone();
    assert!(
        events.contains(&"300 root/0: stopped; not restarted".to_owned()),
        "{events:#?}"
    );
}

/// A worker that waits to be asked to stop, then says so in `order`.
fn says_when_stopped(order: &Arc<Mutex<Vec<&'static str>>>, name: &'static str) -> Life {
    let order = order.clone();
    Life::new(move || {
        let order = order.clone();
        Box::pin(async move {
            supertrees::stopping().await;
            order.lock().unwrap().push(name);
        })
    })
}

/// OTP's `supervisor_SUITE:order_of_children`: a supervisor that shuts
/// down stops its children in reverse start order, workers that listen to
/// `stopping()` too (they used to end in start order here), at the root and
/// in a nested supervisor.
#[test]
fn a_shutdown_stops_listening_children_in_reverse_start_order() {
    let timer = FakeTimer::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let tree = Supertree::new()
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(says_when_stopped(&order, "a"))
        .add_supervisor(move |s| {
            s.add_worker(says_when_stopped(&o, "s/a"))
                .add_worker(says_when_stopped(&o, "s/b"))
                .add_worker(says_when_stopped(&o, "s/c"))
        })
        .add_worker(says_when_stopped(&order, "b"))
        .add_worker(says_when_stopped(&order, "c"))
        .add_worker(gives_up_after(&timer, 100));
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    assert_eq!(*order.lock().unwrap(), ["c", "b", "s/c", "s/b", "s/a", "a"]);
}

#[test]
fn a_worker_ignoring_stopping_is_dropped_at_its_shutdown() {
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let mut ignores = Life::new(|| {
        Box::pin(async {
            let _ignored = supertrees::stopping();
            std::future::pending::<()>().await;
        })
    });
    ignores.shutdown = Shutdown::Timeout(ms(300));
    // One that never called `stopping()` is dropped at once.
    let deaf = Life::new(|| Box::pin(std::future::pending()));
    let tree = Supertree::new()
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(ignores)
        .add_worker(deaf)
        .add_worker(gives_up_after(&timer, 100))
        .on_event(record);
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    assert_eq!(timer.elapsed(), ms(400));
    let events = events.lock().unwrap().clone();
    for line in [
        "100 root/1: stopped; not restarted",
        "400 root/0: stopped; not restarted",
    ] {
        assert!(events.contains(&line.to_owned()), "{line} in {events:#?}");
    }
}

#[test]
fn a_panicking_subtask_restarts_its_worker() {
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let t = timer.clone();
    let mut parent = Life::new(move || {
        let t = t.clone();
        Box::pin(async move {
            supertrees::spawn(async move {
                t.sleep(ms(50)).await;
                panic!("sub-boom");
            });
            std::future::pending::<()>().await;
        })
    });
    parent.restart = RestartPolicy::Once;
    let tree = Supertree::new().add_worker(parent).on_event(record);
    simulate(tree, &timer).unwrap();
    let events = events.lock().unwrap().clone();
    let exits: Vec<&String> = events.iter().filter(|e| e.contains("panicked")).collect();
    assert_eq!(
        exits,
        [
            "50 root/0: panicked: sub-boom; restarting after 10ms",
            "110 root/0: panicked: sub-boom; not restarted"
        ]
    );
}

#[test]
fn ready_from_a_subtask_starts_the_next_one_for_all_sibling() {
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let t = timer.clone();
    let mut first = Life::new(move || {
        let t = t.clone();
        Box::pin(async move {
            let s = t.clone();
            supertrees::spawn(async move {
                s.sleep(ms(30)).await;
                assert!(supertrees::ready());
            });
            t.sleep(ms(100)).await;
        })
    });
    first.readiness = Readiness::Notify;
    let tree = Supertree::new()
        .with_strategy(Strategy::OneForAll)
        .add_worker(first)
        .add_worker(Life::new(|| Box::pin(async {})))
        .on_event(record);
    simulate(tree, &timer).unwrap();
    let events = events.lock().unwrap().clone();
    for line in ["30 root/0: ready", "30 root/1: worker started"] {
        assert!(events.contains(&line.to_owned()), "{line} in {events:#?}");
    }
}

#[test]
fn a_start_timeout_restarts_a_silent_worker() {
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let mut silent = Life::new(|| Box::pin(std::future::pending()));
    silent.readiness = Readiness::Notify;
    silent.start_timeout = Some(ms(100));
    silent.restart = RestartPolicy::Once;
    let tree = Supertree::new().add_worker(silent).on_event(record);
    simulate(tree, &timer).unwrap();
    let events = events.lock().unwrap().clone();
    let exits: Vec<&String> = events.iter().filter(|e| e.contains("not ready")).collect();
    assert_eq!(
        exits,
        [
            "100 root/0: not ready within 100ms; restarting after 10ms",
            "210 root/0: not ready within 100ms; not restarted"
        ]
    );
}

// ---------------------------------------------------------------------------
// Containment in simulation: accepted, checked, ignored
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Deadlines of hung workers: the watchdog, a drop's grace, on virtual time
// ---------------------------------------------------------------------------

#[test]
fn a_hung_worker_is_killed_at_the_watchdog_deadline_and_restarted_by_its_policy() {
    // A 200 ms period: the host shows life at 0, 50 and 100 ms (four times
    // per period); its worker `a` hangs it at 120 ms, so it missed its
    // deadline at 300 ms and is killed then, with its siblings. `a` and `b`
    // exit hung and come back after their backoff (100 ms), in a new host,
    // and end normally; `c` is not restarted.
    let timer = FakeTimer::new();
    let log = Log::default();
    let (events, record) = record_events(&timer);
    let tree = Supertree::new()
        .with_watchdog(ms(200))
        .add_worker(
            Probe::new(
                "a",
                &timer,
                &log,
                &[Run::SleepHang(120), Run::SleepExit(30)],
            )
            .restart(RestartPolicy::OnFailure),
        )
        .add_worker(
            Probe::new("b", &timer, &log, &[Run::Pending, Run::SleepExit(10)])
                .restart(RestartPolicy::OnFailure),
        )
        .on_event(record);
    let tree = tree.add_worker(
        Probe::new("c", &timer, &log, &[Run::SleepExit(430)]).restart(RestartPolicy::Never),
    );
    simulate(tree, &timer).unwrap();
    assert_eq!(
        log.of("a"),
        [
            "0 start",
            "120 hang",
            "300 dropped",
            "400 start",
            "430 exit"
        ]
    );
    assert_eq!(
        log.of("b"),
        ["0 start", "300 dropped", "400 start", "410 exit"]
    );
    // `c` ran in the same host: killed with it, and not restarted.
    assert_eq!(log.of("c"), ["0 start", "300 dropped"]);
    let exits: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains("hung") || e.contains("exited") || e.contains("stopped"))
        .cloned()
        .collect();
    assert_eq!(
        exits,
        [
            "300 root/0: hung: no sign of life within its watchdog period; killed; restarting after 100ms",
            "300 root/1: hung: no sign of life within its watchdog period; killed; restarting after 100ms",
            "300 root/2: hung: no sign of life within its watchdog period; killed; not restarted",
            "410 root/1: exited normally; not restarted",
            "430 root/0: exited normally; not restarted",
        ]
    );
    assert_eq!(timer.elapsed(), ms(430));
}

#[test]
fn a_hang_is_caught_a_period_after_the_last_sign_of_life_whenever_it_starts() {
    // The host shows life every 50 ms from its start; a hang at 0 (before
    // its first sign?) — at the start, the host has shown life already:
    // deadline 200. A hang at 49: last sign at 0, deadline 200; at 50:
    // the sign due then is not given (the worker runs first), deadline
    // 200; at 51: deadline 250.
    for (hang_at, killed_at) in [(0, 200), (49, 200), (50, 200), (51, 250), (150, 300)] {
        let timer = FakeTimer::new();
        let log = Log::default();
        let tree = Supertree::new()
            .with_watchdog(ms(200))
            .with_intensity(Intensity::new(0, secs(1)))
            .add_worker(Probe::new("a", &timer, &log, &[Run::SleepHang(hang_at)]));
        assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
        assert_eq!(
            log.of("a"),
            [
                "0 start".to_owned(),
                format!("{hang_at} hang"),
                format!("{killed_at} dropped")
            ],
            "hung at {hang_at}"
        );
        assert_eq!(timer.elapsed(), ms(killed_at));
    }
}

#[test]
fn a_nested_supervisor_shows_life_while_its_hung_host_is_killed() {
    // The child supervisor inherits the root's period: its own host is
    // killed at its deadline; the child supervisor itself shows life to the
    // root all along, and is never killed.
    let timer = FakeTimer::new();
    let log = Log::default();
    let (events, record) = record_events(&timer);
    let (t, l) = (timer.clone(), log.clone());
    let tree = Supertree::new()
        .with_watchdog(ms(100))
        .add_supervisor(move |s| {
            s.with_intensity(Intensity::new(1, secs(1)))
                .with_restart_policy(RestartPolicy::Never)
                .add_worker(
                    Probe::new("a", &t, &l, &[Run::SleepHang(10)]).restart(RestartPolicy::Always),
                )
        })
        .add_worker(
            Probe::new("b", &timer, &log, &[Run::SleepExit(1_000)]).restart(RestartPolicy::Never),
        )
        .on_event(record);
    simulate(tree, &timer).unwrap();
    // Its host showed life last at 0: killed at 100. Restarted at 200 (its
    // backoff), it hangs at 210 (its host showed life at 200): killed at
    // 300, one restart too many for the child supervisor, which gives up
    // (and is not restarted). Never is the child supervisor hung.
    assert_eq!(
        log.of("a"),
        [
            "0 start",
            "10 hang",
            "100 dropped",
            "200 start",
            "210 hang",
            "300 dropped"
        ]
    );
    assert_eq!(
        *events.lock().unwrap(),
        [
            "0 root/0: supervisor started",
            "0 root/0/0: worker started",
            "0 root/1: worker started",
            "0 root/0/0: ready",
            "0 root/0: ready",
            "0 root/1: ready",
            "0 root: ready",
            "100 root/0/0: hung: no sign of life within its watchdog period; killed; restarting after 100ms",
            "200 root/0/0: worker started",
            "200 root/0/0: ready",
            "300 root/0/0: hung: no sign of life within its watchdog period; killed; not restarted",
            "300 root/0: restart intensity exceeded; stopping all children",
            "300 root/0: gave up: restart intensity exceeded; not restarted",
            "1000 root/1: exited normally; not restarted",
        ]
    );
}

#[test]
fn a_dropped_worker_that_hangs_its_host_gets_it_killed_after_the_drop_grace() {
    // No watchdog. Giving up at 100 ms stops `a`, which hangs its host when
    // asked to stop: its stop is not carried out, it is dropped at its
    // shutdown time (400 ms), which a hung host does not carry out either,
    // and the host is killed a second later. Its end is its stop's.
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let mut hangs = Life::new(|| {
        Box::pin(async {
            supertrees::stopping().await;
            supertrees::testing::hang().await;
        })
    });
    hangs.shutdown = Shutdown::Timeout(ms(300));
    let tree = Supertree::new()
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(hangs)
        .add_worker(gives_up_after(&timer, 100))
        .on_event(record);
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    assert_eq!(timer.elapsed(), ms(1_400));
    let events = events.lock().unwrap().clone();
    let ends: Vec<&String> = events
        .iter()
        .filter(|e| e.contains("root/0:") || e.contains("root: "))
        .collect();
    assert_eq!(
        ends,
        [
            "0 root/0: worker started",
            "0 root/0: ready",
            "0 root: ready",
            "100 root: restart intensity exceeded; stopping all children",
            "1400 root/0: stopped; not restarted",
        ]
    );
}

#[test]
fn a_worker_that_ignores_stopping_is_killed_at_its_shutdown_time_in_a_watched_tree() {
    // A watchdog changes nothing for a host that shows life: `a` ignores
    // its stop and is dropped at its shutdown time, 300 ms after the stop.
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let mut ignores = Life::new(|| {
        Box::pin(async {
            let _ignored = supertrees::stopping();
            std::future::pending::<()>().await;
        })
    });
    ignores.shutdown = Shutdown::Timeout(ms(300));
    let tree = Supertree::new()
        .with_watchdog(ms(40))
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(ignores)
        .add_worker(gives_up_after(&timer, 100))
        .on_event(record);
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    assert_eq!(timer.elapsed(), ms(400));
    let events = events.lock().unwrap().clone();
    assert!(
        events.contains(&"400 root/0: stopped; not restarted".to_owned()),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| e.contains("hung")), "{events:#?}");
}

#[test]
fn a_hung_host_with_an_infinite_shutdown_is_killed_by_the_watchdog_only() {
    // `Shutdown::Infinity` for the worker: its stop waits as long as it
    // takes, and a hung host never ends it; the watchdog does, at its
    // deadline, as hung.
    let timer = FakeTimer::new();
    let (events, record) = record_events(&timer);
    let mut hangs = Life::new(|| {
        Box::pin(async {
            supertrees::stopping().await;
            supertrees::testing::hang().await;
        })
    });
    hangs.shutdown = Shutdown::Infinity;
    let tree = Supertree::new()
        .with_watchdog(ms(200))
        .with_shutdown(Shutdown::Infinity)
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(hangs)
        .add_worker(gives_up_after(&timer, 100))
        .on_event(record);
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    // Its host showed life last at 100 (its sign due then came before the
    // stop that hung it): killed at 300.
    assert_eq!(timer.elapsed(), ms(300));
    let events = events.lock().unwrap().clone();
    assert!(
        events.contains(&"300 root/0: stopped; not restarted".to_owned()),
        "{events:#?}"
    );
}

#[test]
fn a_watched_tree_that_only_shows_life_stalls() {
    // Signs of life keep nothing going: workers waiting on nothing stall
    // the simulation, watchdog or not (a hung host does not: it is killed
    // at its deadline, and its worker restarted).
    let timer = FakeTimer::new();
    let log = Log::default();
    let (t, l) = (timer.clone(), log.clone());
    let tree = Supertree::new()
        .with_watchdog(ms(100))
        .add_worker(Probe::new("a", &timer, &log, &[Run::Pending]))
        .add_supervisor(move |s| s.add_worker(Probe::new("b", &t, &l, &[Run::Pending])));
    assert!(matches!(simulate(tree, &timer), Err(Error::Stalled)));
    assert_eq!(timer.elapsed(), Duration::ZERO);
    assert_eq!(
        log.events(),
        ["0 a start", "0 b start", "0 b dropped", "0 a dropped"]
    );
}

#[test]
fn limits_and_users_are_ignored_and_a_watchdog_changes_nothing_for_a_live_tree_in_simulation() {
    let run = |contained: bool| {
        let timer = FakeTimer::new();
        let log = Log::default();
        let (t, l) = (timer.clone(), log.clone());
        let tree = Supertree::new().add_supervisor(move |s| {
            let s = if contained {
                s.with_limits(
                    Limits::new()
                        .memory(1 << 20)
                        .processes(2)
                        .open_files(64)
                        .cpu(0.1),
                )
                .with_watchdog(ms(1))
                .with_user(65534, 65534)
            } else {
                s
            };
            s.add_worker(
                Probe::new("w", &t, &l, &[Run::SleepPanic(10), Run::Exit])
                    .restart(RestartPolicy::OnFailure),
            )
        });
        simulate(tree, &timer).unwrap();
        (log.events(), timer.elapsed())
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn invalid_limits_are_refused_naming_the_field_in_simulation_too() {
    let timer = FakeTimer::new();
    let tree = Supertree::new().add_supervisor(|s| s.with_limits(Limits::new().cpu(-1.0)));
    let err = simulate(tree, &timer).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid limits: cpu must be a positive number of cores"
    );
}

/// `stopping()` called in `Worker::init` itself (to hand the future to the
/// run, as `with_graceful_shutdown(stop)` would), not in the future it
/// returns: `init` is part of the run, so the future resolves and the
/// worker drains (found by an adversarial review: it never resolved).
#[test]
fn stopping_called_in_init_resolves() {
    let timer = FakeTimer::new();
    let t = timer.clone();
    let drained = Arc::new(AtomicUsize::new(0));
    let d = drained.clone();
    let drains = Life::new(move || {
        let stop = supertrees::stopping();
        let (t, d) = (t.clone(), d.clone());
        Box::pin(async move {
            stop.await;
            t.sleep(ms(200)).await;
            d.store(t.elapsed().as_millis() as usize, Ordering::SeqCst);
        })
    });
    let tree = Supertree::new()
        .with_intensity(Intensity::new(0, secs(1)))
        .add_worker(drains)
        .add_worker(gives_up_after(&timer, 100));
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    assert_eq!(
        drained.load(Ordering::SeqCst),
        300,
        "the worker did not drain: stopping() from init never resolved"
    );
}

// ---------------------------------------------------------------------------
// The free functions outside a worker's run (the table in the crate docs)
// ---------------------------------------------------------------------------

/// Sets its flag when dropped.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What the crate docs say each free function does where no worker's run
/// is (and no worker host: the simulation has none), `id` being the id of
/// a child a tree started.
fn assert_outside_a_run(id: ChildId) {
    const WHERE: &str = "called outside a worker of a running tree (it works in a worker's run, \
                         and in the threads and tasks a worker started in its process)";
    let err = mailbox::<u64>("kv").unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotInTree {
                function: "mailbox",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), format!("supertrees::mailbox() {WHERE}"));
    let err = inbox::<u64>("kv").unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotInTree {
                function: "inbox",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), format!("supertrees::inbox() {WHERE}"));
    let err = futures::executor::block_on(start_child("conn", 7u32)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotInTree {
                function: "start_child",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("supertrees::start_child() {WHERE}")
    );
    let err = futures::executor::block_on(terminate_child("conn", id)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotInTree {
                function: "terminate_child",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("supertrees::terminate_child() {WHERE}")
    );
    let err = tcp_listener("http").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!("supertrees::tcp_listener(\"http\") {WHERE}")
    );
    let err = unix_listener("admin").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!("supertrees::unix_listener(\"admin\") {WHERE}")
    );
    assert!(!ready(), "ready() outside a run says false");
    let mut stop = Box::pin(stopping());
    assert!(
        futures::FutureExt::now_or_never(&mut stop).is_none(),
        "stopping() resolved"
    );
    let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p, guard) = (polled.clone(), SetOnDrop(dropped.clone()));
    spawn(async move {
        let _guard = guard;
        p.store(true, Ordering::SeqCst);
    });
    assert!(dropped.load(Ordering::SeqCst), "spawn() kept the future");
    assert!(!polled.load(Ordering::SeqCst), "spawn() polled the future");
}

#[test]
fn free_functions_outside_a_run_do_what_the_crate_docs_say() {
    let timer = FakeTimer::new();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let seen = ids.clone();
    let asker = Life::new(move || {
        let seen = seen.clone();
        Box::pin(async move {
            let id = start_child("conn", 7u32).await.expect("started in the run");
            seen.lock().unwrap().push(id);
            // In the run of a simulated worker: no sockets.
            let err = tcp_listener("http").unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
            assert_eq!(
                err.to_string(),
                "supertrees::tcp_listener(\"http\") called in a simulated tree, which has no \
                 listeners"
            );
            // A thread the run started is outside it.
            std::thread::spawn(move || assert_outside_a_run(id))
                .join()
                .expect("as the crate docs say, in a thread of the worker");
            seen.lock().unwrap().push(id);
        })
    });
    let tree = Supertree::new()
        .with_intensity(Intensity::new(0, secs(1)))
        .with_mailbox("kv")
        .add_supervisor(|s| {
            s.add_dynamic("conn", |_: u32| {
                Life::new(|| Box::pin(std::future::pending::<()>()))
            })
        })
        .add_worker(asker)
        .add_worker(gives_up_after(&timer, 100));
    assert_intensity_exceeded(simulate(tree, &timer), 0, secs(1));
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 2, "the run did not get through its checks");
    // No tree at all, on the test's own thread.
    assert_outside_a_run(ids[0]);
}

#[test]
fn a_simulated_tree_reports_named_paths() {
    // Each worker runs once.
    struct Once;
    impl Worker for Once {
        fn init(&self) -> BoxFuture {
            Box::pin(async {})
        }
    }
    impl Restartable for Once {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Never
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let tree = Supertree::new()
        .add_supervisor(|s| {
            s.with_name("api")
                .add_named_worker("web", Once)
                .add_worker(Once)
                .add_supervisor(|s| s.add_named_worker("cache", Once))
        })
        .add_worker(Once)
        .add_named_worker("jobs", Once)
        .on_event(move |e| {
            if let EventKind::Started(_) = e.kind {
                sink.lock().unwrap().push(e.path.clone());
            }
        });
    run_simulated(tree, FakeTimer::new()).unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "root/1",
            "root/api",
            "root/api/1",
            "root/api/2",
            "root/api/2/cache",
            "root/api/web",
            "root/jobs"
        ]
    );
}
