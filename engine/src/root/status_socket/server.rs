//! The server: accepting connections on the status socket, refusing peers
//! of another user, making room for waiting clients, reading requests and
//! writing answers, all without blocking.
//!
//! At most [`MAX_CLIENTS`] connections are served at a time. More wait in
//! the listening socket's backlog, where the kernel keeps them in order, and
//! are accepted oldest first as room is made: by clients that are done, and
//! by cutting off (with `error: busy`) the oldest client that has not sent a
//! complete request after [`IDLE_GRACE`]. So a flood of connections that
//! say nothing holds no one else out for long, and a client that sends its
//! request at once is answered as soon as it is accepted.
//!
//! A client that asks to `watch` leaves those clients for the watchers, at
//! most [`MAX_WATCHERS`] (one more is answered [`BUSY_WATCHERS`]): each
//! gets the tree's events as JSON lines ([`StatusServer::publish`]) until
//! it closes the connection or the tree ends. The tree never waits for a
//! watcher: each has a queue of at most [`WATCH_QUEUE_LINES`] lines and
//! [`WATCH_QUEUE_BYTES`] bytes, written without blocking as its socket
//! takes them; the events that find it full are counted, and once there is
//! room again the watcher gets `{"dropped": n}` before the next ones. A
//! slow watcher is never cut off for being slow, only one whose socket
//! takes no byte for [`WATCH_STALL`] while lines wait for it. What a
//! watcher sends after its request is ignored: it ends when it closes the
//! connection (`POLLHUP`), not when it shuts down its writing side.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, MsgFlags, UnixAddr};

use super::dir::{
    check_ancestors, check_length, prepare_directory, remove_created_directory, remove_stale_socket,
};
use super::{after, with_context, MAX_REQUEST, PERMISSION_DENIED};
use crate::Event;
use supertrees_core::control::{
    sanitize, Answer, NodePath, Op, Order, Request, Ticket, WatchLine, Watched,
};

/// How long a client has, from accept, to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server keeps trying to write an answer to a client that
/// doesn't read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many clients are served at the same time; more wait to be accepted.
/// Clients that wait for the answer to an order are not counted.
const MAX_CLIENTS: usize = 16;
/// How many clients may wait for the answers to their orders at a time;
/// more orders are answered [`BUSY_ORDERS`] at once.
const MAX_AWAITING: usize = 64;
/// How long a client that has not sent a complete request yet is safe from
/// being cut off to make room for a waiting one.
const IDLE_GRACE: Duration = Duration::from_millis(20);
/// How many clients may watch the tree's events at a time; one more is
/// answered [`BUSY_WATCHERS`]. They are not counted in [`MAX_CLIENTS`].
const MAX_WATCHERS: usize = 16;
/// How many lines wait at most for a watcher's socket to take them; the
/// events that come while as many wait are dropped (counted).
const WATCH_QUEUE_LINES: usize = 1024;
/// How many bytes of lines wait at most for a watcher's socket, as
/// [`WATCH_QUEUE_LINES`] (a line is always queued for a watcher that has
/// none waiting).
const WATCH_QUEUE_BYTES: usize = 256 * 1024;
/// How long a watcher with lines waiting is kept while its socket takes
/// none of their bytes: then it is closed. Slowness is never cut off (its
/// events are dropped and counted); only a reader that stopped for good.
const WATCH_STALL: Duration = Duration::from_secs(60);
/// How many queued lines one `sendmsg` hands to a watcher's socket at most.
const WATCH_BATCH: usize = 64;
/// The longest `{"dropped": n}` line, with its `'\n'`.
const MAX_DROPPED_LINE: usize = r#"{"dropped":18446744073709551615}"#.len() + 1;

/// How many connections one [`StatusServer::handle`] call accepts at most, so
/// a flood of connections can't starve the rest of the poll loop.
const ACCEPTS_PER_CALL: usize = 64;
/// How long accepting pauses after accept(2) failed for a reason that would
/// make it fail again at once (e.g. `EMFILE`), so the poll loop doesn't spin
/// on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How many unread bytes are discarded before closing a client: closing a
/// Unix stream socket with unread input makes the peer's reads fail with
/// `ECONNRESET` instead of ending cleanly after our answer.
const DRAIN_LIMIT: usize = 64 * 1024;

/// The answer to an idle client cut off to make room for another.
const BUSY: &[u8] = b"error: busy\n";
/// The answer to an order while [`MAX_AWAITING`] clients wait for theirs.
const BUSY_ORDERS: &str = "error: busy: 64 requests wait for their answers; try again later\n";
/// The answer to a request line longer than [`MAX_REQUEST`].
const TOO_LONG: &str = "error: request too long\n";
/// The answer to a client that sent no complete request line in time.
const TIMED_OUT: &str = "error: timed out waiting for a request\n";
/// The answer to `watch` while [`MAX_WATCHERS`] clients watch.
const BUSY_WATCHERS: &str = "error: busy: too many watchers\n";

/// What the root renders for a request: the status's text (`status`),
/// its JSON document (`status json`), or the tree's figures (`metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// The text tree.
    Text,
    /// The JSON document (see `TreeStatus`), with a `'\n'` after it.
    Json,
    /// The figures in the Prometheus text format.
    Metrics,
}

/// The bounds of each watcher's queue: see [`WATCH_QUEUE_LINES`],
/// [`WATCH_QUEUE_BYTES`] and [`WATCH_STALL`].
#[derive(Debug, Clone, Copy)]
struct WatchBounds {
    lines: usize,
    bytes: usize,
    stall: Duration,
}

/// A listening status socket and the clients it is serving.
#[derive(Debug)]
pub(crate) struct StatusServer {
    /// The non-blocking listening socket.
    listener: UnixListener,
    /// Where the socket file is.
    path: PathBuf,
    /// The directory holding it, if this server created it: removed with
    /// the socket (when empty).
    created_dir: Option<PathBuf>,
    /// Device and inode of the socket file we bound, so that dropping the
    /// server removes that file and never one that replaced it.
    file_id: (u64, u64),
    /// The process that bound the socket: a forked copy of the server must
    /// not remove the file when it is dropped.
    owner_pid: u32,
    /// Our effective uid, the only one allowed to connect.
    uid: u32,
    /// See [`REQUEST_TIMEOUT`].
    request_timeout: Duration,
    /// See [`WRITE_TIMEOUT`].
    write_timeout: Duration,
    /// See [`MAX_CLIENTS`].
    max_clients: usize,
    /// See [`IDLE_GRACE`].
    idle_grace: Duration,
    /// Until when accepting is paused, see [`ACCEPT_PAUSE`].
    accept_paused_until: Option<Instant>,
    /// Whether a waiting connection could be accepted now (there is room,
    /// or an idle client to cut off): only then is the listener polled.
    can_accept: bool,
    /// Whether the listener may hold a connection: it was readable when
    /// last polled, or the turn did not poll (see [`polled`](Self::polled)).
    listener_ready: bool,
    /// When an idle client may be cut off, if none may now and all the
    /// room is taken.
    room_at: Option<Instant>,
    /// The connections being served, oldest first.
    clients: Vec<Client>,
    /// The requests that name a node, on their way to the supervisor that
    /// owns it.
    orders: Orders,
    /// The clients that watch the tree's events, oldest first.
    watchers: Vec<Watcher>,
    /// See [`MAX_WATCHERS`].
    max_watchers: usize,
    /// See [`WatchBounds`].
    watch_bounds: WatchBounds,
}

/// The orders made of requests, for the root's loop to take
/// ([`StatusServer::take_orders`]), the number of the next, and how many
/// clients wait for answers.
#[derive(Debug, Default)]
struct Orders {
    made: Vec<Order>,
    next: u64,
    waiting: usize,
}

impl Orders {
    /// An order of `op` on `path`, for a client that waits for its answer:
    /// its ticket; `None` while [`MAX_AWAITING`] clients wait.
    fn make(&mut self, op: Op, path: NodePath) -> Option<Ticket> {
        if self.waiting >= MAX_AWAITING {
            return None;
        }
        let ticket = Ticket(self.next);
        self.next = self.next.wrapping_add(1);
        self.waiting += 1;
        self.made.push(Order { ticket, path, op });
        Some(ticket)
    }
}

