//! What `top` shows, apart from any terminal: the tree's nodes as the
//! latest `status json` gave them, changed live by each event of `watch`
//! (as the root folds events into its own status), the latest events, and
//! whether the tree is reachable. Every change takes the time it happens
//! at, so it is tested without a clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use supertrees::control::{WatchLine, Watched};

use crate::doc::{Node, StatusDoc};

/// How many events the model keeps.
pub const EVENTS_KEPT: usize = 200;

/// One node as `top` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `root/1/0`.
    pub path: String,
    /// How deep: 0 for the root.
    pub depth: usize,
    /// `supervisor`, `worker` or `host`.
    pub kind: String,
    /// `starting`, `running`, `ready`, ...
    pub state: String,
    /// An operator stopped it.
    pub held: bool,
    /// Its process, while it runs.
    pub pid: Option<u32>,
    /// How many times it was restarted.
    pub restarts: u64,
    /// When it last started (as this model learnt it).
    pub since: Option<Instant>,
    /// A limited subtree's memory in use, at the latest status.
    pub memory_bytes: Option<u64>,
    /// Its own process's resident memory (a supervisor's or a worker
    /// host's; a worker's is its host's), as last read here.
    pub rss_bytes: Option<u64>,
    /// How it ended last time.
    pub last_exit: Option<String>,
}

impl Row {
    fn of(node: &Node, now: Instant) -> Row {
        Row {
            path: node.path.clone(),
            depth: node.depth(),
            kind: node.kind.clone(),
            state: node.state.clone(),
            held: node.held(),
            pid: node.pid,
            restarts: node.restarts,
            since: node
                .up_ms
                .and_then(|ms| now.checked_sub(Duration::from_millis(ms))),
            memory_bytes: node.memory_bytes,
            rss_bytes: None,
            last_exit: node.last_exit.as_ref().map(crate::doc::LastExit::text),
        }
    }

    /// What its memory cell says: a limited subtree's memory in use, else
    /// its own process's resident memory, where known.
    pub fn memory(&self) -> Option<String> {
        match (self.memory_bytes, self.rss_bytes) {
            (Some(subtree), _) => Some(format!("{} subtree", crate::when::bytes(subtree))),
            (None, Some(rss)) => Some(crate::when::bytes(rss)),
            (None, None) => None,
        }
    }

    /// How long it has been up at `now`, while it is.
    pub fn uptime(&self, now: Instant) -> Option<Duration> {
        match self.state.as_str() {
            "starting" | "running" | "ready" => {
                self.since.map(|s| now.saturating_duration_since(s))
            }
            _ => None,
        }
    }
}

/// Whether the tree is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not heard from yet.
    Connecting,
    /// Its status came.
    Up,
    /// It went away (or answers no more) at `since`, for this reason;
    /// what is shown is from before.
    Down {
        /// When it was found gone.
        since: Instant,
        /// Why.
        why: String,
        /// It answers, but refuses `status json`: not gone.
        refused: bool,
    },
}

/// One event as the events pane shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// When it happened, in ms since the Unix epoch (0: not known).
    pub at: u64,
    /// Its kind (`started`, `exited`, ...), or `dropped`, or `note`.
    pub kind: String,
    /// What to show.
    pub text: String,
}

/// Everything `top` shows.
#[derive(Debug, Clone)]
pub struct Model {
    rows: Vec<Row>,
    index: HashMap<String, usize>,
    events: VecDeque<Shown>,
    link: Link,
    /// Its events come live.
    watching: bool,
    generation: u64,
    /// How many events the tree did not send us.
    missed: u64,
    /// When a fresh status is wanted before the next regular one (events
    /// were missed, a node appeared that the status did not have).
    stale: bool,
    /// Why events do not come live, if the tree refuses `watch`.
    no_watch: Option<String>,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    /// An empty model: nothing heard yet.
    pub fn new() -> Model {
        Model {
            rows: Vec::new(),
            index: HashMap::new(),
            events: VecDeque::new(),
            link: Link::Connecting,
            watching: false,
            generation: 0,
            missed: 0,
            stale: false,
            no_watch: None,
        }
    }

    /// The nodes, in tree order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The node at `path`.
    #[cfg(test)]
    pub fn row(&self, path: &str) -> Option<&Row> {
        self.index.get(path).and_then(|&i| self.rows.get(i))
    }

