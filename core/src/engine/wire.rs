//! The messages between a supervisor and its children's processes: fixed
//! 16-byte frames over pipes. Frames are smaller than `PIPE_BUF`, so each
//! write is atomic and several writers (threads of a worker host, child
//! supervisors sharing one pipe) never interleave.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;

use crate::ChildExit;

/// One frame: a tag byte, three magic bytes, a little-endian `u32` (the
/// child's index) and a little-endian `u64` (a value some tags carry).
pub(crate) const FRAME: usize = 16;

/// Bytes 1..4 of every frame: a reader that finds anything else there has
/// lost the frame boundary and skips ahead to the next frame that has them.
const MAGIC: [u8; 3] = *b"st!";

/// Supervisor → worker host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Start (or restart) worker child `n`.
    Start(u32),
    /// Stop worker child `n`: drop its future, then report it.
    Stop(u32),
    /// Stop every worker in reverse order and exit.
    Shutdown,
}

/// Worker host or child supervisor → supervisor. A host sends exactly one
/// `Exited` per `Start`, and any number of `Restarted` and `Ready` before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    /// Worker child `n` ended; its future has been dropped.
    Exited(u32, ChildExit),
    /// Worker child `n` ended with this exit and the host started it again
    /// in place after this delay (a `OneForOne` worker; see
    /// `Machine::handle_restarted`).
    Restarted(u32, ChildExit, Duration),
    /// Child `n` (a worker, or a child supervisor whose children all are)
    /// is ready.
    Ready(u32),
}

fn frame(tag: u8, n: u32, value: u64) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[0] = tag;
    f[1..4].copy_from_slice(&MAGIC);
    f[4..8].copy_from_slice(&n.to_le_bytes());
    f[8..16].copy_from_slice(&value.to_le_bytes());
    f
}

fn unframe(bytes: &[u8; FRAME]) -> (u8, u32, u64) {
    let mut n = [0u8; 4];
    n.copy_from_slice(&bytes[4..8]);
    let mut value = [0u8; 8];
    value.copy_from_slice(&bytes[8..16]);
    (bytes[0], u32::from_le_bytes(n), u64::from_le_bytes(value))
}

impl Command {
    pub(crate) fn encode(self) -> [u8; FRAME] {
        match self {
            Command::Start(n) => frame(1, n, 0),
            Command::Stop(n) => frame(2, n, 0),
            Command::Shutdown => frame(3, 0, 0),
        }
    }

    /// Decodes one frame; `None` for a garbled one.
    pub(crate) fn decode(bytes: &[u8; FRAME]) -> Option<Self> {
        match unframe(bytes) {
            (1, n, 0) => Some(Command::Start(n)),
            (2, n, 0) => Some(Command::Stop(n)),
            (3, 0, 0) => Some(Command::Shutdown),
            _ => None,
        }
    }
}

impl Note {
    pub(crate) fn encode(self) -> [u8; FRAME] {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match self {
            Note::Exited(n, ChildExit::Normal) => frame(1, n, 0),
            Note::Exited(n, ChildExit::Panicked) => frame(2, n, 0),
            // Stopped on request (or any other end): the supervisor only
            // accepts it for a child it asked to stop.
            Note::Exited(n, _) => frame(3, n, 0),
            Note::Restarted(n, ChildExit::Panicked, delay) => frame(5, n, nanos(delay)),
            Note::Restarted(n, _, delay) => frame(4, n, nanos(delay)),
            Note::Ready(n) => frame(6, n, 0),
        }
    }

    /// Decodes one frame; `None` for a garbled one.
    pub(crate) fn decode(bytes: &[u8; FRAME]) -> Option<Self> {
        match unframe(bytes) {
            (1, n, 0) => Some(Note::Exited(n, ChildExit::Normal)),
            (2, n, 0) => Some(Note::Exited(n, ChildExit::Panicked)),
            (3, n, 0) => Some(Note::Exited(n, ChildExit::STOPPED)),
            (4, n, ns) => Some(Note::Restarted(
                n,
                ChildExit::Normal,
                Duration::from_nanos(ns),
            )),
            (5, n, ns) => Some(Note::Restarted(
                n,
                ChildExit::Panicked,
                Duration::from_nanos(ns),
            )),
            (6, n, 0) => Some(Note::Ready(n)),
            _ => None,
        }
    }
}

/// What [`read_frames`] found of the pipe beyond its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipeState {
    /// Empty for now (or the read bound was reached); writers remain.
    Open,
    /// Every writer is gone: nothing more will come.
    Closed,
    /// Reading failed.
    Failed(Errno),
}

