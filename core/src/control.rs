//! The requests of the status socket, the operator's door: one line each,
//! parsed here into one typed [`Request`], which the process engine's
//! server answers and its client sends; and the [`Order`]s that carry a
//! request naming a node to the supervisor that owns it, and their
//! [`Answer`]s. Portable: no socket here.
//!
//! `status` is answered by the root from the tree's status. A request that
//! names a node (`restart PATH`) becomes an [`Order`], which travels down
//! the tree, one supervisor to the next ([`NodePath::hop`]), to the state
//! machine of the supervisor whose child PATH is, in whatever process it
//! runs; that machine decides and answers ([`Answer`]), within a bound
//! ([`bound`]), and the answer travels back up the same way.

use std::fmt::{self, Write as _};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Shutdown;

/// One line of the stream that answers `watch`: an event, or how many
/// events this client missed because it read too slowly (the tree never
/// waits for a watcher).
///
/// Each is one JSON object on its own line: `{"at": 1765130000123, "path":
/// "root/1/0", "pid": 4242, "kind": "exited", "text": "root/1/0 (pid
/// 4242): panicked: boom; restarting after 10ms"}`, or `{"dropped": 3}`.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::control::WatchLine;
///
/// let line: WatchLine = serde_json::from_str(r#"{"dropped": 3}"#)?;
/// assert_eq!(line, WatchLine::Dropped { dropped: 3 });
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WatchLine {
    /// An event of the tree.
    Event(Watched),
    /// This many events were not sent to this client.
    Dropped {
        /// How many.
        dropped: u64,
    },
}

/// An event as `watch` streams it (see [`WatchLine`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Watched {
    /// When it happened: milliseconds since the Unix epoch.
    pub at: u64,
    /// Where ([`Event::path`](crate::Event::path)).
    pub path: String,
    /// The process, where known.
    pub pid: Option<u32>,
    /// What happened: [`EventKind::name`](crate::EventKind::name).
    pub kind: String,
    /// The event's `Display`.
    pub text: String,
}

impl From<&crate::Event> for Watched {
    fn from(event: &crate::Event) -> Self {
        let at = event
            .at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Watched {
            at,
            path: event.path.clone(),
            pid: event.pid,
            kind: event.kind.name().to_owned(),
            text: event.to_string(),
        }
    }
}

/// How many bytes of an unknown request its error line echoes.
pub const ECHOED_REQUEST: usize = 32;

/// The longest path a request may name, in bytes.
pub const MAX_PATH: usize = 900;

/// The longest segment of a path, in bytes: a name (64) or a child
/// started at run time (`template#id`).
pub const MAX_SEGMENT: usize = 128;

/// The longest name of a child or a template, in bytes.
pub const MAX_NAME: usize = 64;

/// Why `name` can not name a node in a path (`None`: it can): a name is 1
/// to [`MAX_NAME`] ASCII letters, digits, `_` and `-`. The names of
/// children ([`Tree::add_named_worker`](crate::Tree::add_named_worker),
/// [`Tree::with_name`](crate::Tree::with_name)) must also not be digits
/// only (a position) nor `host` (a supervisor's worker host).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::control::bad_name;
///
/// assert_eq!(bad_name("web-1"), None);
/// assert!(bad_name("web/1").is_some());
/// ```
pub fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Some("a name is 1 to 64 characters long");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    (!name.bytes().all(allowed)).then_some("a name holds ASCII letters, digits, `_` and `-` only")
}

/// Why `name` can not name a child (`None`: it can): [`bad_name`], and
/// neither digits only (read as a position) nor `host`.
pub fn bad_child_name(name: &str) -> Option<&'static str> {
    bad_name(name).or_else(|| {
        if name.bytes().all(|b| b.is_ascii_digit()) {
            Some("a name of digits only reads as a position")
        } else if name == "host" {
            Some("`host` names a supervisor's worker host")
        } else {
            None
        }
    })
}

/// What every request a client may send looks like, for error lines.
const REQUESTS: &str =
    "`status`, `status json`, `watch`, `restart PATH`, `stop PATH`, `start PATH` or `metrics`";