    /// The latest events, oldest first.
    pub fn events(&self) -> impl DoubleEndedIterator<Item = &Shown> + ExactSizeIterator {
        self.events.iter()
    }

    /// Whether the tree is reachable.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Whether its events come live.
    pub fn is_watching(&self) -> bool {
        self.watching
    }

    /// The tree's generation, from its latest status.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many events the tree did not send.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Why events do not come live, if the tree refuses `watch`.
    pub fn no_watch(&self) -> Option<&str> {
        self.no_watch.as_deref()
    }

    /// Whether a fresh status is wanted now; asking clears it.
    pub fn take_stale(&mut self) -> bool {
        std::mem::take(&mut self.stale)
    }

    /// The tree's status `doc`, fetched at `now`: every node as it says.
    pub fn apply_status(&mut self, doc: &StatusDoc, now: Instant) {
        self.rows = doc.nodes.iter().map(|node| Row::of(node, now)).collect();
        self.reindex();
        self.generation = doc.generation;
        if self.link != Link::Up {
            if matches!(self.link, Link::Down { .. }) {
                self.note("connected again".to_owned());
            }
            self.link = Link::Up;
        }
    }

    /// Reads the resident memory of each supervisor's and worker host's
    /// process with `rss` (by pid; `None` where it can not be read).
    pub fn read_memory(&mut self, rss: impl Fn(u32) -> Option<u64>) {
        for row in &mut self.rows {
            row.rss_bytes = match (row.kind.as_str(), row.pid) {
                ("supervisor" | "host", Some(pid)) => rss(pid),
                _ => None,
            };
        }
    }

    /// The tree's event stream is open (`true`) or was closed.
    pub fn watching(&mut self, watching: bool) {
        self.watching = watching;
        if watching {
            self.no_watch = None;
            // What happened before the stream opened is in no event.
            self.stale = true;
        }
    }

    /// The tree refuses `watch` (`why`): the view is refreshed from its
    /// status only.
    pub fn watch_refused(&mut self, why: String) {
        self.watching(false);
        self.no_watch = Some(why);
    }

    /// The tree is gone, or answers no more, at `now`.
    pub fn disconnected(&mut self, why: String, now: Instant) {
        self.down(why, false, now);
    }

    /// The tree answers, but refuses `status json` (`why`), at `now`.
    pub fn status_refused(&mut self, why: String, now: Instant) {
        self.down(why, true, now);
    }

    fn down(&mut self, why: String, refused: bool, now: Instant) {
        if let Link::Down {
            why: was,
            refused: was_refused,
            ..
        } = &mut self.link
        {
            *was = why;
            *was_refused = refused;
            return;
        }
        let what = if refused { "no status" } else { "disconnected" };
        self.note(format!("{what}: {why}"));
        self.link = Link::Down {
            since: now,
            why,
            refused,
        };
    }

    /// A line of the pane that is no event of the tree (a reconnection).
    pub fn note(&mut self, text: String) {
        self.push(Shown {
            at: 0,
            kind: "note".to_owned(),
            text,
        });
    }

    /// One line of `watch`, which came at `now`.
    pub fn apply_watch(&mut self, line: &WatchLine, now: Instant) {
        match line {
            WatchLine::Dropped { dropped } => {
                self.missed = self.missed.saturating_add(*dropped);
                self.stale = true;
                self.push(Shown {
                    at: 0,
                    kind: "dropped".to_owned(),
                    text: format!("{dropped} events missed"),
                });
            }
            WatchLine::Event(event) => {
                self.apply_event(event, now);
                self.push(Shown {
                    at: event.at,
                    kind: event.kind.clone(),
                    text: event.text.clone(),
                });
            }
        }
    }

