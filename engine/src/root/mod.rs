//! The root process's own part of its loop, besides supervising ([`Main`]):
//! gather the tree's events (its own children's, and those the forked
//! supervisors relay up the event pipe, see [`crate::relay`]) into a
//! [`TreeStatus`](crate::TreeStatus), hand them to the user's callbacks a
//! few per turn, serve the status socket ([`status_socket`]), and talk to
//! systemd ([`systemd`]). Also the root's before anything is forked: the
//! tree's listeners, bound ([`listeners`]).
//!
//! The supervisor's loop reaches [`Main`] through its outlet
//! (`crate::supervisor::Outlet`, as `Events::Main`).

mod figures;
pub(crate) mod listeners;
pub(crate) mod status_socket;
pub(crate) mod systemd;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::FcntlArg;
use nix::poll::{PollFd, PollFlags};

use crate::control::{Answer, Order};
use crate::directory::Directory;
use crate::observe::{Observed, Observers, QUEUE_CAPACITY};
use crate::os::containment::Containment;
use crate::os::sys;
use crate::relay::{Decoder, EventSink, Relay};
use crate::{Error, Event};
use figures::Publisher;
use status_socket::{StatusServer, View};
use systemd::Notifier;

/// The pipe size the root asks for, so a burst of events (a whole tree
/// starting) fits while the root catches up. Best effort.
const EVENT_PIPE_SIZE: i32 = 1 << 20;
/// The size of one read off the event pipe.
const READ_CHUNK: usize = 16 << 10;
/// The most bytes read off the event pipe per turn of the root's loop.
/// Folding an event into the status is cheap (a microsecond or so), and the
/// callbacks are queued, so a turn takes a lot: the pipe's backlog stays
/// small and the status current.
const READ_PER_TURN: usize = 256 << 10;
/// The most bytes read off the event pipe once the tree has ended.
const READ_AT_END: usize = 4 << 20;
/// How long the user's callbacks may run per turn of the root's loop; one
/// call is made per turn however long it takes.
const CALLBACK_BUDGET: Duration = Duration::from_millis(5);
/// How many of the events still waiting for the callback are kept once the
/// tree has ended: the newest (its end among them); older ones are dropped
/// and counted.
const EVENTS_KEPT_AT_END: usize = 64;
/// How long the callbacks still waiting may run once the tree has ended;
/// the events left then are dropped and counted.
const CALLBACK_BUDGET_AT_END: Duration = Duration::from_secs(1);

/// What only the root process does besides supervising.
pub(crate) struct Main {
    /// The status and the user's callbacks, which wait in a bounded queue
    /// and are made a few per turn.
    observed: Observed,
    /// The event pipe: read end, and the write end forked supervisors take.
    events: Option<(OwnedFd, OwnedFd)>,
    decoder: Decoder,
    server: Option<StatusServer>,
    notifier: Option<Notifier>,
    next_watchdog: Option<Instant>,
    /// Whether the tree is stopping (its listeners stopped, systemd told
    /// `STOPPING=1`).
    stopping: bool,
    /// The limited subtrees, whose limits and usage the status shows.
    usage: Option<Arc<Containment>>,
    /// The tree's mailboxes, whose tallies the figures show.
    directory: Option<Arc<Directory>>,
    /// Where the figures go, and when.
    figures: Publisher,
    /// How many events were recorded so far.
    recorded: u64,
    /// The time of the current turn of the root's loop, as its timer read
    /// it: given to [`new`](Self::new), then to [`handle`](Self::handle)
    /// once per turn, before any event of that turn is emitted. Events are
    /// recorded at it. The only clock read here is the monotonic one that
    /// measures how long the user's callbacks run.
    now: Instant,
}

