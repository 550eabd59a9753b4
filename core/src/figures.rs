//! The tree's figures for monitoring (Prometheus, OpenTelemetry, StatsD),
//! published through the [`metrics`] facade crate.
//!
//! The root keeps them ([`Tree::with_metrics`](crate::Tree::with_metrics),
//! or a [`status_socket`](crate::Tree::status_socket), whose `metrics`
//! request serves them), folded from the same events as the
//! [`TreeStatus`]; the counts of mailbox traffic are kept where it
//! happens, in every process that sends or calls, and summed by the root
//! when it publishes (see [`MailboxTally`]). Every figure is published as
//! an absolute value: a counter with [`Counter::absolute`], a gauge with
//! [`Gauge::set`], into whichever recorder is current.
//!
//! | family | labels | what |
//! |---|---|---|
//! | `supertrees_child_restarts_total` | `path` | restarts by its supervisor's policy |
//! | `supertrees_child_exits_total` | `path`, `reason` | exits, by [`exit_reason`] |
//! | `supertrees_child_up` | `path` | running (starting, ready or stopping) |
//! | `supertrees_child_ready` | `path` | ready |
//! | `supertrees_intensity_exceeded_total` | `supervisor` | times it gave up |
//! | `supertrees_dynamic_children` | `template` | children of a template now |
//! | `supertrees_mailbox_sent_total` | `mailbox` | casts queued (`send`, `try_send`) |
//! | `supertrees_mailbox_calls_total` | `mailbox`, `outcome` | calls that ended, by [`CallOutcome`] (a call whose future was dropped first is not counted) |
//! | `supertrees_events_dropped_total` | | events the root never got |
//! | `supertrees_memory_bytes` | `supervisor` | a limited subtree's memory in use |
//! | `supertrees_upgrades_total` | `outcome` | upgrades (`committed`, `rolled_back`, `refused`) |
//! | `supertrees_generation` | | the tree's generation (1 until an upgrade) |
//! | `supertrees_build_info` | `version` | 1, labelled with this crate's version |
//!
//! A `path` label is a node's path with every run-time id taken out: the
//! children of a template (`root/1/conn#7`, `root/1/conn#8`) are counted
//! together under their template's path (`root/1/conn`), so the number of
//! series stays that of the tree as declared, however many children come
//! and go. Worker hosts are not children: their exits show in their
//! workers'. The root is a node too (`path="root"`).
//!
//! [`Counter::absolute`]: metrics::Counter::absolute
//! [`Gauge::set`]: metrics::Gauge::set
//! [`TreeStatus`]: crate::TreeStatus

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

use crate::{ChildExit, Error, Event, EventKind, NodeKind, NodeState, TreeStatus};

/// The `version` label of `supertrees_build_info`: this crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a [`Mailbox::call`](crate::Mailbox::call) ended: the `outcome`
/// label of `supertrees_mailbox_calls_total`.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::figures::CallOutcome;
///
/// let replied: Result<u8, supertrees::Error> = Ok(1);
/// assert_eq!(CallOutcome::of(&replied), CallOutcome::Ok);
/// assert_eq!(CallOutcome::NoReply.label(), "no_reply");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The server replied.
    Ok,
    /// No reply within the call's timeout ([`Error::Timeout`]).
    Timeout,
    /// The server let go of the call without a reply
    /// ([`Error::NoReply`]).
    NoReply,
    /// Any other error: the message could not be encoded or sent, or the
    /// reply was not of the type asked for.
    Error,
}

impl CallOutcome {
    /// Every outcome, in the order of their counts in a [`MailboxCounts`].
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Ok,
        CallOutcome::Timeout,
        CallOutcome::NoReply,
        CallOutcome::Error,
    ];

    /// The outcome of a call that came to `result`.
    pub fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(Error::Timeout { .. }) => CallOutcome::Timeout,
            Err(Error::NoReply { .. }) => CallOutcome::NoReply,
            Err(_) => CallOutcome::Error,
        }
    }

    /// Its label: `ok`, `timeout`, `no_reply` or `error`.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Timeout => "timeout",
            CallOutcome::NoReply => "no_reply",
            CallOutcome::Error => "error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counts of one mailbox's traffic, kept by the processes that send to
/// it: each adds to them as it sends, and the root reads them when it
/// publishes the figures.
///
/// In the process engine, the tallies of a tree live in memory the root
/// maps before it forks anything, shared by the processes of one user
/// only (one tally per mailbox and user; see
/// [`with_user`](crate::Tree::with_user)): a process adds with one atomic
/// instruction and sends nothing, so counting costs no message and wakes
/// no one.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::figures::{CallOutcome, MailboxTally};
///
/// let tally = MailboxTally::default();
/// tally.count_sent();
/// tally.count_call(CallOutcome::Timeout);
/// let counts = tally.counts();
/// assert_eq!((counts.sent, counts.calls(CallOutcome::Timeout)), (1, 1));
/// ```
#[derive(Debug, Default)]
#[repr(C)]
pub struct MailboxTally {
    sent: AtomicU64,
    calls: [AtomicU64; 4],
}