    fn push(&mut self, shown: Shown) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(shown);
    }

    /// Folds `event` into its node, as the root folds it into its status.
    fn apply_event(&mut self, event: &Watched, now: Instant) {
        if event.kind == "removed" {
            self.remove_subtree(&event.path);
            return;
        }
        let Some(i) = self
            .index
            .get(&event.path)
            .copied()
            .or_else(|| self.insert(event))
        else {
            return;
        };
        let row = &mut self.rows[i];
        match event.kind.as_str() {
            "started" => {
                if row.state == "restarting" {
                    row.restarts = row.restarts.saturating_add(1);
                }
                if let Some(kind) = started_kind(&event.text) {
                    kind.clone_into(&mut row.kind);
                }
                row.pid = event.pid;
                row.held = false;
                row.state = if row.kind == "host" {
                    "running"
                } else {
                    "starting"
                }
                .to_owned();
                row.since = Some(now);
            }
            "ready" => "ready".clone_into(&mut row.state),
            "exited" => {
                row.last_exit = exit_of(&event.path, &event.text);
                if event.text.contains("; restarting after ") {
                    if row.kind == "worker" && event.pid.is_some() {
                        // Restarted in place by its host: running again.
                        row.restarts = row.restarts.saturating_add(1);
                        "starting".clone_into(&mut row.state);
                        row.since = Some(now);
                    } else {
                        "restarting".clone_into(&mut row.state);
                        row.pid = None;
                    }
                } else {
                    "stopped".clone_into(&mut row.state);
                    row.pid = None;
                }
            }
            "host_exited" => {
                row.last_exit = exit_of(&event.path, &event.text);
                "stopped".clone_into(&mut row.state);
                row.pid = None;
            }
            "stopping" => "stopping".clone_into(&mut row.state),
            "held" => {
                row.held = true;
                "stopped".clone_into(&mut row.state);
                row.pid = None;
            }
            _ => {}
        }
    }

    /// A row for a node that no status had yet (started at run time),
    /// after its supervisor's subtree: its index.
    fn insert(&mut self, event: &Watched) -> Option<usize> {
        if event.kind != "started" {
            // Nothing to show of a node we know nothing of; the next
            // status will have it.
            self.stale = true;
            return None;
        }
        let parent = event.path.rsplit_once('/').map_or("", |(p, _)| p);
        let prefix = format!("{parent}/");
        let at = match self.index.get(parent) {
            Some(&p) => {
                let below = self.rows[p + 1..]
                    .iter()
                    .take_while(|r| r.path.starts_with(&prefix))
                    .count();
                p + 1 + below
            }
            None => self.rows.len(),
        };
        let kind = started_kind(&event.text).unwrap_or("worker");
        self.rows.insert(
            at,
            Row {
                path: event.path.clone(),
                depth: event.path.matches('/').count(),
                kind: kind.to_owned(),
                state: "starting".to_owned(),
                held: false,
                pid: None,
                restarts: 0,
                since: None,
                memory_bytes: None,
                rss_bytes: None,
                last_exit: None,
            },
        );
        self.reindex();
        Some(at)
    }

    fn remove_subtree(&mut self, path: &str) {
        if path == "root" {
            return;
        }
        let prefix = format!("{path}/");
        let before = self.rows.len();
        self.rows
            .retain(|r| r.path != path && !r.path.starts_with(&prefix));
        if self.rows.len() != before {
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.path.clone(), i))
            .collect();
    }
}

/// The kind of node a `started` event's text says started.
fn started_kind(text: &str) -> Option<&'static str> {
    if text.ends_with(": worker host started") {
        Some("host")
    } else if text.ends_with(": supervisor started") {
        Some("supervisor")
    } else if text.ends_with(": worker started") {
        Some("worker")
    } else {
        None
    }
}

