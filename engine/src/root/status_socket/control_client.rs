//! The operator's client of the status socket: [`Client`], one request per
//! connection, as the server answers them; [`Watch`], the stream of
//! `watch`; [`ClientError`], what went wrong, told apart as a program that
//! acts on it needs (the tree refused, a bad path, a system error).

use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use supertrees_core::control::{sanitize, BadPath, NodePath, Op, Request, WatchLine};
use supertrees_core::TreeStatus;

use super::client::{self, check_peer, connect_error, connect_nonblocking, exchange, open};
use super::{after, PERMISSION_DENIED};

/// How long [`Client`] waits for the answer to `status`, `status json` and
/// `metrics` unless told otherwise ([`Client::with_timeout`]).
///
/// # Examples
///
/// ```
/// assert_eq!(supertrees_engine::STATUS_TIMEOUT.as_secs(), 10);
/// ```
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Client`] waits for the answer to `restart`, `stop` and
/// `start` unless told otherwise ([`Client::with_timeout`]): beyond the
/// tree's own bound of an order (30 s, or the child's shutdown time plus
/// 5 s, and 1 s more per supervisor on the way).
///
/// # Examples
///
/// ```
/// assert_eq!(supertrees_engine::COMMAND_TIMEOUT.as_secs(), 45);
/// ```
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(45);

/// The longest line of a [`Watch`] stream accepted.
const MAX_WATCH_LINE: usize = 1 << 20;

/// A client of a running tree's status socket (see
/// `status_socket` on the root tree): its status, its metrics, its events
/// as they happen, and the operator's commands on its nodes.
///
/// The server answers one request per connection, so a `Client` holds no
/// connection: [`connect`](Self::connect) checks that the socket is served,
/// by our user or root, and each method opens a connection of its own.
/// It is cheap to clone and may be used from any number of threads.
///
/// # Examples
///
/// ```no_run
/// use supertrees_engine::Client;
///
/// let tree = Client::connect("/run/user/1000/my-service/status.sock")?;
/// print!("{}", tree.status_text()?);
/// match tree.restart("root/1/0") {
///     Ok(done) => println!("{done}"),                          // "restarted root/1/0"
///     Err(err) if err.is_refused() => eprintln!("refused: {err}"), // "not found: root/1/0"
///     Err(err) => return Err(err.into()),
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Option<Duration>,
}