/// One accepted connection.
#[derive(Debug)]
struct Client {
    /// The non-blocking connection.
    stream: UnixStream,
    /// When it was accepted.
    since: Instant,
    /// Who it is (`SO_PEERCRED`), for the log of its orders.
    peer: (u32, i32),
    /// When the client is dropped, or answered with [`TIMED_OUT`], if it
    /// hasn't finished its current phase.
    deadline: Instant,
    /// What the client is waiting for.
    state: ClientState,
}

/// The phase a [`Client`] is in.
#[derive(Debug)]
enum ClientState {
    /// Reading the request line; holds what has arrived so far.
    Reading(Vec<u8>),
    /// Waiting for the answer to its order (see [`Orders`]): not timed out
    /// here (the supervisors on the way bound it; the root's machine
    /// answers at its deadline whatever happens below), only read for its
    /// end, which drops it (the order is carried out all the same).
    Awaiting(Ticket),
    /// Writing the answer; `written` bytes of `out` are sent.
    Writing {
        /// The whole answer.
        out: Vec<u8>,
        /// How much of it has been sent.
        written: usize,
    },
}

/// What became of a client after [`Client::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// It is still being served.
    Keep,
    /// It is done with: drop it.
    Done,
    /// It asked to watch, and there is room: it becomes a [`Watcher`].
    Watch,
}

/// A client that watches the tree's events: the lines for it wait in a
/// bounded queue until its socket takes them.
#[derive(Debug)]
struct Watcher {
    /// The non-blocking connection.
    stream: UnixStream,
    /// Who it is (`SO_PEERCRED`), for the log.
    peer: (u32, i32),
    /// The lines waiting for its socket, oldest first.
    queue: VecDeque<Arc<[u8]>>,
    /// The bytes of the lines in `queue`.
    queued: usize,
    /// How many bytes of the first line its socket has taken.
    written: usize,
    /// The events that found its queue full since it was last told.
    dropped: u64,
    /// Every event it missed, for the log.
    missed: u64,
    /// How many lines its socket took, for the log.
    sent: u64,
    /// Since when its socket has taken no byte while lines wait for it.
    stalled_since: Option<Instant>,
}

/// Why a watcher's stream ended.
#[derive(Debug)]
enum WatchEnd {
    /// The client closed the connection.
    HungUp,
    /// Writing to it failed.
    Failed(Errno),
    /// Its socket took no byte for this long ([`WATCH_STALL`]).
    Stalled(Duration),
    /// The tree ended.
    TreeEnded,
}

/// What reading a client's request came to.
enum Received {
    /// No complete line yet; wait for more.
    Pending,
    /// A complete line, without its `'\n'`.
    Line(Vec<u8>),
    /// [`MAX_REQUEST`] bytes and no `'\n'`.
    TooLong,
    /// The client ended its side of the connection after these bytes,
    /// without a `'\n'`.
    Incomplete(Vec<u8>),
    /// The client hung up (or its connection failed) before a complete line.
    Gone,
}