/// A request on the status socket.
/// Not `#[non_exhaustive]`: the server matches every request, so a new
/// one does not build until it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `status`: the tree as text, one line per node.
    Status,
    /// `status json`: the tree as one JSON document (`schema: 1`), the
    /// fields of [`TreeStatus`](crate::TreeStatus).
    StatusJson,
    /// `watch`: a stream of JSON lines ([`WatchLine`]), one per lifecycle
    /// event from the request on, until the client hangs up or the tree
    /// ends.
    Watch,
    /// `metrics`: the tree's metrics in the Prometheus text format.
    Metrics,
    /// `restart PATH`: an operator's restart of the child at PATH (a
    /// supervisor: its whole subtree), answered by the supervisor that
    /// owns it (see [`Op::Restart`]).
    Restart(NodePath),
    /// `stop PATH`: an operator's stop; the child stays down until
    /// `start PATH` (see [`Op::Stop`]).
    Stop(NodePath),
    /// `start PATH`: starts a child an operator stopped (see [`Op::Start`]).
    Start(NodePath),
}

impl Request {
    /// Parses one request line (without its `'\n'`; a `'\r'` before it is
    /// ignored, for clients that end lines with CRLF).
    ///
    /// # Errors
    ///
    /// [`BadRequest`] for anything else, echoing what was sent.
    pub fn parse(line: &[u8]) -> Result<Self, BadRequest> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line {
            b"status" => return Ok(Request::Status),
            b"status json" => return Ok(Request::StatusJson),
            b"watch" => return Ok(Request::Watch),
            b"metrics" => return Ok(Request::Metrics),
            _ => {}
        }
        for op in Op::ALL {
            let verb = op.verb();
            let Some(rest) = line.strip_prefix(verb.as_bytes()) else {
                continue;
            };
            if rest.is_empty() {
                return Err(BadRequest::MissingPath { verb });
            }
            let Some(path) = rest.strip_prefix(b" ") else {
                continue;
            };
            return std::str::from_utf8(path)
                .map_err(|_| BadPath::Byte)
                .and_then(NodePath::parse)
                .map(|path| Request::order(op, path))
                .map_err(|why| BadRequest::Path {
                    echoed: sanitize(path),
                    why,
                });
        }
        Err(BadRequest::Unknown {
            echoed: sanitize(line),
        })
    }

    /// The request that carries out `op` on the node at `path`.
    pub fn order(op: Op, path: NodePath) -> Self {
        match op {
            Op::Restart => Request::Restart(path),
            Op::Stop => Request::Stop(path),
            Op::Start => Request::Start(path),
        }
    }

    /// The request's line, as a client sends it (without its `'\n'`).
    pub fn line(&self) -> String {
        match self {
            Request::Status => "status".to_owned(),
            Request::StatusJson => "status json".to_owned(),
            Request::Watch => "watch".to_owned(),
            Request::Metrics => "metrics".to_owned(),
            Request::Restart(path) => format!("restart {path}"),
            Request::Stop(path) => format!("stop {path}"),
            Request::Start(path) => format!("start {path}"),
        }
    }
}

/// A line that is no request: its error line says what was sent, as
/// [`sanitize`] shows it, and what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// No request starts so.
    Unknown { echoed: String },
    /// A request that names a node came without its path.
    MissingPath { verb: &'static str },
    /// The path is none a node may have.
    Path { echoed: String, why: BadPath },
}

impl BadRequest {
    /// What was sent, as its error line shows it.
    pub fn echoed(&self) -> &str {
        match self {
            BadRequest::Unknown { echoed } | BadRequest::Path { echoed, .. } => echoed,
            BadRequest::MissingPath { verb } => verb,
        }
    }
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRequest::Unknown { echoed } => {
                write!(f, "unknown request `{echoed}`; send {REQUESTS}")
            }
            BadRequest::MissingPath { verb } => {
                write!(f, "`{verb}` needs the path of a node: `{verb} root/1/0`")
            }
            BadRequest::Path { echoed, why } => write!(f, "bad path `{echoed}`: {why}"),
        }
    }
}

impl std::error::Error for BadRequest {}

/// Why a path is none a node may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// It does not start with `root/`.
    NotInTree,
    /// It names the root, which no request acts on.
    Root,
    /// A segment is empty (`root//1`, `root/1/`).
    Empty,
    /// A segment is longer than [`MAX_SEGMENT`], or the path longer than
    /// [`MAX_PATH`].
    Long,
    /// A byte other than an ASCII letter, digit, `_`, `-` or `#`.
    Byte,
}

impl fmt::Display for BadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadPath::NotInTree => "a path starts with `root/`",
            BadPath::Root => "the root itself can not be named; name a node below it",
            BadPath::Empty => "a segment is empty",
            BadPath::Long => "too long",
            BadPath::Byte => "a segment holds ASCII letters, digits, `_`, `-` and `#` only",
        })
    }
}