/// Reads what the non-blocking pipe `fd` holds, at most `max_reads` reads of
/// up to 128 frames each, into `buf`; returns the whole frames received so
/// far (see [`take_frames`]) and the pipe's state.
pub(crate) fn read_frames(
    fd: impl AsFd,
    buf: &mut Vec<u8>,
    max_reads: usize,
) -> (Vec<[u8; FRAME]>, PipeState) {
    let mut chunk = [0u8; FRAME * 128];
    let mut state = PipeState::Open;
    let mut reads = 0;
    while reads < max_reads {
        match nix::unistd::read(fd.as_fd(), &mut chunk) {
            Ok(0) => {
                state = PipeState::Closed;
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                reads += 1;
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => break,
            Err(err) => {
                state = PipeState::Failed(err);
                break;
            }
        }
    }
    (take_frames(buf), state)
}

/// Splits `buf` into whole frames, keeping a trailing partial frame for the
/// next read. Bytes that are not part of a frame (garbage written into the
/// pipe) are logged and skipped: the next frame is found by its magic.
pub(crate) fn take_frames(buf: &mut Vec<u8>) -> Vec<[u8; FRAME]> {
    let mut frames = Vec::new();
    let mut at = 0;
    let mut skipped = 0;
    while buf.len() - at >= FRAME {
        if buf[at + 1..at + 4] == MAGIC {
            let mut f = [0u8; FRAME];
            f.copy_from_slice(&buf[at..at + FRAME]);
            frames.push(f);
            at += FRAME;
        } else {
            at += 1;
            skipped += 1;
        }
    }
    if skipped > 0 {
        tracing::warn!(
            bytes = skipped,
            "garbled bytes on a supervisor pipe dropped"
        );
    }
    buf.drain(..at);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for c in [
            Command::Start(0),
            Command::Stop(u32::MAX),
            Command::Shutdown,
        ] {
            assert_eq!(Command::decode(&c.encode()), Some(c));
        }
    }

    #[test]
    fn notes_round_trip() {
        for e in [
            Note::Exited(3, ChildExit::Normal),
            Note::Exited(7, ChildExit::Panicked),
            Note::Restarted(0, ChildExit::Normal, Duration::from_micros(2)),
            Note::Restarted(u32::MAX, ChildExit::Panicked, Duration::ZERO),
            Note::Ready(9),
        ] {
            assert_eq!(Note::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let mut bad = [0u8; FRAME];
        bad[0] = 9;
        assert_eq!(Command::decode(&bad), None);
        assert_eq!(Note::decode(&[0; FRAME]), None);
        // A known tag with a value it never carries.
        let mut bad = Note::Ready(1).encode();
        bad[9] = 1;
        assert_eq!(Note::decode(&bad), None);
    }

    #[test]
    fn garbage_between_frames_is_skipped() {
        let mut buf = b"junk!".to_vec();
        buf.extend_from_slice(&Note::Ready(1).encode());
        buf.extend_from_slice(&[0xFF; 7]);
        // A frame cut short: it and the frame it runs into are lost (they
        // decode to nothing); the reader is back in step after them.
        buf.extend_from_slice(&Note::Ready(2).encode()[..9]);
        buf.extend_from_slice(&Note::Exited(3, ChildExit::Normal).encode());
        buf.extend_from_slice(&Note::Ready(4).encode());
        let notes: Vec<_> = take_frames(&mut buf).iter().map(Note::decode).collect();
        assert_eq!(notes.first(), Some(&Some(Note::Ready(1))));
        assert_eq!(notes.last(), Some(&Some(Note::Ready(4))));
        assert!(buf.is_empty());
    }

    #[test]
    fn read_frames_honours_its_bound_and_sees_the_end() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let notes: Vec<u8> = (0..300).flat_map(|n| Note::Ready(n).encode()).collect();
        nix::unistd::write(&write, &notes).unwrap();
        let mut buf = Vec::new();
        let (first, state) = read_frames(&read, &mut buf, 1);
        assert_eq!((first.len(), state), (128, PipeState::Open));
        drop(write);
        let (rest, state) = read_frames(&read, &mut buf, usize::MAX);
        assert_eq!((rest.len(), state), (172, PipeState::Closed));
        assert_eq!(Note::decode(&rest[171]), Some(Note::Ready(299)));
    }

    #[test]
    fn partial_frames_wait_for_the_rest() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&Command::Start(1).encode());
        buf.extend_from_slice(&Command::Stop(2).encode()[..5]);
        let frames = take_frames(&mut buf);
        assert_eq!(frames.len(), 1);
        assert_eq!(buf.len(), 5);
        buf.extend_from_slice(&Command::Stop(2).encode()[5..]);
        assert_eq!(
            take_frames(&mut buf)
                .iter()
                .map(Command::decode)
                .collect::<Vec<_>>(),
            [Some(Command::Stop(2))]
        );
    }
}
