//! The live status of a whole tree, as the root knows it from the events.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use std::time::{Duration, Instant};

use crate::{ChildExit, Event, EventKind, NodeKind};

/// What a supervisor, worker or worker host is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Exited and not restarted.
    Stopped,
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
    /// times given to [`TreeStatus::record`]).
    pub since: Option<Instant>,
    /// For a supervisor with [`Limits`](crate::Limits): its subtree's limits
    /// and what it used when the status was served, e.g. `limits: memory
    /// 64 MiB; memory in use 12.3 MiB; processes 3`.
    pub resources: Option<String>,
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
#[derive(Debug, Clone)]
pub struct TreeStatus {
    nodes: BTreeMap<Vec<Segment>, NodeStatus>,
    dropped: u64,
    /// The latest time given: uptimes are measured up to it.
    now: Instant,
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

fn key(path: &str) -> Vec<Segment> {
    path.split('/').skip(1).map(segment).collect()
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
            now,
        }
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
        self.advance(now);
        match event.kind {
            EventKind::Dropped(n) => {
                self.dropped = self.dropped.saturating_add(n);
                return;
            }
            EventKind::Removed => {
                let gone = key(&event.path);
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
                return;
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
            .entry(key(&event.path))
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
        match &event.kind {
            EventKind::Started(kind) => {
                if matches!(node.state, NodeState::Restarting) {
                    node.restarts = node.restarts.saturating_add(1);
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
            EventKind::Ready => node.state = NodeState::Ready,
            EventKind::Exited {
                exit,
                restart,
                reason,
            } => {
                node.last_exit = Some(*exit);
                node.last_reason.clone_from(reason);
                match restart {
                    // Restarted in place by its host: running again already.
                    Some(_) if node.kind == NodeKind::Worker && event.pid.is_some() => {
                        node.restarts = node.restarts.saturating_add(1);
                        node.state = NodeState::Starting;
                        node.since = Some(now);
                    }
                    Some(_) => {
                        node.state = NodeState::Restarting;
                        node.pid = None;
                    }
                    None => {
                        node.state = NodeState::Stopped;
                        node.pid = None;
                    }
                }
            }
            EventKind::HostExited { exit, .. } => {
                // A host is forked again when a worker next starts.
                node.last_exit = Some(*exit);
                node.last_reason = None;
                node.state = NodeState::Stopped;
                node.pid = None;
            }
            EventKind::Stopping { .. } => node.state = NodeState::Stopping,
            EventKind::Held => {
                node.held = true;
                node.state = NodeState::Stopped;
                node.pid = None;
            }
            EventKind::Dropped(_) | EventKind::Removed => {}
        }
    }

    /// Every node, in tree order (the root first).
    pub fn nodes(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.values()
    }

    /// The node at `path`, if the root has heard of it.
    pub fn get(&self, path: &str) -> Option<&NodeStatus> {
        self.nodes.get(&key(path))
    }

    /// Shows `text` (its subtree's limits and usage) on the node of
    /// supervisor `path`, if the status has it.
    pub fn set_resources(&mut self, path: &str, text: String) {
        if let Some(node) = self.nodes.get_mut(&key(path)) {
            node.resources = Some(text);
        }
    }

    /// How many events the root missed (see [`EventKind::Dropped`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The children started at run time below node `path` (at any depth),
    /// in tree order, with their state.
    pub fn dynamic_below(&self, path: &str) -> Vec<(String, NodeState)> {
        let top = key(path);
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
        let top = key(path);
        for (_, node) in self
            .nodes
            .range_mut(top.clone()..)
            .take_while(|(k, _)| k.starts_with(&top))
            .filter(|(k, _)| k.len() > top.len())
        {
            node.state = NodeState::Stopped;
            node.pid = None;
        }
    }

    /// Whether an event about `path` comes from an incarnation of a
    /// supervisor that has ended: `path` is a child started at run time
    /// (or below one), and a supervisor above it is known to be down
    /// (exited: restarting or stopped). Its children were removed with it.
    pub fn is_from_ended_supervisor(&self, path: &str) -> bool {
        let k = key(path);
        let Some(first) = k.iter().position(|s| matches!(s, Segment::Dynamic(..))) else {
            return false;
        };
        (0..=first).any(|len| {
            self.nodes.get(&k[..len]).is_some_and(|node| {
                node.kind == NodeKind::Supervisor
                    && matches!(node.state, NodeState::Restarting | NodeState::Stopped)
            })
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
