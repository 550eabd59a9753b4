//! Mailboxes in the process engine: datagrams on the socket pairs of the
//! [`Directory`], with a socket of its own passed along with each call for
//! its reply.
//!
//! A mailbox's receiving ends (one per user the tree runs as) are held by
//! its supervisor's processes (and the supervisors above it), so what waits
//! in them outlives the worker host that serves them; its sending ends by
//! the processes of each user, its own (see [`Directory`]). A call's reply socket is a fresh `SOCK_SEQPACKET` pair, made
//! by the attempt that sends the call (so a call waiting for room holds
//! none): the server holds one end while it has the message (in the
//! mailbox, or in an [`Envelope`](super::Envelope)); when it replies, drops
//! the envelope or dies, the caller reads the reply or the end of the
//! socket at once.
//!
//! [`datagram`] reads and writes the datagrams, [`room`] waits for room in
//! a full mailbox.

mod datagram;
mod room;
#[cfg(test)]
mod tests;

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{select, Either};
use nix::sys::socket::{recvmsg, sendmsg, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

pub(crate) use datagram::{recv_queued, send_datagram};
use room::Room;

use crate::directory::Directory;
use crate::port::{InboxPort, Kind, Op, Outbox, Received, Replier, Services};
use crate::{Error, Interest, IoSource};
use supertrees_core::BoxFuture;

/// Registers a file descriptor with the worker host's runtime
/// ([`Spawner::register`](crate::Spawner::register)).
pub(crate) type Register = Arc<dyn Fn(OwnedFd) -> io::Result<Box<dyn IoSource>> + Send + Sync>;

/// Sleeps on the worker host's timer.
pub(crate) type Sleep = Arc<dyn Fn(Duration) -> BoxFuture + Send + Sync>;

/// The tag in front of every reply, so that an empty reply is told from
/// the end of the socket.
const REPLY_TAG: u8 = 1;

/// Sends a reply on a call's reply socket, without blocking; a caller that
/// is gone is not an error.
pub(crate) fn reply_on(fd: &OwnedFd, body: &[u8]) {
    let sent = sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(&[REPLY_TAG]), IoSlice::new(body)],
        &[],
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    );
    if let Err(err) = sent {
        tracing::debug!(%err, "a reply found no caller");
    }
}

/// Reads a reply from a call's socket: `None` at its end (the server let
/// go of the call), or if it is larger than a reply can be (then logged).
fn recv_reply(fd: BorrowedFd<'_>) -> io::Result<Option<Vec<u8>>> {
    datagram::with_buffer(|buffer| {
        let mut iov = [IoSliceMut::new(buffer)];
        let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT)?;
        let (len, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
        if truncated {
            tracing::warn!("an oversized reply was dropped");
            return Ok(None);
        }
        Ok(match buffer[..len].split_first() {
            Some((&REPLY_TAG, body)) => Some(body.to_vec()),
            _ => None,
        })
    })
}

/// The mailboxes of a tree, as the workers of one worker host reach them.
pub(crate) struct SocketServices {
    pub(crate) directory: Arc<Directory>,
    /// The path of the supervisor whose workers run here.
    pub(crate) owner: String,
    /// The effective user of this process: whose queues it sends on.
    pub(crate) uid: u32,
    pub(crate) register: Register,
    pub(crate) sleep: Sleep,
}

impl Services for SocketServices {
    fn outbox(&self, name: &str, kind: Kind) -> Result<Arc<dyn Outbox>, Error> {
        let endpoint = self.directory.find(name, kind)?;
        let failed = |source| Error::os("opening a mailbox", source);
        let tx = endpoint.sender(self.uid).map_err(failed)?;
        let source = tx
            .try_clone()
            .and_then(|fd| (self.register)(fd))
            .map_err(failed)?;
        Ok(Arc::new(SocketOutbox {
            name: name.into(),
            room: Room::new(tx, source),
            register: self.register.clone(),
            sleep: self.sleep.clone(),
        }))
    }

    fn inbox(&self, name: &str) -> Result<Box<dyn InboxPort>, Error> {
        let endpoint = self.directory.find(name, Kind::Mailbox)?;
        if endpoint.declared.owner != self.owner {
            return Err(Error::not_owner(
                name.to_owned(),
                endpoint.declared.owner.clone(),
            ));
        }
        let sources = endpoint
            .receivers()
            .map(|rx| rx.try_clone_to_owned().and_then(|fd| (self.register)(fd)))
            .collect::<io::Result<Vec<_>>>()
            .and_then(|sources| {
                if sources.is_empty() {
                    Err(io::Error::other(
                        "this process holds none of the mailbox's sockets",
                    ))
                } else {
                    Ok(sources)
                }
            })
            .map_err(|source| Error::os("opening an inbox", source))?;
        Ok(Box::new(SocketInbox {
            name: name.into(),
            sources,
            next: 0,
        }))
    }

