//! One supervisor process: the poll loop that drives a [`Machine`] with real
//! children — forked child supervisors, and one worker host for all worker
//! children.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::host;
use super::outlet::Outlet;
use super::sys::{self, SignalPipe};
use super::wire::{self, Command, Note, PipeState};
use crate::machine::{Action, Machine, Outcome, Report};
use crate::tree::{Child, Supervisor};
use crate::{ChildExit, Event, EventKind, NodeKind, Shutdown, Spawner, Timer};

/// The most reads of a host's note pipe per turn of the loop (each up to 128
/// notes).
const NOTE_READS_PER_TURN: usize = 16;

/// A child process we may have to kill if it does not stop in time.
#[derive(Debug)]
struct Proc {
    pid: Pid,
    kill_at: Option<Instant>,
}

/// The running worker host and its pipes.
#[derive(Debug)]
struct Host {
    pid: Pid,
    commands: OwnedFd,
    events: OwnedFd,
    outbox: Vec<u8>,
    inbox: Vec<u8>,
    kill_at: Option<Instant>,
    /// Told to stop all its workers (in reverse order, as the machine would
    /// one at a time) and exit.
    shutting_down: bool,
    /// Whether its note pipe can still have something to read: a dying host
    /// closes it before its exit status is ready, and a closed pipe polls as
    /// readable forever.
    notes_open: bool,
}

/// The link from a forked supervisor to its parent: the write end of the
/// parent's pipe for child supervisors' notes, and this child's index.
pub(crate) struct Parent {
    notes: OwnedFd,
    index: u32,
}

/// How a supervisor process ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending {
    pub(crate) outcome: Outcome,
    /// The signal (SIGTERM/SIGINT) that asked this supervisor to stop, if any.
    pub(crate) signal: Option<Signal>,
}

impl Ending {
    /// The exit code of a forked supervisor that ended this way.
    pub(crate) fn exit_code(self) -> i32 {
        match (self.outcome, self.signal) {
            (Outcome::GaveUp, _) => sys::EXIT_GAVE_UP,
            (Outcome::Normal, Some(sig)) => 128 + sig as i32,
            (Outcome::Normal, None) => 0,
        }
    }
}

pub(crate) struct Node<'a, S, T> {
    sup: &'a mut Supervisor,
    machine: Machine,
    spawner: S,
    timer: T,
    signals: Option<SignalPipe>,
    is_worker: Vec<bool>,
    procs: Vec<Option<Proc>>,
    live: Vec<bool>,
    /// When a worker asked to stop must have reported back, or its host is
    /// killed (a worker that blocks its thread can not be dropped).
    worker_kill_at: Vec<Option<Instant>>,
    host: Option<Host>,
    /// Workers to start in a host that is forked once the current batch of
    /// actions is done.
    unhosted: Vec<usize>,
    stop_signal: Option<Signal>,
    ending: Option<Outcome>,
    /// Whether every child of this process is the engine's (a forked
    /// supervisor): then it reaps with `waitpid(-1)` and adopts orphans.
    owns_all_children: bool,
    outlet: Outlet,
    /// The pipe child supervisors report their readiness on (read end,
    /// write end), made when the first one is forked.
    child_notes: Option<(OwnedFd, OwnedFd)>,
    child_inbox: Vec<u8>,
    parent: Option<Parent>,
}

impl<'a, S: Spawner, T: Timer> Node<'a, S, T> {
    pub(crate) fn new(
        sup: &'a mut Supervisor,
        path: String,
        spawner: S,
        timer: T,
        signals: SignalPipe,
        outlet: Outlet,
    ) -> Self {
        let is_worker: Vec<bool> = sup
            .children
            .iter()
            .map(|c| matches!(c, Child::Worker(_)))
            .collect();
        let count = is_worker.len();
        Self {
            machine: sup.machine(path),
            sup,
            spawner,
            timer,
            signals: Some(signals),
            is_worker,
            procs: (0..count).map(|_| None).collect(),
            live: vec![false; count],
            worker_kill_at: vec![None; count],
            host: None,
            unhosted: Vec::new(),
            stop_signal: None,
            ending: None,
            owns_all_children: false,
            outlet,
            child_notes: None,
            child_inbox: Vec::new(),
            parent: None,
        }
    }

