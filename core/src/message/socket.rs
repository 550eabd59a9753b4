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

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{select, Either};
use nix::sys::socket::{
    recv, recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};

use super::{Directory, InboxPort, Kind, Op, Outbox, Received, Replier, Services, MAX_MESSAGE};
use crate::{BoxFuture, Error, Interest, IoSource};

/// Registers a file descriptor with the worker host's runtime
/// ([`Spawner::register`](crate::Spawner::register)).
pub(crate) type Register = Arc<dyn Fn(OwnedFd) -> io::Result<Box<dyn IoSource>> + Send + Sync>;

/// Sleeps on the worker host's timer.
pub(crate) type Sleep = Arc<dyn Fn(Duration) -> BoxFuture + Send + Sync>;

/// How many file descriptors a received datagram may carry before it is
/// cut (one is all a call passes).
const FDS_PER_MESSAGE: usize = 4;

thread_local! {
    /// Where datagrams are received: one per thread, large enough to tell a
    /// message over [`MAX_MESSAGE`].
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_MESSAGE + 1]);
}

/// One datagram read from a socket.
pub(crate) struct Datagram {
    pub(crate) body: Vec<u8>,
    /// The file descriptor it carried (a call's reply socket).
    pub(crate) passed: Option<OwnedFd>,
}