impl StatusServer {
    /// Binds a non-blocking listening socket at `path`.
    ///
    /// `path` must fit a socket address (checked before anything is
    /// created). The directory holding it must be one only the owner can
    /// enter: a missing parent directory is created (it alone, not its
    /// ancestors) with mode 0700; an existing one must be owned by our uid
    /// and have no group or other permission bits; no directory above it
    /// may be writable by group or others unless it is sticky (like
    /// `/tmp`). Else binding fails with an error naming the directory and
    /// the reason. A stale socket at `path` (connecting is refused) is
    /// replaced; a live one, or a file that is not a socket, is an error.
    /// The socket file gets mode 0600. A directory created here is removed
    /// again if binding fails, and when the server is dropped (if empty).
    pub(crate) fn bind(path: &Path) -> Result<Self, io::Error> {
        let uid = nix::unistd::geteuid().as_raw();
        let dir = crate::os::trusted_dir::socket_dir(path, "a status socket")?;
        check_length(path)?;
        check_ancestors(dir)?;
        let created = prepare_directory(dir, uid)?;
        // From here on, a failure must not leave behind the directory made
        // for the socket...
        let remove_dir = |err: io::Error| {
            if created {
                remove_created_directory(dir);
            }
            err
        };
        remove_stale_socket(path).map_err(remove_dir)?;
        let listener = UnixListener::bind(path).map_err(|err| {
            remove_dir(with_context(
                err,
                format!("binding the status socket {}", path.display()),
            ))
        })?;
        // ... nor our socket file.
        let cleanup = |err: io::Error, what: &str| {
            let _ = std::fs::remove_file(path);
            remove_dir(with_context(err, format!("{what} {}", path.display())))
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| cleanup(err, "making private the status socket"))?;
        listener
            .set_nonblocking(true)
            .map_err(|err| cleanup(err, "making non-blocking the status socket"))?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|err| cleanup(err, "inspecting the status socket"))?;
        tracing::debug!(path = %path.display(), "status socket listening");
        Ok(Self {
            listener,
            path: path.to_owned(),
            created_dir: created.then(|| dir.to_owned()),
            file_id: (meta.dev(), meta.ino()),
            owner_pid: std::process::id(),
            uid,
            request_timeout: REQUEST_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            max_clients: MAX_CLIENTS,
            idle_grace: IDLE_GRACE,
            accept_paused_until: None,
            can_accept: true,
            listener_ready: true,
            room_at: None,
            clients: Vec::new(),
            orders: Orders::default(),
            watchers: Vec::new(),
            max_watchers: MAX_WATCHERS,
            watch_bounds: WatchBounds {
                lines: WATCH_QUEUE_LINES,
                bytes: WATCH_QUEUE_BYTES,
                stall: WATCH_STALL,
            },
        })
    }

    #[cfg(test)]
    /// Replaces [`REQUEST_TIMEOUT`] (for tests).
    pub(crate) fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    #[cfg(test)]
    /// Replaces [`WRITE_TIMEOUT`] (for tests).
    pub(crate) fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    #[cfg(test)]
    /// Replaces [`MAX_CLIENTS`] (for tests).
    pub(crate) fn with_max_clients(mut self, max_clients: usize) -> Self {
        self.max_clients = max_clients;
        self
    }

    #[cfg(test)]
    /// Replaces [`IDLE_GRACE`] (for tests).
    pub(crate) fn with_idle_grace(mut self, grace: Duration) -> Self {
        self.idle_grace = grace;
        self
    }

    #[cfg(test)]
    /// Replaces [`MAX_WATCHERS`] (for tests).
    pub(crate) fn with_max_watchers(mut self, max_watchers: usize) -> Self {
        self.max_watchers = max_watchers;
        self
    }

    #[cfg(test)]
    /// Replaces [`WATCH_QUEUE_LINES`] and [`WATCH_QUEUE_BYTES`] (for
    /// tests).
    pub(crate) fn with_watch_queue(mut self, lines: usize, bytes: usize) -> Self {
        (self.watch_bounds.lines, self.watch_bounds.bytes) = (lines, bytes);
        self
    }

    #[cfg(test)]
    /// Replaces [`WATCH_STALL`] (for tests).
    pub(crate) fn with_watch_stall(mut self, stall: Duration) -> Self {
        self.watch_bounds.stall = stall;
        self
    }

    #[cfg(test)]
    /// Where the socket file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The fds to poll and their events: the listener (readable, unless
    /// accepting is paused after an error or no connection can be accepted
    /// now), each client (readable while its request is read or it waits
    /// for an order's answer, writable while it has output pending) and
    /// each watcher (writable while lines wait for it; else only for its
    /// hang-up, which poll always reports).
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::with_capacity(1 + self.clients.len() + self.watchers.len());
        if self.accept_paused_until.is_none() && self.can_accept {
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        }
        fds.extend(self.clients.iter().map(|client| {
            let events = match client.state {
                ClientState::Reading(_) | ClientState::Awaiting(_) => PollFlags::POLLIN,
                ClientState::Writing { .. } => PollFlags::POLLOUT,
            };
            PollFd::new(client.stream.as_fd(), events)
        }));
        fds.extend(self.watchers.iter().map(|watcher| {
            let events = if watcher.queue.is_empty() {
                PollFlags::empty()
            } else {
                PollFlags::POLLOUT
            };
            PollFd::new(watcher.stream.as_fd(), events)
        }));
        fds
    }

    /// Queues `event` for every watcher, as one JSON line
    /// ([`WatchLine::Event`]); a watcher whose queue is full counts it
    /// instead. Never blocks: the lines are written by
    /// [`handle`](Self::handle), as far as each socket takes them.
    pub(crate) fn publish(&mut self, event: &Event) {
        if self.watchers.is_empty() {
            return;
        }
        let line = match serde_json::to_string(&WatchLine::Event(Watched::from(event))) {
            Ok(mut line) => {
                line.push('\n');
                Arc::<[u8]>::from(line.into_bytes())
            }
            Err(err) => {
                tracing::warn!(%err, path = %event.path, "an event could not be written as JSON; not sent to watchers");
                return;
            }
        };
        let bounds = self.watch_bounds;
        for watcher in &mut self.watchers {
            watcher.offer(&line, bounds);
        }
    }

    /// The orders made of requests since the last call, for the root's
    /// loop to route (see `crate::supervisor`); each is answered with
    /// [`answer`](Self::answer).
    pub(crate) fn take_orders(&mut self) -> Vec<Order> {
        std::mem::take(&mut self.orders.made)
    }

    /// What an order came to, at `now`: written to the client that asked
    /// (dropped if it went away).
    pub(crate) fn answer(&mut self, answer: &Answer, now: Instant) {
        let asked = self
            .clients
            .iter_mut()
            .find(|c| matches!(c.state, ClientState::Awaiting(t) if t == answer.ticket));
        let Some(client) = asked else {
            tracing::debug!(
                ticket = answer.ticket.0,
                "an answer for a client that went away"
            );
            return;
        };
        tracing::info!(peer_uid = client.peer.0, peer_pid = client.peer.1, answer = %answer.line().trim_end(), "an operator's request answered");
        self.orders.waiting = self.orders.waiting.saturating_sub(1);
        client.state = ClientState::Writing {
            out: answer.line().into_bytes(),
            written: 0,
        };
        client.deadline = after(now, self.write_timeout);
    }

    /// The earliest time [`StatusServer::handle`] must be called even if no
    /// fd is ready: the first client deadline, the end of an accept pause,
    /// or when an idle client may be cut off to make room.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.clients
            .iter()
            .filter(|client| !matches!(client.state, ClientState::Awaiting(_)))
            .map(|client| client.deadline)
            .chain(self.watchers.iter().filter_map(|watcher| {
                let since = watcher
                    .stalled_since
                    .filter(|_| !watcher.queue.is_empty())?;
                Some(after(since, self.watch_bounds.stall))
            }))
            .chain(self.accept_paused_until)
            .chain(self.room_at)
            .min()
    }

    /// Does all the non-blocking work that is possible now: reads requests
    /// and answers them, writes pending output, times out clients and drops
    /// finished ones, oldest first; then accepts waiting connections as far
    /// as there is room or idle clients to cut off (refusing peers of
    /// another uid), serving each at once if its request is there; writes
    /// to the watchers what their sockets take, and drops those that hung
    /// up. `render` produces the status (text or JSON); it is called once
    /// per `status` or `status json` request.
    pub(crate) fn handle(&mut self, now: Instant, render: &mut dyn FnMut(View) -> String) {
        if self.accept_paused_until.is_some_and(|until| now >= until) {
            self.accept_paused_until = None;
        }
        let mut i = 0;
        while i < self.clients.len() {
            let can_watch = self.watchers.len() < self.max_watchers;
            let client = &mut self.clients[i];
            match client.advance(now, self.write_timeout, render, &mut self.orders, can_watch) {
                Step::Keep => i += 1,
                Step::Done => {
                    self.clients.remove(i);
                }
                Step::Watch => {
                    let client = self.clients.remove(i);
                    self.watchers.push(Watcher::start(client));
                }
            }
        }
        self.serve_watchers(now);
        if self.accept_paused_until.is_none() && self.listener_ready {
            self.accept(now, render);
        }
        // Until the next poll says otherwise (a turn that does not poll
        // tries).
        self.listener_ready = true;
        self.plan_room(now);
    }

    /// What the poll of the fds of [`poll_fds`](Self::poll_fds) found
    /// (`ready(n)`: the `n`-th had events): the next
    /// [`handle`](Self::handle) accepts only if the listener was readable,
    /// so a turn of the root without a connection waiting costs no
    /// `accept` (the root turns once per restart of a worker as fast as
    /// it can: that call cost ~10 % of the restart rate).
    pub(crate) fn polled(&mut self, ready: &dyn Fn(usize) -> bool) {
        let polls_listener = self.accept_paused_until.is_none() && self.can_accept;
        self.listener_ready = polls_listener && ready(0);
    }

    /// Drops the watchers that hung up, writes to each what its socket
    /// takes, and closes those that failed or stalled.
    fn serve_watchers(&mut self, now: Instant) {
        if self.watchers.is_empty() {
            return;
        }
        let hung_up: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = self
                .watchers
                .iter()
                .map(|w| PollFd::new(w.stream.as_fd(), PollFlags::empty()))
                .collect();
            match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
                Ok(_) => fds
                    .iter()
                    .map(|fd| {
                        fd.revents().is_some_and(|r| {
                            r.intersects(
                                PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL,
                            )
                        })
                    })
                    .collect(),
                // EINTR: seen next turn, or when writing fails.
                Err(_) => vec![false; fds.len()],
            }
        };
        let bounds = self.watch_bounds;
        let mut hung_up = hung_up.into_iter();
        self.watchers.retain_mut(|watcher| {
            let end = if hung_up.next().unwrap_or(false) {
                Some(WatchEnd::HungUp)
            } else {
                watcher.write(now, bounds).err()
            };
            match end {
                Some(end) => {
                    watcher.end(&end);
                    false
                }
                None => true,
            }
        });
    }

    /// How many clients are served (not waiting for an order's answer:
    /// those [`Orders`] counts).
    fn served(&self) -> usize {
        self.clients.len().saturating_sub(self.orders.waiting)
    }

    /// The oldest client that has sent no complete request and may be cut
    /// off at `now`.
    fn idle_to_cut_off(&self, now: Instant) -> Option<usize> {
        self.clients.iter().position(|client| {
            matches!(client.state, ClientState::Reading(_))
                && now.saturating_duration_since(client.since) >= self.idle_grace
        })
    }

    /// Whether a waiting connection can be accepted at `now`, and if not,
    /// when it can at the latest (without counting on clients to finish).
    fn plan_room(&mut self, now: Instant) {
        self.room_at = None;
        self.can_accept = self.served() < self.max_clients;
        if self.can_accept {
            return;
        }
        let oldest_idle = self
            .clients
            .iter()
            .find(|client| matches!(client.state, ClientState::Reading(_)));
        if let Some(client) = oldest_idle {
            let at = after(client.since, self.idle_grace);
            if at <= now {
                self.can_accept = true;
            } else {
                self.room_at = Some(at);
            }
        }
    }

    /// Accepts waiting connections while there is room or an idle client
    /// to cut off.
    fn accept(&mut self, now: Instant, render: &mut dyn FnMut(View) -> String) {
        for _ in 0..ACCEPTS_PER_CALL {
            if self.served() >= self.max_clients && self.idle_to_cut_off(now).is_none() {
                return;
            }
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(err) => {
                    tracing::warn!(
                        path = %self.path.display(),
                        %err,
                        "accepting a status client failed; pausing"
                    );
                    self.accept_paused_until = Some(after(now, ACCEPT_PAUSE));
                    return;
                }
            };
            if let Err(err) = stream.set_nonblocking(true) {
                tracing::warn!(%err, "making a status client non-blocking failed; dropping it");
                continue;
            }
            let peer = match socket::getsockopt(&stream, sockopt::PeerCredentials) {
                Ok(peer) if peer.uid() == self.uid => (peer.uid(), peer.pid()),
                Ok(peer) => {
                    tracing::warn!(
                        path = %self.path.display(),
                        peer_uid = peer.uid(),
                        peer_pid = peer.pid(),
                        "refusing a status client of another user"
                    );
                    refuse(stream, format!("{PERMISSION_DENIED}\n").as_bytes());
                    continue;
                }
                Err(err) => {
                    tracing::warn!(%err, "can't tell who a status client is; refusing it");
                    refuse(stream, format!("{PERMISSION_DENIED}\n").as_bytes());
                    continue;
                }
            };
            tracing::debug!("status client connected");
            let mut client = Client {
                stream,
                since: now,
                peer,
                deadline: after(now, self.request_timeout),
                state: ClientState::Reading(Vec::new()),
            };
            // Its request is likely there already: then it needs no room.
            let can_watch = self.watchers.len() < self.max_watchers;
            match client.advance(now, self.write_timeout, render, &mut self.orders, can_watch) {
                Step::Keep => {}
                Step::Done => continue,
                Step::Watch => {
                    self.watchers.push(Watcher::start(client));
                    continue;
                }
            }
            let awaits = matches!(client.state, ClientState::Awaiting(_));
            if !awaits && self.served() >= self.max_clients {
                if let Some(idle) = self.idle_to_cut_off(now) {
                    let idle = self.clients.remove(idle);
                    tracing::debug!(
                        idle_for = ?now.saturating_duration_since(idle.since),
                        "cutting off an idle status client to make room"
                    );
                    refuse(idle.stream, BUSY);
                }
            }
            self.clients.push(client);
        }
    }
}

