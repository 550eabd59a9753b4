//! The live status of a whole tree, as the root knows it from the events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::bytes;
use crate::{ChildExit, Event, EventKind, Limits, NodeKind};

/// The version of the JSON form of a [`TreeStatus`] (its `schema` field).
const STATUS_SCHEMA: u32 = 1;

/// What a supervisor, worker or worker host is doing now.
///
/// In `status json` (its `Serialize`), each state is its `Display`:
/// `"starting"`, `"running"`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeState {
    /// Started, not ready yet.
    Starting,
    /// A worker host process: running (readiness is its workers').
    Running,
    /// Started and ready.
    Ready,
    /// Exited; a restart is due after its backoff.
    Restarting,
    /// Its supervisor is stopping it (or, for a supervisor, its children).
    Stopping,
    /// Exited and not restarted: stopped on request, ended normally, or
    /// stopped by an operator (then [`NodeStatus::held`]).
    Stopped,
    /// Exited for good with a failure ([`ChildExit::is_failure`]): not
    /// restarted (its policy, or its supervisor gave up).
    Failed,
}

/// One supervisor, worker or worker host in a [`TreeStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// Its path, e.g. `root/1/0`.
    pub path: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its process (a worker's: its host's), while it runs.
    pub pid: Option<u32>,
    /// What it is doing.
    pub state: NodeState,
    /// How many times it has been restarted.
    pub restarts: u32,
    /// An operator stopped it (`stop PATH`): it is wanted down until an
    /// operator starts it ([`EventKind::Held`]).
    pub held: bool,
    /// How it ended last time, if it ever did.
    pub last_exit: Option<ChildExit>,
    /// Why it ended last time, where known (a worker's panic message).
    pub last_reason: Option<String>,
    /// When it last started, as the root learnt it (on the clock of the
    /// times given to [`TreeStatus::record`]), while it runs (starting,
    /// running, ready or stopping); `None` once it exited.
    pub since: Option<Instant>,
    /// For a supervisor with [`Limits`]: its subtree's limits and what it
    /// used when the status was served.
    pub resources: Option<Resources>,
}

/// A limited subtree's [`Limits`] and what it used when the status was
/// served, on the node of its supervisor ([`NodeStatus::resources`]).
///
/// Its `Display` is what the text status shows, e.g. `limits: memory 64
/// MiB, processes 64; memory in use 12.3 MiB; processes 3`.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::{Limits, Resources};
///
/// let mut used = Resources::new(Limits::new().memory(64 << 20));
/// used.memory_bytes = Some(12_900_000);
/// used.oom_kills = 2;
/// assert_eq!(
///     used.to_string(),
///     "limits: memory 64 MiB; memory in use 12.3 MiB; OOM kills 2"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Resources {
    /// The subtree's limits, as given to
    /// [`with_limits`](crate::Tree::with_limits).
    pub limits: Limits,
    /// The memory its processes use together, in bytes, as its memory
    /// cgroup reads; `None` without one (limits enforced by rlimits).
    pub memory_bytes: Option<u64>,
    /// How many processes (and threads) it has, as its pids cgroup reads;
    /// `None` without one.
    pub processes: Option<u64>,
    /// How many of its processes the kernel's OOM killer killed (0 without
    /// a memory cgroup).
    pub oom_kills: u64,
}

impl Resources {
    /// A subtree limited by `limits`, whose usage is not known.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }
}

impl PartialEq for Resources {
    /// Equal limits (a cpu limit compared bit for bit) and usage.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.limits, &other.limits);
        (a.memory, a.processes, a.open_files, a.cpu.map(f64::to_bits))
            == (b.memory, b.processes, b.open_files, b.cpu.map(f64::to_bits))
            && (self.memory_bytes, self.processes, self.oom_kills)
                == (other.memory_bytes, other.processes, other.oom_kills)
    }
}

impl Eq for Resources {}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "limits: {}", self.limits)?;
        if let Some(memory) = self.memory_bytes {
            write!(f, "; memory in use {}", human(memory))?;
        }
        if let Some(n) = self.processes {
            write!(f, "; processes {n}")?;
        }
        if self.oom_kills > 0 {
            write!(f, "; OOM kills {}", self.oom_kills)?;
        }
        Ok(())
    }
}