/// Sends `body` as one datagram on `fd`, passing `pass` along, without
/// blocking.
pub(crate) fn send_datagram(
    fd: BorrowedFd<'_>,
    body: &[u8],
    pass: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let passed = pass.map(|fd| [fd.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> = passed
        .iter()
        .map(|fds| ControlMessage::ScmRights(fds))
        .collect();
    sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(body)],
        &cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Reads one datagram from `fd` without blocking. A datagram over
/// [`MAX_MESSAGE`] is dropped and logged (with the descriptors it
/// carried, which ends its call): `Ok(None)`.
pub(crate) fn recv_datagram(fd: BorrowedFd<'_>, what: &str) -> io::Result<Option<Datagram>> {
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let mut cmsgs = nix::cmsg_space!([RawFd; FDS_PER_MESSAGE]);
        let mut iov = [IoSliceMut::new(&mut buffer[..])];
        let msg = recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsgs),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let (len, flags) = (msg.bytes, msg.flags);
        let mut passed: Vec<OwnedFd> = Vec::new();
        if let Ok(received) = msg.cmsgs() {
            for cmsg in received {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    // SAFETY: the kernel just installed these descriptors
                    // in this process for this message; nothing else owns
                    // them.
                    passed.extend(
                        fds.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
        }
        if flags.contains(MsgFlags::MSG_TRUNC) || len > MAX_MESSAGE {
            tracing::warn!(
                endpoint = what,
                max = MAX_MESSAGE,
                "an oversized message was dropped"
            );
            return Ok(None);
        }
        if flags.contains(MsgFlags::MSG_CTRUNC) || passed.len() > 1 {
            tracing::warn!(
                endpoint = what,
                "a message carrying unexpected file descriptors was dropped"
            );
            return Ok(None);
        }
        Ok(Some(Datagram {
            body: buffer[..len].to_vec(),
            passed: passed.pop(),
        }))
    })
}

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
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let len = recv(fd.as_raw_fd(), &mut buffer[..], MsgFlags::MSG_DONTWAIT)?;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::executor::block_on;

    use super::*;
    use crate::message::{Declared, Envelope, Inbox, Mailbox};

    /// The services of a tree with one mailbox "m" owned by `root`, on the
    /// default reactor and a sleeping thread as timer.
    fn services() -> SocketServices {
        let declared = vec![Declared {
            name: "m".into(),
            owner: "root".into(),
            kind: Kind::Mailbox,
            argument: "",
        }];
        SocketServices {
            directory: Arc::new(Directory::open(declared).expect("sockets")),
            owner: "root".into(),
            register: Arc::new(crate::reactor::register),
            sleep: Arc::new(|d| {
                let (tx, rx) = futures::channel::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    let _ = tx.send(());
                });
                Box::pin(async move {
                    let _ = rx.await;
                })
            }),
        }
    }

    fn ends(services: &SocketServices) -> (Mailbox<u32>, Inbox<u32>) {
        let outbox = services.outbox("m", Kind::Mailbox).expect("declared");
        let port = services.inbox("m").expect("ours");
        (
            Mailbox {
                name: "m".into(),
                outbox,
                message: std::marker::PhantomData,
            },
            Inbox {
                name: "m".into(),
                port,
                message: std::marker::PhantomData,
            },
        )
    }

    fn recv(inbox: &mut Inbox<u32>) -> Envelope<u32> {
        block_on(inbox.recv()).expect("open")
    }

    #[test]
    fn oversized_and_malformed_messages_are_dropped_and_the_next_one_delivered() {
        let services = services();
        let (mailbox, mut inbox) = ends(&services);
        let tx = services
            .directory
            .find("m", Kind::Mailbox)
            .expect("declared")
            .tx();
        // Over the limit: dropped by the reader, whatever it holds.
        send_datagram(tx, &vec![7; MAX_MESSAGE + 100], None).expect("sent");
        // Not a u32 in postcard (a varint that never ends).
        send_datagram(tx, &[0xff; 12], None).expect("sent");
        block_on(mailbox.send(42)).expect("queued");
        assert_eq!(*recv(&mut inbox).message(), 42);
        // A message the sender would make too large is refused there.
        let big: Mailbox<Vec<u8>> = Mailbox {
            name: "m".into(),
            outbox: mailbox.outbox.clone(),
            message: std::marker::PhantomData,
        };
        let err = block_on(big.send(vec![0; MAX_MESSAGE])).unwrap_err();
        assert!(matches!(err, Error::MessageTooLarge { .. }), "{err}");
    }

    #[test]
    fn a_call_is_answered_fails_at_once_when_dropped_and_times_out() {
        let services = services();
        let (mailbox, mut inbox) = ends(&services);
        let server = std::thread::spawn(move || {
            // Answered, with `()` too (an empty reply).
            let first = recv(&mut inbox);
            assert!(first.is_call());
            let n = *first.message();
            first.reply(n + 1);
            recv(&mut inbox).reply(());
            // Dropped without a reply: the caller learns at once.
            drop(recv(&mut inbox));
            // Kept past the caller's timeout.
            let kept = recv(&mut inbox);
            std::thread::sleep(Duration::from_millis(300));
            drop(kept);
        });
        assert_eq!(
            block_on(mailbox.call::<u32>(1, Duration::from_secs(5))).expect("answered"),
            2
        );
        block_on(mailbox.call::<()>(2, Duration::from_secs(5))).expect("answered with ()");
        let dropped = block_on(mailbox.call::<u32>(3, Duration::from_secs(5))).unwrap_err();
        assert!(matches!(dropped, Error::NoReply { .. }), "{dropped}");
        let started = std::time::Instant::now();
        let late = block_on(mailbox.call::<u32>(4, Duration::from_millis(100))).unwrap_err();
        assert!(matches!(late, Error::Timeout { .. }), "{late}");
        assert!(started.elapsed() < Duration::from_millis(290));
        server.join().expect("server");
    }

    #[test]
    fn a_reply_of_the_wrong_type_is_an_encoding_error() {
        let services = services();
        let (mailbox, mut inbox) = ends(&services);
        // A u64 this large does not fit the u32 the caller expects.
        let server = std::thread::spawn(move || recv(&mut inbox).reply(u64::MAX));
        let err = block_on(mailbox.call::<u32>(1, Duration::from_secs(5))).unwrap_err();
        assert!(matches!(err, Error::Encoding { .. }), "{err}");
        server.join().expect("server");
    }

    #[test]
    fn only_the_owners_workers_serve_a_mailbox() {
        let mut services = services();
        services.owner = "root/1".into();
        let err = services.inbox("m").map(drop).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mailbox \"m\" belongs to supervisor root: only its workers can serve it"
        );
        let err = services.outbox("x", Kind::Mailbox).map(drop).unwrap_err();
        assert_eq!(err.to_string(), "no mailbox is named \"x\" in this tree");
    }
}
