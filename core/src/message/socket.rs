//! Mailboxes in the process engine: datagrams on the socket pairs of the
//! [`Directory`], with a socket of its own passed along with each call for
//! its reply.
//!
//! A mailbox's receiving end is held by every process of the tree, its
//! supervisor's included, so what waits in it outlives the worker host that
//! serves it. A call's reply socket is a fresh `SOCK_SEQPACKET` pair: the
//! server holds one end while it has the message (in the mailbox, or in an
//! [`Envelope`](super::Envelope)); when it replies, drops the envelope or
//! dies, the caller reads the reply or the end of the socket at once.
//!
//! [`datagram`] reads and writes the datagrams.

mod datagram;
#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{select, Either};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

pub(crate) use datagram::{recv_datagram, send_datagram};

use super::{Directory, InboxPort, Kind, Op, Outbox, Received, Replier, Services};
use crate::{BoxFuture, Error, Interest, IoSource};

/// Registers a file descriptor with the worker host's runtime
/// ([`Spawner::register`](crate::Spawner::register)).
pub(crate) type Register = Arc<dyn Fn(OwnedFd) -> io::Result<Box<dyn IoSource>> + Send + Sync>;

/// Sleeps on the worker host's timer.
pub(crate) type Sleep = Arc<dyn Fn(Duration) -> BoxFuture + Send + Sync>;

/// Sends a reply on a call's reply socket, without blocking; a caller that
/// is gone is not an error.
pub(crate) fn reply_on(fd: &OwnedFd, body: &[u8]) {
    let mut tagged = Vec::with_capacity(body.len() + 1);
    tagged.push(REPLY_TAG);
    tagged.extend_from_slice(body);
    let sent = send(
        fd.as_raw_fd(),
        &tagged,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    );
    if let Err(err) = sent {
        tracing::debug!(%err, "a reply found no caller");
    }
}

/// The mailboxes of a tree, as the workers of one worker host reach them.
pub(crate) struct SocketServices {
    pub(crate) directory: Arc<Directory>,
    /// The path of the supervisor whose workers run here.
    pub(crate) owner: String,
    pub(crate) register: Register,
    pub(crate) sleep: Sleep,
}

impl Services for SocketServices {
    fn outbox(&self, name: &str, kind: Kind) -> Result<Arc<dyn Outbox>, Error> {
        let endpoint = self.directory.find(name, kind)?;
        let source = endpoint
            .tx()
            .try_clone_to_owned()
            .and_then(|fd| (self.register)(fd))
            .map_err(|source| Error::Os {
                context: "opening a mailbox",
                source,
            })?;
        Ok(Arc::new(SocketOutbox {
            name: name.into(),
            source,
            sending: futures::lock::Mutex::new(()),
            register: self.register.clone(),
            sleep: self.sleep.clone(),
        }))
    }

    fn inbox(&self, name: &str) -> Result<Box<dyn InboxPort>, Error> {
        let endpoint = self.directory.find(name, Kind::Mailbox)?;
        if endpoint.declared.owner != self.owner {
            return Err(Error::NotOwner {
                name: name.to_owned(),
                owner: endpoint.declared.owner.clone(),
            });
        }
        let source = endpoint
            .rx()
            .try_clone_to_owned()
            .and_then(|fd| (self.register)(fd))
            .map_err(|source| Error::Os {
                context: "opening an inbox",
                source,
            })?;
        Ok(Box::new(SocketInbox {
            name: name.into(),
            source,
        }))
    }

    fn argument_type(&self, name: &str) -> Result<&'static str, Error> {
        Ok(self.directory.find(name, Kind::Template)?.declared.argument)
    }
}

/// The sending side of a mailbox in this process.
struct SocketOutbox {
    name: Arc<str>,
    source: Box<dyn IoSource>,
    /// Whose turn it is to send: a reactor wakes only the last task that
    /// waited for a source to be writable, so the tasks sharing this
    /// outbox (clones of one `Mailbox`) wait for a full mailbox one at a
    /// time, in turn.
    sending: futures::lock::Mutex<()>,
    register: Register,
    sleep: Sleep,
}