    /// Marks this node as a forked supervisor process, whose children are all
    /// the engine's: it becomes their subreaper and reaps any exited child.
    /// It reports its readiness to `parent`.
    pub(crate) fn forked(mut self, parent: Option<Parent>) -> Self {
        sys::become_subreaper();
        self.owns_all_children = true;
        self.parent = parent;
        self
    }

    /// Runs the supervisor until it ends.
    pub(crate) fn run(mut self) -> Ending {
        tracing::info!(supervisor = %self.machine.path(), pid = std::process::id(), "supervisor started");
        self.machine.handle_start(self.timer.now());
        loop {
            loop {
                // Decisions are reported before the actions that follow
                // them (an exit before the restart's start).
                self.report();
                let Some(action) = self.machine.poll_action() else {
                    break;
                };
                match action {
                    Action::Start(n) => self.start(n),
                    Action::Stop(n) => self.stop(n),
                    Action::Exit(outcome) => {
                        self.ending = Some(outcome);
                        self.stop_host();
                        if let Some(root) = self.outlet.root() {
                            root.stopping();
                        }
                    }
                }
            }
            if self.launch_host() {
                continue;
            }
            if let Some(host) = &mut self.host {
                flush(host);
            }
            if let (Some(outcome), None) = (self.ending, &self.host) {
                tracing::info!(supervisor = %self.machine.path(), ?outcome, "supervisor stopped");
                return Ending {
                    outcome,
                    signal: self.stop_signal,
                };
            }
            self.wait();
        }
    }

    /// The intensity this supervisor applied.
    pub(crate) fn intensity(&self) -> crate::Intensity {
        self.machine.intensity()
    }

    fn child_path(&self, n: usize) -> String {
        format!("{}/{n}", self.machine.path())
    }

    fn start(&mut self, n: usize) {
        if self.is_worker[n] {
            self.start_worker(n);
        } else {
            self.start_supervisor(n);
        }
    }

    fn start_worker(&mut self, n: usize) {
        self.live[n] = true;
        if self.host.is_none() {
            self.unhosted.push(n);
            return;
        }
        self.send(Command::Start(n as u32));
        tracing::debug!(supervisor = %self.machine.path(), child = n, "worker started");
        let pid = self.host.as_ref().map(|h| h.pid);
        self.emit_child(n, pid, EventKind::Started(NodeKind::Worker));
    }

    /// Forks a worker host for the workers waiting for one. Returns whether
    /// that failed, which the machine has been told (so it has new actions).
    fn launch_host(&mut self) -> bool {
        if self.unhosted.is_empty() || self.host.is_some() {
            return false;
        }
        let starts = std::mem::take(&mut self.unhosted);
        match self.fork_host(&starts) {
            Ok(pid) => {
                for n in starts {
                    tracing::debug!(supervisor = %self.machine.path(), child = n, "worker started");
                    self.emit_child(n, Some(pid), EventKind::Started(NodeKind::Worker));
                }
                false
            }
            Err(err) => {
                tracing::error!(supervisor = %self.machine.path(), workers = ?starts, %err, "fork of the worker host failed; will retry with backoff");
                let now = self.timer.now();
                for n in starts {
                    self.live[n] = false;
                    self.machine
                        .handle_exit(n, ChildExit::ForkFailed(err as i32), now);
                }
                true
            }
        }
    }

    /// Forks the worker host, with `Start` commands for `starts` already in
    /// its command pipe, so it starts them before anything else.
    fn fork_host(&mut self, starts: &[usize]) -> Result<Pid, Errno> {
        let (cmd_read, cmd_write) = sys::pipe()?;
        let first: Vec<u8> = starts
            .iter()
            .flat_map(|&n| Command::Start(n as u32).encode())
            .collect();
        // A fresh pipe takes 4096 frames; any rest goes through the outbox.
        let written = nix::unistd::write(&cmd_write, &first)?;
        let outbox = first[written..].to_vec();
        let (ev_read, ev_write) = sys::pipe()?;
        let path = format!("{}/host", self.machine.path());
        let parent_ends = [cmd_write.as_raw_fd(), ev_read.as_raw_fd()];
        let (records, history) = self.machine.delegation();
        let delegation = host::Delegation {
            records,
            history,
            intensity: self.machine.intensity(),
        };
        let host_path = path.clone();
        let pid = sys::fork_child(|| {
            for fd in parent_ends {
                let _ = nix::unistd::close(fd);
            }
            self.leave_parent_state();
            // The child supervisors' specs stay where they are, never
            // dropped: see `take_children`.
            let workers =
                take_children(&mut self.sup.children, |_, c| matches!(c, Child::Worker(_)))
                    .into_iter()
                    .map(|c| match c {
                        Some(Child::Worker(w)) => Some(w),
                        _ => None,
                    })
                    .collect();
            host::run(
                self.spawner.clone(),
                self.timer.clone(),
                path,
                workers,
                delegation,
                cmd_read,
                ev_write,
            )
        })?;
        tracing::info!(supervisor = %self.machine.path(), pid = pid.as_raw(), "worker host started");
        self.emit(
            host_path,
            Some(pid),
            EventKind::Started(NodeKind::WorkerHost),
        );
        self.host = Some(Host {
            pid,
            commands: cmd_write,
            events: ev_read,
            outbox,
            inbox: Vec::new(),
            kill_at: None,
            shutting_down: false,
            notes_open: true,
        });
        Ok(pid)
    }

