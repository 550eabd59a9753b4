//! One supervisor process: the poll loop that drives a [`Machine`] with real
//! children — forked child supervisors ([`children`]), and one worker host
//! for all worker children ([`host_link`]) — and reports what happens
//! ([`report`]).
//!
//! The loop ([`Node`]) owns its parts, each with its own methods, given
//! the machine where they feed it: its child supervisors' processes
//! ([`ChildProcs`]), its link to its worker host ([`HostLink`]), its
//! children started at run time ([`Dynamic`]), and what it tells the
//! world ([`Reporter`], through its [`Outlet`]). Only the forks are the
//! node's own in those files (`start_supervisor` in `children.rs`,
//! `launch_host` and `fork_host` in `host_link.rs`): the forked process is
//! made from the whole node, which it leaves or becomes.
//!
//! It reads like a sans-IO driver: what happens (a note on a channel, a
//! reaped child, a signal, a deadline) goes into the machine with the time
//! it happened; what the machine decides comes out as actions, carried out
//! here. No rule lives in this module.

mod children;
mod dynamic;
mod events;
mod host_link;
mod outlet;
mod report;
mod watch;

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;

use crate::channel::{Channel, PipeState};
use crate::control::{Answer, Busy, Hop, Order, Refusal, Segment};
use crate::machine::{Action, ChildIdx, HostKill, Machine, Outcome, Report, Watched};
use crate::os::containment::{Containment, OomWatch};
use crate::os::ratelimit::{LogLimit, REPEAT_LOG_PERIOD};
use crate::os::sys::{self, AbortMark, SignalPipe};
use crate::tree::{Child, Supervisor};
use crate::wire::{Down, Ending, Note};
use crate::Shared;
use crate::{ChildExit, ChildId, EventKind, NodeKind, Spawner, Timer};
use children::ChildProcs;
use dynamic::Dynamic;
pub(crate) use events::Events;
use host_link::HostLink;
pub(crate) use outlet::Outlet;
use report::Reporter;

pub(crate) struct Node<'a, S, T> {
    sup: &'a mut Supervisor,
    machine: Machine,
    spawner: S,
    timer: T,
    signals: Option<SignalPipe>,
    is_worker: Vec<bool>,
    host: HostLink,
    procs: ChildProcs,
    stop_signal: Option<Signal>,
    ending: Option<Outcome>,
    /// Whether it reaps any exited child (`waitpid(-1)`), matching pids to
    /// its children: in a forked supervisor, whose children are all the
    /// engine's (and which adopts orphans as a subreaper), and in a root
    /// that is PID 1, which inherits every orphan of its PID namespace and
    /// must reap them, as init does. Otherwise only its children's pids.
    reaps_any: bool,
    /// Where its lifecycle events go, and its parent.
    reporter: Reporter,
    /// What the loop waits on, and the child supervisors that said
    /// something in the last wait: kept across turns, not reallocated.
    poller: sys::Poller,
    /// Each child supervisor's channel's place in `poller`.
    watched: Vec<(ChildIdx, usize)>,
    said: Vec<ChildIdx>,
    /// In a forked supervisor, its parent's channel's place in `poller`.
    parent_at: Option<usize>,
    /// The log lines of failures of the engine's own machinery (forks,
    /// pipes, hosts that could not be set up): one, then at most one
    /// summary per second, however often they happen.
    engine_log: LogLimit,
    /// Children started at run time, and the requests about them.
    dynamic: Dynamic,
    /// In a forked supervisor with a watchdog: when it next tells its
    /// parent it is alive.
    next_alive: Option<Instant>,
    /// The limited subtrees of the tree, and the OOM counters this
    /// supervisor has read from them.
    containment: Arc<Containment>,
    oom: OomWatch,
    /// Where this incarnation's children started at run time are numbered
    /// from, and its child supervisors'.
    ids: crate::ChildIds,
}