impl Client {
    /// A client of the tree that serves the status socket `socket`.
    ///
    /// Connects once to check that something serves it, and that it runs
    /// as our user or as root (`SO_PEERCRED`), then hangs up: it never
    /// waits (a server whose backlog is full is taken as serving it).
    ///
    /// # Errors
    ///
    /// An error naming `socket`: `NotFound` when there is no socket
    /// (the tree is not running), `ConnectionRefused` when nothing serves
    /// it (a stale socket), `PermissionDenied` when we may not connect or
    /// another user serves it, another kind for other system errors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(socket: impl AsRef<Path>) -> io::Result<Client> {
        let socket = socket.as_ref();
        loop {
            match connect_nonblocking(socket) {
                Ok(fd) => check_peer(&UnixStream::from(fd), socket)?,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {}
                Err(errno) => return Err(connect_error(socket, errno)),
            }
            return Ok(Client {
                socket: socket.to_owned(),
                timeout: None,
            });
        }
    }

    /// This client, waiting at most `timeout` for any answer (and to
    /// connect and send), instead of [`STATUS_TIMEOUT`] for the status and
    /// metrics and [`COMMAND_TIMEOUT`] for commands. For a [`Watch`], it
    /// bounds connecting and sending only: events come when they come.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?
    ///     .with_timeout(Duration::from_secs(2));
    /// let alive = tree.status_text().is_ok();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// The status socket this client asks.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// assert_eq!(tree.socket(), std::path::Path::new("/tmp/my-service/status.sock"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The tree's status as text (`status`): one line per node, indented
    /// under its supervisor, as `TreeStatus`'s `Display` draws it.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] when the socket can not be reached or the
    /// answer does not come in time; [`ClientError::Refused`] when the tree
    /// answers with an error line.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// print!("{}", tree.status_text()?);
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn status_text(&self) -> Result<String, ClientError> {
        self.request(&Request::Status)
    }

    /// The tree's status as one JSON document (`status json`), as the tree
    /// wrote it: `{"schema": 1, "generation": G, "nodes": [...]}`.
    ///
    /// # Errors
    ///
    /// As [`status_text`](Self::status_text); a tree that does not serve
    /// `status json` refuses it ([`ClientError::Refused`]); an answer that
    /// is no JSON object is an [`io::ErrorKind::InvalidData`] error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// let doc: serde_json::Value = serde_json::from_str(&tree.status_json()?)?;
    /// println!("{} nodes", doc["nodes"].as_array().map_or(0, Vec::len));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status_json(&self) -> Result<String, ClientError> {
        let answer = self.request(&Request::StatusJson)?;
        if !answer.trim_start().starts_with('{') {
            return Err(self.unexpected(&Request::StatusJson, &answer));
        }
        Ok(answer)
    }

    /// The tree's status (`status json`), read into a
    /// [`TreeStatus`]: every node with its kind, pid, state, restarts,
    /// last exit, uptime (measured up to when it was read) and a limited
    /// subtree's resources.
    ///
    /// # Errors
    ///
    /// As [`status_json`](Self::status_json); a document that does not
    /// read as a `TreeStatus` (another schema, a state this version does
    /// not know) is an [`io::ErrorKind::InvalidData`] error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use supertrees_core::NodeState;
    ///
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// let status = tree.status()?;
    /// let down: Vec<_> = status
    ///     .nodes()
    ///     .filter(|node| node.state != NodeState::Ready)
    ///     .map(|node| node.path.as_str())
    ///     .collect();
    /// println!("not ready: {down:?}");
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn status(&self) -> Result<TreeStatus, ClientError> {
        let text = self.status_json()?;
        serde_json::from_str(&text).map_err(|err| {
            ClientError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the status socket {} answered `status json` with no status of this \
                     version: {err}",
                    self.socket.display()
                ),
            ))
        })
    }

    /// The tree's metrics in the Prometheus text format (`metrics`).
    ///
    /// # Errors
    ///
    /// As [`status_text`](Self::status_text).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// print!("{}", tree.metrics()?);
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn metrics(&self) -> Result<String, ClientError> {
        self.request(&Request::Metrics)
    }

    /// An operator's restart of the node at `path` (a supervisor: its
    /// whole subtree): stopped in order and started again, not counted in
    /// its supervisor's intensity. Answers what was done, e.g. `restarted
    /// root/1/0`, once it is.
    ///
    /// # Errors
    ///
    /// [`ClientError::BadPath`] for a path no node may have (checked here,
    /// before anything is sent); [`ClientError::Refused`] with the tree's
    /// answer (`not found: root/1/9`, `busy ...`, `timed out after 35s:
    /// root/1/0`); [`ClientError::Io`] as for
    /// [`status_text`](Self::status_text).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// assert_eq!(tree.restart("root/1/0")?, "restarted root/1/0");
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn restart(&self, path: &str) -> Result<String, ClientError> {
        self.order(Op::Restart, path)
    }

    /// An operator's stop of the node at `path`: stopped in order, it stays
    /// down until [`start`](Self::start) (a child started at run time is
    /// removed). Answers e.g. `stopped root/1/0`.
    ///
    /// # Errors
    ///
    /// As [`restart`](Self::restart); `already stopped: PATH` is a
    /// refusal.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// tree.stop("root/1/0")?;
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn stop(&self, path: &str) -> Result<String, ClientError> {
        self.order(Op::Stop, path)
    }

    /// Starts the node at `path`, which an operator stopped. Answers e.g.
    /// `started root/1/0`.
    ///
    /// # Errors
    ///
    /// As [`restart`](Self::restart); `already running: PATH` is a
    /// refusal.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// tree.start("root/1/0")?;
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn start(&self, path: &str) -> Result<String, ClientError> {
        self.order(Op::Start, path)
    }

    /// The tree's events as they happen (`watch`): a [`Watch`], which
    /// yields each line the tree sends until it closes the stream (when
    /// the tree stops).
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] when the socket can not be reached or the
    /// request can not be sent in time. A tree that refuses the request
    /// says so in the stream's first item.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use supertrees_core::control::WatchLine;
    ///
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// for line in tree.watch()? {
    ///     match line? {
    ///         WatchLine::Event(event) => println!("{} {}", event.path, event.kind),
    ///         WatchLine::Dropped { dropped } => println!("({dropped} events missed)"),
    ///     }
    /// }
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn watch(&self) -> Result<Watch, ClientError> {
        let timeout = self.timeout.unwrap_or(STATUS_TIMEOUT);
        let sent = open(
            &self.socket,
            &Request::Watch,
            after(Instant::now(), timeout),
        )?;
        let stream = sent.stream;
        stream.set_nonblocking(false)?;
        Ok(Watch {
            reader: BufReader::new(stream),
            socket: self.socket.clone(),
            done: false,
        })
    }

    /// Sends `request` and returns the whole answer, as the tree wrote it,
    /// unless it is an error line: what the other methods are made of. It
    /// reads until the tree closes the connection, within the timeout: a
    /// [`Request::Watch`] is read with [`watch`](Self::watch) instead.
    ///
    /// # Errors
    ///
    /// [`ClientError::Refused`] with the tree's error line (without its
    /// `error: `); [`ClientError::Io`] as for
    /// [`status_text`](Self::status_text).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use supertrees_core::control::Request;
    ///
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// print!("{}", tree.request(&Request::Status)?);
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn request(&self, request: &Request) -> Result<String, ClientError> {
        let timeout = self.timeout.unwrap_or(match request {
            Request::Restart(_) | Request::Stop(_) | Request::Start(_) => COMMAND_TIMEOUT,
            Request::Status | Request::StatusJson | Request::Watch | Request::Metrics => {
                STATUS_TIMEOUT
            }
        });
        let answer = exchange(&self.socket, request, timeout)?;
        if let Some(refusal) = answer.strip_prefix("error: ") {
            return Err(ClientError::Refused {
                request: request.line(),
                answer: refusal.lines().next().unwrap_or_default().to_owned(),
            });
        }
        if answer.is_empty() {
            return Err(self.unexpected(request, &answer));
        }
        Ok(answer)
    }

    /// Sends the order `op` on `path` and reads its one-line answer.
    fn order(&self, op: Op, path: &str) -> Result<String, ClientError> {
        let node = NodePath::parse(path).map_err(|why| ClientError::BadPath {
            path: path.to_owned(),
            why,
        })?;
        let request = Request::order(op, node);
        let answer = self.request(&request)?;
        match answer
            .strip_prefix("ok ")
            .and_then(|a| a.strip_suffix('\n'))
        {
            Some(done) if !done.contains('\n') => Ok(done.to_owned()),
            _ => Err(self.unexpected(&request, &answer)),
        }
    }

    /// The error for an answer to `request` that is none it may have.
    fn unexpected(&self, request: &Request, answer: &str) -> ClientError {
        ClientError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the status socket {} answered `{}` with `{}`: no answer to it",
                self.socket.display(),
                request.line(),
                sanitize(answer.as_bytes())
            ),
        ))
    }
}

