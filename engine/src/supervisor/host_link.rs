//! The link from a supervisor to its worker host: forking it, the commands
//! sent to it, the notes read from it, and its end.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::dynamic::Dynamic;
use super::watch::{Hung, Judged, Watch};
use super::{take_workers, Node};
use crate::channel::{Channel, PipeState};
use crate::host;
use crate::machine::{ChildIdx, Grant, Machine, RecordState, Watched};
use crate::os::sys::{self, AbortMark};
use crate::path::within;
use crate::port::Kind;
use crate::wire::{Command, Note};
use crate::{ChildExit, ChildId, EventKind, NodeKind, Spawner, Timer};

/// The most reads of the host's channel per turn of the loop (each up to
/// 2 KiB of notes): a host restarting workers in a tight loop must not keep
/// its supervisor from its signals.
const NOTE_READS_PER_TURN: usize = 16;

/// The running worker host.
#[derive(Debug)]
struct Host {
    pid: Pid,
    channel: Channel,
    /// Told to stop all its workers and exit.
    shutting_down: bool,
    /// `Restarted` notes received from it: what its grants are counted from.
    restarted: u64,
    /// It said it could not be set up ([`Note::SetupFailed`]): its exit is
    /// [`ChildExit::SetupFailed`] for the workers it was to run.
    setup_failed: bool,
    /// With a watchdog: what the scheduler says of it when it is silent
    /// (when it must show life by is its machine's).
    watch: Option<Watch>,
    /// Why it was last judged hung, since its last sign of life (for the
    /// line that says it is killed).
    judged: Option<Hung>,
    /// What it found if it aborted, where `RLIMIT_AS` bounds its memory.
    abort: Option<AbortMark>,
    /// Whether its channel was found cut (once is enough: the machine
    /// has it killed if it does not exit, see
    /// [`CUT_GRACE`](crate::machine::CUT_GRACE)).
    cut: bool,
}

/// A worker host that ended, as it said.
pub(super) struct HostEnd {
    pub(super) pid: Pid,
    /// It was told to stop all its workers and exit.
    asked: bool,
    /// It said it could not be set up.
    pub(super) setup_failed: bool,
    /// What it found if it aborted, where `RLIMIT_AS` bounds its memory.
    pub(super) abort: Option<AbortMark>,
}

impl HostEnd {
    /// How it ended, given its exit status `exit` (read for an OOM kill):
    /// what the host said, never its exit code, tells a setup failure.
    pub(super) fn exit(&self, exit: ChildExit) -> ChildExit {
        match exit {
            _ if self.setup_failed => ChildExit::SetupFailed,
            ChildExit::Exited(0) if self.asked => ChildExit::Stopped,
            other => other,
        }
    }
}

/// What a supervisor knows of its worker host and the workers in it.
#[derive(Debug)]
pub(super) struct HostLink {
    host: Option<Host>,
    /// Which workers run in the host (or wait for it to be forked).
    live: Vec<bool>,
    /// Workers to start in a host that is forked once the current batch of
    /// actions is done, with their leases.
    unhosted: Vec<Start>,
}

/// A start of a worker: its lease, and for a child started at run time its
/// template and argument.
type Start = (
    ChildIdx,
    Option<RecordState>,
    Option<(u32, ChildId, Vec<u8>)>,
);

/// Queues the commands of a start on `channel`.
fn queue_start(channel: &mut Channel, (child, lease, add): Start) {
    if let Some((template, id, arg)) = add {
        channel.queue(&Command::Add {
            child,
            template,
            id,
            arg,
        });
    }
    channel.queue(&Command::Start { child, lease });
}

impl HostLink {
    pub(super) fn new(children: usize) -> Self {
        Self {
            host: None,
            live: vec![false; children],
            // At most one start per child waits for the host at first: one
            // allocation, not one per doubling.
            unhosted: Vec::with_capacity(children),
        }
    }

