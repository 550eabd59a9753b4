//! Model-based property tests of the supervisor state machine.
//!
//! Where `tests` pins exact timelines by hand, these tests generate random
//! trees (1–6 children, each a worker or a child supervisor with random
//! restart, backoff and shutdown policies, under a random strategy and
//! intensity) and random sequences of events, and check invariants on every
//! timeline that comes out.
//!
//! A [`Driver`] plays the processes around the machine: it keeps which
//! children run, feeds exits only of children that run (or were asked to
//! stop), answers `Stop` and `Kill` with exits (at once, late, or after the
//! kill deadline passed), jumps time to `poll_timeout` or by random amounts,
//! declares children ready, sometimes shuts the supervisor down, and restarts
//! `OneForOne` workers in place by spending a lease exactly as a worker host
//! does ([`Leases::spend`], then `handle_restarted`). At the end it shuts
//! the supervisor down, answers every stop until `Action::Exit`, then probes
//! the exited machine with more input. It records a [`Trace`] of every input
//! and of what the machine answered.
//!
//! Each property then replays the trace against a small [`Model`] written
//! from the documented rules (restart policies, the backoff formula, the
//! intensity window), not from the machine's code.
//!
//! Half the trees also serve children started at run time (0–4 static
//! children, and up to 3 slots for dynamic ones, with or without a bound):
//! the driver adds children ([`Op::Add`]) and asks for removals
//! ([`Op::Remove`], of live ids, removed ones, or one never handed out),
//! on trees without them too. Each dynamic slot has its own policies in
//! [`Tree::children`], whoever takes it, so the properties above read a
//! slot's policies as a static child's; [`check_dynamic`] checks what is
//! particular to dynamic children.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
use proptest::strategy::Strategy as Gen;
use proptest::test_runner::TestCaseError;

use crate::machine::*;

mod timelines;
use crate::lease::Leases;
use crate::props::config;
use crate::{BackoffPolicy, ChildExit, ChildId, Intensity, RestartPolicy, Shutdown, Strategy};

/// `n` milliseconds.
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The index of child `n`.
fn idx(n: usize) -> ChildIdx {
    ChildIdx::new(n).expect("a small index")
}

// ---------------------------------------------------------------------------
// Scenarios: a random tree and a random sequence of events
// ---------------------------------------------------------------------------

/// A supervisor's children and policies.
#[derive(Debug, Clone)]
struct Tree {
    /// The policies of the static children, then of each slot of dynamic
    /// children (whichever child takes it).
    children: Vec<ChildPolicy>,
    /// How many of `children` are static (given to `Machine::new`).
    statics: usize,
    /// Whether the machine serves dynamic children (`with_dynamic`), and
    /// its `max_children`.
    dynamic: Option<Option<u32>>,
    /// Whether each child declares itself ready as soon as it starts (as a
    /// worker with `Readiness::OnStart`); the others wait for an
    /// [`Op::Ready`].
    auto_ready: Vec<bool>,
    strategy: Strategy,
    intensity: Intensity,
}

/// One thing the driver makes happen. `pick` chooses among the children the
/// event can concern at that moment (modulo their number), so that every
/// sequence is valid and shrinks well; an event that concerns no child then
/// is skipped.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A child whose run has begun exits on its own, straight to the
    /// machine (a child supervisor, or a worker whose host reports it).
    Exit { pick: usize, exit: ChildExit },
    /// A `OneForOne` worker exits in its host, which restarts it in place if
    /// its lease allows and reports the exit otherwise.
    HostExit { pick: usize, exit: ChildExit },
    /// A worker the machine asked to stop had exited, and its host
    /// restarted it in place before the stop arrived: the `Restarted` note
    /// crosses the `Stop`.
    LateNote { pick: usize, exit: ChildExit },
    /// A child asked to stop (or killed) exits; a killed one with SIGKILL,
    /// the others with `exit` (whatever the process said).
    AnswerStop { pick: usize, exit: ChildExit },
    /// A running child that is not ready yet declares itself ready.
    Ready { pick: usize },
    /// Time passes; the driver wakes the machine.
    Advance { by: Duration },
    /// Time jumps to `poll_timeout` (if any) and the driver wakes the machine.
    Wake,
    /// The supervisor is asked to shut down.
    Shutdown,
    /// A child is added at run time (with the policies of the slot it is
    /// to take: the lowest free one), when there is a free slot or the
    /// machine must refuse it.
    Add,
    /// The removal of the `pick`-th of the dynamic children that exist
    /// (when `live` and there is one), or else of the ids handed out so
    /// far (removed ones included) and one never handed out.
    Remove { pick: usize, live: bool },
}

/// What one property test case runs: a tree, and the events the driver
/// makes happen, in order.
#[derive(Debug, Clone)]
struct Scenario {
    tree: Tree,
    ops: Vec<Op>,
}

/// An exit a child makes on its own.
fn an_exit() -> impl Gen<Value = ChildExit> {
    prop_oneof![
        Just(ChildExit::Normal),
        Just(ChildExit::Panicked),
        (1..=3i32).prop_map(ChildExit::Exited),
        Just(ChildExit::Signaled(9)),
        Just(ChildExit::ForkFailed(11)),
        Just(ChildExit::SetupFailed),
    ]
}

/// What a process asked to stop says when it exits: mostly the SIGTERM.
fn a_stop_answer() -> impl Gen<Value = ChildExit> {
    prop_oneof![2 => Just(ChildExit::Signaled(15)), 1 => an_exit()]
}

/// Any restart policy.
fn a_restart_policy() -> impl Gen<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Always),
        Just(RestartPolicy::Once),
        Just(RestartPolicy::Never),
        Just(RestartPolicy::OnFailure),
    ]
}

/// A valid backoff of a few milliseconds, ×1 to ×3, or `immediate`.
fn a_backoff() -> impl Gen<Value = BackoffPolicy> {
    prop_oneof![
        1 => Just(BackoffPolicy::immediate()),
        4 => (1..=50u64, 0..=200u64, 1..=500u64, 1.0..=3.0f64).prop_map(
            |(min, extra, reset, multiplier)| {
                BackoffPolicy::new(ms(min), ms(min + extra), ms(reset), multiplier)
            }
        ),
    ]
}

/// A stop timeout of up to 100 ms (zero included), `Kill` or `Infinity`.
fn a_shutdown() -> impl Gen<Value = Shutdown> {
    prop_oneof![
        2 => (0..=100u64).prop_map(|n| Shutdown::Timeout(ms(n))),
        1 => Just(Shutdown::Kill),
        1 => Just(Shutdown::Infinity),
    ]
}

/// Any strategy.
fn a_strategy() -> impl Gen<Value = Strategy> {
    prop_oneof![
        Just(Strategy::OneForOne),
        Just(Strategy::OneForAll),
        Just(Strategy::RestForOne),
    ]
}

/// Unlimited, or 0 to 4 restarts within 50 ms to 2 s.
fn an_intensity() -> impl Gen<Value = Intensity> {
    prop_oneof![
        1 => Just(Intensity::unlimited()),
        3 => (0..5u32, 50..=2000u64).prop_map(|(max, within)| Intensity::new(max, ms(within))),
    ]
}

/// A worker or child supervisor, and whether it is ready as soon as it
/// starts.
fn a_child() -> impl Gen<Value = (ChildPolicy, bool)> {
    (
        prop::bool::weighted(0.3),
        a_restart_policy(),
        a_backoff(),
        a_shutdown(),
        any::<bool>(),
    )
        .prop_map(|(is_supervisor, restart, backoff, shutdown, auto_ready)| {
            let policy = ChildPolicy {
                restart,
                backoff,
                shutdown,
                start_timeout: None,
                is_supervisor,
                watchdog: None,
            };
            (policy, auto_ready)
        })
}

/// One to six children under a strategy and an intensity; or, half the
/// time, zero to four static children and one to four slots of dynamic
/// ones, at most 0 to 4 of them at once (or no bound).
fn a_tree() -> impl Gen<Value = Tree> {
    let dynamic = prop_oneof![
        1 => Just(None),
        1 => (0..=4usize, 1..=4usize, prop::option::of(0..=4u32)).prop_map(Some),
    ];
    (
        prop::collection::vec(a_child(), 8),
        (1..=6usize),
        dynamic,
        a_strategy(),
        an_intensity(),
    )
        .prop_map(|(pool, plain, dynamic, strategy, intensity)| {
            let (statics, slots, dynamic) = match dynamic {
                None => (plain, 0, None),
                // A bound below the slots: the driver sees it refuse.
                Some((statics, slots, max)) => {
                    let slots = max.map_or(slots, |m| m as usize);
                    (statics, slots, Some(max))
                }
            };
            let children = &pool[..statics + slots];
            Tree {
                auto_ready: children.iter().map(|&(_, ready)| ready).collect(),
                children: children.iter().map(|&(policy, _)| policy).collect(),
                statics,
                dynamic,
                strategy,
                intensity,
            }
        })
}

/// Any event; shutdowns are rare, so that most timelines run a while
/// before the final one.
fn an_op() -> impl Gen<Value = Op> {
    let pick = 0..6usize;
    prop_oneof![
        16 => (pick.clone(), an_exit()).prop_map(|(pick, exit)| Op::Exit { pick, exit }),
        12 => (pick.clone(), an_exit()).prop_map(|(pick, exit)| Op::HostExit { pick, exit }),
        3 => (pick.clone(), an_exit()).prop_map(|(pick, exit)| Op::LateNote { pick, exit }),
        16 => (pick.clone(), a_stop_answer()).prop_map(|(pick, exit)| Op::AnswerStop { pick, exit }),
        12 => pick.clone().prop_map(|pick| Op::Ready { pick }),
        12 => (0..=300u64).prop_map(|n| Op::Advance { by: ms(n) }),
        16 => Just(Op::Wake),
        1 => Just(Op::Shutdown),
        12 => Just(Op::Add),
        6 => (pick, prop::bool::weighted(0.75)).prop_map(|(pick, live)| Op::Remove { pick, live }),
    ]
}

/// A tree and up to 60 events.
fn a_scenario() -> impl Gen<Value = Scenario> {
    (a_tree(), prop::collection::vec(an_op(), 1..=60))
        .prop_map(|(tree, ops)| Scenario { tree, ops })
}

// ---------------------------------------------------------------------------
// The driver: plays the processes, records the trace
// ---------------------------------------------------------------------------

/// What the driver fed the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    /// `handle_start`.
    Start,
    /// `handle_exit` of a child.
    Exit(usize, ChildExit),
    /// `handle_restarted`, after `Leases::spend` gave this delay and state.
    Restarted {
        child: usize,
        exit: ChildExit,
        delay: Duration,
        state: RecordState,
    },
    /// `handle_ready` of a child.
    Ready(usize),
    /// `handle_timeout`.
    Timeout,
    /// `handle_shutdown`.
    Shutdown,
    /// `handle_add`, with the policies of this slot.
    Add(usize),
    /// `handle_remove` of this id.
    Remove(ChildId),
}

/// What `handle_add` or `handle_remove` answered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Add(Result<(usize, ChildId), AddError>),
    Remove(Result<usize, RemoveError>),
}