/// The stream of a tree's events, from [`Client::watch`]: an iterator of
/// the [`WatchLine`]s the tree sends, one per line, which ends when the
/// tree closes the stream; an error line from the tree (it refused
/// `watch`) is its last item, a [`ClientError::Refused`].
///
/// Reading blocks until the next event: there is no timeout, since a tree
/// may have nothing to say for a long time. Dropping it hangs up.
///
/// # Examples
///
/// The raw lines, as the tree sent them:
///
/// ```no_run
/// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
/// let mut events = tree.watch()?;
/// while let Some(line) = events.next_line() {
///     println!("{}", line?);
/// }
/// # Ok::<(), supertrees_engine::ClientError>(())
/// ```
#[derive(Debug)]
pub struct Watch {
    reader: BufReader<UnixStream>,
    socket: PathBuf,
    done: bool,
}

impl Watch {
    /// The next line as the tree sent it (without its `'\n'`), or `None`
    /// once the tree closed the stream.
    ///
    /// # Errors
    ///
    /// [`ClientError::Refused`] for an error line (the stream ends after
    /// it); [`ClientError::Io`] when reading fails or a line is longer
    /// than 1 MiB.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let tree = supertrees_engine::Client::connect("/tmp/my-service/status.sock")?;
    /// if let Some(first) = tree.watch()?.next_line() {
    ///     println!("{}", first?);
    /// }
    /// # Ok::<(), supertrees_engine::ClientError>(())
    /// ```
    pub fn next_line(&mut self) -> Option<Result<String, ClientError>> {
        if self.done {
            return None;
        }
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_WATCH_LINE + 1).unwrap_or(u64::MAX);
        let read = io::Read::take(&mut self.reader, limit).read_until(b'\n', &mut line);
        match read {
            // The tree closed the stream (a reset after its last line is
            // the same end).
            Ok(0) => None,
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => None,
            Err(err) => {
                self.done = true;
                Some(Err(ClientError::Io(io::Error::new(
                    err.kind(),
                    format!(
                        "reading events from the status socket {}: {err}",
                        self.socket.display()
                    ),
                ))))
            }
            Ok(_) if line.last() != Some(&b'\n') && line.len() > MAX_WATCH_LINE => {
                self.done = true;
                Some(Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the status socket {} sent a line of more than {MAX_WATCH_LINE} bytes",
                        self.socket.display()
                    ),
                ))))
            }
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let line = String::from_utf8_lossy(&line).into_owned();
                if line == PERMISSION_DENIED {
                    self.done = true;
                    return Some(Err(ClientError::Io(client::denied(&self.socket))));
                }
                match line.strip_prefix("error: ") {
                    Some(refusal) => {
                        self.done = true;
                        Some(Err(ClientError::Refused {
                            request: Request::Watch.line(),
                            answer: refusal.to_owned(),
                        }))
                    }
                    None => Some(Ok(line)),
                }
            }
        }
    }
}

