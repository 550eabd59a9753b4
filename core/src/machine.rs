//! The supervisor state machine: every restart decision, and every
//! deadline of a supervisor, is made here.
//!
//! Sans-IO, in the manner of quinn-proto: the machine owns one supervisor's
//! view of its children and their restart history, takes events with the time
//! they happened (`handle_*`), and hands back what to do (`poll_action`,
//! `poll_timeout`). It never reads a clock, forks, or sleeps. The simulation
//! ([`crate::testing`]) and the process engine (`supertrees-engine`) are thin
//! drivers around it, so a timeline proven in simulation holds in processes.
//!
//! The delay before a restart is decided here alone, including the floor
//! under it when the engine itself failed to fork or set up the child
//! ([`ChildExit::is_engine_failure`], [`engine_floor`]): drivers never
//! delay or hasten a restart of their own accord.
//!
//! Call order for a driver: `handle_start` once; then, after every
//! `handle_*`, drain `poll_report` and `poll_action`, and sleep until
//! `poll_timeout` (or the next thing that happens).
//!
//! ## Deadlines
//!
//! Every deadline of a supervisor is a timer of the machine, decided on its
//! state and reported by `poll_timeout`; `handle_timeout` acts on those that
//! passed. Drivers keep none of their own (the engine's only other waits
//! are its own: sending its signs of life, and when to read the scheduler
//! about a silent process).
//!
//! | deadline | set by | at | then |
//! |---|---|---|---|
//! | restart | an exit its policy restarts | its backoff (at least [`engine_floor`] after the engine's own failure) | [`Action::Start`] |
//! | group restart | a failure under `OneForAll`/`RestForOne` | once the group stopped, the latest backoff | [`Action::Start`] of each, in order |
//! | start timeout | a start of a `Notify` worker | `start_timeout` on, unless it is ready | [`Action::Kill`]; it fails [`ChildExit::StartTimeout`] |
//! | stop | [`Action::Stop`] | its [`Shutdown`] time on | [`Action::Kill`] |
//! | drop grace | [`Action::Kill`] of a worker | [`DROP_GRACE`] on, unless it ended | [`Action::KillHost`] ([`HostKill::DropOverdue`]) |
//! | liveness, worker host | [`handle_host_started`](Machine::handle_host_started): 2 periods; [`handle_alive`](Machine::handle_alive): 1; [`handle_reprieve`](Machine::handle_reprieve): [`Reprieve::delay`] | with a watchdog | [`Action::KillHost`] ([`HostKill::Hung`]); its workers exit [`ChildExit::Hung`] |
//! | liveness, child supervisor | its start (and [`handle_forked`](Machine::handle_forked)): 2 periods (its own, else this supervisor's); then as the host's | with a watchdog | [`Action::Kill`]; it exits [`ChildExit::Hung`] |
//! | host exit | [`Action::Exit`], while a host runs | [`host_exit_grace`] on | [`Action::KillHost`] ([`HostKill::ExitOverdue`]) |
//! | cut channel | [`handle_host_cut`](Machine::handle_host_cut) | [`CUT_GRACE`] on | [`Action::KillHost`] ([`HostKill::Cut`]) |
//! | operator's order | [`handle_order`](Machine::handle_order) | [`control::bound`] on (the child's shutdown time and 5 s) | [`Report::Answered`] with [`Refusal::TimedOut`] |
//!
//! A watched process found silent at its deadline is killed unless the
//! driver tells the machine first that it is not hung (the engine reads
//! the scheduler: starved of CPU, exiting), which moves its deadline on
//! ([`Reprieve`]; starved is logged once). The simulation has no scheduler
//! to read: a simulated host hung by `testing::hang()` is killed at its
//! deadline.
//!
//! ## Children started at run time
//!
//! A machine made [`with_dynamic`](Machine::with_dynamic) also serves
//! children started at run time, as OTP's `DynamicSupervisor`:
//! [`handle_add`](Machine::handle_add) starts one at once (never queued
//! behind the children given to [`Machine::new`], whatever the strategy) and
//! names it by a [`ChildId`], unique for the machine's whole life;
//! [`handle_remove`](Machine::handle_remove) stops it (as any stop, with its
//! kill deadline) and removes it. They live in slots after the static
//! children, and a removed child's slot is reused (the lowest first), so a
//! [`ChildIdx`] may name several children one after the other, never at
//! once; the id is what tells them apart. A slot is reused only once the
//! driver has polled its [`Report::Removed`]: every report and action a
//! driver handles about a slot concerns the child that holds it when the
//! driver handles it, however late the driver polls.
//!
//! * A dynamic child is restarted alone, by its own policies, whatever the
//!   strategy: never part of a group restart, nor stopped by one; it never
//!   holds up the ordered start of static children, and the supervisor's
//!   readiness is its static children's. A worker among them may be
//!   restarted in place by its host ([`lease`](Machine::lease)) under every
//!   strategy.
//! * Its restarts count towards the intensity as any child's; giving up, or
//!   a shutdown, stops it with the others, in reverse order of position.
//! * It leaves the tree ([`Report::Removed`], after its last
//!   [`Report::Exited`]) once it stopped after `handle_remove`, was removed
//!   while not running (waiting for its restart), or ended for good by its
//!   policy while the supervisor runs. One stopped by a shutdown or giving
//!   up stays, unless its removal had been asked.
//! * Such a supervisor never ends for lack of running children: it runs
//!   until it is shut down or gives up.
//!
//! Besides the exact timelines of `machine/tests.rs`, the model-based
//! property tests of `machine/model.rs` drive the machine through random
//! trees and event sequences and check its invariants (intensity, stop
//! order, one exit per start, backoff delays, reports) against a model of
//! the documented rules.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod child;

pub use child::{ChildIdx, ChildPolicy, ChildRecord, RecordState};

use crate::control::{self, Answer, Busy, Op, Order, Refusal};
use crate::policy::{BackoffState, RestartHistory};
use crate::{ChildExit, ChildId, EventKind, Intensity, Shutdown, Strategy};

/// What a driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (or restart) this child. A worker that
    /// [`lease`](Machine::lease) names may be restarted in place by its host.
    Start(ChildIdx),
    /// Ask these children to stop, in this order (reverse start order: a
    /// run of workers of one host, stopped one after the other, or one child
    /// supervisor), then report each exit with `handle_exit`.
    Stop(Vec<ChildIdx>),
    /// These children did not stop within their [`Shutdown`]
    /// time (or it is `Kill`), a worker was not ready within its start
    /// timeout, or a child supervisor showed no life by its watchdog
    /// deadline (its exit is then [`ChildExit::Hung`]): kill them (a
    /// worker: drop its future; its host is killed if it has not ended
    /// within [`DROP_GRACE`]), then report each exit.
    Kill(Vec<ChildIdx>),
    /// The budget of in-place restarts shrank because this machine recorded
    /// a restart of its own: send the worker host a new [`Grant`] of
    /// [`budget`](Machine::budget).
    Grant,
    /// Kill the worker host (SIGKILL), for this reason; the exits of the
    /// workers it ran follow ([`handle_host_exit`](Machine::handle_host_exit),
    /// then `handle_exit` for each).
    KillHost(HostKill),
    /// Every child has stopped: the supervisor ends with this outcome. A
    /// worker host that runs is told to exit now; the machine has it killed
    /// ([`HostKill::ExitOverdue`]) if it has not within the supervisor's
    /// shutdown time.
    Exit(Outcome),
}

/// Why the machine has a worker host killed ([`Action::KillHost`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKill {
    /// It showed no life by its watchdog deadline (and the engine did not
    /// find it starved): its workers' exit is [`ChildExit::Hung`].
    Hung,
    /// These workers, which it was told to drop, did not report their end
    /// within [`DROP_GRACE`]: a worker blocks its thread.
    DropOverdue(Vec<ChildIdx>),
    /// The supervisor ended and the host did not exit within the
    /// supervisor's shutdown time ([`host_exit_grace`]).
    ExitOverdue,
    /// Its channel was cut and it did not exit within [`CUT_GRACE`]: it
    /// runs on without a way to be told, or to tell.
    Cut,
}

/// A process whose signs of life a supervisor with a watchdog awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// Its worker host.
    Host,
    /// A child supervisor.
    Child(ChildIdx),
}

impl fmt::Display for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Watched::Host => f.write_str("worker host"),
            Watched::Child(child) => write!(f, "child supervisor {child}"),
        }
    }
}

/// Why a process silent at its watchdog deadline is not hung (yet), as the
/// engine's look at the scheduler found ([`Machine::handle_reprieve`]): its
/// deadline moves on by [`Reprieve::delay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprieve {
    /// Runnable, but given next to no CPU: half a period more, for as long
    /// as it is (logged once).
    Starved,
    /// It exits (its main thread returned): half a period more to end.
    Exiting,
    /// It was looked at late (its supervisor was busy or starved itself):
    /// half a period more, to judge it over.
    LookedLate,
    /// What it was judged over is too short to tell: a quarter period more.
    ShortWindow,
}

impl Reprieve {
    /// How much later a process watched with `period` is due to show life.
    pub fn delay(self, period: Duration) -> Duration {
        match self {
            Reprieve::Starved | Reprieve::Exiting | Reprieve::LookedLate => period / 2,
            Reprieve::ShortWindow => period / 4,
        }
    }
}

/// How long a worker host told to drop a worker's future may take to report
/// the worker's end before it is killed: a future is dropped between two
/// polls, so a worker that blocks its thread stalls its host.
pub const DROP_GRACE: Duration = Duration::from_secs(1);

/// How long a worker host whose channel is cut may take to exit before it
/// is killed: a host that ends closes its channel a moment before it is
/// reaped; one that runs on without its channel (a worker closed or broke
/// its descriptors) can no more be told what to do, nor tell, so it is
/// killed, and its workers come back in a new host with a new channel.
pub const CUT_GRACE: Duration = Duration::from_millis(100);

