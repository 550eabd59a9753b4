//! The seams between the engine and an async runtime: [`Spawner`] (with
//! [`Spawner::register`] and its [`IoSource`] for readiness of file
//! descriptors) and [`Timer`].
//!
//! The engine never names a runtime. Each worker host (a forked process that
//! runs one supervisor's workers) calls [`Spawner::block_on`] once, right
//! after fork, so the runtime is built in the process that uses it and never
//! crosses a `fork`. Backends for Tokio and smol live in their own crates;
//! anything else that can drive futures plugs in the same way.

use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A boxed, sendable future with no output: the unit of work the engine hands
/// to a [`Spawner`].
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An executor the engine can run worker tasks on.
///
/// # Examples
///
/// A spawner on top of `futures`' thread pool-free local executor:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::cell::RefCell;
/// use supertrees::{BoxFuture, Spawner};
///
/// thread_local! {
///     static SPAWNER: RefCell<Option<futures::executor::LocalSpawner>> = RefCell::new(None);
/// }
///
/// #[derive(Clone, Debug, Default)]
/// struct LocalPoolSpawner;
///
/// impl Spawner for LocalPoolSpawner {
///     fn block_on(&self, fut: BoxFuture) {
///         let mut pool = futures::executor::LocalPool::new();
///         SPAWNER.with(|s| *s.borrow_mut() = Some(pool.spawner()));
///         pool.run_until(fut);
///         SPAWNER.with(|s| *s.borrow_mut() = None);
///     }
///     fn spawn(&self, fut: BoxFuture) {
///         use futures::task::SpawnExt;
///         SPAWNER.with(|s| {
///             if let Some(spawner) = s.borrow().as_ref() {
///                 // Spawning only fails once the pool is gone; then there
///                 // is nothing left to run the task on.
///                 let _ = spawner.spawn(fut);
///             }
///         });
///     }
/// }
///
/// LocalPoolSpawner.block_on(Box::pin(async {
///     LocalPoolSpawner.spawn(Box::pin(async { println!("spawned") }));
/// }));
/// ```
pub trait Spawner: Clone + Send + Sync + 'static {
    /// Runs `fut` to completion, driving every task spawned meanwhile.
    ///
    /// Called inside each freshly forked worker host: build the runtime here,
    /// never before `fork`.
    fn block_on(&self, fut: BoxFuture);

    /// Spawns a task on the executor that the current [`block_on`](Self::block_on)
    /// drives.
    fn spawn(&self, fut: BoxFuture);

    /// Whether the calling thread is already inside a running runtime of this
    /// kind. Starting a tree there would fork a multi-threaded process, so
    /// [`start_with`](crate::Tree::start_with) then returns
    /// [`Error::InsideRuntime`](crate::Error::InsideRuntime).
    ///
    /// The default says `false`; backends that can tell override it.
    fn is_inside_runtime(&self) -> bool {
        false
    }

    /// Registers `fd` with the reactor of the runtime that
    /// [`block_on`](Self::block_on) runs, for use by tasks on it: they wait
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
    /// # extern crate supertrees_core as supertrees;
    /// use std::os::fd::AsRawFd;
    /// use std::time::Duration;
    /// use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    /// use supertrees::{BoxFuture, Interest, Spawner};
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
        crate::reactor::register(fd)
    }
}

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
/// [`Spawner::register`]).
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
/// # extern crate supertrees_core as supertrees;
/// use std::future::Future;
/// use std::io;
/// use std::os::fd::AsRawFd;
/// use nix::sys::socket::{send, MsgFlags};
/// use supertrees::{Interest, IoSource};
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
/// # use supertrees::{BoxFuture, Spawner};
/// # #[derive(Clone)]
/// # struct Blocking;
/// # impl Spawner for Blocking {
/// #     fn block_on(&self, fut: BoxFuture) { futures::executor::block_on(fut) }
/// #     fn spawn(&self, fut: BoxFuture) { std::thread::spawn(move || futures::executor::block_on(fut)); }
/// # }
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

