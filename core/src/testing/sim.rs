//! The simulation driver: supervisors as nested futures in one thread,
//! driven by the same [`Machine`] as the process engine, with the workers of
//! each supervisor in a simulated worker host that restarts them in place on
//! the same leases ([`crate::lease`]) as a real one.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::FakeTimer;
use crate::lease::{run_leased, Leases};
use crate::machine::{Action, ChildIdx, Grant, Machine, Outcome, Report, Subject, Watched};
use crate::message::memory::Queue;
use crate::message::{codec, dynamic};
use crate::message::{Answer, Declared, MemoryServices, Refusal, Request};
use crate::observe::Observed;
use crate::port::{Received, Replier, Services};
use crate::ready::{run_worker, StopFlag};
use crate::tree::worker_policy;
use crate::tree::{Child, Root, Supervisor, Tree, TreeParts};
use crate::wire::Note;
use crate::{ChildExit, ChildId, Error, Event, EventKind, NodeKind, Timer};

/// Runs `tree` to its end in the calling thread, on `timer`'s virtual time.
///
/// Each supervisor is a task and each worker a future polled by it; no process
/// is forked and no runtime is needed. Every policy (restart, backoff,
/// strategy, intensity, shutdown) behaves as in the process engine: both
/// drive the same state machine, and `OneForOne` workers are restarted in
/// place by a simulated worker host on the same leases as a real one.
/// Whenever every task waits, the clock jumps to the next deadline of
/// `timer`, so runs are exact and instant.
///
/// The tree's [`on_event`](crate::Tree::on_event) callback gets the same
/// [`Event`]s as in processes, with `pid: None` (worker hosts, which do not
/// exist here, have none), and [`on_ready`](crate::Tree::on_ready) is called
/// once the whole tree is ready.
///
/// Workers run here must only wait on the [`FakeTimer`] (a clone of `timer`)
/// or on each other: a Tokio or smol timer has no runtime to fire it.
///
/// Each supervisor's workers run in a simulated worker host, which begins
/// with its first worker and, with a [watchdog](crate::Tree::with_watchdog),
/// shows life four times per period from then on, as child supervisors
/// show their parents. A worker that awaits [`hang()`](super::hang()) hangs
/// its host: the host's supervisor kills it at its watchdog deadline, or a
/// second after dropping one of its workers, and its workers exit with it
/// ([`ChildExit::Hung`] when it was hung), to run again by their policies.
/// Signs of life alone keep nothing going: a watched tree whose workers
/// wait on nothing stalls as an unwatched one does.
/// Stopping a worker asks it to stop, as in processes: one that called
/// [`stopping()`](crate::stopping()) has its
/// [`shutdown`](crate::Restartable::shutdown) time (virtual) to return, then
/// is dropped; any other is dropped at once. A shutdown stops children in
/// reverse order of position, as in processes (for children declared with
/// the tree, reverse start order; a child started at run time may take the
/// place of one removed): workers asked together run in the order they were
/// asked, as a worker host's executor runs them, and a child supervisor
/// stops its own children first.
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
/// # extern crate supertrees_core as supertrees;
/// use supertrees::testing::{run_simulated, FakeTimer};
/// use supertrees::{RestartPolicy, Restartable, Supertree, Worker};
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
/// # Ok::<(), supertrees::Error>(())
/// ```
pub fn run_simulated<B>(tree: Tree<Root<B>>, timer: FakeTimer) -> Result<(), Error> {
    let mut tree = TreeParts::from(tree);
    let observers = std::mem::take(&mut tree.observers);
    let observer = Rc::new(RefCell::new(Observer {
        observed: Observed::new(observers, std::process::id(), timer.now()),
        timer: timer.clone(),
        began: timer.now(),
        next_ids: HashMap::new(),
    }));
    // Limits are checked, then ignored; so are users. Watchdogs are kept
    // by the machines, and simulated hosts and supervisors show life.
    tree.root.check("root", None)?;
    let services = MemoryServices::new(Declared::collect(&tree.root)?, timer.clone());
    let root = supervise(
        &tree.root,
        "root".to_owned(),
        timer.clone(),
        Parent::Root(observer.clone()),
        observer.clone(),
        services.clone(),
    );
    let outcome = drive(root, &timer);
    observer
        .borrow()
        .observed
        .publish_figures(services.mailbox_counts());
    let outcome = outcome?;
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

/// The user's callbacks and the status they see, on the fake clock.
struct Observer {
    observed: Observed,
    timer: FakeTimer,
    /// When the simulation began: events happen at the Unix epoch plus
    /// the virtual time since.
    began: Instant,
    /// The id each supervisor's next child started at run time takes,
    /// by path: a new incarnation of a supervisor goes on from there, so
    /// ids are never reused in the tree's life.
    next_ids: HashMap<String, u64>,
}

impl Observer {
    fn event(&mut self, path: String, kind: EventKind) {
        let now = self.timer.now();
        let at = std::time::SystemTime::UNIX_EPOCH + now.saturating_duration_since(self.began);
        self.observed
            .event(Event::happened(path, None, kind, at), now);
    }
}

type Shared<T> = Rc<RefCell<T>>;

/// A worker of the tree, or one built from a template at run time.
enum WorkerRef<'a> {
    Static(&'a dyn crate::Worker),
    Built(Rc<dyn crate::Worker>),
}

impl WorkerRef<'_> {
    fn get(&self) -> &dyn crate::Worker {
        match self {
            WorkerRef::Static(w) => *w,
            WorkerRef::Built(w) => w.as_ref(),
        }
    }
}

