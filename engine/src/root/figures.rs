//! The tree's figures, as the root publishes them: into a Prometheus
//! recorder of its own for the status socket's `metrics` request, and,
//! with [`Tree::with_metrics`](crate::Tree::with_metrics), into the
//! `metrics` facade's global recorder once a second while anything
//! changed. What they are is `supertrees_core::figures`; this is when and
//! where they go.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use supertrees_core::figures::MailboxCounts;

use crate::directory::Directory;
use crate::observe::Observed;

/// How often the figures are published to the global recorder, at most.
const PUBLISH_PERIOD: Duration = Duration::from_secs(1);

/// Where the root's figures go, and when.
pub(crate) struct Publisher {
    /// The recorder behind the `metrics` request: built at the first one.
    prometheus: Option<PrometheusRecorder>,
    /// The text rendered last, and what it was rendered from: rendered
    /// again only when that changed (rendering takes ~1 µs a series).
    rendered: Option<(Readings, String)>,
    /// When the figures are next published to the global recorder
    /// (`None`: never, the tree was not built `with_metrics`, or its
    /// recorder panicked).
    next: Option<Instant>,
    /// What was published last (`None`: nothing yet).
    last: Option<Readings>,
}

/// What the figures are made of, as far as it changes: how many events
/// were recorded, the mailboxes' counts, and the limited subtrees' memory.
#[derive(Debug, PartialEq, Eq)]
struct Readings {
    events: u64,
    mailboxes: Vec<MailboxCounts>,
    memory: Vec<Option<u64>>,
}

impl Readings {
    fn of(observed: &Observed, events: u64, mailboxes: &[(&str, MailboxCounts)]) -> Self {
        Self {
            events,
            mailboxes: mailboxes.iter().map(|(_, counts)| *counts).collect(),
            memory: observed
                .status()
                .nodes()
                .filter_map(|node| node.resources.map(|r| r.memory_bytes))
                .collect(),
        }
    }
}

impl Publisher {
    /// Publishes to the global recorder if `global`, from `now` on.
    pub(crate) fn new(global: bool, now: Instant) -> Self {
        Self {
            prometheus: None,
            rendered: None,
            next: global.then_some(now),
            last: None,
        }
    }

    /// When the root must wake up to publish.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// The figures in the Prometheus text format, with the traffic of
    /// `directory`'s mailboxes, `events` having been recorded in all.
    pub(crate) fn render(
        &mut self,
        observed: &Observed,
        directory: Option<&Directory>,
        events: u64,
    ) -> String {
        let counts = directory.map(Directory::mailbox_counts).unwrap_or_default();
        let readings = Readings::of(observed, events, &counts);
        if let Some((_, text)) = self.rendered.as_ref().filter(|(r, _)| *r == readings) {
            return text.clone();
        }
        let recorder = self
            .prometheus
            .get_or_insert_with(|| PrometheusBuilder::new().build_recorder());
        metrics::with_local_recorder(recorder, || observed.publish_figures(counts));
        let text = recorder.handle().render();
        self.rendered = Some((readings, text.clone()));
        text
    }

    /// If it is time at `now`, publishes to the global recorder: when
    /// events were recorded since the last time (`events` in all), the
    /// mailboxes' counts changed, or `always` (a limited subtree's memory
    /// changes by itself).
    pub(crate) fn publish_due(
        &mut self,
        now: Instant,
        observed: &Observed,
        directory: Option<&Directory>,
        events: u64,
        always: bool,
    ) {
        if self.next.is_none_or(|at| at > now) {
            return;
        }
        self.next = Some(now + PUBLISH_PERIOD);
        self.publish(observed, directory, events, always);
    }

    /// The tree has ended: publishes to the global recorder a last time,
    /// if anything changed since the last time (see
    /// [`publish_due`](Self::publish_due)).
    pub(crate) fn publish_last(
        &mut self,
        observed: &Observed,
        directory: Option<&Directory>,
        events: u64,
    ) {
        if self.next.take().is_some() {
            self.publish(observed, directory, events, false);
        }
    }

    fn publish(
        &mut self,
        observed: &Observed,
        directory: Option<&Directory>,
        events: u64,
        always: bool,
    ) {
        let counts = directory.map(Directory::mailbox_counts).unwrap_or_default();
        let readings = Readings::of(observed, events, &counts);
        if !always && self.last.as_ref() == Some(&readings) {
            return;
        }
        self.last = Some(readings);
        // The recorder is the user's: a panic in it must not end the root.
        let published = catch_unwind(AssertUnwindSafe(|| observed.publish_figures(counts)));
        if published.is_err() {
            tracing::error!(
                "the metrics recorder panicked: the tree's figures are no longer published to it"
            );
            self.next = None;
        }
    }
}