/// How long a worker host has to exit once its supervisor ended, when the
/// supervisor's shutdown is [`Shutdown::Infinity`].
pub const HOST_EXIT_INFINITY: Duration = Duration::from_secs(5);

/// How long a worker host has to exit after its supervisor, whose shutdown
/// is `shutdown`, ended: its timeout, none for `Kill`, and
/// [`HOST_EXIT_INFINITY`] for `Infinity` (its workers have all stopped by
/// then: what is left is the host's own end).
pub fn host_exit_grace(shutdown: Shutdown) -> Duration {
    shutdown.kill_after().unwrap_or(HOST_EXIT_INFINITY)
}

/// What the machine decided, for the lifecycle events a driver reports
/// (starts are reported by the driver itself, which knows the pids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Child `child` exited with `exit`; it runs again after `restart`, or
    /// not at all (`None`).
    Exited {
        child: ChildIdx,
        exit: ChildExit,
        restart: Option<Duration>,
        /// Why it failed, when its driver knows (a panic's message).
        reason: Option<String>,
    },
    /// Child `child` declared itself ready.
    ChildReady(ChildIdx),
    /// Every child is ready (or done): the supervisor is up. Once.
    Ready,
    /// The supervisor stops all its children, with this outcome.
    Stopping(Outcome),
    /// Child `child`, started at run time as `id`, is gone (after its last
    /// `Exited`, if it was running): its slot may take another child.
    Removed { child: ChildIdx, id: ChildId },
    /// An operator's order ([`Machine::handle_order`]) came to this: the
    /// driver passes it back to who asked.
    Answered(Answer),
    /// An operator stopped child `child` ([`Op::Stop`]): it stays down
    /// until an operator starts it (after its `Exited`, if it was running).
    Held(ChildIdx),
}

/// Why [`Machine::handle_add`] started no child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The supervisor takes no children at run time
    /// (see [`Machine::with_dynamic`]).
    NotDynamic,
    /// The supervisor already has `max` children started at run time.
    Full { max: u32 },
    /// The supervisor is stopping all its children (or has ended).
    ShuttingDown,
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::NotDynamic => {
                f.write_str("the supervisor does not take children at run time")
            }
            AddError::Full { max } => {
                let plural = if *max == 1 { "" } else { "ren" };
                write!(
                    f,
                    "the supervisor is full: it takes at most {max} child{plural} at run time"
                )
            }
            AddError::ShuttingDown => f.write_str("the supervisor is shutting down"),
        }
    }
}

/// Why [`Machine::handle_remove`] removed no child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveError {
    /// No child of the supervisor has this id: it never had, the child was
    /// already removed, or the supervisor has ended.
    Unknown,
}

impl fmt::Display for RemoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveError::Unknown => {
                f.write_str("no such child: it was never started, or is already gone")
            }
        }
    }
}

/// What a lifecycle event made from a [`Report`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// One of the supervisor's children.
    Child(ChildIdx),
    /// The supervisor itself.
    Supervisor,
}

/// How a supervisor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Its work is done, or it was asked to shut down.
    Normal,
    /// Its restart intensity was exceeded.
    GaveUp,
}

/// How many in-place restarts a worker host may still make without asking:
/// `budget` (`None`: unlimited) as of the moment its supervisor had
/// received `as_of` of its `Restarted` notes. The host subtracts the
/// restarts it made since, so a grant and restarts crossing on the wire
/// never double-spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub budget: Option<u32>,
    pub as_of: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started yet.
    Idle,
    /// To start (again, if `restart`) once every earlier sibling is ready:
    /// OneForAll and RestForOne start children one at a time, as OTP.
    Queued {
        restart: bool,
    },
    Running {
        since: Instant,
    },
    /// Asked to stop; its exit is awaited. It is killed at `kill_at`;
    /// `killed` once it was. A worker killed because it was not ready
    /// within its start timeout has `timed_out`: its exit is then the
    /// failure [`ChildExit::StartTimeout`].
    Stopping {
        kill_at: Option<Instant>,
        killed: bool,
        timed_out: Option<Duration>,
    },
    /// OneForOne restart due at this time.
    Waiting {
        at: Instant,
    },
    /// Stopped (or exited) as part of a group restart, to start with the group.
    Pending,
    /// Finished for good.
    Done,
}

impl State {
    fn is_stopping(self) -> bool {
        matches!(self, State::Stopping { .. })
    }
}

impl ChildSlot {
    /// A child with `policy` that has not run yet.
    fn new(policy: ChildPolicy, kind: Kind) -> Self {
        Self {
            record: ChildRecord::new(policy, RecordState::default()),
            state: State::Idle,
            kind,
            ready: false,
            engine_failures: 0,
            alive: None,
            hung: false,
            restart_asked: false,
            held: false,
            indexed: Indexed::default(),
        }
    }

    /// Whether this child was started at run time and its removal asked.
    fn is_removing(&self) -> bool {
        matches!(self.kind, Kind::Dynamic { removing: true, .. })
    }
}

/// What a slot of the machine's children holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One of the children given to [`Machine::new`].
    Static,
    /// A child started at run time as `id`; `removing` once its removal was
    /// asked ([`Machine::handle_remove`]).
    Dynamic { id: ChildId, removing: bool },
    /// The slot of a removed dynamic child, free for the next one (its
    /// state is `Done`).
    Free,
}

#[derive(Debug)]
struct ChildSlot {
    record: ChildRecord,
    state: State,
    kind: Kind,
    /// Whether its current run declared itself ready.
    ready: bool,
    /// Consecutive failures of the engine's machinery to start it
    /// ([`ChildExit::is_engine_failure`]): what its [`engine_floor`] grows
    /// with. Reset once it runs (it is ready, or exits any other way).
    engine_failures: u32,
    /// With a watchdog, a child supervisor's deadline to show life by
    /// (set at each start).
    alive: Option<Liveness>,
    /// It was killed for showing no life: its exit is [`ChildExit::Hung`].
    hung: bool,
    /// Its stop under way is an operator's restart: once it stopped, it
    /// starts again at once.
    restart_asked: bool,
    /// An operator stopped it ([`Op::Stop`]): it stays down, whatever its
    /// policy and its group, until an operator starts it.
    held: bool,
    /// What the machine's indexes hold for it (see [`Index`]).
    indexed: Indexed,
}

/// When a watched process (the worker host, a child supervisor) must next
/// show life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Liveness {
    period: Duration,
    /// It is killed as hung if it has not shown life by then.
    by: Instant,
    /// It was found starved before (logged once).
    starved: bool,
}

impl Liveness {
    /// A process started `now`, watched with `period`: its first sign of
    /// life may take its start-up, so it has two periods.
    fn started(period: Duration, now: Instant) -> Self {
        Self {
            period,
            by: now + period.saturating_mul(2),
            starved: false,
        }
    }
}

/// What the machine knows of the supervisor's worker host, and its
/// deadlines.
#[derive(Debug, Default, Clone, Copy)]
struct HostState {
    /// It runs (from [`Machine::handle_host_started`] to
    /// [`Machine::handle_host_exit`]).
    up: bool,
    /// With a watchdog: when it must show life by.
    alive: Option<Liveness>,
    /// When it is killed if it has not exited: the supervisor ended.
    exit_by: Option<Instant>,
    /// When it is killed if it has not exited: its channel was cut.
    cut_by: Option<Instant>,
    /// It was killed (`Some`), as hung (`Some(true)`).
    killed: Option<bool>,
}

impl HostState {
    /// Its next deadline, while it runs and was not killed.
    fn deadline(&self) -> Option<Instant> {
        if !self.up || self.killed.is_some() {
            return None;
        }
        let alive = self.alive.map(|a| a.by);
        alive
            .into_iter()
            .chain(self.exit_by)
            .chain(self.cut_by)
            .min()
    }
}

/// What [`Index`] holds for one child, so that its entries can be taken
/// out when its state changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Indexed {
    /// Its restart time (`Waiting`) or start timeout (running, not ready).
    run: Option<Instant>,
    /// Its kill deadline (`Stopping`), or for a worker dropped, when its
    /// host is killed if it has not ended.
    kill: Option<Instant>,
    /// A child supervisor's deadline to show life by.
    alive: Option<Instant>,
    /// Whether it is `Stopping`, or running but killed as hung.
    stopping: bool,
    /// Whether it is neither `Done` nor `Idle`.
    live: bool,
}

impl ChildSlot {
    /// What the indexes must hold for this child in its current state.
    fn wanted_index(&self) -> Indexed {
        let run = match self.state {
            State::Waiting { at } => Some(at),
            State::Running { since } if !self.ready => {
                self.record.policy.start_timeout.map(|limit| since + limit)
            }
            _ => None,
        };
        let kill = match self.state {
            State::Stopping { kill_at, .. } => kill_at,
            _ => None,
        };
        let alive = match self.state {
            State::Running { .. } | State::Stopping { killed: false, .. } => {
                self.alive.map(|a| a.by)
            }
            _ => None,
        };
        // One killed as hung is on its way out, as a stop is.
        let dying = self.hung && matches!(self.state, State::Running { .. });
        Indexed {
            run,
            kill,
            alive,
            stopping: self.state.is_stopping() || dying,
            live: !matches!(self.state, State::Done | State::Idle),
        }
    }
}

/// The children by what the machine looks for on every event, so that an
/// event costs O(log n) however many children a supervisor has (100 000
/// children started at run time): deadlines in time order, and counts.
/// Kept by [`Machine::reindex`] after every change of a child's state or
/// readiness.
#[derive(Debug, Default)]
struct Index {
    /// Restart times and start timeouts, with the child.
    run: BTreeSet<(Instant, usize)>,
    /// Kill deadlines of stops (and drops), with the child.
    kill: BTreeSet<(Instant, usize)>,
    /// Child supervisors' deadlines to show life by, with the child.
    alive: BTreeSet<(Instant, usize)>,
    /// Children stopping: static ones, and ones started at run time.
    stopping_static: usize,
    stopping_dynamic: usize,
    /// Children neither `Done` nor `Idle`.
    live: usize,
}

