//! The forked supervisors' event relay: every forked supervisor sends its
//! lifecycle [`Event`]s up one pipe the root created before it forked
//! anything ([`Relay`], through an [`EventSink`]); the root reads them back
//! with a [`Decoder`] (what it does with them is `crate::root`'s).
//!
//! A message is at most [`MAX_MESSAGE`] bytes, below `PIPE_BUF`, so each
//! write is atomic and writers never interleave. Writes never block: the pipe
//! is non-blocking. When it is full, the sender keeps the event for later,
//! and carries state rather than history: of the events waiting, only the
//! latest of each kind about each path is kept (at most [`MAX_PENDING`]),
//! the others are counted as dropped. [`RETRY_AFTER`] later (its loop wakes
//! up for it, see [`EventSink::deadline`]) the sender writes the count
//! ([`EventKind::Dropped`]) and then what waits, in the order it happened,
//! as far as the pipe takes them, and tries again later if it is still
//! full. So the root's status catches up with the latest state of every
//! node, even of a supervisor that has nothing more to say, and knows how
//! many events it missed; and a flooding supervisor neither retries a write
//! per event nor takes all the room the pipe gets back from the others.
//! The reader resynchronises on the magic bytes and drops (and logs)
//! anything garbled or truncated.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::os::sys;
use crate::wire::frame::{self, FrameReader};
use crate::{Event, EventKind};

/// The longest message; longer paths are cut.
pub(crate) const MAX_MESSAGE: usize = 512;

/// Encodes one event as one message of at most [`MAX_MESSAGE`] bytes.
pub(crate) fn encode(event: &Event) -> Vec<u8> {
    let message = frame::encode(event);
    let excess = message.len().saturating_sub(MAX_MESSAGE);
    if excess == 0 {
        return message;
    }
    // The path's length prefix may shrink too, so cut a little more.
    let mut cut = event.path.len().saturating_sub(excess + 2);
    while !event.path.is_char_boundary(cut) {
        cut -= 1;
    }
    frame::encode(&Event::happened(
        event.path[..cut].to_owned(),
        event.pid,
        event.kind.clone(),
        event.at,
    ))
}

/// Reassembles events from the bytes read off the pipe.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    reader: FrameReader,
}

impl Decoder {
    /// Bytes received and not decoded yet.
    pub(crate) fn pending(&self) -> usize {
        self.reader.pending()
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.reader.push(bytes);
    }

    /// The next whole event; garbled bytes are logged and skipped, and so
    /// is an event that names no path of the tree.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        loop {
            let event: Event = self.reader.next()?;
            if event.path.starts_with("root") {
                return Some(event);
            }
            tracing::warn!(path = %event.path, "event about no path of the tree dropped");
        }
    }
}

/// The most events a supervisor keeps while the pipe is full (the latest
/// of each kind about each path); beyond it the oldest are dropped.
pub(crate) const MAX_PENDING: usize = 1024;

/// How long a supervisor that found the pipe full keeps its events (the
/// latest of each kind about each path) before it tries again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(10);

/// The write end of the event pipe, in a supervisor process.
#[derive(Debug)]
pub(crate) struct EventSink {
    fd: OwnedFd,
    /// This turn's events, written together at its end (see
    /// [`end_turn`](Self::end_turn)).
    turn: Vec<Event>,
    /// Where a write of several events is put together.
    chunk: Vec<u8>,
    /// Set when the pipe was found full: until then, events wait.
    retry_at: Option<Instant>,
    /// The events the pipe had no room for.
    pending: Pending,
    /// Events the root will never see (superseded while waiting, or beyond
    /// [`MAX_PENDING`]): the count goes out before the waiting events.
    dropped: u64,
}