/// How it ended, from an `exited` event's text: `root/0 (pid 7): panicked:
/// boom; restarting after 10ms` gives `panicked: boom`.
fn exit_of(path: &str, text: &str) -> Option<String> {
    let rest = text.strip_prefix(path)?;
    let (_, how) = rest.split_once(": ")?;
    let how = how
        .rsplit_once("; restarting after ")
        .or_else(|| how.rsplit_once("; not restarted"))
        .or_else(|| how.rsplit_once("; took down "))
        .map_or(how, |(how, _)| how);
    Some(how.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::tests::SAMPLE;

    fn event(path: &str, pid: Option<u32>, kind: &str, text: &str) -> WatchLine {
        let pid_text = pid.map_or(String::new(), |p| format!(" (pid {p})"));
        WatchLine::Event(
            serde_json::from_value(serde_json::json!({
                "at": 1_765_130_800_123_u64,
                "path": path,
                "pid": pid,
                "kind": kind,
                "text": format!("{path}{pid_text}: {text}"),
            }))
            .expect("an event"),
        )
    }

    fn loaded(now: Instant) -> Model {
        let mut model = Model::new();
        model.apply_status(&StatusDoc::parse(SAMPLE).expect("doc"), now);
        model
    }

    #[test]
    fn the_status_gives_every_row_in_order() {
        let now = Instant::now();
        let model = loaded(now);
        let paths: Vec<_> = model.rows().iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "root",
                "root/host",
                "root/0",
                "root/1",
                "root/1/host",
                "root/1/0",
                "root/1/1"
            ]
        );
        assert_eq!(model.link(), &Link::Up);
        assert!(!model.is_watching());
        assert_eq!(model.generation(), 2);
        let worker = model.row("root/0").expect("root/0");
        assert_eq!(
            (worker.depth, worker.restarts, worker.pid),
            (1, 2, Some(101))
        );
        assert_eq!(worker.last_exit.as_deref(), Some("panicked: boom"));
        assert_eq!(
            worker.uptime(now + Duration::from_secs(1)),
            Some(Duration::from_millis(1300))
        );
        let held = model.row("root/1/1").expect("root/1/1");
        assert!(held.held);
        assert_eq!(held.uptime(now), None);
        assert_eq!(
            model.row("root/1").and_then(|r| r.memory_bytes),
            Some(12 << 20)
        );
    }

    #[test]
    fn supervisors_and_hosts_show_their_own_memory_limited_subtrees_theirs() {
        let mut model = loaded(Instant::now());
        model.read_memory(|pid| Some(u64::from(pid) << 10));
        let memory = |path: &str| model.row(path).and_then(Row::memory);
        // root/1 is limited: its subtree's memory; root/1/host its own.
        assert_eq!(memory("root/1").as_deref(), Some("12.0 MiB subtree"));
        let host = model.row("root/1/host").expect("a host");
        let pid = host.pid.expect("a pid");
        assert_eq!(host.rss_bytes, Some(u64::from(pid) << 10));
        assert!(memory("root/1/host").is_some());
        // A worker's process is its host's: shown there, not twice.
        assert_eq!(memory("root/1/0"), None);
    }

    #[test]
    fn events_change_state_pid_and_restarts_live() {
        let t0 = Instant::now();
        let mut model = loaded(t0);
        model.watching(true);
        assert!(
            model.take_stale(),
            "a stream that opens wants a fresh status"
        );
        let t1 = t0 + Duration::from_secs(3);
        model.apply_watch(
            &event(
                "root/1/0",
                Some(103),
                "exited",
                "panicked: boom; restarting after 100ms",
            ),
            t1,
        );
        // A worker restarted in place by its host.
        let row = model.row("root/1/0").expect("row");
        assert_eq!((row.state.as_str(), row.restarts), ("starting", 1));
        assert_eq!(row.last_exit.as_deref(), Some("panicked: boom"));
        assert_eq!(row.uptime(t1), Some(Duration::ZERO));
        // A supervisor: restarting, then started with a new pid.
        model.apply_watch(
            &event(
                "root/1",
                Some(102),
                "exited",
                "killed by SIGKILL; restarting after 10ms",
            ),
            t1,
        );
        let sup = model.row("root/1").expect("row");
        assert_eq!((sup.state.as_str(), sup.pid), ("restarting", None));
        model.apply_watch(
            &event("root/1", Some(202), "started", "supervisor started"),
            t1,
        );
        model.apply_watch(
            &event("root/1/host", Some(203), "started", "worker host started"),
            t1,
        );
        model.apply_watch(&event("root/1", Some(202), "ready", "ready"), t1);
        let sup = model.row("root/1").expect("row");
        assert_eq!(
            (sup.state.as_str(), sup.pid, sup.restarts),
            ("ready", Some(202), 1)
        );
        let host = model.row("root/1/host").expect("row");
        assert_eq!((host.state.as_str(), host.pid), ("running", Some(203)));
        // An operator's stop, then start.
        model.apply_watch(
            &event(
                "root/0",
                Some(101),
                "held",
                "stopped by an operator; held down until started",
            ),
            t1,
        );
        let held = model.row("root/0").expect("row");
        assert!(held.held && held.state == "stopped" && held.pid.is_none());
        model.apply_watch(&event("root/0", Some(111), "started", "worker started"), t1);
        let back = model.row("root/0").expect("row");
        assert!(!back.held && back.state == "starting" && back.pid == Some(111));
        // Not restarted: stopped.
        model.apply_watch(
            &event(
                "root/1/0",
                Some(203),
                "exited",
                "exited normally; not restarted",
            ),
            t1,
        );
        let done = model.row("root/1/0").expect("row");
        assert_eq!((done.state.as_str(), done.pid), ("stopped", None));
        assert_eq!(done.last_exit.as_deref(), Some("exited normally"));
        model.apply_watch(
            &event("root", Some(100), "stopping", "stopping all children"),
            t1,
        );
        assert_eq!(
            model.row("root").map(|r| r.state.as_str()),
            Some("stopping")
        );
        assert_eq!(model.events().len(), 9);
        assert_eq!(
            model.events().last().map(|e| e.kind.as_str()),
            Some("stopping")
        );
    }

    #[test]
    fn nodes_started_at_run_time_appear_after_their_supervisor_and_go_with_it() {
        let now = Instant::now();
        let mut model = loaded(now);
        model.apply_watch(
            &event("root/1/conn#7", Some(103), "started", "worker started"),
            now,
        );
        model.apply_watch(
            &event("root/0/conn#1", Some(101), "started", "worker started"),
            now,
        );
        let paths: Vec<_> = model.rows().iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "root",
                "root/host",
                "root/0",
                "root/0/conn#1",
                "root/1",
                "root/1/host",
                "root/1/0",
                "root/1/1",
                "root/1/conn#7"
            ]
        );
        assert_eq!(model.row("root/1/conn#7").map(|r| r.depth), Some(2));
        model.apply_watch(&event("root/1", Some(102), "removed", "removed"), now);
        let paths: Vec<_> = model.rows().iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["root", "root/host", "root/0", "root/0/conn#1"]);
        // An event about a node never heard of, not a start: fetch the status.
        assert!(!model.take_stale());
        model.apply_watch(&event("root/5", None, "ready", "ready"), now);
        assert!(model.row("root/5").is_none());
        assert!(model.take_stale());
        model.apply_watch(&event("root", None, "removed", "removed"), now);
        assert!(model.row("root").is_some(), "the root is never removed");
    }

    #[test]
    fn missed_events_ask_for_a_fresh_status_and_the_pane_keeps_the_latest() {
        let now = Instant::now();
        let mut model = loaded(now);
        model.apply_watch(&WatchLine::Dropped { dropped: 4 }, now);
        assert_eq!(model.missed(), 4);
        assert!(model.take_stale());
        assert!(!model.take_stale());
        for i in 0..EVENTS_KEPT + 5 {
            model.apply_watch(&event(&format!("root/{i}"), None, "ready", "ready"), now);
        }
        assert_eq!(model.events().len(), EVENTS_KEPT);
        assert_eq!(
            model.events().last().map(|e| e.text.as_str()),
            Some(format!("root/{}: ready", EVENTS_KEPT + 4).as_str())
        );
    }

    #[test]
    fn the_tree_going_away_and_coming_back() {
        let t0 = Instant::now();
        let mut model = loaded(t0);
        model.watching(true);
        model.disconnected("no such socket".into(), t0);
        model.disconnected("nothing is serving it".into(), t0 + Duration::from_secs(1));
        match model.link() {
            Link::Down {
                since,
                why,
                refused,
            } => {
                assert!(!refused);
                assert_eq!(*since, t0, "down since the first time");
                assert_eq!(why, "nothing is serving it");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(model.rows().len(), 7, "what was known stays shown");
        assert_eq!(
            model.events().filter(|e| e.kind == "note").count(),
            1,
            "one note per disconnection"
        );
        model.apply_status(&StatusDoc::parse(SAMPLE).expect("doc"), t0);
        assert_eq!(model.link(), &Link::Up);
        assert_eq!(
            model.events().last().map(|e| e.text.as_str()),
            Some("connected again")
        );
        model.watch_refused("`watch` is not served by this tree yet".into());
        assert_eq!(
            model.no_watch(),
            Some("`watch` is not served by this tree yet")
        );
        model.watching(true);
        assert_eq!(model.no_watch(), None);
        assert!(model.is_watching());
    }

    #[test]
    fn exits_are_read_from_the_event_text() {
        assert_eq!(
            exit_of(
                "root/0",
                "root/0 (pid 7): panicked: a: b; restarting after 10ms"
            )
            .as_deref(),
            Some("panicked: a: b")
        );
        assert_eq!(
            exit_of(
                "root/host",
                "root/host (pid 7): killed by SIGKILL; took down 2 workers, back after 1s"
            )
            .as_deref(),
            Some("killed by SIGKILL")
        );
        assert_eq!(exit_of("root/0", "other"), None);
    }
}