impl MailboxTally {
    /// Counts one cast queued.
    pub fn count_sent(&self) {
        self.sent.fetch_add(1, Relaxed);
    }

    /// Counts one call that ended with `outcome`.
    pub fn count_call(&self, outcome: CallOutcome) {
        self.calls[outcome.index()].fetch_add(1, Relaxed);
    }

    /// What it counted so far.
    pub fn counts(&self) -> MailboxCounts {
        MailboxCounts {
            sent: self.sent.load(Relaxed),
            calls: self.calls.each_ref().map(|n| n.load(Relaxed)),
        }
    }
}

/// The counts of a mailbox's traffic at one moment, summed over tallies
/// with `+=`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MailboxCounts {
    /// Casts queued.
    pub sent: u64,
    calls: [u64; 4],
}

impl MailboxCounts {
    /// The calls that ended with `outcome`.
    pub fn calls(&self, outcome: CallOutcome) -> u64 {
        self.calls[outcome.index()]
    }
}

impl std::ops::AddAssign for MailboxCounts {
    fn add_assign(&mut self, other: Self) {
        self.sent = self.sent.wrapping_add(other.sent);
        for (mine, theirs) in self.calls.iter_mut().zip(other.calls) {
            *mine = mine.wrapping_add(theirs);
        }
    }
}

/// What holds a [`MailboxTally`]: the tally itself (on the heap, the
/// simulation's), or memory shared between processes (the process
/// engine's).
#[doc(hidden)]
pub trait HoldsTally: Send + Sync {
    /// The tally held, if it holds one.
    fn tally(&self) -> Option<&MailboxTally>;
}

impl HoldsTally for MailboxTally {
    fn tally(&self) -> Option<&MailboxTally> {
        Some(self)
    }
}

/// Where a mailbox handle counts its traffic: a [`MailboxTally`], or
/// nowhere (figures off).
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Tally(Option<Arc<dyn HoldsTally>>);

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tally")
            .field(&self.get().map(MailboxTally::counts))
            .finish()
    }
}

impl Tally {
    /// Counts into the tally `holder` holds.
    pub fn new(holder: Arc<dyn HoldsTally>) -> Self {
        Self(Some(holder))
    }

    fn get(&self) -> Option<&MailboxTally> {
        self.0.as_deref().and_then(HoldsTally::tally)
    }

    /// Counts a cast that was queued, or nothing if it failed.
    pub(crate) fn sent<T>(&self, result: &Result<T, Error>) {
        if let (Some(tally), Ok(_)) = (self.get(), result) {
            tally.count_sent();
        }
    }

    /// Counts a call that came to `result`.
    pub(crate) fn called<T>(&self, result: &Result<T, Error>) {
        if let Some(tally) = self.get() {
            tally.count_call(CallOutcome::of(result));
        }
    }
}

/// The `reason` label of `supertrees_child_exits_total` for `exit`:
/// `exited` (returned, or exited with a code; a supervisor that gave up),
/// `panicked`, `signal`, `out_of_memory`, `hung`, `start_timeout`,
/// `stopped`, or `setup_failed` (not forked or not set up).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::figures::exit_reason;
/// use supertrees::ChildExit;
///
/// assert_eq!(exit_reason(ChildExit::Signaled(9)), "signal");
/// assert_eq!(exit_reason(ChildExit::Normal), "exited");
/// ```
pub fn exit_reason(exit: ChildExit) -> &'static str {
    REASONS[reason_index(exit)]
}

/// Every `reason` label, by [`reason_index`].
const REASONS: [&str; 8] = [
    "exited",
    "stopped",
    "panicked",
    "signal",
    "setup_failed",
    "start_timeout",
    "out_of_memory",
    "hung",
];

/// The index in [`REASONS`] of `exit`'s reason.
fn reason_index(exit: ChildExit) -> usize {
    match exit {
        ChildExit::Normal | ChildExit::Exited(_) | ChildExit::GaveUp => 0,
        ChildExit::Stopped => 1,
        ChildExit::Panicked => 2,
        ChildExit::Signaled(_) => 3,
        ChildExit::ForkFailed(_) | ChildExit::SetupFailed => 4,
        ChildExit::StartTimeout(_) => 5,
        ChildExit::OutOfMemory => 6,
        ChildExit::Hung => 7,
    }
}