impl<'a, S: Spawner, T: Timer> Node<'a, S, T> {
    /// `machine` is `sup`'s (see [`Supervisor::machine`]): a forked
    /// supervisor's is made by its parent before the fork, so the child
    /// inherits it instead of allocating it (see [`take_child`]).
    pub(crate) fn new(
        sup: &'a mut Supervisor,
        machine: Machine,
        spawner: S,
        timer: T,
        signals: SignalPipe,
        outlet: Outlet,
        shared: Shared,
    ) -> Self {
        let is_worker: Vec<bool> = sup
            .children
            .iter()
            .map(|c| matches!(c, Child::Worker(_)))
            .collect();
        let count = is_worker.len();
        Self {
            machine,
            sup,
            spawner,
            timer,
            signals: Some(signals),
            is_worker,
            host: HostLink::new(count),
            procs: ChildProcs::new(count),
            stop_signal: None,
            ending: None,
            reaps_any: false,
            reporter: Reporter::new(outlet),
            poller: sys::Poller::default(),
            watched: Vec::new(),
            said: Vec::new(),
            parent_at: None,
            engine_log: LogLimit::new(REPEAT_LOG_PERIOD),
            dynamic: Dynamic::new(shared.directory),
            next_alive: None,
            containment: shared.containment,
            oom: OomWatch::default(),
            ids: shared.ids,
        }
    }

    /// Makes room for children up to index `len` (children started at run
    /// time are workers, which have no process of their own here).
    fn grow(&mut self, len: usize) {
        if self.is_worker.len() < len {
            self.is_worker.resize(len, true);
            self.host.grow(len);
        }
    }

    /// Marks this node as a forked supervisor process, whose children are all
    /// the engine's: it becomes their subreaper and reaps any exited child.
    /// It reports to its parent on `parent`.
    /// Its watchdog period is `watchdog` (its own or its parent's): it
    /// shows life to its parent four times per period.
    pub(crate) fn forked(mut self, parent: Channel, watchdog: Option<Duration>) -> Self {
        sys::become_subreaper();
        self.reaps_any = true;
        self.reporter.parent = Some(parent);
        self.next_alive = watchdog.map(|_| self.timer.now());
        self
    }

    /// In a freshly forked child: let go of this supervisor's descriptors and
    /// signal handling, which belong to the parent.
    fn leave_parent_state(&mut self) {
        if let Some(signals) = self.signals.take() {
            signals.abandon_in_child();
        }
        self.host.leave();
        self.procs.leave();
        if let Some(parent) = self.reporter.parent.take() {
            parent.abandon();
        }
        drop(self.reporter.outlet.take_for_child());
        self.dynamic.leave();
    }

    /// Reads the OOM counters that this supervisor's processes (its own
    /// worker host) and its limited child supervisors will be compared
    /// with when they die.
    fn oom_baseline(&mut self) {
        if !self.containment.limits_any() {
            // No group to read (and nothing to allocate in a fresh child).
            return;
        }
        let path = self.machine.path().to_owned();
        self.oom.baseline(&self.containment, &path, true);
        let children: Vec<String> = self
            .machine
            .child_indices()
            .filter(|c| !self.is_worker[c.get()])
            .map(|c| self.child_path(c))
            .collect();
        for child in children {
            self.oom.baseline(&self.containment, &child, false);
        }
    }

    /// What ended a process of this supervisor (its worker host, `own`)
    /// or child supervisor `path` with `exit`: its memory limit, if a
    /// SIGKILL came with an OOM kill in its cgroup, or a SIGABRT with an
    /// [`AbortMark`] (`abort`, where `RLIMIT_AS` bounds it) that reads as an
    /// allocation that failed.
    fn oom_or(
        &mut self,
        exit: ChildExit,
        path: &str,
        own: bool,
        abort: Option<&AbortMark>,
    ) -> ChildExit {
        let killed = exit == ChildExit::Signaled(Signal::SIGKILL as i32);
        if killed && self.oom.struck(&self.containment, path, own) {
            return ChildExit::OutOfMemory;
        }
        let aborted = exit == ChildExit::Signaled(Signal::SIGABRT as i32);
        if aborted && abort.is_some_and(AbortMark::out_of_memory) {
            tracing::info!(supervisor = %self.machine.path(), process = %if own { format!("{path}/host") } else { path.to_owned() },
                "aborted when an allocation failed at its RLIMIT_AS memory limit");
            return ChildExit::OutOfMemory;
        }
        exit
    }