/// The least delay before a child whose process the engine could not fork
/// or set up runs again: [`ENGINE_FLOOR_MIN`] after the first such failure
/// in a row, doubling with each one after, up to [`ENGINE_FLOOR_MAX`].
const ENGINE_FLOOR_MIN: Duration = Duration::from_millis(10);
/// The cap of [`engine_floor`].
const ENGINE_FLOOR_MAX: Duration = Duration::from_secs(1);

/// The floor delay after `failures` (≥ 1) consecutive failures of the
/// engine's machinery for one child, whatever its backoff: a machine out
/// of processes or file descriptors must not make supervisors spin. 10, 20,
/// 40, ... ms, then 1 s.
fn engine_floor(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ENGINE_FLOOR_MIN
        .saturating_mul(1 << doublings)
        .min(ENGINE_FLOOR_MAX)
}

/// A group restart under OneForAll/RestForOne: stop the members that still
/// run (in reverse order), then start them all (in order) at `at`.
#[derive(Debug)]
struct Group {
    members: BTreeSet<usize>,
    at: Instant,
}

#[derive(Debug)]
enum Phase {
    Created,
    Running,
    ShuttingDown(Outcome),
    Exited,
}

/// One supervisor's children, their restart history and what happens next.
///
/// Methods come in three groups, as in quinn-proto's `Connection`:
/// getters; `handle_*`, which feed in what happened with the time it
/// happened; and `poll_*`, which hand back what to do and report. After any
/// `handle_*`, drain `poll_report` and `poll_action`, then wait for the next
/// event or `poll_timeout`.
#[derive(Debug)]
pub struct Machine {
    path: String,
    children: Vec<ChildSlot>,
    strategy: Strategy,
    intensity: Intensity,
    history: RestartHistory,
    group: Option<Group>,
    phase: Phase,
    actions: VecDeque<Action>,
    reports: VecDeque<Report>,
    /// Whether `Report::Ready` has been issued.
    ready: bool,
    /// The reason of the exit being handled (`handle_exit_because`).
    reason: Option<String>,
    /// How many children were given to `new`: the static ones, in the
    /// first slots; dynamic children take the slots after them.
    statics: usize,
    /// Whether it serves children started at run time (`with_dynamic`).
    dynamic: bool,
    /// At most how many dynamic children may exist at once.
    max_children: Option<u32>,
    /// The number of the next dynamic child's [`ChildId`], never reused
    /// (see [`with_dynamic`](Self::with_dynamic)).
    next_id: u64,
    /// Where each dynamic child is, by id.
    ids: HashMap<ChildId, usize>,
    /// Free dynamic slots whose [`Report::Removed`] the driver has polled:
    /// the next child takes the lowest.
    free: BTreeSet<usize>,
    /// How many dynamic children exist.
    dynamic_count: usize,
    /// Whether a static child may be restarted in place by its host.
    static_leasable: bool,
    index: Index,
    /// How this supervisor's worker host is stopped once it ended.
    shutdown: Shutdown,
    /// The watchdog period of this supervisor's processes: its worker
    /// host, and the child supervisors without one of their own.
    watchdog: Option<Duration>,
    host: HostState,
    /// Operators' orders not answered yet, in the order they came.
    orders: Vec<Pending>,
}

/// An operator's order about child `child` (or, `sent_down`, about a
/// node below child supervisor `child`, sent on to it), answered when the
/// child is started again (or the answer comes up), or with
/// [`Refusal::TimedOut`] at `by`.
#[derive(Debug)]
struct Pending {
    order: Order,
    child: usize,
    by: Instant,
    bound: Duration,
    sent_down: bool,
}

impl Machine {
    /// A machine for the supervisor at `path` with `children`, in order,
    /// which restarts them by `strategy` within `intensity`. Its worker host
    /// has the supervisor's `shutdown` time to exit once the supervisor
    /// ended; with a `watchdog` period, its worker host and its child
    /// supervisors (with their own period, else this one) must show life
    /// within each period.
    pub fn new(
        path: String,
        children: impl IntoIterator<Item = ChildPolicy>,
        strategy: Strategy,
        intensity: Intensity,
        shutdown: Shutdown,
        watchdog: Option<Duration>,
    ) -> Self {
        // `ChildIdx` is a u32: a supervisor with more children could not be
        // built in memory anyway.
        let children = children
            .into_iter()
            .take(u32::MAX as usize)
            .map(|policy| ChildSlot::new(policy, Kind::Static))
            .collect::<Vec<_>>();
        let static_leasable = strategy == Strategy::OneForOne
            && children.iter().any(|c| !c.record.policy.is_supervisor);
        // Room for what a start decides (a `Start` per child) and reports
        // (a `ChildReady` per child, and the rest): a driver that makes the
        // machine before forking the process that runs it (the engine) hands
        // it queues that need not grow there, where every reallocation
        // writes to (and so copies) pages shared with its parent.
        let (actions, reports) = (children.len() + 4, 2 * children.len() + 4);
        Self {
            statics: children.len(),
            path,
            children,
            strategy,
            intensity,
            history: RestartHistory::default(),
            group: None,
            phase: Phase::Created,
            actions: VecDeque::with_capacity(actions),
            reports: VecDeque::with_capacity(reports),
            ready: false,
            reason: None,
            dynamic: false,
            max_children: None,
            next_id: 1,
            ids: HashMap::new(),
            free: BTreeSet::new(),
            dynamic_count: 0,
            static_leasable,
            index: Index::default(),
            shutdown,
            watchdog,
            host: HostState::default(),
            orders: Vec::new(),
        }
    }

    /// This supervisor also serves children started at run time
    /// ([`handle_add`](Self::handle_add)), at most `max_children` of them
    /// at once (`None`: no bound), numbered from `first_id` on. Like OTP's
    /// `DynamicSupervisor`, it never ends on its own for having no child
    /// left running: only when shut down, or when it gives up.
    ///
    /// The ids of one machine are never reused; a driver that makes a new
    /// machine for a new incarnation of the same supervisor gives it a
    /// `first_id` above every id the earlier ones handed out, so that ids
    /// are never reused for the tree's whole life (0 counts as 1).
    #[must_use]
    pub fn with_dynamic(mut self, max_children: Option<u32>, first_id: u64) -> Self {
        self.dynamic = true;
        self.max_children = max_children;
        self.next_id = first_id.max(1);
        self
    }

    // ----- getters

    /// The supervisor's path in the tree, e.g. `root/1/0`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The intensity this supervisor applies.
    pub fn intensity(&self) -> Intensity {
        self.intensity
    }

    /// The watchdog period of this supervisor's processes (`None`: not
    /// watched): its worker host shows life four times per period.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The watchdog period of child supervisor `child`'s processes: its
    /// own, else this supervisor's.
    pub fn watchdog_of(&self, child: ChildIdx) -> Option<Duration> {
        let slot = self.children.get(child.get())?;
        slot.record.policy.watchdog.or(self.watchdog)
    }

    /// When `watched` must show life by, while it is watched: what the
    /// engine's look at a silent process is timed by.
    pub fn alive_by(&self, watched: Watched) -> Option<Instant> {
        match watched {
            Watched::Host => {
                let host = &self.host;
                if !host.up || host.killed.is_some() {
                    return None;
                }
                host.alive.map(|a| a.by)
            }
            Watched::Child(child) => self.children.get(child.get())?.indexed.alive,
        }
    }

    /// `n` as the index of one of this supervisor's slots, if it is one:
    /// a child given to `new`, or a slot of children started at run time
    /// (which may be free at the moment: see [`child_id`](Self::child_id)).
    pub fn child(&self, n: usize) -> Option<ChildIdx> {
        (n < self.children.len())
            .then(|| ChildIdx::new(n))
            .flatten()
    }

    /// Whether `child` is one of the children given to `new` (not a slot
    /// of children started at run time).
    pub fn is_static(&self, child: ChildIdx) -> bool {
        child.get() < self.statics
    }

    /// Every child's index, in order: the children given to `new`, then
    /// the dynamic children that exist now (a free slot is skipped).
    pub fn child_indices(&self) -> impl Iterator<Item = ChildIdx> {
        // Collected: the iterator borrows nothing, as drivers expect.
        let taken: Vec<ChildIdx> = (0..self.children.len())
            .filter(|&n| self.children[n].kind != Kind::Free)
            .filter_map(ChildIdx::new)
            .collect();
        taken.into_iter()
    }

    /// Whether `child` is a slot of children started at run time (taken
    /// or free), not one of the children given to `new`.
    #[cfg(test)]
    pub fn is_dynamic(&self, child: ChildIdx) -> bool {
        (self.statics..self.children.len()).contains(&child.get())
    }

    /// The id of the child started at run time that `child` holds now;
    /// `None` for a static child or a free slot.
    #[cfg(test)]
    pub fn child_id(&self, child: ChildIdx) -> Option<ChildId> {
        match self.children.get(child.get())?.kind {
            Kind::Dynamic { id, .. } => Some(id),
            Kind::Static | Kind::Free => None,
        }
    }

    /// Where the child started at run time as `id` is, while it exists
    /// (until its [`Report::Removed`]).
    pub fn find(&self, id: ChildId) -> Option<ChildIdx> {
        ChildIdx::new(*self.ids.get(&id)?)
    }

    /// How many children started at run time exist now: running, waiting
    /// for a restart, or stopping (being removed included).
    #[cfg(test)]
    pub fn dynamic_count(&self) -> usize {
        self.dynamic_count
    }

    /// The id the next child started at run time will have: above every
    /// id this machine handed out.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Whether the supervisor is stopping all its children for good.
    pub fn is_shutting_down(&self) -> bool {
        matches!(self.phase, Phase::ShuttingDown(_))
    }

    /// The policies of the children a worker host may restart in place, by
    /// position (`None` for the others and for free slots): workers, under
    /// `OneForOne` or started at run time, where a worker's restart
    /// concerns it alone.
    pub fn leasable(&self) -> Vec<Option<ChildPolicy>> {
        self.children
            .iter()
            .map(|c| self.is_leasable(c).then_some(c.record.policy))
            .collect()
    }