    fn argument_type(&self, name: &str) -> Result<&'static str, Error> {
        Ok(self.directory.find(name, Kind::Template)?.declared.argument)
    }

    fn tally(&self, name: &str) -> supertrees_core::figures::Tally {
        self.directory.tally(name, self.uid)
    }
}

/// The sending side of a mailbox in this process.
struct SocketOutbox {
    name: Arc<str>,
    room: Room,
    register: Register,
    sleep: Sleep,
}

impl SocketOutbox {
    /// One attempt at sending the call `body`: with the far end of a reply
    /// socket pair made now, and closed again if the mailbox is full. The
    /// near end, once sent.
    fn send_call(fd: BorrowedFd<'_>, body: &[u8]) -> io::Result<OwnedFd> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        send_datagram(fd, body, Some(theirs.as_fd()))?;
        // The server holds the other end now: ours ends when it does.
        Ok(ours)
    }

    /// Sends the call `body` once there is room, and waits for its reply:
    /// `None` if the server let go of the call without one.
    async fn ask(&self, body: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let ours = self
            .room
            .wait(|fd| Self::send_call(fd, body))
            .await
            .map_err(|source| Error::os("sending a call to a mailbox", source))?;
        let failed = |source| Error::os("reading a reply", source);
        let reply = (self.register)(ours).map_err(failed)?;
        let mut got = None;
        std::future::poll_fn(|cx| {
            reply.poll_io(cx, Interest::Readable, &mut |fd| {
                got = recv_reply(fd)?;
                Ok(())
            })
        })
        .await
        .map_err(failed)?;
        Ok(got)
    }

    fn sending_failed(&self, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::WouldBlock {
            return Error::mailbox_full(self.name.to_string());
        }
        Error::os("sending to a mailbox", source)
    }
}

impl Outbox for SocketOutbox {
    fn send(self: Arc<Self>, body: Vec<u8>) -> Op<Result<(), Error>> {
        Box::pin(async move {
            self.room
                .wait(|fd| send_datagram(fd, &body, None))
                .await
                .map_err(|source| self.sending_failed(source))
        })
    }

    fn try_send(&self, body: &[u8]) -> Result<(), Error> {
        self.room
            .try_now(|fd| send_datagram(fd, body, None))
            .map_err(|source| self.sending_failed(source))
    }

    fn call(self: Arc<Self>, body: Vec<u8>, timeout: Duration) -> Op<Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let asked = std::pin::pin!(self.ask(&body));
            match select(asked, (self.sleep)(timeout)).await {
                Either::Left((answer, _)) => {
                    answer?.ok_or_else(|| Error::no_reply(self.name.to_string()))
                }
                Either::Right(((), _)) => Err(Error::timeout(self.name.to_string(), timeout)),
            }
        })
    }
}

/// Where the reply to one call goes: the socket it passed.
pub(crate) struct SocketReplier(pub(crate) OwnedFd);

impl Replier for SocketReplier {
    fn reply(self: Box<Self>, body: Vec<u8>) {
        reply_on(&self.0, &body);
    }
}

/// The serving side of a mailbox in this process: its queues (one per
/// user the tree runs as), read in turn.
struct SocketInbox {
    name: Arc<str>,
    sources: Vec<Box<dyn IoSource>>,
    /// The queue read first at the next poll: each gets its turn, so one
    /// that is never empty holds up no other.
    next: usize,
}

impl InboxPort for SocketInbox {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let count = self.sources.len();
        let mut n = 0;
        while n < count {
            let at = (self.next + n) % count;
            let mut got = None;
            let name = &self.name;
            let read = self.sources[at].poll_io(cx, Interest::Readable, &mut |fd| {
                got = recv_queued(fd, name)?;
                Ok(())
            });
            match read {
                // Empty now: the next queue; this one wakes the task.
                Poll::Pending => n += 1,
                Poll::Ready(Err(err)) => {
                    tracing::error!(mailbox = %self.name, %err, "reading the mailbox failed; it is closed for this run");
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(())) => {
                    if let Some(datagram) = got {
                        self.next = (at + 1) % count;
                        return Poll::Ready(Some(Received {
                            body: datagram.body,
                            reply: datagram
                                .passed
                                .map(|fd| Box::new(SocketReplier(fd)) as Box<dyn Replier>),
                        }));
                    }
                    // Dropped (malformed): this queue again.
                }
            }
        }
        Poll::Pending
    }
}