impl Drop for StatusServer {
    /// The tree has ended: hands each watcher what its socket takes at
    /// once, and closes it. Removes the socket file, if it is still ours.
    /// In a forked copy, only closes its copies of the fds.
    fn drop(&mut self) {
        if std::process::id() != self.owner_pid {
            return;
        }
        // Answers the tree gave but the loop did not write yet go now, as
        // far as each socket takes them at once (a short line: all of it);
        // an order still waiting is told the tree ended.
        for client in self.clients.drain(..) {
            let line: &[u8] = match &client.state {
                ClientState::Writing { out, written } => out.get(*written..).unwrap_or_default(),
                ClientState::Awaiting(_) => b"error: lost (the tree ended before answering)\n",
                ClientState::Reading(_) => continue,
            };
            let _ = socket::send(
                client.stream.as_raw_fd(),
                line,
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            );
        }
        let bounds = self.watch_bounds;
        for mut watcher in self.watchers.drain(..) {
            // Best effort: what does not fit now is lost with the tree.
            let end = match watcher.write_out(bounds) {
                Err(errno) => WatchEnd::Failed(errno),
                Ok(_) => WatchEnd::TreeEnded,
            };
            watcher.end(&end);
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.file_id => {
                if let Err(err) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), %err, "removing the status socket failed");
                }
            }
            Ok(_) => tracing::debug!(
                path = %self.path.display(),
                "the status socket was replaced; leaving the new one"
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "can't inspect the status socket");
            }
        }
        if let Some(dir) = &self.created_dir {
            remove_created_directory(dir);
        }
    }
}

impl Client {
    /// Makes all the progress possible now: [`Step::Watch`] when it asked
    /// to watch and `can_watch` (else it is answered [`BUSY_WATCHERS`]).
    fn advance(
        &mut self,
        now: Instant,
        write_timeout: Duration,
        render: &mut dyn FnMut(View) -> String,
        orders: &mut Orders,
        can_watch: bool,
    ) -> Step {
        if let ClientState::Reading(buf) = &mut self.state {
            let request = read_request(&self.stream, buf);
            let answer = match reply(request, now >= self.deadline, render) {
                Reply::Wait => return Step::Keep,
                Reply::Answer(answer) => answer,
                Reply::Watch if can_watch => return Step::Watch,
                Reply::Watch => {
                    tracing::info!(
                        peer_uid = self.peer.0,
                        peer_pid = self.peer.1,
                        "an operator's watch refused: too many watchers"
                    );
                    BUSY_WATCHERS.to_owned()
                }
                Reply::Order(op, path) => {
                    tracing::info!(peer_uid = self.peer.0, peer_pid = self.peer.1, request = op.verb(), %path,
                        "an operator's request");
                    match orders.make(op, path) {
                        Some(ticket) => {
                            // Answered when the answer comes (see `answer`).
                            self.state = ClientState::Awaiting(ticket);
                            return Step::Keep;
                        }
                        None => BUSY_ORDERS.to_owned(),
                    }
                }
                Reply::Drop => return Step::Done,
            };
            self.state = ClientState::Writing {
                out: answer.into_bytes(),
                written: 0,
            };
            self.deadline = after(now, write_timeout);
        }
        if let ClientState::Awaiting(_) = self.state {
            if ended(&self.stream) {
                tracing::debug!("a status client went away before its order was answered");
                orders.waiting = orders.waiting.saturating_sub(1);
                return Step::Done;
            }
            return Step::Keep;
        }
        let ClientState::Writing { out, written } = &mut self.state else {
            return Step::Keep;
        };
        while *written < out.len() {
            match socket::send(
                self.stream.as_raw_fd(),
                &out[*written..],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) | Err(Errno::EAGAIN) => {
                    if now >= self.deadline {
                        tracing::debug!(
                            unsent = out.len() - *written,
                            "status client doesn't read its answer; dropping it"
                        );
                        return Step::Done;
                    }
                    return Step::Keep;
                }
                Ok(sent) => *written += sent,
                Err(Errno::EINTR) => {}
                Err(err) => {
                    tracing::debug!(%err, "status client went away before its answer");
                    return Step::Done;
                }
            }
        }
        drain(&self.stream);
        tracing::debug!(bytes = out.len(), "status client answered");
        Step::Done
    }
}

impl Watcher {
    /// `client`, which asked to watch: its stream starts with the next
    /// event.
    fn start(client: Client) -> Self {
        tracing::info!(
            peer_uid = client.peer.0,
            peer_pid = client.peer.1,
            "an operator watches the tree's events"
        );
        Watcher {
            stream: client.stream,
            peer: client.peer,
            queue: VecDeque::new(),
            queued: 0,
            written: 0,
            dropped: 0,
            missed: 0,
            sent: 0,
            stalled_since: None,
        }
    }

    /// Whether a line of `len` bytes fits in its queue: always when none
    /// waits.
    fn has_room(&self, len: usize, bounds: WatchBounds) -> bool {
        self.queue.is_empty()
            || (self.queue.len() < bounds.lines && self.queued.saturating_add(len) <= bounds.bytes)
    }

    fn push(&mut self, line: Arc<[u8]>) {
        self.queued += line.len();
        self.queue.push_back(line);
    }

    /// Queues `line` (after telling it of the events it missed, if any),
    /// or counts it when there is no room.
    fn offer(&mut self, line: &Arc<[u8]>, bounds: WatchBounds) {
        self.tell_dropped(bounds);
        if self.dropped == 0 && self.has_room(line.len(), bounds) {
            self.push(line.clone());
        } else {
            self.dropped = self.dropped.saturating_add(1);
            self.missed = self.missed.saturating_add(1);
        }
    }

    /// Queues `{"dropped": n}` if events found its queue full and there is
    /// room for it now.
    fn tell_dropped(&mut self, bounds: WatchBounds) {
        if self.dropped == 0 || !self.has_room(MAX_DROPPED_LINE, bounds) {
            return;
        }
        let told = WatchLine::Dropped {
            dropped: self.dropped,
        };
        // A struct of one number is always written.
        let Ok(mut line) = serde_json::to_string(&told) else {
            return;
        };
        line.push('\n');
        self.push(Arc::from(line.into_bytes()));
        self.dropped = 0;
    }

    /// Writes what its socket takes now, then queues the count of the
    /// events it missed if that made room; notes since when its socket
    /// takes nothing. Fails when writing fails, or its socket took nothing
    /// for as long as `bounds` allow.
    fn write(&mut self, now: Instant, bounds: WatchBounds) -> Result<(), WatchEnd> {
        let took = self.write_out(bounds).map_err(WatchEnd::Failed)?;
        if took || self.queue.is_empty() {
            self.stalled_since = None;
        }
        if self.queue.is_empty() {
            return Ok(());
        }
        let since = *self.stalled_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= bounds.stall {
            return Err(WatchEnd::Stalled(bounds.stall));
        }
        Ok(())
    }