impl Iterator for Watch {
    type Item = Result<WatchLine, ClientError>;

    /// The next line, parsed; a line that is no [`WatchLine`] is an
    /// [`io::ErrorKind::InvalidData`] error (and the stream goes on).
    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.next_line()? {
            Ok(line) => line,
            Err(err) => return Some(Err(err)),
        };
        Some(serde_json::from_str(&line).map_err(|err| {
            ClientError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the status socket {} sent `{}`, no event: {err}",
                    self.socket.display(),
                    sanitize(line.as_bytes())
                ),
            ))
        }))
    }
}

/// What went wrong with a request of a [`Client`]: the tree refused it or
/// the command failed ([`Refused`](Self::Refused)), the request was wrong
/// before it was sent ([`BadPath`](Self::BadPath)), or the system failed
/// ([`Io`](Self::Io)). A command-line tool exits 1, 100 and 111 for them,
/// as s6's tools do.
///
/// # Examples
///
/// ```no_run
/// use supertrees_engine::{Client, ClientError};
///
/// let tree = Client::connect("/tmp/my-service/status.sock")?;
/// let code = match tree.stop("root/1/0") {
///     Ok(_) => 0,
///     Err(ClientError::Refused { answer, .. }) => { eprintln!("{answer}"); 1 }
///     Err(ClientError::BadPath { .. }) => 100,
///     Err(_) => 111,
/// };
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The tree answered with an error line: it refused the request, or
    /// the command failed (`not found: root/1/9`, `already stopped:
    /// root/1/0`, `timed out after 35s: root/1/0`, `busy`, or a request
    /// this tree does not serve).
    Refused {
        /// The request's line, e.g. `restart root/1/9`.
        request: String,
        /// The tree's answer, without its `error: `.
        answer: String,
    },
    /// A path that no node may have, refused before anything was sent.
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: BadPath,
    },
    /// A system error: no socket, nothing serving it, not allowed, a
    /// timeout, a failed read or write, an answer that is none.
    Io(io::Error),
}

