//! One end of a channel between a supervisor and a child process: its
//! non-blocking pipe ends, the frames read so far, and the frames waiting to
//! be written.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::PollFlags;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::os::sys;
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

/// One end of a channel: what it reads from (`rx`) and writes to (`tx`),
/// each a non-blocking pipe end. Pipes, not a socket pair: a message on a
/// pipe costs a copy into the pipe's pages, where a Unix socket allocates
/// (and accounts) a buffer per write, which halved the in-place restart
/// rate; and a write of up to `PIPE_BUF` bytes to a pipe is atomic.
#[derive(Debug)]
pub(crate) struct Channel {
    rx: Option<OwnedFd>,
    tx: Option<OwnedFd>,
    reader: FrameReader,
    outbox: Vec<u8>,
    /// Whether the other end may still send: a closed descriptor polls as
    /// readable forever, so it is not polled once it closed.
    open: bool,
    /// Whether the other end may still be written to: a pipe whose reader
    /// is gone (`EPIPE`) polls as ready forever, so it is not polled, nor
    /// written to, once a write failed.
    writable: bool,
}

impl Channel {
    /// A channel both ways: `(the supervisor's end, the child's end)`.
    pub(crate) fn both_ways() -> Result<(Channel, Channel), Errno> {
        let (down_rx, down_tx) = sys::pipe()?;
        let (up_rx, up_tx) = sys::pipe()?;
        Ok((
            Channel::new(Some(up_rx), Some(down_tx)),
            Channel::new(Some(down_rx), Some(up_tx)),
        ))
    }

    fn new(rx: Option<OwnedFd>, tx: Option<OwnedFd>) -> Self {
        Self {
            rx,
            tx,
            reader: FrameReader::default(),
            outbox: Vec::new(),
            open: true,
            writable: true,
        }
    }

    /// Makes room for `bytes` of messages to queue.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.outbox.reserve(bytes);
    }

    /// This end split in two: its reading half and its writing half.
    pub(crate) fn split(self) -> (Channel, Channel) {
        let Channel {
            rx,
            tx,
            reader,
            outbox,
            open,
            writable,
        } = self;
        (
            Channel {
                rx,
                tx: None,
                reader,
                outbox: Vec::new(),
                open,
                writable,
            },
            Channel {
                rx: None,
                tx,
                reader: FrameReader::default(),
                outbox,
                open,
                writable,
            },
        )
    }

    /// What to wait for on this end: its reading descriptor while the other
    /// end may send, its writing one while frames wait.
    pub(crate) fn interest(&self) -> impl Iterator<Item = (BorrowedFd<'_>, PollFlags)> {
        let rx = self.rx.as_ref().filter(|_| self.open);
        let tx = self
            .tx
            .as_ref()
            .filter(|_| self.writable && !self.outbox.is_empty());
        rx.map(|fd| (fd.as_fd(), PollFlags::POLLIN))
            .into_iter()
            .chain(tx.map(|fd| (fd.as_fd(), PollFlags::POLLOUT)))
    }

    /// The descriptors of this end, to close in a forked child that must
    /// not hold them (see [`sys::close_in_child`]).
    pub(crate) fn raw_fds(&self) -> [Option<RawFd>; 2] {
        [
            self.rx.as_ref().map(AsRawFd::as_raw_fd),
            self.tx.as_ref().map(AsRawFd::as_raw_fd),
        ]
    }

    /// Whether the other end may still send.
    pub(crate) fn is_open(&self) -> bool {
        self.open && self.rx.is_some()
    }

    /// Whether the channel is cut: the other end closed what it sends on
    /// (read its end) or what it reads from (a write failed).
    pub(crate) fn is_cut(&self) -> bool {
        (self.rx.is_some() && !self.open) || (self.tx.is_some() && !self.writable)
    }

    /// Reads what the descriptor holds, at most `max_reads` reads (each up
    /// to 2 KiB); [`next`](Self::next) then hands out the messages.
    pub(crate) fn receive(&mut self, max_reads: usize) -> PipeState {
        let Some(rx) = &self.rx else {
            return PipeState::Closed;
        };
        let state = fill(rx, &mut self.reader, max_reads);
        if state != PipeState::Open {
            self.open = false;
        }
        state
    }

    /// The next whole message received, if any.
    pub(crate) fn next<T: DeserializeOwned>(&mut self) -> Option<T> {
        self.reader.next()
    }

    /// Queues `message`; [`flush`](Self::flush) writes it (nothing, once
    /// the other end stopped reading).
    pub(crate) fn queue<T: Serialize>(&mut self, message: &T) {
        if self.writable {
            frame::encode_into(&mut self.outbox, message);
        }
    }

    /// Writes as much of the outbox as the descriptor takes, without
    /// blocking.
    pub(crate) fn flush(&mut self) {
        let Some(tx) = &self.tx else { return };
        while !self.outbox.is_empty() {
            match sys::write(tx, &self.outbox) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => break,
                Err(_) => {
                    // The reader is gone: what waits will never be read.
                    self.writable = false;
                    self.outbox.clear();
                    break;
                }
            }
        }
    }

    /// Writes what is queued now, waiting for room if need be (see
    /// [`send`](Self::send)).
    pub(crate) fn send_queued(&mut self) -> Result<(), Errno> {
        let Some(tx) = &self.tx else {
            return Err(Errno::EBADF);
        };
        if self.outbox.is_empty() {
            return Ok(());
        }
        let written = sys::write_all(tx.as_fd(), &self.outbox);
        self.outbox.clear();
        written
    }

    /// Writes `message` now (after anything queued), waiting for room if
    /// need be: for a child process, whose supervisor always reads.
    pub(crate) fn send<T: Serialize>(&mut self, message: &T) -> Result<(), Errno> {
        let Some(tx) = &self.tx else {
            return Err(Errno::EBADF);
        };
        frame::encode_into(&mut self.outbox, message);
        let written = sys::write_all(tx.as_fd(), &self.outbox);
        self.outbox.clear();
        written
    }

    /// In a freshly forked child: lets go of this end. The buffers are
    /// forgotten rather than freed (see `take_child`).
    pub(crate) fn abandon(self) {
        let Self {
            rx,
            tx,
            reader,
            outbox,
            ..
        } = self;
        drop((rx, tx));
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
            Ok(0) => return PipeState::Closed,
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
        let (mut b, mut a) = Channel::both_ways().unwrap();
        let notes: Vec<Note> = (0..2000)
            .map(|n| Note::WorkerReady(ChildIdx::new(n).unwrap()))
            .collect();
        for note in &notes {
            a.queue(note);
        }
        a.flush();
        assert_eq!(a.interest().count(), 1, "nothing left to write");
        assert_eq!(b.receive(1), PipeState::Open);
        let first: Vec<Note> = std::iter::from_fn(|| b.next()).collect();
        assert!(!first.is_empty() && first.len() < notes.len());
        b.send(&Note::Ready).unwrap();
        a.receive(usize::MAX);
        assert_eq!(a.next::<Note>(), Some(Note::Ready));
        drop(a);
        // Another test's `fork` (before its `exec`) may hold a copy of the
        // write end for a moment: wait for the end, at most a few seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while b.receive(usize::MAX) == PipeState::Open && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!b.is_open(), "the end of the channel was not seen");
        assert!(!b.is_open());
        let rest: Vec<Note> = std::iter::from_fn(|| b.next()).collect();
        assert_eq!([first, rest].concat(), notes);
    }
}
