//! The simulation driver: supervisors as nested futures in one thread,
//! driven by the same [`Machine`] as the process engine.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures::FutureExt;

use super::FakeTimer;
use crate::machine::{Action, Machine, Outcome, Report};
use crate::ready::run_worker;
use crate::tree::{Child, Root, Supervisor, Tree, TreeParts};
use crate::{ChildExit, Error, Timer};

/// Runs `tree` to its end in the calling thread, on `timer`'s virtual time.
///
/// Each supervisor is a task and each worker a future polled by it; no process
/// is forked and no runtime is needed. Every policy (restart, backoff,
/// strategy, intensity) behaves as in the process engine: both drive the same
/// state machine. Whenever every task waits, the clock jumps to the next
/// deadline of `timer`, so runs are exact and instant.
///
/// Workers run here must only wait on the [`FakeTimer`] (a clone of `timer`)
/// or on each other: a Tokio or smol timer has no runtime to fire it.
/// Stopping a child drops its future (children of a supervisor in reverse
/// order); [`Shutdown`](crate::Shutdown) timeouts do not apply.
///
/// # Errors
///
/// [`Error::IntensityExceeded`] when the root gives up, and [`Error::Stalled`]
/// when every task waits and no timer is pending, so the tree could never
/// progress.
///
/// # Examples
///
/// ```
/// use supertrees_core::testing::{run_simulated, FakeTimer};
/// use supertrees_core::{RestartPolicy, Restartable, Supertree, Worker};
///
/// struct Once;
/// impl Worker for Once {
///     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
///         Box::pin(async {})
///     }
/// }
/// impl Restartable for Once {
///     fn restart_policy(&self) -> RestartPolicy {
///         RestartPolicy::Once
///     }
/// }
///
/// let timer = FakeTimer::new();
/// run_simulated(Supertree::new().add_worker(Once), timer.clone())?;
/// // One restart after the default 50 ms backoff.
/// assert_eq!(timer.elapsed().as_millis(), 50);
/// # Ok::<(), supertrees_core::Error>(())
/// ```
pub fn run_simulated<B>(tree: Tree<Root<B>>, timer: FakeTimer) -> Result<(), Error> {
    let tree = TreeParts::from(tree);
    let root = supervise(
        &tree.root,
        "root".to_owned(),
        timer.clone(),
        Box::new(|| {}),
    );
    let outcome = drive(root, &timer)?;
    match outcome {
        Outcome::Normal => Ok(()),
        Outcome::GaveUp => {
            let intensity = tree.root.intensity;
            Err(Error::IntensityExceeded {
                path: "root".to_owned(),
                max_restarts: intensity.max_restarts().unwrap_or(u32::MAX),
                within: intensity.within().unwrap_or_default(),
            })
        }
    }
}

/// Polls `fut` to completion; when nothing is awake, jumps the clock.
fn drive<F: Future>(fut: F, timer: &FakeTimer) -> Result<F::Output, Error> {
    let mut fut = std::pin::pin!(fut);
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        flag.0.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Ok(out);
        }
        if !flag.0.load(Ordering::SeqCst) && !timer.jump_to_next_deadline() {
            return Err(Error::Stalled);
        }
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type ChildFuture<'a> = Pin<Box<dyn Future<Output = ChildExit> + 'a>>;

/// The running children of one simulated supervisor. Dropped in reverse
/// order, as a supervisor stops its children.
struct Running<'a>(Vec<Option<ChildFuture<'a>>>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        while let Some(child) = self.0.pop() {
            drop(child);
        }
    }
}

/// Children that declared themselves ready, by index, for their supervisor's
/// machine.
type ReadyQueue = Arc<Mutex<Vec<usize>>>;

/// Called once when a supervisor is ready.
type OnReady<'a> = Box<dyn FnMut() + 'a>;

/// One simulated supervisor's driving state.
struct Sim<'a> {
    sup: &'a Supervisor,
    machine: Machine,
    running: Running<'a>,
    timer: FakeTimer,
    ready: ReadyQueue,
    on_ready: OnReady<'a>,
}

