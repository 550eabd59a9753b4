//! The supervisor state machine: every restart decision is made here.
//!
//! Sans-IO, in the manner of quinn-proto: the machine owns one supervisor's
//! view of its children and their restart history, takes events with the time
//! they happened (`handle_*`), and hands back what to do (`poll_action`,
//! `poll_timeout`). It never reads a clock, forks, or sleeps. The simulation
//! ([`crate::testing`]) and the process engine ([`crate::engine`]) are thin
//! drivers around it, so a timeline proven in simulation holds in processes.
//!
//! Call order for a driver: `handle_start` once; then, after every
//! `handle_exit`/`handle_timeout`/`handle_shutdown`, drain `poll_action` and
//! sleep until `poll_timeout` (or the next child exit).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

mod child;

pub(crate) use child::{ChildPolicy, ChildRecord};

use crate::policy::RestartHistory;
use crate::{ChildExit, Intensity, Strategy};

/// What a driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start (or restart) child `n`.
    Start(usize),
    /// Stop child `n`, then report its exit with `handle_exit`.
    Stop(usize),
    /// Every child has stopped: the supervisor ends with this outcome.
    Exit(Outcome),
}

/// What the machine decided, for the lifecycle events a driver reports
/// (starts are reported by the driver itself, which knows the pids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Child `child` exited with `exit`; it runs again after `restart`, or
    /// not at all (`None`).
    Exited {
        child: usize,
        exit: ChildExit,
        restart: Option<Duration>,
    },
    /// Child `child` declared itself ready.
    ChildReady(usize),
    /// Every child is ready (or done): the supervisor is up. Once.
    Ready,
    /// The supervisor stops all its children, with this outcome.
    Stopping(Outcome),
}

/// How a supervisor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its work is done, or it was asked to shut down.
    Normal,
    /// Its restart intensity was exceeded.
    GaveUp,
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
    /// Asked to stop; its exit is awaited.
    Stopping,
    /// OneForOne restart due at this time.
    Waiting {
        at: Instant,
    },
    /// Stopped (or exited) as part of a group restart, to start with the group.
    Pending,
    /// Finished for good.
    Done,
}

#[derive(Debug)]
struct ChildSlot {
    record: ChildRecord,
    state: State,
    /// Whether its current run declared itself ready.
    ready: bool,
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
#[derive(Debug)]
pub(crate) struct Machine {
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
}

impl Machine {
    pub(crate) fn new(
        path: String,
        children: impl IntoIterator<Item = ChildPolicy>,
        strategy: Strategy,
        intensity: Intensity,
    ) -> Self {
        Self {
            path,
            children: children
                .into_iter()
                .map(|policy| ChildSlot {
                    record: ChildRecord::new(policy),
                    state: State::Idle,
                    ready: false,
                })
                .collect(),
            strategy,
            intensity,
            history: RestartHistory::default(),
            group: None,
            phase: Phase::Created,
            actions: VecDeque::new(),
            reports: VecDeque::new(),
            ready: false,
        }
    }

    /// The supervisor's path in the tree, e.g. `root/1/0`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The intensity this supervisor applies.
    pub(crate) fn intensity(&self) -> Intensity {
        self.intensity
    }

    /// Whether the supervisor is stopping all its children for good.
    pub(crate) fn is_shutting_down(&self) -> bool {
        matches!(self.phase, Phase::ShuttingDown(_))
    }

    /// Starts every child, in order.
    pub(crate) fn handle_start(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Created) {
            return;
        }
        self.phase = Phase::Running;
        for n in 0..self.children.len() {
            self.start_child(n, now, false);
        }
        self.after_event(now);
    }

    /// Child `n` declared itself ready at `now`.
    pub(crate) fn handle_ready(&mut self, n: usize, now: Instant) {
        let Some(child) = self.children.get_mut(n) else {
            return;
        };
        if matches!(child.state, State::Running { .. }) && !child.ready {
            child.ready = true;
            self.reports.push_back(Report::ChildReady(n));
            self.after_event(now);
        }
    }

    /// Child `n` exited with `exit` at `now`.
    pub(crate) fn handle_exit(&mut self, n: usize, exit: ChildExit, now: Instant) {
        let Some(child) = self.children.get(n) else {
            tracing::warn!(supervisor = %self.path, child = n, "exit of an unknown child ignored");
            return;
        };
        match child.state {
            State::Stopping => self.stopped(n, exit, now),
            State::Running { since } => {
                self.exited(n, exit, now, now.saturating_duration_since(since))
            }
            state => {
                tracing::debug!(supervisor = %self.path, child = n, ?state, "exit of a child that was not running ignored");
            }
        }
        self.after_event(now);
    }