    /// The lease for a start of `child`: its record as this machine has it,
    /// for a worker its host may restart in place; `None` for the others.
    pub fn lease(&self, child: ChildIdx) -> Option<RecordState> {
        let slot = self.children.get(child.get())?;
        self.is_leasable(slot).then_some(slot.record.state)
    }

    /// How many in-place restarts the intensity still allows from `now` on
    /// (see [`Grant`]); `None` when unlimited.
    pub fn budget(&self, now: Instant) -> Option<u32> {
        self.history.budget(&self.intensity, now)
    }

    /// The lifecycle event `report` makes, the same in every driver: what it
    /// is about, and what happened. A child supervisor's readiness makes
    /// none here: that supervisor reports it itself.
    pub fn event(&self, report: &Report) -> Option<(Subject, EventKind)> {
        Some(match *report {
            Report::Exited {
                child,
                exit,
                restart,
                ref reason,
            } => (
                Subject::Child(child),
                EventKind::Exited {
                    exit,
                    restart,
                    reason: reason.clone(),
                },
            ),
            Report::ChildReady(child) => {
                let slot = self.children.get(child.get())?;
                if slot.record.policy.is_supervisor {
                    return None;
                }
                (Subject::Child(child), EventKind::Ready)
            }
            Report::Ready => (Subject::Supervisor, EventKind::Ready),
            Report::Stopping(outcome) => (
                Subject::Supervisor,
                EventKind::Stopping {
                    gave_up: outcome == Outcome::GaveUp,
                },
            ),
            Report::Removed { child, .. } => (Subject::Child(child), EventKind::Removed),
            Report::Held(child) => (Subject::Child(child), EventKind::Held),
            Report::Answered(_) => return None,
        })
    }

    /// Whether a worker host may restart this child in place: a worker
    /// whose restart concerns it alone (under `OneForOne`, or started at
    /// run time).
    fn is_leasable(&self, slot: &ChildSlot) -> bool {
        let alone = match slot.kind {
            Kind::Static => self.strategy == Strategy::OneForOne,
            Kind::Dynamic { .. } => true,
            Kind::Free => false,
        };
        alone && !slot.record.policy.is_supervisor
    }

    /// Whether slot `n` holds (or held) a child started at run time.
    fn is_dyn_slot(&self, n: usize) -> bool {
        n >= self.statics
    }

    // ----- handle_*

