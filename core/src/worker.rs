//! What users implement: [`Worker`] and [`Restartable`].

use std::time::Duration;

use crate::{BackoffPolicy, BoxFuture, RestartPolicy, Shutdown};

/// Policies of something that can be restarted: a worker, or a supervisor as
/// seen by its parent.
///
/// Every method has a default ([`RestartPolicy::Always`],
/// [`BackoffPolicy::default`], a 5 s [`Shutdown::Timeout`], no start
/// timeout), so `impl Restartable for MyWorker {}` is enough.
/// [`shutdown`](Restartable::shutdown) and
/// [`start_timeout`](Restartable::start_timeout) apply to workers only: a
/// child supervisor is built with `Tree`'s own methods.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::{BackoffPolicy, RestartPolicy, Restartable};
///
/// struct Flaky;
/// impl Restartable for Flaky {
///     fn restart_policy(&self) -> RestartPolicy {
///         RestartPolicy::OnFailure
///     }
///     fn backoff_policy(&self) -> BackoffPolicy {
///         BackoffPolicy::immediate()
///     }
/// }
/// assert_eq!(Flaky.restart_policy(), RestartPolicy::OnFailure);
/// ```
pub trait Restartable {
    /// When this child is restarted after it exits.
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::default()
    }

    /// How long to wait before each restart.
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::default()
    }

    /// How a worker is stopped (default: [`Shutdown::Timeout`] of 5 s).
    ///
    /// A worker whose run called [`stopping()`](crate::stopping()) is told
    /// to stop and has this long to return by itself (drain, flush); then
    /// its future is dropped. [`Shutdown::Kill`] drops it at once,
    /// [`Shutdown::Infinity`] waits for it as long as it takes. A worker
    /// that never called `stopping()` is dropped as soon as it is asked to
    /// stop. Either way its exit is [`ChildExit::Stopped`](crate::ChildExit::Stopped).
    ///
    /// A future is dropped between two of its polls: a worker that blocks
    /// its thread can not be dropped, and stalls its worker host. The
    /// supervisor's safety net then kills the whole worker host (and so
    /// every worker in it) if a dropped worker has not ended within a
    /// further second.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::{Restartable, Shutdown};
    ///
    /// struct Server;
    /// impl Restartable for Server {
    ///     fn shutdown(&self) -> Shutdown {
    ///         Shutdown::Timeout(Duration::from_secs(10))
    ///     }
    /// }
    /// assert_eq!(Server.shutdown(), Shutdown::Timeout(Duration::from_secs(10)));
    /// ```
    fn shutdown(&self) -> Shutdown {
        Shutdown::default()
    }

    /// How long a [`Readiness::Notify`] worker may take to call
    /// [`ready()`](crate::ready()) after each start (default: `None`, no
    /// limit). A worker not ready by then is dropped and fails with
    /// [`ChildExit::StartTimeout`](crate::ChildExit::StartTimeout) (its
    /// `Exited` event says `not ready within ...`), and is restarted by its
    /// restart policy, counting towards its supervisor's intensity. Ignored
    /// for a [`Readiness::OnStart`] worker, which is ready at its first poll.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::Restartable;
    ///
    /// struct Server;
    /// impl Restartable for Server {
    ///     fn start_timeout(&self) -> Option<Duration> {
    ///         Some(Duration::from_secs(30))
    ///     }
    /// }
    /// assert_eq!(Server.start_timeout(), Some(Duration::from_secs(30)));
    /// ```
    fn start_timeout(&self) -> Option<Duration> {
        None
    }
}

/// An async task the tree runs and restarts.
///
/// [`init`](Worker::init) is called for the first start and again for every
/// restart, so each call must build a fresh future. The future returning is a
/// *normal* exit; a panic inside it is an *abnormal* exit (a failure).
///
/// Workers are created before the tree starts and copied into the worker-host
/// process by `fork`, so they hold configuration, not live resources: open
/// sockets, files and runtime handles inside the future.
///
/// `init` returns a [`BoxFuture`], which is
/// `Pin<Box<dyn Future<Output = ()> + Send + 'static>>`: an `init` that
/// spells that type out, as supertrees 0.1 code does, implements the same
/// method.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::{BoxFuture, Restartable, Worker};
///
/// struct Greeter {
///     name: String,
/// }
///
/// impl Worker for Greeter {
///     fn init(&self) -> BoxFuture {
///         let name = self.name.clone();
///         Box::pin(async move { println!("hello, {name}") })
///     }
/// }
/// impl Restartable for Greeter {}
///
/// let fut = Greeter { name: "tree".into() }.init();
/// futures::executor::block_on(fut);
/// ```
pub trait Worker: Send + Restartable + 'static {
    /// Builds the future to run for this (re)start of the worker: called
    /// for the first start and again for every restart, each time for a
    /// fresh future. What a run needs is cloned out of `&self` into the
    /// future (`async move`); anything it opens (sockets, files, runtime
    /// handles) is opened in the future, in the worker's own process.
    ///
    /// The future returning is a normal exit, a panic a failure; either way
    /// the worker's [`Restartable`] policies decide whether `init` is
    /// called again.
    ///
    /// # Examples
    ///
    /// A job restarted once runs twice, each run from a fresh call (here in
    /// the simulation, which runs the tree in this process):
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use supertrees::testing::{run_simulated, FakeTimer};
    /// use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    ///
    /// struct Job {
    ///     runs: Arc<AtomicU32>,
    /// }
    /// impl Worker for Job {
    ///     fn init(&self) -> BoxFuture {
    ///         let run = self.runs.fetch_add(1, Ordering::SeqCst);
    ///         Box::pin(async move { println!("run {run}") })
    ///     }
    /// }
    /// impl Restartable for Job {
    ///     fn restart_policy(&self) -> RestartPolicy {
    ///         RestartPolicy::Once
    ///     }
    /// }
    ///
    /// let runs = Arc::new(AtomicU32::new(0));
    /// let tree = Supertree::new().add_worker(Job { runs: runs.clone() });
    /// run_simulated(tree, FakeTimer::new())?;
    /// assert_eq!(runs.load(Ordering::SeqCst), 2);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    fn init(&self) -> BoxFuture;

    /// When this worker counts as ready: by default as soon as its future
    /// has started; with [`Readiness::Notify`], when the future calls
    /// [`ready()`](crate::ready()).
    fn readiness(&self) -> Readiness {
        Readiness::OnStart
    }
}

/// When a worker counts as ready, for its supervisor's start (see
/// [`ready()`](crate::ready())).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::future::Future;
/// use std::pin::Pin;
/// use supertrees::{Readiness, Restartable, Worker};
///
/// struct Server;
///
/// impl Worker for Server {
///     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
///         Box::pin(async {
///             // Bind the listener first, then tell the supervisor.
///             supertrees::ready();
///             // ... serve ...
///         })
///     }
///     fn readiness(&self) -> Readiness {
///         Readiness::Notify
///     }
/// }
/// impl Restartable for Server {}
/// assert_eq!(Server.readiness(), Readiness::Notify);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Readiness {
    /// Ready as soon as its future is first polled (the default, and what
    /// every supertrees 0.1 worker gets).
    #[default]
    OnStart,
    /// Ready once its future calls [`ready()`](crate::ready()).
    Notify,
}

/// A worker that does nothing and ends at once, for the crate's tests that
/// build trees.
#[cfg(test)]
pub(crate) struct Noop;

#[cfg(test)]
impl Worker for Noop {
    fn init(&self) -> crate::BoxFuture {
        Box::pin(async {})
    }
}

#[cfg(test)]
impl Restartable for Noop {}