/// The path of a node below the root, as requests name it: `root/1/0`,
/// `root/1/conn#7` (a child started at run time from template `conn`, id
/// 7). Checked when made, so whatever holds one holds a path of that form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodePath(String);

impl NodePath {
    /// Checks `path`.
    ///
    /// # Errors
    ///
    /// [`BadPath`] saying what is wrong with it.
    pub fn parse(path: &str) -> Result<Self, BadPath> {
        if path.len() > MAX_PATH {
            return Err(BadPath::Long);
        }
        let Some(rest) = path.strip_prefix("root") else {
            return Err(BadPath::NotInTree);
        };
        if rest.is_empty() {
            return Err(BadPath::Root);
        }
        let Some(rest) = rest.strip_prefix('/') else {
            return Err(BadPath::NotInTree);
        };
        for segment in rest.split('/') {
            if segment.is_empty() {
                return Err(BadPath::Empty);
            }
            if segment.len() > MAX_SEGMENT {
                return Err(BadPath::Long);
            }
            let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'#');
            if !segment.bytes().all(allowed) {
                return Err(BadPath::Byte);
            }
        }
        Ok(Self(path.to_owned()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The next step towards this node from supervisor `own` (a path such
    /// as `root/1`): its child, or the child supervisor below which it is;
    /// `None` if the node is not below `own`.
    pub fn hop(&self, own: &str) -> Option<Hop<'_>> {
        let rest = self.0.strip_prefix(own)?.strip_prefix('/')?;
        Some(match rest.split_once('/') {
            None => Hop::Child(Segment::parse(rest)?),
            Some((first, _)) => Hop::Below(Segment::parse(first)?),
        })
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NodePath {
    type Error = BadPath;

    fn try_from(path: String) -> Result<Self, BadPath> {
        Self::parse(&path)
    }
}

impl From<NodePath> for String {
    fn from(path: NodePath) -> String {
        path.0
    }
}

/// One step of an [`Order`]'s way down the tree, as a supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop<'a> {
    /// The node is this child of the supervisor: its machine decides.
    Child(Segment<'a>),
    /// The node is below this child supervisor: the order goes on to it.
    Below(Segment<'a>),
}

/// One segment of a path, as a supervisor finds its child by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// A child given to the builder, by position (`0`, `1`, ...).
    Position(usize),
    /// A child started at run time: `template#id`.
    Started { template: &'a str, id: u64 },
    /// A child given to the builder with a name
    /// ([`add_named_worker`](crate::Tree::add_named_worker),
    /// [`with_name`](crate::Tree::with_name)).
    Named(&'a str),
}

impl<'a> Segment<'a> {
    /// The segment `text` (`None`: neither form).
    pub fn parse(text: &'a str) -> Option<Self> {
        fn number<N: std::str::FromStr>(digits: &str) -> Option<N> {
            let plain = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            plain.then(|| digits.parse().ok()).flatten()
        }
        match text.split_once('#') {
            None if bad_child_name(text).is_none() => Some(Segment::Named(text)),
            None => number(text).map(Segment::Position),
            Some((template, id)) if !template.is_empty() => Some(Segment::Started {
                template,
                id: number(id)?,
            }),
            Some(_) => None,
        }
    }
}

/// Which request an [`Order`] carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// An operator's restart: the child is stopped in order (its shutdown
    /// time, then killed) and started again at once. It is not counted in
    /// the supervisor's restart intensity, and its backoff starts over;
    /// under `OneForAll` and `RestForOne` its siblings are left alone (it
    /// is started in its place in the order, as any start).
    Restart,
    /// An operator's stop: the child is stopped in order and stays down,
    /// restarted neither by its own policy nor with its group (`OneForAll`,
    /// `RestForOne`), until [`Op::Start`]. A child started at run time is
    /// terminated and removed. Refused with [`Refusal::AlreadyStopped`]
    /// for a child an operator already stopped.
    Stop,
    /// Starts a child an operator stopped, at once (backoff reset).
    /// Refused with [`Refusal::AlreadyRunning`] for any other child.
    Start,
}

impl Op {
    /// Every operation, in the order [`Request::parse`] tries their words.
    pub const ALL: [Op; 3] = [Op::Restart, Op::Stop, Op::Start];

    /// The request's word.
    pub fn verb(self) -> &'static str {
        match self {
            Op::Restart => "restart",
            Op::Stop => "stop",
            Op::Start => "start",
        }
    }

    /// What an `ok` answer says was done.
    fn done(self) -> &'static str {
        match self {
            Op::Restart => "restarted",
            Op::Stop => "stopped",
            Op::Start => "started",
        }
    }
}

/// Which of the requests waiting for an answer an [`Answer`] is for: the
/// root numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ticket(pub u64);

/// A request that names a node, on its way to the supervisor that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub ticket: Ticket,
    pub path: NodePath,
    pub op: Op,
}

impl Order {
    /// The answer `result` to this order.
    pub fn answer(&self, result: Result<(), Refusal>) -> Answer {
        Answer {
            ticket: self.ticket,
            path: self.path.clone(),
            op: self.op,
            result,
        }
    }
}

/// Why an [`Order`] was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// No node has this path.
    NotFound,
    /// A supervisor on the way to it does not run now (it restarts, or
    /// stopped for good).
    NotRunning,
    /// The child is in the middle of something that decides what follows.
    Busy(Busy),
    /// Its supervisor stops all its children.
    ShuttingDown,
    /// Not done within its bound (see [`bound`]); it may be still.
    TimedOut(Duration),
    /// A supervisor on the way ended before the answer came back.
    Lost,
    /// `stop` of a child an operator stopped already.
    AlreadyStopped,
    /// `start` of a child no operator stopped: it runs, or its own policy
    /// restarts it.
    AlreadyRunning,
}

/// What keeps a child from an operator's restart now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Busy {
    /// It is being stopped (a restart under way, a group restart, its
    /// start timeout).
    Stopping,
    /// It is being killed for showing no life.
    Hung,
    /// It is being removed (a child started at run time).
    Removing,
    /// A supervisor on the way does not read its orders (stopped, hung):
    /// what was sent to it before fills its channel.
    Backlog,
    /// Another order about it waits to be carried out: orders about one
    /// node are carried out one at a time, each answered by its own
    /// outcome.
    Ordered,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotFound => f.write_str("not found"),
            Refusal::NotRunning => f.write_str("not running"),
            Refusal::Busy(Busy::Stopping) => f.write_str("busy (it is stopping)"),
            Refusal::Busy(Busy::Hung) => f.write_str("busy (it is killed as hung)"),
            Refusal::Busy(Busy::Removing) => f.write_str("busy (it is being removed)"),
            Refusal::Busy(Busy::Backlog) => {
                f.write_str("busy (a supervisor on the way does not read its orders)")
            }
            Refusal::Busy(Busy::Ordered) => {
                f.write_str("busy (another order about it is under way)")
            }
            Refusal::ShuttingDown => f.write_str("shutting down"),
            Refusal::TimedOut(bound) => write!(f, "timed out after {bound:?}"),
            Refusal::Lost => f.write_str("lost (a supervisor on the way ended)"),
            Refusal::AlreadyStopped => f.write_str("already stopped"),
            Refusal::AlreadyRunning => f.write_str("already running"),
        }
    }
}

