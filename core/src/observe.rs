//! What the user watches a tree with: their callbacks and the status they
//! see, kept the same way by the root process and by the simulation.
//!
//! The status is the engine's own: every event is folded into it as soon as
//! it is known, whatever the callbacks do. The callbacks are the user's and
//! may be slow, so in the root process they are queued and made a few at a
//! time between the root's other work (see [`Observed::deliver`]); the
//! simulation makes them at once.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use crate::figures::Figures;
use crate::{Event, EventKind, TreeStatus};

/// The callback of [`Tree::on_event`](crate::Tree::on_event).
type OnEvent = Box<dyn FnMut(&Event) + Send>;
/// The callback of [`Tree::on_ready`](crate::Tree::on_ready).
type OnReady = Box<dyn FnOnce(&TreeStatus) + Send>;

/// What the root process does with the tree's events, besides running it.
#[derive(Default)]
pub struct Observers {
    pub on_event: Option<OnEvent>,
    pub on_ready: Option<OnReady>,
    pub status_socket: Option<PathBuf>,
    /// [`Tree::with_metrics`](crate::Tree::with_metrics): the figures are
    /// published to the `metrics` facade's recorder once a second.
    pub metrics: bool,
    /// The tree's named children and their positions (see
    /// [`TreeStatus::know_positions`]).
    pub named: Vec<(String, u32)>,
}

impl Observers {
    /// Whether the root keeps the tree's figures: for the recorder
    /// ([`metrics`](Self::metrics)), or for the status socket's `metrics`
    /// request.
    pub fn keep_figures(&self) -> bool {
        self.metrics || self.status_socket.is_some()
    }
}

/// How many calls of the user's callbacks wait at most in the root; when
/// more come, the oldest events are dropped and counted. Room for the
/// `Exited` and `Removed` of thousands of children started at run time
/// whose supervisor died at once (a few MiB at most).
pub const QUEUE_CAPACITY: usize = 16 * 1024;

/// A call of a user callback that is due.
#[derive(Debug)]
enum Call {
    /// `on_event` with this event.
    Event(Event),
    /// `on_ready`, with the status as it is when the call is made.
    Ready,
}

/// The user's `on_event`/`on_ready` callbacks and the [`TreeStatus`] folded
/// from the events they are given.
pub struct Observed {
    observers: Observers,
    status: TreeStatus,
    /// The figures, when the tree keeps them ([`Observers::keep_figures`]).
    figures: Option<Figures>,
    /// `None`: callbacks are made at once (the simulation). `Some(n)`:
    /// they wait in `queue`, at most `n` of them, until
    /// [`deliver`](Self::deliver) makes them (the root process).
    capacity: Option<usize>,
    /// The calls not made yet, oldest first.
    queue: VecDeque<Call>,
    /// Events dropped from the queue since `on_event` was last told: it is
    /// told with an [`EventKind::Dropped`] before its next event.
    lost: u64,
    /// When the last of them happened: when the `Dropped` event says they
    /// were.
    lost_at: SystemTime,
}

impl Observed {
    /// Starts watching at `now`, from the process `pid`; callbacks are
    /// made at once.
    pub fn new(mut observers: Observers, pid: u32, now: Instant) -> Self {
        let mut status = TreeStatus::new(pid, now);
        status.know_positions(std::mem::take(&mut observers.named));
        Self {
            figures: observers.keep_figures().then(Figures::default),
            observers,
            status,
            capacity: None,
            queue: VecDeque::new(),
            lost: 0,
            lost_at: SystemTime::UNIX_EPOCH,
        }
    }

    /// Starts watching at `now`, from the process `pid`; callbacks wait,
    /// at most `capacity` of them, until [`deliver`](Self::deliver) or
    /// [`finish`](Self::finish) makes them.
    pub fn queued(observers: Observers, pid: u32, now: Instant, capacity: usize) -> Self {
        Self {
            capacity: Some(capacity.max(1)),
            ..Self::new(observers, pid, now)
        }
    }

