//! The part of a supervisor process's loop that deals with lifecycle events
//! ([`Events`]), as its [`Outlet`](super::Outlet) reaches it: in the root
//! process, the root's own ([`Main`]); in a forked supervisor, the relay of
//! its events up the event pipe ([`Relay`]).

use std::sync::Arc;
use std::time::Instant;

use nix::poll::PollFd;

use crate::control::{Answer, Order};
use crate::directory::Directory;
use crate::observe::Observers;
use crate::os::containment::Containment;
use crate::relay::Relay;
use crate::root::Main;
use crate::{Error, Event};

/// The part of a supervisor process's loop that deals with lifecycle
/// events; the loop reaches it through
/// [`Outlet::events`](super::Outlet::events), and calls
/// [`poll_fds`](Self::poll_fds), [`deadline`](Self::deadline) and
/// [`handle`](Self::handle) every turn.
// Always boxed (in `Outlet::Events`): the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Events {
    /// In the root process.
    Main(Main),
    /// In a forked supervisor: readiness and shutdown are the root's
    /// business, so [`tree_ready`](Self::tree_ready) and
    /// [`stopping`](Self::stopping) do nothing here.
    Relay(Relay),
}

impl Events {
    /// The root process's: sets up what `observers` asks for, and systemd
    /// notification when `NOTIFY_SOCKET` is set; the tree starts at `now`.
    pub(crate) fn new(observers: Observers, now: Instant) -> Result<Self, Error> {
        Main::new(observers, now).map(Events::Main)
    }

    /// Shows the limits and usage of `containment`'s subtrees in the
    /// status the root serves, and the traffic counted in `directory`'s
    /// tallies in its figures.
    pub(crate) fn with_readings(
        self,
        containment: Arc<Containment>,
        directory: Arc<Directory>,
    ) -> Self {
        match self {
            Events::Main(main) => Events::Main(main.with_readings(containment, directory)),
            relay => relay,
        }
    }

    /// In a freshly forked child supervisor: what it does with its own
    /// events (`None`: nobody listens). See [`Main::leave_in_child`](crate::root::Main::leave_in_child) and
    /// [`EventSink::for_child`](crate::relay::EventSink::for_child).
    pub(crate) fn leave_in_child(self) -> Option<Events> {
        match self {
            Events::Main(main) => main.leave_in_child(),
            Events::Relay(relay) => relay.for_child(),
        }
        .map(Events::Relay)
    }

    /// Records (in the root) or sends up (in a forked supervisor) an event.
    pub(crate) fn emit(&mut self, event: Event) {
        match self {
            Events::Main(main) => main.emit(event),
            Events::Relay(relay) => relay.send(event),
        }
    }

    /// The whole tree is up (in the root; nothing in a forked supervisor).
    pub(crate) fn tree_ready(&mut self) {
        if let Events::Main(main) = self {
            main.tree_ready();
        }
    }

    /// The tree begins to shut down, or has no work left (in the root;
    /// nothing in a forked supervisor). Called again and again while it
    /// shuts down; acts once.
    pub(crate) fn stopping(&mut self) {
        if let Events::Main(main) = self {
            main.stopping();
        }
    }

    /// The fds the loop must watch for this.
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        match self {
            Events::Main(main) => main.poll_fds(),
            Events::Relay(_) => Vec::new(),
        }
    }

    /// What the poll of [`poll_fds`](Self::poll_fds) found, in their
    /// order (see [`Main::polled`](crate::root::Main::polled)).
    pub(crate) fn polled(&mut self, ready: &dyn Fn(usize) -> bool) {
        if let Events::Main(main) = self {
            main.polled(ready);
        }
    }

    /// When the loop must wake up for this at the latest.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            Events::Main(main) => main.deadline(),
            Events::Relay(relay) => relay.deadline(),
        }
    }

    /// Starts a turn of the loop at `now` and does what is due.
    pub(crate) fn handle(&mut self, now: Instant) {
        match self {
            Events::Main(main) => main.handle(now),
            Events::Relay(relay) => relay.handle(now),
        }
    }

    /// The operators' orders the root's status socket took since the last
    /// call (none in a forked supervisor, which gets its orders from its
    /// parent).
    pub(crate) fn take_orders(&mut self) -> Vec<Order> {
        match self {
            Events::Main(main) => main.take_orders(),
            Events::Relay(_) => Vec::new(),
        }
    }

    /// What an order the root's status socket took came to (nothing in a
    /// forked supervisor, which passes answers to its parent).
    pub(crate) fn answer(&mut self, answer: Answer) {
        if let Events::Main(main) = self {
            main.answer(&answer);
        }
    }

    /// The end of a turn of the loop, or of what must reach the root
    /// before what follows (a fork, a note to the parent): in a forked
    /// supervisor, its events go up the pipe (the root records its own at
    /// once).
    pub(crate) fn end_turn(&mut self) {
        if let Events::Relay(relay) = self {
            relay.end_turn();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::sys;
    use crate::relay::{Decoder, EventSink};
    use crate::root::tests::{slow_root, started};
    use std::time::Duration;

    #[test]
    fn a_forked_supervisor_relays_its_events_and_ignores_the_roots_business() {
        let (root, _log) = slow_root(Duration::ZERO);
        assert!(matches!(
            Events::Main(root).leave_in_child(),
            Some(Events::Relay(_))
        ));
        let (read, write) = sys::pipe().expect("a pipe");
        let mut relay = Events::Relay(Relay::new(EventSink::new(write), Instant::now()));
        relay.tree_ready();
        relay.stopping();
        relay.emit(started(1));
        relay.handle(Instant::now());
        relay.end_turn();
        assert!(relay.poll_fds().is_empty());
        assert_eq!(relay.deadline(), None);
        let mut buf = [0u8; 512];
        let n = nix::unistd::read(&read, &mut buf).expect("the event");
        let mut decoder = Decoder::default();
        decoder.push(&buf[..n]);
        assert_eq!(decoder.next_event(), Some(started(1)));
        assert_eq!(decoder.next_event(), None);
    }
}
