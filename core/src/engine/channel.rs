//! One end of a channel between a supervisor and a child process (or of the
//! event pipe): a non-blocking descriptor, the frames read so far, and the
//! frames waiting to be written.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::sys;
use crate::wire::frame::{self, FrameReader};

/// What a read found of the descriptor beyond its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipeState {
    /// Empty for now (or the read bound was reached); the other end remains.
    Open,
    /// The other end is gone: nothing more will come.
    Closed,
    /// Reading failed.
    Failed(Errno),
}

/// One end of a channel.
#[derive(Debug)]
pub(crate) struct Channel {
    fd: OwnedFd,
    reader: FrameReader,
    outbox: Vec<u8>,
    /// Whether the other end may still send: a closed descriptor polls as
    /// readable forever, so it is not polled once it closed.
    open: bool,
}

impl Channel {
    /// Wraps `fd`, which must be non-blocking.
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self::with_outbox(fd, Vec::new())
    }

    /// Wraps `fd`, with `outbox` already queued (and its capacity kept).
    pub(crate) fn with_outbox(fd: OwnedFd, outbox: Vec<u8>) -> Self {
        Self {
            fd,
            reader: FrameReader::default(),
            outbox,
            open: true,
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the other end may still send.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Whether frames wait to be written.
    pub(crate) fn has_outbox(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Reads what the descriptor holds, at most `max_reads` reads (each up
    /// to 2 KiB); [`next`](Self::next) then hands out the messages.
    pub(crate) fn receive(&mut self, max_reads: usize) -> PipeState {
        let state = fill(&self.fd, &mut self.reader, max_reads);
        if state != PipeState::Open {
            self.open = false;
        }
        state
    }

    /// The next whole message received, if any.
    pub(crate) fn next<T: DeserializeOwned>(&mut self) -> Option<T> {
        self.reader.next()
    }

    /// Queues `message`; [`flush`](Self::flush) writes it.
    pub(crate) fn queue<T: Serialize>(&mut self, message: &T) {
        frame::encode_into(&mut self.outbox, message);
    }

    /// Writes as much of the outbox as the descriptor takes, without
    /// blocking.
    pub(crate) fn flush(&mut self) {
        while !self.outbox.is_empty() {
            match sys::write(&self.fd, &self.outbox) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(_) => break,
            }
        }
    }

    /// Writes `message` now (after anything queued), waiting for room if
    /// need be: for a child process, whose supervisor always reads.
    pub(crate) fn send<T: Serialize>(&mut self, message: &T) -> Result<(), Errno> {
        self.queue(message);
        let written = sys::write_all(self.fd.as_fd(), &self.outbox);
        self.outbox.clear();
        written
    }

    /// In a freshly forked child: lets go of this end. The buffers are
    /// forgotten rather than freed (see `take_children`).
    pub(crate) fn abandon(self) {
        let Self {
            fd, reader, outbox, ..
        } = self;
        drop(fd);
        std::mem::forget((reader, outbox));
    }
}

/// Reads what `fd` holds into `reader`: at most `max_reads` reads.
pub(crate) fn fill(fd: impl AsFd, reader: &mut FrameReader, max_reads: usize) -> PipeState {
    // Small: every process of a tree reads its channels, and a deeper stack
    // is memory each of them keeps.
    let mut chunk = [0u8; 2048];
    let mut reads = 0;
    while reads < max_reads {
        match nix::unistd::read(fd.as_fd(), &mut chunk) {
            // A peer that closed with our data unread resets the socket;
            // what it sent before is read first.
            Ok(0) | Err(Errno::ECONNRESET) => return PipeState::Closed,
            Ok(n) => {
                reader.push(&chunk[..n]);
                reads += 1;
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => break,
            Err(err) => return PipeState::Failed(err),
        }
    }
    PipeState::Open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ChildIdx;
    use crate::wire::Note;

    #[test]
    fn a_channel_carries_messages_both_ways_and_sees_the_end() {
        let (a, b) = sys::socketpair().unwrap();
        let (mut a, mut b) = (Channel::new(a), Channel::new(b));
        let notes: Vec<Note> = (0..2000)
            .map(|n| Note::WorkerReady(ChildIdx::new(n).unwrap()))
            .collect();
        for note in &notes {
            a.queue(note);
        }
        a.flush();
        assert!(!a.has_outbox());
        assert_eq!(b.receive(1), PipeState::Open);
        let first: Vec<Note> = std::iter::from_fn(|| b.next()).collect();
        assert!(!first.is_empty() && first.len() < notes.len());
        b.send(&Note::Ready).unwrap();
        drop(a);
        assert_eq!(b.receive(usize::MAX), PipeState::Closed);
        assert!(!b.is_open());
        let rest: Vec<Note> = std::iter::from_fn(|| b.next()).collect();
        assert_eq!([first, rest].concat(), notes);
    }
}