/// The `path` label of node `path`: its path with every run-time id taken
/// out, so the children of a template count under the template's path.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::figures::path_label;
///
/// assert_eq!(path_label("root/1/conn#7"), "root/1/conn");
/// assert_eq!(path_label("root/pool#3/0"), "root/pool/0");
/// assert_eq!(path_label("root/api/web"), "root/api/web");
/// ```
pub fn path_label(path: &str) -> Cow<'_, str> {
    if !path.contains('#') {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| match segment.rsplit_once('#') {
            Some((name, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => segment,
        })
        .collect();
    Cow::Owned(segments.join("/"))
}

/// Whether the last segment of `path` is a child started at run time.
fn is_dynamic(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or(path);
    path_label(last).len() != last.len()
}

/// The figures the root folds from the tree's events: what the
/// [`TreeStatus`] does not keep (counts that outlive a child started at
/// run time, exits by reason, supervisors that gave up).
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Figures {
    /// What was counted of each node, by label.
    nodes: HashMap<String, Counted>,
    /// The templates whose children were ever seen, by path.
    templates: BTreeSet<String>,
}

/// What was counted of one node (or a template's children).
#[derive(Debug, Default)]
struct Counted {
    restarts: u64,
    /// Exits by [`reason_index`].
    exits: [u64; REASONS.len()],
    /// Times it gave up (a supervisor).
    gave_up: u64,
}

impl Figures {
    /// Folds in `event`, which the status recorded as a restart of its node
    /// if `restarted`.
    pub fn record(&mut self, event: &Event, restarted: bool) {
        let exit = match &event.kind {
            EventKind::Exited { exit, .. } if !event.path.ends_with("/host") => Some(*exit),
            _ => None,
        };
        let gave_up = matches!(event.kind, EventKind::Stopping { gave_up: true, .. });
        if !restarted && exit.is_none() && !gave_up {
            if matches!(event.kind, EventKind::Started(_)) && is_dynamic(&event.path) {
                let label = path_label(&event.path);
                if !self.templates.contains(label.as_ref()) {
                    self.templates.insert(label.into_owned());
                }
            }
            return;
        }
        self.update(&event.path, |counted| {
            counted.restarts += u64::from(restarted);
            counted.gave_up += u64::from(gave_up);
            if let Some(exit) = exit {
                counted.exits[reason_index(exit)] += 1;
            }
        });
    }

    /// Counts an exit of node `path` that had no event of its own (it ended
    /// with its supervisor, which exited with `exit`).
    pub fn count_exit(&mut self, path: &str, exit: ChildExit) {
        self.update(path, |counted| counted.exits[reason_index(exit)] += 1);
    }

    /// Updates what was counted of node `path` with `f`: one lookup, and
    /// an allocation only the first time.
    fn update(&mut self, path: &str, f: impl FnOnce(&mut Counted)) {
        let label = path_label(path);
        match self.nodes.get_mut(label.as_ref()) {
            Some(counted) => f(counted),
            None => f(self.nodes.entry(label.into_owned()).or_default()),
        }
    }

    /// Publishes every figure into the current recorder of the [`metrics`]
    /// facade: those folded from the events, those of `status` as it is
    /// now (up, ready, memory, dropped events, generation), and the traffic
    /// of each mailbox in `mailboxes` (its name and its counts, summed over
    /// its tallies).
    pub fn publish<'a>(
        &self,
        status: &TreeStatus,
        mailboxes: impl IntoIterator<Item = (&'a str, MailboxCounts)>,
    ) {
        describe();
        // Up and ready per label: a template's children are summed.
        let mut nodes: BTreeMap<Cow<'_, str>, (u32, u32)> = BTreeMap::new();
        for node in status.nodes().filter(|n| n.kind != NodeKind::WorkerHost) {
            let (up, ready) = nodes.entry(path_label(&node.path)).or_default();
            if matches!(
                node.state,
                NodeState::Starting | NodeState::Ready | NodeState::Stopping
            ) {
                *up += 1;
            }
            if node.state == NodeState::Ready {
                *ready += 1;
            }
            if let Some(memory) = node.resources.and_then(|r| r.memory_bytes) {
                gauge!("supertrees_memory_bytes", "supervisor" => path_label(&node.path).into_owned())
                    .set(memory as f64);
            }
            if node.kind == NodeKind::Supervisor {
                let label = path_label(&node.path);
                let gave_up = self.nodes.get(label.as_ref()).map_or(0, |c| c.gave_up);
                counter!("supertrees_intensity_exceeded_total", "supervisor" => label.into_owned())
                    .absolute(gave_up);
            }
        }
        let mut children: BTreeMap<&str, u32> =
            self.templates.iter().map(|t| (t.as_str(), 0)).collect();
        for template in templates_of(status) {
            if let Some(n) = children.get_mut(template.as_ref()) {
                *n += 1;
            }
        }
        for template in &self.templates {
            nodes.entry(Cow::Borrowed(template.as_str())).or_default();
        }
        for (label, (up, ready)) in &nodes {
            let path = label.to_string();
            let restarts = self.nodes.get(label.as_ref()).map_or(0, |c| c.restarts);
            counter!("supertrees_child_restarts_total", "path" => path.clone()).absolute(restarts);
            gauge!("supertrees_child_up", "path" => path.clone()).set(f64::from(*up));
            gauge!("supertrees_child_ready", "path" => path).set(f64::from(*ready));
        }
        for (path, counted) in &self.nodes {
            for (reason, n) in REASONS.iter().zip(counted.exits).filter(|(_, n)| *n > 0) {
                counter!("supertrees_child_exits_total", "path" => path.clone(), "reason" => *reason)
                    .absolute(n);
            }
        }
        for (template, n) in children {
            gauge!("supertrees_dynamic_children", "template" => template.to_owned())
                .set(f64::from(n));
        }
        for (mailbox, counts) in mailboxes {
            counter!("supertrees_mailbox_sent_total", "mailbox" => mailbox.to_owned())
                .absolute(counts.sent);
            for outcome in CallOutcome::ALL {
                counter!(
                    "supertrees_mailbox_calls_total",
                    "mailbox" => mailbox.to_owned(),
                    "outcome" => outcome.label()
                )
                .absolute(counts.calls(outcome));
            }
        }
        counter!("supertrees_events_dropped_total").absolute(status.dropped());
        for outcome in ["committed", "rolled_back", "refused"] {
            counter!("supertrees_upgrades_total", "outcome" => outcome).absolute(0);
        }
        gauge!("supertrees_generation").set(status.generation() as f64);
        gauge!("supertrees_build_info", "version" => VERSION).set(1.0);
    }
}

/// The template path of every child started at run time in `status`, one
/// per child.
fn templates_of(status: &TreeStatus) -> impl Iterator<Item = Cow<'_, str>> {
    status
        .nodes()
        .filter(|node| node.kind != NodeKind::WorkerHost && is_dynamic(&node.path))
        .map(|node| path_label(&node.path))
}