/// Builds the future of one supervisor. Its machine starts here, not at the
/// first poll, so children across nested supervisors start in tree order.
/// `on_ready` is called once every child is ready.
fn supervise<'a>(
    sup: &'a Supervisor,
    path: String,
    timer: FakeTimer,
    on_ready: OnReady<'a>,
) -> Pin<Box<dyn Future<Output = Outcome> + 'a>> {
    let mut sim = Sim {
        sup,
        machine: sup.machine(path),
        running: Running(sup.children.iter().map(|_| None).collect()),
        timer,
        ready: Arc::default(),
        on_ready,
    };
    sim.machine.handle_start(sim.timer.now());
    let started = sim.apply();
    Box::pin(async move {
        if let Some(outcome) = started {
            return outcome;
        }
        loop {
            if let Some(outcome) = sim.step().await {
                return outcome;
            }
        }
    })
}

impl<'a> Sim<'a> {
    /// Waits for a child's exit or readiness, or the machine's next timeout,
    /// and feeds it to the machine; the outcome once the supervisor exits.
    async fn step(&mut self) -> Option<Outcome> {
        let timer = &self.timer;
        let mut sleep = self
            .machine
            .poll_timeout()
            .map(|at| timer.sleep(at.saturating_duration_since(timer.now())));
        let (running, ready) = (&mut self.running, &self.ready);
        let exited = futures::future::poll_fn(|cx| {
            for (n, slot) in running.0.iter_mut().enumerate() {
                if let Some(child) = slot {
                    if let Poll::Ready(exit) = child.as_mut().poll(cx) {
                        *slot = None;
                        return Poll::Ready(Some((n, exit)));
                    }
                }
            }
            if ready.lock().is_ok_and(|r| !r.is_empty()) {
                return Poll::Ready(None);
            }
            match &mut sleep {
                Some(sleep) => sleep.as_mut().poll(cx).map(|()| None),
                None => Poll::Pending,
            }
        })
        .await;
        let now = self.timer.now();
        if let Some((n, exit)) = exited {
            self.machine.handle_exit(n, exit, now);
        }
        let declared = self
            .ready
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        for n in declared {
            self.machine.handle_ready(n, now);
        }
        if self.machine.poll_timeout().is_some_and(|at| at <= now) {
            self.machine.handle_timeout(now);
        }
        self.apply()
    }

    /// Carries out the machine's pending actions; the outcome once it exits.
    fn apply(&mut self) -> Option<Outcome> {
        loop {
            while let Some(report) = self.machine.poll_report() {
                if report == Report::Ready {
                    (self.on_ready)();
                }
            }
            match self.machine.poll_action()? {
                Action::Start(n) => {
                    let path = format!("{}/{n}", self.machine.path());
                    let child = &self.sup.children[n];
                    self.running.0[n] = Some(start(child, n, path, &self.timer, &self.ready));
                }
                Action::Stop(n) => {
                    drop(self.running.0[n].take());
                    self.machine
                        .handle_exit(n, ChildExit::STOPPED, self.timer.now());
                }
                Action::Exit(outcome) => return Some(outcome),
            }
        }
    }
}

/// Starts child `n`, which reports its readiness on `ready`.
fn start<'a>(
    child: &'a Child,
    n: usize,
    path: String,
    timer: &FakeTimer,
    ready: &ReadyQueue,
) -> ChildFuture<'a> {
    let ready = ready.clone();
    let declare = move || {
        if let Ok(mut r) = ready.lock() {
            r.push(n);
        }
    };
    match child {
        Child::Worker(worker) => {
            Box::pin(
                run_worker(worker.as_ref(), declare).map(|result| match result {
                    Ok(()) => ChildExit::Normal,
                    Err(_) => ChildExit::Panicked,
                }),
            )
        }
        Child::Supervisor(sup) => Box::pin(
            supervise(sup, path, timer.clone(), Box::new(declare)).map(|outcome| match outcome {
                Outcome::Normal => ChildExit::Normal,
                Outcome::GaveUp => ChildExit::GaveUp,
            }),
        ),
    }
}