    /// Writes queued lines (and the count of missed events, as room is
    /// made) until its socket takes no more or none is left; whether it
    /// took any byte.
    fn write_out(&mut self, bounds: WatchBounds) -> Result<bool, Errno> {
        let mut took = false;
        loop {
            self.tell_dropped(bounds);
            if self.queue.is_empty() {
                return Ok(took);
            }
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(WATCH_BATCH);
            for (i, line) in self.queue.iter().take(WATCH_BATCH).enumerate() {
                let from = if i == 0 { self.written } else { 0 };
                slices.push(IoSlice::new(&line[from..]));
            }
            let sent = socket::sendmsg::<UnixAddr>(
                self.stream.as_raw_fd(),
                &slices,
                &[],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            );
            drop(slices);
            match sent {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(took),
                Ok(mut n) => {
                    took = true;
                    while n > 0 {
                        let Some(front) = self.queue.front() else {
                            break;
                        };
                        let left = front.len() - self.written;
                        if n < left {
                            self.written += n;
                            break;
                        }
                        n -= left;
                        self.queued -= front.len();
                        self.queue.pop_front();
                        self.written = 0;
                        self.sent = self.sent.saturating_add(1);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno),
            }
        }
    }

    /// Logs why its stream ended, and discards what its client sent
    /// (closing a socket with unread input would reset its client's
    /// reads); dropping it closes it.
    fn end(&self, why: &WatchEnd) {
        let (uid, pid) = self.peer;
        let (lines, missed) = (self.sent, self.missed.saturating_add(self.dropped));
        match why {
            WatchEnd::HungUp => tracing::info!(
                peer_uid = uid,
                peer_pid = pid,
                lines,
                missed,
                "an operator's watch ended: the client hung up"
            ),
            WatchEnd::Failed(errno) => {
                tracing::info!(peer_uid = uid, peer_pid = pid, lines, missed, %errno, "an operator's watch ended: writing to it failed")
            }
            WatchEnd::Stalled(stall) => {
                tracing::info!(peer_uid = uid, peer_pid = pid, lines, missed, stalled_for = ?stall, "an operator's watch ended: its client read nothing for too long")
            }
            WatchEnd::TreeEnded => tracing::info!(
                peer_uid = uid,
                peer_pid = pid,
                lines,
                missed,
                "an operator's watch ended: the tree ended"
            ),
        }
        if !matches!(why, WatchEnd::HungUp) {
            drain(&self.stream);
        }
    }
}

/// What to do with a client whose request was read as far as it could be.
enum Reply {
    /// Wait for more of its request.
    Wait,
    /// Write it this answer, then close the connection.
    Answer(String),
    /// Make it a watcher (or answer that there are too many).
    Watch,
    /// Carry out this order (answered later).
    Order(Op, NodePath),
    /// Close the connection without an answer.
    Drop,
}

/// What to do with a client after reading its request came to `request`,
/// past its deadline (`timed_out`) or not.
fn reply(request: Received, timed_out: bool, render: &mut dyn FnMut(View) -> String) -> Reply {
    Reply::Answer(match request {
        Received::Pending if !timed_out => return Reply::Wait,
        Received::Pending => {
            tracing::debug!("status client sent no request in time");
            TIMED_OUT.to_owned()
        }
        Received::Line(line) => return answer(&line, render),
        Received::TooLong => {
            tracing::debug!("status client sent an overlong request");
            TOO_LONG.to_owned()
        }
        Received::Incomplete(part) => {
            tracing::debug!("status client ended an incomplete request");
            format!(
                "error: incomplete request `{}`: the connection ended before its \
                 newline; send `status` and a newline\n",
                sanitize(&part)
            )
        }
        Received::Gone => return Reply::Drop,
    })
}

/// Reads what has arrived of a request from `stream` (a client's
/// non-blocking connection) into `buf`, never more than [`MAX_REQUEST`]
/// bytes in all.
fn read_request(mut stream: impl Read, buf: &mut Vec<u8>) -> Received {
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(end);
            return Received::Line(std::mem::take(buf));
        }
        if buf.len() >= MAX_REQUEST {
            return Received::TooLong;
        }
        let mut chunk = [0u8; MAX_REQUEST];
        let room = MAX_REQUEST - buf.len();
        match stream.read(&mut chunk[..room]) {
            Ok(0) if !buf.is_empty() => return Received::Incomplete(std::mem::take(buf)),
            Ok(0) => {
                tracing::debug!("status client hung up before a request");
                return Received::Gone;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Received::Pending,
            Err(err) => {
                tracing::debug!(%err, "reading a status request failed");
                return Received::Gone;
            }
        }
    }
}

/// What to do with the request `line` (without its `'\n'`).
fn answer(line: &[u8], render: &mut dyn FnMut(View) -> String) -> Reply {
    match Request::parse(line) {
        Ok(Request::Status) => Reply::Answer(render(View::Text)),
        Ok(Request::StatusJson) => Reply::Answer(render(View::Json)),
        Ok(Request::Watch) => Reply::Watch,
        Ok(Request::Metrics) => Reply::Answer(render(View::Metrics)),
        Ok(Request::Restart(path)) => Reply::Order(Op::Restart, path),
        Ok(Request::Stop(path)) => Reply::Order(Op::Stop, path),
        Ok(Request::Start(path)) => Reply::Order(Op::Start, path),
        Err(bad) => {
            tracing::debug!(request = %bad.echoed(), "bad status request");
            Reply::Answer(format!("error: {bad}\n"))
        }
    }
}

/// Writes `line` if the socket takes it at once, then closes the connection.
fn refuse(stream: UnixStream, line: &[u8]) {
    let _ = socket::send(
        stream.as_raw_fd(),
        line,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    );
    drain(&stream);
}

/// Whether the client at the other end of `stream` ended the connection
/// (or it failed); what it sent meanwhile is discarded. Never blocks.
fn ended(mut stream: &UnixStream) -> bool {
    let mut buf = [0u8; 256];
    for _ in 0..DRAIN_LIMIT / buf.len() {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return err.kind() != io::ErrorKind::WouldBlock,
        }
    }
    false
}