/// `n` bytes as a person reads them: `512 bytes`, `20.0 KiB`, `12.3 MiB`.
fn human(n: u64) -> String {
    match n {
        0..=8191 => bytes(n),
        8192..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// A snapshot of the whole tree: every supervisor and worker with its pid,
/// state, restart count, last exit and uptime, built by the root from the
/// lifecycle [`Event`]s.
///
/// It reads no clock: each event comes with the time it happened, and
/// uptimes are measured up to the latest time the status was given
/// ([`new`](Self::new), [`record`](Self::record) or
/// [`advance`](Self::advance)). The root passes the time its loop read from
/// its [`Timer`](crate::Timer) once per turn.
///
/// Its `Display` is an indented tree, like `systemctl status`; the root
/// serves it on the socket given to
/// [`status_socket`](crate::Tree::status_socket).
///
/// # Examples
///
/// The status the root keeps, folded here from the events a simulated tree
/// hands to [`on_event`](crate::Tree::on_event), on its virtual clock:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use supertrees::testing::{run_simulated, FakeTimer};
/// use supertrees::{BoxFuture, NodeState, RestartPolicy, Restartable, Supertree};
/// use supertrees::{Timer, TreeStatus, Worker};
///
/// // Works for 90 s, then is done.
/// struct Job(FakeTimer);
/// impl Worker for Job {
///     fn init(&self) -> BoxFuture {
///         self.0.sleep(Duration::from_secs(90))
///     }
/// }
/// impl Restartable for Job {
///     fn restart_policy(&self) -> RestartPolicy {
///         RestartPolicy::Never
///     }
/// }
///
/// let timer = FakeTimer::new();
/// let status = Arc::new(Mutex::new(TreeStatus::new(std::process::id(), timer.now())));
/// let (fold, clock) = (status.clone(), timer.clone());
/// let tree = Supertree::new()
///     .add_worker(Job(timer.clone()))
///     .on_event(move |event| fold.lock().unwrap().record(event, clock.now()));
/// run_simulated(tree, timer.clone())?;
///
/// let status = status.lock().unwrap();
/// let job = status.get("root/0").expect("it started");
/// assert_eq!((job.state, job.restarts), (NodeState::Stopped, 0));
/// let text = status.to_string();
/// assert!(text.contains("└─ root/0  worker  stopped"), "{text}");
/// # Ok::<(), supertrees::Error>(())
/// ```
///
/// # JSON
///
/// `TreeStatus` is `Serialize` and `Deserialize` (with `serde_json`, say):
/// its JSON form is what the status socket answers to `status json`, one
/// document, as in the example below.
///
/// * `schema`: the version of this form, 1. Within schema 1, fields may
///   be added (to the document and to its nodes): readers must ignore
///   fields they do not know. A change that is not an addition comes with
///   another `schema`.
/// * `generation`: which generation of the tree this is (1 for the tree
///   `start()` started); `dropped`: how many events the root missed
///   ([`dropped`](Self::dropped): when not 0, the status may be
///   incomplete).
/// * `nodes`: every node in tree order, the root first, each with:
///   `path`; `kind`: `"supervisor"`, `"worker"` or `"host"` (a worker
///   host); `pid`: its process (a worker's: its host's), or `null`;
///   `state`: its [`NodeState`] as its `Display` writes it (`"starting"`,
///   `"running"`, `"ready"`, `"restarting"`, `"stopping"`, `"stopped"`,
///   `"failed"`); `wanted`: `"up"`, or `"down"` once an operator stopped
///   it ([`held`](NodeStatus::held)); `restarts`; `last_exit`: `null`, or
///   how it last ended, `{"exit": ..., "reason": ...}`: the
///   [`ChildExit`]'s `Display` and the reason, where known (a worker's
///   panic message), or `null`; `up_ms`: how long it runs, in
///   milliseconds, up to the status's clock (when the root served it), or
///   `null` when it does not run.
/// * A limited supervisor's node ([`NodeStatus::resources`]) adds
///   `limits` (`memory` in bytes, `processes`, `open_files`, `cpu` in
///   cores: each `null` when not set), `memory_bytes` (the memory its
///   subtree uses, as its memory cgroup reads: `null` without one),
///   `process_count` (its processes and threads, as its pids cgroup reads:
///   `null` without one) and `oom_kills`.
///
/// Read back, a status's clock starts when it is read: each running
/// node's [`since`](NodeStatus::since) is `up_ms` before it. Reading fails
/// on another `schema`, or a `kind`, `state`, `wanted` or `exit` this
/// version does not know.
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::{ChildExit, NodeKind, NodeState, TreeStatus};
///
/// let served = r#"{"schema": 1, "generation": 1, "dropped": 0, "nodes": [
///   {"path": "root", "kind": "supervisor", "pid": 4100, "state": "ready",
///    "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 93512},
///   {"path": "root/0", "kind": "worker", "pid": 4102, "state": "ready",
///    "wanted": "up", "restarts": 2,
///    "last_exit": {"exit": "panicked", "reason": "boom"}, "up_ms": 3005},
///   {"path": "root/1", "kind": "supervisor", "pid": 4103, "state": "ready",
///    "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 93501,
///    "limits": {"memory": 67108864, "processes": 64, "open_files": null, "cpu": 0.5},
///    "memory_bytes": 12902400, "process_count": 3, "oom_kills": 0},
///   {"path": "root/1/host", "kind": "host", "pid": 4105, "state": "running",
///    "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 93490},
///   {"path": "root/1/0", "kind": "worker", "pid": null, "state": "stopped",
///    "wanted": "down", "restarts": 0,
///    "last_exit": {"exit": "stopped", "reason": null}, "up_ms": null},
///   {"path": "root/1/1", "kind": "worker", "pid": null, "state": "failed",
///    "wanted": "up", "restarts": 5,
///    "last_exit": {"exit": "killed by signal SIGKILL", "reason": null}, "up_ms": null}
/// ]}"#;
/// let status: TreeStatus = serde_json::from_str(served)?;
/// let worker = status.get("root/0").expect("a worker");
/// assert_eq!((worker.kind, worker.state, worker.pid), (NodeKind::Worker, NodeState::Ready, Some(4102)));
/// assert_eq!((worker.restarts, worker.last_exit), (2, Some(ChildExit::Panicked)));
/// assert_eq!(status.uptime(worker), Some(Duration::from_millis(3005)));
/// let limited = status.get("root/1").and_then(|node| node.resources).expect("limits");
/// assert_eq!((limited.limits.memory, limited.memory_bytes), (Some(64 << 20), Some(12902400)));
/// assert!(status.get("root/1/0").is_some_and(|node| node.held));
/// let failed = status.get("root/1/1").expect("a worker");
/// assert_eq!(failed.last_exit, Some(ChildExit::Signaled(9)));
/// println!("{status}");
///
/// // Written again, it is the same document.
/// let again: serde_json::Value = serde_json::to_value(&status)?;
/// assert_eq!(again, serde_json::from_str::<serde_json::Value>(served)?);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TreeStatus {
    nodes: BTreeMap<Vec<Segment>, NodeStatus>,
    dropped: u64,
    /// Which generation of the tree this is: 1 for the tree `start()`
    /// started.
    generation: u64,
    /// The latest time given: uptimes are measured up to it.
    now: Instant,
    /// The position of each named child among its siblings, by path
    /// (`root/api` -> 0): named nodes show in tree order too.
    positions: HashMap<String, u32>,
}

/// A path segment, ordered so that `root/2` comes before `root/10`, a
/// supervisor's worker host before its children, and its children started
/// at run time (`conn#7`) after the others, by template and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Segment {
    Host,
    Child(u32),
    Dynamic(String, u64),
    Other(String),
}

/// The key of `path`: a named segment is ordered by its position among its
/// siblings, where `positions` knows it (else after the others, by name).
fn key(path: &str, positions: &HashMap<String, u32>) -> Vec<Segment> {
    let mut end = "root".len();
    path.split('/')
        .skip(1)
        .map(|s| {
            end += 1 + s.len();
            match segment(s) {
                Segment::Other(name) => match path.get(..end).and_then(|p| positions.get(p)) {
                    Some(&n) => Segment::Child(n),
                    None => Segment::Other(name),
                },
                other => other,
            }
        })
        .collect()
}

fn segment(s: &str) -> Segment {
    if s == "host" {
        return Segment::Host;
    }
    if let Ok(n) = s.parse() {
        return Segment::Child(n);
    }
    match s.rsplit_once('#').map(|(name, id)| (name, id.parse())) {
        Some((name, Ok(id))) => Segment::Dynamic(name.to_owned(), id),
        _ => Segment::Other(s.to_owned()),
    }
}