/// One input, at a time, and everything the machine answered to it.
#[derive(Debug, Clone)]
struct Step {
    /// Since the start of the timeline.
    at: Duration,
    input: Input,
    /// What the machine answered to an `Add` or `Remove`.
    answer: Option<Answer>,
    reports: Vec<Report>,
    actions: Vec<Action>,
    /// `poll_timeout` after the step, since the start of the timeline.
    timeout: Option<Duration>,
}

/// A whole timeline.
#[derive(Debug)]
struct Trace {
    steps: Vec<Step>,
}

impl Trace {
    /// The timeline, one step a line, to read when a property fails.
    fn render(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "  #{i} t={:?} {:?} -> reports {:?} actions {:?} timeout {:?}",
                s.at, s.input, s.reports, s.actions, s.timeout
            );
        }
        out
    }
}

/// Where a child's process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Not started, or exited.
    Down,
    /// Runs; `ready` once it declared itself ready.
    Up { ready: bool },
    /// Asked to stop; `killed` once it was killed.
    Stopping { killed: bool },
}

/// A child's process, as the driver sees it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    run: Run,
    /// When its current run began (after an in-place restart, once the
    /// backoff delay is over).
    since: Duration,
    /// Whether it was started with a lease.
    leased: bool,
}

/// Plays the processes around one machine.
struct Driver {
    m: Machine,
    /// The instant the timeline starts at.
    base: Instant,
    /// The time now, since `base`.
    now: Duration,
    procs: Vec<Proc>,
    /// Whether each child declares itself ready as soon as it starts.
    auto_ready: Vec<bool>,
    /// The worker host's leases.
    leases: Leases,
    /// `handle_restarted` calls so far: the `as_of` of a new grant.
    notes: u64,
    /// Whether the machine issued `Action::Exit`.
    exited: bool,
    /// How many children are static.
    statics: usize,
    /// The policies of every child and slot ([`Tree::children`]).
    policies: Vec<ChildPolicy>,
    /// The id of the dynamic child in each slot, from its `Add` to its
    /// `Report::Removed` (static children and free slots: `None`).
    live: Vec<Option<ChildId>>,
    /// Every id the machine handed out, in order.
    ids: Vec<ChildId>,
    /// Whether it was made `with_dynamic`, and its bound.
    dynamic: Option<Option<u32>>,
    /// The timeline so far.
    steps: Vec<Step>,
}

impl Driver {
    /// A driver of a new machine for `tree`, and the worker host's leases
    /// under its first grant.
    fn new(tree: &Tree) -> Self {
        let mut m = Machine::new(
            "root".to_owned(),
            tree.children[..tree.statics].iter().copied(),
            tree.strategy,
            tree.intensity,
            Shutdown::Infinity,
            None,
        );
        if let Some(max) = tree.dynamic {
            m = m.with_dynamic(max, 1);
        }
        let base = Instant::now();
        let grant = Grant {
            budget: m.budget(base),
            as_of: 0,
        };
        // The host's policies of every slot, as `leasable` gives them once
        // each slot is taken: a dynamic worker is leased whatever the
        // strategy.
        let mut policies = m.leasable();
        policies.extend(
            tree.children[tree.statics..]
                .iter()
                .map(|p| (!p.is_supervisor).then_some(*p)),
        );
        let leases = Leases::new(policies, grant);
        let procs = tree
            .children
            .iter()
            .map(|_| Proc {
                run: Run::Down,
                since: Duration::ZERO,
                leased: false,
            })
            .collect();
        Self {
            m,
            base,
            now: Duration::ZERO,
            procs,
            auto_ready: tree.auto_ready.clone(),
            leases,
            notes: 0,
            exited: false,
            statics: tree.statics,
            policies: tree.children.clone(),
            live: vec![None; tree.children.len()],
            ids: Vec::new(),
            dynamic: tree.dynamic,
            steps: Vec::new(),
        }
    }

    /// Feeds `input` at the current time, drains the machine, carries out
    /// its actions and records the step.
    fn feed(&mut self, input: Input) {
        let now = self.base + self.now;
        let mut answer = None;
        match input {
            Input::Add(slot) => {
                let policy = self.policy(slot);
                let added = self.m.handle_add(policy, now);
                answer = Some(Answer::Add(added.map(|(c, id)| (c.get(), id))));
            }
            Input::Remove(id) => {
                answer = Some(Answer::Remove(
                    self.m.handle_remove(id, now).map(|c| c.get()),
                ));
            }
            Input::Start => self.m.handle_start(now),
            Input::Exit(n, exit) => self.m.handle_exit(idx(n), exit, now),
            Input::Restarted {
                child,
                exit,
                delay,
                state,
            } => self
                .m
                .handle_restarted(idx(child), exit, None, delay, state, now),
            Input::Ready(n) => self.m.handle_ready(idx(n), now),
            Input::Timeout => self.m.handle_timeout(now),
            Input::Shutdown => self.m.handle_shutdown(now),
        }
        let reports: Vec<Report> = std::iter::from_fn(|| self.m.poll_report()).collect();
        let actions: Vec<Action> = std::iter::from_fn(|| self.m.poll_action()).collect();
        if let Some(Answer::Add(Ok((slot, id)))) = answer {
            if let Some(live) = self.live.get_mut(slot) {
                *live = Some(id);
            }
            self.ids.push(id);
            // A new child in the slot: no process yet.
            if let Some(p) = self.procs.get_mut(slot) {
                *p = Proc {
                    run: Run::Down,
                    since: self.now,
                    leased: false,
                };
            }
        }
        for report in &reports {
            if let Report::Removed { child, .. } = report {
                if let Some(live) = self.live.get_mut(child.get()) {
                    *live = None;
                }
            }
        }
        // What the input did to the process, before what the machine does.
        match input {
            Input::Exit(n, _) => self.procs[n].run = Run::Down,
            Input::Ready(n) => {
                if let Run::Up { .. } = self.procs[n].run {
                    self.procs[n].run = Run::Up { ready: true };
                }
            }
            Input::Restarted { child, delay, .. } => {
                let p = &mut self.procs[child];
                p.since = self.now + delay;
                if let Run::Up { .. } = p.run {
                    p.run = Run::Up { ready: false };
                }
            }
            Input::Start | Input::Timeout | Input::Shutdown | Input::Add(_) | Input::Remove(_) => {}
        }
        let mut started = Vec::new();
        for action in &actions {
            match action {
                Action::KillHost(_) => {}
                Action::Start(child) => {
                    let lease = self.m.lease(*child);
                    self.procs[child.get()] = Proc {
                        run: Run::Up { ready: false },
                        since: self.now,
                        leased: lease.is_some(),
                    };
                    self.leases.start(*child, lease);
                    started.push(child.get());
                }
                Action::Stop(children) => {
                    for c in children {
                        let p = &mut self.procs[c.get()];
                        if let Run::Up { .. } = p.run {
                            p.run = Run::Stopping { killed: false };
                        }
                    }
                }
                Action::Kill(children) => {
                    for c in children {
                        let p = &mut self.procs[c.get()];
                        if p.run != Run::Down {
                            p.run = Run::Stopping { killed: true };
                        }
                    }
                }
                Action::Grant => self.leases.grant(Grant {
                    budget: self.m.budget(now),
                    as_of: self.notes,
                }),
                Action::Exit(_) => self.exited = true,
            }
        }
        let timeout = self
            .m
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.base));
        self.steps.push(Step {
            at: self.now,
            input,
            answer,
            reports,
            actions,
            timeout,
        });
        for n in started {
            if self.auto_ready[n] && self.procs[n].run == (Run::Up { ready: false }) {
                self.feed(Input::Ready(n));
            }
        }
    }

    /// The policies of slot `slot` (those of the first child for a slot
    /// beyond the tree's: the machine must refuse it).
    fn policy(&self, slot: usize) -> ChildPolicy {
        self.policies
            .get(slot)
            .or_else(|| self.policies.first())
            .copied()
            .unwrap_or(ChildPolicy {
                restart: RestartPolicy::Always,
                backoff: BackoffPolicy::immediate(),
                shutdown: Shutdown::Kill,
                start_timeout: None,
                is_supervisor: false,
                watchdog: None,
            })
    }

    /// The slot `handle_add` must give the next dynamic child: the lowest
    /// free one, or a new one (beyond the tree's slots when all are taken).
    fn next_slot(&self) -> usize {
        (self.statics..self.live.len())
            .find(|&n| self.live[n].is_none())
            .unwrap_or(self.live.len())
    }

    /// How many dynamic children exist.
    fn live_count(&self) -> usize {
        self.live.iter().flatten().count()
    }

    /// The `pick`-th of the children for which `f` holds, if any.
    fn pick(&self, pick: usize, f: impl Fn(&Proc) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.procs.len())
            .filter(|&n| f(&self.procs[n]))
            .collect();
        (!candidates.is_empty()).then(|| candidates[pick % candidates.len()])
    }

    /// Makes `op` happen, if it concerns any child now.
    fn op(&mut self, op: Op) {
        let now = self.now;
        let up = |p: &Proc| matches!(p.run, Run::Up { .. }) && p.since <= now;
        match op {
            Op::Exit { pick, exit } => {
                if let Some(n) = self.pick(pick, up) {
                    self.feed(Input::Exit(n, exit));
                }
            }
            Op::HostExit { pick, exit } => {
                if let Some(n) = self.pick(pick, |p| up(p) && p.leased) {
                    self.host_exit(n, exit, true);
                }
            }
            Op::LateNote { pick, exit } => {
                let stopping = |p: &Proc| {
                    p.run == (Run::Stopping { killed: false }) && p.leased && p.since <= now
                };
                if let Some(n) = self.pick(pick, stopping) {
                    self.host_exit(n, exit, false);
                }
            }
            Op::AnswerStop { pick, exit } => {
                if let Some(n) = self.pick(pick, |p| matches!(p.run, Run::Stopping { .. })) {
                    self.answer_stop(n, exit);
                }
            }
            Op::Ready { pick } => {
                let unready = |p: &Proc| p.run == (Run::Up { ready: false }) && p.since <= now;
                if let Some(n) = self.pick(pick, unready) {
                    self.feed(Input::Ready(n));
                }
            }
            Op::Advance { by } => {
                self.now += by;
                self.feed(Input::Timeout);
            }
            Op::Wake => {
                if let Some(at) = self.m.poll_timeout() {
                    self.now = self.now.max(at.saturating_duration_since(self.base));
                    self.feed(Input::Timeout);
                }
            }
            Op::Shutdown => self.feed(Input::Shutdown),
            Op::Add => {
                let slot = self.next_slot();
                let full = match self.dynamic {
                    Some(Some(max)) => self.live_count() >= max as usize,
                    Some(None) => false,
                    None => true,
                };
                // Past the tree's slots only when the machine must refuse
                // it (not dynamic, full, shutting down, ended).
                if slot < self.live.len() || full || self.exited || self.m.is_shutting_down() {
                    self.feed(Input::Add(slot));
                }
            }
            Op::Remove { pick, live } => {
                let existing: Vec<ChildId> = self.live.iter().flatten().copied().collect();
                if live && !existing.is_empty() {
                    return self.feed(Input::Remove(existing[pick % existing.len()]));
                }
                let next = ChildId::new(self.ids.last().map_or(1, |id| id.get() + 1));
                let id = self
                    .ids
                    .get(pick % (self.ids.len() + 1))
                    .copied()
                    .unwrap_or(next);
                self.feed(Input::Remove(id));
            }
        }
    }

    /// Worker `n` ended with `exit` in its host, which spends its lease as
    /// `run_leased` does: a restart in place, noted to the machine, or (when
    /// `or_report`) the exit reported to the machine.
    fn host_exit(&mut self, n: usize, exit: ChildExit, or_report: bool) {
        let ran_for = self.now.saturating_sub(self.procs[n].since);
        match self.leases.spend(idx(n), &exit, ran_for) {
            Some((delay, state)) => {
                self.notes += 1;
                self.feed(Input::Restarted {
                    child: n,
                    exit,
                    delay,
                    state,
                });
            }
            None if or_report => self.feed(Input::Exit(n, exit)),
            None => {}
        }
    }

    /// Child `n`, asked to stop, exits: with SIGKILL if it was killed.
    fn answer_stop(&mut self, n: usize, exit: ChildExit) {
        let exit = match self.procs[n].run {
            Run::Stopping { killed: true } => ChildExit::Signaled(9),
            _ => exit,
        };
        self.feed(Input::Exit(n, exit));
    }

    /// Shuts the supervisor down and answers every stop until it exits.
    fn finish(&mut self) {
        if !self.exited {
            self.feed(Input::Shutdown);
        }
        for _ in 0..1000 {
            if self.exited {
                break;
            }
            let stopping =
                (0..self.procs.len()).find(|&n| matches!(self.procs[n].run, Run::Stopping { .. }));
            if let Some(n) = stopping {
                self.answer_stop(n, ChildExit::Signaled(15));
            } else if let Some(at) = self.m.poll_timeout() {
                self.now = self.now.max(at.saturating_duration_since(self.base));
                self.feed(Input::Timeout);
            } else {
                break;
            }
        }
    }

    /// Feeds an exited machine every kind of input.
    fn probe(&mut self) {
        if !self.exited {
            return;
        }
        self.now += Duration::from_secs(10);
        self.feed(Input::Timeout);
        self.feed(Input::Shutdown);
        self.feed(Input::Add(self.next_slot()));
        for id in self.ids.clone() {
            self.feed(Input::Remove(id));
        }
        for n in 0..self.procs.len() {
            self.feed(Input::Exit(n, ChildExit::Panicked));
            self.feed(Input::Ready(n));
            self.feed(Input::Restarted {
                child: n,
                exit: ChildExit::Normal,
                delay: Duration::ZERO,
                state: RecordState::default(),
            });
        }
    }
}

