//! What a supervisor process tells the world: lifecycle events to the root,
//! readiness to its parent.

use nix::unistd::Pid;

use super::{Outlet, View};
use crate::channel::Channel;
use crate::machine::{ChildIdx, Report, Subject};
use crate::wire::Note;
use crate::{Event, EventKind};

impl View<'_> {
    /// The path of child `child` in events: `<supervisor>/<index>`, and
    /// for a child started at run time `<supervisor>/<template>#<id>`.
    pub(super) fn child_path(&self, child: ChildIdx) -> String {
        let path = self.machine.path();
        match self.dynamic.get(child) {
            Some(started) => {
                let template = self
                    .sup
                    .templates
                    .get(started.template as usize)
                    .map_or("?", |t| t.name.as_str());
                format!("{path}/{template}#{}", started.id)
            }
            None => self.sup.child_path(path, child.get()),
        }
    }

    /// The paths of `children`, for a log line: `root/1/0, root/1/conn#7`.
    pub(super) fn paths(&self, children: &[ChildIdx]) -> String {
        let paths: Vec<String> = children.iter().map(|&c| self.child_path(c)).collect();
        paths.join(", ")
    }
}

/// What a supervisor tells the world: where its lifecycle events go, and
/// (in a forked supervisor) its parent.
pub(super) struct Reporter {
    pub(super) outlet: Outlet,
    /// The channel to the parent supervisor, in a forked supervisor.
    pub(super) parent: Option<Channel>,
    /// This supervisor is ready and its parent has not been told yet.
    ready_unsent: bool,
}

impl Reporter {
    pub(super) fn new(outlet: Outlet) -> Self {
        Self {
            outlet,
            parent: None,
            ready_unsent: false,
        }
    }

    /// Sends a lifecycle event about `path` to the root, if anyone listens.
    pub(super) fn emit(&mut self, path: String, pid: Option<Pid>, kind: EventKind) {
        self.outlet
            .emit(|| Event::new(path, pid.and_then(|p| u32::try_from(p.as_raw()).ok()), kind));
    }

    /// Sends a lifecycle event about child `child`.
    pub(super) fn emit_child(
        &mut self,
        view: &View<'_>,
        child: ChildIdx,
        pid: Option<Pid>,
        kind: EventKind,
    ) {
        if !self.outlet.is_quiet() {
            let path = view.child_path(child);
            self.emit(path, pid, kind);
        }
    }

    /// Turns one of the machine's decisions into a lifecycle event, and
    /// passes this supervisor's readiness up.
    pub(super) fn report(&mut self, report: &Report, view: &View<'_>) {
        // The event first: it is in the pipe to the root before the
        // parent learns of the readiness, so the status shows every node
        // ready by the time the root is.
        self.emit_report(report, view);
        match report {
            Report::Ready => self.ready(view.machine.path()),
            Report::Stopping(_) => {
                if let Some(events) = self.outlet.events() {
                    events.stopping();
                }
            }
            _ => {}
        }
    }

    fn emit_report(&mut self, report: &Report, view: &View<'_>) {
        if self.outlet.is_quiet() {
            return;
        }
        let Some((subject, kind)) = view.machine.event(report) else {
            return;
        };
        match subject {
            Subject::Supervisor => {
                let path = view.machine.path().to_owned();
                self.emit(path, Some(Pid::this()), kind);
            }
            Subject::Child(child) => {
                // A worker's pid is its host's, while it runs there: after
                // an in-place restart, or when it is ready.
                let in_host = match &kind {
                    EventKind::Exited { restart, .. } => restart.is_some() && view.host.runs(child),
                    EventKind::Removed => false,
                    _ => true,
                };
                let pid = if view.is_worker[child.get()] && in_host {
                    view.host.pid()
                } else {
                    None
                };
                self.emit_child(view, child, pid, kind);
            }
        }
    }

    /// Every child of this supervisor (at `path`) is ready.
    fn ready(&mut self, path: &str) {
        tracing::debug!(supervisor = %path, "supervisor ready");
        if let Some(events) = self.outlet.events() {
            events.tree_ready();
        }
        self.ready_unsent = true;
        self.tell_parent_ready(path);
    }

    /// Sends this turn's events up the pipe, in a forked supervisor (see
    /// [`Events::end_turn`](super::events::Events::end_turn)).
    pub(super) fn events_out(&mut self) {
        if let Some(events) = self.outlet.events() {
            events.end_turn();
        }
    }

    /// Tells the parent that every child of this supervisor (at `path`) is
    /// ready, once its events (its own `Ready` among them) are all in the
    /// pipe to the root: until then, it waits (see `Node::wait`).
    pub(super) fn tell_parent_ready(&mut self, path: &str) {
        if !self.ready_unsent {
            return;
        }
        self.events_out();
        if self.outlet.events().is_some_and(|e| e.deadline().is_some()) {
            return;
        }
        self.ready_unsent = false;
        if let Some(parent) = &mut self.parent {
            if let Err(err) = parent.send(&Note::Ready) {
                tracing::warn!(supervisor = %path, %err, "could not report readiness to the parent");
            }
        }
    }
}
