//! What only the root process does besides supervising: gather the tree's
//! lifecycle events into a [`TreeStatus`], hand them to the user's callbacks,
//! serve the status socket, and talk to systemd.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::fcntl::FcntlArg;
use nix::poll::PollFd;

use super::events::{Decoder, EventSink};
use super::status_socket::StatusServer;
use super::sys;
use super::systemd::Notifier;
use crate::observe::Observed;
use crate::tree::Observers;
use crate::{Error, Event};

/// The pipe size the root asks for, so a burst of events (a whole tree
/// starting) fits while the root catches up. Best effort.
const EVENT_PIPE_SIZE: i32 = 1 << 20;
/// The most bytes read off the event pipe per turn of the root's loop.
const READ_CHUNK: usize = 16 << 10;
/// The most events handled per turn of the root's loop.
const EVENTS_PER_TURN: usize = 256;

pub(crate) struct Root {
    observed: Observed,
    /// The event pipe: read end, and the write end forked supervisors take.
    events: Option<(OwnedFd, OwnedFd)>,
    decoder: Decoder,
    server: Option<StatusServer>,
    notifier: Option<Notifier>,
    next_watchdog: Option<Instant>,
    /// Whether systemd has been told `STOPPING=1`.
    told_stopping: bool,
    /// The time of the current turn of the root's loop, as its timer read
    /// it: given to [`new`](Self::new), then to [`handle`](Self::handle)
    /// once per turn, before any event of that turn is emitted. Events are
    /// recorded at it; nothing here reads a clock.
    now: Instant,
}

impl Root {
    /// Sets up what `observers` asks for, and systemd notification when
    /// `NOTIFY_SOCKET` is set; the tree starts at `now`.
    pub(crate) fn new(observers: Observers, now: Instant) -> Result<Self, Error> {
        let wants_events = observers.on_event.is_some() || observers.status_socket.is_some();
        let events = if wants_events {
            let (read, write) = sys::pipe().map_err(|errno| Error::Os {
                context: "creating the event pipe",
                source: errno.into(),
            })?;
            // Best effort: the default 64 KiB works, only sooner full.
            let _ = nix::fcntl::fcntl(&write, FcntlArg::F_SETPIPE_SZ(EVENT_PIPE_SIZE));
            Some((read, write))
        } else {
            None
        };
        let server = match &observers.status_socket {
            Some(path) => Some(StatusServer::bind(path).map_err(|source| Error::Os {
                context: "creating the status socket",
                source,
            })?),
            None => None,
        };
        let notifier = Notifier::from_env();
        let next_watchdog = notifier
            .as_ref()
            .and_then(Notifier::watchdog_interval)
            .map(|_| now);
        Ok(Self {
            observed: Observed::new(observers, std::process::id(), now),
            events,
            decoder: Decoder::default(),
            server,
            notifier,
            next_watchdog,
            told_stopping: false,
            now,
        })
    }

    /// In a freshly forked child supervisor: the write end of the event pipe
    /// for its own events. The rest is the root's: the status server's fds
    /// are closed (its `Drop` leaves the socket file to the process that
    /// made it), and the rest is forgotten: no user destructor runs in the
    /// child, and no heap page shared with the root is written (copied) just
    /// to free it.
    pub(crate) fn leave_in_child(self) -> Option<EventSink> {
        let Root {
            observed,
            events,
            decoder,
            server,
            notifier,
            next_watchdog: _,
            told_stopping: _,
            now: _,
        } = self;
        observed.forget();
        std::mem::forget((decoder, notifier));
        drop(server);
        events.map(|(read, write)| {
            drop(read);
            EventSink::new(write)
        })
    }

    /// Records an event of the root's own children, or one read off the
    /// pipe, at the time of the current turn.
    pub(crate) fn emit(&mut self, event: Event) {
        self.observed.event(&event, self.now);
    }

    /// The whole tree is up.
    pub(crate) fn tree_ready(&mut self) {
        if let Some(n) = &mut self.notifier {
            n.notify("READY=1");
        }
        self.observed.ready();
    }

    /// The tree is shutting down, or has no work left: tells systemd once.
    pub(crate) fn stopping(&mut self) {
        if let Some(n) = &mut self.notifier {
            if !std::mem::replace(&mut self.told_stopping, true) {
                n.notify("STOPPING=1");
            }
        }
    }

    /// The fds the root's poll loop must watch for this.
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds: Vec<PollFd<'_>> = self
            .events
            .iter()
            .map(|(read, _)| sys::readable(read.as_fd()))
            .collect();
        if let Some(server) = &self.server {
            fds.extend(server.poll_fds());
        }
        fds
    }

    /// When the root's poll loop must wake up for this at the latest.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let server = self.server.as_ref().and_then(StatusServer::next_deadline);
        // Events left over from the last turn: come back at once (this
        // turn's time has passed already).
        let backlog = (self.decoder.pending() > 0).then_some(self.now);
        server
            .into_iter()
            .chain(self.next_watchdog)
            .chain(backlog)
            .min()
    }

    /// Starts a turn of the root's loop at `now` and does what is due:
    /// reads events, serves status requests, pings the watchdog.
    pub(crate) fn handle(&mut self, now: Instant) {
        self.now = now;
        self.observed.advance(now);
        self.read_events();
        if let Some(server) = &mut self.server {
            let status = self.observed.status();
            server.handle(now, &mut || status.to_string());
        }
        if let (Some(at), Some(n)) = (self.next_watchdog, &mut self.notifier) {
            if at <= now {
                n.notify("WATCHDOG=1");
                self.next_watchdog = n.watchdog_interval().map(|i| now + i);
            }
        }
    }

    /// Reads what the pipe holds and hands at most [`EVENTS_PER_TURN`]
    /// events to the callback, so a slow callback or a flood of events can
    /// not keep the root from its own work (signals, its children).
    fn read_events(&mut self) {
        let Some((read, _)) = &self.events else {
            return;
        };
        if self.decoder.pending() < READ_CHUNK {
            let mut chunk = [0u8; READ_CHUNK];
            if let Ok(n) = nix::unistd::read(read, &mut chunk) {
                self.decoder.push(&chunk[..n]);
            }
        }
        for _ in 0..EVENTS_PER_TURN {
            match self.decoder.next_event() {
                Some(event) => self.emit(event),
                None => break,
            }
        }
    }
}
