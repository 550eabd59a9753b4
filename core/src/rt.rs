//! The seams between the engine and an async runtime: [`Spawner`] and
//! [`Timer`] (the seam between a root tree and the engine that runs it,
//! [`Runner`](crate::Runner) and [`Backend`](crate::Backend), is the
//! tree's).
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