impl Main {
    /// Sets up what `observers` asks for, and systemd notification when
    /// `NOTIFY_SOCKET` is set; the tree starts at `now`.
    pub(crate) fn new(observers: Observers, now: Instant) -> Result<Self, Error> {
        // `on_ready` is given the status, and the figures are kept, folded
        // from the events.
        let wants_events = observers.on_event.is_some()
            || observers.keep_figures()
            || observers.on_ready.is_some();
        let events = if wants_events {
            let (read, write) =
                sys::pipe().map_err(|errno| Error::os("creating the event pipe", errno.into()))?;
            // Best effort: the default 64 KiB works, only sooner full.
            let _ = nix::fcntl::fcntl(&write, FcntlArg::F_SETPIPE_SZ(EVENT_PIPE_SIZE));
            Some((read, write))
        } else {
            None
        };
        let server = match &observers.status_socket {
            Some(path) => Some(
                StatusServer::bind(path)
                    .map_err(|source| Error::os("creating the status socket", source))?,
            ),
            None => None,
        };
        let figures = Publisher::new(observers.metrics, now);
        let notifier = Notifier::from_env();
        let next_watchdog = notifier
            .as_ref()
            .and_then(Notifier::watchdog_interval)
            .map(|_| now);
        Ok(Self {
            observed: Observed::queued(observers, std::process::id(), now, QUEUE_CAPACITY),
            events,
            decoder: Decoder::default(),
            server,
            notifier,
            next_watchdog,
            stopping: false,
            usage: None,
            directory: None,
            figures,
            recorded: 0,
            now,
        })
    }

    /// Shows the limits and usage of `containment`'s subtrees in the
    /// status the root serves, and the traffic counted in `directory`'s
    /// tallies in its figures.
    pub(crate) fn with_readings(
        mut self,
        containment: Arc<Containment>,
        directory: Arc<Directory>,
    ) -> Self {
        self.usage = Some(containment);
        self.directory = Some(directory);
        self
    }

    /// In a freshly forked child supervisor: the write end of the event pipe
    /// for its own events. The rest is the root's: the status server's fds
    /// are closed (its `Drop` leaves the socket file to the process that
    /// made it), and the rest is forgotten: no user destructor or callback
    /// runs in the child (the root's `Drop` does not either), and no heap
    /// page shared with the root is written (copied) just to free it.
    pub(crate) fn leave_in_child(mut self) -> Option<Relay> {
        let events = self.events.take();
        drop(self.server.take());
        let now = self.now;
        std::mem::forget(self);
        events.map(|(read, write)| {
            drop(read);
            Relay::new(EventSink::new(write), now)
        })
    }

    /// Records an event of the root's own children, or one read off the
    /// pipe, at the time of the current turn: in the status at once, for
    /// the callback in its queue, and for the status socket's watchers.
    pub(crate) fn emit(&mut self, event: Event) {
        self.recorded += 1;
        record(&mut self.observed, &mut self.server, event, self.now);
    }

    /// The whole tree is up. Every supervisor wrote its `Ready` event
    /// before it told its parent: what the pipe holds is read first, so
    /// the status `on_ready` gets (and the one served when systemd hears
    /// `READY=1`) shows every node ready.
    pub(crate) fn tree_ready(&mut self) {
        self.read_events(READ_AT_END);
        if let Some(n) = &mut self.notifier {
            n.notify("READY=1");
        }
        self.observed.ready();
    }

    /// The tree begins to shut down, or has no work left: once, its
    /// listeners stop taking connections and systemd is told.
    pub(crate) fn stopping(&mut self) {
        if std::mem::replace(&mut self.stopping, true) {
            return;
        }
        crate::listen::tree_stops();
        if let Some(n) = &mut self.notifier {
            n.notify("STOPPING=1");
        }
    }