impl TreeStatus {
    /// The status of a tree whose root, the process `root_pid`, started at
    /// `now`.
    pub fn new(root_pid: u32, now: Instant) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            Vec::new(),
            NodeStatus {
                path: "root".to_owned(),
                kind: NodeKind::Supervisor,
                pid: Some(root_pid),
                state: NodeState::Starting,
                restarts: 0,
                held: false,
                last_exit: None,
                last_reason: None,
                since: Some(now),
                resources: None,
            },
        );
        Self {
            nodes,
            dropped: 0,
            generation: 1,
            now,
            positions: HashMap::new(),
        }
    }

    /// Tells the status where the named children are among their siblings
    /// (`("root/api", 0)`), so that it lists them in tree order; a status
    /// that does not know a name lists that node after its positioned
    /// siblings. The root and the simulation tell it the tree's names.
    #[doc(hidden)]
    pub fn know_positions(&mut self, named: impl IntoIterator<Item = (String, u32)>) {
        self.positions.extend(named);
    }

    /// The key of `path` in this status.
    fn key(&self, path: &str) -> Vec<Segment> {
        key(path, &self.positions)
    }

    /// Moves the status's clock to `now` (never back): its `Display`
    /// measures uptimes up to the latest time it was given.
    pub fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Folds in one event, which happened at `now` (a start at `now` is the
    /// node's [`since`](NodeStatus::since)); advances the clock to `now`.
    /// A [`Removed`](EventKind::Removed) child is deleted, with every node
    /// below it (the root is never).
    pub fn record(&mut self, event: &Event, now: Instant) {
        self.fold(event, now);
    }

    /// As [`record`](Self::record); says whether the event restarted its
    /// node (its [`restarts`](NodeStatus::restarts) went up).
    pub(crate) fn fold(&mut self, event: &Event, now: Instant) -> bool {
        self.advance(now);
        match event.kind {
            EventKind::Dropped(n) => {
                self.dropped = self.dropped.saturating_add(n);
                return false;
            }
            EventKind::Removed => {
                let gone = self.key(&event.path);
                if !gone.is_empty() {
                    // Its subtree follows it in tree order.
                    let below: Vec<Vec<Segment>> = self
                        .nodes
                        .range(gone.clone()..)
                        .map(|(k, _)| k)
                        .take_while(|k| k.starts_with(&gone))
                        .cloned()
                        .collect();
                    for k in below {
                        self.nodes.remove(&k);
                    }
                }
                return false;
            }
            _ => {}
        }
        let kind = match (&event.kind, event.path.ends_with("/host")) {
            (EventKind::Started(kind), _) => *kind,
            (_, true) => NodeKind::WorkerHost,
            _ => NodeKind::Worker,
        };
        let node = self
            .nodes
            .entry(self.key(&event.path))
            .or_insert_with(|| NodeStatus {
                path: event.path.clone(),
                kind,
                pid: None,
                state: NodeState::Starting,
                restarts: 0,
                held: false,
                last_exit: None,
                last_reason: None,
                since: None,
                resources: None,
            });
        let mut restarted = false;
        match &event.kind {
            EventKind::Started(kind) => {
                if matches!(node.state, NodeState::Restarting) {
                    node.restarts = node.restarts.saturating_add(1);
                    restarted = true;
                }
                node.kind = *kind;
                node.pid = event.pid;
                node.held = false;
                node.state = match kind {
                    NodeKind::WorkerHost => NodeState::Running,
                    _ => NodeState::Starting,
                };
                node.since = Some(now);
            }
            EventKind::Ready => {
                if node.state == NodeState::Restarting {
                    // Restarted in place where its events carry no pid
                    // (the simulation's host): it runs again.
                    node.restarts = node.restarts.saturating_add(1);
                    restarted = true;
                    node.since = Some(now);
                }
                node.state = NodeState::Ready;
            }
            EventKind::Exited {
                exit,
                restart,
                reason,
            } => {
                if node.state == NodeState::Restarting && node.kind == NodeKind::Worker {
                    // It ran again before it ended again: restarted in
                    // place where its events carry no pid.
                    node.restarts = node.restarts.saturating_add(1);
                    restarted = true;
                }
                node.last_exit = Some(*exit);
                node.last_reason.clone_from(reason);
                match restart {
                    // Restarted in place by its host: running again already.
                    Some(_) if node.kind == NodeKind::Worker && event.pid.is_some() => {
                        node.restarts = node.restarts.saturating_add(1);
                        restarted = true;
                        node.state = NodeState::Starting;
                        node.since = Some(now);
                    }
                    Some(_) => {
                        node.state = NodeState::Restarting;
                        node.pid = None;
                        node.since = None;
                    }
                    None => {
                        node.state = ended(*exit);
                        node.pid = None;
                        node.since = None;
                    }
                }
            }
            EventKind::HostExited { exit, restart, .. } => {
                // A host is forked again when a worker next starts.
                node.last_exit = Some(*exit);
                node.last_reason = None;
                node.state = match restart {
                    Some(_) => NodeState::Stopped,
                    None => ended(*exit),
                };
                node.pid = None;
                node.since = None;
            }
            EventKind::Stopping { .. } => node.state = NodeState::Stopping,
            EventKind::Held => {
                node.held = true;
                node.state = NodeState::Stopped;
                node.pid = None;
                node.since = None;
                // A supervisor held down is its whole subtree: every node
                // below it is wanted down with it, until it starts again.
                let top = self.key(&event.path);
                for (_, below) in self
                    .nodes
                    .range_mut(top.clone()..)
                    .take_while(|(k, _)| k.starts_with(&top))
                {
                    below.held = true;
                }
            }
            EventKind::Dropped(_) | EventKind::Removed => {}
        }
        restarted
    }

    /// Every node, in tree order (the root first).
    pub fn nodes(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.values()
    }

    /// The node at `path`, if the root has heard of it.
    pub fn get(&self, path: &str) -> Option<&NodeStatus> {
        self.nodes.get(&self.key(path))
    }

    /// Shows `resources` (its subtree's limits and usage) on the node of
    /// supervisor `path`, if the status has it.
    pub fn set_resources(&mut self, path: &str, resources: Resources) {
        if let Some(node) = self.nodes.get_mut(&self.key(path)) {
            node.resources = Some(resources);
        }
    }

    /// How many events the root missed (see [`EventKind::Dropped`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Which generation of the tree this is the status of: 1 for the
    /// tree `start()` started.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How long the node runs, up to the status's clock: `None` when it
    /// does not (its [`since`](NodeStatus::since) is `None`).
    pub fn uptime(&self, node: &NodeStatus) -> Option<Duration> {
        node.since
            .map(|since| self.now.saturating_duration_since(since))
    }

    /// The children started at run time below node `path` (at any depth),
    /// in tree order, with their state.
    pub fn dynamic_below(&self, path: &str) -> Vec<(String, NodeState)> {
        let top = self.key(path);
        self.nodes
            .range(top.clone()..)
            .take_while(|(k, _)| k.starts_with(&top))
            .filter(|(k, _)| matches!(k.last(), Some(Segment::Dynamic(..))) && k.len() > top.len())
            .map(|(_, node)| (node.path.clone(), node.state))
            .collect()
    }

    /// Supervisor `path` exited: every node below it that still shows up
    /// (its worker host, workers and child supervisors, which ended with
    /// it, SIGKILLed or not) is stopped, with no pid, until it starts
    /// again.
    pub fn end_below(&mut self, path: &str) {
        self.end_below_running(path, |_| {});
    }

    /// As [`end_below`](Self::end_below); shows `ended` the path of every
    /// worker and supervisor that ran until then (so ended without an
    /// event of its own).
    pub(crate) fn end_below_running(&mut self, path: &str, mut ended: impl FnMut(&str)) {
        let top = self.key(path);
        for (_, node) in self
            .nodes
            .range_mut(top.clone()..)
            .take_while(|(k, _)| k.starts_with(&top))
            .filter(|(k, _)| k.len() > top.len())
        {
            let ran = matches!(
                node.state,
                NodeState::Starting | NodeState::Ready | NodeState::Stopping
            );
            if ran && node.kind != NodeKind::WorkerHost {
                ended(&node.path);
            }
            node.state = NodeState::Stopped;
            node.pid = None;
            node.since = None;
        }
    }

    /// Whether an event about `path` comes from an incarnation of a
    /// supervisor that has ended: `path` is a child started at run time
    /// (or below one), and a supervisor above it is known to be down
    /// (exited: restarting or stopped). Its children were removed with it.
    pub fn is_from_ended_supervisor(&self, path: &str) -> bool {
        let k = self.key(path);
        let Some(first) = k.iter().position(|s| matches!(s, Segment::Dynamic(..))) else {
            return false;
        };
        (0..=first).any(|len| {
            self.nodes.get(&k[..len]).is_some_and(|node| {
                node.kind == NodeKind::Supervisor
                    && matches!(
                        node.state,
                        NodeState::Restarting | NodeState::Stopped | NodeState::Failed
                    )
            })
        })
    }
}