    fn start_supervisor(&mut self, n: usize) {
        let path = self.child_path(n);
        if self.child_notes.is_none() {
            match sys::pipe() {
                Ok(pipe) => self.child_notes = Some(pipe),
                Err(err) => {
                    tracing::error!(supervisor = %self.machine.path(), child = n, %err, "could not make the pipe for child supervisors; will retry with backoff");
                    self.machine.handle_exit(
                        n,
                        ChildExit::ForkFailed(err as i32),
                        self.timer.now(),
                    );
                    return;
                }
            }
        }
        let forked = sys::fork_child(|| {
            let parent = self.child_notes.take().map(|(read, notes)| {
                drop(read);
                Parent {
                    notes,
                    index: n as u32,
                }
            });
            let outlet = self.outlet.take_for_child();
            self.leave_parent_state();
            let mut ours = take_children(&mut self.sup.children, |m, _| m == n);
            let Some(Some(Child::Supervisor(mut sup))) = ours.get_mut(n).map(Option::take) else {
                return sys::EXIT_PANICKED;
            };
            sys::ignore(Signal::SIGINT);
            let signals = match SignalPipe::install(&[Signal::SIGCHLD, Signal::SIGTERM]) {
                Ok(signals) => signals,
                Err(err) => {
                    tracing::error!(supervisor = %path, %err, "could not set up signal handling");
                    return 1;
                }
            };
            Node::new(
                &mut sup,
                path,
                self.spawner.clone(),
                self.timer.clone(),
                signals,
                outlet,
            )
            .forked(parent)
            .run()
            .exit_code()
        });
        match forked {
            Ok(pid) => {
                tracing::info!(supervisor = %self.machine.path(), child = n, pid = pid.as_raw(), "child supervisor started");
                self.procs[n] = Some(Proc { pid, kill_at: None });
                self.emit_child(n, Some(pid), EventKind::Started(NodeKind::Supervisor));
            }
            Err(err) => {
                tracing::error!(supervisor = %self.machine.path(), child = n, %err, "fork failed; will retry with backoff");
                self.machine
                    .handle_exit(n, ChildExit::ForkFailed(err as i32), self.timer.now());
            }
        }
    }

    /// In a freshly forked child: let go of this supervisor's descriptors and
    /// signal handling, which belong to the parent.
    ///
    /// Descriptors are closed; memory is forgotten rather than freed, since
    /// freeing would write to (and so copy) the heap pages shared with the
    /// parent, for nothing: the process ends with `_exit`.
    fn leave_parent_state(&mut self) {
        if let Some(signals) = self.signals.take() {
            signals.abandon_in_child();
        }
        if let Some(host) = self.host.take() {
            let Host {
                commands,
                events,
                outbox,
                inbox,
                ..
            } = host;
            drop((commands, events));
            std::mem::forget((outbox, inbox));
        }
        self.child_notes = None;
        self.parent = None;
        drop(self.outlet.take_for_child());
    }

    /// Sends a lifecycle event about `path` to the root, if anyone listens.
    fn emit(&mut self, path: String, pid: Option<Pid>, kind: EventKind) {
        self.outlet.emit(|| Event {
            path,
            pid: pid.and_then(|p| u32::try_from(p.as_raw()).ok()),
            kind,
        });
    }

    /// Sends a lifecycle event about child `n`.
    fn emit_child(&mut self, n: usize, pid: Option<Pid>, kind: EventKind) {
        if !self.outlet.is_quiet() {
            let path = self.child_path(n);
            self.emit(path, pid, kind);
        }
    }

