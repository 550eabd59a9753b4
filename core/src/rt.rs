//! The seams between the engine and an async runtime: [`Spawner`] and
//! [`Timer`]; and between a root tree and the engine that runs it:
//! [`Runner`], and [`Backend`], a spawner and timer known by type.
//!
//! The engine never names a runtime. Each worker host (a forked process that
//! runs one supervisor's workers) calls [`Spawner::block_on`] once, right
//! after fork, so the runtime is built in the process that uses it and never
//! crosses a `fork`. Backends for Tokio and smol live in their own crates;
//! anything else that can drive futures plugs in the same way.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::tree::Root;
use crate::{Error, Tree};

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

/// What runs a root tree of kind [`Root<Self>`](crate::tree::Root) in real
/// processes: the hook behind [`start_with`](crate::Tree::start_with) (and
/// so [`start`](crate::Tree::start)), which this crate, portable and free
/// of any OS code, can not run itself.
///
/// This crate holds the tree and its state machine; the fork-per-supervisor
/// process engine is `supertrees-engine`, for Linux. A root kind implements
/// `Runner` in a crate that can reach the engine: the backend crates'
/// marker types (`supertrees_tokio::Tokio`, `supertrees_smol::Smol`) and
/// the `supertrees` facade's `tree::Manual` (a root of no backend). Each
/// `run` hands the tree to the engine on Linux, and returns
/// [`Error::Unsupported`] on any other system. [`testing::run_simulated`]
/// needs no runner: it runs any root, on every system.
///
/// Implement it for a backend of your own (see [`Backend`]) by calling
/// `supertrees::tree::run_processes(tree, spawner, timer)`, the facade's
/// door to the engine, which does exactly that.
///
/// [`testing::run_simulated`]: crate::testing::run_simulated
pub trait Runner: 'static {
    /// Runs `tree` in this process as the root supervisor, with its worker
    /// hosts on `spawner` and every supervisor's time on `timer`, and
    /// returns when the tree ends: what [`start_with`](crate::Tree::start_with)
    /// does (see there for the process model and the errors).
    ///
    /// # Errors
    ///
    /// As [`start_with`](crate::Tree::start_with), and
    /// [`Error::Unsupported`] where no process engine runs.
    fn run<S: Spawner, T: Timer>(tree: Tree<Root<Self>>, spawner: S, timer: T) -> Result<(), Error>
    where
        Self: Sized;
}

/// A [`Spawner`] and a [`Timer`] known by type, so that a tree can be
/// started without naming them: `start()` exists on every
/// [`Tree<Root<B>>`](crate::Tree) whose `B` is a `Backend`.
///
/// Backend crates implement it on a marker type (`supertrees_tokio::Tokio`,
/// `supertrees_smol::Smol`); `supertrees::Supertree` is the root tree of
/// the default backend, which is how its `start()` works. A root of no
/// backend (the facade's `tree::Manual`) is started with
/// [`start_with`](crate::Tree::start_with).
///
/// A backend is also a [`Runner`]: what runs the tree in processes.
///
/// # Examples
///
/// A backend of your own, here on `futures`' executor and a thread-sleeping
/// timer (the paths are the `supertrees` facade's, which re-exports these
/// and has the process engine; this example is compiled there, in the docs
/// of `supertrees::tree::run_processes`):
///
/// ```no_run
/// # mod supertrees {
/// #     pub use supertrees_core::*;
/// #     pub mod tree {
/// #         pub use supertrees_core::tree::*;
/// #         pub fn run_processes<B, S, T>(_: supertrees_core::Tree<Root<B>>, _: S, _: T) -> Result<(), supertrees_core::Error> { Ok(()) }
/// #     }
/// # }
/// use std::time::{Duration, Instant};
/// use supertrees::tree::Root;
/// use supertrees::{Backend, BoxFuture, Error, Runner, Spawner, Timer, Tree};
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
/// impl Runner for MyBackend {
///     fn run<S: Spawner, T: Timer>(tree: Tree<Root<Self>>, spawner: S, timer: T) -> Result<(), Error> {
///         supertrees::tree::run_processes(tree, spawner, timer)
///     }
/// }
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
pub trait Backend: Runner {
    /// The executor of this backend.
    type Spawner: Spawner;
    /// The clock of this backend.
    type Timer: Timer;

    /// The spawner `start()` runs worker hosts on.
    fn spawner() -> Self::Spawner;

    /// The timer `start()` gives every supervisor.
    fn timer() -> Self::Timer;
}