/// Discards up to [`DRAIN_LIMIT`] bytes of unread input, without blocking.
fn drain(mut stream: &UnixStream) {
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod check;
#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::status_socket::testing::{exchange, turn, TempDir};
    use std::io::Write;

    #[test]
    fn status_request_gets_the_rendered_text() {
        let dir = TempDir::new("status");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut renders = 0;
        let mut render = |_| {
            renders += 1;
            "root: running\n  worker 0: running\n".to_owned()
        };
        assert_eq!(
            exchange(&mut server, b"status\n", &mut render),
            "root: running\n  worker 0: running\n"
        );
        assert_eq!(
            exchange(&mut server, b"status\r\n", &mut render),
            "root: running\n  worker 0: running\n"
        );
        assert_eq!(renders, 2);
        assert!(server.clients.is_empty());
    }

    #[test]
    fn a_client_is_accepted_in_a_turn_whose_poll_found_the_listener_readable() {
        let dir = TempDir::new("polled");
        let path = dir.join("status.sock");
        let mut server = StatusServer::bind(&path).expect("bind");
        let mut render = |_| String::new();
        let _client = UnixStream::connect(&path).expect("connect");
        // The poll found nothing: no accept is tried (the root's turns
        // cost no syscall for the listener).
        server.polled(&|_| false);
        server.handle(Instant::now(), &mut render);
        assert!(server.clients.is_empty());
        // The next poll finds it readable: accepted.
        server.polled(&|n| n == 0);
        server.handle(Instant::now(), &mut render);
        assert_eq!(server.clients.len(), 1);
        // A turn that did not poll tries, as every turn did before.
        let _second = UnixStream::connect(&path).expect("connect");
        server.handle(Instant::now(), &mut render);
        assert_eq!(server.clients.len(), 2);
    }

    #[test]
    fn a_restart_becomes_an_order_whose_answer_the_client_gets() {
        use supertrees_core::control::Refusal;
        let dir = TempDir::new("order");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = |_| -> String { panic!("rendered for an order") };
        let mut clients: Vec<UnixStream> = ["restart root/1/0\n", "restart root/2\n"]
            .into_iter()
            .map(|request| {
                let mut client = UnixStream::connect(server.path()).expect("connect");
                client.write_all(request.as_bytes()).expect("send");
                client
            })
            .collect();
        let mut orders = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(10);
        while orders.len() < 2 {
            assert!(Instant::now() < give_up, "no orders: {orders:?}");
            turn(&mut server, &mut render);
            orders.extend(server.take_orders());
        }
        assert_eq!(orders[0].path.as_str(), "root/1/0");
        assert_eq!(orders[1].path.as_str(), "root/2");
        assert_ne!(orders[0].ticket, orders[1].ticket);
        // Waiting for their answers, they are polled for their end
        // only, and not timed out here.
        let polled: Vec<PollFlags> = server.poll_fds().iter().map(PollFd::events).collect();
        assert_eq!(polled, [PollFlags::POLLIN; 3], "the listener and the two");
        assert_eq!(server.next_deadline(), None);
        // Answered in any order; an answer for no one is dropped.
        server.answer(&orders[1].answer(Err(Refusal::NotFound)), Instant::now());
        server.answer(&orders[0].answer(Ok(())), Instant::now());
        server.answer(&orders[0].answer(Ok(())), Instant::now());
        let mut answers = Vec::new();
        for client in &mut clients {
            client.set_nonblocking(true).expect("non-blocking");
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                assert!(Instant::now() < give_up, "no answer: {got:?}");
                turn(&mut server, &mut render);
                match client.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => panic!("read: {err}"),
                }
            }
            answers.push(String::from_utf8(got).expect("UTF-8"));
        }
        assert_eq!(
            answers,
            ["ok restarted root/1/0\n", "error: not found: root/2\n"]
        );
        assert!(server.clients.is_empty());
    }

    #[test]
    fn orders_waiting_for_answers_are_bounded_and_leave_room_for_others() {
        let dir = TempDir::new("orders");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = |_| "root: running\n".to_owned();
        let mut waiting = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(20);
        while server.orders.waiting < MAX_AWAITING {
            assert!(
                Instant::now() < give_up,
                "{} waiting",
                server.orders.waiting
            );
            if waiting.len() < MAX_AWAITING {
                let mut client = UnixStream::connect(server.path()).expect("connect");
                client.write_all(b"restart root/0\n").expect("send");
                waiting.push(client);
            }
            turn(&mut server, &mut render);
        }
        // One more is refused at once; `status` is served meanwhile.
        assert_eq!(
            exchange(&mut server, b"restart root/1\n", &mut render),
            BUSY_ORDERS
        );
        assert_eq!(
            exchange(&mut server, b"status\n", &mut render),
            "root: running\n"
        );
        // A client that goes away frees its place.
        drop(waiting.pop());
        while server.orders.waiting == MAX_AWAITING {
            assert!(Instant::now() < give_up, "the client's end was not seen");
            turn(&mut server, &mut render);
        }
        assert_eq!(server.orders.waiting, MAX_AWAITING - 1);
        assert_eq!(server.take_orders().len(), MAX_AWAITING);
    }

    #[test]
    fn unknown_request_gets_an_error_line() {
        let dir = TempDir::new("unknown");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = |_| -> String { panic!("rendered for an unknown request") };
        assert_eq!(
            exchange(&mut server, b"stats\n", &mut render),
            "error: unknown request `stats`; send `status`, `status json`, `watch`, `restart PATH`, `stop PATH`, `start PATH` or `metrics`\n"
        );
        assert_eq!(
            exchange(&mut server, b"a`b\\c\x1b[2J\xff\n", &mut render),
            "error: unknown request `a\\x60b\\x5cc\\x1b[2J\\xff`; send `status`, `status json`, `watch`, `restart PATH`, `stop PATH`, `start PATH` or `metrics`\n"
        );
        let long = format!("{}\n", "y".repeat(40));
        assert_eq!(
            exchange(&mut server, long.as_bytes(), &mut render),
            format!(
                "error: unknown request `{}...`; send `status`, `status json`, `watch`, `restart PATH`, `stop PATH`, `start PATH` or `metrics`\n",
                "y".repeat(32)
            )
        );
    }

    #[test]
    fn silent_client_times_out() {
        let dir = TempDir::new("silent");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_request_timeout(Duration::from_millis(100));
        let mut render = |_| String::new();
        let start = Instant::now();
        assert_eq!(
            exchange(&mut server, b"", &mut render),
            "error: timed out waiting for a request\n"
        );
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(
            exchange(&mut server, b"stat", &mut render),
            "error: timed out waiting for a request\n"
        );
    }

    #[test]
    fn overlong_request_is_refused() {
        let dir = TempDir::new("overlong");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = |_| String::new();
        for len in [MAX_REQUEST, MAX_REQUEST + 1, 10_000] {
            assert_eq!(
                exchange(&mut server, "x".repeat(len).as_bytes(), &mut render),
                "error: request too long\n",
                "{len} bytes"
            );
        }
        // The longest request that fits: its bytes and the newline.
        let longest = format!("{}\n", "z".repeat(MAX_REQUEST - 1));
        assert!(exchange(&mut server, longest.as_bytes(), &mut render)
            .starts_with("error: unknown request `zzz"));
    }

    #[test]
    fn idle_clients_make_room_for_waiting_ones_oldest_first() {
        let dir = TempDir::new("busy");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_max_clients(2)
            .with_idle_grace(Duration::from_millis(50));
        let mut render = |_| "fine\n".to_owned();
        let mut first = UnixStream::connect(server.path()).expect("connect");
        server.handle(Instant::now(), &mut render);
        let mut second = UnixStream::connect(server.path()).expect("connect");
        let _partial = {
            let mut s = UnixStream::connect(server.path()).expect("connect");
            s.write_all(b"sta").expect("send part of a request");
            s
        };
        server.handle(Instant::now(), &mut render);
        assert_eq!(server.clients.len(), 2);
        // Full: the third waits in the backlog, and the listener is not
        // polled until the oldest idle client may be cut off.
        assert!(!server.can_accept);
        assert_eq!(server.poll_fds().len(), 2);
        let room_at = server.next_deadline().expect("a deadline");
        assert_eq!(room_at, server.clients[0].since + Duration::from_millis(50));
        // A client whose request is there is answered as soon as it is
        // accepted; the oldest idle one made room for it.
        assert_eq!(exchange(&mut server, b"status\n", &mut render), "fine\n");
        let mut answer = String::new();
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        first.read_to_string(&mut answer).expect("read");
        assert_eq!(answer, "error: busy\n");
        // The second is still served: it sends its request now.
        second.write_all(b"status\n").expect("send");
        second.set_nonblocking(true).expect("non-blocking");
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut answer = Vec::new();
        loop {
            turn(&mut server, &mut render);
            let mut buf = [0u8; 64];
            match second.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => panic!("read: {err}"),
            }
            assert!(Instant::now() < give_up, "no answer for the second client");
        }
        assert_eq!(answer, b"fine\n");
    }

    #[test]
    fn a_flood_of_idle_clients_does_not_hold_others_out() {
        let dir = TempDir::new("flood");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_max_clients(4);
        let mut render = |_| "fine\n".to_owned();
        let idle: Vec<UnixStream> = (0..40)
            .map(|_| UnixStream::connect(server.path()).expect("connect"))
            .collect();
        let start = Instant::now();
        assert_eq!(exchange(&mut server, b"status\n", &mut render), "fine\n");
        // 40 idle clients ahead, 4 at a time, each cut off after 20 ms.
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        drop(idle);
    }

    #[test]
    fn an_incomplete_request_gets_an_error_line() {
        let dir = TempDir::new("incomplete");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = |_| -> String { panic!("rendered for an incomplete request") };
        for (request, echoed) in [(&b"stat"[..], "stat"), (b"status", "status")] {
            let mut client = UnixStream::connect(server.path()).expect("connect");
            client.write_all(request).expect("send");
            client
                .shutdown(std::net::Shutdown::Write)
                .expect("half-close");
            client.set_nonblocking(true).expect("non-blocking");
            let mut answer = Vec::new();
            let give_up = Instant::now() + Duration::from_secs(10);
            loop {
                turn(&mut server, &mut render);
                let mut buf = [0u8; 256];
                match client.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => panic!("read: {err}"),
                }
                assert!(Instant::now() < give_up, "no answer");
            }
            assert_eq!(
                String::from_utf8(answer).expect("UTF-8"),
                format!(
                    "error: incomplete request `{echoed}`: the connection ended before its \
                     newline; send `status` and a newline\n"
                )
            );
        }
        // Hanging up without a byte is no request: no answer, no error.
        drop(UnixStream::connect(server.path()).expect("connect"));
        turn(&mut server, &mut render);
        assert!(server.clients.is_empty());
    }

    #[test]
    fn poll_fds_and_deadline_follow_the_clients() {
        let dir = TempDir::new("pollfds");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_request_timeout(Duration::from_secs(7));
        let mut render = |_| String::new();
        assert_eq!(server.poll_fds().len(), 1);
        assert_eq!(server.next_deadline(), None);
        let client = UnixStream::connect(server.path()).expect("connect");
        let now = Instant::now();
        server.handle(now, &mut render);
        let fds = server.poll_fds();
        assert_eq!(fds.len(), 2);
        assert_eq!(fds[1].events(), PollFlags::POLLIN);
        drop(fds);
        assert_eq!(server.next_deadline(), Some(now + Duration::from_secs(7)));
        // A client that hangs up early is just dropped.
        drop(client);
        server.handle(Instant::now(), &mut render);
        assert!(server.clients.is_empty());
        assert_eq!(server.next_deadline(), None);
    }

    #[test]
    fn client_that_does_not_read_is_dropped() {
        let dir = TempDir::new("slow");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_write_timeout(Duration::from_millis(100));
        let big = "x".repeat(16 << 20);
        let mut render = |_| big.clone();
        let mut client = UnixStream::connect(server.path()).expect("connect");
        client.write_all(b"status\n").expect("send the request");
        let give_up = Instant::now() + Duration::from_secs(10);
        server.handle(Instant::now(), &mut render);
        assert!(matches!(
            server.clients.first().map(|client| &client.state),
            Some(ClientState::Writing { .. })
        ));
        while !server.clients.is_empty() {
            assert!(
                Instant::now() < give_up,
                "the slow client was never dropped"
            );
            turn(&mut server, &mut render);
        }
        let mut received = Vec::new();
        client
            .read_to_end(&mut received)
            .expect("read what was sent");
        assert!(!received.is_empty() && received.len() < big.len());
    }

    #[test]
    fn drop_removes_the_socket_file() {
        let dir = TempDir::new("drop");
        let path = dir.join("status.sock");
        let server = StatusServer::bind(&path).expect("bind");
        assert!(path.exists());
        drop(server);
        assert!(!path.exists());
    }

    /// A status of a root (pid 100) with a supervisor (pid 101), its
    /// worker host (pid 102) and a ready worker in it, and a worker that
    /// panicked for good.
    fn a_status() -> supertrees_core::TreeStatus {
        use crate::{ChildExit, EventKind, NodeKind};
        let now = Instant::now();
        let mut status = supertrees_core::TreeStatus::new(100, now);
        let events = [
            (
                "root/0",
                Some(101),
                EventKind::Started(NodeKind::Supervisor),
            ),
            (
                "root/0/host",
                Some(102),
                EventKind::Started(NodeKind::WorkerHost),
            ),
            ("root/0/0", Some(102), EventKind::Started(NodeKind::Worker)),
            ("root/0/0", Some(102), EventKind::Ready),
            ("root/1", Some(100), EventKind::Started(NodeKind::Worker)),
            (
                "root/1",
                Some(100),
                EventKind::exited(ChildExit::Panicked, None, Some("boom".into())),
            ),
        ];
        for (path, pid, kind) in events {
            status.record(&Event::new(path.to_owned(), pid, kind), now);
        }
        status
    }

    /// Renders `status` as the root does.
    fn render_as_root(status: &supertrees_core::TreeStatus, view: View) -> String {
        match view {
            View::Text => status.to_string(),
            View::Json => crate::root::render_json(status),
            View::Metrics => "supertrees_generation 1\n".to_owned(),
        }
    }

    #[test]
    fn status_json_gets_the_json_document() {
        let dir = TempDir::new("json");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let status = a_status();
        let mut views = Vec::new();
        let mut render = |view| {
            views.push(view);
            render_as_root(&status, view)
        };
        let answer = exchange(&mut server, b"status json\n", &mut render);
        let text = exchange(&mut server, b"status\n", &mut render);
        assert_eq!(views, [View::Json, View::Text]);
        assert!(text.contains("root/1  worker  failed"), "{text}");
        assert_eq!(answer.matches('\n').count(), 1, "one line: {answer}");
        let doc: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(doc["schema"], 1);
        assert_eq!(doc["generation"], 1);
        let paths: Vec<&str> = doc["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| node["path"].as_str().expect("a path"))
            .collect();
        assert_eq!(
            paths,
            ["root", "root/0", "root/0/host", "root/0/0", "root/1"]
        );
        let node = |path: &str| {
            let nodes = doc["nodes"].as_array().expect("nodes");
            nodes
                .iter()
                .find(|n| n["path"] == path)
                .cloned()
                .expect(path)
        };
        assert_eq!(
            (node("root")["kind"].clone(), node("root")["pid"].clone()),
            ("supervisor".into(), 100.into())
        );
        let worker = node("root/0/0");
        assert_eq!(
            (
                &worker["kind"],
                &worker["pid"],
                &worker["state"],
                &worker["wanted"]
            ),
            (&"worker".into(), &102.into(), &"ready".into(), &"up".into())
        );
        assert_eq!(node("root/0/host")["kind"], "host");
        let failed = node("root/1");
        assert_eq!(failed["state"], "failed");
        assert_eq!(failed["pid"], serde_json::Value::Null);
        assert_eq!(failed["up_ms"], serde_json::Value::Null);
        assert_eq!(
            failed["last_exit"],
            serde_json::json!({"exit": "panicked", "reason": "boom"})
        );
        // It reads back as the status.
        let read: supertrees_core::TreeStatus = serde_json::from_str(&answer).expect("a status");
        assert_eq!(read.get("root/0/0").and_then(|n| n.pid), Some(102));
        assert_eq!(read.nodes().count(), status.nodes().count());
    }

    /// Connects a client that sends `watch` and turns the server until it
    /// watches.
    fn watcher(server: &mut StatusServer, render: &mut dyn FnMut(View) -> String) -> UnixStream {
        let before = server.watchers.len();
        let mut client = UnixStream::connect(server.path()).expect("connect");
        client.write_all(b"watch\n").expect("send");
        client.set_nonblocking(true).expect("non-blocking");
        let give_up = Instant::now() + Duration::from_secs(10);
        while server.watchers.len() == before {
            assert!(Instant::now() < give_up, "not watching");
            turn(server, render);
        }
        client
    }

    /// Reads the lines that arrived on `client`, turning the server, until
    /// `done` says so of them.
    fn read_lines(
        server: &mut StatusServer,
        client: &mut UnixStream,
        render: &mut dyn FnMut(View) -> String,
        done: impl Fn(&StatusServer, &[WatchLine]) -> bool,
    ) -> Vec<WatchLine> {
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut bytes = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let lines: Vec<WatchLine> = bytes
                .split(|&b| b == b'\n')
                .filter(|line: &&[u8]| !line.is_empty())
                .map(|line| serde_json::from_slice(line).expect("a watch line"))
                .collect();
            if bytes.last().is_none_or(|&b| b == b'\n') && done(server, &lines) {
                return lines;
            }
            assert!(Instant::now() < give_up, "{} lines", lines.len());
            turn(server, render);
            loop {
                match client.read(&mut buf) {
                    Ok(0) => panic!("the watch ended"),
                    Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => panic!("read: {err}"),
                }
            }
        }
    }

    fn started(n: u32) -> Event {
        crate::root::tests::started(n)
    }

    /// The path of an event line.
    fn path_of(line: &WatchLine) -> &str {
        match line {
            WatchLine::Event(watched) => &watched.path,
            WatchLine::Dropped { dropped } => panic!("{dropped} dropped"),
        }
    }

    #[test]
    fn a_watcher_gets_the_events_in_order_from_its_request_on() {
        let dir = TempDir::new("watch");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = |_| -> String { panic!("rendered for a watcher") };
        // Before anyone watches: for no one.
        server.publish(&started(99));
        let mut client = watcher(&mut server, &mut render);
        assert!(server.clients.is_empty(), "a watcher is no served client");
        let idle: Vec<PollFlags> = server.poll_fds().iter().map(PollFd::events).collect();
        assert_eq!(idle, [PollFlags::POLLIN, PollFlags::empty()]);
        let events: Vec<Event> = (0..300).map(started).collect();
        for event in &events {
            server.publish(event);
        }
        let dropped = Event::new("root".into(), None, crate::EventKind::Dropped(7));
        server.publish(&dropped);
        let lines = read_lines(&mut server, &mut client, &mut render, |_, l| l.len() == 301);
        for (line, event) in lines.iter().zip(events.iter().chain([&dropped])) {
            assert_eq!(line, &WatchLine::Event(Watched::from(event)));
        }
        let WatchLine::Event(last) = &lines[300] else {
            panic!("{:?}", lines[300]);
        };
        assert_eq!(
            (last.kind.as_str(), last.text.as_str()),
            ("dropped", "root: 7 events were dropped")
        );
        let WatchLine::Event(first) = &lines[0] else {
            panic!("{:?}", lines[0]);
        };
        assert_eq!(
            (first.path.as_str(), first.pid, first.kind.as_str()),
            ("root/0", Some(1000), "started")
        );
        // Nothing more came (the event before the request).
        assert!(
            matches!(client.read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        );
        assert_eq!(server.watchers.len(), 1);
    }

    #[test]
    fn a_watcher_that_does_not_read_misses_events_and_is_told_how_many() {
        let dir = TempDir::new("slowwatch");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_watch_queue(8, 1 << 20);
        let mut render = |_| "fine\n".to_owned();
        let mut client = watcher(&mut server, &mut render);
        // Far more than its socket's buffer and its queue hold, written
        // as the root's turns go.
        const EVENTS: u32 = 20_000;
        for n in 0..EVENTS {
            server.publish(&started(n));
            let w = &server.watchers[0];
            assert!(w.queue.len() <= 8, "{} lines queued", w.queue.len());
            if n % 50 == 0 {
                server.handle(Instant::now(), &mut render);
            }
        }
        let missed = server.watchers[0].missed;
        assert!(missed > 0, "nothing dropped");
        // Other clients are served meanwhile.
        assert_eq!(exchange(&mut server, b"status\n", &mut render), "fine\n");
        // Read, it is told how many it missed before the events after
        // them; once all is read, the next event comes.
        let drained = |server: &StatusServer, _: &[WatchLine]| {
            server.watchers[0].queue.is_empty() && server.watchers[0].dropped == 0
        };
        let mut lines = read_lines(&mut server, &mut client, &mut render, drained);
        server.publish(&started(EVENTS));
        let last = format!("root/{EVENTS}");
        lines.extend(read_lines(&mut server, &mut client, &mut render, |_, l| {
            l.last().is_some_and(|line| path_of(line) == last)
        }));
        let (mut next, mut told) = (0u64, 0u64);
        for line in &lines {
            match line {
                WatchLine::Dropped { dropped } => {
                    assert!(*dropped > 0);
                    next += dropped;
                    told += dropped;
                }
                WatchLine::Event(watched) => {
                    assert_eq!(watched.path, format!("root/{next}"), "after {told} dropped");
                    next += 1;
                }
            }
        }
        assert_eq!(next, u64::from(EVENTS) + 1);
        assert_eq!(told, missed);
        assert_eq!(server.watchers.len(), 1, "slow, not cut off");
    }

    #[test]
    fn a_watcher_whose_socket_takes_nothing_is_closed_after_the_stall() {
        let dir = TempDir::new("stall");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_watch_queue(4, 1 << 20)
            .with_watch_stall(Duration::from_millis(200));
        let mut render = |_| "fine\n".to_owned();
        let mut client = watcher(&mut server, &mut render);
        let began = Instant::now();
        let mut n = 0;
        while server.watchers[0].stalled_since.is_none() {
            for _ in 0..100 {
                server.publish(&started(n));
                n += 1;
            }
            server.handle(Instant::now(), &mut render);
        }
        let stalled = server.watchers[0].stalled_since.expect("stalled");
        assert_eq!(
            server.next_deadline(),
            Some(stalled + Duration::from_millis(200))
        );
        let polled: Vec<PollFlags> = server.poll_fds().iter().map(PollFd::events).collect();
        assert_eq!(polled, [PollFlags::POLLIN, PollFlags::POLLOUT]);
        let give_up = Instant::now() + Duration::from_secs(10);
        while !server.watchers.is_empty() {
            assert!(Instant::now() < give_up, "never closed");
            turn(&mut server, &mut render);
        }
        assert!(began.elapsed() >= Duration::from_millis(200));
        // What its socket took is there, then the end.
        client.set_nonblocking(false).expect("blocking");
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("read to the end");
        assert!(
            got.ends_with(b"\n") && got.len() > 1000,
            "{} bytes",
            got.len()
        );
    }

    #[test]
    fn watchers_are_bounded_and_take_no_room_from_other_clients() {
        let dir = TempDir::new("watchers");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_max_watchers(2)
            .with_max_clients(1);
        let mut render = |_| "fine\n".to_owned();
        let mut first = watcher(&mut server, &mut render);
        let _second = watcher(&mut server, &mut render);
        assert_eq!(
            exchange(&mut server, b"watch\n", &mut render),
            BUSY_WATCHERS
        );
        assert_eq!(server.watchers.len(), 2);
        // With one client served at a time, two watchers and an order
        // waiting, `status` is served.
        let mut order = UnixStream::connect(server.path()).expect("connect");
        order.write_all(b"restart root/0\n").expect("send");
        let give_up = Instant::now() + Duration::from_secs(10);
        while server.orders.waiting == 0 {
            assert!(Instant::now() < give_up, "no order");
            turn(&mut server, &mut render);
        }
        assert_eq!(exchange(&mut server, b"status\n", &mut render), "fine\n");
        server.publish(&started(0));
        let lines = read_lines(&mut server, &mut first, &mut render, |_, l| !l.is_empty());
        assert_eq!(path_of(&lines[0]), "root/0");
    }

    #[test]
    fn a_watcher_that_hangs_up_frees_its_place() {
        let dir = TempDir::new("hangup");
        let mut server = StatusServer::bind(&dir.join("status.sock"))
            .expect("bind")
            .with_max_watchers(1);
        let mut render = |_| "fine\n".to_owned();
        let gone = watcher(&mut server, &mut render);
        assert_eq!(
            exchange(&mut server, b"watch\n", &mut render),
            BUSY_WATCHERS
        );
        drop(gone);
        let give_up = Instant::now() + Duration::from_secs(10);
        while !server.watchers.is_empty() {
            assert!(Instant::now() < give_up, "the hang-up was not seen");
            turn(&mut server, &mut render);
        }
        // Its place is free. A watcher that only shuts down its writing
        // side (as `nc` does at the end of its input) still watches.
        let mut next = watcher(&mut server, &mut render);
        next.shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        for _ in 0..10 {
            turn(&mut server, &mut render);
        }
        assert_eq!(server.watchers.len(), 1);
        let polled: Vec<PollFlags> = server.poll_fds().iter().map(PollFd::events).collect();
        assert_eq!(
            polled,
            [PollFlags::POLLIN, PollFlags::empty()],
            "no busy loop on its EOF"
        );
        server.publish(&started(3));
        let lines = read_lines(&mut server, &mut next, &mut render, |_, l| !l.is_empty());
        assert_eq!(path_of(&lines[0]), "root/3");
    }

    #[test]
    fn a_watch_ends_with_the_tree() {
        let dir = TempDir::new("treeend");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = |_| "fine\n".to_owned();
        let mut client = watcher(&mut server, &mut render);
        server.publish(&started(5));
        drop(server);
        client.set_nonblocking(false).expect("blocking");
        let mut got = String::new();
        client.read_to_string(&mut got).expect("read to the end");
        let line: WatchLine = serde_json::from_str(got.trim_end()).expect("one line");
        assert_eq!(path_of(&line), "root/5");
    }
}