    /// Turns the machine's decisions into lifecycle events, and passes this
    /// supervisor's readiness up.
    fn report(&mut self) {
        while let Some(report) = self.machine.poll_report() {
            match report {
                Report::Exited {
                    child,
                    exit,
                    restart,
                } => {
                    let pid = if self.is_worker[child] {
                        self.host
                            .as_ref()
                            .map(|h| h.pid)
                            .filter(|_| restart.is_some() && self.live[child])
                    } else {
                        None
                    };
                    self.emit_child(child, pid, EventKind::Exited { exit, restart });
                }
                Report::ChildReady(n) if self.is_worker[n] => {
                    let pid = self.host.as_ref().map(|h| h.pid);
                    self.emit_child(n, pid, EventKind::Ready);
                }
                // A child supervisor reports its own readiness.
                Report::ChildReady(_) => {}
                Report::Ready => self.ready(),
                Report::Stopping(outcome) => {
                    if let Some(root) = self.outlet.root() {
                        root.stopping();
                    }
                    let path = self.machine.path().to_owned();
                    let gave_up = outcome == Outcome::GaveUp;
                    self.emit(path, Some(Pid::this()), EventKind::Stopping { gave_up });
                }
            }
        }
    }

    /// Every child of this supervisor is ready.
    fn ready(&mut self) {
        tracing::debug!(supervisor = %self.machine.path(), "supervisor ready");
        let path = self.machine.path().to_owned();
        self.emit(path, Some(Pid::this()), EventKind::Ready);
        if let Some(root) = self.outlet.root() {
            root.tree_ready();
        }
        if let Some(parent) = &self.parent {
            let frame = Note::Ready(parent.index).encode();
            if let Err(err) = sys::write(&parent.notes, &frame) {
                tracing::warn!(supervisor = %self.machine.path(), %err, "could not report readiness to the parent");
            }
        }
    }

    fn stop(&mut self, n: usize) {
        let now = self.timer.now();
        let shutdown = self.sup.shutdown;
        if self.is_worker[n] {
            self.unhosted.retain(|&m| m != n);
            if !self.live[n] || self.host.is_none() {
                self.live[n] = false;
                self.machine.handle_exit(n, ChildExit::STOPPED, now);
                return;
            }
            self.worker_kill_at[n] = shutdown.kill_after().map(|d| now + d);
            // When the rest of a shutdown stops only this host's workers, one
            // command stops them all, in the same reverse order.
            let only_workers_left =
                self.machine.is_shutting_down() && self.procs[..n].iter().all(Option::is_none);
            if only_workers_left {
                self.shut_host_down();
            } else {
                self.send(Command::Stop(n as u32));
            }
            return;
        }
        match &mut self.procs[n] {
            Some(proc) => proc.kill_at = terminate(proc.pid, shutdown, now),
            None => self.machine.handle_exit(n, ChildExit::STOPPED, now),
        }
    }

    /// Asks the host to stop its remaining workers and exit.
    fn stop_host(&mut self) {
        let now = self.timer.now();
        let kill_at = self.sup.shutdown.kill_after().map(|d| now + d);
        if let Some(host) = &mut self.host {
            host.kill_at = kill_at;
        }
        self.shut_host_down();
    }

    /// Sends the host `Shutdown`, once.
    fn shut_host_down(&mut self) {
        let Some(host) = &mut self.host else { return };
        if !host.shutting_down {
            host.shutting_down = true;
            self.send(Command::Shutdown);
        }
    }

    /// Queues `cmd` for the host; the run loop flushes it.
    fn send(&mut self, cmd: Command) {
        if let Some(host) = &mut self.host {
            host.outbox.extend_from_slice(&cmd.encode());
        }
    }