type ChildFuture<'a> = Pin<Box<dyn Future<Output = (ChildExit, Option<String>)> + 'a>>;

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

/// What children tell their simulated supervisor, in order: what a worker
/// host or a child supervisor would write on its channel.
type Notes = Arc<Mutex<VecDeque<(ChildIdx, Note)>>>;

/// Whom a simulated supervisor tells that it is ready (and shows life to).
enum Parent {
    Root(Shared<Observer>),
    Supervisor {
        notes: Notes,
        index: ChildIdx,
        /// The parent's watchdog period, which this one inherits unless it
        /// has its own.
        watchdog: Option<Duration>,
    },
}

/// A supervisor's simulated worker host: up from the first start of a
/// worker until it is killed (or the supervisor ends), showing life four
/// times per watchdog period unless a worker hung it ([`super::hang()`]).
#[derive(Default)]
struct Host {
    up: bool,
    /// Set by a [`super::hang()`] polled in one of its workers: it runs
    /// nothing, carries out nothing and reports nothing until killed.
    hung: Arc<AtomicBool>,
    /// With a watchdog: when it next shows life.
    next_alive: Option<Instant>,
}

impl Host {
    fn is_hung(&self) -> bool {
        self.hung.load(Ordering::SeqCst)
    }
}

/// One simulated supervisor's driving state.
struct Sim<'a> {
    sup: &'a Supervisor,
    machine: Machine,
    running: Running<'a>,
    timer: FakeTimer,
    notes: Notes,
    /// The simulated worker host's leases, and the `Restarted` notes taken
    /// from it (what its grants count from).
    leases: Arc<Mutex<Leases>>,
    restarted: u64,
    /// Set by the parent to stop this supervisor.
    stop: Arc<AtomicBool>,
    stopping: bool,
    /// The stop flags of child supervisors, by position.
    child_stops: Vec<Option<Arc<AtomicBool>>>,
    /// The stop requests of running workers, by position.
    worker_stops: Vec<Option<Arc<StopFlag>>>,
    /// Running workers asked to stop that listen (called `stopping()`), in
    /// the order asked: polled before the others, as a worker host's
    /// executor runs them in the order their stops woke them (a shutdown
    /// asks in reverse start order).
    asked: Vec<usize>,
    parent: Parent,
    observer: Shared<Observer>,
    /// The tree's simulated mailboxes and templates.
    services: MemoryServices<FakeTimer>,
    /// The same, as this supervisor's workers reach them.
    mine: Arc<dyn Services>,
    /// The request queues of this supervisor's templates, in the order of
    /// its templates.
    templates: Vec<(Declared, Arc<Queue>)>,
    /// Children started at run time, by index.
    dynamic: Vec<Option<Dynamic>>,
    /// Who waits for a child to be removed.
    terminating: Vec<(ChildId, Box<dyn Replier>)>,
    /// The simulated worker host, and which workers run in it (started,
    /// their exit not yet fed to the machine), by position.
    host: Host,
    hosted: Vec<bool>,
    /// With a watchdog, in a child supervisor: when it next shows life to
    /// its parent.
    parent_alive: Option<Instant>,
    /// How the machine ended, once it did: the supervisor ends with it once
    /// its host is gone.
    ending: Option<Outcome>,
}