impl EventSink {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            turn: Vec::new(),
            chunk: Vec::new(),
            retry_at: None,
            pending: Pending::default(),
            dropped: 0,
        }
    }

    /// In a freshly forked child supervisor: the same pipe, and none of
    /// the parent's waiting events (they are the parent's to send). They are
    /// forgotten, not freed: no page shared with the parent is written.
    pub(crate) fn for_child(self) -> Self {
        let EventSink {
            fd,
            pending,
            turn,
            chunk,
            ..
        } = self;
        std::mem::forget((pending, turn, chunk));
        Self::new(fd)
    }

    /// Sends `event`, which happens at `now` (the time of the loop's turn),
    /// without blocking, at the end of the turn (see
    /// [`end_turn`](Self::end_turn)); while the pipe is full it waits (see
    /// the module docs).
    pub(crate) fn send(&mut self, event: Event, now: Instant) {
        if self.retry_at.is_some_and(|at| now < at) {
            self.wait(event);
            return;
        }
        self.turn.push(event);
    }

    /// At the end of a turn of the loop (before it sleeps, forks a child
    /// supervisor or tells its parent something that follows its events),
    /// at `now`: writes the turn's events after whatever waits, as far as
    /// the pipe takes them, in as few writes as whole messages allow, each
    /// at most `PIPE_BUF` bytes (so still atomic). What it does not take
    /// waits. A supervisor's turn often has a dozen events (its workers'
    /// starts); one write each woke the root once each.
    pub(crate) fn end_turn(&mut self, now: Instant) {
        if self.turn.is_empty() {
            return;
        }
        let mut turn = std::mem::take(&mut self.turn);
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.clear();
        let mut sent = if self.retry_at.is_some_and(|at| now < at) {
            false
        } else {
            self.retry_at = None;
            self.flush(now)
        };
        // The first event not known to be in the pipe.
        let mut unsent = 0;
        for (n, event) in turn.iter().enumerate() {
            if !sent {
                break;
            }
            let message = encode(event);
            if chunk.len() + message.len() > nix::libc::PIPE_BUF {
                sent = self.write(&chunk, now);
                if sent {
                    unsent = n;
                    chunk.clear();
                }
            }
            chunk.extend_from_slice(&message);
        }
        if sent && (chunk.is_empty() || self.write(&chunk, now)) {
            unsent = turn.len();
        }
        for event in turn.drain(..).skip(unsent) {
            self.wait(event);
        }
        self.turn = turn;
        self.chunk = chunk;
    }

    /// At each turn of the loop, at `now`: sends what waits, if it is
    /// time to try again.
    pub(crate) fn tick(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.flush(now);
        }
    }

    /// When the loop must come back to send what waits: set whenever
    /// something does.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Keeps `event` for later, as the latest of its kind about its path.
    fn wait(&mut self, event: Event) {
        self.dropped = self
            .dropped
            .saturating_add(self.pending.push(event, MAX_PENDING));
    }

    /// Writes the count of dropped events, then the waiting events, oldest
    /// first, as far as the pipe takes them; whether all went.
    fn flush(&mut self, now: Instant) -> bool {
        if self.dropped > 0 {
            let report = Event::new(
                self.pending
                    .front()
                    .map_or_else(|| "root".to_owned(), |e| e.path.clone()),
                None,
                EventKind::Dropped(self.dropped),
            );
            if !self.write(&encode(&report), now) {
                return false;
            }
            self.dropped = 0;
        }
        while let Some(event) = self.pending.front() {
            let message = encode(event);
            if !self.write(&message, now) {
                return false;
            }
            self.pending.pop_front();
        }
        true
    }

    /// Writes `message` if the pipe takes it now; if not, what waits is
    /// tried again [`RETRY_AFTER`] after `now`.
    fn write(&mut self, message: &[u8], now: Instant) -> bool {
        let written = sys::write(&self.fd, message).is_ok_and(|n| n == message.len());
        if !written {
            self.retry_at = Some(now + RETRY_AFTER);
        }
        written
    }
}

/// A forked supervisor's events on their way up the pipe.
#[derive(Debug)]
pub(crate) struct Relay {
    /// Always there; taken only to hand it to a forked child.
    sink: Option<EventSink>,
    /// The time of the current turn of the loop (at first: of the parent's
    /// turn that forked this process), for the sink's retries.
    now: Instant,
}

impl Relay {
    pub(crate) fn new(sink: EventSink, now: Instant) -> Self {
        Self {
            sink: Some(sink),
            now,
        }
    }

    /// In a freshly forked child: the same pipe, without this process's
    /// waiting events (see [`EventSink::for_child`]).
    pub(crate) fn for_child(mut self) -> Option<Relay> {
        let now = self.now;
        self.sink
            .take()
            .map(|sink| Relay::new(sink.for_child(), now))
    }

