//! The messages between a supervisor and its worker host: fixed 8-byte
//! frames over pipes (atomic below `PIPE_BUF`, so several host threads may
//! write events at once).

use crate::ChildExit;

/// One frame: a tag byte, three bytes of padding, a little-endian `u32`.
pub(crate) const FRAME: usize = 8;

/// Supervisor → host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Start (or restart) worker child `n`.
    Start(u32),
    /// Stop worker child `n`: drop its future, then report it.
    Stop(u32),
    /// Stop every worker in reverse order and exit.
    Shutdown,
}

/// Host → supervisor: exactly one `Exited` per `Start`, and any number of
/// `Restarted` before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Worker child `n` ended; its future has been dropped.
    Exited(u32, ChildExit),
    /// Worker child `n` ended with this exit and the host started it again
    /// in place (a `OneForOne` worker; see `Machine::handle_restarted`).
    Restarted(u32, ChildExit),
}

fn frame(tag: u8, value: u32) -> [u8; FRAME] {
    let v = value.to_le_bytes();
    [tag, 0, 0, 0, v[0], v[1], v[2], v[3]]
}

fn unframe(bytes: &[u8]) -> (u8, u32) {
    (
        bytes[0],
        u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
    )
}

impl Command {
    pub(crate) fn encode(self) -> [u8; FRAME] {
        match self {
            Command::Start(n) => frame(1, n),
            Command::Stop(n) => frame(2, n),
            Command::Shutdown => frame(3, 0),
        }
    }

    /// Decodes one frame; `None` for a garbled one.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        match unframe(bytes) {
            (1, n) => Some(Command::Start(n)),
            (2, n) => Some(Command::Stop(n)),
            (3, 0) => Some(Command::Shutdown),
            _ => None,
        }
    }
}

impl Event {
    pub(crate) fn encode(self) -> [u8; FRAME] {
        match self {
            Event::Exited(n, ChildExit::Normal) => frame(1, n),
            Event::Exited(n, ChildExit::Panicked) => frame(2, n),
            // Stopped on request (or any other end): the supervisor only
            // accepts it for a child it asked to stop.
            Event::Exited(n, _) => frame(3, n),
            Event::Restarted(n, ChildExit::Panicked) => frame(5, n),
            Event::Restarted(n, _) => frame(4, n),
        }
    }

    /// Decodes one frame; `None` for a garbled one.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        match unframe(bytes) {
            (1, n) => Some(Event::Exited(n, ChildExit::Normal)),
            (2, n) => Some(Event::Exited(n, ChildExit::Panicked)),
            (3, n) => Some(Event::Exited(n, ChildExit::STOPPED)),
            (4, n) => Some(Event::Restarted(n, ChildExit::Normal)),
            (5, n) => Some(Event::Restarted(n, ChildExit::Panicked)),
            _ => None,
        }
    }
}

/// Splits `buf` into whole frames, keeping a trailing partial frame for the
/// next read.
pub(crate) fn take_frames(buf: &mut Vec<u8>) -> Vec<[u8; FRAME]> {
    let whole = buf.len() / FRAME * FRAME;
    let frames = buf[..whole]
        .chunks_exact(FRAME)
        .map(|c| {
            let mut f = [0u8; FRAME];
            f.copy_from_slice(c);
            f
        })
        .collect();
    buf.drain(..whole);
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
    fn events_round_trip() {
        for e in [
            Event::Exited(3, ChildExit::Normal),
            Event::Exited(7, ChildExit::Panicked),
            Event::Restarted(0, ChildExit::Normal),
            Event::Restarted(u32::MAX, ChildExit::Panicked),
        ] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(Command::decode(&[9, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Event::decode(&[0; FRAME]), None);
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
            Command::decode(&take_frames(&mut buf)[0]),
            Some(Command::Stop(2))
        );
    }
}