/// Describes every family to the current recorder (its `# HELP`).
fn describe() {
    describe_counter!(
        "supertrees_child_restarts_total",
        "Restarts of a child by its supervisor's policy (a template's children summed)."
    );
    describe_counter!(
        "supertrees_child_exits_total",
        "Exits of a child, by reason (a template's children summed)."
    );
    describe_gauge!(
        "supertrees_child_up",
        "Whether the child runs (a template: how many of its children run)."
    );
    describe_gauge!(
        "supertrees_child_ready",
        "Whether the child is ready (a template: how many of its children are)."
    );
    describe_counter!(
        "supertrees_intensity_exceeded_total",
        "Times a supervisor exceeded its restart intensity and gave up."
    );
    describe_gauge!(
        "supertrees_dynamic_children",
        "Children of a template now (started at run time, not yet removed)."
    );
    describe_counter!(
        "supertrees_mailbox_sent_total",
        "Casts queued in a mailbox (send, try_send), from every process of the tree."
    );
    describe_counter!(
        "supertrees_mailbox_calls_total",
        "Calls to a mailbox, by outcome, from every process of the tree."
    );
    describe_counter!(
        "supertrees_events_dropped_total",
        "Lifecycle events the root never got (its event pipe was full)."
    );
    describe_gauge!(
        "supertrees_memory_bytes",
        Unit::Bytes,
        "Memory in use by a limited subtree, as its memory cgroup reads."
    );
    describe_counter!(
        "supertrees_upgrades_total",
        "Upgrades of the tree in place, by outcome."
    );
    describe_gauge!(
        "supertrees_generation",
        "The generation of the tree that runs."
    );
    describe_gauge!(
        "supertrees_build_info",
        "1, labelled with the supertrees version."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_take_run_time_ids_out() {
        assert_eq!(path_label("root"), "root");
        assert_eq!(path_label("root/1/conn#7"), "root/1/conn");
        assert_eq!(path_label("root/pool#3/worker#12/0"), "root/pool/worker/0");
        // Not an id: kept.
        assert_eq!(path_label("root/a#b"), "root/a#b");
        assert_eq!(path_label("root/a#"), "root/a#");
        assert!(is_dynamic("root/1/conn#7"));
        assert!(!is_dynamic("root/pool#3/0"));
        assert!(!is_dynamic("root/1"));
    }
}
