//! The fd-registration seam between the engine and an async runtime:
//! [`Register`], and the [`IoSource`] it hands out for the readiness of a
//! file descriptor; [`DefaultReactor`], a spawner with the engine's own
//! reactor.
//!
//! Mailboxes' sockets wait on the reactor of the runtime their worker host
//! runs. A backend with a reactor (Tokio, smol) implements [`Register`] for
//! its spawner; any other executor, which only implements
//! `supertrees_core::Spawner`, gets the engine's default reactor
//! ([`DefaultReactor`]).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use supertrees_core::{BoxFuture, Spawner};

mod check;
pub(crate) mod reactor;

pub use check::check_register;

/// Registration of file descriptors with the reactor of a [`Spawner`]'s
/// runtime: what the engine needs of a spawner besides running futures.
///
/// Implemented by `supertrees_tokio::TokioSpawner` and
/// `supertrees_smol::SmolSpawner` with their runtime's reactor. The default
/// method is the engine's default reactor, so an executor with none of its
/// own implements it with an empty `impl Register for MySpawner {}` (or is
/// wrapped in [`DefaultReactor`], which the facade does for every spawner
/// it does not know).
pub trait Register {
    /// Registers `fd` with the reactor of the runtime that
    /// [`block_on`](supertrees_core::Spawner::block_on) runs, for use by tasks on it: they wait
    /// for the fd to become readable or writable with
    /// [`IoSource::poll_io`].
    ///
    /// The returned source owns `fd`: dropping it deregisters and closes it.
    /// Call it from inside `block_on` (a backend's reactor may only exist
    /// there).
    ///
    /// The default, for executors that have no reactor of their own, is a
    /// small one in this crate: a background thread per process, started by
    /// the first registration in that process, that `poll(2)`s the fds tasks
    /// currently wait on and wakes them. A source from the default belongs
    /// to the process that registered it: after a `fork`, register again in
    /// the child. Backends with a reactor (Tokio, smol) override this method
    /// with it.
    ///
    /// # Errors
    ///
    /// If the fd can not be registered; with the default, if the reactor
    /// thread (or its pipe) can not be made.
    ///
    /// # Examples
    ///
    /// A spawner that only knows how to run futures gets the default
    /// reactor; here a task waits for a datagram that another thread sends
    /// a little later:
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::time::Duration;
    /// use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    /// use supertrees_core::{BoxFuture, Spawner};
    /// use supertrees_engine::{Interest, Register};
    ///
    /// #[derive(Clone)]
    /// struct Blocking;
    /// impl Spawner for Blocking {
    ///     fn block_on(&self, fut: BoxFuture) {
    ///         futures::executor::block_on(fut)
    ///     }
    ///     fn spawn(&self, fut: BoxFuture) {
    ///         std::thread::spawn(move || futures::executor::block_on(fut));
    ///     }
    /// }
    /// // No reactor of its own: the default one.
    /// impl Register for Blocking {}
    ///
    /// let (ours, theirs) =
    ///     socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC)?;
    /// std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     send(theirs.as_raw_fd(), b"hello", MsgFlags::empty())
    /// });
    ///
    /// Blocking.block_on(Box::pin(async move {
    ///     let source = Blocking.register(ours).expect("register");
    ///     let mut buf = [0; 16];
    ///     let mut len = 0;
    ///     futures::future::poll_fn(|cx| {
    ///         source.poll_io(cx, Interest::Readable, &mut |fd| {
    ///             len = recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)?;
    ///             Ok(())
    ///         })
    ///     })
    ///     .await
    ///     .expect("recv");
    ///     assert_eq!(&buf[..len], b"hello");
    /// }));
    /// # Ok::<(), nix::Error>(())
    /// ```
    fn register(&self, fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
        reactor::register(fd)
    }
}

/// A [`Spawner`] with the engine's default reactor: `spawner` runs the
/// futures, and [`Register`] is the default (see [`Register::register`]).
/// What the engine runs an executor on that has no [`Register`] of its
/// own.
///
/// # Examples
///
/// ```
/// use supertrees_core::{BoxFuture, Spawner};
/// use supertrees_engine::{DefaultReactor, Register};
///
/// #[derive(Clone)]
/// struct Blocking;
/// impl Spawner for Blocking {
///     fn block_on(&self, fut: BoxFuture) {
///         futures::executor::block_on(fut)
///     }
///     fn spawn(&self, fut: BoxFuture) {
///         std::thread::spawn(move || futures::executor::block_on(fut));
///     }
/// }
///
/// fn runs<S: Spawner + Register>(_: &S) {}
/// runs(&DefaultReactor(Blocking));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultReactor<S>(pub S);

