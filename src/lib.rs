//! # supertrees
//!
//! Erlang/OTP-style supervision trees for async Rust, where every supervisor
//! is its own forked process and workers are async tasks. A worker that
//! panics, a process killed with SIGKILL, a machine under load: the tree
//! heals, leaks nothing, and says what happened (through [`tracing`](https://docs.rs/tracing) events).
//!
//! ```no_run
//! use supertrees::{RestartPolicy, Restartable, Supertree, Worker};
//!
//! #[derive(Debug)]
//! struct W { num: i32 }
//! impl Worker for W {
//!     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
//!         let num = self.num;
//!         Box::pin(async move { println!("worker {num}"); })
//!     }
//! }
//! impl Restartable for W {
//!     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Once }
//! }
//!
//! fn main() -> Result<(), supertrees::Error> {
//!     Supertree::new()
//!         .add_worker(W { num: 1 })
//!         .add_supervisor(|s| s.add_worker(W { num: 2 }).add_supervisor(|s| s.add_worker(W { num: 3 })))
//!         .start()?;          // returns once every worker has finished for good
//!     println!("done");       // printed exactly once, by this process only
//!     Ok(())
//! }
//! ```
//!
//! ## Pieces
//!
//! * The tree: [`Supertree`] (the root, run in your process) and
//!   [`Supervisor`] (a forked process each), with [`Worker`]s as async tasks.
//! * Policies: [`RestartPolicy`], [`BackoffPolicy`], [`Strategy`],
//!   [`Intensity`], [`Shutdown`] — the semantics are spelled out in
//!   [`supertrees_core`].
//! * Executors: [`Supertree::start`] runs on the default backend (Tokio, or
//!   smol with `default-features = false, features = ["smol"]`);
//!   [`Supertree::start_with`] takes any [`Spawner`] and [`Timer`], including
//!   your own.
//! * [`testing`]: [`testing::run_simulated`] runs a tree in one thread on a
//!   [`testing::FakeTimer`], for exact, instant policy tests.
//!
//! ## Observability
//!
//! Every lifecycle event (child started with its pid, exited with its status
//! or signal, restarting after a delay, giving up, intensity exceeded,
//! shutdown) is a `tracing` event with structured fields (`supervisor`,
//! `child`, `pid`, `exit`, `delay`, ...). Install any subscriber before
//! `start()`, e.g. `tracing_subscriber::fmt().init()`; forked processes
//! inherit it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;

pub use supertrees_core::{
    query_status, ready, BackoffPolicy, BoxFuture, ChildExit, Error, Event, EventKind, Intensity,
    NodeKind, NodeState, NodeStatus, Readiness, RestartPolicy, Restartable, Shutdown, Spawner,
    Strategy, Supervisor, Timer, TreeStatus, Worker,
};

/// Deterministic testing: [`run_simulated`](testing::run_simulated) and
/// [`FakeTimer`](testing::FakeTimer). See [`supertrees_core::testing`].
pub mod testing {
    pub use supertrees_core::testing::{run_simulated, FakeTimer};
}

/// The Tokio backend (feature `tokio`, on by default).
#[cfg(feature = "tokio")]
pub mod tokio {
    pub use supertrees_tokio::{TokioSpawner, TokioTimer};
}

/// The smol backend (feature `smol`).
#[cfg(feature = "smol")]
pub mod smol {
    pub use supertrees_smol::{SmolSpawner, SmolTimer};
}

/// A supervision tree: the root supervisor, run in the calling process, and
/// everything below it.
///
/// Build it with chained calls, then [`start`](Supertree::start) it. Each
/// call adds a child in order; that order is the start order, and stops go in
/// reverse.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use supertrees::{BackoffPolicy, Intensity, Restartable, Strategy, Supertree, Worker};
///
/// struct Server;
/// impl Worker for Server {
///     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
///         Box::pin(async { /* accept connections... */ })
///     }
/// }
/// impl Restartable for Server {
///     fn backoff_policy(&self) -> BackoffPolicy {
///         BackoffPolicy::immediate()
///     }
/// }
///
/// let result = Supertree::new()
///     .with_strategy(Strategy::OneForAll)
///     .with_intensity(Intensity::new(10, Duration::from_secs(60)))
///     .add_worker(Server)
///     .add_supervisor(|s| s.add_worker(Server))
///     .start();
/// if let Err(err) = result {
///     eprintln!("tree failed: {err}");
/// }
/// ```
#[derive(Default)]
pub struct Supertree {
    inner: supertrees_core::Supertree,
}

impl Supertree {
    /// An empty tree: a root supervisor with no children.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a worker as the root's next child.
    pub fn add_worker(self, worker: impl Worker) -> Self {
        self.map(|t| t.add_worker(worker))
    }

    /// Adds a child supervisor, built by `f`, as the root's next child.
    pub fn add_supervisor<F>(self, f: F) -> Self
    where
        F: FnOnce(Supervisor) -> Supervisor,
    {
        self.map(|t| t.add_supervisor(f))
    }