    /// Starts every child, in order.
    pub fn handle_start(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Created) {
            return;
        }
        self.phase = Phase::Running;
        for n in 0..self.statics {
            self.start_child(n, now, false);
        }
        // Then the dynamic children added before the start (not the free
        // slots of those removed since), at once; in order, when the first
        // static child is queued.
        self.start_queued(now);
        for n in self.statics..self.children.len() {
            if self.children[n].state == State::Idle {
                self.start_child(n, now, false);
            }
        }
        self.after_event(now);
    }

    /// Starts a child with `policy` at run time, at `now`: at once (before
    /// [`handle_start`](Self::handle_start): with the others), as a first
    /// start, whatever the strategy. It takes the lowest free slot, or a
    /// new one, and a new id.
    ///
    /// # Errors
    ///
    /// [`AddError::NotDynamic`] unless the machine was made
    /// [`with_dynamic`](Self::with_dynamic); [`AddError::ShuttingDown`] once
    /// it stops all its children; [`AddError::Full`] when `max_children`
    /// dynamic children exist already.
    pub fn handle_add(
        &mut self,
        policy: ChildPolicy,
        now: Instant,
    ) -> Result<(ChildIdx, ChildId), AddError> {
        if !self.dynamic {
            return Err(AddError::NotDynamic);
        }
        if !matches!(self.phase, Phase::Created | Phase::Running) {
            return Err(AddError::ShuttingDown);
        }
        if let Some(max) = self.max_children {
            if self.dynamic_count >= max as usize {
                return Err(AddError::Full { max });
            }
        }
        let n = self.free.first().copied().unwrap_or(self.children.len());
        // A `ChildIdx` is a u32: no more slots than it can name; and no
        // more ids than a u64 numbers.
        let (Some(child), Some(next)) = (ChildIdx::new(n), self.next_id.checked_add(1)) else {
            return Err(AddError::Full { max: u32::MAX });
        };
        self.free.remove(&n);
        let id = ChildId::new(self.next_id);
        self.next_id = next;
        let slot = ChildSlot::new(
            policy,
            Kind::Dynamic {
                id,
                removing: false,
            },
        );
        if n == self.children.len() {
            self.children.push(slot);
        } else {
            // A free slot is `Done`: nothing of it is indexed.
            self.children[n] = slot;
        }
        self.ids.insert(id, n);
        self.dynamic_count += 1;
        tracing::debug!(supervisor = %self.path, %child, %id, "child added at run time");
        if matches!(self.phase, Phase::Running) {
            self.launch(n, now, false);
            self.after_event(now);
        }
        Ok((child, id))
    }

    /// Terminates the child started at run time as `id`, at `now`, and
    /// removes it: a running child is asked to stop at once, as any stop
    /// (killed at its [`Shutdown`] deadline), its exit is
    /// [`ChildExit::Stopped`] and it is not restarted; then
    /// [`Report::Removed`]. One waiting for its restart is removed at once.
    /// During a shutdown, its stop is the shutdown's (in order). Asking
    /// again while it stops changes nothing.
    ///
    /// # Errors
    ///
    /// [`RemoveError::Unknown`] when no child has this id (any more), or
    /// the supervisor has ended.
    pub fn handle_remove(&mut self, id: ChildId, now: Instant) -> Result<ChildIdx, RemoveError> {
        if matches!(self.phase, Phase::Exited) {
            return Err(RemoveError::Unknown);
        }
        let child = self.find(id).ok_or(RemoveError::Unknown)?;
        let n = child.get();
        let running = matches!(self.phase, Phase::Running);
        let slot = &mut self.children[n];
        if let Kind::Dynamic { removing, .. } = &mut slot.kind {
            if *removing {
                return Ok(child);
            }
            *removing = true;
        }
        match slot.state {
            State::Running { .. } if running => {
                tracing::debug!(supervisor = %self.path, %child, %id, "stopping a child to remove it");
                self.stop_alone(child, now);
            }
            // The shutdown stops it, or its stop is under way: its exit
            // removes it.
            State::Running { .. } | State::Stopping { .. } => {}
            State::Idle
            | State::Queued { .. }
            | State::Waiting { .. }
            | State::Pending
            | State::Done => self.release(n),
        }
        self.after_event(now);
        Ok(child)
    }

    /// Child `child` declared itself ready at `now`.
    pub fn handle_ready(&mut self, child: ChildIdx, now: Instant) {
        let n = child.get();
        let Some(slot) = self.children.get_mut(n) else {
            return;
        };
        if matches!(slot.state, State::Running { .. }) && !slot.ready {
            slot.ready = true;
            slot.engine_failures = 0;
            self.reindex(n);
            self.reports.push_back(Report::ChildReady(child));
            self.after_event(now);
        }
    }

    /// Child `child` exited with `exit` at `now`. Any exit of a child asked
    /// to stop is that stop: [`ChildExit::Stopped`], unless a child
    /// supervisor had to be killed (then `exit`, the signal); a worker is
    /// `Stopped` even when its future was dropped at its deadline, and
    /// [`ChildExit::StartTimeout`] when it was dropped for not being ready
    /// in time.
    pub fn handle_exit(&mut self, child: ChildIdx, exit: ChildExit, now: Instant) {
        let n = child.get();
        if n >= self.children.len() {
            tracing::warn!(supervisor = %self.path, %child, "exit of an unknown child ignored");
            return;
        }
        if !self.orders.is_empty() {
            // What it was sent and did not answer, it never will.
            self.answer_orders(Some(n), true, Err(Refusal::Lost));
        }
        let Some(slot) = self.children.get_mut(n) else {
            return;
        };
        // Killed for showing no life: whatever ended it, it hung (unless
        // it said it could not be set up).
        let exit = if std::mem::take(&mut slot.hung) && exit != ChildExit::SetupFailed {
            ChildExit::Hung
        } else {
            exit
        };
        let slot = &self.children[n];
        match slot.state {
            State::Stopping {
                timed_out: Some(limit),
                ..
            } if !slot.is_removing() => {
                self.reason = None;
                self.exited(n, ChildExit::StartTimeout(limit), now, limit)
            }
            State::Stopping { killed, .. } => {
                let exit = if killed && slot.record.policy.is_supervisor {
                    exit
                } else {
                    ChildExit::Stopped
                };
                self.stopped(n, exit, now)
            }
            State::Running { since } => {
                self.exited(n, exit, now, now.saturating_duration_since(since))
            }
            state => {
                tracing::debug!(supervisor = %self.path, %child, ?state, "exit of a child that was not running ignored");
            }
        }
        self.reason = None;
        self.settle(n);
        self.after_event(now);
    }

    /// As [`handle_exit`](Self::handle_exit), with why the child failed
    /// (a panic's message), for its `Exited` report.
    pub fn handle_exit_because(
        &mut self,
        child: ChildIdx,
        exit: ChildExit,
        reason: Option<String>,
        now: Instant,
    ) {
        self.reason = reason;
        self.handle_exit(child, exit, now);
    }

    /// Worker `child` exited with `exit` at `now` and its host started it
    /// again in place after `delay`, spending its lease: `state` is the
    /// record the host applied the rule to, which this machine adopts, and
    /// the restart counts towards the intensity here.
    pub fn handle_restarted(
        &mut self,
        child: ChildIdx,
        exit: ChildExit,
        reason: Option<String>,
        delay: Duration,
        state: RecordState,
        now: Instant,
    ) {
        let n = child.get();
        let running = matches!(self.phase, Phase::Running)
            && matches!(
                self.children.get(n).map(|c| c.state),
                Some(State::Running { .. })
            );
        if !running {
            return;
        }
        let slot = &mut self.children[n];
        slot.record.state = state;
        slot.state = State::Running { since: now + delay };
        slot.ready = false;
        // Its host runs: the engine started it.
        slot.engine_failures = 0;
        self.reindex(n);
        let gives_up = self.history.record(&self.intensity, now);
        self.reports.push_back(Report::Exited {
            child,
            exit,
            restart: Some(delay).filter(|_| !gives_up),
            reason,
        });
        if gives_up {
            // Only if a grant and a restart crossed: the worker still runs
            // in its host and is stopped with the others.
            self.give_up(n, exit);
        } else {
            tracing::debug!(supervisor = %self.path, %child, %exit, "worker exited; its host restarted it");
        }
        self.after_event(now);
    }

    /// Time has reached `now`: start the restarts that are due, kill the
    /// children that did not stop in time, drop the workers not ready
    /// within their start timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |set: &BTreeSet<(Instant, usize)>| -> Vec<usize> {
            let mut due: Vec<usize> = set.range(..=(now, usize::MAX)).map(|&(_, n)| n).collect();
            // Reverse order of position, as stops go.
            due.sort_unstable_by(|a, b| b.cmp(a));
            due
        };
        let mut overdue = Vec::new();
        let mut dropped = Vec::new();
        for n in due(&self.index.kill) {
            match self.children[n].state {
                // A worker dropped that did not end within its grace: its
                // host is killed.
                State::Stopping {
                    killed: true,
                    timed_out,
                    ..
                } => {
                    self.set_state(
                        n,
                        State::Stopping {
                            kill_at: None,
                            killed: true,
                            timed_out,
                        },
                    );
                    dropped.extend(ChildIdx::new(n));
                }
                State::Stopping { timed_out, .. } => {
                    let kill_at = self.drop_deadline(n, now);
                    self.set_state(
                        n,
                        State::Stopping {
                            kill_at,
                            killed: true,
                            timed_out,
                        },
                    );
                    overdue.extend(ChildIdx::new(n));
                }
                _ => {}
            }
        }
        let mut late = Vec::new();
        if matches!(self.phase, Phase::Running) {
            for n in due(&self.index.run) {
                let slot = &self.children[n];
                let (State::Running { .. }, false, Some(limit)) =
                    (slot.state, slot.ready, slot.record.policy.start_timeout)
                else {
                    continue;
                };
                let kill_at = self.drop_deadline(n, now);
                self.set_state(
                    n,
                    State::Stopping {
                        kill_at,
                        killed: true,
                        timed_out: Some(limit),
                    },
                );
                late.extend(ChildIdx::new(n));
            }
        }
        if !late.is_empty() {
            tracing::warn!(supervisor = %self.path, children = ?late, "workers not ready within their start timeout; dropping them");
            self.actions.push_back(Action::Kill(late));
        }
        if !overdue.is_empty() {
            tracing::warn!(supervisor = %self.path, children = ?overdue, "children did not stop in time; killing them");
            self.actions.push_back(Action::Kill(overdue));
        }
        let mut hung = Vec::new();
        for n in due(&self.index.alive) {
            let slot = &mut self.children[n];
            slot.alive = None;
            slot.hung = true;
            if let State::Stopping { timed_out, .. } = slot.state {
                self.set_state(
                    n,
                    State::Stopping {
                        kill_at: None,
                        killed: true,
                        timed_out,
                    },
                );
            } else {
                self.reindex(n);
            }
            hung.extend(ChildIdx::new(n));
        }
        if !hung.is_empty() {
            // The engine says what it found of them, with their pids.
            tracing::debug!(supervisor = %self.path, children = ?hung, period = ?self.watchdog,
                "child supervisors missed their watchdog deadline: killed as hung");
            self.actions.push_back(Action::Kill(hung));
        }
        self.host_timeout(dropped, now);
        self.expire_orders(now);
        self.after_event(now);
    }

    /// The worker host was forked at `now` (a simulated one began): with a
    /// watchdog, it must show life within two periods (its start-up), then
    /// within each period.
    pub fn handle_host_started(&mut self, now: Instant) {
        self.host = HostState {
            up: true,
            alive: self.watchdog.map(|period| Liveness::started(period, now)),
            ..HostState::default()
        };
    }

    /// Child supervisor `child`'s process was forked at `now`, later than
    /// its [`Action::Start`] (a starved supervisor may take a while): with
    /// a watchdog, its first sign of life is due two periods from now (its
    /// start-up).
    pub fn handle_forked(&mut self, child: ChildIdx, now: Instant) {
        self.move_deadline(Watched::Child(child), now, |period| {
            period.saturating_mul(2)
        });
    }

    /// The worker host ended with `exit` at `now`; returns the exit its
    /// workers had: [`ChildExit::Hung`] if the machine had it killed as hung
    /// (unless it could not be set up), else `exit`. Report each worker
    /// that ran in it with `handle_exit` and that exit, after this call.
    pub fn handle_host_exit(&mut self, exit: ChildExit, _now: Instant) -> ChildExit {
        let hung = self.host.killed == Some(true);
        self.host = HostState::default();
        // A kill decided before it ended has nothing left to do.
        self.actions.retain(|a| !matches!(a, Action::KillHost(_)));
        if hung && exit != ChildExit::SetupFailed {
            ChildExit::Hung
        } else {
            exit
        }
    }

    /// `watched` showed life at `now`: it must next by a period on.
    pub fn handle_alive(&mut self, watched: Watched, now: Instant) {
        self.move_deadline(watched, now, |period| period);
    }

    /// `watched` was silent at its deadline, and the engine's look at the
    /// scheduler found it not hung, for `why`, at `now`: its deadline moves
    /// on by [`Reprieve::delay`]. A starved process is logged once.
    pub fn handle_reprieve(&mut self, watched: Watched, why: Reprieve, now: Instant) {
        let Some(liveness) = self.move_deadline(watched, now, |period| why.delay(period)) else {
            return;
        };
        let (period, path) = (liveness.period, &self.path);
        match why {
            Reprieve::Starved if !liveness.starved => {
                tracing::info!(supervisor = %path, %watched, ?period,
                    "missed its watchdog deadline starved of CPU (runnable, given none), not hung; \
                     its deadline moves on by half a period while it is (logged once)");
                self.set_starved(watched);
            }
            Reprieve::Starved => {
                tracing::debug!(supervisor = %path, %watched, ?period,
                    "still starved of CPU; its watchdog deadline moves on");
            }
            Reprieve::Exiting | Reprieve::LookedLate | Reprieve::ShortWindow => {
                tracing::debug!(supervisor = %path, %watched, ?period, ?why,
                    "missed its watchdog deadline, not judged hung; looked at again later");
            }
        }
    }

    /// The worker host's channel was found cut at `now`: it is killed if
    /// it has not exited within [`CUT_GRACE`].
    pub fn handle_host_cut(&mut self, now: Instant) {
        let host = &mut self.host;
        if host.up && host.killed.is_none() && host.cut_by.is_none() {
            host.cut_by = Some(now + CUT_GRACE);
        }
    }

    /// Stops every child in reverse order, then exits normally.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.shut_down(Outcome::Normal);
        self.after_event(now);
    }

    /// An operator's `order` about child `child` (the child its path
    /// names), at `now`: decided here, and answered with
    /// [`Report::Answered`] once carried out or refused, at the latest at
    /// its bound ([`control::bound`] of the child's shutdown; the work goes
    /// on after a timed-out answer).
    ///
    /// [`Op::Restart`]: a running child is stopped in order (as any stop:
    /// its shutdown time, then killed) and, once it stopped, started again
    /// at once (under `OneForAll`/`RestForOne` in its place in the order,
    /// once the siblings before it are ready); one waiting for its
    /// restart, or finished for good, is started now; one queued to start
    /// (in a group restart) starts with its group. The restart is not
    /// counted in the intensity, nor in the count its restart policy keeps,
    /// and its backoff starts over. Answered `Ok` when the machine starts
    /// it ([`Action::Start`]). Refused ([`Refusal`]) before the supervisor
    /// started and once it shuts down, for a slot no child holds, for a
    /// child being stopped, killed as hung, or removed, and while another
    /// order about the same child waits ([`Busy::Ordered`]: each order is
    /// answered by its own outcome).
    ///
    /// [`Op::Stop`] and [`Op::Start`]: see there; a stop is answered once
    /// the child stopped (at once if it was not running), a start once the
    /// machine starts it.
    pub fn handle_order(&mut self, order: Order, child: ChildIdx, now: Instant) {
        let n = child.get();
        let refusal = match (&self.phase, self.children.get(n)) {
            (Phase::Created, _) => Some(Refusal::NotRunning),
            (Phase::ShuttingDown(_) | Phase::Exited, _) => Some(Refusal::ShuttingDown),
            (Phase::Running, None) => Some(Refusal::NotFound),
            (Phase::Running, Some(slot)) => {
                if slot.kind == Kind::Free {
                    Some(Refusal::NotFound)
                } else if self.orders.iter().any(|p| p.child == n && !p.sent_down) {
                    Some(Refusal::Busy(Busy::Ordered))
                } else if slot.held && order.op == Op::Stop {
                    Some(Refusal::AlreadyStopped)
                } else if slot.is_removing() {
                    Some(Refusal::Busy(Busy::Removing))
                } else if slot.hung {
                    Some(Refusal::Busy(Busy::Hung))
                } else if slot.state.is_stopping() {
                    Some(Refusal::Busy(Busy::Stopping))
                } else {
                    None
                }
            }
        };
        if let Some(refusal) = refusal {
            tracing::info!(supervisor = %self.path, path = %order.path, op = order.op.verb(), %refusal, "an operator's order refused");
            self.reports
                .push_back(Report::Answered(order.answer(Err(refusal))));
            return;
        }
        tracing::info!(supervisor = %self.path, path = %order.path, op = order.op.verb(), "an operator's order");
        let (op, bound) = (
            order.op,
            control::bound(self.children[n].record.policy.shutdown),
        );
        // Waiting before it is carried out: a start it makes answers it.
        self.orders.push(Pending {
            order,
            child: n,
            by: now + bound,
            bound,
            sent_down: false,
        });
        match op {
            Op::Restart => self.restart_by_operator(n, now),
            Op::Stop => self.stop_by_operator(n, now),
            Op::Start => self.start_by_operator(n, now),
        }
        self.after_event(now);
    }

    /// An operator's `order` about a node below child supervisor `child`,
    /// whose state machine decides it, at `now`: whether the driver sends
    /// it down to that child. If so, this machine waits for the answer
    /// ([`handle_answer`](Self::handle_answer)) for `bound` (the bound of
    /// the node's own supervisor, [`control::bound`] of its shutdown) and
    /// [`control::FORWARD_GRACE`], and answers [`Refusal::TimedOut`] then,
    /// or [`Refusal::Lost`] if the child exits first: an order is answered
    /// whatever happens below (a child supervisor stopped by SIGSTOP, one
    /// that dies). If not, it is answered now: refused while this
    /// supervisor does not run, or the child does not
    /// ([`Refusal::NotRunning`]).
    pub fn handle_forward(
        &mut self,
        order: Order,
        child: ChildIdx,
        bound: Duration,
        now: Instant,
    ) -> bool {
        let n = child.get();
        let refusal = match (&self.phase, self.children.get(n).map(|c| c.state)) {
            (Phase::Running, Some(State::Running { .. })) => None,
            (Phase::Running, Some(_)) | (Phase::Created, _) => Some(Refusal::NotRunning),
            (Phase::Running, None) => Some(Refusal::NotFound),
            (Phase::ShuttingDown(_) | Phase::Exited, _) => Some(Refusal::ShuttingDown),
        };
        if let Some(refusal) = refusal {
            self.reports
                .push_back(Report::Answered(order.answer(Err(refusal))));
            return false;
        }
        let bound = bound.saturating_add(control::FORWARD_GRACE);
        self.orders.push(Pending {
            order,
            child: n,
            by: now + bound,
            bound,
            sent_down: true,
        });
        true
    }

    /// Child supervisor `child` sent up `answer`: passed on
    /// ([`Report::Answered`]) if it answers an order this machine sent down
    /// to that child and still waits for; else dropped (a child supervisor
    /// answers only what it was asked, and once).
    pub fn handle_answer(&mut self, child: ChildIdx, answer: Answer) {
        let asked = self.orders.iter().position(|p| {
            p.sent_down
                && p.child == child.get()
                && p.order.ticket == answer.ticket
                && p.order.path == answer.path
        });
        match asked {
            Some(n) => {
                self.orders.remove(n);
                self.reports.push_back(Report::Answered(answer));
            }
            None => {
                tracing::warn!(supervisor = %self.path, %child, ticket = answer.ticket.0,
                    "an answer to no order sent down to this child supervisor (or one answered already) dropped");
            }
        }
    }

    /// Child `n`, which runs or waits to, is restarted by an operator (see
    /// [`handle_order`](Self::handle_order)).
    fn restart_by_operator(&mut self, n: usize, now: Instant) {
        let in_group = self.group.as_ref().is_some_and(|g| g.members.contains(&n));
        let slot = &mut self.children[n];
        slot.record.state.backoff = BackoffState::default();
        // A held child is wanted up again.
        slot.held = false;
        match slot.state {
            // A group restart stops and starts it, one child at a time, in
            // its order: its order is answered when the group starts it.
            State::Running { .. } if in_group => {}
            State::Running { .. } => {
                slot.restart_asked = true;
                let Some(child) = ChildIdx::new(n) else {
                    return;
                };
                self.stop_alone(child, now);
            }
            State::Waiting { .. } | State::Done => self.start_child(n, now, false),
            // It starts soon: its order is answered then.
            State::Idle | State::Queued { .. } | State::Pending | State::Stopping { .. } => {}
        }
    }

    /// Child `n`, which is not held, is stopped by an operator and held
    /// down (see [`Op::Stop`]); a child started at run time is removed.
    fn stop_by_operator(&mut self, n: usize, now: Instant) {
        let Some(child) = ChildIdx::new(n) else {
            return;
        };
        if self.is_dyn_slot(n) {
            if let Kind::Dynamic { id, .. } = self.children[n].kind {
                // Its removal answers the order.
                let _ = self.handle_remove(id, now);
            }
            return;
        }
        let slot = &mut self.children[n];
        slot.held = true;
        slot.restart_asked = false;
        match slot.state {
            State::Running { .. } => {
                // Its stop answers the order (`stopped`); a group restart
                // under way stops it in its turn.
                let in_group = self.group.as_ref().is_some_and(|g| g.members.contains(&n));
                if !in_group {
                    self.stop_alone(child, now);
                }
            }
            State::Idle
            | State::Queued { .. }
            | State::Waiting { .. }
            | State::Pending
            | State::Done => {
                if let Some(g) = self.group.as_mut() {
                    g.members.remove(&n);
                }
                self.set_state(n, State::Done);
                self.reports.push_back(Report::Held(child));
                self.answer_orders(Some(n), false, Ok(()));
            }
            // Refused before (busy).
            State::Stopping { .. } => {}
        }
    }

    /// Child `n` is started by an operator: at once, backoff reset, if an
    /// operator held it down; else refused ([`Refusal::AlreadyRunning`]).
    fn start_by_operator(&mut self, n: usize, now: Instant) {
        let slot = &mut self.children[n];
        if !slot.held {
            self.answer_orders(Some(n), false, Err(Refusal::AlreadyRunning));
            return;
        }
        slot.held = false;
        slot.record.state.backoff = BackoffState::default();
        if slot.state == State::Done {
            // Its start answers the order.
            self.start_child(n, now, false);
        }
    }

    /// Answers the orders waiting about child `child` (all of them for
    /// `None`; those sent down to it, `sent_down`, or those about it) with
    /// `result`.
    fn answer_orders(
        &mut self,
        child: Option<usize>,
        sent_down: bool,
        result: Result<(), Refusal>,
    ) {
        self.answer_orders_by(child, sent_down, |_| result);
    }

    /// [`answer_orders`](Self::answer_orders), each with the result
    /// `result` gives for its operation.
    fn answer_orders_by(
        &mut self,
        child: Option<usize>,
        sent_down: bool,
        result: impl Fn(Op) -> Result<(), Refusal>,
    ) {
        let mut n = 0;
        while n < self.orders.len() {
            let pending = &self.orders[n];
            if child.is_some_and(|c| pending.child != c || pending.sent_down != sent_down) {
                n += 1;
                continue;
            }
            let pending = self.orders.remove(n);
            let result = result(pending.order.op);
            self.reports
                .push_back(Report::Answered(pending.order.answer(result)));
        }
    }

    /// Answers the orders whose bound passed at `now`.
    fn expire_orders(&mut self, now: Instant) {
        let mut n = 0;
        while n < self.orders.len() {
            if self.orders[n].by > now {
                n += 1;
                continue;
            }
            let pending = self.orders.remove(n);
            tracing::warn!(supervisor = %self.path, path = %pending.order.path, bound = ?pending.bound,
                "an operator's order was not carried out within its bound");
            let answer = pending.order.answer(Err(Refusal::TimedOut(pending.bound)));
            self.reports.push_back(Report::Answered(answer));
        }
    }

    // ----- poll_*

    /// The next decision to report, if any.
    #[must_use]
    pub fn poll_report(&mut self) -> Option<Report> {
        let report = self.reports.pop_front();
        if let Some(Report::Removed { child, .. }) = &report {
            // The driver knows now: the slot may take another child.
            self.free.insert(child.get());
        }
        report
    }

    /// The next thing to do, if any.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `handle_timeout` must be called next: a scheduled restart, a
    /// stop's kill deadline, a worker's start timeout, a dropped worker's
    /// grace, a watched process's deadline to show life by, or the worker
    /// host's deadline to exit.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout(true)
    }

    /// [`poll_timeout`](Self::poll_timeout) but for the deadlines of the
    /// watched processes to show life: what a driver must wake for when it
    /// knows they show life in time (the simulation's, but a hung host).
    pub fn poll_timeout_but_liveness(&self) -> Option<Instant> {
        self.next_timeout(false)
    }

    /// The next timeout, with the deadlines to show life or without.
    fn next_timeout(&self, liveness: bool) -> Option<Instant> {
        let kill = self.index.kill.first().map(|&(at, _)| at);
        let alive = liveness
            .then(|| self.index.alive.first().map(|&(at, _)| at))
            .flatten();
        let host = if liveness {
            self.host.deadline()
        } else {
            let host = HostState {
                alive: None,
                ..self.host
            };
            host.deadline()
        };
        let orders = self.orders.iter().map(|p| p.by).min();
        let always = kill.into_iter().chain(alive).chain(host).chain(orders);
        if !matches!(self.phase, Phase::Running) {
            return always.min();
        }
        let run = self.index.run.first().map(|&(at, _)| at);
        let group = self
            .group
            .as_ref()
            .filter(|g| self.group_stopped(g))
            .map(|g| g.at);
        run.into_iter().chain(group).chain(always).min()
    }

    // ----- the indexes

    /// Sets child `n`'s state, keeping the indexes.
    fn set_state(&mut self, n: usize, state: State) {
        self.children[n].state = state;
        self.reindex(n);
    }

    /// Brings the indexes up to date with child `n`'s state and readiness.
    fn reindex(&mut self, n: usize) {
        let slot = &mut self.children[n];
        let (old, new) = (slot.indexed, slot.wanted_index());
        if old == new {
            return;
        }
        slot.indexed = new;
        let dynamic = n >= self.statics;
        let index = &mut self.index;
        if old.run != new.run {
            if let Some(at) = old.run {
                index.run.remove(&(at, n));
            }
            if let Some(at) = new.run {
                index.run.insert((at, n));
            }
        }
        if old.kill != new.kill {
            if let Some(at) = old.kill {
                index.kill.remove(&(at, n));
            }
            if let Some(at) = new.kill {
                index.kill.insert((at, n));
            }
        }
        if old.alive != new.alive {
            if let Some(at) = old.alive {
                index.alive.remove(&(at, n));
            }
            if let Some(at) = new.alive {
                index.alive.insert((at, n));
            }
        }
        let stopping = if dynamic {
            &mut index.stopping_dynamic
        } else {
            &mut index.stopping_static
        };
        match (old.stopping, new.stopping) {
            (false, true) => *stopping += 1,
            (true, false) => *stopping -= 1,
            _ => {}
        }
        match (old.live, new.live) {
            (false, true) => index.live += 1,
            (true, false) => index.live -= 1,
            _ => {}
        }
    }

    // ----- the rules

    /// Whether children start one at a time, each once the one before is
    /// ready (OTP's synchronous start): where a failure restarts siblings.
    fn starts_in_order(&self) -> bool {
        self.strategy != Strategy::OneForOne
    }

    /// Starts child `n`, or queues it behind its earlier siblings under an
    /// ordered strategy (never a dynamic child).
    fn start_child(&mut self, n: usize, now: Instant, restart: bool) {
        if self.starts_in_order() && !self.is_dyn_slot(n) {
            self.set_state(n, State::Queued { restart });
            return;
        }
        self.launch(n, now, restart);
    }

    fn launch(&mut self, n: usize, now: Instant, restart: bool) {
        let Some(child) = ChildIdx::new(n) else {
            return;
        };
        let period = self.children[n]
            .record
            .policy
            .is_supervisor
            .then(|| self.children[n].record.policy.watchdog.or(self.watchdog))
            .flatten();
        let slot = &mut self.children[n];
        if restart {
            slot.record.restarted();
        }
        slot.alive = period.map(|period| Liveness::started(period, now));
        slot.hung = false;
        slot.state = State::Running { since: now };
        slot.ready = false;
        self.reindex(n);
        self.actions.push_back(Action::Start(child));
        if !self.orders.is_empty() {
            self.answer_orders(Some(n), false, Ok(()));
        }
    }

    /// Starts queued children in order, each once every earlier sibling is
    /// ready or done: one that waits for its restart, or is not ready yet,
    /// holds up the later ones. Only static children queue, and only they
    /// hold others up.
    fn start_queued(&mut self, now: Instant) {
        for n in 0..self.statics {
            match self.children[n].state {
                State::Queued { restart } => {
                    self.launch(n, now, restart);
                    return;
                }
                State::Running { .. } if self.children[n].ready => {}
                State::Idle | State::Done => {}
                State::Running { .. }
                | State::Stopping { .. }
                | State::Waiting { .. }
                | State::Pending => return,
            }
        }
    }

    /// Issues `Report::Ready` the first time every static child is ready
    /// or done (dynamic children do not count: a supervisor with none is
    /// ready at once).
    fn check_ready(&mut self) {
        if self.ready {
            return;
        }
        let up = self.children[..self.statics].iter().all(|c| {
            c.state == State::Done || (matches!(c.state, State::Running { .. }) && c.ready)
        });
        if up {
            self.ready = true;
            self.reports.push_back(Report::Ready);
        }
    }

    /// A running child exited on its own.
    fn exited(&mut self, n: usize, exit: ChildExit, now: Instant, ran_for: Duration) {
        let Some(child) = ChildIdx::new(n) else {
            return;
        };
        let shutting_down = !matches!(self.phase, Phase::Running);
        let slot = &mut self.children[n];
        let engine_failure = exit.is_engine_failure();
        slot.engine_failures = if engine_failure {
            slot.engine_failures.saturating_add(1)
        } else {
            0
        };
        let delay = if shutting_down {
            None
        } else {
            slot.record.restart_delay(&exit, ran_for)
        };
        // The engine's own failure waits at least its floor, whatever the
        // child's backoff.
        let delay = delay.map(|d| {
            if engine_failure {
                d.max(engine_floor(slot.engine_failures))
            } else {
                d
            }
        });
        let gives_up = delay.is_some() && self.history.record(&self.intensity, now);
        self.reports.push_back(Report::Exited {
            child,
            exit,
            restart: delay.filter(|_| !gives_up),
            reason: self.reason.take(),
        });
        if gives_up {
            self.set_state(n, State::Done);
            self.give_up(n, exit);
            return;
        }
        let Some(delay) = delay else {
            self.set_state(n, State::Done);
            let slot = &self.children[n];
            if shutting_down {
                // Every child stops now: the shutdown is logged once.
            } else if self.is_dyn_slot(n) {
                // One of many, removed next (its events say so).
                tracing::debug!(supervisor = %self.path, %child, %exit, restart_policy = ?slot.record.policy.restart,
                    "child started at run time exited and will not be restarted");
            } else {
                tracing::info!(supervisor = %self.path, %child, %exit, restart_policy = ?slot.record.policy.restart,
                    "child exited and will not be restarted");
            }
            if let Some(g) = self.group.as_mut() {
                g.members.remove(&n);
            }
            return;
        };
        self.grant_changed();
        if engine_failure {
            // The engine logs these itself, at a bounded rate.
            tracing::debug!(supervisor = %self.path, %child, %exit, delay = ?delay, "child could not be started; retrying after delay");
        } else {
            tracing::info!(supervisor = %self.path, %child, %exit, delay = ?delay, "child exited; restarting after delay");
        }
        let at = now + delay;
        // A dynamic child is restarted alone, whatever the strategy; a
        // static one's group is among the static children only.
        if self.is_dyn_slot(n) || self.strategy == Strategy::OneForOne {
            self.set_state(n, State::Waiting { at });
            return;
        }
        let affected = self.strategy.affected(n, self.statics);
        self.set_state(n, State::Pending);
        let group = self.group.get_or_insert_with(|| Group {
            members: BTreeSet::new(),
            at,
        });
        group.at = group.at.max(at);
        group.members.insert(n);
        for m in affected {
            let sibling = &self.children[m];
            if m != n
                && matches!(
                    sibling.state,
                    State::Running { .. } | State::Stopping { .. } | State::Pending
                )
            {
                group.members.insert(m);
            }
        }
    }

    /// This machine recorded a restart: a worker host spending a lease must
    /// learn its smaller budget.
    fn grant_changed(&mut self) {
        let limited = self.intensity.max_restarts().is_some();
        if limited && (self.static_leasable || self.dynamic_count > 0) {
            self.actions.retain(|a| *a != Action::Grant);
            self.actions.push_back(Action::Grant);
        }
    }

    /// Child `n`'s exit went over the restart intensity: stop every child
    /// that still runs, then give up.
    fn give_up(&mut self, n: usize, exit: ChildExit) {
        tracing::error!(supervisor = %self.path, child = n, %exit,
            max_restarts = ?self.intensity.max_restarts(), within = ?self.intensity.within(),
            "restart intensity exceeded; stopping all children and giving up");
        self.shut_down(Outcome::GaveUp);
    }

    /// A child we asked to stop has exited.
    fn stopped(&mut self, n: usize, exit: ChildExit, now: Instant) {
        let Some(child) = ChildIdx::new(n) else {
            return;
        };
        let running = matches!(self.phase, Phase::Running);
        let in_group = running && self.group.as_ref().is_some_and(|g| g.members.contains(&n));
        if running && self.children[n].held {
            // An operator's stop: it stays down, out of any group.
            if let Some(g) = self.group.as_mut() {
                g.members.remove(&n);
            }
            self.set_state(n, State::Done);
            self.reports.push_back(Report::Exited {
                child,
                exit,
                restart: None,
                reason: None,
            });
            self.reports.push_back(Report::Held(child));
            tracing::info!(supervisor = %self.path, %child, "stopped by an operator; held down until started");
            self.answer_orders(Some(n), false, Ok(()));
            return;
        }
        let asked = std::mem::take(&mut self.children[n].restart_asked);
        if asked && running && !in_group && !self.children[n].is_removing() {
            // An operator's restart: at once, counted nowhere.
            self.set_state(n, State::Done);
            self.reports.push_back(Report::Exited {
                child,
                exit,
                restart: Some(Duration::ZERO),
                reason: None,
            });
            tracing::info!(supervisor = %self.path, %child, "stopped for an operator's restart; starting it again");
            self.start_child(n, now, false);
            return;
        }
        let again = in_group && self.children[n].record.allows_another_run();
        let state = if again {
            State::Pending
        } else {
            if let Some(g) = self.group.as_mut() {
                g.members.remove(&n);
            }
            State::Done
        };
        self.set_state(n, state);
        let restart = match &self.group {
            Some(g) if again => Some(g.at.saturating_duration_since(now)),
            _ => None,
        };
        self.reports.push_back(Report::Exited {
            child,
            exit,
            restart,
            reason: None,
        });
    }

    /// Dynamic child `n` stopped for good: it leaves the tree when its
    /// removal was asked, or when it ended by its policy while the
    /// supervisor runs (one stopped by a shutdown stays, with the others).
    fn settle(&mut self, n: usize) {
        let Some(slot) = self.children.get(n) else {
            return;
        };
        let removing = match slot.kind {
            Kind::Dynamic { removing, .. } => removing,
            Kind::Static | Kind::Free => return,
        };
        if slot.state == State::Done && (removing || matches!(self.phase, Phase::Running)) {
            self.release(n);
        }
    }

    /// Frees dynamic child `n`'s slot, with `Report::Removed`.
    fn release(&mut self, n: usize) {
        let (Some(child), Some(slot)) = (ChildIdx::new(n), self.children.get_mut(n)) else {
            return;
        };
        let Kind::Dynamic { id, .. } = slot.kind else {
            return;
        };
        slot.kind = Kind::Free;
        slot.ready = false;
        self.set_state(n, State::Done);
        self.ids.remove(&id);
        self.dynamic_count -= 1;
        // A stop or kill issued before it exited has nothing left to do:
        // no action left for the driver names the slot it gave up.
        self.actions.retain_mut(|action| match action {
            Action::Stop(children) | Action::Kill(children) => {
                children.retain(|&c| c != child);
                !children.is_empty()
            }
            Action::KillHost(HostKill::DropOverdue(children)) => {
                // The host is killed all the same: only the log names it.
                children.retain(|&c| c != child);
                true
            }
            _ => true,
        });
        tracing::debug!(supervisor = %self.path, %child, %id, "child removed");
        self.reports.push_back(Report::Removed { child, id });
        if !self.orders.is_empty() {
            // An operator's stop of it is done; any other order finds no
            // child.
            self.answer_orders_by(Some(n), false, |op| match op {
                Op::Stop => Ok(()),
                Op::Restart | Op::Start => Err(Refusal::NotFound),
            });
        }
    }

    fn shut_down(&mut self, outcome: Outcome) {
        match self.phase {
            Phase::Running | Phase::Created => {}
            Phase::ShuttingDown(_) | Phase::Exited => return,
        }
        tracing::info!(supervisor = %self.path, ?outcome, "stopping all children in reverse order");
        self.phase = Phase::ShuttingDown(outcome);
        self.reports.push_back(Report::Stopping(outcome));
        self.answer_orders(None, false, Err(Refusal::ShuttingDown));
        self.group = None;
        for n in 0..self.children.len() {
            if matches!(
                self.children[n].state,
                State::Waiting { .. } | State::Pending | State::Idle | State::Queued { .. }
            ) {
                self.set_state(n, State::Done);
            }
        }
    }

    fn group_stopped(&self, group: &Group) -> bool {
        group
            .members
            .iter()
            .all(|&m| self.children[m].state == State::Pending)
    }

    /// Issues what follows from the current state at `now`: the next stop of
    /// a group or shutdown, due restarts, the end of the supervisor.
    fn after_event(&mut self, now: Instant) {
        match self.phase {
            Phase::Running => {
                self.stop_next(now);
                let mut due: Vec<usize> = self
                    .index
                    .run
                    .range(..=(now, usize::MAX))
                    .map(|&(_, n)| n)
                    .filter(|&n| matches!(self.children[n].state, State::Waiting { .. }))
                    .collect();
                due.sort_unstable();
                for n in due {
                    self.start_child(n, now, true);
                }
                if let Some(group) = self.group.take() {
                    if self.group_stopped(&group) && group.at <= now {
                        for &m in &group.members {
                            self.start_child(m, now, true);
                        }
                    } else {
                        self.group = Some(group);
                    }
                }
                self.start_queued(now);
                self.check_ready();
                self.check_done(now);
            }
            Phase::ShuttingDown(outcome) => {
                self.stop_next(now);
                if self.index.live == 0 {
                    self.exit(outcome, now);
                }
            }
            Phase::Created | Phase::Exited => {}
        }
    }

    /// Stops the next children, unless a stop is already under way: in a
    /// group restart, the last running member; in a shutdown, the last
    /// running child. Children stop in reverse order, one at a time; in a
    /// shutdown, a run of workers stops together (their host stops them
    /// one after the other, in the order given).
    ///
    /// While the supervisor runs, a dynamic child's stop (its removal, or
    /// its start timeout) holds up no group restart; in a shutdown every
    /// stop under way holds up the next.
    fn stop_next(&mut self, now: Instant) {
        let all = self.is_shutting_down();
        if self.index.stopping_static > 0 || (all && self.index.stopping_dynamic > 0) {
            return;
        }
        // One killed as hung is not asked to stop: its exit is awaited.
        let running = |this: &Self, m: usize| {
            let child = &this.children[m];
            matches!(child.state, State::Running { .. }) && !child.hung
        };
        let last = if all {
            (0..self.children.len()).rev().find(|&m| running(self, m))
        } else {
            let Some(group) = &self.group else { return };
            group
                .members
                .iter()
                .rev()
                .copied()
                .find(|&m| running(self, m))
        };
        let Some(last) = last else {
            return;
        };
        let mut batch = vec![last];
        // Only a shutdown batches: a group restart stops one child at a
        // time, as OTP does, so each stop is seen before the next.
        if all && !self.children[last].record.policy.is_supervisor {
            for m in (0..last).rev() {
                if !running(self, m) {
                    continue;
                }
                if self.children[m].record.policy.is_supervisor {
                    break;
                }
                batch.push(m);
            }
        }
        // In batch order: a run of children to stop, then one to kill
        // (`Shutdown::Kill`), and so on, so the reverse order holds across.
        let mut actions: Vec<Action> = Vec::new();
        for m in batch {
            let Some(child) = ChildIdx::new(m) else {
                continue;
            };
            let kill_now = self.begin_stop(m, now);
            match (actions.last_mut(), kill_now) {
                (Some(Action::Kill(run)), true) | (Some(Action::Stop(run)), false) => {
                    run.push(child)
                }
                (_, true) => actions.push(Action::Kill(vec![child])),
                (_, false) => actions.push(Action::Stop(vec![child])),
            }
        }
        self.actions.extend(actions);
    }

    /// Child `m` is asked to stop at `now`, to be killed at its
    /// [`Shutdown`] deadline: whether it is killed at once
    /// instead (`Shutdown::Kill`).
    fn begin_stop(&mut self, m: usize, now: Instant) -> bool {
        let kill_after = self.children[m].record.policy.shutdown.kill_after();
        let kill_now = kill_after == Some(Duration::ZERO);
        let kill_at = if kill_now {
            self.drop_deadline(m, now)
        } else {
            kill_after.map(|d| now + d)
        };
        self.set_state(
            m,
            State::Stopping {
                kill_at,
                killed: kill_now,
                timed_out: None,
            },
        );
        kill_now
    }

    /// Child `child` alone is asked to stop at `now` (a removal, an
    /// operator's restart or stop): [`Action::Stop`], or [`Action::Kill`]
    /// for one stopped with `Shutdown::Kill` (see
    /// [`begin_stop`](Self::begin_stop)).
    fn stop_alone(&mut self, child: ChildIdx, now: Instant) {
        let action = if self.begin_stop(child.get(), now) {
            Action::Kill(vec![child])
        } else {
            Action::Stop(vec![child])
        };
        self.actions.push_back(action);
    }

    /// Ends the supervisor once no child runs or will restart; never one
    /// that serves dynamic children.
    fn check_done(&mut self, now: Instant) {
        // While it runs, no child is `Idle` (all were started or queued).
        // One an operator holds down may be started again: the supervisor
        // waits for it.
        if matches!(self.phase, Phase::Running)
            && !self.dynamic
            && self.index.live == 0
            && !self.children.iter().any(|c| c.held)
        {
            tracing::debug!(supervisor = %self.path, "no child runs or will restart; done");
            self.exit(Outcome::Normal, now);
        }
    }

    /// The supervisor ends at `now` with `outcome`: its worker host, if it
    /// runs, is told to exit, and killed if it has not by the supervisor's
    /// shutdown time ([`host_exit_grace`]).
    fn exit(&mut self, outcome: Outcome, now: Instant) {
        self.phase = Phase::Exited;
        if self.host.up && self.host.killed.is_none() {
            self.host.exit_by = Some(now + host_exit_grace(self.shutdown));
        }
        self.actions.push_back(Action::Exit(outcome));
    }

    /// When the host of child `n`, dropped at `now`, is killed if the
    /// child has not ended: [`DROP_GRACE`] on, for a worker; never for a
    /// child supervisor (SIGKILL ends it).
    fn drop_deadline(&self, n: usize, now: Instant) -> Option<Instant> {
        (!self.children[n].record.policy.is_supervisor).then(|| now + DROP_GRACE)
    }

    /// The worker host's deadlines at `now`, and `dropped`, the workers
    /// dropped that did not end within their grace: kills it (once) if one
    /// passed, a hang first (its workers' exit says so).
    fn host_timeout(&mut self, dropped: Vec<ChildIdx>, now: Instant) {
        let host = &self.host;
        if !host.up || host.killed.is_some() {
            return;
        }
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        let why = if due(host.alive.map(|a| a.by)) {
            HostKill::Hung
        } else if !dropped.is_empty() {
            HostKill::DropOverdue(dropped)
        } else if due(host.exit_by) {
            HostKill::ExitOverdue
        } else if due(host.cut_by) {
            HostKill::Cut
        } else {
            return;
        };
        // The engine says what it found of it, with its pid.
        tracing::debug!(supervisor = %self.path, ?why, "the worker host is killed");
        self.host.killed = Some(why == HostKill::Hung);
        self.actions.push_back(Action::KillHost(why));
    }

    /// Moves `watched`'s deadline to `now` plus `by` its period, if it is
    /// watched (and was not killed); returns its liveness as it was.
    fn move_deadline(
        &mut self,
        watched: Watched,
        now: Instant,
        by: impl Fn(Duration) -> Duration,
    ) -> Option<Liveness> {
        match watched {
            Watched::Host => {
                let host = &mut self.host;
                if !host.up || host.killed.is_some() {
                    return None;
                }
                let alive = host.alive.as_mut()?;
                let was = *alive;
                alive.by = now + by(alive.period);
                Some(was)
            }
            Watched::Child(child) => {
                let n = child.get();
                // Only while it is watched: a running child not killed.
                self.children.get(n)?.indexed.alive?;
                let alive = self.children[n].alive.as_mut()?;
                let was = *alive;
                alive.by = now + by(alive.period);
                self.reindex(n);
                Some(was)
            }
        }
    }

    /// `watched` was found starved: later findings are logged at debug.
    fn set_starved(&mut self, watched: Watched) {
        let alive = match watched {
            Watched::Host => self.host.alive.as_mut(),
            Watched::Child(child) => self
                .children
                .get_mut(child.get())
                .and_then(|c| c.alive.as_mut()),
        };
        if let Some(alive) = alive {
            alive.starved = true;
        }
    }
}

#[cfg(test)]
mod bookkeeping;
#[cfg(test)]
pub(crate) mod tests;