    /// An [`AbortMark`] for a process of supervisor `path` about to be
    /// forked, if `RLIMIT_AS` bounds its memory (`None` if the mark can not
    /// be made: its aborts are then what they are, `SIGABRT`).
    fn abort_mark(&self, path: &str) -> Option<AbortMark> {
        if !self.containment.memory_by_rlimit(path) {
            return None;
        }
        AbortMark::new()
            .inspect_err(|err| tracing::warn!(supervisor = %self.machine.path(), %err, "could not make the mark that tells an allocation failure from other aborts"))
            .ok()
    }

    /// Tells the parent this supervisor is alive, when it is time to.
    fn show_life(&mut self, now: Instant) {
        let (Some(at), Some(period), Some(parent)) = (
            self.next_alive,
            self.machine.watchdog(),
            self.reporter.parent.as_mut(),
        ) else {
            return;
        };
        if at <= now {
            self.next_alive = Some(now + period / 4);
            let thread = nix::unistd::gettid().as_raw();
            if let Err(err) = parent.send(&Note::Alive { thread }) {
                tracing::debug!(supervisor = %self.machine.path(), %err, "could not show life to the parent");
            }
        }
    }

    /// Marks this node as the root running as PID 1 (of a container or
    /// PID namespace): every orphan of the namespace is re-parented to it,
    /// so it reaps any exited child, as init must, and feeds the exits of
    /// its own children to its machine. A child that the calling program
    /// forked itself is reaped too.
    pub(crate) fn init_process(mut self) -> Self {
        self.reaps_any = true;
        self
    }

    /// Runs the supervisor until it ends. A forked supervisor tells its
    /// parent how it ended before it returns.
    pub(crate) fn run(mut self) -> Ending {
        // Every line this process logs says which node it is, and only it.
        if self.reporter.parent.is_some() {
            crate::spans::leave_inherited();
        }
        let span = tracing::info_span!("supervisor", path = %self.machine.path(), pid = std::process::id());
        let _span = span.enter();
        tracing::info!(supervisor = %self.machine.path(), pid = std::process::id(), "supervisor started");
        if self.reporter.parent.is_some() {
            // A forked supervisor says it started itself, first thing: its
            // own events go up the same pipe after it, so the root never
            // folds in its start after what it did since.
            let path = self.machine.path().to_owned();
            self.reporter.emit(
                path,
                Some(nix::unistd::Pid::this()),
                EventKind::Started(NodeKind::Supervisor),
            );
        }
        self.oom_baseline();
        self.machine.handle_start(self.timer.now());
        loop {
            self.carry_out();
            if self.launch_host() {
                // The machine knows: carry out what it decided. A retry
                // waits at least the engine's floor, and every turn goes
                // through `wait`, which handles signals, whatever fails.
                self.carry_out();
            }
            self.host.flush();
            if let (Some(outcome), false) = (self.ending, self.host.is_up()) {
                tracing::info!(supervisor = %self.machine.path(), ?outcome, "supervisor stopped");
                let ending = Ending {
                    outcome,
                    signal: self.stop_signal.map(|s| s as i32),
                };
                self.reporter.events_out();
                if let Some(parent) = &mut self.reporter.parent {
                    if let Err(err) = parent.send(&Note::Ended(ending)) {
                        tracing::warn!(supervisor = %self.machine.path(), %err, "could not tell the parent how this supervisor ended");
                    }
                }
                return ending;
            }
            self.wait();
        }
    }

    /// The intensity this supervisor applied.
    pub(crate) fn intensity(&self) -> supertrees_core::Intensity {
        self.machine.intensity()
    }

    /// Carries out what the machine decided, reporting each decision before
    /// the actions that follow it (an exit before the restart's start).
    fn carry_out(&mut self) {
        loop {
            self.report();
            let Some(action) = self.machine.poll_action() else {
                return;
            };
            if self.machine.is_shutting_down() {
                self.reporter.outlet.stopping();
            }
            let now = self.timer.now();
            match action {
                Action::Start(child) => self.start(child),
                Action::Stop(children) => self.stop(&children, now),
                Action::Kill(children) => self.kill(&children, now),
                Action::Grant => {
                    let budget = self.machine.budget(now);
                    self.host.grant(budget);
                }
                Action::KillHost(why) => self.kill_host(&why),
                Action::Exit(outcome) => {
                    self.ending = Some(outcome);
                    // Killed by the machine's decision if it does not exit
                    // in time.
                    self.host.shut_down();
                    if let Some(events) = self.reporter.outlet.events() {
                        events.stopping();
                    }
                }
            }
        }
    }