/// The state of a node that exited with `exit` and is not restarted.
fn ended(exit: ChildExit) -> NodeState {
    if exit.is_failure() {
        NodeState::Failed
    } else {
        NodeState::Stopped
    }
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, s / 60 % 60),
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeState::Starting => "starting",
            NodeState::Running => "running",
            NodeState::Ready => "ready",
            NodeState::Restarting => "restarting",
            NodeState::Stopping => "stopping",
            NodeState::Stopped => "stopped",
            NodeState::Failed => "failed",
        })
    }
}

impl fmt::Display for TreeStatus {
    /// One line per node, indented under its supervisor with box-drawing
    /// branches.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&Vec<Segment>> = self.nodes.keys().collect();
        // Whether each node has a later sibling (then its branch goes on
        // below its line): one pass from the end, so that a status of
        // 100 000 nodes is drawn in linear time.
        let mut later_sibling = vec![false; keys.len()];
        let mut parents: HashSet<&[Segment]> = HashSet::new();
        for (i, k) in keys.iter().enumerate().rev() {
            if let Some((_, parent)) = k.split_last() {
                later_sibling[i] = !parents.insert(parent);
            }
        }
        // The latest node at each depth: the ancestors of the current one
        // (`None` for one the status has not heard of).
        let mut last_at: Vec<Option<usize>> = Vec::new();
        for (i, (k, node)) in self.nodes.iter().enumerate() {
            last_at.resize(k.len(), None);
            last_at.push(Some(i));
            let continues = |len: usize| {
                last_at
                    .get(len)
                    .copied()
                    .flatten()
                    .is_some_and(|j| later_sibling[j])
            };
            let mut prefix = String::new();
            for len in 1..k.len() {
                prefix.push_str(if continues(len) { "│  " } else { "   " });
            }
            if !k.is_empty() {
                prefix.push_str(if continues(k.len()) {
                    "├─ "
                } else {
                    "└─ "
                });
            }
            write!(f, "{prefix}{}  {}", node.path, node.kind)?;
            if let Some(pid) = node.pid {
                write!(f, "  pid {pid}")?;
            }
            write!(f, "  {}", node.state)?;
            if let (Some(since), NodeState::Starting | NodeState::Running | NodeState::Ready) =
                (node.since, node.state)
            {
                write!(
                    f,
                    "  up {}",
                    uptime(self.now.saturating_duration_since(since))
                )?;
            }
            if node.restarts > 0 {
                write!(f, "  restarts {}", node.restarts)?;
            }
            if let Some(exit) = node.last_exit {
                write!(f, "  last exit: {exit}")?;
                if let Some(reason) = &node.last_reason {
                    write!(f, ": {reason}")?;
                }
            }
            if let Some(resources) = &node.resources {
                write!(f, "  [{resources}]")?;
            }
            writeln!(f)?;
        }
        if self.dropped > 0 {
            writeln!(
                f,
                "({} events dropped: this status may be incomplete)",
                self.dropped
            )?;
        }
        Ok(())
    }
}

/// How `status json` names a node's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindName {
    Supervisor,
    Worker,
    Host,
}

impl From<NodeKind> for KindName {
    fn from(kind: NodeKind) -> Self {
        match kind {
            NodeKind::Supervisor => KindName::Supervisor,
            NodeKind::Worker => KindName::Worker,
            NodeKind::WorkerHost => KindName::Host,
        }
    }
}

impl From<KindName> for NodeKind {
    fn from(kind: KindName) -> Self {
        match kind {
            KindName::Supervisor => NodeKind::Supervisor,
            KindName::Worker => NodeKind::Worker,
            KindName::Host => NodeKind::WorkerHost,
        }
    }
}

/// Whether a node is wanted up, or down (an operator stopped it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Wanted {
    Up,
    Down,
}

/// The JSON form of a [`TreeStatus`], as it is written.
#[derive(Serialize)]
struct StatusOut<'a> {
    schema: u32,
    generation: u64,
    dropped: u64,
    nodes: NodesOut<'a>,
}

/// The nodes of a status, written in tree order without being copied.
struct NodesOut<'a>(&'a TreeStatus);

impl Serialize for NodesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let status = self.0;
        serializer.collect_seq(status.nodes().map(|node| NodeOut::of(status, node)))
    }
}

/// The JSON form of a [`NodeStatus`], as it is written: its resources'
/// fields only on a limited supervisor's node.
#[derive(Serialize)]
struct NodeOut<'a> {
    path: &'a str,
    kind: KindName,
    pid: Option<u32>,
    state: NodeState,
    wanted: Wanted,
    restarts: u32,
    last_exit: Option<ExitOut<'a>>,
    up_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<LimitsWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_bytes: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_count: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oom_kills: Option<u64>,
}