/// What an [`Order`] came to, on its way back up to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub ticket: Ticket,
    pub path: NodePath,
    pub op: Op,
    pub result: Result<(), Refusal>,
}

impl Answer {
    /// The answer's line for the client, with its `'\n'`: `ok restarted
    /// root/1/0`, or `error: not found: root/1/9` (the refusal, then the
    /// path).
    pub fn line(&self) -> String {
        match self.result {
            Ok(()) => format!("ok {} {}\n", self.op.done(), self.path),
            Err(refusal) => format!("error: {refusal}: {}\n", self.path),
        }
    }
}

/// How long the supervisor that owns a node gives an order about it
/// before it answers [`Refusal::TimedOut`]: the child's shutdown time plus
/// [`ORDER_GRACE`], or [`ORDER_BOUND`] when it has none (`Infinity`).
pub fn bound(shutdown: Shutdown) -> Duration {
    shutdown
        .kill_after()
        .map_or(ORDER_BOUND, |stop| stop.saturating_add(ORDER_GRACE))
}

/// What a supervisor that sent an order down to a child supervisor waits
/// beyond the bound of the node's own supervisor before it answers
/// [`Refusal::TimedOut`] itself: the way up and down.
pub const FORWARD_GRACE: Duration = Duration::from_secs(1);

/// The bound of an order about a child stopped without a deadline.
pub const ORDER_BOUND: Duration = Duration::from_secs(30);