    /// The root's own fds of [`poll_fds`](Self::poll_fds) (the event
    /// pipe's), before the status server's.
    fn own_fds(&self) -> impl Iterator<Item = PollFd<'_>> {
        let pipe = self.events.as_ref();
        let read = pipe.map(|(read, _)| sys::readable(read.as_fd()));
        // Callbacks are due, so the loop must come back at once, yet still
        // poll (to learn what else is ready): the pipe is either not full
        // (its write end is writable) or holds events (its read end is
        // readable), so one of the two is always ready.
        let write = pipe
            .filter(|_| self.observed.has_pending())
            .map(|(_, write)| PollFd::new(write.as_fd(), PollFlags::POLLOUT));
        read.into_iter().chain(write)
    }

    /// What the poll of [`poll_fds`](Self::poll_fds) found (`ready(n)`:
    /// the `n`-th had events), called before anything else of this turn:
    /// the status server accepts a client only when its listener was
    /// readable.
    pub(crate) fn polled(&mut self, ready: &dyn Fn(usize) -> bool) {
        let own = self.own_fds().count();
        if let Some(server) = &mut self.server {
            server.polled(&|n| ready(own + n));
        }
    }

    /// The fds the root's poll loop must watch for this.
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds: Vec<PollFd<'_>> = self.own_fds().collect();
        if let Some(server) = &self.server {
            fds.extend(server.poll_fds());
        }
        fds
    }

    /// When the root's poll loop must wake up for this at the latest.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let server = self.server.as_ref().and_then(StatusServer::next_deadline);
        // Callbacks due without an event pipe to poll (only `on_ready` was
        // asked for): come back at once.
        let due = (self.events.is_none() && self.observed.has_pending()).then_some(self.now);
        server
            .into_iter()
            .chain(self.next_watchdog)
            .chain(self.figures.deadline())
            .chain(due)
            .min()
    }

    /// Starts a turn of the root's loop at `now` and does what is due:
    /// reads events into the status, serves status requests, pings the
    /// watchdog, then makes the waiting callbacks for up to
    /// [`CALLBACK_BUDGET`] (at least one call), so that the loop gets back
    /// to its signals and children soon whatever the callbacks do.
    pub(crate) fn handle(&mut self, now: Instant) {
        self.now = now;
        self.observed.advance(now);
        self.read_events(READ_PER_TURN);
        // The cgroups' files are read at most once per turn, when the
        // status or the figures need them, not every turn.
        let mut read = false;
        if let Some(server) = &mut self.server {
            let (observed, usage) = (&mut self.observed, &self.usage);
            let (figures, directory) = (&mut self.figures, self.directory.as_deref());
            let recorded = self.recorded;
            // Rendered once per turn however many clients ask in it (the
            // status of 100 000 nodes takes tens of milliseconds).
            let (mut text, mut json, mut metrics): (
                Option<String>,
                Option<String>,
                Option<String>,
            ) = (None, None, None);
            server.handle(now, &mut |view| {
                if !std::mem::replace(&mut read, true) {
                    read_usage(observed, usage.as_deref());
                }
                let status = observed.status();
                match view {
                    View::Text => text.get_or_insert_with(|| status.to_string()).clone(),
                    View::Json => json.get_or_insert_with(|| render_json(status)).clone(),
                    View::Metrics => metrics
                        .get_or_insert_with(|| figures.render(observed, directory, recorded))
                        .clone(),
                }
            });
        }
        if self.figures.deadline().is_some_and(|at| at <= now) {
            let limited = self.usage.as_ref().is_some_and(|c| c.limits_any());
            if limited && !read {
                read_usage(&mut self.observed, self.usage.as_deref());
            }
            let directory = self.directory.as_deref();
            self.figures
                .publish_due(now, &self.observed, directory, self.recorded, limited);
        }
        if let (Some(at), Some(n)) = (self.next_watchdog, &mut self.notifier) {
            if at <= now {
                n.notify("WATCHDOG=1");
                self.next_watchdog = n.watchdog_interval().map(|i| now + i);
            }
        }
        let until = Instant::now() + CALLBACK_BUDGET;
        self.observed.deliver(|| Instant::now() < until);
    }

    /// The orders made of status-socket requests since the last call, for
    /// the root's loop to route down the tree.
    pub(crate) fn take_orders(&mut self) -> Vec<Order> {
        self.server
            .as_mut()
            .map(StatusServer::take_orders)
            .unwrap_or_default()
    }

    /// What an order came to: for the status client that asked.
    pub(crate) fn answer(&mut self, answer: &Answer) {
        if let Some(server) = &mut self.server {
            server.answer(answer, self.now);
        }
    }

    /// Reads up to `limit` bytes of events off the pipe, as far as it holds
    /// any, and records them.
    fn read_events(&mut self, limit: usize) {
        let Some((read, _)) = &self.events else {
            return;
        };
        let mut chunk = [0u8; READ_CHUNK];
        let mut total = 0;
        while total < limit {
            let n = match nix::unistd::read(read, &mut chunk) {
                Ok(0) => return,
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                // EAGAIN: the pipe is empty.
                Err(_) => return,
            };
            total += n;
            self.decoder.push(&chunk[..n]);
            while let Some(event) = self.decoder.next_event() {
                self.recorded += 1;
                record(&mut self.observed, &mut self.server, event, self.now);
            }
            if n < chunk.len() {
                return;
            }
        }
    }
}

