//! One end of a channel between a supervisor and a child process: its
//! non-blocking pipe ends (or socket), the frames read so far, and the
//! frames waiting to be written.

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
/// each a non-blocking pipe end, or one socket both ways (`duplex`).
///
/// Pipes to a worker host ([`both_ways`](Self::both_ways)), not a socket
/// pair: a message on a pipe costs a copy into the pipe's pages, where a
/// Unix socket allocates (and accounts) a buffer per write, which halved
/// the in-place restart rate; and a write of up to `PIPE_BUF` bytes to a
/// pipe is atomic. A socket to a child supervisor
/// ([`duplex`](Self::duplex)), which says little: one descriptor in the
/// parent, not two, and every process the parent forks inherits and
/// closes each of its parent's channels to its siblings, so a root of a
/// thousand supervisors would otherwise have each close two thousand.
#[derive(Debug)]
pub(crate) struct Channel {
    rx: Option<OwnedFd>,
    tx: Option<OwnedFd>,
    /// `rx` is a socket, written to as well (`tx` is `None`).
    duplex: bool,
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
    /// A channel both ways on one non-blocking Unix socket pair: `(the
    /// supervisor's end, the child's end)`. Not [`split`](Self::split).
    pub(crate) fn duplex() -> Result<(Channel, Channel), Errno> {
        let (ours, theirs) = sys::socket_pair()?;
        let end = |fd| Channel {
            duplex: true,
            ..Channel::new(Some(fd), None)
        };
        Ok((end(ours), end(theirs)))
    }

    /// A channel both ways on two pipes: `(the supervisor's end, the
    /// child's end)`.
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
            duplex: false,
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

    /// This end of two pipes split in two: its reading half and its
    /// writing half (a [`duplex`](Self::duplex) end is not split: its
    /// reading half would keep the socket).
    pub(crate) fn split(self) -> (Channel, Channel) {
        let Channel {
            rx,
            tx,
            duplex,
            reader,
            outbox,
            open,
            writable,
        } = self;
        (
            Channel {
                rx,
                tx: None,
                duplex,
                reader,
                outbox: Vec::new(),
                open,
                writable,
            },
            Channel {
                rx: None,
                tx,
                duplex: false,
                reader: FrameReader::default(),
                outbox,
                open,
                writable,
            },
        )
    }

    /// What this end writes to: its pipe's write end, or its socket.
    fn tx(&self) -> Option<BorrowedFd<'_>> {
        if self.duplex {
            self.rx.as_ref().map(AsFd::as_fd)
        } else {
            self.tx.as_ref().map(AsFd::as_fd)
        }
    }

    /// What to wait for on this end: its reading descriptor while the other
    /// end may send, its writing one while frames wait (one socket both
    /// ways is one entry).
    pub(crate) fn interest(&self) -> impl Iterator<Item = (BorrowedFd<'_>, PollFlags)> {
        let rx = self
            .rx
            .as_ref()
            .filter(|_| self.open)
            .map(|fd| (fd.as_fd(), PollFlags::POLLIN));
        let tx = self
            .tx()
            .filter(|_| self.writable && !self.outbox.is_empty())
            .map(|fd| (fd, PollFlags::POLLOUT));
        let ends = match (self.duplex, rx, tx) {
            (true, Some((fd, read)), Some((_, write))) => [Some((fd, read | write)), None],
            (_, rx, tx) => [rx, tx],
        };
        ends.into_iter().flatten()
    }

    /// The descriptors of this end, to close in a forked child that must
    /// not hold them (see [`sys::close_in_child`]).
    pub(crate) fn raw_fds(&self) -> [Option<RawFd>; 2] {
        [
            self.rx.as_ref().map(AsRawFd::as_raw_fd),
            self.tx.as_ref().map(AsRawFd::as_raw_fd),
        ]
    }

    /// Whether frames wait that the descriptor did not take: the other end
    /// has not read what fills it.
    pub(crate) fn has_backlog(&self) -> bool {
        self.writable && !self.outbox.is_empty()
    }

    /// Whether the other end may still send.
    pub(crate) fn is_open(&self) -> bool {
        self.open && self.rx.is_some()
    }

    /// Whether the channel is cut: the other end closed what it sends on
    /// (read its end) or what it reads from (a write failed).
    pub(crate) fn is_cut(&self) -> bool {
        (self.rx.is_some() && !self.open) || (self.tx().is_some() && !self.writable)
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
        while !self.outbox.is_empty() {
            let Some(tx) = self.tx() else { return };
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
        let Some(tx) = self.tx() else {
            return Err(Errno::EBADF);
        };
        if self.outbox.is_empty() {
            return Ok(());
        }
        let written = sys::write_all(tx, &self.outbox);
        self.outbox.clear();
        written
    }

    /// Writes `message` now (after anything queued), waiting for room if
    /// need be: for a child process, whose supervisor always reads.
    pub(crate) fn send<T: Serialize>(&mut self, message: &T) -> Result<(), Errno> {
        if self.tx().is_none() {
            return Err(Errno::EBADF);
        }
        frame::encode_into(&mut self.outbox, message);
        self.send_queued()
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
    fn a_duplex_channel_carries_messages_both_ways_on_one_descriptor_each() {
        let (mut parent, mut child) = Channel::duplex().unwrap();
        assert_eq!(parent.raw_fds()[1], None);
        let notes: Vec<Note> = (0..5000)
            .map(|n| Note::WorkerReady(ChildIdx::new(n).unwrap()))
            .collect();
        for note in &notes {
            child.queue(note);
        }
        child.flush();
        // What did not fit waits: one entry, readable and writable.
        let waits: Vec<PollFlags> = child.interest().map(|(_, f)| f).collect();
        assert!(waits.len() == 1, "{waits:?}");
        let mut got = Vec::new();
        while got.len() < notes.len() {
            parent.receive(usize::MAX);
            got.extend(std::iter::from_fn(|| parent.next::<Note>()));
            child.flush();
        }
        assert_eq!(got, notes);
        parent.send(&Note::Ready).unwrap();
        child.receive(usize::MAX);
        assert_eq!(child.next::<Note>(), Some(Note::Ready));
        drop(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while parent.receive(usize::MAX) == PipeState::Open && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(parent.is_cut(), "the end of the channel was not seen");
    }

    #[test]
    fn a_channel_whose_other_end_does_not_read_has_a_backlog_until_it_does() {
        let (mut parent, mut child) = Channel::duplex().unwrap();
        let note = Note::WorkerReady(ChildIdx::new(7).unwrap());
        let mut sent = 0;
        while !parent.has_backlog() {
            assert!(sent < 1_000_000, "the socket never filled");
            parent.queue(&note);
            parent.flush();
            sent += 1;
        }
        let mut got = 0;
        while parent.has_backlog() || got < sent {
            child.receive(usize::MAX);
            got += std::iter::from_fn(|| child.next::<Note>()).count();
            parent.flush();
        }
        assert_eq!(got, sent);
        assert!(!parent.has_backlog());
    }

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