/// Runs `scenario` and returns its timeline.
fn run(scenario: &Scenario) -> Trace {
    let mut d = Driver::new(&scenario.tree);
    d.feed(Input::Start);
    for &op in &scenario.ops {
        d.op(op);
    }
    d.finish();
    d.probe();
    Trace { steps: d.steps }
}

// ---------------------------------------------------------------------------
// The model: the documented rules, replayed along a trace
// ---------------------------------------------------------------------------

/// Whether a child that has been restarted `restarts` times and exits on its
/// own with `exit` runs again, by its restart policy (a child supervisor
/// that exits normally has finished its work).
fn wants_restart(policy: &ChildPolicy, exit: ChildExit, restarts: u32) -> bool {
    let failure = !matches!(exit, ChildExit::Normal | ChildExit::Stopped);
    if policy.is_supervisor && !failure {
        return false;
    }
    match policy.restart {
        RestartPolicy::Always => true,
        RestartPolicy::Once => restarts == 0,
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => failure,
    }
}

/// A child as the model sees it.
#[derive(Debug, Clone, Copy)]
struct ModelChild {
    /// Its run as the machine knows it: `ready` once it declared itself
    /// ready, until the next start or accepted in-place restart.
    run: Run,
    /// When its current run began, as the machine knows it.
    since: Duration,
    /// When its current run began in its host (after an in-place restart
    /// the machine ignored, the host's run began anew all the same).
    host_since: Duration,
    /// Starts issued by the machine.
    starts: u32,
    /// In-place restarts the machine accepted.
    in_place: u32,
    /// Consecutive restarts since the last run of at least `reset_after`.
    consecutive: u32,
    /// Consecutive exits that were failures of the engine's machinery
    /// (fork, setup), since it last ran (was ready, or exited otherwise).
    engine_failures: u32,
}

impl ModelChild {
    /// A child not started yet.
    fn fresh() -> Self {
        Self {
            run: Run::Down,
            since: Duration::ZERO,
            host_since: Duration::ZERO,
            starts: 0,
            in_place: 0,
            consecutive: 0,
            engine_failures: 0,
        }
    }

    /// Its restarts so far: starts after the first, and in-place ones.
    fn restarts(&self) -> u32 {
        self.starts.saturating_sub(1) + self.in_place
    }
}

/// A child's own exit, as the model expects the machine to decide it.
#[derive(Debug, Clone, Copy)]
struct OwnExit {
    child: usize,
    exit: ChildExit,
    /// The delay of the restart the rules call for, if they do.
    delay: Option<Duration>,
    /// Whether that restart goes over the intensity.
    gives_up: bool,
}

/// An in-place restart, as the model expects the host and the machine to
/// handle it.
#[derive(Debug, Clone, Copy)]
struct InPlace {
    child: usize,
    exit: ChildExit,
    /// The delay the backoff formula gives.
    delay: Duration,
    /// Whether the machine counts it: the supervisor runs and so does the
    /// child, not asked to stop.
    accepted: bool,
    gives_up: bool,
}

/// What the model expects of one step.
#[derive(Debug, Default, Clone, Copy)]
struct Expect {
    own_exit: Option<OwnExit>,
    in_place: Option<InPlace>,
    /// A child asked to stop exited: it, and whether it had been killed.
    stopped: Option<(usize, bool)>,
    /// A ready child declared itself ready.
    child_ready: Option<usize>,
}

impl Expect {
    /// Whether the machine must give up in this step.
    fn gives_up(&self) -> bool {
        self.own_exit.is_some_and(|e| e.gives_up) || self.in_place.is_some_and(|e| e.gives_up)
    }
}

/// The documented rules, replayed step by step along a trace.
struct Model<'a> {
    tree: &'a Tree,
    /// Whether the supervisor still runs (neither shutting down nor exited).
    running: bool,
    children: Vec<ModelChild>,
    /// When every restart was decided, the one that went over included.
    restarts: Vec<Duration>,
    gave_up: bool,
    /// Whether the machine has exited: what the driver feeds it after
    /// that is a probe, not an event of the timeline.
    exited: bool,
}

impl<'a> Model<'a> {
    /// The model of a machine for `tree`, before its start.
    fn new(tree: &'a Tree) -> Self {
        let child = ModelChild::fresh();
        Self {
            tree,
            running: true,
            children: vec![child; tree.children.len()],
            restarts: Vec::new(),
            gave_up: false,
            exited: false,
        }
    }

    /// A restart decided at `at`: whether it goes over the intensity, i.e.
    /// makes more than `max_restarts` inside the window `(at - within, at]`.
    fn restart_at(&mut self, at: Duration) -> bool {
        self.restarts.push(at);
        let (Some(max), Some(within)) = (
            self.tree.intensity.max_restarts(),
            self.tree.intensity.within(),
        ) else {
            return false;
        };
        let recent = self.restarts.iter().filter(|&&t| at - t < within).count();
        recent > max as usize
    }

    /// The next backoff delay of child `n`, after a run of `ran_for`.
    fn backoff(&mut self, n: usize, ran_for: Duration) -> Duration {
        let policy = self.tree.children[n].backoff;
        let c = &mut self.children[n];
        if ran_for >= policy.reset_after() {
            c.consecutive = 0;
        }
        c.consecutive += 1;
        policy.delay_for(c.consecutive)
    }

    /// The least delay after the `k`-th consecutive failure of the engine's
    /// machinery: 10 ms, doubled each time, never above 1 s.
    fn engine_floor(k: u32) -> Duration {
        let mut floor = Duration::from_millis(10);
        for _ in 1..k {
            floor = (floor * 2).min(Duration::from_secs(1));
        }
        floor
    }

    /// What the model expects of `step`; updates the model with it.
    fn step(&mut self, step: &Step) -> Expect {
        let expect = self.input(step);
        self.actions(step);
        expect
    }

    /// What the model expects of `step`; updates the model with its input
    /// (and with whether the machine began to stop), not yet its actions.
    fn input(&mut self, step: &Step) -> Expect {
        let mut expect = Expect::default();
        if self.exited {
            return expect;
        }
        let at = step.at;
        match step.input {
            Input::Exit(n, exit) => match self.children[n].run {
                Run::Up { .. } => {
                    let c = self.children[n];
                    let wants =
                        self.running && wants_restart(&self.tree.children[n], exit, c.restarts());
                    let engine = exit.is_engine_failure();
                    let failures = if engine { c.engine_failures + 1 } else { 0 };
                    self.children[n].engine_failures = failures;
                    let delay = wants
                        .then(|| self.backoff(n, at.saturating_sub(c.since)))
                        .map(|d| {
                            if engine {
                                d.max(Self::engine_floor(failures))
                            } else {
                                d
                            }
                        });
                    let gives_up = wants && self.restart_at(at);
                    expect.own_exit = Some(OwnExit {
                        child: n,
                        exit,
                        delay,
                        gives_up,
                    });
                    self.children[n].run = Run::Down;
                }
                Run::Stopping { killed } => {
                    expect.stopped = Some((n, killed));
                    self.children[n].run = Run::Down;
                }
                Run::Down => {}
            },
            Input::Restarted {
                child: n,
                exit,
                delay,
                ..
            } => {
                let c = self.children[n];
                if c.starts > 0 {
                    let accepted = self.running && matches!(c.run, Run::Up { .. });
                    let expected = self.backoff(n, at.saturating_sub(c.host_since));
                    let gives_up = accepted && self.restart_at(at);
                    let c = &mut self.children[n];
                    c.host_since = at + delay;
                    if accepted {
                        c.engine_failures = 0;
                        c.in_place += 1;
                        c.since = at + delay;
                        c.run = Run::Up { ready: false };
                    }
                    expect.in_place = Some(InPlace {
                        child: n,
                        exit,
                        delay: expected,
                        accepted,
                        gives_up,
                    });
                }
            }
            Input::Ready(n) => {
                let c = &mut self.children[n];
                if c.run == (Run::Up { ready: false }) {
                    c.run = Run::Up { ready: true };
                    c.engine_failures = 0;
                    expect.child_ready = Some(n);
                }
            }
            Input::Shutdown => self.running = false,
            Input::Add(_) => {
                // A new child in its slot: nothing of the one before.
                if let Some(Answer::Add(Ok((slot, _)))) = step.answer {
                    if let Some(c) = self.children.get_mut(slot) {
                        *c = ModelChild::fresh();
                    }
                }
            }
            // Its stop, if any, is in the step's actions.
            Input::Remove(_) | Input::Start | Input::Timeout => {}
        }
        if expect.gives_up() {
            self.gave_up = true;
            self.running = false;
        }
        if step
            .reports
            .iter()
            .any(|r| matches!(r, Report::Stopping(_)))
        {
            // Follow the machine, so that one wrong decision is reported by
            // the property it breaks and not by every other one.
            self.running = false;
        }
        expect
    }

