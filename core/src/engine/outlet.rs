//! Where a supervisor process's lifecycle events go: nowhere, up the event
//! pipe to the root, or (in the root itself) straight into its status and
//! the user's callback.

use super::events::EventSink;
use super::root::Root;
use crate::Event;

/// Where a supervisor's lifecycle events go.
pub(crate) enum Outlet {
    /// Nobody asked for them.
    Quiet,
    /// Up the event pipe to the root.
    Pipe(EventSink),
    /// This is the root.
    Root(Box<Root>),
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
            Outlet::Pipe(sink) => sink.send(&event()),
            Outlet::Root(root) => root.emit(event()),
        }
    }

    /// The root's own state, in the root.
    pub(crate) fn root(&mut self) -> Option<&mut Root> {
        match self {
            Outlet::Root(root) => Some(root),
            _ => None,
        }
    }

    /// In a freshly forked child supervisor: where its own events go. This
    /// outlet is left quiet; the root's state stays the root's (see
    /// [`Root::leave_in_child`]).
    pub(crate) fn take_for_child(&mut self) -> Outlet {
        match std::mem::replace(self, Outlet::Quiet) {
            Outlet::Quiet => Outlet::Quiet,
            Outlet::Pipe(sink) => Outlet::Pipe(sink),
            Outlet::Root(root) => root.leave_in_child().map_or(Outlet::Quiet, Outlet::Pipe),
        }
    }
}