impl SocketOutbox {
    /// Queues `body` (with `pass`), waiting while the mailbox is full.
    async fn queue(&self, body: &[u8], pass: Option<BorrowedFd<'_>>) -> Result<(), Error> {
        let _turn = self.sending.lock().await;
        std::future::poll_fn(|cx| {
            self.source.poll_io(cx, Interest::Writable, &mut |fd| {
                send_datagram(fd, body, pass)
            })
        })
        .await
        .map_err(|source| Error::Os {
            context: "sending to a mailbox",
            source,
        })
    }

    /// Waits for the reply on `ours`: `None` if the server let go of the
    /// call without one.
    async fn reply(&self, ours: OwnedFd) -> Result<Option<Vec<u8>>, Error> {
        let failed = |source| Error::Os {
            context: "reading a reply",
            source,
        };
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
}

impl Outbox for SocketOutbox {
    fn send(self: Arc<Self>, body: Vec<u8>) -> Op<Result<(), Error>> {
        Box::pin(async move { self.queue(&body, None).await })
    }

    fn call(
        self: Arc<Self>,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Op<Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let (ours, theirs) = socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            )
            .map_err(|errno| Error::Os {
                context: "making a call's reply socket",
                source: errno.into(),
            })?;
            self.queue(&body, Some(theirs.as_fd())).await?;
            // The server holds the other end now: ours ends when it does.
            drop(theirs);
            let answer = self.reply(ours);
            let answer = match timeout {
                None => answer.await?,
                Some(limit) => match select(std::pin::pin!(answer), (self.sleep)(limit)).await {
                    Either::Left((answer, _)) => answer?,
                    Either::Right(((), _)) => {
                        return Err(Error::Timeout {
                            name: self.name.to_string(),
                            after: limit,
                        })
                    }
                },
            };
            answer.ok_or_else(|| Error::NoReply {
                name: self.name.to_string(),
            })
        })
    }
}

/// The tag in front of every reply, so that an empty reply (a `()`) is
/// told from the end of the socket.
const REPLY_TAG: u8 = 1;

/// Reads a reply from a call's socket: `None` at its end (the server let
/// go of the call).
fn recv_reply(fd: BorrowedFd<'_>) -> io::Result<Option<Vec<u8>>> {
    datagram::with_buffer(|buffer| {
        let len = recv(fd.as_raw_fd(), buffer, MsgFlags::MSG_DONTWAIT)?;
        Ok(match buffer[..len].split_first() {
            Some((&REPLY_TAG, body)) => Some(body.to_vec()),
            _ => None,
        })
    })
}

/// Where the reply to one call goes: the socket it passed.
pub(crate) struct SocketReplier(pub(crate) OwnedFd);

impl Replier for SocketReplier {
    fn reply(self: Box<Self>, body: Vec<u8>) {
        reply_on(&self.0, &body);
    }
}

/// The serving side of a mailbox in this process.
struct SocketInbox {
    name: Arc<str>,
    source: Box<dyn IoSource>,
}

impl InboxPort for SocketInbox {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        loop {
            let mut got = None;
            let name = &self.name;
            let read = self.source.poll_io(cx, Interest::Readable, &mut |fd| {
                got = recv_datagram(fd, name)?;
                Ok(())
            });
            match std::task::ready!(read) {
                Ok(()) => {}
                Err(err) => {
                    tracing::error!(mailbox = %self.name, %err, "reading the mailbox failed; it is closed for this run");
                    return Poll::Ready(None);
                }
            }
            if let Some(datagram) = got {
                return Poll::Ready(Some(Received {
                    body: datagram.body,
                    reply: datagram
                        .passed
                        .map(|fd| Box::new(SocketReplier(fd)) as Box<dyn Replier>),
                }));
            }
        }
    }
}