impl ClientError {
    /// Whether the tree refused the request or the command failed
    /// ([`ClientError::Refused`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use supertrees_engine::ClientError;
    ///
    /// let refused = ClientError::Refused {
    ///     request: "stop root/1/0".into(),
    ///     answer: "already stopped: root/1/0".into(),
    /// };
    /// assert!(refused.is_refused());
    /// assert_eq!(refused.to_string(), "already stopped: root/1/0");
    /// ```
    pub fn is_refused(&self) -> bool {
        matches!(self, ClientError::Refused { .. })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Refused { answer, .. } => f.write_str(answer),
            ClientError::BadPath { path, why } => {
                write!(f, "bad path `{}`: {why}", sanitize(path.as_bytes()))
            }
            ClientError::Io(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(err) => err.source(),
            ClientError::Refused { .. } | ClientError::BadPath { .. } => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        ClientError::Io(err)
    }
}

/// A refusal is an error of kind `Other`, a bad path `InvalidInput`, each
/// with the same message.
impl From<ClientError> for io::Error {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Io(err) => err,
            ClientError::BadPath { .. } => {
                io::Error::new(io::ErrorKind::InvalidInput, err.to_string())
            }
            ClientError::Refused { .. } => io::Error::other(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::status_socket::testing::{turn, TempDir};
    use crate::root::status_socket::StatusServer;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use supertrees_core::control::Watched;

    /// A server at `path` that answers every request line with
    /// `reply(line)` and closes; returns the lines it got.
    struct Fake {
        stop: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<String>>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Fake {
        fn serve(path: &Path, reply: fn(&str) -> String) -> Fake {
            let listener = UnixListener::bind(path).expect("bind");
            listener.set_nonblocking(true).expect("non-blocking");
            let stop = Arc::new(AtomicBool::new(false));
            let got = Arc::new(Mutex::new(Vec::new()));
            let (stopping, lines) = (Arc::clone(&stop), Arc::clone(&got));
            let thread = std::thread::spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    let Ok((mut stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    };
                    stream.set_nonblocking(false).expect("blocking");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(2)))
                        .expect("timeout");
                    let mut line = Vec::new();
                    let mut byte = [0u8];
                    while let Ok(1) = stream.read(&mut byte) {
                        if byte[0] == b'\n' {
                            break;
                        }
                        line.push(byte[0]);
                    }
                    if line.is_empty() {
                        continue; // connect()'s check
                    }
                    let line = String::from_utf8_lossy(&line).into_owned();
                    let _ = stream.write_all(reply(&line).as_bytes());
                    lines.lock().expect("lines").push(line);
                }
            });
            Fake {
                stop,
                got,
                thread: Some(thread),
            }
        }