    pub fn status(&self) -> &TreeStatus {
        &self.status
    }

    /// Whether the figures are published to the `metrics` facade's
    /// recorder ([`Tree::with_metrics`](crate::Tree::with_metrics)).
    pub fn publishes_metrics(&self) -> bool {
        self.observers.metrics
    }

    /// Publishes the tree's figures into the current recorder of the
    /// `metrics` facade, with the traffic of `mailboxes` (see
    /// [`Figures::publish`]); nothing if the tree keeps none.
    pub fn publish_figures<'a>(
        &self,
        mailboxes: impl IntoIterator<Item = (&'a str, crate::figures::MailboxCounts)>,
    ) {
        if let Some(figures) = &self.figures {
            figures.publish(&self.status, mailboxes);
        }
    }

    /// Shows `resources` (a subtree's limits and usage) on node `path` of
    /// the status.
    pub fn set_resources(&mut self, path: &str, resources: crate::Resources) {
        self.status.set_resources(path, resources);
    }

    /// Moves the status's clock to `now`.
    pub fn advance(&mut self, now: Instant) {
        self.status.advance(now);
    }

    /// Records `event`, which happened at `now`, in the status, and hands
    /// it to `on_event`: at once, or queued. A full queue drops its oldest
    /// event, and `on_event` is told how many it missed.
    ///
    /// When a supervisor exits, the children started at run time below it
    /// end with it (its next incarnation numbers its own anew): each that
    /// had not ended gets an `Exited` with the supervisor's exit, and each
    /// a `Removed`, before the supervisor's own `Exited`. A late event of
    /// such a child (sent before its supervisor died, read after) is
    /// dropped.
    pub fn event(&mut self, event: Event, now: Instant) {
        self.event_seen(event, now, |_| {});
    }

    /// As [`event`](Self::event), and shows `seen` each event recorded
    /// (the one given, and those made for the children that ended with a
    /// supervisor), in order, as it is recorded: the root's status server
    /// streams them to its watchers.
    pub fn event_seen(&mut self, event: Event, now: Instant, mut seen: impl FnMut(&Event)) {
        if self.status.is_from_ended_supervisor(&event.path) {
            tracing::debug!(path = %event.path, "an event of a supervisor's ended incarnation was dropped");
            return;
        }
        if let EventKind::Exited { exit, .. } = &event.kind {
            let supervisor = self
                .status
                .get(&event.path)
                .is_some_and(|node| node.kind == crate::NodeKind::Supervisor);
            if supervisor {
                for (path, state) in self.status.dynamic_below(&event.path) {
                    if !matches!(state, crate::NodeState::Stopped | crate::NodeState::Failed) {
                        self.record(
                            Event::happened(
                                path.clone(),
                                None,
                                EventKind::Exited {
                                    exit: *exit,
                                    restart: None,
                                    reason: Some(format!("its supervisor {} ended", event.path)),
                                },
                                event.at,
                            ),
                            now,
                            &mut seen,
                        );
                    }
                    self.record(
                        Event::happened(path, None, EventKind::Removed, event.at),
                        now,
                        &mut seen,
                    );
                }
                // Its other children ended with it, without an event:
                // the figures count their exits as its.
                let figures = &mut self.figures;
                self.status.end_below_running(&event.path, |path| {
                    if let Some(figures) = figures.as_mut() {
                        figures.count_exit(path, *exit);
                    }
                });
            }
        }
        self.record(event, now, &mut seen);
    }

    /// Records `event` in the status, shows it to `seen` and hands it to
    /// `on_event`.
    fn record(&mut self, event: Event, now: Instant, seen: &mut impl FnMut(&Event)) {
        let restarted = self.status.fold(&event, now);
        if let Some(figures) = &mut self.figures {
            figures.record(&event, restarted);
        }
        seen(&event);
        if self.observers.on_event.is_none() {
            return;
        }
        match self.capacity {
            None => self.call_on_event(&event),
            Some(capacity) => {
                if self.queue.len() >= capacity {
                    self.drop_oldest_event();
                }
                self.queue.push_back(Call::Event(event));
            }
        }
    }