impl<'a> NodeOut<'a> {
    fn of(status: &TreeStatus, node: &'a NodeStatus) -> Self {
        let resources = node.resources.as_ref();
        NodeOut {
            path: &node.path,
            kind: node.kind.into(),
            pid: node.pid,
            state: node.state,
            wanted: if node.held { Wanted::Down } else { Wanted::Up },
            restarts: node.restarts,
            last_exit: node.last_exit.map(|exit| ExitOut {
                exit: exit.to_string(),
                reason: node.last_reason.as_deref(),
            }),
            up_ms: status
                .uptime(node)
                .map(|up| u64::try_from(up.as_millis()).unwrap_or(u64::MAX)),
            limits: resources.map(|r| LimitsWire::from(r.limits)),
            memory_bytes: resources.map(|r| r.memory_bytes),
            process_count: resources.map(|r| r.processes),
            oom_kills: resources.map(|r| r.oom_kills),
        }
    }
}

/// A node's last exit, as it is written.
#[derive(Serialize)]
struct ExitOut<'a> {
    exit: String,
    reason: Option<&'a str>,
}

/// A subtree's [`Limits`] in JSON: `null` for each that is not set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct LimitsWire {
    #[serde(default)]
    memory: Option<u64>,
    #[serde(default)]
    processes: Option<u32>,
    #[serde(default)]
    open_files: Option<u64>,
    #[serde(default)]
    cpu: Option<f64>,
}

impl From<Limits> for LimitsWire {
    fn from(limits: Limits) -> Self {
        LimitsWire {
            memory: limits.memory,
            processes: limits.processes,
            open_files: limits.open_files,
            cpu: limits.cpu,
        }
    }
}

impl From<LimitsWire> for Limits {
    fn from(wire: LimitsWire) -> Self {
        let mut limits = Limits::new();
        limits.memory = wire.memory;
        limits.processes = wire.processes;
        limits.open_files = wire.open_files;
        limits.cpu = wire.cpu;
        limits
    }
}

/// The JSON form of a [`TreeStatus`], as it is read: fields it does not
/// know are ignored.
#[derive(Deserialize)]
struct StatusIn {
    schema: u32,
    generation: u64,
    #[serde(default)]
    dropped: u64,
    nodes: Vec<NodeIn>,
}

/// The JSON form of a [`NodeStatus`], as it is read.
#[derive(Deserialize)]
struct NodeIn {
    path: String,
    kind: KindName,
    #[serde(default)]
    pid: Option<u32>,
    state: NodeState,
    wanted: Wanted,
    restarts: u32,
    #[serde(default)]
    last_exit: Option<ExitIn>,
    #[serde(default)]
    up_ms: Option<u64>,
    #[serde(default)]
    limits: Option<LimitsWire>,
    #[serde(default)]
    memory_bytes: Option<u64>,
    #[serde(default)]
    process_count: Option<u64>,
    #[serde(default)]
    oom_kills: u64,
}

/// A node's last exit, as it is read.
#[derive(Deserialize)]
struct ExitIn {
    exit: String,
    #[serde(default)]
    reason: Option<String>,
}