/// A child started at run time.
struct Dynamic {
    worker: Rc<dyn crate::Worker>,
    template: String,
    id: ChildId,
}

/// What woke a simulated supervisor.
enum Happened {
    Exited(usize, (ChildExit, Option<String>)),
    Stop,
    /// A request about dynamic children, to the template at this position.
    Request(usize, Received),
    Other,
}

/// Builds the future of one supervisor. Its machine starts here, not at the
/// first poll, so children across nested supervisors start in tree order.
fn supervise<'a>(
    sup: &'a Supervisor,
    path: String,
    timer: FakeTimer,
    parent: Parent,
    observer: Shared<Observer>,
    services: MemoryServices<FakeTimer>,
) -> SupervisorFuture<'a> {
    supervise_with_stop(sup, path, timer, parent, observer, services, Arc::default())
}

type SupervisorFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

fn supervise_with_stop<'a>(
    sup: &'a Supervisor,
    path: String,
    timer: FakeTimer,
    parent: Parent,
    observer: Shared<Observer>,
    services: MemoryServices<FakeTimer>,
    stop: Arc<AtomicBool>,
) -> SupervisorFuture<'a> {
    let mine = services.for_owner(&path);
    let templates = services.templates_of(&path);
    let first_id = observer.borrow().next_ids.get(&path).copied().unwrap_or(1);
    let inherited = match &parent {
        Parent::Root(_) => None,
        Parent::Supervisor { watchdog, .. } => *watchdog,
    };
    let machine = sup.machine(path, first_id, inherited);
    // A child supervisor shows life to its parent from its start on.
    let parent_alive = match &parent {
        Parent::Supervisor { .. } => machine.watchdog().map(|_| timer.now()),
        Parent::Root(_) => None,
    };
    let grant = Grant {
        budget: machine.budget(timer.now()),
        as_of: 0,
    };
    let mut sim = Sim {
        sup,
        running: Running(sup.children.iter().map(|_| None).collect()),
        leases: Arc::new(Mutex::new(Leases::new(machine.leasable(), grant))),
        machine,
        timer,
        notes: Arc::default(),
        restarted: 0,
        stop,
        stopping: false,
        child_stops: sup.children.iter().map(|_| None).collect(),
        worker_stops: sup.children.iter().map(|_| None).collect(),
        asked: Vec::new(),
        parent,
        observer,
        services,
        mine,
        templates,
        dynamic: Vec::new(),
        terminating: Vec::new(),
        host: Host::default(),
        hosted: sup.children.iter().map(|_| false).collect(),
        parent_alive,
        ending: None,
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
    /// Waits for a child's exit or note, a stop request, or the machine's
    /// next timeout, and feeds it to the machine; the outcome once the
    /// supervisor exits.
    async fn step(&mut self) -> Option<Outcome> {
        let timer = &self.timer;
        let was_hung = self.host.is_hung();
        // What keeps the simulation going: the machine's deadlines, but
        // those to show life of processes that do (all but a hung host).
        // Signs of life, and those deadlines, are waited for in the
        // background: a tree that only shows life has stalled.
        let decisions = self.machine.poll_timeout_but_liveness();
        let hung_by = self
            .machine
            .alive_by(Watched::Host)
            .filter(|_| self.host.up && was_hung);
        let host_alive = self.host.next_alive.filter(|_| !was_hung);
        let background = self
            .machine
            .poll_timeout()
            .into_iter()
            .chain(host_alive)
            .chain(self.parent_alive)
            .min();
        let until = |at: Instant| at.saturating_duration_since(timer.now());
        let mut sleep = decisions
            .into_iter()
            .chain(hung_by)
            .min()
            .map(|at| timer.sleep(until(at)));
        let mut idle = background.map(|at| timer.sleep_in_background(until(at)));
        let (running, notes, stop, stopping, templates, asked, hung, supervisors) = (
            &mut self.running,
            &self.notes,
            &self.stop,
            self.stopping,
            &self.templates,
            &self.asked,
            &self.host.hung,
            &self.child_stops,
        );
        let happened = futures::future::poll_fn(|cx| {
            if !stopping && stop.load(Ordering::SeqCst) {
                return Poll::Ready(Happened::Stop);
            }
            // Those asked to stop first, in the order asked (polling one
            // again below, in index order, is harmless).
            for n in asked.iter().copied().chain(0..running.0.len()) {
                let Some(slot) = running.0.get_mut(n) else {
                    continue;
                };
                let worker = supervisors.get(n).is_none_or(Option::is_none);
                // A hung host runs none of its workers.
                if worker && hung.load(Ordering::SeqCst) {
                    continue;
                }
                if let Some(child) = slot {
                    let polled = if worker {
                        super::hang::polling(hung, || child.as_mut().poll(cx))
                    } else {
                        child.as_mut().poll(cx)
                    };
                    if let Poll::Ready(exit) = polled {
                        *slot = None;
                        // Hung in that very poll: its host reports nothing
                        // more (the worker ends with it).
                        if worker && hung.load(Ordering::SeqCst) {
                            continue;
                        }
                        return Poll::Ready(Happened::Exited(n, exit));
                    }
                }
            }
            // Hung just now: what to wait for changed.
            if !was_hung && hung.load(Ordering::SeqCst) {
                return Poll::Ready(Happened::Other);
            }
            if notes.lock().is_ok_and(|q| !q.is_empty()) {
                return Poll::Ready(Happened::Other);
            }
            for (t, (_, queue)) in templates.iter().enumerate() {
                if let Poll::Ready(request) = queue.poll_take(cx) {
                    return Poll::Ready(Happened::Request(t, request));
                }
            }
            if let Some(idle) = &mut idle {
                if idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Happened::Other);
                }
            }
            match &mut sleep {
                Some(sleep) => sleep.as_mut().poll(cx).map(|()| Happened::Other),
                None => Poll::Pending,
            }
        })
        .await;
        let now = self.timer.now();
        // Notes were written before any exit that follows them.
        let notes = self
            .notes
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        for (child, note) in notes {
            match note {
                Note::WorkerReady(_) | Note::Ready => self.machine.handle_ready(child, now),
                Note::Restarted {
                    exit,
                    reason,
                    delay,
                    state,
                    ..
                } => {
                    self.restarted += 1;
                    self.machine
                        .handle_restarted(child, exit, reason, delay, state, now);
                }
                Note::Alive { .. } => self.machine.handle_alive(Watched::Child(child), now),
                // Nothing is forked or set up here, so nothing fails to
                // be; no operator sends orders here.
                Note::Exited { .. }
                | Note::Began(_)
                | Note::Ended(_)
                | Note::SetupFailed
                | Note::Answered(_) => {}
            }
        }
        match happened {
            Happened::Exited(n, (exit, reason)) => {
                self.asked.retain(|&m| m != n);
                if let Some(hosted) = self.hosted.get_mut(n) {
                    *hosted = false;
                }
                if let Some(child) = self.machine.child(n) {
                    self.machine.handle_exit_because(child, exit, reason, now);
                }
            }
            Happened::Stop => {
                self.stopping = true;
                self.machine.handle_shutdown(now);
            }
            Happened::Request(t, request) => self.request(t, request, now),
            Happened::Other => {}
        }
        self.show_life(now);
        if self.machine.poll_timeout().is_some_and(|at| at <= now) {
            self.machine.handle_timeout(now);
        }
        self.apply()
    }

    /// Carries out the machine's pending actions; the outcome once it
    /// exited and its worker host is gone.
    fn apply(&mut self) -> Option<Outcome> {
        loop {
            self.report();
            if let (Some(outcome), false) = (self.ending, self.host.up) {
                return Some(outcome);
            }
            match self.machine.poll_action()? {
                Action::Start(child) => self.start(child),
                Action::Stop(children) => {
                    for child in children {
                        let n = child.get();
                        // A hung host carries out nothing.
                        if self.child_stops[n].is_none() && self.host.is_hung() {
                            continue;
                        }
                        let listens = self.running.0[n].is_some()
                            && self.worker_stops[n].as_ref().is_some_and(|s| s.request());
                        match self.child_stops[n].as_ref() {
                            // Stopped by its own machine, children first.
                            Some(stop) if self.running.0[n].is_some() => {
                                stop.store(true, Ordering::SeqCst)
                            }
                            // It called `stopping()`: it may return by itself.
                            _ if listens => self.asked.push(n),
                            _ => {
                                drop(self.running.0[n].take());
                                self.hosted[n] = false;
                                self.machine.handle_exit(
                                    child,
                                    ChildExit::Stopped,
                                    self.timer.now(),
                                );
                            }
                        }
                    }
                }
                Action::Kill(children) => {
                    for child in children {
                        let n = child.get();
                        let worker = self.child_stops[n].is_none();
                        // A hung host drops nothing: the machine has it
                        // killed after the drop's grace.
                        if worker && self.host.is_hung() {
                            continue;
                        }
                        drop(self.running.0[n].take());
                        self.asked.retain(|&m| m != n);
                        let killed = if worker {
                            // A worker's future is dropped: it is stopped.
                            self.hosted[n] = false;
                            ChildExit::Stopped
                        } else {
                            ChildExit::Signaled(crate::exit::SIGKILL)
                        };
                        self.machine.handle_exit(child, killed, self.timer.now());
                    }
                }
                Action::KillHost(_) => self.kill_host(),
                Action::Grant => {
                    let grant = Grant {
                        budget: self.machine.budget(self.timer.now()),
                        as_of: self.restarted,
                    };
                    if let Ok(mut leases) = self.leases.lock() {
                        leases.grant(grant);
                    }
                }
                Action::Exit(outcome) => {
                    self.ending = Some(outcome);
                    // Its workers all ended: a host that is not hung exits
                    // at once; a hung one is killed at the machine's
                    // deadline.
                    if self.host.up && !self.host.is_hung() {
                        self.host = Host::default();
                        let exit = self
                            .machine
                            .handle_host_exit(ChildExit::Stopped, self.timer.now());
                        debug_assert_eq!(exit, ChildExit::Stopped);
                    }
                }
            }
        }
    }

    /// Kills the simulated worker host: every worker it ran exits with it
    /// (as a SIGKILLed host's, unless the machine says it hung).
    fn kill_host(&mut self) {
        let now = self.timer.now();
        let mut workers = Vec::new();
        for n in 0..self.hosted.len() {
            if std::mem::take(&mut self.hosted[n]) {
                drop(self.running.0[n].take());
                workers.extend(ChildIdx::new(n));
            }
        }
        self.asked.retain(|&n| self.running.0[n].is_some());
        self.host = Host::default();
        let exit = self
            .machine
            .handle_host_exit(ChildExit::Signaled(crate::exit::SIGKILL), now);
        for child in workers {
            self.machine.handle_exit(child, exit, now);
        }
    }

    /// The simulated host shows life at `now` (unless it is hung), and next
    /// a quarter period on.
    fn show_life_host(&mut self, now: Instant) {
        if let (Some(period), true, false) =
            (self.machine.watchdog(), self.host.up, self.host.is_hung())
        {
            self.host.next_alive = Some(now + period / 4);
            self.machine.handle_alive(Watched::Host, now);
        }
    }

    /// Shows life as the simulated host (unless hung) and this supervisor
    /// (to its parent) do, four times per watchdog period.
    fn show_life(&mut self, now: Instant) {
        let Some(period) = self.machine.watchdog() else {
            return;
        };
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.host.next_alive) {
            self.show_life_host(now);
        }
        if due(self.parent_alive) {
            self.parent_alive = Some(now + period / 4);
            if let Parent::Supervisor { notes, index, .. } = &self.parent {
                if let Ok(mut q) = notes.lock() {
                    q.push_back((*index, Note::Alive { thread: 0 }));
                }
            }
        }
    }

    /// Turns the machine's decisions into events, as a supervisor process
    /// does, and passes readiness up.
    /// A request to this supervisor about its dynamic children.
    fn request(&mut self, t: usize, request: Received, now: std::time::Instant) {
        let Some(reply) = request.reply else { return };
        let answer: Answer = match codec::strict::<Request>(&request.body) {
            Ok(Request::Start(arg)) => self.add(t, &arg, now),
            Ok(Request::Terminate(id)) => match dynamic::remove(&mut self.machine, id, now) {
                Ok(_) => {
                    self.terminating.push((id, reply));
                    return;
                }
                Err(refusal) => Err(refusal),
            },
            Err(_) => return,
        };
        reply.reply(dynamic::encode_answer(&answer));
    }

    fn add(&mut self, t: usize, arg: &[u8], now: std::time::Instant) -> Answer {
        let Some(template) = self.sup.templates.get(t) else {
            return Err(Refusal::BadArgument("no such template".to_owned()));
        };
        let (child, id, worker) = dynamic::add(&mut self.machine, template, arg, now)?;
        self.observer
            .borrow_mut()
            .next_ids
            .insert(self.machine.path().to_owned(), self.machine.next_id());
        let n = child.get();
        if self.dynamic.len() <= n {
            self.dynamic.resize_with(n + 1, || None);
            self.running.0.resize_with(n + 1, || None);
            self.child_stops.resize_with(n + 1, || None);
            self.worker_stops.resize_with(n + 1, || None);
            self.hosted.resize(n + 1, false);
        }
        self.dynamic[n] = Some(Dynamic {
            worker: Rc::from(worker),
            template: template.name.clone(),
            id,
        });
        Ok(Some(id))
    }

    fn report(&mut self) {
        while let Some(report) = self.machine.poll_report() {
            if report == Report::Ready {
                match &self.parent {
                    Parent::Root(observer) => observer.borrow_mut().observed.ready(),
                    Parent::Supervisor { notes, index, .. } => {
                        if let Ok(mut q) = notes.lock() {
                            q.push_back((*index, Note::Ready));
                        }
                    }
                }
            }
            if let Some((subject, kind)) = self.machine.event(&report) {
                let path = match subject {
                    Subject::Supervisor => self.machine.path().to_owned(),
                    Subject::Child(child) => self.child_path(child),
                };
                self.observer.borrow_mut().event(path, kind);
            }
            if let Report::Removed { child, id } = report {
                if let Some(slot) = self.dynamic.get_mut(child.get()) {
                    *slot = None;
                }
                let answer: Answer = Ok(None);
                let (answered, waiting) = std::mem::take(&mut self.terminating)
                    .into_iter()
                    .partition(|(waiting, _)| *waiting == id);
                self.terminating = waiting;
                for (_, reply) in answered {
                    reply.reply(dynamic::encode_answer(&answer));
                }
            }
        }
    }

    fn child_path(&self, child: ChildIdx) -> String {
        match self.dynamic.get(child.get()).and_then(Option::as_ref) {
            Some(d) => format!("{}/{}#{}", self.machine.path(), d.template, d.id),
            None => self.sup.child_path(self.machine.path(), child.get()),
        }
    }

    /// Starts child `child`; its start is reported first, as its parent
    /// reports a process's start before the process reports anything.
    fn start(&mut self, child: ChildIdx) {
        let n = child.get();
        let path = self.child_path(child);
        if let Some(d) = self.dynamic.get(n).and_then(Option::as_ref) {
            let worker = WorkerRef::Built(d.worker.clone());
            self.observer
                .borrow_mut()
                .event(path, EventKind::Started(NodeKind::Worker));
            if !self.host_runs(n) {
                return;
            }
            if let Ok(mut leases) = self.leases.lock() {
                leases.set_policy(child, worker_policy(worker.get()));
                leases.start(child, self.machine.lease(child));
            }
            self.running.0[n] = Some(self.worker(child, worker));
            return;
        }
        let kind = match &self.sup.children[n] {
            Child::Worker(_) => NodeKind::Worker,
            Child::Supervisor(_) => NodeKind::Supervisor,
        };
        self.observer
            .borrow_mut()
            .event(path.clone(), EventKind::Started(kind));
        let future: ChildFuture<'a> = match &self.sup.children[n] {
            Child::Worker(worker) => {
                if !self.host_runs(n) {
                    return;
                }
                if let Ok(mut leases) = self.leases.lock() {
                    leases.start(child, self.machine.lease(child));
                }
                self.worker(child, WorkerRef::Static(worker.as_ref()))
            }
            Child::Supervisor(sup) => {
                let stop = Arc::new(AtomicBool::new(false));
                self.child_stops[n] = Some(stop.clone());
                let parent = Parent::Supervisor {
                    notes: self.notes.clone(),
                    index: child,
                    watchdog: self.machine.watchdog(),
                };
                let fut = supervise_with_stop(
                    sup,
                    path,
                    self.timer.clone(),
                    parent,
                    self.observer.clone(),
                    self.services.clone(),
                    stop,
                );
                Box::pin(fut.map(|outcome| match outcome {
                    Outcome::Normal => (ChildExit::Normal, None),
                    Outcome::GaveUp => (ChildExit::GaveUp, None),
                }))
            }
        };
        self.running.0[n] = Some(future);
    }

    /// Worker `n` runs in the simulated host, which begins now if it does
    /// not run (with a watchdog, showing life at once): whether it starts
    /// there (a hung host starts nothing).
    fn host_runs(&mut self, n: usize) -> bool {
        if !self.host.up {
            let now = self.timer.now();
            self.host = Host {
                up: true,
                hung: Arc::default(),
                next_alive: None,
            };
            self.machine.handle_host_started(now);
            self.show_life_host(now);
        }
        self.hosted[n] = true;
        !self.host.is_hung()
    }

    /// Worker `child` in the simulated host: its runs, restarted in place
    /// while its lease allows.
    fn worker(&mut self, child: ChildIdx, worker: WorkerRef<'a>) -> ChildFuture<'a> {
        let (leases, timer, notes) = (self.leases.clone(), self.timer.clone(), self.notes.clone());
        let ready = notes.clone();
        let stop = Arc::new(StopFlag::default());
        self.worker_stops[child.get()] = Some(stop.clone());
        let flag = stop.clone();
        let services = self.mine.clone();
        let path = self.child_path(child);
        let run = move || {
            let ready = ready.clone();
            let span = tracing::info_span!("worker", path = %path, pid = std::process::id());
            run_worker(
                worker.get(),
                flag.clone(),
                move || {
                    if let Ok(mut q) = ready.lock() {
                        q.push_back((child, Note::WorkerReady(child)));
                    }
                },
                Some(services.clone()),
                span,
            )
        };
        // Its first run starts now (`init` is called at the start, in order).
        let first = run();
        Box::pin(async move {
            let note = |note: Note| {
                if let Ok(mut q) = notes.lock() {
                    q.push_back((child, note));
                }
            };
            let panicked = |_: &_| {};
            run_leased(
                child,
                first,
                run,
                &stop,
                panicked,
                &leases,
                &timer,
                Duration::ZERO,
                note,
            )
            .await
        })
    }
}