    fn start(&mut self, child: ChildIdx) {
        if self.is_worker[child.get()] {
            let lease = self.machine.lease(child);
            let add = self
                .dynamic
                .get(child)
                .map(|d| (d.template, d.id, d.arg.clone()));
            if let Some(pid) = self.host.start(child, lease, add) {
                self.worker_started(child, pid);
            }
        } else {
            self.start_supervisor(child);
        }
    }

    fn stop(&mut self, children: &[ChildIdx], now: Instant) {
        for &child in children {
            if self.is_worker[child.get()] {
                continue;
            }
            if !self.procs.terminate(child) {
                self.machine.handle_exit(child, ChildExit::Stopped, now);
            }
        }
        let workers: Vec<ChildIdx> = children
            .iter()
            .copied()
            .filter(|c| self.is_worker[c.get()])
            .collect();
        if workers.is_empty() {
            return;
        }
        // When a shutdown stops every worker of the host, one command stops
        // them all, in the same order, and the host exits.
        let whole_host = self.machine.is_shutting_down();
        for child in self.host.stop(&workers, whole_host) {
            // Never reached its host: nothing runs to stop.
            self.machine.handle_exit(child, ChildExit::Stopped, now);
        }
    }

    fn kill(&mut self, children: &[ChildIdx], now: Instant) {
        for &child in children {
            let killed = if self.is_worker[child.get()] {
                // A worker is dropped by its host (which the machine has
                // killed if the worker blocks it: see `DROP_GRACE`).
                self.host.kill(child)
            } else {
                self.procs.kill(child)
            };
            if !killed {
                self.machine
                    .handle_exit(child, ChildExit::Signaled(Signal::SIGKILL as i32), now);
            }
        }
    }

    /// Whether to log a failure of the engine's machinery that happened
    /// now: one, then a summary per second (see [`Self::wait`]).
    fn engine_failure_logged(&mut self) -> bool {
        let now = self.timer.now();
        self.engine_log.admit(now)
    }

    /// What `children` need to run could not be made (`what` failed with
    /// `err`): logs it, rate-limited, and tells the machine, which retries
    /// after their backoff and at least the engine's floor delay.
    fn fork_failed(&mut self, children: &[ChildIdx], what: &str, err: Errno) {
        if self.engine_failure_logged() {
            tracing::error!(supervisor = %self.machine.path(), children = %self.paths(children), %err,
                "{what}; will retry after its backoff, and at least a floor delay");
        }
        let now = self.timer.now();
        for &child in children {
            self.machine
                .handle_exit(child, ChildExit::ForkFailed(err as i32), now);
        }
    }

    /// Reads the worker host's notes (see [`HostLink::read`]; `all`: every
    /// one), answering who waits for a dynamic child's start after this
    /// turn's events went up.
    fn read_host(&mut self, now: Instant, all: bool) {
        let reporter = &mut self.reporter;
        self.host.read(
            &mut self.machine,
            &mut self.dynamic,
            &mut || reporter.events_out(),
            now,
            all,
        );
    }

    /// Sends this turn's events up the pipe, in a forked supervisor (see
    /// [`Events::end_turn`](events::Events::end_turn)).
    pub(super) fn events_out(&mut self) {
        self.reporter.events_out();
    }