/// Shows the limits and usage of `usage`'s subtrees, read now, in
/// `observed`'s status.
fn read_usage(observed: &mut Observed, usage: Option<&Containment>) {
    for (path, resources) in usage.iter().flat_map(|c| c.usage()) {
        observed.set_resources(&path, resources);
    }
}

/// Records `event`, which happened at `now`, in `observed`, and hands
/// each event recorded to the watchers of `server`.
fn record(observed: &mut Observed, server: &mut Option<StatusServer>, event: Event, now: Instant) {
    observed.event_seen(event, now, |event| {
        if let Some(server) = server {
            server.publish(event);
        }
    });
}

/// The status's JSON document (see `TreeStatus`), with a `'\n'`; an
/// error line if it could not be written.
pub(crate) fn render_json(status: &supertrees_core::TreeStatus) -> String {
    match serde_json::to_string(status) {
        Ok(mut json) => {
            json.push('\n');
            json
        }
        Err(err) => {
            tracing::error!(%err, "the status could not be written as JSON");
            format!("error: the status could not be written as JSON: {err}\n")
        }
    }
}

impl Drop for Main {
    /// The tree has ended: records the events still in the pipe, then gives
    /// the newest [`EVENTS_KEPT_AT_END`] waiting events to the callback,
    /// for up to [`CALLBACK_BUDGET_AT_END`]; `on_event` is told how many
    /// events it missed.
    fn drop(&mut self) {
        self.read_events(READ_AT_END);
        if self.decoder.pending() > 0 {
            tracing::debug!(
                bytes = self.decoder.pending(),
                "the event pipe ended with part of an event"
            );
        }
        self.figures
            .publish_last(&self.observed, self.directory.as_deref(), self.recorded);
        let until = Instant::now() + CALLBACK_BUDGET_AT_END;
        self.observed
            .finish(EVENTS_KEPT_AT_END, || Instant::now() < until);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{EventKind, NodeKind};
    use std::sync::{Arc, Mutex};

    /// Worker `root/{n}` started (at a fixed time: the same event
    /// whenever it is made).
    pub(crate) fn started(n: u32) -> Event {
        Event::happened(
            format!("root/{n}"),
            Some(1000 + n),
            EventKind::Started(NodeKind::Worker),
            std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000),
        )
    }

    /// A root whose `on_event` takes `delay` and logs the paths it gets.
    pub(crate) fn slow_root(delay: Duration) -> (Main, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        let observers = Observers {
            on_event: Some(Box::new(move |event: &Event| {
                std::thread::sleep(delay);
                if let Ok(mut seen) = seen.lock() {
                    seen.push(match event.kind {
                        EventKind::Dropped(n) => format!("dropped {n}"),
                        _ => event.path.clone(),
                    });
                }
            })),
            ..Observers::default()
        };
        let root = Main::new(observers, Instant::now()).expect("a root");
        (root, log)
    }

    fn calls(log: &Arc<Mutex<Vec<String>>>) -> usize {
        log.lock().map(|l| l.len()).unwrap_or(0)
    }

    #[test]
    fn a_slow_callback_gets_a_bounded_share_of_each_turn() {
        let (mut root, log) = slow_root(Duration::from_millis(2));
        for n in 0..100 {
            root.emit(started(n));
        }
        // The status has them all already; the callback none.
        assert_eq!(root.observed.status().nodes().count(), 101);
        assert_eq!(calls(&log), 0);
        // The loop is told to come back at once.
        assert_eq!(root.poll_fds().len(), 2);
        let began = Instant::now();
        root.handle(Instant::now());
        let took = began.elapsed();
        let made = calls(&log);
        assert!((1..=4).contains(&made), "{made} calls in one turn");
        assert!(
            took < CALLBACK_BUDGET + Duration::from_millis(50),
            "{took:?}"
        );
        // Turns go on until every call is made; then the loop may sleep.
        while root.poll_fds().len() > 1 {
            root.handle(Instant::now());
        }
        assert_eq!(calls(&log), 100);
    }

    #[test]
    fn at_the_end_the_newest_events_are_still_delivered() {
        let (mut root, log) = slow_root(Duration::ZERO);
        for n in 0..(EVENTS_KEPT_AT_END as u32 + 10) {
            root.emit(started(n));
        }
        drop(root);
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(log.len(), EVENTS_KEPT_AT_END + 1);
        assert_eq!(log[0], "dropped 10");
        assert_eq!(log[1], "root/10");
    }
}