    /// Sleeps until something happens, then feeds it to the machine.
    fn wait(&mut self) {
        let now = self.timer.now();
        let deadline = self
            .machine
            .poll_timeout()
            .into_iter()
            .chain(self.procs.iter().flatten().filter_map(|p| p.kill_at))
            .chain(self.host.iter().filter_map(|h| h.kill_at))
            .chain(self.worker_kill_at.iter().flatten().copied())
            .chain(match &self.outlet {
                Outlet::Root(root) => root.deadline(),
                _ => None,
            })
            .min();
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        if timeout != Some(Duration::ZERO) {
            let Some(signals) = &self.signals else { return };
            let mut fds = vec![sys::readable(signals.fd())];
            if let Some((read, _)) = &self.child_notes {
                fds.push(sys::readable(read.as_fd()));
            }
            if let Outlet::Root(root) = &self.outlet {
                fds.extend(root.poll_fds());
            }
            if let Some(host) = &self.host {
                if host.notes_open {
                    fds.push(sys::readable(host.events.as_fd()));
                }
                if !host.outbox.is_empty() {
                    fds.push(nix::poll::PollFd::new(
                        host.commands.as_fd(),
                        PollFlags::POLLOUT,
                    ));
                }
            }
            sys::wait_readable(&mut fds, timeout);
        }
        let signals = self
            .signals
            .as_ref()
            .map(SignalPipe::drain)
            .unwrap_or_default();
        let now = self.timer.now();
        self.read_events(now, false);
        self.read_child_notes(now);
        if let Some(root) = self.outlet.root() {
            root.handle(now);
        }
        if let Some(host) = &mut self.host {
            flush(host);
        }
        for sig in &signals {
            if matches!(sig, Signal::SIGTERM | Signal::SIGINT) && self.stop_signal.is_none() {
                tracing::info!(supervisor = %self.machine.path(), signal = %sig, "shutdown requested");
                self.stop_signal = Some(*sig);
                self.machine.handle_shutdown(now);
            }
        }
        if signals.contains(&Signal::SIGCHLD) {
            self.reap(now);
        }
        self.kill_overdue(now);
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle_timeout(now);
        }
    }

    /// Reads child supervisors' readiness notes.
    fn read_child_notes(&mut self, now: Instant) {
        let Some((read, _)) = &self.child_notes else {
            return;
        };
        // This process holds a write end too: the pipe never closes.
        let (frames, _) = wire::read_frames(read, &mut self.child_inbox, usize::MAX);
        for frame in frames {
            match Note::decode(&frame) {
                Some(Note::Ready(n)) if self.procs.get(n as usize).is_some_and(Option::is_some) => {
                    self.machine.handle_ready(n as usize, now);
                }
                other => {
                    tracing::warn!(supervisor = %self.machine.path(), ?frame, ?other, "unexpected note from a child supervisor dropped");
                }
            }
        }
    }

    /// Reads and handles the host's notes: what the pipe holds, up to a
    /// bound per turn of the loop (a host restarting workers in a tight loop
    /// must not keep this supervisor from its signals), or everything when
    /// the host is gone (`all`).
    fn read_events(&mut self, now: Instant, all: bool) {
        let Some(host) = &mut self.host else { return };
        let max_reads = if all { usize::MAX } else { NOTE_READS_PER_TURN };
        let (frames, state) = wire::read_frames(&host.events, &mut host.inbox, max_reads);
        if state == PipeState::Closed {
            host.notes_open = false;
        }
        for frame in frames {
            match Note::decode(&frame) {
                Some(Note::Restarted(n, exit, delay))
                    if self.live.get(n as usize) == Some(&true) =>
                {
                    self.machine.handle_restarted(n as usize, exit, delay, now);
                }
                Some(Note::Ready(n)) if self.live.get(n as usize) == Some(&true) => {
                    self.machine.handle_ready(n as usize, now);
                }
                Some(Note::Exited(n, exit)) if self.live.get(n as usize) == Some(&true) => {
                    let n = n as usize;
                    self.live[n] = false;
                    self.worker_kill_at[n] = None;
                    tracing::debug!(supervisor = %self.machine.path(), child = n, %exit, "worker exited");
                    self.machine.handle_exit(n, exit, now);
                }
                other => {
                    tracing::warn!(supervisor = %self.machine.path(), ?frame, ?other, "unexpected host event dropped")
                }
            }
        }
    }

    fn reap(&mut self, now: Instant) {
        if self.owns_all_children {
            while let Some((pid, exit)) = sys::reap_any() {
                self.reaped(pid, exit, now);
            }
            return;
        }
        let pids: Vec<Pid> = self
            .procs
            .iter()
            .flatten()
            .map(|p| p.pid)
            .chain(self.host.as_ref().map(|h| h.pid))
            .collect();
        for pid in pids {
            if let Some(exit) = sys::try_reap(pid) {
                self.reaped(pid, exit, now);
            }
        }
    }

    /// Feeds the exit of process `pid` to the machine.
    fn reaped(&mut self, pid: Pid, exit: ChildExit, now: Instant) {
        if let Some(n) = self
            .procs
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.pid == pid))
        {
            tracing::info!(supervisor = %self.machine.path(), child = n, pid = pid.as_raw(), %exit, "child supervisor exited");
            self.procs[n] = None;
            self.machine.handle_exit(n, exit, now);
            return;
        }
        if self.host.as_ref().is_some_and(|h| h.pid == pid) {
            self.host_exited(pid, exit, now);
            return;
        }
        tracing::debug!(supervisor = %self.machine.path(), pid = pid.as_raw(), %exit, "reaped an orphaned descendant");
    }

    fn host_exited(&mut self, pid: Pid, exit: ChildExit, now: Instant) {
        self.read_events(now, true);
        self.host = None;
        let exit = match exit {
            ChildExit::Normal => ChildExit::Exited(0),
            other => other,
        };
        let live: Vec<usize> = (0..self.live.len()).filter(|&n| self.live[n]).collect();
        if exit == ChildExit::Exited(sys::EXIT_PANICKED) {
            tracing::error!(supervisor = %self.machine.path(), pid = pid.as_raw(),
                "worker host panicked outside its workers (e.g. its runtime could not be built); \
                 its panic message is on stderr");
        }
        if live.is_empty() {
            tracing::debug!(supervisor = %self.machine.path(), pid = pid.as_raw(), %exit, "worker host exited");
        } else {
            tracing::warn!(supervisor = %self.machine.path(), pid = pid.as_raw(), %exit, workers = ?live, "worker host died with running workers");
        }
        let host_path = format!("{}/host", self.machine.path());
        self.emit(
            host_path,
            Some(pid),
            EventKind::Exited {
                exit,
                restart: None,
            },
        );
        for n in live {
            self.live[n] = false;
            self.worker_kill_at[n] = None;
            self.machine.handle_exit(n, exit, now);
        }
    }

    fn kill_overdue(&mut self, now: Instant) {
        let overdue = |kill_at: &mut Option<Instant>| {
            let due = kill_at.is_some_and(|t| t <= now);
            if due {
                *kill_at = None;
            }
            due
        };
        for proc in self.procs.iter_mut().flatten() {
            if overdue(&mut proc.kill_at) {
                tracing::warn!(supervisor = %self.machine.path(), pid = proc.pid.as_raw(), "child did not stop in time; killing it");
                sys::send(proc.pid, Signal::SIGKILL);
            }
        }
        let mut stuck_worker = false;
        for kill_at in &mut self.worker_kill_at {
            stuck_worker |= overdue(kill_at);
        }
        if let Some(host) = &mut self.host {
            if stuck_worker {
                tracing::warn!(supervisor = %self.machine.path(), pid = host.pid.as_raw(),
                    "a worker did not stop in time; killing its worker host");
                sys::send(host.pid, Signal::SIGKILL);
            }
            if overdue(&mut host.kill_at) {
                tracing::warn!(supervisor = %self.machine.path(), pid = host.pid.as_raw(), "worker host did not stop in time; killing it");
                sys::send(host.pid, Signal::SIGKILL);
            }
        }
    }
}

