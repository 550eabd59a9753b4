//! A supervisor's child supervisors: each a forked process with a channel of
//! its own, stopped with signals, reaped when it exits.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Instant;

use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::watch::{Hung, Judged, Watch};
use super::{take_child, Node};
use crate::channel::{Channel, PipeState};
use crate::control::Order;
use crate::machine::{ChildIdx, Machine, Watched};
use crate::os::sys::{self, AbortMark, SignalPipe};
use crate::path::within;
use crate::tree::Child;
use crate::wire::{Down, Ending, Note};
use crate::Shared;
use crate::{ChildExit, Spawner, Timer};

/// A running child supervisor.
#[derive(Debug)]
struct Proc {
    pid: Pid,
    channel: Channel,
    /// What it said of its end, once it did.
    ending: Option<Ending>,
    /// It said it could not be set up ([`Note::SetupFailed`]).
    setup_failed: bool,
    /// With a watchdog: what the scheduler says of it when it is silent
    /// (when it must show life by is its machine's).
    watchdog: Option<Watch>,
    /// Why it was last judged hung, since its last sign of life (for the
    /// line that says it is killed).
    judged: Option<Hung>,
    /// What it found if it aborted, where `RLIMIT_AS` bounds its memory.
    abort: Option<AbortMark>,
}

/// The child supervisor processes of one supervisor, by position.
#[derive(Debug)]
pub(super) struct ChildProcs {
    /// Boxed: most children are workers, and a slot costs a word.
    procs: Vec<Option<Box<Proc>>>,
    /// Which children have been forked before, by position.
    forked: Vec<bool>,
}

impl ChildProcs {
    pub(super) fn new(children: usize) -> Self {
        Self {
            procs: (0..children).map(|_| None).collect(),
            forked: vec![false; children],
        }
    }

    /// Whether child supervisor `child` has left what was written to it
    /// unread until its channel is full (it is stopped or hung): it is sent
    /// no more orders, which would pile up in this process.
    pub(super) fn backlogged(&mut self, child: ChildIdx) -> bool {
        let Some(proc) = self.procs.get_mut(child.get()).and_then(Option::as_mut) else {
            return false;
        };
        proc.channel.flush();
        proc.channel.has_backlog()
    }

    /// Sends `order` down to child supervisor `child`, whose subtree holds
    /// the node it names (its machine, which waits for the answer, says
    /// whether to: see [`Machine::handle_forward`]). Nothing if it does not
    /// run: the machine answers at its deadline.
    pub(super) fn send_order(&mut self, child: ChildIdx, order: &Order) {
        if let Some(proc) = self.procs.get_mut(child.get()).and_then(Option::as_mut) {
            proc.channel.queue(&Down::Order(order.clone()));
            proc.channel.flush();
        }
    }

    /// Notes that child `child` is forked now: whether it was before.
    fn forked(&mut self, child: ChildIdx) -> bool {
        self.forked
            .get_mut(child.get())
            .is_some_and(|forked| std::mem::replace(forked, true))
    }

    fn get(&self, child: ChildIdx) -> Option<&Proc> {
        self.procs.get(child.get()).and_then(Option::as_deref)
    }

