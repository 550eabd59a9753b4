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
use std::time::Duration;

use super::sys;

use crate::{ChildExit, Event, EventKind, NodeKind};

const MAGIC: [u8; 2] = [0xA5, 0x5A];
/// Magic, length, then the fixed fields before the path.
const HEADER: usize = 4;
const FIXED: usize = 1 + 1 + 4 + 1 + 4 + 8 + 8;
/// The longest message; longer paths are cut.
pub(crate) const MAX_MESSAGE: usize = 512;

/// Encodes one event as one message.
pub(crate) fn encode(event: &Event) -> Vec<u8> {
    let (kind, sub, exit, restart, count) = match &event.kind {
        EventKind::Started(k) => (1u8, node_kind(*k), None, None, 0),
        EventKind::Ready => (2, 0, None, None, 0),
        EventKind::Exited { exit, restart } => (3, 0, Some(*exit), *restart, 0),
        EventKind::Stopping { gave_up } => (4, u8::from(*gave_up), None, None, 0),
        EventKind::Dropped(n) => (5, 0, None, None, *n),
    };
    let (exit_tag, exit_value) = exit.map_or((0xFF, 0), encode_exit);
    let restart = restart.map_or(u64::MAX, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
    });
    let mut path = event.path.as_bytes();
    let room = MAX_MESSAGE - HEADER - FIXED;
    if path.len() > room {
        let mut cut = room;
        while !event.path.is_char_boundary(cut) {
            cut -= 1;
        }
        path = &path[..cut];
    }
    let len = u16::try_from(FIXED + path.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER + FIXED + path.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.push(sub);
    out.extend_from_slice(&event.pid.unwrap_or(0).to_le_bytes());
    out.push(exit_tag);
    out.extend_from_slice(&exit_value.to_le_bytes());
    out.extend_from_slice(&restart.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(path);
    out
}

fn node_kind(kind: NodeKind) -> u8 {
    match kind {
        NodeKind::Supervisor => 1,
        NodeKind::Worker => 2,
        NodeKind::WorkerHost => 3,
    }
}

fn encode_exit(exit: ChildExit) -> (u8, i32) {
    match exit {
        ChildExit::Normal => (0, 0),
        ChildExit::Panicked => (1, 0),
        ChildExit::Exited(code) => (2, code),
        ChildExit::Signaled(sig) => (3, sig),
        ChildExit::GaveUp => (4, 0),
        ChildExit::ForkFailed(errno) => (5, errno),
    }
}

fn decode_exit(tag: u8, value: i32) -> Option<ChildExit> {
    Some(match tag {
        0 => ChildExit::Normal,
        1 => ChildExit::Panicked,
        2 => ChildExit::Exited(value),
        3 => ChildExit::Signaled(value),
        4 => ChildExit::GaveUp,
        5 => ChildExit::ForkFailed(value),
        _ => return None,
    })
}

/// Decodes the body of one message (after magic and length).
fn decode_body(body: &[u8]) -> Option<Event> {
    let fixed = body.get(..FIXED)?;
    let u32_at = |i: usize| fixed.get(i..i + 4)?.try_into().ok().map(u32::from_le_bytes);
    let u64_at = |i: usize| fixed.get(i..i + 8)?.try_into().ok().map(u64::from_le_bytes);
    let (kind, sub) = (fixed[0], fixed[1]);
    let pid = u32_at(2)?;
    let exit_tag = fixed[6];
    let exit_value = i32::from_le_bytes(fixed.get(7..11)?.try_into().ok()?);
    let restart = u64_at(11)?;
    let count = u64_at(19)?;
    let path = std::str::from_utf8(&body[FIXED..]).ok()?;
    if !path.starts_with("root") {
        return None;
    }
    let kind = match kind {
        1 => EventKind::Started(match sub {
            1 => NodeKind::Supervisor,
            2 => NodeKind::Worker,
            3 => NodeKind::WorkerHost,
            _ => return None,
        }),
        2 => EventKind::Ready,
        3 => EventKind::Exited {
            exit: decode_exit(exit_tag, exit_value)?,
            restart: (restart != u64::MAX).then(|| Duration::from_nanos(restart)),
        },
        4 => EventKind::Stopping { gave_up: sub == 1 },
        5 => EventKind::Dropped(count),
        _ => return None,
    };
    Some(Event {
        path: path.to_owned(),
        pid: (pid != 0).then_some(pid),
        kind,
    })
}

/// Reassembles events from the bytes read off the pipe.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Bytes received and not decoded yet.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole event; garbled bytes are logged and skipped.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        loop {
            let start = self.buf.windows(2).position(|w| w == MAGIC);
            let skip = start.unwrap_or(self.buf.len().saturating_sub(1));
            if skip > 0 {
                tracing::warn!(bytes = skip, "garbled bytes on the event pipe dropped");
                self.buf.drain(..skip);
            }
            start?;
            let header = self.buf.get(..HEADER)?;
            let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
            if !(FIXED..=MAX_MESSAGE - HEADER).contains(&len) {
                tracing::warn!(len, "event with an impossible length dropped");
                self.buf.drain(..MAGIC.len());
                continue;
            }
            let body = self.buf.get(HEADER..HEADER + len)?;
            let event = decode_body(body);
            if event.is_none() {
                tracing::warn!(len, "garbled event dropped");
                self.buf.drain(..MAGIC.len());
                continue;
            }
            self.buf.drain(..HEADER + len);
            return event;
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
        let mut bytes = b"junk\xA5".to_vec();
        bytes.extend(encode(&s[0]));
        // A truncated message followed by a whole one: the truncated one's
        // length swallows part of the next, which fails to decode; the
        // decoder resynchronises on the following magic.
        let cut = encode(&s[1]);
        bytes.extend(&cut[..cut.len() - 5]);
        bytes.extend(encode(&s[2]));
        // An impossible length.
        bytes.extend([0xA5, 0x5A, 0xFF, 0xFF]);
        // A bad kind.
        let mut bad = encode(&s[3]);
        bad[HEADER] = 99;
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