        fn got(&self) -> Vec<String> {
            self.got.lock().expect("lines").clone()
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn orders(line: &str) -> String {
        match line {
            "restart root/1/0" => "ok restarted root/1/0\n".to_owned(),
            "stop root/1/0" => "error: already stopped: root/1/0\n".to_owned(),
            "start root/1/0" => "ok started root/1/0\nmore\n".to_owned(),
            "restart root/1/9" => "error: not found: root/1/9\n".to_owned(),
            "status json" => concat!(
                r#"{"schema": 1, "generation": 1, "dropped": 0, "nodes": ["#,
                r#"{"path": "root", "kind": "supervisor", "pid": 4100, "state": "ready", "wanted": "up", "#,
                r#""restarts": 0, "last_exit": null, "up_ms": 93512}]}"#,
                "\n"
            )
            .to_owned(),
            "metrics" => "# TYPE supertrees_generation gauge\nsupertrees_generation 1\n".to_owned(),
            other => format!("error: unknown request `{other}`\n"),
        }
    }

    #[test]
    fn commands_answer_what_was_done_or_what_the_tree_refused() {
        let dir = TempDir::new("client-orders");
        let path = dir.join("status.sock");
        let fake = Fake::serve(&path, orders);
        let tree = Client::connect(&path).expect("connect");
        assert_eq!(tree.restart("root/1/0").expect("ok"), "restarted root/1/0");
        let refused = tree.restart("root/1/9").expect_err("refused");
        assert!(refused.is_refused());
        assert_eq!(refused.to_string(), "not found: root/1/9");
        match tree.stop("root/1/0") {
            Err(ClientError::Refused { request, answer }) => {
                assert_eq!(request, "stop root/1/0");
                assert_eq!(answer, "already stopped: root/1/0");
            }
            other => panic!("{other:?}"),
        }
        // Two lines are no answer to an order.
        match tree.start("root/1/0") {
            Err(ClientError::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidData),
            other => panic!("{other:?}"),
        }
        assert!(tree
            .status_json()
            .expect("json")
            .starts_with(r#"{"schema": 1, "generation": 1,"#));
        let status = tree.status().expect("a status");
        let root = status.get("root").expect("the root");
        assert_eq!(
            (root.pid, root.state),
            (Some(4100), supertrees_core::NodeState::Ready)
        );
        assert_eq!(
            tree.metrics().expect("metrics"),
            "# TYPE supertrees_generation gauge\nsupertrees_generation 1\n"
        );
        // An error line is the tree's refusal, whatever was asked.
        let refused = tree.status_text().expect_err("unknown here");
        assert_eq!(refused.to_string(), "unknown request `status`");
        let err: io::Error = refused.into();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        drop(tree);
        let got = fake.got();
        assert_eq!(got.len(), 8, "{got:?}");
    }

    #[test]
    fn a_bad_path_is_refused_before_anything_is_sent() {
        let dir = TempDir::new("client-bad-path");
        let path = dir.join("status.sock");
        let fake = Fake::serve(&path, orders);
        let tree = Client::connect(&path).expect("connect");
        for (bad, why) in [
            ("root", BadPath::Root),
            ("1/0", BadPath::NotInTree),
            ("root//1", BadPath::Empty),
            ("root/a b\n", BadPath::Byte),
        ] {
            match tree.restart(bad) {
                Err(ClientError::BadPath { path, why: got }) => {
                    assert_eq!((path.as_str(), got), (bad, why));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let err = tree.stop("root/a b\n").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "bad path `root/a b\\x0a`: a segment holds ASCII letters, digits, `_`, `-` and `#` only"
        );
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
        std::thread::sleep(Duration::from_millis(50));
        assert!(fake.got().is_empty());
    }

    #[test]
    fn the_status_comes_from_a_real_server_and_orders_are_answered() {
        use crate::root::status_socket::server::View;
        use supertrees_core::{Event, EventKind, NodeState};

        let dir = TempDir::new("client-real");
        let path = dir.join("status.sock");
        let mut server = StatusServer::bind(&path).expect("bind");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut render = |view| match view {
                View::Text => "root  supervisor  ready\n".to_owned(),
                View::Json => {
                    let status = TreeStatus::new(4100, Instant::now());
                    format!("{}\n", serde_json::to_string(&status).expect("json"))
                }
                View::Metrics => "supertrees_generation 1\n".to_owned(),
            };
            while !stopping.load(Ordering::Relaxed) {
                turn(&mut server, &mut render);
                for order in server.take_orders() {
                    let result = if order.path.as_str() == "root/0" {
                        Ok(())
                    } else {
                        Err(supertrees_core::control::Refusal::NotFound)
                    };
                    server.answer(&order.answer(result), Instant::now());
                }
                server.publish(&Event::new("root/0".into(), Some(7), EventKind::Ready));
            }
        });
        let tree = Client::connect(&path).expect("connect");
        let status = tree.status_text();
        let json = tree.status();
        let restarted = tree.restart("root/0");
        let stopped = tree.stop("root/7");
        let event = tree.watch().map(|mut events| events.next());
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("the server thread");
        assert_eq!(status.expect("status"), "root  supervisor  ready\n");
        let json = json.expect("a status");
        assert_eq!(
            json.get("root").map(|root| (root.pid, root.state)),
            Some((Some(4100), NodeState::Starting))
        );
        assert_eq!(restarted.expect("restarted"), "restarted root/0");
        assert_eq!(
            stopped.expect_err("refused").to_string(),
            "not found: root/7"
        );
        match event.expect("watch sent") {
            Some(Ok(WatchLine::Event(event))) => {
                assert_eq!(
                    (event.path.as_str(), event.pid, event.kind.as_str()),
                    ("root/0", Some(7), "ready")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watch_yields_each_line_until_the_tree_closes() {
        fn events(line: &str) -> String {
            assert_eq!(line, "watch");
            concat!(
                r#"{"at": 1765130000123, "path": "root/1/0", "pid": 4242, "kind": "exited", "text": "root/1/0 (pid 4242): panicked"}"#,
                "\n",
                r#"{"dropped": 3}"#,
                "\nnot json\nerror: the end\n{\"dropped\": 1}\n"
            )
            .to_owned()
        }
        let dir = TempDir::new("client-watch");
        let path = dir.join("status.sock");
        let _fake = Fake::serve(&path, events);
        let tree = Client::connect(&path).expect("connect");
        let lines: Vec<_> = tree.watch().expect("watch").collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        match &lines[0] {
            Ok(WatchLine::Event(Watched {
                at,
                path,
                pid,
                kind,
                ..
            })) => {
                assert_eq!(
                    (*at, path.as_str(), *pid, kind.as_str()),
                    (1_765_130_000_123, "root/1/0", Some(4242), "exited")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(lines[1], Ok(WatchLine::Dropped { dropped: 3 })));
        assert!(
            matches!(&lines[2], Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::InvalidData)
        );
        assert!(
            matches!(&lines[3], Err(ClientError::Refused { answer, .. }) if answer == "the end")
        );

        let mut raw = tree.watch().expect("watch");
        assert_eq!(
            raw.next_line().expect("a line").expect("ok"),
            r#"{"at": 1765130000123, "path": "root/1/0", "pid": 4242, "kind": "exited", "text": "root/1/0 (pid 4242): panicked"}"#
        );
    }

    #[test]
    fn a_watch_the_server_refuses_us_is_a_system_error() {
        let dir = TempDir::new("client-watch-denied");
        let path = dir.join("status.sock");
        let _fake = Fake::serve(&path, |_| "error: permission denied\n".to_owned());
        let tree = Client::connect(&path).expect("connect");
        let lines: Vec<_> = tree.watch().expect("watch").collect();
        assert!(
            matches!(&lines[..], [Err(ClientError::Io(e))] if e.kind() == io::ErrorKind::PermissionDenied),
            "{lines:?}"
        );
    }

    #[test]
    fn connect_tells_a_missing_socket_from_a_stale_one() {
        let dir = TempDir::new("client-connect");
        let path = dir.join("status.sock");
        let err = Client::connect(&path).expect_err("no socket");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("no such socket"), "{err}");
        drop(UnixListener::bind(&path).expect("bind a socket that will go stale"));
        let err = Client::connect(&path).expect_err("stale");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let dir = TempDir::new("client-silent");
        let path = dir.join("status.sock");
        let _listener = UnixListener::bind(&path).expect("bind");
        let tree = Client::connect(&path)
            .expect("connect")
            .with_timeout(Duration::from_millis(100));
        let began = Instant::now();
        match tree.restart("root/0") {
            Err(ClientError::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
        assert!(began.elapsed() < Duration::from_secs(5));
    }
}