    pub(super) fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.procs.iter().flatten().map(|p| p.pid)
    }

    pub(super) fn child_of(&self, pid: Pid) -> Option<ChildIdx> {
        let n = self
            .procs
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.pid == pid))?;
        ChildIdx::new(n)
    }

    /// Asks child `child` to stop (SIGTERM); `false` if it does not run.
    pub(super) fn terminate(&self, child: ChildIdx) -> bool {
        self.signal(child, Signal::SIGTERM)
    }

    /// Kills child `child` (SIGKILL); `false` if it does not run. One
    /// judged hung is said to be.
    pub(super) fn kill(&mut self, child: ChildIdx) -> bool {
        let proc = self.procs.get_mut(child.get()).and_then(Option::as_mut);
        if let Some(proc) = proc {
            if let Some(why) = proc.judged.take() {
                let period = proc.watchdog.as_ref().map(Watch::period);
                tracing::warn!(%child, pid = proc.pid.as_raw(), ?period, %why,
                    "child supervisor showed no life within its watchdog period (stopped, stuck?); killing it");
            }
        }
        self.signal(child, Signal::SIGKILL)
    }

    fn signal(&self, child: ChildIdx, signal: Signal) -> bool {
        let Some(proc) = self.get(child) else {
            return false;
        };
        sys::send(proc.pid, signal);
        true
    }

    /// What to wait on for each child, with the child it belongs to.
    pub(super) fn interest(&self) -> impl Iterator<Item = (ChildIdx, BorrowedFd<'_>, PollFlags)> {
        self.procs.iter().enumerate().flat_map(|(n, p)| {
            let child = ChildIdx::new(n);
            p.iter()
                .flat_map(|p| p.channel.interest())
                .filter_map(move |(fd, events)| Some((child?, fd, events)))
        })
    }

    /// When the next silent child supervisor is looked at (when each must
    /// show life by is `machine`'s).
    pub(super) fn look_at(&self, machine: &Machine) -> Option<Instant> {
        self.procs
            .iter()
            .enumerate()
            .filter_map(|(n, proc)| {
                let by = machine.alive_by(Watched::Child(ChildIdx::new(n)?))?;
                Some(proc.as_ref()?.watchdog.as_ref()?.next(by))
            })
            .min()
    }

    /// Looks at the child supervisors that are silent and due to be (see
    /// [`Watch::check`]): reprieves are `machine`'s at once; returns
    /// those judged hung, to be killed by the machine's timeout once what
    /// they said is read.
    pub(super) fn judge(&mut self, machine: &mut Machine, now: Instant) -> Vec<ChildIdx> {
        let mut hung = Vec::new();
        for n in 0..self.procs.len() {
            let Some(child) = ChildIdx::new(n) else { break };
            let Some(by) = machine.alive_by(Watched::Child(child)) else {
                continue;
            };
            let Some(proc) = self.procs[n].as_mut() else {
                continue;
            };
            let pid = proc.pid;
            let Some(watch) = proc.watchdog.as_mut() else {
                continue;
            };
            match watch.check(pid, "child supervisor", now, by) {
                None => {}
                Some(Judged::NotHung(why)) => {
                    machine.handle_reprieve(Watched::Child(child), why, now);
                }
                Some(Judged::Hung(why)) => {
                    proc.judged = Some(why);
                    hung.push(child);
                }
            }
        }
        hung
    }

    /// In a freshly forked child: lets go of the parent's child processes.
    pub(super) fn leave(&mut self) {
        let procs = std::mem::take(&mut self.procs);
        // The descriptors are closed, in runs; the rest is forgotten, not
        // freed.
        let mut ranges = sys::CloseRanges::default();
        for proc in procs.iter().flatten() {
            let mut fds = proc.channel.raw_fds();
            fds.sort_unstable();
            fds.into_iter().flatten().for_each(|fd| ranges.add(fd));
        }
        drop(ranges);
        std::mem::forget(procs);
    }

    /// Reads what the child supervisors `children` said, and has
    /// `machine` handle it.
    pub(super) fn read(&mut self, children: &[ChildIdx], machine: &mut Machine, now: Instant) {
        for &child in children {
            self.read_one(child, machine, now);
        }
    }

    fn read_one(&mut self, child: ChildIdx, machine: &mut Machine, now: Instant) {
        let Some(proc) = self.procs.get_mut(child.get()).and_then(Option::as_mut) else {
            return;
        };
        // Orders that found its pipe full go now.
        proc.channel.flush();
        if !proc.channel.is_open() {
            return;
        }
        if let PipeState::Failed(err) = proc.channel.receive(usize::MAX) {
            tracing::warn!(supervisor = %machine.path(), %child, %err, "reading a child supervisor's channel failed");
        }
        while let Some(note) = self.procs[child.get()]
            .as_mut()
            .and_then(|p| p.channel.next::<Note>())
        {
            match note {
                Note::Ready => machine.handle_ready(child, now),
                Note::Ended(ending) => {
                    if let Some(proc) = self.procs[child.get()].as_mut() {
                        proc.ending = Some(ending);
                    }
                }
                Note::SetupFailed => {
                    if let Some(proc) = self.procs[child.get()].as_mut() {
                        proc.setup_failed = true;
                    }
                }
                Note::Alive { thread } => {
                    if let Some(proc) = self.procs[child.get()].as_mut() {
                        proc.judged = None;
                        if let Some(watch) = proc.watchdog.as_mut() {
                            watch.alive(thread);
                        }
                    }
                    machine.handle_alive(Watched::Child(child), now);
                }
                Note::Answered(answer) => machine.handle_answer(child, answer),
                other => {
                    tracing::warn!(supervisor = %machine.path(), %child, ?other, "unexpected note from a child supervisor dropped");
                }
            }
        }
    }

    /// Child supervisor `child` exited: what it said before it did (read
    /// now, and handled by `machine`), if it ran.
    pub(super) fn exited(
        &mut self,
        child: ChildIdx,
        machine: &mut Machine,
        now: Instant,
    ) -> Option<Exited> {
        self.read_one(child, machine, now);
        let proc = *self.procs[child.get()].take()?;
        proc.channel.abandon();
        Some(Exited {
            pid: proc.pid,
            ending: proc.ending,
            setup_failed: proc.setup_failed,
            abort: proc.abort,
        })
    }

    /// Keeps child supervisor `child`, forked now.
    fn insert(&mut self, child: ChildIdx, proc: Proc) {
        self.procs[child.get()] = Some(Box::new(proc));
    }
}