    /// Updates the model with the actions of `step`.
    fn actions(&mut self, step: &Step) {
        if self.exited {
            return;
        }
        let at = step.at;
        for action in &step.actions {
            match action {
                Action::KillHost(_) => {}
                Action::Start(c) => {
                    let c = &mut self.children[c.get()];
                    c.run = Run::Up { ready: false };
                    c.since = at;
                    c.host_since = at;
                    c.starts += 1;
                }
                Action::Stop(cs) => {
                    for c in cs {
                        let c = &mut self.children[c.get()];
                        if let Run::Up { .. } = c.run {
                            c.run = Run::Stopping { killed: false };
                        }
                    }
                }
                Action::Kill(cs) => {
                    for c in cs {
                        let c = &mut self.children[c.get()];
                        if c.run != Run::Down {
                            c.run = Run::Stopping { killed: true };
                        }
                    }
                }
                Action::Exit(_) => {
                    self.running = false;
                    self.exited = true;
                }
                Action::Grant => {}
            }
        }
    }
}

/// The children a `Stop` or `Kill` names, as positions.
fn named(children: &[ChildIdx]) -> Vec<usize> {
    children.iter().map(|c| c.get()).collect()
}

/// Whether `v` goes strictly down.
fn strictly_decreasing(v: &[usize]) -> bool {
    v.windows(2).all(|w| w[0] > w[1])
}

/// Fails with the trace attached.
fn fail(trace: &Trace, i: usize, what: String) -> TestCaseError {
    TestCaseError::fail(format!("step #{i}: {what}\ntimeline:\n{}", trace.render()))
}

// ---------------------------------------------------------------------------
// The properties, as checks of a trace
// ---------------------------------------------------------------------------

/// Property 1: restarts (decided by the machine on an exit, or made in
/// place and accepted) are counted at the time they were decided; the
/// machine gives up exactly on the one that makes more than `max_restarts`
/// inside a window of `within`, and then exits with `GaveUp`.
fn check_intensity(tree: &Tree, trace: &Trace) -> Result<(), TestCaseError> {
    let mut model = Model::new(tree);
    let mut outcome = None;
    for (i, step) in trace.steps.iter().enumerate() {
        let expect = model.step(step);
        let gave_up = step.reports.contains(&Report::Stopping(Outcome::GaveUp));
        if gave_up != expect.gives_up() {
            let why = if gave_up {
                "the machine gave up within the limit"
            } else {
                "a restart went over the intensity and the machine did not give up"
            };
            return Err(fail(
                trace,
                i,
                format!(
                    "{why}; restarts decided at {:?}, intensity {:?}",
                    model.restarts, tree.intensity
                ),
            ));
        }
        for action in &step.actions {
            if let Action::Exit(o) = action {
                outcome.get_or_insert(*o);
            }
        }
    }
    let expected = if model.gave_up {
        Outcome::GaveUp
    } else {
        Outcome::Normal
    };
    prop_assert_eq!(outcome, Some(expected), "timeline:\n{}", trace.render());
    Ok(())
}

/// Property 2: during a shutdown, new stops name children in strictly
/// decreasing order, each batch below every earlier one, and a new batch
/// only once every child of the one before exited (one stop under way at a
/// time, group restarts included). A batch is what one step newly asks to
/// stop, by `Stop` and `Kill`; a `Kill` of a child already stopping is the
/// escalation of its stop, not a new batch. With `strict`, a batch split
/// over a `Stop` and a `Kill` must keep the order across them too.
///
/// With dynamic children: while the supervisor runs, the stop of one being
/// removed is no batch and holds up none (nor is it held up); a shutdown
/// waits for every stop under way, then goes down from its top child (a
/// removal under way may be above children still running).
fn check_stop_order(tree: &Tree, trace: &Trace, strict: bool) -> Result<(), TestCaseError> {
    let mut model = Model::new(tree);
    let mut in_shutdown = false;
    // The lowest child named by a shutdown batch so far.
    let mut floor: Option<usize> = None;
    for (i, step) in trace.steps.iter().enumerate() {
        // Who is still stopping once this step's input is taken into
        // account (an exit may end the stop under way).
        let stopping: BTreeSet<usize> = (0..model.children.len())
            .filter(|&n| matches!(model.children[n].run, Run::Stopping { .. }))
            .filter(|&n| !matches!(step.input, Input::Exit(c, _) if c == n))
            .collect();
        if !in_shutdown
            && step
                .reports
                .iter()
                .any(|r| matches!(r, Report::Stopping(_)))
        {
            in_shutdown = true;
            floor = if tree.dynamic.is_some() {
                None
            } else {
                stopping.iter().next().copied()
            };
        }
        // What holds up a new batch: any stop under way in a shutdown; a
        // static child's while the supervisor runs.
        let blocking: BTreeSet<usize> = stopping
            .iter()
            .copied()
            .filter(|&c| in_shutdown || c < tree.statics)
            .collect();
        // A removal's own stop, while the supervisor runs (what it names
        // is checked by `check_dynamic`).
        let removal = !in_shutdown && matches!(step.input, Input::Remove(_));
        let mut batch = Vec::new();
        for action in &step.actions {
            let (Action::Stop(cs) | Action::Kill(cs)) = action else {
                continue;
            };
            let cs = named(cs);
            let escalation = cs.iter().all(|c| stopping.contains(c));
            if (strict || !escalation) && !strictly_decreasing(&cs) {
                return Err(fail(
                    trace,
                    i,
                    format!("{action:?} is not in reverse order"),
                ));
            }
            for c in cs {
                if stopping.contains(&c) {
                    if !matches!(action, Action::Kill(_)) {
                        return Err(fail(trace, i, format!("child {c} asked to stop twice")));
                    }
                } else if !removal {
                    batch.push(c);
                }
            }
        }
        if !batch.is_empty() {
            if !blocking.is_empty() {
                return Err(fail(
                    trace,
                    i,
                    format!("stops {batch:?} while {blocking:?} still stop"),
                ));
            }
            if in_shutdown {
                if let Some(f) = floor.filter(|&f| batch.iter().any(|&c| c >= f)) {
                    return Err(fail(
                        trace,
                        i,
                        format!("stops {batch:?} after child {f} was stopped"),
                    ));
                }
                if strict && !strictly_decreasing(&batch) {
                    return Err(fail(
                        trace,
                        i,
                        format!("the batch {batch:?} is not in reverse order"),
                    ));
                }
                floor = batch.iter().min().copied();
            }
        }
        model.step(step);
    }
    Ok(())
}

/// Property 3: the machine starts only children that are down, stops only
/// children that run, exits only once every child has exited, and then
/// answers nothing to any input; every start is matched by exactly one
/// exit.
fn check_lifecycle(tree: &Tree, trace: &Trace) -> Result<(), TestCaseError> {
    let n = tree.children.len();
    let mut runs = vec![Run::Down; n];
    let (mut starts, mut exits) = (vec![0u32; n], vec![0u32; n]);
    let mut exited_at = None;
    for (i, step) in trace.steps.iter().enumerate() {
        if let Some(e) = exited_at {
            if !step.actions.is_empty() || !step.reports.is_empty() {
                return Err(fail(
                    trace,
                    i,
                    format!("the machine answered after it exited at #{e}"),
                ));
            }
            continue;
        }
        if let Input::Exit(c, _) = step.input {
            if runs[c] != Run::Down {
                exits[c] += 1;
                runs[c] = Run::Down;
            }
        }
        for (k, action) in step.actions.iter().enumerate() {
            match action {
                Action::KillHost(_) => {}
                Action::Start(c) => {
                    let c = c.get();
                    if runs[c] != Run::Down {
                        return Err(fail(
                            trace,
                            i,
                            format!("starts child {c}, which is {:?}", runs[c]),
                        ));
                    }
                    runs[c] = Run::Up { ready: false };
                    starts[c] += 1;
                }
                Action::Stop(cs) => {
                    for c in named(cs) {
                        if !matches!(runs[c], Run::Up { .. }) {
                            return Err(fail(
                                trace,
                                i,
                                format!("stops child {c}, which is {:?}", runs[c]),
                            ));
                        }
                        runs[c] = Run::Stopping { killed: false };
                    }
                }
                Action::Kill(cs) => {
                    for c in named(cs) {
                        if runs[c] == Run::Down {
                            return Err(fail(trace, i, format!("kills child {c}, which is down")));
                        }
                        runs[c] = Run::Stopping { killed: true };
                    }
                }
                Action::Exit(_) => {
                    if let Some(c) = (0..n).find(|&c| runs[c] != Run::Down) {
                        return Err(fail(
                            trace,
                            i,
                            format!("exits while child {c} is {:?}", runs[c]),
                        ));
                    }
                    if k + 1 != step.actions.len() {
                        return Err(fail(trace, i, "actions after Exit".to_owned()));
                    }
                    exited_at = Some(i);
                }
                Action::Grant => {}
            }
        }
    }
    prop_assert!(exited_at.is_some(), "never exited:\n{}", trace.render());
    prop_assert_eq!(
        starts,
        exits,
        "starts and exits per child:\n{}",
        trace.render()
    );
    Ok(())
}