    /// Child `n` exited with `exit` at `now` and was started again in place
    /// by its worker host, which applied [`ChildRecord::restart_delay`] to a
    /// `OneForOne` worker: the restart counts here, towards the intensity.
    pub(crate) fn handle_restarted(
        &mut self,
        n: usize,
        exit: ChildExit,
        delay: Duration,
        now: Instant,
    ) {
        let running = matches!(self.phase, Phase::Running)
            && matches!(
                self.children.get(n).map(|c| c.state),
                Some(State::Running { .. })
            );
        if !running {
            return;
        }
        self.children[n].record.restarted();
        self.children[n].state = State::Running { since: now };
        self.children[n].ready = false;
        let gives_up = self.history.record(&self.intensity, now);
        self.reports.push_back(Report::Exited {
            child: n,
            exit,
            restart: Some(delay).filter(|_| !gives_up),
        });
        if gives_up {
            // The worker still runs in its host: it is stopped with the others.
            self.give_up(n, exit);
        } else {
            tracing::debug!(supervisor = %self.path, child = n, %exit, "worker exited; its host restarted it");
        }
        self.after_event(now);
    }

    /// Time has reached `now`: start the restarts that are due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.after_event(now);
    }

    /// Stops every child in reverse order, then exits normally.
    pub(crate) fn handle_shutdown(&mut self, now: Instant) {
        self.shut_down(Outcome::Normal);
        self.after_event(now);
    }

    /// The next decision to report, if any.
    #[must_use]
    pub(crate) fn poll_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    /// The next thing to do, if any.
    #[must_use]
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `handle_timeout` must be called next, if a restart is scheduled.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if !matches!(self.phase, Phase::Running) {
            return None;
        }
        let waiting = self.children.iter().filter_map(|c| match c.state {
            State::Waiting { at } => Some(at),
            _ => None,
        });
        let group = self
            .group
            .as_ref()
            .filter(|g| self.group_stopped(g))
            .map(|g| g.at);
        waiting.chain(group).min()
    }

    /// Whether children start one at a time, each once the one before is
    /// ready (OTP's synchronous start): where a failure restarts siblings.
    fn starts_in_order(&self) -> bool {
        self.strategy != Strategy::OneForOne
    }

    fn start_child(&mut self, n: usize, now: Instant, restart: bool) {
        if self.starts_in_order() {
            self.children[n].state = State::Queued { restart };
            return;
        }
        self.launch(n, now, restart);
    }

    fn launch(&mut self, n: usize, now: Instant, restart: bool) {
        let child = &mut self.children[n];
        if restart {
            child.record.restarted();
        }
        child.state = State::Running { since: now };
        child.ready = false;
        self.actions.push_back(Action::Start(n));
    }

    /// Starts queued children in order, each once every earlier sibling is
    /// ready or done.
    fn start_queued(&mut self, now: Instant) {
        for n in 0..self.children.len() {
            match self.children[n].state {
                State::Queued { restart } => {
                    self.launch(n, now, restart);
                    return;
                }
                State::Running { .. } | State::Stopping if !self.children[n].ready => return,
                _ => {}
            }
        }
    }

    /// Issues `Report::Ready` the first time every child is ready or done.
    fn check_ready(&mut self) {
        let up = self.children.iter().all(|c| {
            c.state == State::Done || (matches!(c.state, State::Running { .. }) && c.ready)
        });
        if up && !self.ready {
            self.ready = true;
            self.reports.push_back(Report::Ready);
        }
    }

    /// A running child exited on its own.
    fn exited(&mut self, n: usize, exit: ChildExit, now: Instant, ran_for: Duration) {
        let child = &mut self.children[n];
        let shutting_down = !matches!(self.phase, Phase::Running);
        let delay = if shutting_down {
            None
        } else {
            child.record.restart_delay(&exit, ran_for)
        };
        let gives_up = delay.is_some() && self.history.record(&self.intensity, now);
        self.reports.push_back(Report::Exited {
            child: n,
            exit,
            restart: delay.filter(|_| !gives_up),
        });
        if gives_up {
            self.children[n].state = State::Done;
            self.give_up(n, exit);
            return;
        }
        let Some(delay) = delay else {
            let child = &mut self.children[n];
            child.state = State::Done;
            if !shutting_down {
                tracing::info!(supervisor = %self.path, child = n, %exit, restart_policy = ?child.record.policy.restart,
                    "child exited and will not be restarted");
            }
            if let Some(g) = self.group.as_mut() {
                g.members.remove(&n);
            }
            return;
        };
        tracing::info!(supervisor = %self.path, child = n, %exit, delay = ?delay, "child exited; restarting after delay");
        let at = now + delay;
        let affected = self.strategy.affected(n, self.children.len());
        if affected.len() == 1 && self.strategy == Strategy::OneForOne {
            self.children[n].state = State::Waiting { at };
            return;
        }
        self.children[n].state = State::Pending;
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
                    State::Running { .. } | State::Stopping | State::Pending
                )
            {
                group.members.insert(m);
            }
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

    /// What a worker host needs to restart workers in place: the restart
    /// record of each child it may restart (a worker, under `OneForOne`, by
    /// position; `None` for the others) and the restart history.
    pub(crate) fn delegation(&self) -> (Vec<Option<ChildRecord>>, RestartHistory) {
        let records = self
            .children
            .iter()
            .map(|child| {
                (self.strategy == Strategy::OneForOne && !child.record.policy.is_supervisor)
                    .then_some(child.record)
            })
            .collect();
        (records, self.history.clone())
    }

    /// A child we asked to stop has exited.
    fn stopped(&mut self, n: usize, exit: ChildExit, now: Instant) {
        let in_group = matches!(self.phase, Phase::Running)
            && self.group.as_ref().is_some_and(|g| g.members.contains(&n));
        let child = &mut self.children[n];
        let record = &child.record;
        let again = in_group && record.policy.restart.allows_another_run(record.restarts);
        child.state = if again {
            State::Pending
        } else {
            if let Some(g) = self.group.as_mut() {
                g.members.remove(&n);
            }
            State::Done
        };
        let restart = match &self.group {
            Some(g) if again => Some(g.at.saturating_duration_since(now)),
            _ => None,
        };
        self.reports.push_back(Report::Exited {
            child: n,
            exit,
            restart,
        });
    }

    fn shut_down(&mut self, outcome: Outcome) {
        match self.phase {
            Phase::Running | Phase::Created => {}
            Phase::ShuttingDown(_) | Phase::Exited => return,
        }
        tracing::info!(supervisor = %self.path, ?outcome, "stopping all children in reverse order");
        self.phase = Phase::ShuttingDown(outcome);
        self.reports.push_back(Report::Stopping(outcome));
        self.group = None;
        for child in &mut self.children {
            if matches!(
                child.state,
                State::Waiting { .. } | State::Pending | State::Idle | State::Queued { .. }
            ) {
                child.state = State::Done;
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
                self.stop_next(|m, this| {
                    this.group.as_ref().is_some_and(|g| g.members.contains(&m))
                });
                let due: Vec<usize> = (0..self.children.len())
                    .filter(
                        |&n| matches!(self.children[n].state, State::Waiting { at } if at <= now),
                    )
                    .collect();
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
                self.check_done();
            }
            Phase::ShuttingDown(outcome) => {
                self.stop_next(|_, _| true);
                if self
                    .children
                    .iter()
                    .all(|c| matches!(c.state, State::Done | State::Idle))
                {
                    self.phase = Phase::Exited;
                    self.actions.push_back(Action::Exit(outcome));
                }
            }
            Phase::Created | Phase::Exited => {}
        }
    }

    /// Stops the last running child chosen by `wanted`, unless a stop is
    /// already under way: children stop one at a time, in reverse order.
    fn stop_next(&mut self, wanted: impl Fn(usize, &Self) -> bool) {
        if self.children.iter().any(|c| c.state == State::Stopping) {
            return;
        }
        let next = (0..self.children.len())
            .rev()
            .find(|&m| matches!(self.children[m].state, State::Running { .. }) && wanted(m, self));
        if let Some(m) = next {
            self.children[m].state = State::Stopping;
            self.actions.push_back(Action::Stop(m));
        }
    }

    fn check_done(&mut self) {
        if matches!(self.phase, Phase::Running)
            && self.children.iter().all(|c| c.state == State::Done)
        {
            tracing::debug!(supervisor = %self.path, "no child runs or will restart; done");
            self.phase = Phase::Exited;
            self.actions.push_back(Action::Exit(Outcome::Normal));
        }
    }
}

#[cfg(test)]
mod tests;