impl<S: Spawner> Spawner for DefaultReactor<S> {
    fn block_on(&self, fut: BoxFuture) {
        self.0.block_on(fut);
    }

    fn spawn(&self, fut: BoxFuture) {
        self.0.spawn(fut);
    }

    fn is_inside_runtime(&self) -> bool {
        self.0.is_inside_runtime()
    }
}

impl<S> Register for DefaultReactor<S> {}

/// Which readiness an I/O operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// The fd has data to read (or the peer hung up, or an error is
    /// pending): a `recv` will not block.
    Readable,
    /// The fd has room to write (or an error is pending): a `send` will not
    /// block.
    Writable,
}

/// A file descriptor registered with a runtime's reactor (see
/// [`Register::register`]).
///
/// The source owns its fd; dropping the source deregisters and closes it.
/// It does no I/O of its own: the caller's operation does, non-blocking
/// (e.g. `recv` with `MSG_DONTWAIT`), and the source waits for readiness
/// whenever the operation would block. An implementation may, but need not,
/// put the fd in non-blocking mode.
///
/// One task may wait for [`Readable`](Interest::Readable) while another
/// waits for [`Writable`](Interest::Writable) on the same source (one
/// sending, one receiving). As with Tokio's `AsyncFd` and async-io's
/// `Async`, only the task that waited last for an interest is sure to be
/// woken for it: give each direction a single task.
///
/// # Examples
///
/// A future that sends a datagram as soon as the socket has room, written
/// once for every backend:
///
/// ```
/// use std::future::Future;
/// use std::io;
/// use std::os::fd::AsRawFd;
/// use nix::sys::socket::{send, MsgFlags};
/// use supertrees_engine::{Interest, IoSource};
///
/// fn send_to<'a>(
///     source: &'a dyn IoSource,
///     msg: &'a [u8],
/// ) -> impl Future<Output = io::Result<usize>> + 'a {
///     let mut sent = 0;
///     futures::future::poll_fn(move |cx| {
///         source
///             .poll_io(cx, Interest::Writable, &mut |fd| {
///                 sent = send(fd.as_raw_fd(), msg, MsgFlags::MSG_DONTWAIT)?;
///                 Ok(())
///             })
///             .map_ok(|()| sent)
///     })
/// }
///
/// # use nix::sys::socket::{recv, socketpair, AddressFamily, SockFlag, SockType};
/// # use supertrees_core::{BoxFuture, Spawner};
/// # use supertrees_engine::Register;
/// # #[derive(Clone)]
/// # struct Blocking;
/// # impl Spawner for Blocking {
/// #     fn block_on(&self, fut: BoxFuture) { futures::executor::block_on(fut) }
/// #     fn spawn(&self, fut: BoxFuture) { std::thread::spawn(move || futures::executor::block_on(fut)); }
/// # }
/// # impl Register for Blocking {}
/// let (ours, theirs) =
///     socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
/// let source = Blocking.register(ours)?;
/// assert_eq!(futures::executor::block_on(send_to(&*source, b"ping"))?, 4);
/// let mut buf = [0; 8];
/// assert_eq!(recv(theirs.as_raw_fd(), &mut buf, MsgFlags::empty())?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait IoSource: Send + Sync {
    /// Runs `op` on the fd; while `op` fails with
    /// [`io::ErrorKind::WouldBlock`], waits (registering `cx`'s waker) until
    /// the fd is ready for `interest`, then tries again.
    ///
    /// Returns `Ready` with `op`'s first result that is not `WouldBlock`,
    /// an error of its own if the reactor can not wait for the fd, and
    /// `Pending` (with `cx`'s waker registered, no wake-up lost between the
    /// two) while `op` would block. Readiness can be spurious: `op` is
    /// simply run again.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
    ) -> Poll<io::Result<()>>;
}