    /// Makes room for workers up to index `len`.
    pub(super) fn grow(&mut self, len: usize) {
        if self.live.len() < len {
            self.live.resize(len, false);
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.host.is_some()
    }

    /// Whether workers wait for a host to be forked.
    pub(super) fn awaits_launch(&self) -> bool {
        self.host.is_none() && !self.unhosted.is_empty()
    }

    pub(super) fn pid(&self) -> Option<Pid> {
        self.host.as_ref().map(|h| h.pid)
    }

    /// Whether worker `child` runs in the host.
    pub(super) fn runs(&self, child: ChildIdx) -> bool {
        self.host.is_some() && self.is_live(child)
    }

    fn is_live(&self, child: ChildIdx) -> bool {
        self.live.get(child.get()) == Some(&true)
    }

    /// Starts worker `child` in the host, or once it is forked; the host's
    /// pid if it runs.
    pub(super) fn start(
        &mut self,
        child: ChildIdx,
        lease: Option<RecordState>,
        add: Option<(u32, ChildId, Vec<u8>)>,
    ) -> Option<Pid> {
        self.live[child.get()] = true;
        match &mut self.host {
            Some(host) => {
                queue_start(&mut host.channel, (child, lease, add));
                Some(host.pid)
            }
            None => {
                self.unhosted.push((child, lease, add));
                None
            }
        }
    }

    /// Asks the host to stop `workers`, in this order; with `whole_host`
    /// and every live worker among them, to stop them all and exit. Returns
    /// the workers that were not running in a host.
    pub(super) fn stop(&mut self, workers: &[ChildIdx], whole_host: bool) -> Vec<ChildIdx> {
        self.unhosted.retain(|(c, _, _)| !workers.contains(c));
        let mut not_running = Vec::new();
        let mut stops = Vec::new();
        for &child in workers {
            if self.is_live(child) && self.host.is_some() {
                stops.push(child);
            } else {
                self.live[child.get()] = false;
                not_running.push(child);
            }
        }
        // Only a shutdown asks for the whole host: checked then alone, as
        // the check reads every worker.
        let all_live = || {
            let stopped: std::collections::HashSet<usize> = stops.iter().map(|c| c.get()).collect();
            (0..self.live.len())
                .filter(|&n| self.live[n])
                .all(|n| stopped.contains(&n))
        };
        if whole_host && all_live() {
            self.shut_down();
        } else if let Some(host) = &mut self.host {
            for child in stops {
                host.channel.queue(&Command::Stop(child));
            }
        }
        not_running
    }

    /// Tells the host to drop worker `child`'s future, if it runs there
    /// (the machine has the host killed if the worker has not ended within
    /// [`DROP_GRACE`](crate::machine::DROP_GRACE)).
    ///
    /// One that waits for a host to be forked is not started at all (as
    /// [`stop`](Self::stop) does): the machine counts it ended, so no host
    /// may run it behind its back.
    pub(super) fn kill(&mut self, child: ChildIdx) -> bool {
        let live = self.is_live(child);
        match &mut self.host {
            Some(host) if live => {
                tracing::debug!(pid = host.pid.as_raw(), %child, "dropping a worker");
                host.channel.queue(&Command::Drop(child));
                true
            }
            _ => {
                self.unhosted.retain(|(c, _, _)| *c != child);
                if let Some(live) = self.live.get_mut(child.get()) {
                    *live = false;
                }
                false
            }
        }
    }

    /// Sends the host a new restart budget.
    pub(super) fn grant(&mut self, budget: Option<u32>) {
        if let Some(host) = &mut self.host {
            let grant = Grant {
                budget,
                as_of: host.restarted,
            };
            host.channel.queue(&Command::Grant(grant));
        }
    }

    /// Tells the host to stop every worker and exit (once).
    pub(super) fn shut_down(&mut self) {
        let Some(host) = &mut self.host else { return };
        if !host.shutting_down {
            host.shutting_down = true;
            host.channel.queue(&Command::Shutdown);
        }
    }

    /// SIGKILLs the host, if it runs: its pid, and why it was judged hung
    /// if it was since its last sign of life.
    pub(super) fn kill_host(&mut self) -> Option<(Pid, Option<Hung>)> {
        let judged = self.host.as_mut().and_then(|h| h.judged.take());
        let pid = self.host.as_ref()?.pid;
        sys::send(pid, Signal::SIGKILL);
        Some((pid, judged))
    }

    /// When the host, which must show life `by`, is next looked at.
    pub(super) fn look_at(&self, by: Option<Instant>) -> Option<Instant> {
        Some(self.host.as_ref()?.watch.as_ref()?.next(by?))
    }

    pub(super) fn flush(&mut self) {
        if let Some(host) = &mut self.host {
            host.channel.flush();
        }
    }

    /// What to wait for on the host's channel.
    pub(super) fn interest(&self) -> impl Iterator<Item = (BorrowedFd<'_>, PollFlags)> {
        self.host.iter().flat_map(|host| host.channel.interest())
    }

    /// The host process ended: lets go of it, and kills what its workers
    /// started (it leads its own group). What it said, if it ran.
    pub(super) fn ended(&mut self) -> Option<HostEnd> {
        let host = self.host.take()?;
        let pid = host.pid;
        let end = HostEnd {
            pid,
            asked: host.shutting_down,
            setup_failed: host.setup_failed,
            abort: host.abort,
        };
        host.channel.abandon();
        // What its workers started ends with it (it leads its own group).
        sys::kill_group(pid);
        Some(end)
    }

    /// The workers the host that ended still ran (among `machine`'s
    /// children), which run no more.
    pub(super) fn lost(&mut self, machine: &Machine) -> Vec<ChildIdx> {
        let live: Vec<ChildIdx> = machine
            .child_indices()
            .filter(|&c| self.is_live(c))
            .collect();
        for &child in &live {
            self.live[child.get()] = false;
        }
        live
    }

    /// Looks at the worker host if it is silent and due to be (see
    /// [`Watch::check`]): a reprieve is `machine`'s at once; whether it
    /// was judged hung, to be killed by the machine's timeout once what it
    /// said is read.
    pub(super) fn judge(&mut self, machine: &mut Machine, now: Instant) -> bool {
        let Some(by) = machine.alive_by(Watched::Host) else {
            return false;
        };
        let Some(host) = &mut self.host else {
            return false;
        };
        let pid = host.pid;
        let Some(watch) = host.watch.as_mut() else {
            return false;
        };
        match watch.check(pid, "worker host", now, by) {
            None => false,
            Some(Judged::NotHung(why)) => {
                machine.handle_reprieve(Watched::Host, why, now);
                false
            }
            Some(Judged::Hung(why)) => {
                host.judged = Some(why);
                true
            }
        }
    }

    /// In a freshly forked child: lets go of the parent's host link.
    pub(super) fn leave(&mut self) {
        if let Some(host) = self.host.take() {
            host.channel.abandon();
        }
        std::mem::forget(std::mem::take(&mut self.unhosted));
    }

    /// Reads the host's notes and has `machine` handle them (and
    /// `dynamic`, the start of a child started at run time): what the
    /// channel holds, up to a bound per turn of the loop, or everything
    /// when the host is gone (`all`).
    pub(super) fn read(
        &mut self,
        machine: &mut Machine,
        dynamic: &mut Dynamic,
        flush: &mut dyn FnMut(),
        now: Instant,
        all: bool,
    ) {
        let Some(host) = &mut self.host else {
            return;
        };
        let max_reads = if all { usize::MAX } else { NOTE_READS_PER_TURN };
        if let PipeState::Failed(err) = host.channel.receive(max_reads) {
            tracing::warn!(supervisor = %machine.path(), %err, "reading the worker host's channel failed");
        }
        if host.channel.is_cut() && !host.cut {
            host.cut = true;
            machine.handle_host_cut(now);
        }
        while let Some(note) = self.host.as_mut().and_then(|h| h.channel.next::<Note>()) {
            self.note(note, machine, dynamic, flush, now);
        }
    }

    fn note(
        &mut self,
        note: Note,
        machine: &mut Machine,
        dynamic: &mut Dynamic,
        flush: &mut dyn FnMut(),
        now: Instant,
    ) {
        match note {
            Note::Restarted {
                child,
                exit,
                reason,
                delay,
                state,
            } => {
                if let Some(host) = &mut self.host {
                    host.restarted += 1;
                }
                if self.is_live(child) {
                    machine.handle_restarted(child, exit, reason, delay, state, now);
                }
            }
            Note::WorkerReady(child) if self.is_live(child) => {
                machine.handle_ready(child, now);
            }
            Note::Began(child) if self.is_live(child) => dynamic.began(child, flush),
            Note::SetupFailed => {
                if let Some(host) = &mut self.host {
                    host.setup_failed = true;
                }
            }
            Note::Alive { thread } => {
                if let Some(host) = self.host.as_mut() {
                    host.judged = None;
                    if let Some(watch) = host.watch.as_mut() {
                        watch.alive(thread);
                    }
                }
                machine.handle_alive(Watched::Host, now);
            }
            Note::Exited {
                child,
                exit,
                reason,
            } if self.is_live(child) => {
                self.live[child.get()] = false;
                tracing::debug!(supervisor = %machine.path(), %child, %exit, ?reason, "worker exited");
                machine.handle_exit_because(child, exit, reason, now);
            }
            other => {
                tracing::warn!(supervisor = %machine.path(), ?other, "unexpected note from the worker host dropped");
            }
        }
    }
}

// The fork is the node's: the host process is made from all of it.
impl<S: Spawner, T: Timer> Node<'_, S, T> {
    /// Forks a worker host for the workers waiting for one. Returns whether
    /// that failed, which the machine has been told (so it has new actions).
    pub(super) fn launch_host(&mut self) -> bool {
        if self.host.unhosted.is_empty() || self.host.host.is_some() {
            return false;
        }
        let starts = std::mem::take(&mut self.host.unhosted);
        match self.fork_host(&starts) {
            Ok(pid) => {
                for (child, _, _) in starts {
                    self.worker_started(child, pid);
                }
                false
            }
            Err(err) => {
                let workers: Vec<ChildIdx> = starts.iter().map(|(c, _, _)| *c).collect();
                for child in &workers {
                    self.host.live[child.get()] = false;
                }
                self.fork_failed(&workers, "fork of the worker host failed", err);
                true
            }
        }
    }

