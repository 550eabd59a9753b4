//! Where a supervisor process's lifecycle events go: nowhere, or to the
//! part of its loop that deals with them ([`Events`]): in the root process,
//! straight into its status and the user's callback (`crate::root`); in a
//! forked supervisor, up the event pipe to the root (`crate::relay`).

use super::events::Events;
use crate::Event;

/// Where a supervisor's lifecycle events go.
pub(crate) enum Outlet {
    /// Nobody asked for them.
    Quiet,
    /// To the root's status and callbacks ([`Events::Main`]), or up the event
    /// pipe ([`Events::Relay`]): either takes part in the loop (see
    /// [`events`](Self::events)).
    Events(Box<Events>),
}

impl Outlet {
    /// Whether events are wanted at all (so building one is worth it).
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(self, Outlet::Quiet)
    }

    /// Sends the event `event` builds, if anyone listens.
    pub(crate) fn emit(&mut self, event: impl FnOnce() -> Event) {
        match self {
            Outlet::Quiet => {}
            Outlet::Events(root) => root.emit(event()),
        }
    }

    /// The part of this process's loop that deals with events, if anyone
    /// listens: the root's state in the root process; in a forked
    /// supervisor, the relay of its events up the pipe, which has fds and a
    /// deadline too (events that found the pipe full are sent later) and
    /// ignores the root's business ([`Events::tree_ready`],
    /// [`Events::stopping`]).
    pub(crate) fn events(&mut self) -> Option<&mut Events> {
        match self {
            Outlet::Events(root) => Some(root),
            Outlet::Quiet => None,
        }
    }

    /// This supervisor is stopping all its children for good: in the root,
    /// the tree stops (see [`Events::stopping`]).
    pub(crate) fn stopping(&mut self) {
        if let Some(events) = self.events() {
            events.stopping();
        }
    }

    /// In a freshly forked child supervisor: where its own events go. This
    /// outlet is left quiet; the root's state stays the root's, and events
    /// the parent had waiting stay the parent's (see
    /// [`Events::leave_in_child`]).
    pub(crate) fn take_for_child(&mut self) -> Outlet {
        match std::mem::replace(self, Outlet::Quiet) {
            Outlet::Quiet => Outlet::Quiet,
            Outlet::Events(root) => root
                .leave_in_child()
                .map_or(Outlet::Quiet, |relay| Outlet::Events(Box::new(relay))),
        }
    }
}