    pub(crate) fn send(&mut self, event: Event) {
        if let Some(sink) = &mut self.sink {
            sink.send(event, self.now);
        }
    }

    /// The end of a turn of the loop, or of what must reach the root
    /// before what follows (a fork, a note to the parent): the turn's
    /// events go up the pipe.
    pub(crate) fn end_turn(&mut self) {
        if let Some(sink) = &mut self.sink {
            sink.end_turn(self.now);
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.sink.as_ref().and_then(EventSink::deadline)
    }

    pub(crate) fn handle(&mut self, now: Instant) {
        self.now = now;
        if let Some(sink) = &mut self.sink {
            sink.tick(now);
        }
    }
}

impl Drop for Relay {
    /// The supervisor ends: one last try, without waiting, to send its
    /// events that found the pipe full (its last ones among them).
    fn drop(&mut self) {
        if let Some(sink) = &mut self.sink {
            sink.end_turn(self.now);
            sink.tick(self.now + RETRY_AFTER);
        }
    }
}

/// Events waiting for room in the pipe: the latest of each kind about each
/// path, in the order they happened.
#[derive(Debug, Default)]
struct Pending {
    /// The place in `order` of the event of each path and kind.
    index: HashMap<(String, u8), u64>,
    /// The events by the order they came in.
    order: BTreeMap<u64, Event>,
    next: u64,
}

/// An event's kind, as a key: events of one kind about one path supersede
/// each other.
fn kind_key(kind: &EventKind) -> u8 {
    match kind {
        EventKind::Started(_) => 0,
        EventKind::Ready => 1,
        EventKind::Exited { .. } => 2,
        EventKind::HostExited { .. } => 3,
        EventKind::Stopping { .. } => 4,
        EventKind::Dropped(_) => 5,
        EventKind::Removed => 6,
        _ => 7,
    }
}

impl Pending {
    fn front(&self) -> Option<&Event> {
        self.order.first_key_value().map(|(_, event)| event)
    }

    fn pop_front(&mut self) {
        if let Some((_, event)) = self.order.pop_first() {
            let key = (event.path, kind_key(&event.kind));
            self.index.remove(&key);
        }
    }

    /// Adds `event` as the latest; returns how many events that drops: the
    /// one of its kind about its path it supersedes, or the oldest when
    /// `max` wait already.
    fn push(&mut self, event: Event, max: usize) -> u64 {
        let seq = self.next;
        self.next += 1;
        let key = (event.path.clone(), kind_key(&event.kind));
        let mut dropped = 0;
        if let Some(old) = self.index.insert(key, seq) {
            self.order.remove(&old);
            dropped += 1;
        } else if self.order.len() >= max {
            self.pop_front();
            dropped += 1;
        }
        self.order.insert(seq, event);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChildExit, NodeKind};
    use std::time::{Duration, SystemTime};

    /// An event at a fixed time: the same whenever it is made.
    fn event(path: String, pid: Option<u32>, kind: EventKind) -> Event {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000);
        Event::happened(path, pid, kind, at)
    }

    fn samples() -> Vec<Event> {
        vec![
            event(
                "root/1/0".into(),
                Some(42),
                EventKind::Started(NodeKind::Worker),
            ),
            event(
                "root/1/host".into(),
                Some(43),
                EventKind::exited(
                    ChildExit::Signaled(9),
                    Some(Duration::from_micros(3)),
                    Some("boom ✓".into()),
                ),
            ),
            event("root".into(), None, EventKind::stopping(true)),
            event(
                "root/2".into(),
                None,
                EventKind::exited(ChildExit::ForkFailed(11), None, None),
            ),
            event("root/3".into(), None, EventKind::Dropped(7)),
            event("root/0".into(), Some(1), EventKind::Ready),
        ]
    }

    fn decode_all(bytes: &[u8]) -> Vec<Event> {
        let mut d = Decoder::default();
        d.push(bytes);
        std::iter::from_fn(|| d.next_event()).collect()
    }

    #[test]
    fn events_round_trip() {
        let bytes: Vec<u8> = samples().iter().flat_map(encode).collect();
        assert_eq!(decode_all(&bytes), samples());
    }