    /// The whole tree is up: calls `on_ready` once, at once or queued
    /// after the events before it.
    pub fn ready(&mut self) {
        if self.observers.on_ready.is_none() {
            return;
        }
        match self.capacity {
            None => self.call_on_ready(),
            // Never dropped: see `drop_oldest_event`.
            Some(_) => self.queue.push_back(Call::Ready),
        }
    }

    /// Whether callbacks wait to be made.
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Makes the waiting calls, oldest first: at least one, then more while
    /// `more()` says so (the root gives a time budget). A count of dropped
    /// events goes to `on_event` before the event that follows them.
    pub fn deliver(&mut self, mut more: impl FnMut() -> bool) {
        let mut first = true;
        while !self.queue.is_empty() && (std::mem::take(&mut first) || more()) {
            self.call_next();
        }
    }

    /// The tree has ended: keeps the newest `keep` waiting events (the
    /// oldest matter least now) and makes the waiting calls while `more()`
    /// says so; then `on_ready` if it is still due, and, if events were
    /// dropped, tells `on_event` how many it missed.
    pub fn finish(&mut self, keep: usize, mut more: impl FnMut() -> bool) {
        let events = self
            .queue
            .iter()
            .filter(|call| matches!(call, Call::Event(_)))
            .count();
        for _ in keep..events {
            self.drop_oldest_event();
        }
        while !self.queue.is_empty() && more() {
            self.call_next();
        }
        for call in std::mem::take(&mut self.queue) {
            match call {
                Call::Event(event) => self.count_lost(&event),
                Call::Ready => self.call_on_ready(),
            }
        }
        self.report_lost();
    }

    /// Makes the oldest waiting call (after the count of events lost
    /// before it, if any).
    fn call_next(&mut self) {
        match self.queue.pop_front() {
            Some(Call::Event(event)) => {
                self.report_lost();
                self.call_on_event(&event);
            }
            Some(Call::Ready) => self.call_on_ready(),
            None => {}
        }
    }

    /// Drops the oldest waiting event (never the `on_ready` call: there is
    /// one, and it is made once) and counts it.
    fn drop_oldest_event(&mut self) {
        let oldest = self
            .queue
            .iter()
            .position(|call| matches!(call, Call::Event(_)));
        if let Some(Call::Event(event)) = oldest.and_then(|at| self.queue.remove(at)) {
            self.count_lost(&event);
        }
    }

    /// Counts `event` as lost.
    fn count_lost(&mut self, event: &Event) {
        self.lost = self.lost.saturating_add(1);
        self.lost_at = self.lost_at.max(event.at);
    }

    /// Tells `on_event` how many events it missed, if it missed any.
    fn report_lost(&mut self) {
        let lost = std::mem::take(&mut self.lost);
        if lost > 0 {
            self.call_on_event(&Event::happened(
                "root".to_owned(),
                None,
                EventKind::Dropped(lost),
                self.lost_at,
            ));
        }
    }

    /// Calls `on_event`. A callback that panics is logged and not called
    /// again; the events waiting for it are dropped.
    fn call_on_event(&mut self, event: &Event) {
        if let Some(f) = &mut self.observers.on_event {
            if catch_unwind(AssertUnwindSafe(|| f(event))).is_err() {
                tracing::error!("the on_event callback panicked; it will not be called again");
                self.observers.on_event = None;
                self.queue.retain(|call| matches!(call, Call::Ready));
                self.lost = 0;
            }
        }
    }