impl Serialize for TreeStatus {
    /// The status as `status json` serves it: see [`TreeStatus`].
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StatusOut {
            schema: STATUS_SCHEMA,
            generation: self.generation,
            dropped: self.dropped,
            nodes: NodesOut(self),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TreeStatus {
    /// A status as `status json` serves it (see [`TreeStatus`]), on a clock
    /// that starts when it is read: each running node's
    /// [`since`](NodeStatus::since) is `up_ms` before it.
    ///
    /// Fails on another `schema` than 1, a `kind`, `state`
    /// or `wanted` it does not know, or an `exit` that is no
    /// [`ChildExit`]'s text.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = StatusIn::deserialize(deserializer)?;
        if wire.schema != STATUS_SCHEMA {
            return Err(D::Error::custom(format!(
                "status schema {} is not known here (schema {STATUS_SCHEMA} is)",
                wire.schema
            )));
        }
        // The clock's now: the longest uptime before it must be an
        // `Instant` too (on Linux, one since boot).
        let longest = wire.nodes.iter().filter_map(|n| n.up_ms).max();
        let longest = Duration::from_millis(longest.unwrap_or(0));
        let read_at = Instant::now();
        let now = match read_at.checked_sub(longest) {
            Some(_) => read_at,
            None => read_at
                .checked_add(longest)
                .ok_or_else(|| D::Error::custom("an uptime too long for this clock"))?,
        };
        let mut nodes = BTreeMap::new();
        // The document lists nodes in tree order: a named child that comes
        // before any child started at run time of its supervisor is given
        // the next position after the siblings (and their subtrees) listed
        // before it, so the order reads back as it was written.
        let mut positions: HashMap<String, u32> = HashMap::new();
        let mut next: HashMap<String, (u32, bool)> = HashMap::new();
        for node in &wire.nodes {
            let mut end = "root".len();
            for seg in node.path.split('/').skip(1) {
                let parent = node.path.get(..end).unwrap_or_default().to_owned();
                end += 1 + seg.len();
                let prefix = node.path.get(..end).unwrap_or_default();
                let (after, dynamic) = next.entry(parent).or_default();
                match segment(seg) {
                    Segment::Child(n) => *after = (*after).max(n.saturating_add(1)),
                    Segment::Dynamic(..) => *dynamic = true,
                    Segment::Other(_) if !*dynamic && !positions.contains_key(prefix) => {
                        positions.insert(prefix.to_owned(), *after);
                        *after = after.saturating_add(1);
                    }
                    Segment::Other(_) | Segment::Host => {}
                }
            }
        }
        for node in wire.nodes {
            let (last_exit, last_reason) = match node.last_exit {
                Some(ExitIn { exit, reason }) => {
                    let parsed = ChildExit::from_display(&exit).ok_or_else(|| {
                        D::Error::custom(format!("`{exit}` is no exit known here"))
                    })?;
                    (Some(parsed), reason)
                }
                None => (None, None),
            };
            let since = node
                .up_ms
                .and_then(|up| now.checked_sub(Duration::from_millis(up)));
            let resources = node.limits.map(|limits| Resources {
                limits: limits.into(),
                memory_bytes: node.memory_bytes,
                processes: node.process_count,
                oom_kills: node.oom_kills,
            });
            nodes.insert(
                key(&node.path, &positions),
                NodeStatus {
                    path: node.path,
                    kind: node.kind.into(),
                    pid: node.pid,
                    state: node.state,
                    restarts: node.restarts,
                    held: node.wanted == Wanted::Down,
                    last_exit,
                    last_reason,
                    since,
                    resources,
                },
            );
        }
        Ok(TreeStatus {
            nodes,
            dropped: wire.dropped,
            generation: wire.generation,
            now,
            positions,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
    use proptest::strategy::Strategy as Gen;

    use super::*;
    use crate::exit::tests::an_exit;
    use crate::props::config;

    /// Records `event` at the status's current time.
    fn record(s: &mut TreeStatus, event: &Event) {
        let now = s.now;
        s.record(event, now);
    }

    fn ev(path: &str, pid: Option<u32>, kind: EventKind) -> Event {
        Event::happened(path.into(), pid, kind, std::time::SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn paths_sort_numerically_with_hosts_first() {
        let none = HashMap::new();
        let key = |p| key(p, &none);
        let mut paths = ["root/10", "root/2", "root/2/0", "root/host", "root"]
            .map(key)
            .to_vec();
        paths.sort();
        assert_eq!(
            paths,
            ["root", "root/host", "root/2", "root/2/0", "root/10"].map(key)
        );
    }

    #[test]
    fn a_supervisor_held_down_holds_its_subtree_until_it_starts_again() {
        let mut s = TreeStatus::new(1, Instant::now());
        let started = |kind| EventKind::Started(kind);
        for (path, kind) in [
            ("root/1", NodeKind::Supervisor),
            ("root/1/host", NodeKind::WorkerHost),
            ("root/1/0", NodeKind::Worker),
            ("root/2", NodeKind::Worker),
        ] {
            record(&mut s, &ev(path, Some(2), started(kind)));
        }
        let stopped = EventKind::exited(ChildExit::Stopped, None, None);
        record(&mut s, &ev("root/1/0", None, stopped.clone()));
        record(&mut s, &ev("root/1", None, stopped));
        record(&mut s, &ev("root/1", None, EventKind::Held));
        let held = |s: &TreeStatus, p: &str| s.get(p).map(|n| n.held);
        for path in ["root/1", "root/1/host", "root/1/0"] {
            assert_eq!(held(&s, path), Some(true), "{path}");
        }
        assert_eq!(held(&s, "root/2"), Some(false));
        record(
            &mut s,
            &ev("root/1", Some(3), started(NodeKind::Supervisor)),
        );
        record(&mut s, &ev("root/1/0", Some(4), started(NodeKind::Worker)));
        assert_eq!(held(&s, "root/1"), Some(false));
        assert_eq!(held(&s, "root/1/0"), Some(false));
    }

    #[test]
    fn named_nodes_list_in_tree_order_and_read_back_so() {
        // root/api is child 0, root/1 child 1, root/jobs child 2.
        let mut s = TreeStatus::new(1, Instant::now());
        s.know_positions([
            ("root/api".to_owned(), 0),
            ("root/jobs".to_owned(), 2),
            ("root/api/web".to_owned(), 1),
        ]);
        for path in [
            "root/jobs",
            "root/1",
            "root/api/web",
            "root/api/0",
            "root/api",
            "root/api/host",
        ] {
            record(
                &mut s,
                &ev(path, Some(2), EventKind::Started(NodeKind::Worker)),
            );
        }
        let order = |s: &TreeStatus| s.nodes().map(|n| n.path.clone()).collect::<Vec<_>>();
        let want = [
            "root",
            "root/api",
            "root/api/host",
            "root/api/0",
            "root/api/web",
            "root/1",
            "root/jobs",
        ];
        assert_eq!(order(&s), want);
        let json = serde_json::to_string(&s).expect("JSON");
        let read: TreeStatus = serde_json::from_str(&json).expect("read back");
        assert_eq!(order(&read), want);
        assert!(read.get("root/jobs").is_some());
    }

    #[test]
    fn events_fold_into_states_and_counts() {
        let mut s = TreeStatus::new(1, Instant::now());
        record(
            &mut s,
            &ev("root/0", Some(5), EventKind::Started(NodeKind::Worker)),
        );
        record(&mut s, &ev("root/0", Some(5), EventKind::Ready));
        record(
            &mut s,
            &ev(
                "root/0",
                Some(5),
                EventKind::Exited {
                    exit: ChildExit::Panicked,
                    restart: Some(Duration::ZERO),
                    reason: None,
                },
            ),
        );
        record(
            &mut s,
            &ev("root/1", Some(9), EventKind::Started(NodeKind::Supervisor)),
        );
        record(
            &mut s,
            &ev(
                "root/1",
                None,
                EventKind::Exited {
                    exit: ChildExit::Signaled(9),
                    restart: Some(Duration::from_millis(50)),
                    reason: None,
                },
            ),
        );
        record(
            &mut s,
            &ev("root/1", Some(12), EventKind::Started(NodeKind::Supervisor)),
        );
        record(&mut s, &ev("root", None, EventKind::Dropped(3)));
        let w = s.get("root/0").unwrap();
        assert_eq!(
            (w.state, w.restarts, w.last_exit),
            (NodeState::Starting, 1, Some(ChildExit::Panicked))
        );
        let sup = s.get("root/1").unwrap();
        assert_eq!(
            (sup.state, sup.restarts, sup.pid),
            (NodeState::Starting, 1, Some(12))
        );
        assert_eq!(s.dropped(), 3);
        assert_eq!(s.nodes().count(), 3);
    }

    #[test]
    fn a_removed_child_is_deleted_with_everything_below_it() {
        let mut s = TreeStatus::new(1, Instant::now());
        for (path, kind) in [
            ("root/0", NodeKind::Worker),
            ("root/1", NodeKind::Supervisor),
            ("root/1/host", NodeKind::WorkerHost),
            ("root/1/0", NodeKind::Worker),
            ("root/1/1", NodeKind::Supervisor),
            ("root/1/1/0", NodeKind::Worker),
            ("root/1/10", NodeKind::Worker),
            ("root/10", NodeKind::Worker),
        ] {
            record(&mut s, &ev(path, Some(2), EventKind::Started(kind)));
        }
        record(&mut s, &ev("root/1/1", None, EventKind::Removed));
        let paths: Vec<&str> = s.nodes().map(|n| n.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "root",
                "root/0",
                "root/1",
                "root/1/host",
                "root/1/0",
                "root/1/10",
                "root/10"
            ]
        );
        record(&mut s, &ev("root/1", None, EventKind::Removed));
        let paths: Vec<&str> = s.nodes().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["root", "root/0", "root/10"]);
        // A child removed twice, or never heard of, changes nothing; the
        // root is never removed.
        record(&mut s, &ev("root/1", None, EventKind::Removed));
        record(&mut s, &ev("root", None, EventKind::Removed));
        assert_eq!(s.nodes().count(), 3);
        // A child started later at the same path is a new node.
        record(
            &mut s,
            &ev("root/1", Some(3), EventKind::Started(NodeKind::Worker)),
        );
        let node = s.get("root/1").expect("the new child");
        assert_eq!((node.restarts, node.last_exit), (0, None));
    }

    #[test]
    fn display_is_an_indented_tree() {
        let mut s = TreeStatus::new(1, Instant::now());
        for (path, kind) in [
            ("root/0", NodeKind::Supervisor),
            ("root/0/host", NodeKind::WorkerHost),
            ("root/0/0", NodeKind::Worker),
            ("root/0/1", NodeKind::Worker),
            ("root/1", NodeKind::Worker),
        ] {
            record(&mut s, &ev(path, Some(2), EventKind::Started(kind)));
        }
        let text = s.to_string();
        let shape: Vec<&str> = text
            .lines()
            .map(|l| {
                let path = l.find("root").unwrap_or(0);
                let end = l[path..].find("  ").map_or(l.len(), |e| path + e);
                &l[..end]
            })
            .collect();
        assert_eq!(
            shape,
            [
                "root",
                "├─ root/0",
                "│  ├─ root/0/host",
                "│  ├─ root/0/0",
                "│  └─ root/0/1",
                "└─ root/1",
            ],
            "{text}"
        );
    }

    #[test]
    fn a_ready_worker_shows_its_pid_state_and_uptime() {
        let t0 = Instant::now();
        let mut status = TreeStatus::new(100, t0);
        let started = ev("root/0", Some(101), EventKind::Started(NodeKind::Worker));
        status.record(&started, t0);
        status.record(&ev("root/0", Some(101), EventKind::Ready), t0);
        status.advance(t0 + Duration::from_secs(90));
        let text = status.to_string();
        assert!(
            text.starts_with("root  supervisor  pid 100  starting  up 1m30s"),
            "{text}"
        );
        assert!(
            text.contains("└─ root/0  worker  pid 101  ready  up 1m30s"),
            "{text}"
        );
    }

    #[test]
    fn uptimes_come_from_the_times_given_not_a_clock() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = TreeStatus::new(1, t0);
        s.record(
            &ev("root/0", Some(2), EventKind::Started(NodeKind::Worker)),
            t0 + ms(500),
        );
        s.record(
            &ev("root/1", Some(3), EventKind::Started(NodeKind::Worker)),
            t0 + ms(2_000),
        );
        assert_eq!(s.get("root/0").unwrap().since, Some(t0 + ms(500)));
        let up = |s: &TreeStatus, path: &str| {
            let text = s.to_string();
            let line = text
                .lines()
                .find(|l| l.contains(&format!("{path}  ")))
                .unwrap();
            line.split("  up ")
                .nth(1)
                .unwrap()
                .split("  ")
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(up(&s, "root/0"), "1s");
        s.advance(t0 + ms(65_000));
        assert_eq!(
            (up(&s, "root"), up(&s, "root/0"), up(&s, "root/1")),
            ("1m5s".into(), "1m4s".into(), "1m3s".into())
        );
        // The clock never goes back.
        s.advance(t0);
        assert_eq!(up(&s, "root"), "1m5s");
        // An in-place restart starts the uptime again at its time.
        s.record(
            &ev(
                "root/0",
                Some(2),
                EventKind::Exited {
                    exit: ChildExit::Panicked,
                    restart: Some(Duration::ZERO),
                    reason: None,
                },
            ),
            t0 + ms(66_000),
        );
        assert_eq!(up(&s, "root/0"), "0ms");
    }

    #[test]
    fn a_failure_for_good_is_failed_and_a_clean_end_stopped() {
        let mut s = TreeStatus::new(1, Instant::now());
        for n in 0..4 {
            record(
                &mut s,
                &ev(
                    &format!("root/{n}"),
                    Some(2),
                    EventKind::Started(NodeKind::Worker),
                ),
            );
        }
        let ended = |exit, restart| EventKind::Exited {
            exit,
            restart,
            reason: None,
        };
        record(
            &mut s,
            &ev("root/0", Some(2), ended(ChildExit::Panicked, None)),
        );
        record(
            &mut s,
            &ev("root/1", Some(2), ended(ChildExit::Normal, None)),
        );
        record(
            &mut s,
            &ev("root/2", Some(2), ended(ChildExit::Stopped, None)),
        );
        record(
            &mut s,
            // Its host is gone too (no pid): not restarted in place.
            &ev(
                "root/3",
                None,
                ended(ChildExit::Panicked, Some(Duration::from_secs(1))),
            ),
        );
        let state = |s: &TreeStatus, path: &str| s.get(path).map(|node| (node.state, node.since));
        assert_eq!(state(&s, "root/0"), Some((NodeState::Failed, None)));
        assert_eq!(state(&s, "root/1"), Some((NodeState::Stopped, None)));
        assert_eq!(state(&s, "root/2"), Some((NodeState::Stopped, None)));
        assert_eq!(state(&s, "root/3"), Some((NodeState::Restarting, None)));
        let text = s.to_string();
        assert!(
            text.contains("├─ root/0  worker  failed  last exit: panicked\n"),
            "{text}"
        );
        // A host that went down with its workers, none back: failed.
        record(
            &mut s,
            &ev(
                "root/host",
                Some(3),
                EventKind::Started(NodeKind::WorkerHost),
            ),
        );
        record(
            &mut s,
            &ev(
                "root/host",
                Some(3),
                EventKind::host_exited(ChildExit::Signaled(9), 1, None),
            ),
        );
        assert_eq!(state(&s, "root/host"), Some((NodeState::Failed, None)));
        // A supervisor that failed for good has ended: a late event of a
        // child of its started at run time is from its ended incarnation.
        record(
            &mut s,
            &ev("root/4", Some(5), EventKind::Started(NodeKind::Supervisor)),
        );
        record(
            &mut s,
            &ev("root/4", Some(5), ended(ChildExit::GaveUp, None)),
        );
        assert!(s.is_from_ended_supervisor("root/4/conn#1"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(12 * 1024 * 1024 + 300_000), "12.3 MiB");
        assert_eq!(human(3_678_208), "3.5 MiB");
        assert_eq!(human(20_480), "20.0 KiB");
    }

    #[test]
    fn json_names_every_state_as_its_display() {
        for state in [
            NodeState::Starting,
            NodeState::Running,
            NodeState::Ready,
            NodeState::Restarting,
            NodeState::Stopping,
            NodeState::Stopped,
            NodeState::Failed,
        ] {
            let json = serde_json::to_value(state).expect("a name");
            assert_eq!(json, serde_json::Value::String(state.to_string()));
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let t0 = Instant::now();
        let mut s = TreeStatus::new(100, t0);
        s.record(
            &ev(
                "root/0",
                Some(101),
                EventKind::Started(NodeKind::Supervisor),
            ),
            t0,
        );
        s.record(
            &ev(
                "root/0/host",
                Some(102),
                EventKind::Started(NodeKind::WorkerHost),
            ),
            t0,
        );
        s.record(
            &ev("root/0/0", Some(102), EventKind::Started(NodeKind::Worker)),
            t0,
        );
        s.record(&ev("root/0/0", Some(102), EventKind::Held), t0);
        let mut used = Resources::new(Limits::new().memory(1 << 20).cpu(0.25));
        used.memory_bytes = Some(4096);
        s.set_resources("root/0", used);
        s.advance(t0 + Duration::from_millis(2500));
        let doc = serde_json::to_value(&s).expect("JSON");
        let want = serde_json::json!({
            "schema": 1, "generation": 1, "dropped": 0, "nodes": [
                {"path": "root", "kind": "supervisor", "pid": 100, "state": "starting",
                 "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 2500},
                {"path": "root/0", "kind": "supervisor", "pid": 101, "state": "starting",
                 "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 2500,
                 "limits": {"memory": 1048576, "processes": null, "open_files": null, "cpu": 0.25},
                 "memory_bytes": 4096, "process_count": null, "oom_kills": 0},
                {"path": "root/0/host", "kind": "host", "pid": 102, "state": "running",
                 "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 2500},
                {"path": "root/0/0", "kind": "worker", "pid": null, "state": "stopped",
                 "wanted": "down", "restarts": 0, "last_exit": null, "up_ms": null},
            ]
        });
        assert_eq!(doc, want);
        // Another schema is refused; fields not known are ignored.
        let other = serde_json::json!({"schema": 2, "generation": 1, "nodes": []});
        let refused = serde_json::from_value::<TreeStatus>(other).expect_err("schema 2");
        assert!(refused.to_string().contains("schema 2"), "{refused}");
        let mut more = want.clone();
        more["cluster"] = serde_json::json!({"url": "nats://x"});
        more["nodes"][1]["colour"] = serde_json::json!("blue");
        let read: TreeStatus = serde_json::from_value(more).expect("read");
        assert_eq!(serde_json::to_value(&read).expect("JSON"), want);
        // An exit this version does not know is refused.
        let mut odd = want;
        odd["nodes"][1]["last_exit"] = serde_json::json!({"exit": "evaporated", "reason": null});
        assert!(serde_json::from_value::<TreeStatus>(odd).is_err());
    }

    /// A path of up to four segments as the tree names them.
    fn a_path() -> impl Gen<Value = String> {
        let segment = prop_oneof![
            (0u32..12).prop_map(|n| n.to_string()),
            Just("host".to_owned()),
            "[a-z][a-z0-9_-]{0,6}",
            ("[a-z]{1,4}", 0u64..100).prop_map(|(t, id)| format!("{t}#{id}")),
        ];
        prop::collection::vec(segment, 0..4).prop_map(|segments| {
            std::iter::once("root".to_owned())
                .chain(segments)
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    fn a_state() -> impl Gen<Value = NodeState> {
        prop_oneof![
            Just(NodeState::Starting),
            Just(NodeState::Running),
            Just(NodeState::Ready),
            Just(NodeState::Restarting),
            Just(NodeState::Stopping),
            Just(NodeState::Stopped),
            Just(NodeState::Failed),
        ]
    }

    fn some_resources() -> impl Gen<Value = Option<Resources>> {
        let limits = (
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u64>()),
            // Cores as they are given: a few decimals.
            prop::option::of((1u32..6400).prop_map(|c| f64::from(c) / 100.0)),
        )
            .prop_map(|(memory, processes, open_files, cpu)| {
                let mut limits = Limits::new();
                (
                    limits.memory,
                    limits.processes,
                    limits.open_files,
                    limits.cpu,
                ) = (memory, processes, open_files, cpu);
                limits
            });
        prop::option::of(
            (
                limits,
                prop::option::of(any::<u64>()),
                prop::option::of(any::<u64>()),
                any::<u64>(),
            )
                .prop_map(|(limits, memory_bytes, processes, oom_kills)| Resources {
                    limits,
                    memory_bytes,
                    processes,
                    oom_kills,
                }),
        )
    }

    /// A node as the status may hold it; its uptime, if it runs, in
    /// nanoseconds (up to 12 days).
    fn a_node() -> impl Gen<Value = (NodeStatus, Option<u64>)> {
        let kind = prop_oneof![
            Just(NodeKind::Supervisor),
            Just(NodeKind::Worker),
            Just(NodeKind::WorkerHost)
        ];
        (
            (
                a_path(),
                kind,
                prop::option::of(any::<u32>()),
                a_state(),
                any::<u32>(),
                any::<bool>(),
            ),
            (
                prop::option::of((an_exit(), prop::option::of(".{0,20}"))),
                prop::option::of(0u64..(12 * 24 * 3600 * 1_000_000_000)),
                some_resources(),
            ),
        )
            .prop_map(
                |((path, kind, pid, state, restarts, held), (exit, up, resources))| {
                    let node = NodeStatus {
                        path,
                        kind,
                        pid,
                        state,
                        restarts,
                        held,
                        last_exit: exit.as_ref().map(|(exit, _)| *exit),
                        last_reason: exit.and_then(|(_, reason)| reason),
                        since: None,
                        resources,
                    };
                    (node, up)
                },
            )
    }

    proptest! {
        #![proptest_config(config())]

        /// A status written as JSON and read back has every field it had,
        /// its uptimes to the millisecond.
        #[test]
        fn status_json_reads_back_as_the_status(
            nodes in prop::collection::vec(a_node(), 0..12),
            dropped in any::<u64>(),
            generation in 1u64..1000,
        ) {
            // A clock far enough from its start for any uptime.
            let now = Instant::now() + Duration::from_secs(13 * 24 * 3600);
            let mut status = TreeStatus::new(1, now);
            (status.dropped, status.generation) = (dropped, generation);
            for (mut node, up) in nodes {
                node.since = up.map(|up| now - Duration::from_nanos(up));
                status.nodes.insert(key(&node.path, &HashMap::new()), node);
            }
            let json = serde_json::to_string(&status).expect("JSON");
            let read: TreeStatus = serde_json::from_str(&json).expect("read back");
            prop_assert_eq!((read.dropped(), read.generation()), (dropped, generation));
            prop_assert_eq!(read.nodes().count(), status.nodes().count());
            for (was, is) in status.nodes().zip(read.nodes()) {
                let up = |s: &TreeStatus, n: &NodeStatus| s.uptime(n).map(|d| d.as_millis());
                prop_assert_eq!(up(&read, is), up(&status, was), "{}", was.path);
                let bare = |n: &NodeStatus| NodeStatus { since: None, ..n.clone() };
                prop_assert_eq!(bare(is), bare(was));
                prop_assert!(read.get(&was.path).is_some_and(|n| n.path == was.path));
            }
            // And it writes the same document again.
            prop_assert_eq!(serde_json::to_string(&read).expect("JSON"), json);
        }
    }
}