/// What an order's bound gives beyond the child's shutdown time: its
/// start.
pub const ORDER_GRACE: Duration = Duration::from_secs(5);

/// The first [`ECHOED_REQUEST`] bytes of `request` as printable ASCII
/// without backquotes (other bytes are written `\xNN`), and `...` if there
/// were more: what an error line may echo of what a client sent.
pub fn sanitize(request: &[u8]) -> String {
    let mut out = String::new();
    for &b in request.iter().take(ECHOED_REQUEST) {
        if (b.is_ascii_graphic() || b == b' ') && b != b'`' && b != b'\\' {
            out.push(char::from(b));
        } else {
            // Writing to a String never fails.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if request.len() > ECHOED_REQUEST {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
    use proptest::strategy::Strategy as Gen;

    use super::*;
    use crate::props::config;

    fn path(p: &str) -> NodePath {
        NodePath::parse(p).expect("a path")
    }

    #[test]
    fn the_status_line_is_the_status_request_with_or_without_cr() {
        assert_eq!(Request::parse(b"status"), Ok(Request::Status));
        assert_eq!(Request::parse(b"status\r"), Ok(Request::Status));
        assert!(Request::parse(b"status\r\r").is_err());
        assert!(Request::parse(b" status").is_err());
        assert!(Request::parse(b"").is_err());
    }

    #[test]
    fn a_restart_names_a_node_below_the_root() {
        assert_eq!(
            Request::parse(b"restart root/1/0\r"),
            Ok(Request::Restart(path("root/1/0")))
        );
        assert_eq!(
            Request::parse(b"restart root/2/conn#7"),
            Ok(Request::Restart(path("root/2/conn#7")))
        );
        let bad = |line: &[u8]| Request::parse(line).expect_err("refused").to_string();
        assert_eq!(
            bad(b"restart"),
            "`restart` needs the path of a node: `restart root/1/0`"
        );
        assert_eq!(
            bad(b"restart root"),
            "bad path `root`: the root itself can not be named; name a node below it"
        );
        assert_eq!(
            bad(b"restart /1"),
            "bad path `/1`: a path starts with `root/`"
        );
        assert_eq!(
            bad(b"restart rooted/1"),
            "bad path `rooted/1`: a path starts with `root/`"
        );
        assert_eq!(
            bad(b"restart root//1"),
            "bad path `root//1`: a segment is empty"
        );
        assert_eq!(
            bad(b"restart root/1/"),
            "bad path `root/1/`: a segment is empty"
        );
        assert_eq!(
            bad(b"restart root/a b"),
            "bad path `root/a b`: a segment holds ASCII letters, digits, `_`, `-` and `#` only"
        );
        assert_eq!(
            bad(b"restart root/\xff"),
            "bad path `root/\\xff`: a segment holds ASCII letters, digits, `_`, `-` and `#` only"
        );
        let long = format!("restart root/{}", "x".repeat(MAX_SEGMENT + 1));
        assert!(bad(long.as_bytes()).ends_with(": too long"));
        assert!(NodePath::parse(&format!("root/{}", "x".repeat(MAX_SEGMENT))).is_ok());
    }

    #[test]
    fn an_unknown_request_says_what_was_sent_and_what_to_send() {
        let unknown = Request::parse(b"st`a\x01").expect_err("unknown");
        assert_eq!(
            unknown.to_string(),
            "unknown request `st\\x60a\\x01`; send `status`, `status json`, `watch`, \
             `restart PATH`, `stop PATH`, `start PATH` or `metrics`"
        );
    }

    #[test]
    fn every_request_parses_from_its_own_line() {
        let requests = [
            Request::Status,
            Request::StatusJson,
            Request::Watch,
            Request::Metrics,
            Request::Restart(path("root/1")),
            Request::Stop(path("root/api/web")),
            Request::Start(path("root/2/conn#7")),
        ];
        for request in requests {
            assert_eq!(Request::parse(request.line().as_bytes()), Ok(request));
        }
        let bad = |line: &[u8]| Request::parse(line).expect_err("refused").to_string();
        assert_eq!(
            bad(b"stop"),
            "`stop` needs the path of a node: `stop root/1/0`"
        );
        assert_eq!(
            bad(b"start"),
            "`start` needs the path of a node: `start root/1/0`"
        );
        assert!(bad(b"stopp root/1").starts_with("unknown request `stopp root/1`"));
        assert!(bad(b"status  json").starts_with("unknown request"));
        assert!(bad(b"watch root/1").starts_with("unknown request"));
    }

    #[test]
    fn an_order_goes_down_one_supervisor_at_a_time() {
        let deep = path("root/1/0/3");
        assert_eq!(deep.hop("root"), Some(Hop::Below(Segment::Position(1))));
        assert_eq!(deep.hop("root/1"), Some(Hop::Below(Segment::Position(0))));
        assert_eq!(deep.hop("root/1/0"), Some(Hop::Child(Segment::Position(3))));
        assert_eq!(deep.hop("root/1/0/3"), None);
        assert_eq!(deep.hop("root/2"), None);
        assert_eq!(path("root/10/0").hop("root/1"), None);
        assert_eq!(
            path("root/2/conn#7").hop("root/2"),
            Some(Hop::Child(Segment::Started {
                template: "conn",
                id: 7
            }))
        );
        assert_eq!(
            path("root/api/web").hop("root"),
            Some(Hop::Below(Segment::Named("api")))
        );
        assert_eq!(
            path("root/api/web").hop("root/api"),
            Some(Hop::Child(Segment::Named("web")))
        );
        // Neither a position, a name nor a started child: no child has it.
        for odd in [
            "root/01",
            "root/host",
            "root/#7",
            "root/a#",
            "root/a#b",
            "root/99999999999999999999999",
        ] {
            assert_eq!(path(odd).hop("root"), None, "{odd}");
        }
    }

    #[test]
    fn answers_are_one_line_naming_the_path() {
        let order = Order {
            ticket: Ticket(3),
            path: path("root/1/0"),
            op: Op::Restart,
        };
        assert_eq!(order.answer(Ok(())).line(), "ok restarted root/1/0\n");
        assert_eq!(
            order.answer(Err(Refusal::NotFound)).line(),
            "error: not found: root/1/0\n"
        );
        assert_eq!(
            order
                .answer(Err(Refusal::TimedOut(Duration::from_secs(35))))
                .line(),
            "error: timed out after 35s: root/1/0\n"
        );
        assert_eq!(
            bound(Shutdown::Timeout(Duration::from_secs(2))),
            Duration::from_secs(7)
        );
        assert_eq!(bound(Shutdown::Kill), ORDER_GRACE);
        assert_eq!(bound(Shutdown::Infinity), ORDER_BOUND);
    }

    /// A request line as a client may send it: a request, or noise.
    fn a_line() -> impl Gen<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"status".to_vec()),
            Just(b"restart".to_vec()),
            Just(b" ".to_vec()),
            Just(b"root".to_vec()),
            Just(b"/".to_vec()),
            Just(b"#".to_vec()),
            Just(b"\r".to_vec()),
            (0u32..20).prop_map(|n| n.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        prop::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(config())]

        /// Every request's line parses back to it.
        #[test]
        fn every_request_round_trips(crlf in any::<bool>(), segments in prop::collection::vec(0usize..1000, 1..6)) {
            let node = format!("root/{}", segments.iter().map(usize::to_string).collect::<Vec<_>>().join("/"));
            for request in [Request::Status, Request::Restart(path(&node))] {
                let mut line = request.line().into_bytes();
                if crlf {
                    line.push(b'\r');
                }
                prop_assert_eq!(Request::parse(&line), Ok(request));
            }
        }

        /// Any bytes parse to a request whose line they are, or to an
        /// error line of printable ASCII, without a newline or backquote
        /// that would break the line; a path parsed hops down to itself.
        #[test]
        fn any_line_parses_or_is_echoed_printably(line in prop_oneof![a_line(), prop::collection::vec(any::<u8>(), 0..100)]) {
            match Request::parse(&line) {
                Ok(request) => {
                    let sent = request.line();
                    prop_assert_eq!(line.strip_suffix(b"\r").unwrap_or(&line), sent.as_bytes());
                    if let Request::Restart(node) = request {
                        prop_assert!(node.as_str().starts_with("root/"));
                        let text = Answer { ticket: Ticket(0), path: node, op: Op::Restart, result: Err(Refusal::NotFound) }.line();
                        prop_assert!(text.bytes().filter(|&b| b == b'\n').count() == 1);
                    }
                }
                Err(bad) => {
                    let text = bad.to_string();
                    prop_assert!(text.bytes().all(|b| matches!(b, b' '..=b'~')), "{:?}", text);
                    prop_assert!(bad.echoed().len() <= 4 * ECHOED_REQUEST + 3);
                }
            }
        }
    }
}