    /// Calls `on_ready`, once.
    fn call_on_ready(&mut self) {
        if let Some(f) = self.observers.on_ready.take() {
            let status = &self.status;
            if catch_unwind(AssertUnwindSafe(|| f(status))).is_err() {
                tracing::error!("the on_ready callback panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeKind;
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<String>>>;

    fn observed(capacity: Option<usize>) -> (Observed, Log) {
        let log = Log::default();
        let (events, ready) = (log.clone(), log.clone());
        let observers = Observers {
            on_event: Some(Box::new(move |e: &Event| {
                if let Ok(mut log) = events.lock() {
                    log.push(match e.kind {
                        EventKind::Dropped(n) => format!("dropped {n}"),
                        _ => e.path.clone(),
                    });
                }
            })),
            on_ready: Some(Box::new(move |_: &TreeStatus| {
                if let Ok(mut log) = ready.lock() {
                    log.push("ready".to_owned());
                }
            })),
            ..Observers::default()
        };
        let now = Instant::now();
        let observed = match capacity {
            None => Observed::new(observers, 1, now),
            Some(n) => Observed::queued(observers, 1, now, n),
        };
        (observed, log)
    }

    fn started(n: u32) -> Event {
        Event::happened(
            format!("root/{n}"),
            Some(100 + n),
            EventKind::Started(NodeKind::Worker),
            SystemTime::UNIX_EPOCH,
        )
    }

    fn taken(log: &Log) -> Vec<String> {
        log.lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    #[test]
    fn immediate_calls_are_made_at_once() {
        let (mut o, log) = observed(None);
        o.event(started(0), Instant::now());
        o.ready();
        assert_eq!(taken(&log), ["root/0", "ready"]);
        assert!(!o.has_pending());
    }

    #[test]
    fn queued_calls_wait_but_the_status_does_not() {
        let (mut o, log) = observed(Some(8));
        o.event(started(0), Instant::now());
        o.ready();
        assert!(taken(&log).is_empty());
        assert_eq!(o.status().get("root/0").and_then(|n| n.pid), Some(100));
        // At least one call per delivery, however little time is left.
        o.deliver(|| false);
        assert_eq!(taken(&log), ["root/0"]);
        o.deliver(|| true);
        assert_eq!(taken(&log), ["ready"]);
        assert!(!o.has_pending());
    }

    #[test]
    fn a_full_queue_drops_the_oldest_events_and_says_so() {
        let (mut o, log) = observed(Some(3));
        o.event(started(0), Instant::now());
        o.ready();
        for n in 1..=4 {
            o.event(started(n), Instant::now());
        }
        // Capacity 3: root/0..root/2 went, `ready` stays.
        o.deliver(|| true);
        assert_eq!(taken(&log), ["ready", "dropped 3", "root/3", "root/4"]);
        // The status saw everything, and missed nothing.
        assert_eq!(o.status().nodes().count(), 6);
        assert_eq!(o.status().dropped(), 0);
    }

    #[test]
    fn finish_makes_what_time_allows_and_counts_the_rest() {
        let (mut o, log) = observed(Some(16));
        for n in 0..5 {
            o.event(started(n), Instant::now());
        }
        o.ready();
        // The newest 4 are kept (the oldest is dropped), 2 are made.
        let mut budget = 2;
        o.finish(4, || {
            budget -= 1;
            budget >= 0
        });
        assert_eq!(
            taken(&log),
            ["dropped 1", "root/1", "root/2", "ready", "dropped 2"]
        );
        assert!(!o.has_pending());
    }

    #[test]
    fn a_panicking_callback_is_dropped_with_its_queue() {
        let calls = Arc::new(Mutex::new(0));
        let counted = calls.clone();
        let observers = Observers {
            on_event: Some(Box::new(move |_: &Event| {
                if let Ok(mut n) = counted.lock() {
                    *n += 1;
                }
                panic!("on purpose");
            })),
            ..Observers::default()
        };
        let mut o = Observed::queued(observers, 1, Instant::now(), 8);
        for n in 0..3 {
            o.event(started(n), Instant::now());
        }
        o.deliver(|| true);
        assert!(!o.has_pending());
        o.event(started(3), Instant::now());
        assert!(!o.has_pending());
        assert_eq!(calls.lock().map(|n| *n).unwrap_or(0), 1);
    }
}