/// In a freshly forked child: moves out of `children` what `pick` keeps,
/// by position. The rest (the parent's share of the tree) is forgotten, not
/// dropped: freeing it would run users' destructors in the child and touch
/// (copy) every page of the inherited tree, which made starting a large tree
/// grow faster than linearly. The child ends with `_exit`, so nothing leaks.
fn take_children(
    children: &mut Vec<Child>,
    keep: impl Fn(usize, &Child) -> bool,
) -> Vec<Option<Child>> {
    std::mem::take(children)
        .into_iter()
        .enumerate()
        .map(|(n, child)| {
            if keep(n, &child) {
                Some(child)
            } else {
                std::mem::forget(child);
                None
            }
        })
        .collect()
}

/// Sends the first stop signal `shutdown` asks for; returns when to SIGKILL.
fn terminate(pid: Pid, shutdown: Shutdown, now: Instant) -> Option<Instant> {
    match shutdown.kill_after() {
        Some(Duration::ZERO) => {
            sys::send(pid, Signal::SIGKILL);
            None
        }
        after => {
            sys::send(pid, Signal::SIGTERM);
            after.map(|d| now + d)
        }
    }
}

/// Writes as much of the host's outbox as the pipe takes, without blocking.
fn flush(host: &mut Host) {
    while !host.outbox.is_empty() {
        match sys::write(&host.commands, &host.outbox) {
            Ok(n) => {
                host.outbox.drain(..n);
            }
            Err(_) => break,
        }
    }
}