/// Property 4: every restart delay (reported, or spent in place) is
/// `delay_for(k)`, k counting consecutive restarts since the last run of at
/// least `reset_after`, raised to the engine's floor after a failure of the
/// engine's machinery (10 ms doubling to 1 s over consecutive ones, counted
/// since the child last ran); a restart never starts before its delay is over;
/// under `OneForOne` (and for a dynamic child under any strategy) it starts
/// at the first wake-up once it is due, and `poll_timeout` never lets a due
/// restart wait.
fn check_backoff(tree: &Tree, trace: &Trace) -> Result<(), TestCaseError> {
    let mut model = Model::new(tree);
    let one_for_one = tree.strategy == Strategy::OneForOne;
    // Whether child `c` is restarted alone: under `OneForOne`, or dynamic.
    let alone = |c: usize| one_for_one || c >= tree.statics;
    // When each child's restart is due.
    let mut due: Vec<Option<Duration>> = vec![None; tree.children.len()];
    for (i, step) in trace.steps.iter().enumerate() {
        let expect = model.step(step);
        let exited = |child: usize| {
            step.reports.iter().find_map(|r| match *r {
                Report::Exited {
                    child: c, restart, ..
                } if c.get() == child => Some(restart),
                _ => None,
            })
        };
        if let Some(e) = expect.own_exit {
            let expected = e.delay.filter(|_| !e.gives_up);
            let reported = exited(e.child);
            if reported != Some(expected) {
                return Err(fail(
                    trace,
                    i,
                    format!(
                        "child {} exited: expected restart {expected:?} (consecutive {}), reported {reported:?}",
                        e.child, model.children[e.child].consecutive
                    ),
                ));
            }
            if let Some(d) = expected {
                due[e.child] = Some(step.at + d);
            }
        }
        if let Some(e) = expect.in_place {
            if let Input::Restarted { delay, .. } = step.input {
                if delay != e.delay {
                    return Err(fail(
                        trace,
                        i,
                        format!("the lease gave {delay:?}, the formula {:?}", e.delay),
                    ));
                }
            }
            if e.accepted {
                let reported = exited(e.child);
                let expected = Some(e.delay).filter(|_| !e.gives_up);
                if reported != Some(expected) {
                    return Err(fail(
                        trace,
                        i,
                        format!("in-place restart reported as {reported:?}, not {expected:?}"),
                    ));
                }
            }
        }
        if !model.running {
            due.iter_mut().for_each(|d| *d = None);
        }
        // A child removed while it waited for its restart never has it.
        for report in &step.reports {
            if let Report::Removed { child, .. } = report {
                due[child.get()] = None;
            }
        }
        let started: Vec<usize> = step
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Start(c) => Some(c.get()),
                _ => None,
            })
            .collect();
        for &c in &started {
            if alone(c) && model.children[c].starts > 1 && due[c].is_none() {
                return Err(fail(
                    trace,
                    i,
                    format!("child {c} restarted with no restart due"),
                ));
            }
        }
        for (c, d) in due.iter_mut().enumerate() {
            let Some(at) = *d else { continue };
            if started.contains(&c) {
                if step.at < at {
                    return Err(fail(trace, i, format!("child {c} restarts before {at:?}")));
                }
                *d = None;
            } else if alone(c) && step.input == Input::Timeout && step.at >= at {
                return Err(fail(
                    trace,
                    i,
                    format!("child {c}'s restart, due at {at:?}, was not started"),
                ));
            }
        }
        let first = (0..due.len())
            .filter(|&c| alone(c))
            .filter_map(|c| due[c])
            .min();
        {
            if let Some(first) = first {
                if step.timeout.is_none_or(|t| t > first) {
                    return Err(fail(
                        trace,
                        i,
                        format!(
                            "a restart is due at {first:?} but poll_timeout is {:?}",
                            step.timeout
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Property 5: each exit the driver feeds is reported once, with the exit
/// the process gave, or as `Stopped` when the machine had asked the child
/// to stop and had not killed it; an accepted in-place restart is reported
/// once too; nothing else is reported as an exit; a child's readiness is
/// reported once per run; `Ready` and `Stopping` at most once in all.
fn check_reports(tree: &Tree, trace: &Trace) -> Result<(), TestCaseError> {
    let mut model = Model::new(tree);
    let (mut ready, mut stopping) = (0, 0);
    for (i, step) in trace.steps.iter().enumerate() {
        let expect = model.step(step);
        let exits: Vec<(usize, ChildExit)> = step
            .reports
            .iter()
            .filter_map(|r| match *r {
                Report::Exited { child, exit, .. } => Some((child.get(), exit)),
                _ => None,
            })
            .collect();
        let expected: Vec<(usize, ChildExit)> =
            match (expect.own_exit, expect.stopped, expect.in_place) {
                (Some(e), _, _) => vec![(e.child, e.exit)],
                (_, Some((c, killed)), _) => {
                    let Input::Exit(_, exit) = step.input else {
                        unreachable!("a stop answer is an exit")
                    };
                    // A killed worker is dropped: stopped all the same.
                    let supervisor = tree.children[c].is_supervisor;
                    vec![(
                        c,
                        if killed && supervisor {
                            exit
                        } else {
                            ChildExit::Stopped
                        },
                    )]
                }
                (_, _, Some(e)) if e.accepted => vec![(e.child, e.exit)],
                _ => vec![],
            };
        if exits != expected {
            return Err(fail(
                trace,
                i,
                format!("exits reported {exits:?}, expected {expected:?}"),
            ));
        }
        let child_ready: Vec<usize> = step
            .reports
            .iter()
            .filter_map(|r| match r {
                Report::ChildReady(c) => Some(c.get()),
                _ => None,
            })
            .collect();
        let expected: Vec<usize> = expect.child_ready.into_iter().collect();
        if child_ready != expected {
            return Err(fail(
                trace,
                i,
                format!("readiness reported {child_ready:?}, expected {expected:?}"),
            ));
        }
        ready += step.reports.iter().filter(|r| **r == Report::Ready).count();
        stopping += step
            .reports
            .iter()
            .filter(|r| matches!(r, Report::Stopping(_)))
            .count();
        if ready > 1 || stopping > 1 {
            return Err(fail(
                trace,
                i,
                "Ready or Stopping reported twice".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Property 6: a child asked to stop is killed at the first wake-up once
/// its `Shutdown::Timeout` is over, never before and never under
/// `Infinity`; a `Shutdown::Kill` (or zero timeout) child is killed straight
/// away without a stop; `poll_timeout` never lets a kill deadline pass.
fn check_kill_deadlines(tree: &Tree, trace: &Trace) -> Result<(), TestCaseError> {
    let mut model = Model::new(tree);
    let mut deadline: Vec<Option<Duration>> = vec![None; tree.children.len()];
    for (i, step) in trace.steps.iter().enumerate() {
        let runs: Vec<Run> = model.children.iter().map(|c| c.run).collect();
        if let Input::Exit(n, _) = step.input {
            deadline[n] = None;
        }
        let mut killed = BTreeSet::new();
        for action in &step.actions {
            match action {
                Action::Stop(cs) => {
                    for c in named(cs) {
                        deadline[c] = match tree.children[c].shutdown {
                            Shutdown::Timeout(d) if !d.is_zero() => Some(step.at + d),
                            Shutdown::Infinity => None,
                            other => {
                                return Err(fail(
                                    trace,
                                    i,
                                    format!("child {c} under {other:?} asked to stop"),
                                ));
                            }
                        };
                    }
                }
                Action::Kill(cs) => {
                    for c in named(cs) {
                        killed.insert(c);
                        if let Run::Stopping { .. } = runs[c] {
                            let due = deadline[c].filter(|&d| d <= step.at);
                            if due.is_none() || step.input != Input::Timeout {
                                return Err(fail(
                                    trace,
                                    i,
                                    format!(
                                        "child {c} killed before its deadline {:?}",
                                        deadline[c]
                                    ),
                                ));
                            }
                        } else if !matches!(
                            tree.children[c].shutdown,
                            Shutdown::Kill | Shutdown::Timeout(Duration::ZERO)
                        ) {
                            return Err(fail(
                                trace,
                                i,
                                format!("child {c} killed without a stop first"),
                            ));
                        }
                        deadline[c] = None;
                    }
                }
                _ => {}
            }
        }
        if step.input == Input::Timeout {
            for (c, d) in deadline.iter().enumerate() {
                if d.is_some_and(|d| d <= step.at) && !killed.contains(&c) {
                    return Err(fail(
                        trace,
                        i,
                        format!("child {c} not killed at its deadline {d:?}"),
                    ));
                }
            }
        }
        if let Some(first) = deadline.iter().flatten().min() {
            if step.timeout.is_none_or(|t| t > *first) {
                return Err(fail(
                    trace,
                    i,
                    format!(
                        "a kill is due at {first:?} but poll_timeout is {:?}",
                        step.timeout
                    ),
                ));
            }
        }
        model.step(step);
    }
    Ok(())
}

/// Property 7: under `OneForAll` and `RestForOne` children start one at a
/// time, in order: a child starts only while every earlier sibling runs
/// (not asked to stop) and is ready, or is done for good (its last exit was
/// reported with no restart). Only static children: dynamic ones start at
/// once.
fn check_start_order(tree: &Tree, trace: &Trace) -> Result<(), TestCaseError> {
    if tree.strategy == Strategy::OneForOne {
        return Ok(());
    }
    let mut model = Model::new(tree);
    // Whether each child's last exit was reported with no restart.
    let mut done = vec![false; tree.children.len()];
    for (i, step) in trace.steps.iter().enumerate() {
        model.input(step);
        for report in &step.reports {
            if let Report::Exited { child, restart, .. } = report {
                done[child.get()] = restart.is_none();
            }
        }
        let mut started = BTreeSet::new();
        for action in &step.actions {
            let Action::Start(j) = action else { continue };
            let j = j.get();
            // A dynamic child starts at once, and holds up nobody (it is
            // after every static child).
            if j >= tree.statics {
                continue;
            }
            for (e, c) in model.children.iter().enumerate().take(j) {
                let ok = !started.contains(&e)
                    && (c.run == (Run::Up { ready: true }) || (c.run == Run::Down && done[e]));
                if !ok {
                    return Err(fail(
                        trace,
                        i,
                        format!(
                            "child {j} starts while child {e}, before it, is {:?} (done: {})",
                            c.run, done[e]
                        ),
                    ));
                }
            }
            started.insert(j);
            done[j] = false;
        }
        model.actions(step);
    }
    Ok(())
}

/// Property 9: children started at run time.
///
/// * `handle_add` refuses exactly when it must (`NotDynamic`,
///   `ShuttingDown` once the supervisor stops or ended, `Full` with
///   `max_children` live), and otherwise takes the lowest free slot with a
///   new id (1, 2, 3, ...: unique, never reused) and starts it in that
///   step, at once.
/// * `handle_remove` knows exactly the live ids; a running child of a
///   running supervisor is stopped at once, alone (`Stop`/`Kill` of it in
///   that step), and only the first time; nothing else is stopped then.
/// * While the supervisor runs, no dynamic child is stopped but by its
///   removal (or the escalation of that stop to a kill): never by a group
///   restart.
/// * `Report::Removed` comes exactly when due: in the step where a child
///   whose removal was asked stopped (or at once when it was not running),
///   or where a dynamic child ended for good by its policy while the
///   supervisor runs; after its `Exited`, once per id; never for a child
///   stopped by the shutdown without a removal asked. A removed child (or
///   one being removed) never starts again.
/// * A supervisor with dynamic children ends only after it began to stop.
fn check_dynamic(tree: &Tree, trace: &Trace) -> Result<(), TestCaseError> {
    let mut model = Model::new(tree);
    let statics = tree.statics;
    // Who holds each slot: its id, and whether its removal was accepted.
    let mut live: Vec<Option<(ChildId, bool)>> = vec![None; tree.children.len()];
    let mut last_id = 0u64;
    let mut removed: BTreeSet<ChildId> = BTreeSet::new();
    let (mut in_shutdown, mut exited) = (false, false);
    for (i, step) in trace.steps.iter().enumerate() {
        let before: Vec<Run> = model.children.iter().map(|c| c.run).collect();
        let expect = model.input(step);
        let shutdown_now = !in_shutdown
            && step
                .reports
                .iter()
                .any(|r| matches!(r, Report::Stopping(_)));
        let stopping = in_shutdown || shutdown_now || exited;
        let named_stops: Vec<usize> = step
            .actions
            .iter()
            .flat_map(|a| match a {
                Action::Stop(cs) | Action::Kill(cs) => named(cs),
                _ => Vec::new(),
            })
            .collect();
        // The children this step must remove.
        let mut must_remove = BTreeSet::new();
        match (step.input, step.answer) {
            (Input::Add(slot), Some(Answer::Add(answer))) => {
                let count = live.iter().flatten().count();
                let refusal = match tree.dynamic {
                    None => Some(AddError::NotDynamic),
                    Some(_) if in_shutdown || exited => Some(AddError::ShuttingDown),
                    Some(Some(max)) if count >= max as usize => Some(AddError::Full { max }),
                    Some(_) => None,
                };
                match (answer, refusal) {
                    (Err(e), Some(r)) if e == r => {}
                    (Ok((n, id)), None) => {
                        if n != slot || n < statics || live.get(n).is_none_or(|l| l.is_some()) {
                            return Err(fail(
                                trace,
                                i,
                                format!("added in slot {n}, not the lowest free one, {slot}"),
                            ));
                        }
                        if id.get() != last_id + 1 {
                            return Err(fail(trace, i, format!("added as {id}, after {last_id}")));
                        }
                        last_id = id.get();
                        live[n] = Some((id, false));
                        if !step.actions.contains(&Action::Start(idx(n))) {
                            return Err(fail(trace, i, format!("child {n} added, not started")));
                        }
                    }
                    (answer, refusal) => {
                        return Err(fail(
                            trace,
                            i,
                            format!("add answered {answer:?}, expected refusal {refusal:?}"),
                        ));
                    }
                }
            }
            (Input::Remove(id), Some(Answer::Remove(answer))) => {
                let at = live
                    .iter()
                    .position(|l| l.is_some_and(|(i, _)| i == id))
                    .filter(|_| !exited);
                match (answer, at) {
                    (Err(RemoveError::Unknown), None) => {}
                    (Ok(n), Some(m)) if n == m => {
                        let already = live[n].is_some_and(|(_, removing)| removing);
                        live[n] = Some((id, true));
                        let running = matches!(before[n], Run::Up { .. });
                        let expected = if !already && !stopping && running {
                            vec![n]
                        } else {
                            vec![]
                        };
                        if named_stops != expected {
                            return Err(fail(
                                trace,
                                i,
                                format!("removal of {id} stops {named_stops:?}, not {expected:?}"),
                            ));
                        }
                        if !already && before[n] == Run::Down {
                            must_remove.insert(n);
                        }
                    }
                    (answer, at) => {
                        return Err(fail(
                            trace,
                            i,
                            format!("removal of {id} answered {answer:?}; it is in {at:?}"),
                        ));
                    }
                }
            }
            (Input::Add(_) | Input::Remove(_), answer) => {
                return Err(fail(trace, i, format!("answered {answer:?}")));
            }
            _ => {}
        }
        // No group restart stops a dynamic child.
        if !stopping && !matches!(step.input, Input::Remove(_)) {
            for action in &step.actions {
                let (Action::Stop(cs) | Action::Kill(cs)) = action else {
                    continue;
                };
                for c in named(cs) {
                    let escalation = matches!(action, Action::Kill(_))
                        && matches!(before[c], Run::Stopping { .. });
                    if c >= statics && !escalation {
                        return Err(fail(
                            trace,
                            i,
                            format!("dynamic child {c} stopped while the supervisor runs"),
                        ));
                    }
                }
            }
        }
        let removing = |n: usize| live[n].is_some_and(|(_, removing)| removing);
        if let Some(e) = expect.own_exit {
            let running = !(in_shutdown || shutdown_now);
            if e.child >= statics && e.delay.is_none() && (running || removing(e.child)) {
                must_remove.insert(e.child);
            }
        }
        if let Some((c, _)) = expect.stopped {
            if removing(c) {
                must_remove.insert(c);
            }
        }
        if exited {
            must_remove.clear();
        }
        let mut gone = BTreeSet::new();
        for (k, report) in step.reports.iter().enumerate() {
            let Report::Removed { child, id } = *report else {
                continue;
            };
            let n = child.get();
            if live.get(n).copied().flatten().map(|(i, _)| i) != Some(id) {
                return Err(fail(
                    trace,
                    i,
                    format!("child {id} removed from slot {n}, where it is not"),
                ));
            }
            if !removed.insert(id) {
                return Err(fail(trace, i, format!("child {id} removed twice")));
            }
            let exited_first = step.reports[..k]
                .iter()
                .any(|r| matches!(r, Report::Exited { child: c, .. } if *c == child));
            if before[n] != Run::Down && !exited_first {
                return Err(fail(
                    trace,
                    i,
                    format!("child {id} removed before its exit was reported"),
                ));
            }
            if model.children[n].run != Run::Down {
                return Err(fail(
                    trace,
                    i,
                    format!("child {id} removed while {:?}", model.children[n].run),
                ));
            }
            live[n] = None;
            gone.insert(n);
        }
        if gone != must_remove {
            return Err(fail(
                trace,
                i,
                format!("removed {gone:?}, expected {must_remove:?}"),
            ));
        }
        for action in &step.actions {
            match action {
                Action::Start(c)
                    if c.get() >= statics && live[c.get()].is_none_or(|(_, removing)| removing) =>
                {
                    return Err(fail(
                        trace,
                        i,
                        format!("starts slot {c}, which holds {:?}", live[c.get()]),
                    ));
                }
                Action::Exit(_) => {
                    if tree.dynamic.is_some() && !(in_shutdown || shutdown_now) {
                        return Err(fail(
                            trace,
                            i,
                            "a dynamic supervisor ended on its own".to_owned(),
                        ));
                    }
                    exited = true;
                }
                _ => {}
            }
        }
        in_shutdown |= shutdown_now;
        model.actions(step);
    }
    // A child whose removal was accepted is gone once the machine ended.
    if let Some(n) = (0..live.len()).find(|&n| live[n].is_some_and(|(_, r)| r)) {
        return Err(fail(
            trace,
            trace.steps.len().saturating_sub(1),
            format!("child {n} asked to be removed never was"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Intensity is never exceeded silently: counting every restart at the
    /// time it is decided (a child's exit that its policy restarts, the one
    /// refused included, or an in-place restart the machine accepted), the
    /// machine reports `Stopping(GaveUp)` exactly at the restart that makes
    /// more than `max_restarts` within `within`, never while the count stays
    /// within the limit, and then ends with `Exit(GaveUp)`.
    #[test]
    fn intensity_is_never_exceeded_silently(s in a_scenario()) {
        check_intensity(&s.tree, &run(&s))?;
    }

    /// Stops go in reverse order: each `Stop`/`Kill` names children in
    /// strictly decreasing order; during a shutdown each new batch names
    /// only children below every earlier one; a new batch is issued only
    /// once every child of the previous one exited.
    #[test]
    fn stops_go_in_reverse_order(s in a_scenario()) {
        check_stop_order(&s.tree, &run(&s), false)?;
    }

    /// Every started child exits exactly once: the machine never starts a
    /// child that runs or stops, stops only running children, issues
    /// `Exit` only when no child runs, and answers nothing after it.
    #[test]
    fn every_started_child_exits_exactly_once(s in a_scenario()) {
        check_lifecycle(&s.tree, &run(&s))?;
    }

    /// Restart delays follow the backoff formula, counted independently
    /// here, both in the machine's reports and in what a lease spends; a
    /// restart never starts before its delay is over, and under
    /// `OneForOne` starts exactly when it is due.
    #[test]
    fn restart_delays_follow_the_backoff_formula(s in a_scenario()) {
        check_backoff(&s.tree, &run(&s))?;
    }

    /// Reports are consistent: each exit is reported once, as `Stopped`
    /// when the machine had asked the child to stop (unless it killed it);
    /// `Ready` appears at most once.
    #[test]
    fn reports_are_consistent(s in a_scenario()) {
        check_reports(&s.tree, &run(&s))?;
    }

    /// Kill deadlines are kept: a stopping child is killed at the first
    /// wake-up after its `Shutdown::Timeout`, never earlier, never under
    /// `Infinity`; `poll_timeout` never sleeps past a deadline.
    #[test]
    fn kill_deadlines_are_kept(s in a_scenario()) {
        check_kill_deadlines(&s.tree, &run(&s))?;
    }

    /// Under `OneForAll` and `RestForOne` a child starts only once every
    /// earlier sibling runs and is ready, or is done for good.
    #[test]
    fn ordered_strategies_start_children_in_order(s in a_scenario()) {
        check_start_order(&s.tree, &run(&s))?;
    }

    /// Stops go in reverse order within a batch, too: when one step stops
    /// a run of workers, some by `Stop` and some by `Kill` (their
    /// `Shutdown::Kill`), the children it names, in the order issued, are
    /// strictly decreasing; and so are the children of a `Kill` that
    /// escalates stops whose deadlines passed.
    #[test]
    fn a_batch_split_over_stop_and_kill_keeps_reverse_order(s in a_scenario()) {
        check_stop_order(&s.tree, &run(&s), true)?;
    }

    /// Children started at run time: adds are refused exactly when they
    /// must be and otherwise start at once in the lowest free slot with a
    /// new id; removals stop exactly the child named, at once, and report
    /// it removed once it stopped; a dynamic child ended for good by its
    /// policy is removed; none is ever stopped by a group restart or
    /// started again after its removal; a dynamic supervisor ends only
    /// once it stops.
    #[test]
    fn dynamic_children_come_and_go_as_asked(s in a_scenario()) {
        check_dynamic(&s.tree, &run(&s))?;
    }
}

// ---------------------------------------------------------------------------
// The machine bugs the properties found, reduced to exact timelines
// ---------------------------------------------------------------------------

/// Every action the machine has pending.
fn drain(m: &mut Machine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// A worker restarted after 1 ms, killed straight away on a stop.
fn quick_worker(shutdown: Shutdown) -> ChildPolicy {
    ChildPolicy {
        restart: RestartPolicy::Always,
        backoff: BackoffPolicy::new(ms(1), ms(1), ms(10), 1.0),
        shutdown,
        start_timeout: None,
        is_supervisor: false,
        watchdog: None,
    }
}

/// Found by `ordered_strategies_start_children_in_order` (a fixed bug). Under
/// `OneForAll`, child 0 fails before it is ready: the machine restarts it
/// after its backoff, but meanwhile starts child 1, which was queued behind
/// it (`start_queued` skips `Pending` and `Waiting` children as if they
/// were done). Child 1 then runs without child 0, starts before it, and is
/// left out of the group restart; under `RestForOne` alike.
#[test]
fn a_queued_child_waits_for_an_earlier_sibling_to_restart() {
    let worker = quick_worker(Shutdown::Kill);
    let mut m = Machine::new(
        "root".to_owned(),
        [worker, worker],
        Strategy::OneForAll,
        Intensity::unlimited(),
        Shutdown::Infinity,
        None,
    );
    let t0 = Instant::now();
    m.handle_start(t0);
    assert_eq!(drain(&mut m), [Action::Start(idx(0))]);
    m.handle_exit(idx(0), ChildExit::Panicked, t0);
    // The machine used to answer [Start(1)] here.
    assert_eq!(drain(&mut m), [], "child 1 must wait for child 0");
    m.handle_timeout(t0 + ms(1));
    assert_eq!(drain(&mut m), [Action::Start(idx(0))]);
}

/// Found by `a_batch_split_over_stop_and_kill_keeps_reverse_order` (a fixed bug). A
/// shutdown stops a run of workers as one batch, in reverse order, but
/// issues the batch as a `Stop` of those with a stop timeout followed by a
/// `Kill` of those with `Shutdown::Kill`: here child 0 is asked to stop
/// before child 1 is killed. (The process engine, which kills a worker by
/// killing its host, then kills child 0 too, without its graceful stop.)
#[test]
fn a_shutdown_batch_keeps_reverse_order_across_stop_and_kill() {
    let mut m = Machine::new(
        "root".to_owned(),
        [
            quick_worker(Shutdown::Timeout(ms(50))),
            quick_worker(Shutdown::Kill),
        ],
        Strategy::OneForOne,
        Intensity::unlimited(),
        Shutdown::Infinity,
        None,
    );
    let t0 = Instant::now();
    m.handle_start(t0);
    drain(&mut m);
    m.handle_shutdown(t0);
    let order: Vec<usize> = drain(&mut m)
        .iter()
        .flat_map(|a| match a {
            Action::Stop(cs) | Action::Kill(cs) => named(cs),
            _ => Vec::new(),
        })
        .collect();
    // The machine used to issue [Stop([0]), Kill([1])].
    assert_eq!(order, [1, 0]);
}

/// Found by `a_batch_split_over_stop_and_kill_keeps_reverse_order`, a
/// minor inconsistency (fixed): the `Kill` that escalates overdue stops names the
/// children in increasing order, where every other stop goes in reverse.
#[test]
fn overdue_children_are_killed_in_reverse_order() {
    let worker = quick_worker(Shutdown::Timeout(ms(10)));
    let mut m = Machine::new(
        "root".to_owned(),
        [worker, worker],
        Strategy::OneForOne,
        Intensity::unlimited(),
        Shutdown::Infinity,
        None,
    );
    let t0 = Instant::now();
    m.handle_start(t0);
    drain(&mut m);
    m.handle_shutdown(t0);
    assert_eq!(drain(&mut m), [Action::Stop(vec![idx(1), idx(0)])]);
    m.handle_timeout(t0 + ms(10));
    // The machine used to issue Kill([0, 1]).
    assert_eq!(drain(&mut m), [Action::Kill(vec![idx(1), idx(0)])]);
}

// ---------------------------------------------------------------------------
// Deadlines of processes: liveness, hangs, starvation, drops, the host's end
// ---------------------------------------------------------------------------
//
// A driver of its own plays the processes around a machine with a watchdog
// and a worker host: the host is forked when a worker starts while none
// runs, shows life (or not), is found starved (or exiting, or looked at
// late), has its channel cut, dies on its own, or dies when the machine has
// it killed; child supervisors show life (or not); children exit and answer
// stops and kills. A checker replays the deadlines from the documented
// rules (a period after each sign of life, two after a start, a reprieve's
// delay, a second's grace for a drop, the supervisor's shutdown time for the
// host's exit, 100 ms once cut) and checks that every kill comes at or after
// its deadline, none is missed, `poll_timeout` never sleeps past one, and a
// process killed as hung exits `Hung`.

/// A deadline scenario: children, the supervisor's shutdown and watchdog,
/// and events.
#[derive(Debug, Clone)]
struct Watchful {
    children: Vec<ChildPolicy>,
    strategy: Strategy,
    shutdown: Shutdown,
    watchdog: Option<Duration>,
    ops: Vec<Lively>,
}

/// What the deadline driver makes happen.
#[derive(Debug, Clone, Copy)]
enum Lively {
    /// A running child exits on its own (a worker: its host reports it).
    Exit {
        pick: usize,
        exit: ChildExit,
    },
    /// A child asked to stop or killed exits.
    AnswerStop {
        pick: usize,
    },
    /// A watched process (the host, or the `pick`-th child supervisor)
    /// shows life.
    Alive {
        pick: usize,
    },
    /// The engine found a silent watched process not hung.
    Reprieve {
        pick: usize,
        why: Reprieve,
    },
    /// The host's channel is found cut.
    Cut,
    /// The host dies: on its own with `exit`, or of the machine's kill.
    HostDies {
        exit: ChildExit,
    },
    Advance {
        by: Duration,
    },
    Wake,
    Shutdown,
}

fn a_reprieve() -> impl Gen<Value = Reprieve> {
    prop_oneof![
        3 => Just(Reprieve::Starved),
        1 => Just(Reprieve::Exiting),
        1 => Just(Reprieve::LookedLate),
        1 => Just(Reprieve::ShortWindow),
    ]
}

fn a_lively_op() -> impl Gen<Value = Lively> {
    let pick = 0..6usize;
    prop_oneof![
        8 => (pick.clone(), an_exit()).prop_map(|(pick, exit)| Lively::Exit { pick, exit }),
        10 => pick.clone().prop_map(|pick| Lively::AnswerStop { pick }),
        16 => pick.clone().prop_map(|pick| Lively::Alive { pick }),
        6 => (pick, a_reprieve()).prop_map(|(pick, why)| Lively::Reprieve { pick, why }),
        1 => Just(Lively::Cut),
        4 => an_exit().prop_map(|exit| Lively::HostDies { exit }),
        12 => (0..=400u64).prop_map(|n| Lively::Advance { by: ms(n) }),
        16 => Just(Lively::Wake),
        1 => Just(Lively::Shutdown),
    ]
}

/// One to five children (workers and child supervisors, some with a
/// watchdog of their own), with a watchdog on the supervisor most of the
/// time.
fn a_watchful_scenario() -> impl Gen<Value = Watchful> {
    let child = (
        prop::bool::weighted(0.4),
        a_restart_policy(),
        a_backoff(),
        a_shutdown(),
        prop::option::weighted(0.3, (20..=300u64).prop_map(ms)),
    )
        .prop_map(
            |(is_supervisor, restart, backoff, shutdown, own)| ChildPolicy {
                restart,
                backoff,
                shutdown,
                start_timeout: None,
                is_supervisor,
                watchdog: own.filter(|_| is_supervisor),
            },
        );
    (
        prop::collection::vec(child, 1..=5),
        a_strategy(),
        a_shutdown(),
        prop::option::weighted(0.8, (20..=300u64).prop_map(ms)),
        prop::collection::vec(a_lively_op(), 1..=60),
    )
        .prop_map(|(children, strategy, shutdown, watchdog, ops)| Watchful {
            children,
            strategy,
            shutdown,
            watchdog,
            ops,
        })
}

/// What the deadline driver fed the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LiveInput {
    Start,
    Exit(usize, ChildExit),
    Timeout,
    Shutdown,
    HostStarted,
    /// `handle_host_exit` with this exit; the machine answered the second.
    HostExit(ChildExit, ChildExit),
    Alive(Watched),
    Reprieve(Watched, Reprieve),
    Cut,
}

#[derive(Debug, Clone)]
struct LiveStep {
    at: Duration,
    input: LiveInput,
    reports: Vec<Report>,
    actions: Vec<Action>,
    timeout: Option<Duration>,
}

/// Where the worker host stands, for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostRun {
    Down,
    Up,
    /// The machine had it killed: it dies at the next `HostDies`.
    Killed,
}

struct LiveDriver {
    m: Machine,
    base: Instant,
    now: Duration,
    policies: Vec<ChildPolicy>,
    runs: Vec<Run>,
    host: HostRun,
    exited: bool,
    steps: Vec<LiveStep>,
}

impl LiveDriver {
    fn new(s: &Watchful) -> Self {
        Self {
            m: Machine::new(
                "root".to_owned(),
                s.children.iter().copied(),
                s.strategy,
                Intensity::unlimited(),
                s.shutdown,
                s.watchdog,
            ),
            base: Instant::now(),
            now: Duration::ZERO,
            policies: s.children.clone(),
            runs: vec![Run::Down; s.children.len()],
            host: HostRun::Down,
            exited: false,
            steps: Vec::new(),
        }
    }

    fn feed(&mut self, input: LiveInput) {
        let now = self.base + self.now;
        let mut input = input;
        match input {
            LiveInput::Start => self.m.handle_start(now),
            LiveInput::Exit(n, exit) => self.m.handle_exit(idx(n), exit, now),
            LiveInput::Timeout => self.m.handle_timeout(now),
            LiveInput::Shutdown => self.m.handle_shutdown(now),
            LiveInput::HostStarted => self.m.handle_host_started(now),
            LiveInput::HostExit(exit, _) => {
                let theirs = self.m.handle_host_exit(exit, now);
                input = LiveInput::HostExit(exit, theirs);
            }
            LiveInput::Alive(w) => self.m.handle_alive(w, now),
            LiveInput::Reprieve(w, why) => self.m.handle_reprieve(w, why, now),
            LiveInput::Cut => self.m.handle_host_cut(now),
        }
        let reports: Vec<Report> = std::iter::from_fn(|| self.m.poll_report()).collect();
        let actions: Vec<Action> = std::iter::from_fn(|| self.m.poll_action()).collect();
        if let LiveInput::Exit(n, _) = input {
            self.runs[n] = Run::Down;
        }
        let mut fork = false;
        for action in &actions {
            match action {
                Action::Start(c) => {
                    self.runs[c.get()] = Run::Up { ready: true };
                    fork |= !self.policies[c.get()].is_supervisor && self.host == HostRun::Down;
                }
                Action::Stop(cs) => {
                    for c in cs {
                        if let Run::Up { .. } = self.runs[c.get()] {
                            self.runs[c.get()] = Run::Stopping { killed: false };
                        }
                    }
                }
                Action::Kill(cs) => {
                    for c in cs {
                        if self.runs[c.get()] != Run::Down {
                            self.runs[c.get()] = Run::Stopping { killed: true };
                        }
                    }
                }
                Action::KillHost(_) => self.host = HostRun::Killed,
                Action::Exit(_) => self.exited = true,
                Action::Grant => {}
            }
        }
        let timeout = self
            .m
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.base));
        self.steps.push(LiveStep {
            at: self.now,
            input,
            reports,
            actions,
            timeout,
        });
        if fork {
            self.host = HostRun::Up;
            self.feed(LiveInput::HostStarted);
            // A host shows life as soon as it runs.
            self.feed(LiveInput::Alive(Watched::Host));
        }
    }

    /// The watched processes now: the host if it runs, then the running
    /// child supervisors.
    fn watched(&self) -> Vec<Watched> {
        let host = (self.host == HostRun::Up).then_some(Watched::Host);
        let children = (0..self.runs.len())
            .filter(|&n| self.policies[n].is_supervisor && self.runs[n] != Run::Down)
            .map(|n| Watched::Child(idx(n)));
        host.into_iter().chain(children).collect()
    }

    /// The `pick`-th child for which `f` holds.
    fn pick(&self, pick: usize, f: impl Fn(usize, Run) -> bool) -> Option<usize> {
        let all: Vec<usize> = (0..self.runs.len())
            .filter(|&n| f(n, self.runs[n]))
            .collect();
        (!all.is_empty()).then(|| all[pick % all.len()])
    }

    /// The host dies with `exit` (SIGKILL if it was killed): its workers
    /// with it, as the machine says.
    fn host_dies(&mut self, exit: ChildExit) {
        let exit = match self.host {
            HostRun::Down => return,
            HostRun::Killed => ChildExit::Signaled(9),
            HostRun::Up => exit,
        };
        self.host = HostRun::Down;
        self.feed(LiveInput::HostExit(exit, exit));
        let Some(LiveInput::HostExit(_, theirs)) = self.steps.last().map(|s| s.input) else {
            return;
        };
        let workers: Vec<usize> = (0..self.runs.len())
            .filter(|&n| !self.policies[n].is_supervisor && self.runs[n] != Run::Down)
            .collect();
        for n in workers {
            self.feed(LiveInput::Exit(n, theirs));
        }
    }

    fn op(&mut self, op: Lively) {
        match op {
            Lively::Exit { pick, exit } => {
                if let Some(n) = self.pick(pick, |_, r| matches!(r, Run::Up { .. })) {
                    self.feed(LiveInput::Exit(n, exit));
                }
            }
            Lively::AnswerStop { pick } => {
                if let Some(n) = self.pick(pick, |_, r| matches!(r, Run::Stopping { .. })) {
                    let exit = match self.runs[n] {
                        Run::Stopping { killed: true } => ChildExit::Signaled(9),
                        _ => ChildExit::Signaled(15),
                    };
                    // A worker killed (dropped) whose host was killed ends
                    // with the host.
                    if !self.policies[n].is_supervisor && self.host == HostRun::Killed {
                        return self.host_dies(ChildExit::Signaled(9));
                    }
                    self.feed(LiveInput::Exit(n, exit));
                }
            }
            Lively::Alive { pick } => {
                let watched = self.watched();
                if !watched.is_empty() {
                    self.feed(LiveInput::Alive(watched[pick % watched.len()]));
                }
            }
            Lively::Reprieve { pick, why } => {
                let watched = self.watched();
                if !watched.is_empty() {
                    self.feed(LiveInput::Reprieve(watched[pick % watched.len()], why));
                }
            }
            Lively::Cut => {
                if self.host == HostRun::Up {
                    self.feed(LiveInput::Cut);
                }
            }
            Lively::HostDies { exit } => self.host_dies(exit),
            Lively::Advance { by } => {
                self.now += by;
                self.feed(LiveInput::Timeout);
            }
            Lively::Wake => {
                if let Some(at) = self.m.poll_timeout() {
                    self.now = self.now.max(at.saturating_duration_since(self.base));
                    self.feed(LiveInput::Timeout);
                }
            }
            Lively::Shutdown => self.feed(LiveInput::Shutdown),
        }
    }

    /// Shuts down; answers every stop and kill, and lets every deadline
    /// pass, until the supervisor ended and its host is gone.
    fn finish(&mut self) {
        if !self.exited {
            self.feed(LiveInput::Shutdown);
        }
        for _ in 0..1000 {
            if self.host == HostRun::Killed {
                self.host_dies(ChildExit::Signaled(9));
            } else if let Some(n) =
                (0..self.runs.len()).find(|&n| matches!(self.runs[n], Run::Stopping { .. }))
            {
                let exit = match self.runs[n] {
                    Run::Stopping { killed: true } => ChildExit::Signaled(9),
                    _ => ChildExit::Signaled(15),
                };
                self.feed(LiveInput::Exit(n, exit));
            } else if let Some(at) = self.m.poll_timeout() {
                self.now = self.now.max(at.saturating_duration_since(self.base));
                self.feed(LiveInput::Timeout);
            } else if self.exited && self.host == HostRun::Up {
                self.host_dies(ChildExit::Exited(0));
            } else {
                break;
            }
        }
    }
}

/// The deadlines the checker replays.
#[derive(Debug, Default)]
struct Due {
    /// The host: running, killed, and its deadlines.
    host_up: bool,
    host_killed: bool,
    host_hung: bool,
    host_by: Option<Duration>,
    exit_by: Option<Duration>,
    cut_by: Option<Duration>,
    /// Children: running or stopping (not killed yet), and their deadline
    /// to show life by.
    up: BTreeSet<usize>,
    stopping: BTreeSet<usize>,
    killed: BTreeSet<usize>,
    child_by: Vec<Option<Duration>>,
    /// Child supervisors killed while their deadline had passed: they may
    /// exit `Hung`; those killed while running (not stopping) must.
    may_hang: BTreeSet<usize>,
    must_hang: BTreeSet<usize>,
    /// Workers dropped, and when their host is killed if they have not
    /// ended.
    drops: Vec<(usize, Duration)>,
}

fn check_deadlines(s: &Watchful, steps: &[LiveStep]) -> Result<(), TestCaseError> {
    let fail = |i: usize, what: String| {
        let mut out = String::new();
        for (k, st) in steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "  #{k} t={:?} {:?} -> reports {:?} actions {:?} timeout {:?}",
                st.at, st.input, st.reports, st.actions, st.timeout
            );
        }
        TestCaseError::fail(format!("step #{i}: {what}\n{s:?}\n{out}"))
    };
    let period_of = |n: usize| s.children[n].watchdog.or(s.watchdog);
    let grace = |sd: Shutdown| sd.kill_after().unwrap_or(ms(5_000));
    let mut d = Due {
        child_by: vec![None; s.children.len()],
        ..Due::default()
    };
    for (i, step) in steps.iter().enumerate() {
        let at = step.at;
        // What the input says.
        match step.input {
            LiveInput::HostStarted => {
                d.host_up = true;
                d.host_killed = false;
                d.host_hung = false;
                d.host_by = s.watchdog.map(|p| at + 2 * p);
                d.exit_by = None;
                d.cut_by = None;
            }
            LiveInput::HostExit(exit, theirs) => {
                let want = if d.host_hung && exit != ChildExit::SetupFailed {
                    ChildExit::Hung
                } else {
                    exit
                };
                if theirs != want {
                    return Err(fail(
                        i,
                        format!("the host's workers exit {theirs:?}, not {want:?}"),
                    ));
                }
                d.host_up = false;
                d.drops.clear();
                d.host_killed = false;
                d.host_hung = false;
                d.host_by = None;
                d.exit_by = None;
                d.cut_by = None;
            }
            LiveInput::Alive(Watched::Host) => {
                if d.host_up && !d.host_killed {
                    d.host_by = s.watchdog.map(|p| at + p);
                }
            }
            LiveInput::Reprieve(Watched::Host, why) => {
                if d.host_up && !d.host_killed {
                    d.host_by = s.watchdog.map(|p| at + why.delay(p));
                }
            }
            LiveInput::Alive(Watched::Child(c)) => {
                let n = c.get();
                if d.child_by[n].is_some() {
                    d.child_by[n] = period_of(n).map(|p| at + p);
                }
            }
            LiveInput::Reprieve(Watched::Child(c), why) => {
                let n = c.get();
                if d.child_by[n].is_some() {
                    d.child_by[n] = period_of(n).map(|p| at + why.delay(p));
                }
            }
            LiveInput::Cut => {
                if d.host_up && !d.host_killed && d.cut_by.is_none() {
                    d.cut_by = Some(at + ms(100));
                }
            }
            LiveInput::Exit(n, _) => {
                d.up.remove(&n);
                d.stopping.remove(&n);
                d.killed.remove(&n);
                d.child_by[n] = None;
                d.drops.retain(|&(c, _)| c != n);
            }
            LiveInput::Start | LiveInput::Timeout | LiveInput::Shutdown => {}
        }
        // A hung child supervisor's exit says so, and only a hung one's.
        for report in &step.reports {
            if let Report::Exited { child, exit, .. } = report {
                let n = child.get();
                let (may, must) = (d.may_hang.remove(&n), d.must_hang.remove(&n));
                if must && *exit != ChildExit::Hung {
                    return Err(fail(i, format!("child {n} killed as hung exits {exit:?}")));
                }
                if s.children[n].is_supervisor && *exit == ChildExit::Hung && !may {
                    return Err(fail(
                        i,
                        format!("child {n} exits hung, never killed as such"),
                    ));
                }
            }
        }
        let timeout = step.input == LiveInput::Timeout;
        for action in &step.actions {
            match action {
                Action::Start(c) => {
                    let n = c.get();
                    d.up.insert(n);
                    d.child_by[n] = period_of(n)
                        .filter(|_| s.children[n].is_supervisor)
                        .map(|p| at + 2 * p);
                }
                Action::Stop(cs) => {
                    for c in cs {
                        d.up.remove(&c.get());
                        d.stopping.insert(c.get());
                    }
                }
                Action::Kill(cs) => {
                    for c in cs {
                        let n = c.get();
                        let due = timeout && d.child_by[n].is_some_and(|by| by <= at);
                        let at_once = s.children[n].shutdown.kill_after() == Some(Duration::ZERO);
                        if d.up.contains(&n) && !at_once && !due {
                            return Err(fail(
                                i,
                                format!("child {n} killed while it runs, not due"),
                            ));
                        }
                        if due {
                            d.may_hang.insert(n);
                            if d.up.contains(&n) && !at_once {
                                d.must_hang.insert(n);
                            }
                        }
                        d.up.remove(&n);
                        d.stopping.remove(&n);
                        d.killed.insert(n);
                        d.child_by[n] = None;
                        if !s.children[n].is_supervisor {
                            d.drops.push((n, at + DROP_GRACE));
                        }
                    }
                }
                Action::KillHost(why) => {
                    if !timeout {
                        return Err(fail(i, "the host killed outside a timeout".to_owned()));
                    }
                    if !d.host_up || d.host_killed {
                        return Err(fail(i, "a host killed that is not up, or twice".to_owned()));
                    }
                    let due = |by: Option<Duration>| by.is_some_and(|by| by <= at);
                    let ok = match why {
                        HostKill::Hung => due(d.host_by),
                        HostKill::DropOverdue(cs) => {
                            !due(d.host_by)
                                && !cs.is_empty()
                                && cs.iter().all(|c| {
                                    d.drops.iter().any(|&(n, by)| n == c.get() && by <= at)
                                })
                        }
                        HostKill::ExitOverdue => !due(d.host_by) && due(d.exit_by),
                        HostKill::Cut => !due(d.host_by) && due(d.cut_by),
                    };
                    if !ok {
                        return Err(fail(
                            i,
                            format!("host killed ({why:?}) before its deadline: {d:?}"),
                        ));
                    }
                    d.host_killed = true;
                    d.host_hung = *why == HostKill::Hung;
                    d.drops.clear();
                }
                Action::Exit(_) => {
                    if d.host_up && !d.host_killed {
                        d.exit_by = Some(at + grace(s.shutdown));
                    }
                }
                Action::Grant => {}
            }
        }
        // Nothing due is missed by a timeout, and nothing pending is slept
        // past.
        let host_live = d.host_up && !d.host_killed;
        let mut pending: Vec<Duration> = Vec::new();
        if host_live {
            pending.extend(d.host_by);
            pending.extend(d.exit_by);
            pending.extend(d.cut_by);
            pending.extend(d.drops.iter().map(|&(_, by)| by));
        }
        pending.extend(d.child_by.iter().flatten());
        if timeout {
            if let Some(missed) = pending.iter().find(|&&by| by <= at) {
                return Err(fail(
                    i,
                    format!("a deadline at {missed:?} passed unacted: {d:?}"),
                ));
            }
        }
        if let Some(&first) = pending.iter().min() {
            if step.timeout.is_none_or(|t| t > first) {
                return Err(fail(
                    i,
                    format!(
                        "poll_timeout {:?} sleeps past a deadline at {first:?}",
                        step.timeout
                    ),
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Every deadline of a process is the machine's and is kept: a
    /// watched process (the worker host, a child supervisor) is killed as
    /// hung exactly once its deadline passed (two periods after its start,
    /// a period after its last sign of life, a reprieve's delay after being
    /// found starved), never before, and exits `Hung`; a dropped worker
    /// that did not end gets its host killed a second on; a host that did
    /// not exit within the supervisor's shutdown time after its end, or
    /// 100 ms after its channel was cut, is killed; `poll_timeout` never
    /// sleeps past a deadline, and a timeout never leaves one unacted.
    #[test]
    fn process_deadlines_are_kept(s in a_watchful_scenario()) {
        let mut d = LiveDriver::new(&s);
        d.feed(LiveInput::Start);
        for &op in &s.ops {
            d.op(op);
        }
        d.finish();
        check_deadlines(&s, &d.steps)?;
    }
}