/// A clock and a way to sleep on it.
///
/// Supervisors read [`now`](Timer::now) for every decision (backoff, restart
/// intensity); the simulation swaps in [`FakeTimer`](crate::testing::FakeTimer)
/// so that those decisions run on virtual time.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::{Duration, Instant};
/// use supertrees::{BoxFuture, Timer};
///
/// /// A timer that sleeps by blocking the thread: fine for a demo, not for a runtime.
/// #[derive(Clone, Debug)]
/// struct BlockingTimer;
///
/// impl Timer for BlockingTimer {
///     fn now(&self) -> Instant {
///         Instant::now()
///     }
///     fn sleep(&self, duration: Duration) -> BoxFuture {
///         std::thread::sleep(duration);
///         Box::pin(async {})
///     }
/// }
///
/// let timer = BlockingTimer;
/// let before = timer.now();
/// futures::executor::block_on(timer.sleep(Duration::from_millis(1)));
/// assert!(timer.now() >= before + Duration::from_millis(1));
/// ```
pub trait Timer: Clone + Send + Sync + 'static {
    /// The current time on this timer's clock.
    fn now(&self) -> Instant;

    /// A future that completes once `duration` has passed on this clock.
    ///
    /// # Examples
    ///
    /// A worker that ticks every second on the timer it is given: Tokio's
    /// or smol's in processes, a [`FakeTimer`](crate::testing::FakeTimer)
    /// in the simulation, where its three ticks take no real time:
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::testing::{run_simulated, FakeTimer};
    /// use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Timer, Worker};
    ///
    /// struct Ticker<T>(T);
    /// impl<T: Timer> Worker for Ticker<T> {
    ///     fn init(&self) -> BoxFuture {
    ///         let timer = self.0.clone();
    ///         Box::pin(async move {
    ///             for tick in 1..=3 {
    ///                 timer.sleep(Duration::from_secs(1)).await;
    ///                 println!("tick {tick}");
    ///             }
    ///         })
    ///     }
    /// }
    /// impl<T> Restartable for Ticker<T> {
    ///     fn restart_policy(&self) -> RestartPolicy {
    ///         RestartPolicy::Never
    ///     }
    /// }
    ///
    /// let timer = FakeTimer::new();
    /// run_simulated(Supertree::new().add_worker(Ticker(timer.clone())), timer.clone())?;
    /// assert_eq!(timer.elapsed(), Duration::from_secs(3));
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    fn sleep(&self, duration: Duration) -> BoxFuture;
}

/// A [`Spawner`] and a [`Timer`] known by type, so that a tree can be
/// started without naming them: `start()` exists on every
/// [`Tree<Root<B>>`](crate::Tree) whose `B` is a `Backend`.
///
/// Backend crates implement it on a marker type (`supertrees_tokio::Tokio`,
/// `supertrees_smol::Smol`); `supertrees::Supertree` is the root tree of
/// the default backend, which is how its `start()` works. A root of no
/// backend ([`Manual`](crate::tree::Manual)) is started with
/// [`start_with`](crate::Tree::start_with).
///
/// # Examples
///
/// A backend of your own, here on `futures`' executor and a thread-sleeping
/// timer (the paths are the `supertrees` facade's, which re-exports these):
///
/// ```no_run
/// # extern crate supertrees_core as supertrees;
/// use std::time::{Duration, Instant};
/// use supertrees::tree::Root;
/// use supertrees::{Backend, BoxFuture, Spawner, Timer, Tree};
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
/// #[derive(Clone)]
/// struct ThreadTimer;
/// impl Timer for ThreadTimer {
///     fn now(&self) -> Instant {
///         Instant::now()
///     }
///     fn sleep(&self, duration: Duration) -> BoxFuture {
///         Box::pin(async move { std::thread::sleep(duration) })
///     }
/// }
///
/// enum MyBackend {}
/// impl Backend for MyBackend {
///     type Spawner = Blocking;
///     type Timer = ThreadTimer;
///     fn spawner() -> Blocking {
///         Blocking
///     }
///     fn timer() -> ThreadTimer {
///         ThreadTimer
///     }
/// }
///
/// /// The root tree that `start()`s on `MyBackend`.
/// type MyTree = Tree<Root<MyBackend>>;
///
/// MyTree::new().start()?;
/// # Ok::<(), supertrees::Error>(())
/// ```
pub trait Backend: 'static {
    /// The executor of this backend.
    type Spawner: Spawner;
    /// The clock of this backend.
    type Timer: Timer;

    /// The spawner `start()` runs worker hosts on.
    fn spawner() -> Self::Spawner;

    /// The timer `start()` gives every supervisor.
    fn timer() -> Self::Timer;
}