    #[test]
    fn byte_by_byte_arrival_is_reassembled() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for b in samples().iter().flat_map(encode) {
            d.push(&[b]);
            out.extend(std::iter::from_fn(|| d.next_event()));
        }
        assert_eq!(out, samples());
    }

    #[test]
    fn garbage_and_truncated_messages_are_skipped() {
        let s = samples();
        let mut bytes = b"junk\x5A".to_vec();
        bytes.extend(encode(&s[0]));
        // A truncated message followed by a whole one: the truncated one's
        // length swallows part of the next, which fails to decode; the
        // decoder resynchronises on the following magic.
        let cut = encode(&s[1]);
        bytes.extend(&cut[..cut.len() - 5]);
        bytes.extend(encode(&s[2]));
        // An impossible length.
        bytes.extend([0x5A, 0x17, 0xFF, 0xFF, 0xFF, 0xFF]);
        // A bad kind.
        let mut bad = encode(&s[3]);
        bad[crate::wire::frame::HEADER + 1] = 99;
        bytes.extend(bad);
        bytes.extend(encode(&s[5]));
        let got = decode_all(&bytes);
        assert_eq!(got.first(), Some(&s[0]));
        assert_eq!(got.last(), Some(&s[5]));
        assert!(!got.contains(&s[3]));
    }

    #[test]
    fn long_paths_are_cut_to_fit_one_message() {
        let long = event(format!("root/{}", "é".repeat(400)), None, EventKind::Ready);
        let bytes = encode(&long);
        assert!(bytes.len() <= MAX_MESSAGE);
        let got = decode_all(&bytes);
        assert!(got[0].path.len() <= MAX_MESSAGE && long.path.starts_with(&got[0].path));
    }

    /// Everything the pipe holds now.
    fn drain(read: &OwnedFd, d: &mut Decoder) -> Vec<Event> {
        let mut buf = vec![0u8; 1 << 16];
        let mut got = Vec::new();
        while let Ok(n) = nix::unistd::read(read, &mut buf) {
            if n == 0 {
                break;
            }
            d.push(&buf[..n]);
            got.extend(std::iter::from_fn(|| d.next_event()));
        }
        got
    }

    fn exited(path: &str, pid: u32, exit: ChildExit) -> Event {
        event(
            path.into(),
            Some(pid),
            EventKind::exited(exit, Some(Duration::from_micros(1)), None),
        )
    }

    #[test]
    fn a_full_pipe_keeps_the_latest_state_and_counts_the_rest() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let mut sink = EventSink::new(write);
        let filler = samples()[0].clone();
        let mut sent = 0;
        let t0 = Instant::now();
        while sink.pending.order.is_empty() {
            sink.send(filler.clone(), t0);
            sink.end_turn(t0);
            sent += 1;
        }
        // The pipe is full; the last filler waits. These wait too: the
        // worker's three exits are one state, its latest.
        let host = event(
            "root/1/host".into(),
            Some(9),
            EventKind::Started(NodeKind::WorkerHost),
        );
        sink.send(exited("root/0/0", 5, ChildExit::Panicked), t0);
        sink.send(exited("root/0/0", 5, ChildExit::Exited(1)), t0);
        sink.send(host.clone(), t0);
        sink.send(exited("root/0/0", 5, ChildExit::Exited(0)), t0);
        assert_eq!(sink.dropped, 2);
        // The loop comes back to them.
        assert_eq!(sink.deadline(), Some(t0 + RETRY_AFTER));
        let mut d = Decoder::default();
        let got = drain(&read, &mut d);
        assert_eq!(got.len(), sent - 1);
        assert!(got.iter().all(|e| e == &filler));
        // Room again: the count, then the latest states in order, then the
        // new event.
        let last = event("root/2".into(), None, EventKind::Ready);
        // Not before RETRY_AFTER: it waits too.
        sink.send(last.clone(), t0);
        sink.tick(t0 + RETRY_AFTER / 2);
        assert!(drain(&read, &mut d).is_empty());
        assert_eq!(sink.pending.order.len(), 4);
        let later = event("root/3".into(), None, EventKind::Ready);
        sink.send(later.clone(), t0 + RETRY_AFTER);
        sink.end_turn(t0 + RETRY_AFTER);
        let after = drain(&read, &mut d);
        assert_eq!(after[0].kind, EventKind::Dropped(2));
        assert_eq!(
            &after[1..],
            &[
                filler,
                host,
                exited("root/0/0", 5, ChildExit::Exited(0)),
                last,
                later
            ]
        );
        assert!(sink.pending.order.is_empty());
        assert_eq!((sink.dropped, sink.deadline()), (0, None));
    }

    #[test]
    fn a_quiet_sender_sends_what_waits_when_its_loop_comes_back() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let mut sink = EventSink::new(write);
        let t0 = Instant::now();
        let filler = samples()[0].clone();
        while sink.pending.order.is_empty() {
            sink.send(filler.clone(), t0);
            sink.end_turn(t0);
        }
        // The host is killed while the pipe is full; then nothing more.
        let killed = samples()[1].clone();
        sink.send(killed.clone(), t0);
        // The root empties the pipe; the sender has nothing more to say,
        // but its loop comes back at the deadline and sends what waits.
        let mut d = Decoder::default();
        drain(&read, &mut d);
        assert_eq!(sink.deadline(), Some(t0 + RETRY_AFTER));
        sink.tick(t0 + RETRY_AFTER);
        let got = drain(&read, &mut d);
        assert_eq!(got, [filler, killed]);
        assert_eq!(sink.deadline(), None);
    }

    #[test]
    fn waiting_events_are_bounded() {
        let mut pending = Pending::default();
        let mut dropped = 0;
        for n in 0..10 {
            dropped += pending.push(exited(&format!("root/{n}"), n, ChildExit::Panicked), 4);
        }
        assert_eq!(dropped, 6);
        assert_eq!(pending.order.len(), 4);
        assert_eq!(pending.index.len(), 4);
        assert_eq!(pending.front().map(|e| e.path.as_str()), Some("root/6"));
        // Superseding an event keeps the count and moves it last.
        assert_eq!(
            pending.push(exited("root/6", 6, ChildExit::Exited(0)), 4),
            1
        );
        assert_eq!(pending.front().map(|e| e.path.as_str()), Some("root/7"));
        for _ in 0..4 {
            pending.pop_front();
        }
        assert!(pending.order.is_empty() && pending.index.is_empty());
    }

    #[test]
    fn a_forked_child_does_not_send_its_parents_waiting_events() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let mut sink = EventSink::new(write);
        sink.dropped = 3;
        sink.pending.push(samples()[1].clone(), MAX_PENDING);
        sink.send(samples()[0].clone(), Instant::now());
        let mut child = sink.for_child();
        child.send(samples()[2].clone(), Instant::now());
        child.end_turn(Instant::now());
        let got = drain(&read, &mut Decoder::default());
        assert_eq!(got, [samples()[2].clone()]);
    }

    #[test]
    fn a_turns_events_go_together_at_its_end() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let mut sink = EventSink::new(write);
        let t0 = Instant::now();
        // More than one write holds (PIPE_BUF): cut between whole messages.
        let events: Vec<Event> = (0..40)
            .map(|n| {
                exited(
                    &format!("root/{n}/{}", "x".repeat(200)),
                    n,
                    ChildExit::Panicked,
                )
            })
            .collect();
        for event in &events {
            sink.send(event.clone(), t0);
        }
        let mut d = Decoder::default();
        assert!(drain(&read, &mut d).is_empty());
        sink.end_turn(t0);
        assert_eq!(drain(&read, &mut d), events);
        assert_eq!(sink.deadline(), None);
    }

    fn started(n: u32) -> Event {
        event(
            format!("root/{n}"),
            Some(1000 + n),
            EventKind::Started(NodeKind::Worker),
        )
    }

    #[test]
    fn an_ending_supervisor_sends_what_waits_if_it_can() {
        let (read, write) = sys::pipe().expect("a pipe");
        let mut relay = Relay::new(EventSink::new(write), Instant::now());
        let mut sent = 0;
        while relay.deadline().is_none() {
            relay.send(started(sent));
            relay.end_turn();
            sent += 1;
        }
        // The pipe is full and the last event waits; the root reads.
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = nix::unistd::read(&read, &mut buf) {
            decoder.push(&buf[..n]);
            got.extend(std::iter::from_fn(|| decoder.next_event()));
        }
        assert_eq!(got.len() as u32, sent - 1);
        drop(relay);
        let n = nix::unistd::read(&read, &mut buf).expect("the last event");
        decoder.push(&buf[..n]);
        assert_eq!(decoder.next_event(), Some(started(sent - 1)));
    }
}