    /// Sleeps until something happens, then feeds it to the machine.
    fn wait(&mut self) {
        self.events_out();
        let now = self.timer.now();
        // Workers waiting for a host that has yet to be forked: at once.
        let launch = self.host.awaits_launch().then_some(now);
        let deadline = self
            .machine
            .poll_timeout()
            .into_iter()
            .chain(self.host.look_at(self.machine.alive_by(Watched::Host)))
            .chain(
                self.reporter
                    .outlet
                    .events()
                    .and_then(|root| root.deadline()),
            )
            .chain(self.engine_log.due())
            .chain(launch)
            .chain(self.next_alive)
            .chain(self.procs.look_at(&self.machine))
            .min();
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        // Child supervisors whose channel has something to read: only
        // those are read, so a turn costs no syscall per idle child.
        self.said.clear();
        if timeout != Some(Duration::ZERO) {
            let Some(signals) = &self.signals else { return };
            self.poller.clear();
            self.watched.clear();
            self.poller.add(signals.fd(), PollFlags::POLLIN);
            for (child, fd, events) in self.procs.interest() {
                let at = self.poller.add(fd, events);
                self.watched.push((child, at));
            }
            for (fd, events) in self.host.interest() {
                self.poller.add(fd, events);
            }
            self.parent_at = None;
            if let Some(parent) = &self.reporter.parent {
                for (fd, events) in parent.interest() {
                    self.parent_at = Some(self.poller.add(fd, events));
                }
            }
            let owner = self.machine.path();
            self.dynamic
                .watch(&self.sup.templates, owner, &mut self.poller);
            // The root's own fds follow the others: the n-th is at
            // `first + n`.
            let first = self.poller.len();
            if let Outlet::Events(events) = &self.reporter.outlet {
                for fd in events.poll_fds() {
                    self.poller
                        .add(fd.as_fd(), fd.events() & !PollFlags::POLLNVAL);
                }
            }
            self.poller.wait(timeout);
            if let Outlet::Events(events) = &mut self.reporter.outlet {
                let poller = &self.poller;
                events.polled(&|n| poller.ready(first + n));
            }
            for &(child, at) in &self.watched {
                if self.poller.ready(at) {
                    self.said.push(child);
                }
            }
        }
        let parent_said = timeout != Some(Duration::ZERO)
            && self.parent_at.is_some_and(|at| self.poller.ready(at));
        let signals = match self.signals.as_mut().map(|s| (s.drain(), s)) {
            None => Vec::new(),
            Some((Ok(signals), _)) => signals,
            Some((Err(err), pipe)) => {
                // Polled again, it would be ready at once for ever.
                tracing::error!(supervisor = %self.machine.path(), %err, "the supervisor's signal pipe is broken; making it again");
                if let Err(err) = pipe.renew() {
                    tracing::error!(supervisor = %self.machine.path(), %err, "could not make the signal pipe again; ending the supervisor");
                    self.events_out();
                    sys::exit_now(sys::EXIT_PANICKED)
                }
                // A child's end may have come meanwhile.
                vec![Signal::SIGCHLD]
            }
        };
        let now = self.timer.now();
        self.read_host(now, false);
        let said = std::mem::take(&mut self.said);
        self.procs.read(&said, &mut self.machine, now);
        self.said = said;
        if parent_said {
            self.read_parent(now);
        }
        if timeout != Some(Duration::ZERO) {
            let reporter = &mut self.reporter;
            let room = self.dynamic.handle_requests(
                &self.sup.templates,
                &mut self.machine,
                &self.poller,
                &mut || reporter.events_out(),
                now,
            );
            self.grow(room);
        }
        if let Some(events) = self.reporter.outlet.events() {
            events.handle(now);
            for order in events.take_orders() {
                self.route(order, now);
            }
        }
        self.reporter.tell_parent_ready(self.machine.path());
        self.host.flush();
        for sig in &signals {
            if sys::STOP_SIGNALS.contains(sig) && self.stop_signal.is_none() {
                tracing::info!(supervisor = %self.machine.path(), signal = %sig, "shutdown requested");
                self.stop_signal = Some(*sig);
                self.machine.handle_shutdown(now);
            }
        }
        if signals.contains(&Signal::SIGCHLD) {
            self.reap(now);
        }
        // A watched process silent at its deadline is looked at (the
        // machine kills it at its timeout, unless told it is starved), and
        // one judged hung is read once more before the machine's timeout,
        // after the scheduler was asked: a sign of life it sent before
        // then (maybe just before, from another CPU, or one this turn did
        // not poll for) is never judged as silence.
        if self.host.judge(&mut self.machine, now) {
            self.read_host(now, true);
        }
        let hung = self.procs.judge(&mut self.machine, now);
        if !hung.is_empty() {
            self.procs.read(&hung, &mut self.machine, now);
        }
        self.show_life(now);
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle_timeout(now);
        }
        if let Some(failures) = self.engine_log.summary(now) {
            tracing::warn!(supervisor = %self.machine.path(), failures, period = ?REPEAT_LOG_PERIOD,
                "the engine's machinery (fork, pipes, worker host setup) failed this many more times since the last line; each is retried after a floor delay");
        }
    }

    fn reap(&mut self, now: Instant) {
        if self.reaps_any {
            while let Some((pid, exit)) = sys::reap_any() {
                self.reaped(pid, exit, now);
            }
            return;
        }
        // The children that exited, one at a time while they are ours (a
        // thousand children, each looked at on every SIGCHLD, made a
        // large tree's stop grow with the square of its size).
        while let Some(pid) = sys::exited_child() {
            let ours = self.procs.child_of(pid).is_some() || self.host.pid() == Some(pid);
            let Some(exit) = ours.then(|| sys::try_reap(pid)).flatten() else {
                break;
            };
            self.reaped(pid, exit, now);
        }
        // One of the calling program's own children exited (it reaps it
        // itself): each of ours is looked at.
        if sys::exited_child().is_some() {
            let pids: Vec<_> = self.procs.pids().chain(self.host.pid()).collect();
            for pid in pids {
                if let Some(exit) = sys::try_reap(pid) {
                    self.reaped(pid, exit, now);
                }
            }
        }
    }

    /// Child supervisor `child` exited with status `exit`.
    fn supervisor_exited(&mut self, child: ChildIdx, exit: ChildExit, now: Instant) {
        let Some(proc) = self.procs.exited(child, &mut self.machine, now) else {
            return;
        };
        let path = self.child_path(child);
        let exit = proc.exit(self.oom_or(exit, &path, false, proc.abort.as_ref()));
        if !proc.setup_failed {
            tracing::info!(supervisor = %self.machine.path(), %child, pid = proc.pid.as_raw(), %exit, "child supervisor exited");
        } else if self.engine_failure_logged() {
            tracing::error!(supervisor = %self.machine.path(), %child, pid = proc.pid.as_raw(),
                "child supervisor could not be set up; will retry after its backoff, and at least a floor delay");
        }
        self.machine.handle_exit(child, exit, now);
    }

    /// What its reporter reads of this supervisor.
    fn view(&self) -> View<'_> {
        View {
            machine: &self.machine,
            sup: self.sup,
            dynamic: &self.dynamic,
            is_worker: &self.is_worker,
            host: &self.host,
        }
    }

    /// The path of child `child` in events (see [`View::child_path`]).
    fn child_path(&self, child: ChildIdx) -> String {
        self.view().child_path(child)
    }

    /// The paths of `children`, for a log line.
    fn paths(&self, children: &[ChildIdx]) -> String {
        self.view().paths(children)
    }

    /// Sends a lifecycle event about child `child`.
    fn emit_child(&mut self, child: ChildIdx, pid: Option<nix::unistd::Pid>, kind: EventKind) {
        let view = View {
            machine: &self.machine,
            sup: self.sup,
            dynamic: &self.dynamic,
            is_worker: &self.is_worker,
            host: &self.host,
        };
        self.reporter.emit_child(&view, child, pid, kind);
    }

    /// Turns the machine's decisions into lifecycle events, and passes this
    /// supervisor's readiness up.
    fn report(&mut self) {
        while let Some(report) = self.machine.poll_report() {
            self.report_one(report);
        }
    }

    fn report_one(&mut self, report: Report) {
        let view = View {
            machine: &self.machine,
            sup: self.sup,
            dynamic: &self.dynamic,
            is_worker: &self.is_worker,
            host: &self.host,
        };
        self.reporter.report(&report, &view);
        if let Report::Exited {
            child,
            restart: None,
            ..
        } = report
        {
            if !self.is_worker[child.get()] {
                // Its subtree ended for good: so do its cgroups.
                let path = self.child_path(child);
                self.containment.ended(&path);
            }
        }
        if let Report::Removed { child, id } = report {
            let reporter = &mut self.reporter;
            self.dynamic
                .removed(child, id, &mut || reporter.events_out());
        }
        if let Report::Answered(answer) = report {
            self.answer(answer);
        }
    }

    /// Reads the operators' orders its parent sent down, and routes them.
    fn read_parent(&mut self, now: Instant) {
        let Some(parent) = self.reporter.parent.as_mut() else {
            return;
        };
        if let PipeState::Failed(err) = parent.receive(usize::MAX) {
            tracing::warn!(supervisor = %self.machine.path(), %err, "reading the parent's channel failed");
        }
        let mut orders = Vec::new();
        while let Some(Down::Order(order)) = parent.next::<Down>() {
            orders.push(order);
        }
        for order in orders {
            self.route(order, now);
        }
    }

    /// Takes an operator's `order` one step on: to this supervisor's
    /// machine if it names one of its children, down to the child
    /// supervisor below which its node is, or answered `not found`.
    fn route(&mut self, order: Order, now: Instant) {
        let hop = order.path.hop(self.machine.path()).map(|hop| match hop {
            Hop::Child(segment) => (self.find_child(segment), true),
            Hop::Below(segment) => (self.find_child(segment), false),
        });
        match hop {
            Some((Some(child), true)) => self.machine.handle_order(order, child, now),
            Some((Some(child), false)) if !self.is_worker[child.get()] => {
                if self.procs.backlogged(child) {
                    self.answer(order.answer(Err(Refusal::Busy(Busy::Backlog))));
                    return;
                }
                let own = self.machine.path();
                let bound = self.sup.order_bound(own, &order.path);
                if self
                    .machine
                    .handle_forward(order.clone(), child, bound, now)
                {
                    self.procs.send_order(child, &order);
                }
            }
            _ => self.answer(order.answer(Err(Refusal::NotFound))),
        }
    }

    /// The child a path's `segment` names here, if any.
    fn find_child(&self, segment: Segment<'_>) -> Option<ChildIdx> {
        match segment {
            Segment::Position(_) | Segment::Named(_) => self
                .sup
                .child_by(segment)
                .and_then(ChildIdx::new)
                .filter(|&c| self.machine.is_static(c)),
            Segment::Started { template, id } => {
                let child = self.machine.find(ChildId::new(id))?;
                let started = self.dynamic.get(child)?;
                let name = self.sup.templates.get(started.template as usize)?;
                (name.name == template).then_some(child)
            }
        }
    }

    /// Passes `answer` up: to the parent in a forked supervisor, to the
    /// status server in the root.
    fn answer(&mut self, answer: Answer) {
        if let Some(parent) = self.reporter.parent.as_mut() {
            if let Err(err) = parent.send(&Note::Answered(answer)) {
                tracing::warn!(supervisor = %self.machine.path(), %err, "could not pass an answer up to the parent");
            }
            return;
        }
        if let Some(events) = self.reporter.outlet.events() {
            events.answer(answer);
        }
    }

    /// Reports that worker `child` started in the host `pid`.
    fn worker_started(&mut self, child: ChildIdx, pid: nix::unistd::Pid) {
        tracing::debug!(supervisor = %self.machine.path(), %child, "worker started");
        self.emit_child(child, Some(pid), EventKind::Started(NodeKind::Worker));
    }

    /// Kills the worker host, as the machine decided (`why`).
    fn kill_host(&mut self, why: &HostKill) {
        let Some((pid, judged)) = self.host.kill_host() else {
            return;
        };
        let (path, pid) = (self.machine.path(), pid.as_raw());
        match why {
            HostKill::Hung => {
                let why = judged.map_or_else(|| "not judged".to_owned(), |why| why.to_string());
                tracing::warn!(supervisor = %path, pid, period = ?self.machine.watchdog(), %why,
                    "worker host showed no life within its watchdog period (a worker blocks its thread, \
                     a deadlock, SIGSTOP?); killing it");
            }
            HostKill::DropOverdue(workers) => {
                tracing::warn!(supervisor = %path, pid, workers = %self.paths(workers),
                    "dropped workers did not end in time (a worker blocks its thread?); killing their worker host");
            }
            HostKill::ExitOverdue => {
                tracing::warn!(supervisor = %path, pid, "worker host did not exit in time; killing it");
            }
            HostKill::Cut => {
                tracing::warn!(supervisor = %path, pid,
                    "worker host runs on without its channel (a worker closed or broke its \
                     descriptors?); killing it, so that its workers run again in a new host");
            }
        }
    }

    /// The host process ended with `exit`: every worker it still ran failed
    /// with it.
    fn host_exited(&mut self, exit: ChildExit, now: Instant) {
        self.read_host(now, true);
        // What it said before it died is reported while its pid is known.
        self.report();
        let Some(host) = self.host.ended() else {
            return;
        };
        let pid = host.pid;
        let path = self.machine.path().to_owned();
        let exit = host.exit(self.oom_or(exit, &path, true, host.abort.as_ref()));
        // `Hung` if the machine had it killed as hung.
        let exit = self.machine.handle_host_exit(exit, now);
        let live = self.host.lost(&self.machine);
        if host.setup_failed {
            if self.engine_failure_logged() {
                tracing::error!(supervisor = %self.machine.path(), pid = pid.as_raw(), workers = %self.paths(&live),
                    "worker host could not be set up (its runtime or threads did not start; see its \
                     own lines); will retry after its workers' backoff, and at least a floor delay");
            }
        } else if live.is_empty() {
            tracing::debug!(supervisor = %self.machine.path(), pid = pid.as_raw(), %exit, "worker host exited");
        } else {
            tracing::warn!(supervisor = %self.machine.path(), pid = pid.as_raw(), %exit, workers = %self.paths(&live), "worker host died with running workers");
        }
        // The host's end with what it means for its workers, then each
        // worker's exit.
        for &child in &live {
            self.machine.handle_exit(child, exit, now);
        }
        let mut reports = Vec::new();
        while let Some(report) = self.machine.poll_report() {
            reports.push(report);
        }
        let restart = reports
            .iter()
            .filter_map(|r| match r {
                Report::Exited {
                    child,
                    restart: Some(delay),
                    ..
                } if live.contains(child) => Some(*delay),
                _ => None,
            })
            .min();
        let host_path = format!("{}/host", self.machine.path());
        self.reporter.emit(
            host_path,
            Some(pid),
            EventKind::host_exited(exit, u32::try_from(live.len()).unwrap_or(u32::MAX), restart),
        );
        for report in reports {
            self.report_one(report);
        }
    }

    /// Feeds the exit of process `pid` to the machine.
    fn reaped(&mut self, pid: nix::unistd::Pid, exit: ChildExit, now: Instant) {
        if let Some(child) = self.procs.child_of(pid) {
            self.supervisor_exited(child, exit, now);
            return;
        }
        if self.host.pid() == Some(pid) {
            self.host_exited(exit, now);
            return;
        }
        tracing::debug!(supervisor = %self.machine.path(), pid = pid.as_raw(), %exit, "reaped an orphaned descendant");
    }
}

