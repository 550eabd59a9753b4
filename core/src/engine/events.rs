//! Lifecycle events on their way to the root: every forked supervisor
//! writes [`Event`]s to one pipe the root created before it forked anything.
//!
//! A message is at most [`MAX_MESSAGE`] bytes, below `PIPE_BUF`, so each
//! write is atomic and writers never interleave. Writes never block: the pipe
//! is non-blocking, and when it is full the event is dropped and counted, and
//! the count goes out as [`EventKind::Dropped`] with the next event that
//! fits. The reader resynchronises on the magic bytes and drops (and logs)
//! anything garbled or truncated.

use std::os::fd::OwnedFd;

use super::sys;
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
    frame::encode(&Event {
        path: event.path[..cut].to_owned(),
        pid: event.pid,
        kind: event.kind.clone(),
    })
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

/// The write end of the event pipe, in a supervisor process.
#[derive(Debug)]
pub(crate) struct EventSink {
    fd: OwnedFd,
    dropped: u64,
}

impl EventSink {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self { fd, dropped: 0 }
    }

    /// Writes `event` without blocking; when the pipe is full it is dropped
    /// and counted.
    pub(crate) fn send(&mut self, event: &Event) {
        if self.dropped > 0 {
            let dropped = Event {
                path: event.path.clone(),
                pid: None,
                kind: EventKind::Dropped(self.dropped),
            };
            if !self.write(&encode(&dropped)) {
                self.dropped += 1;
                return;
            }
            self.dropped = 0;
        }
        if !self.write(&encode(event)) {
            self.dropped += 1;
        }
    }

    fn write(&self, message: &[u8]) -> bool {
        sys::write(&self.fd, message).is_ok_and(|n| n == message.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChildExit, NodeKind};
    use std::time::Duration;

    fn samples() -> Vec<Event> {
        vec![
            Event {
                path: "root/1/0".into(),
                pid: Some(42),
                kind: EventKind::Started(NodeKind::Worker),
            },
            Event {
                path: "root/1/host".into(),
                pid: Some(43),
                kind: EventKind::Exited {
                    exit: ChildExit::Signaled(9),
                    restart: Some(Duration::from_micros(3)),
                },
            },
            Event {
                path: "root".into(),
                pid: None,
                kind: EventKind::Stopping { gave_up: true },
            },
            Event {
                path: "root/2".into(),
                pid: None,
                kind: EventKind::Exited {
                    exit: ChildExit::ForkFailed(11),
                    restart: None,
                },
            },
            Event {
                path: "root/3".into(),
                pid: None,
                kind: EventKind::Dropped(7),
            },
            Event {
                path: "root/0".into(),
                pid: Some(1),
                kind: EventKind::Ready,
            },
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
        let long = Event {
            path: format!("root/{}", "é".repeat(400)),
            pid: None,
            kind: EventKind::Ready,
        };
        let bytes = encode(&long);
        assert!(bytes.len() <= MAX_MESSAGE);
        let got = decode_all(&bytes);
        assert!(got[0].path.len() <= MAX_MESSAGE && long.path.starts_with(&got[0].path));
    }

    #[test]
    fn a_full_pipe_drops_and_counts_then_reports_the_count() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let mut sink = EventSink::new(write);
        let e = &samples()[0];
        let mut sent = 0;
        while sink.dropped == 0 {
            sink.send(e);
            sent += 1;
        }
        sink.send(e);
        assert_eq!(sink.dropped, 2);
        let mut d = Decoder::default();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = Vec::new();
        while let Ok(n) = nix::unistd::read(&read, &mut buf) {
            if n == 0 {
                break;
            }
            d.push(&buf[..n]);
            got.extend(std::iter::from_fn(|| d.next_event()));
        }
        assert_eq!(got.len(), sent - 1);
        sink.send(e);
        let n = nix::unistd::read(&read, &mut buf).unwrap();
        d.push(&buf[..n]);
        let after: Vec<Event> = std::iter::from_fn(|| d.next_event()).collect();
        assert_eq!(after[0].kind, EventKind::Dropped(2));
        assert_eq!(&after[1], e);
    }
}
