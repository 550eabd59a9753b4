//! The seams between the engine and an async runtime: [`Spawner`] and
//! [`Timer`].
//!
//! The engine never names a runtime. Each worker host (a forked process that
//! runs one supervisor's workers) calls [`Spawner::block_on`] once, right
//! after fork, so the runtime is built in the process that uses it and never
//! crosses a `fork`. Backends for Tokio and smol live in their own crates;
//! anything else that can drive futures plugs in the same way.

use std::future::Future;
use std::pin::Pin;
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
/// use std::cell::RefCell;
/// use supertrees_core::{BoxFuture, Spawner};
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
    /// [`Supertree::start_with`](crate::Supertree::start_with) then returns
    /// [`Error::InsideRuntime`](crate::Error::InsideRuntime).
    ///
    /// The default says `false`; backends that can tell override it.
    fn is_inside_runtime(&self) -> bool {
        false
    }

    /// STUB(reactor)
    fn register(
        &self,
        fd: std::os::fd::OwnedFd,
    ) -> std::io::Result<Box<dyn IoSource>> {
        drop(fd);
        Err(std::io::ErrorKind::Unsupported.into())
    }
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
/// use std::time::{Duration, Instant};
/// use supertrees_core::{BoxFuture, Timer};
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
    fn sleep(&self, duration: Duration) -> BoxFuture;
}

/// A [`Spawner`] and a [`Timer`] known by type, so that a tree can be
/// started without naming them: `start()` exists on every
/// [`Tree<Root<B>>`](crate::Tree) whose `B` is a `Backend`.
///
/// Backend crates implement it on a marker type (`supertrees_tokio::Tokio`,
/// `supertrees_smol::Smol`); the `supertrees` facade's `Supertree` is the
/// root tree of its default backend, which is how its `start()` works.
/// [`Supertree`](crate::Supertree) of this crate names no backend
/// ([`Manual`](crate::tree::Manual)) and is started with
/// [`start_with`](crate::Tree::start_with).
///
/// # Examples
///
/// A backend of your own, here on `futures`' executor and a thread-sleeping
/// timer:
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use supertrees_core::tree::Root;
/// use supertrees_core::{Backend, BoxFuture, Spawner, Timer, Tree};
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
/// # Ok::<(), supertrees_core::Error>(())
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

// STUB(reactor): replaced by the reactor branch.
/// Which readiness an I/O operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Readable.
    Readable,
    /// Writable.
    Writable,
}

/// A file descriptor registered with a runtime's reactor.
pub trait IoSource: Send + Sync {
    /// Runs `op` until it does not return `WouldBlock`.
    fn poll_io(
        &self,
        cx: &mut std::task::Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut(std::os::fd::BorrowedFd<'_>) -> std::io::Result<()>,
    ) -> std::task::Poll<std::io::Result<()>>;
}