/// What a supervisor's [`Reporter`] reads of it: its machine, its
/// children (which are workers, which were started at run time, from
/// which templates), its worker host.
struct View<'a> {
    machine: &'a Machine,
    sup: &'a Supervisor,
    dynamic: &'a Dynamic,
    is_worker: &'a [bool],
    host: &'a HostLink,
}

/// In a freshly forked child supervisor: moves child `n` out of `children`.
/// The rest (the parent's share of the tree) is forgotten, not dropped:
/// freeing it would run users' destructors in the child and touch (copy)
/// every page of the inherited tree, which made starting a large tree grow
/// faster than linearly. Nothing is allocated either: a buffer sized by the
/// parent's children, made in every child, cost each a page or more of its
/// own, and a large allocation in a fresh child makes the allocator tidy up
/// (and so copy) the free chunks it inherited. The child ends with `_exit`,
/// so nothing leaks.
fn take_child(children: &mut Vec<Child>, n: usize) -> Option<Child> {
    let mut children = std::mem::take(children);
    let child = (n < children.len()).then(|| children.swap_remove(n));
    std::mem::forget(children);
    child
}

/// In a freshly forked worker host: the workers of `children`, by position
/// (`None` for a child supervisor, whose spec is forgotten, as in
/// [`take_child`]). Collected in place, in the inherited buffer.
fn take_workers(children: &mut Vec<Child>) -> Vec<Option<Box<dyn supertrees_core::Worker>>> {
    std::mem::take(children)
        .into_iter()
        .map(|child| match child {
            Child::Worker(worker) => Some(worker),
            supervisor => {
                std::mem::forget(supervisor);
                None
            }
        })
        .collect()
}