    /// Forks the worker host, with `Start` commands for `starts` already in
    /// its channel, so it starts them before anything else.
    fn fork_host(&mut self, starts: &[Start]) -> Result<Pid, Errno> {
        let (mut channel, theirs) = Channel::both_ways()?;
        channel.reserve(32 * starts.len() + 64);
        for start in starts {
            queue_start(&mut channel, start.clone());
        }
        // A fresh socket takes far more than a tree's first starts; any rest
        // is flushed by the loop.
        channel.flush();
        let grant = Grant {
            budget: self.machine.budget(self.timer.now()),
            as_of: 0,
        };
        let ours = channel.raw_fds();
        let abort = self.abort_mark(self.machine.path());
        let pid = sys::fork_child(|| {
            // The parent's end, which this process must not hold.
            sys::close_in_child(ours);
            if let Some(Err(err)) = abort.as_ref().map(AbortMark::install) {
                tracing::warn!(supervisor = %self.machine.path(), %err, "the worker host could not watch its aborts");
            }
            // Built here, in the host: the supervisor neither allocates nor
            // frees them, and keeps its heap compact for the next fork.
            let path = format!("{}/host", self.machine.path());
            let leasable = self.machine.leasable();
            let owner = self.machine.path().to_owned();
            let templates = self.sup.templates.clone();
            let paths = (0..self.sup.children.len())
                .map(|n| self.sup.child_path(&owner, n))
                .collect();
            // Only what its workers need: the receiving sockets of this
            // supervisor's mailboxes, the listeners they may take.
            let directory = self
                .dynamic
                .directory()
                .for_child(
                    |d| d.kind == Kind::Mailbox && d.owner == owner,
                    &[nix::unistd::geteuid().as_raw()],
                )
                .map(Arc::new);
            let listeners = crate::listen::keep_in_child(|b| within(&owner, &b.owner));
            // No way into a cgroup: a worker must not move itself.
            self.containment.keep_entries(|_| false);
            let watchdog = self.machine.watchdog();
            self.leave_parent_state();
            let directory = match (directory, listeners) {
                (Ok(directory), Ok(())) => directory,
                (Err(err), _) | (_, Err(err)) => {
                    tracing::error!(host = %path, %err, "could not keep the sockets of the worker host");
                    let mut channel = theirs;
                    let _ = channel.send(&Note::SetupFailed);
                    return 1;
                }
            };
            // The child supervisors' specs stay where they are, never
            // dropped: see `take_workers`.
            let workers = take_workers(&mut self.sup.children);
            host::run(
                self.spawner.clone(),
                self.timer.clone(),
                host::Setup {
                    path,
                    workers,
                    leasable,
                    grant,
                    channel: theirs,
                    templates,
                    directory,
                    owner,
                    paths,
                    watchdog,
                },
            )
        })?;
        if let Some(Err(err)) = abort.as_ref().map(AbortMark::keep_from_forks) {
            tracing::warn!(supervisor = %self.machine.path(), %err, "the worker host's abort mark may reach processes forked later");
        }
        tracing::info!(supervisor = %self.machine.path(), pid = pid.as_raw(), "worker host started");
        let host_path = format!("{}/host", self.machine.path());
        self.reporter.emit(
            host_path,
            Some(pid),
            EventKind::Started(NodeKind::WorkerHost),
        );
        self.host.host = Some(Host {
            pid,
            channel,
            shutting_down: false,
            restarted: 0,
            setup_failed: false,
            watch: self.machine.watchdog().map(Watch::new),
            judged: None,
            cut: false,
            abort,
        });
        // Its deadlines start now (the first sign of life may take a
        // runtime's start-up: the machine gives it two periods).
        self.machine.handle_host_started(self.timer.now());
        Ok(pid)
    }
}