/// A child supervisor that exited, as it said.
pub(super) struct Exited {
    pub(super) pid: Pid,
    /// What it said of its end, if it did.
    ending: Option<Ending>,
    /// It said it could not be set up.
    pub(super) setup_failed: bool,
    /// What it found if it aborted, where `RLIMIT_AS` bounds its memory.
    pub(super) abort: Option<AbortMark>,
}

impl Exited {
    /// How it ended, given its exit status `exit` (read for an OOM kill):
    /// a supervisor that exited by itself said how; the exit code only
    /// says that it did. Killed as hung, the machine says so (`Hung`).
    pub(super) fn exit(&self, exit: ChildExit) -> ChildExit {
        match (exit, self.ending) {
            _ if self.setup_failed => ChildExit::SetupFailed,
            (ChildExit::Exited(0), Some(ending)) => ending.exit(),
            (exit, _) => exit,
        }
    }
}

// The fork is the node's: the child process is made from all of it.
impl<S: Spawner, T: Timer> Node<'_, S, T> {
    /// Forks child supervisor `child`.
    pub(super) fn start_supervisor(&mut self, child: ChildIdx) {
        let path = self.child_path(child);
        // Its own period, or the one it inherits from this supervisor.
        let watchdog = self.machine.watchdog_of(child);
        let (ours, theirs) = match Channel::duplex() {
            Ok(pair) => pair,
            Err(err) => {
                self.fork_failed(
                    &[child],
                    "could not make a channel for a child supervisor",
                    err,
                );
                return;
            }
        };
        let ours_fds = ours.raw_fds();
        let parent = nix::unistd::Pid::this();
        let again = self.procs.forked(child);
        // The users its subtree runs as: it hands their sending sockets on.
        // And its machine, made here so that the child inherits it rather
        // than allocating it (watched with its own period, or this one's).
        let ids = self.ids.for_child(again);
        let (users, machine) = match self.sup.children.get(child.get()) {
            Some(Child::Supervisor(sup)) => (
                sup.users(nix::unistd::geteuid().as_raw()),
                Some(sup.machine(path.clone(), ids.first, watchdog)),
            ),
            _ => (Vec::new(), None),
        };
        self.containment.prepare(&path);
        let abort = self.abort_mark(&path);
        // What this supervisor said so far reaches the root before what
        // the child says (its start after an exit of its last run).
        self.events_out();
        let forked = sys::fork_child(|| {
            // The parent's end, which this process must not hold.
            sys::close_in_child(ours_fds);
            let outlet = self.reporter.outlet.take_for_child();
            // Only what its subtree needs: the receiving sockets of the
            // names declared in it, the listeners it sees or holds for a
            // supervisor below (see `Directory`).
            let directory = self
                .dynamic
                .directory()
                .for_child(|d| within(&d.owner, &path), &users)
                .map(Arc::new);
            let listeners = crate::listen::keep_in_child(|b| {
                within(&path, &b.owner) || within(&b.owner, &path)
            });
            // The descriptors of the groups of its subtree: its own, which
            // it enters through, and those below, for the supervisors it
            // forks (see `Containment::keep_entries`).
            let containment = self.containment.clone();
            containment.keep_entries(|s| within(s, &path));
            self.leave_parent_state();
            let (Some(Child::Supervisor(mut sup)), Some(machine)) =
                (take_child(&mut self.sup.children, child.get()), machine)
            else {
                return sys::EXIT_PANICKED;
            };
            sys::ignore_terminal_signals();
            let mut theirs = theirs;
            let directory = match (directory, listeners) {
                (Ok(directory), Ok(())) => directory,
                (Err(err), _) | (_, Err(err)) => {
                    tracing::error!(supervisor = %path, %err, "could not keep the sockets of the subtree");
                    let _ = theirs.send(&Note::SetupFailed);
                    return 1;
                }
            };
            // Its limits first (entering a cgroup takes root, or below
            // another user a descriptor root opened), then its user.
            if let Err(err) = containment.enter(&path) {
                tracing::error!(supervisor = %path, %err, "could not apply the subtree's limits");
                let _ = theirs.send(&Note::SetupFailed);
                return 1;
            }
            if let Some(Err(err)) = abort.as_ref().map(AbortMark::install) {
                tracing::warn!(supervisor = %path, %err, "could not watch its aborts");
            }
            if let Some((uid, gid)) = sup.user {
                if let Err(err) = sys::become_user(uid, gid, parent) {
                    tracing::error!(supervisor = %path, uid, gid, %err, "could not switch to the supervisor's user");
                    let _ = theirs.send(&Note::SetupFailed);
                    return 1;
                }
            }
            let signals = match SignalPipe::install(&[Signal::SIGCHLD, Signal::SIGTERM]) {
                Ok(signals) => signals,
                Err(err) => {
                    tracing::error!(supervisor = %path, %err, "could not set up signal handling");
                    // Said on the channel: the exit code means nothing.
                    let _ = theirs.send(&Note::SetupFailed);
                    return 1;
                }
            };
            Node::new(
                &mut sup,
                machine,
                self.spawner.clone(),
                self.timer.clone(),
                signals,
                outlet,
                Shared {
                    directory,
                    containment,
                    ids,
                },
            )
            .forked(theirs, watchdog)
            .run();
            0
        });
        match forked {
            Ok(pid) => {
                tracing::info!(supervisor = %self.machine.path(), %child, pid = pid.as_raw(), "child supervisor started");
                if let Some(Err(err)) = abort.as_ref().map(AbortMark::keep_from_forks) {
                    tracing::warn!(supervisor = %self.machine.path(), %child, %err, "its abort mark may reach processes forked later");
                }
                // When it must show life by is the machine's, from its fork.
                let now = self.timer.now();
                self.machine.handle_forked(child, now);
                self.procs.insert(
                    child,
                    Proc {
                        pid,
                        channel: ours,
                        ending: None,
                        setup_failed: false,
                        watchdog: watchdog.map(Watch::new),
                        judged: None,
                        abort,
                    },
                );
                // Its `Started` event is its own (see `Node::run`).
            }
            Err(err) => self.fork_failed(&[child], "fork failed", err),
        }
    }
}
