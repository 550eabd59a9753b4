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

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{self, sockopt, MsgFlags};

use super::dir::{
    check_ancestors, check_length, prepare_directory, remove_created_directory, remove_stale_socket,
};
use super::{after, with_context, MAX_REQUEST};
use supertrees_core::control::{sanitize, Answer, NodePath, Op, Order, Request, Ticket};

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

/// The answer to a peer that is not our user.
const PERMISSION_DENIED: &[u8] = b"error: permission denied\n";
/// The answer to an idle client cut off to make room for another.
const BUSY: &[u8] = b"error: busy\n";
/// The answer to an order while [`MAX_AWAITING`] clients wait for theirs.
const BUSY_ORDERS: &str = "error: busy: 64 requests wait for their answers; try again later\n";
/// The answer to a request line longer than [`MAX_REQUEST`].
const TOO_LONG: &str = "error: request too long\n";
/// The answer to a client that sent no complete request line in time.
const TIMED_OUT: &str = "error: timed out waiting for a request\n";

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
    /// When an idle client may be cut off, if none may now and all the
    /// room is taken.
    room_at: Option<Instant>,
    /// The connections being served, oldest first.
    clients: Vec<Client>,
    /// The requests that name a node, on their way to the supervisor that
    /// owns it.
    orders: Orders,
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
            room_at: None,
            clients: Vec::new(),
            orders: Orders::default(),
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
    /// Where the socket file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The fds to poll and their events: the listener (readable, unless
    /// accepting is paused after an error or no connection can be accepted
    /// now) and each client (readable while its request is read or it
    /// waits for an order's answer, writable while it has output pending).
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::with_capacity(1 + self.clients.len());
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
        fds
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
            .chain(self.accept_paused_until)
            .chain(self.room_at)
            .min()
    }

    /// Does all the non-blocking work that is possible now: reads requests
    /// and answers them, writes pending output, times out clients and drops
    /// finished ones, oldest first; then accepts waiting connections as far
    /// as there is room or idle clients to cut off (refusing peers of
    /// another uid), serving each at once if its request is there. `render`
    /// produces the status text; it is called once per `status` request.
    pub(crate) fn handle(&mut self, now: Instant, render: &mut dyn FnMut() -> String) {
        if self.accept_paused_until.is_some_and(|until| now >= until) {
            self.accept_paused_until = None;
        }
        let write_timeout = self.write_timeout;
        let orders = &mut self.orders;
        self.clients
            .retain_mut(|client| client.advance(now, write_timeout, render, orders));
        if self.accept_paused_until.is_none() {
            self.accept(now, render);
        }
        self.plan_room(now);
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
    fn accept(&mut self, now: Instant, render: &mut dyn FnMut() -> String) {
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
                    refuse(stream, PERMISSION_DENIED);
                    continue;
                }
                Err(err) => {
                    tracing::warn!(%err, "can't tell who a status client is; refusing it");
                    refuse(stream, PERMISSION_DENIED);
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
            if !client.advance(now, self.write_timeout, render, &mut self.orders) {
                continue;
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
    /// Removes the socket file, if it is still ours.
    fn drop(&mut self) {
        if std::process::id() != self.owner_pid {
            return;
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
    /// Makes all the progress possible now; `false` when the client is done
    /// with and must be dropped.
    fn advance(
        &mut self,
        now: Instant,
        write_timeout: Duration,
        render: &mut dyn FnMut() -> String,
        orders: &mut Orders,
    ) -> bool {
        if let ClientState::Reading(buf) = &mut self.state {
            let request = read_request(&self.stream, buf);
            let answer = match reply(request, now >= self.deadline, render) {
                Reply::Wait => return true,
                Reply::Answer(answer) => answer,
                Reply::Order(op, path) => {
                    tracing::info!(peer_uid = self.peer.0, peer_pid = self.peer.1, request = op.verb(), %path,
                        "an operator's request");
                    match orders.make(op, path) {
                        Some(ticket) => {
                            // Answered when the answer comes (see `answer`).
                            self.state = ClientState::Awaiting(ticket);
                            return true;
                        }
                        None => BUSY_ORDERS.to_owned(),
                    }
                }
                Reply::Drop => return false,
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
                return false;
            }
            return true;
        }
        let ClientState::Writing { out, written } = &mut self.state else {
            return true;
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
                        return false;
                    }
                    return true;
                }
                Ok(sent) => *written += sent,
                Err(Errno::EINTR) => {}
                Err(err) => {
                    tracing::debug!(%err, "status client went away before its answer");
                    return false;
                }
            }
        }
        drain(&self.stream);
        tracing::debug!(bytes = out.len(), "status client answered");
        false
    }
}

/// What to do with a client whose request was read as far as it could be.
enum Reply {
    /// Wait for more of its request.
    Wait,
    /// Write it this answer, then close the connection.
    Answer(String),
    /// Carry out this order (answered later).
    Order(Op, NodePath),
    /// Close the connection without an answer.
    Drop,
}

/// What to do with a client after reading its request came to `request`,
/// past its deadline (`timed_out`) or not.
fn reply(request: Received, timed_out: bool, render: &mut dyn FnMut() -> String) -> Reply {
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
fn answer(line: &[u8], render: &mut dyn FnMut() -> String) -> Reply {
    match Request::parse(line) {
        Ok(Request::Status) => Reply::Answer(render()),
        Ok(request @ (Request::StatusJson | Request::Watch | Request::Metrics)) => {
            Reply::Answer(format!(
                "error: `{}` is not served by this tree yet\n",
                request.line()
            ))
        }
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
        let mut render = || {
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
    fn a_restart_becomes_an_order_whose_answer_the_client_gets() {
        use supertrees_core::control::Refusal;
        let dir = TempDir::new("order");
        let mut server = StatusServer::bind(&dir.join("status.sock")).expect("bind");
        let mut render = || -> String { panic!("rendered for an order") };
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
        let mut render = || "root: running\n".to_owned();
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
        let mut render = || -> String { panic!("rendered for an unknown request") };
        assert_eq!(
            exchange(&mut server, b"stats\n", &mut render),
            "error: unknown request `stats`; send `status` or `restart PATH`\n"
        );
        assert_eq!(
            exchange(&mut server, b"a`b\\c\x1b[2J\xff\n", &mut render),
            "error: unknown request `a\\x60b\\x5cc\\x1b[2J\\xff`; send `status` or `restart PATH`\n"
        );
        let long = format!("{}\n", "y".repeat(40));
        assert_eq!(
            exchange(&mut server, long.as_bytes(), &mut render),
            format!(
                "error: unknown request `{}...`; send `status` or `restart PATH`\n",
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
        let mut render = String::new;
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
        let mut render = String::new;
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
        let mut render = || "fine\n".to_owned();
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
        let mut render = || "fine\n".to_owned();
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
        let mut render = || -> String { panic!("rendered for an incomplete request") };
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
        let mut render = String::new;
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
        let mut render = || big.clone();
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
}