    /// Kept for supertrees 0.1 code: the root has no parent, so its own
    /// restart policy is never applied.
    pub fn with_restart_policy(self, restart_policy: RestartPolicy) -> Self {
        self.map(|t| t.with_restart_policy(restart_policy))
    }

    /// Kept for supertrees 0.1 code: the root has no parent, so its own
    /// backoff policy is never applied.
    pub fn with_backoff_policy(self, backoff_policy: BackoffPolicy) -> Self {
        self.map(|t| t.with_backoff_policy(backoff_policy))
    }

    /// Which siblings restart with a failed child of the root
    /// (default [`Strategy::OneForOne`]).
    pub fn with_strategy(self, strategy: Strategy) -> Self {
        self.map(|t| t.with_strategy(strategy))
    }

    /// How many restarts the root tolerates before the tree stops with
    /// [`Error::IntensityExceeded`] (default unlimited).
    pub fn with_intensity(self, intensity: Intensity) -> Self {
        self.map(|t| t.with_intensity(intensity))
    }

    /// How the root stops its child processes (default SIGTERM, then SIGKILL
    /// after 5 s).
    pub fn with_shutdown(self, shutdown: Shutdown) -> Self {
        self.map(|t| t.with_shutdown(shutdown))
    }

    /// Calls `f` in the calling (root) process for every lifecycle event
    /// anywhere in the tree; see [`supertrees_core::Supertree::on_event`].
    pub fn on_event(self, f: impl FnMut(&Event) + Send + 'static) -> Self {
        self.map(|t| t.on_event(f))
    }

    /// Calls `f` once the whole tree is up (and sends systemd `READY=1`
    /// under `NOTIFY_SOCKET`); see [`supertrees_core::Supertree::on_ready`].
    pub fn on_ready(self, f: impl FnOnce(&TreeStatus) + Send + 'static) -> Self {
        self.map(|t| t.on_ready(f))
    }

    /// Serves the live tree status on an owner-only Unix socket at `path`;
    /// see [`supertrees_core::Supertree::status_socket`] and
    /// [`query_status`].
    pub fn status_socket(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.map(|t| t.status_socket(path))
    }

    fn map(self, f: impl FnOnce(supertrees_core::Supertree) -> supertrees_core::Supertree) -> Self {
        Self {
            inner: f(self.inner),
        }
    }

    /// Runs the tree on the default backend (Tokio with the default
    /// features, smol with only `smol`) and returns when it ends.
    ///
    /// On Tokio each worker host runs a current-thread runtime
    /// (`TokioSpawner::new()`); for a multi-thread runtime per host, as
    /// supertrees 0.1 built, use
    /// `start_with(TokioSpawner::multi_thread(), TokioTimer::new())`.
    ///
    /// Call it from a plain, single-threaded `fn main`: the calling process
    /// becomes the root supervisor and forks the rest of the tree. See
    /// [`start_with`](Supertree::start_with) for what it returns.
    ///
    /// # Errors
    ///
    /// [`Error::InsideRuntime`] when called from inside a running runtime
    /// (e.g. within `#[tokio::main]`), [`Error::IntensityExceeded`] when the
    /// root gives up, [`Error::Os`] if signal handling can not be set up.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn main() -> Result<(), supertrees::Error> {
    ///     supertrees::Supertree::new().start()
    /// }
    /// ```
    #[cfg(any(feature = "tokio", feature = "smol"))]
    pub fn start(self) -> Result<(), Error> {
        #[cfg(feature = "tokio")]
        return self.start_with(tokio::TokioSpawner::new(), tokio::TokioTimer::new());
        #[cfg(not(feature = "tokio"))]
        return self.start_with(smol::SmolSpawner::new(), smol::SmolTimer::new());
    }

    /// Runs the tree on `spawner`'s executor, with `timer` as the clock of
    /// every supervisor, and returns when the tree ends: `Ok(())` once no
    /// child runs or will restart, or after SIGTERM/SIGINT stopped the tree in
    /// order.
    ///
    /// # Errors
    ///
    /// As [`start`](Supertree::start).
    ///
    /// # Examples
    ///
    /// Running on smol while Tokio stays the default:
    ///
    /// ```no_run
    /// # #[cfg(feature = "smol")] {
    /// use supertrees::smol::{SmolSpawner, SmolTimer};
    /// supertrees::Supertree::new().start_with(SmolSpawner::new(), SmolTimer::new())?;
    /// # }
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn start_with(self, spawner: impl Spawner, timer: impl Timer) -> Result<(), Error> {
        self.inner.start_with(spawner, timer)
    }
}

impl From<Supertree> for supertrees_core::Supertree {
    fn from(tree: Supertree) -> Self {
        tree.inner
    }
}

impl fmt::Debug for Supertree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
