//! What users implement: [`Worker`] and [`Restartable`].

use std::future::Future;
use std::pin::Pin;

use crate::{BackoffPolicy, RestartPolicy};

/// Policies of something that can be restarted: a worker, or a supervisor as
/// seen by its parent.
///
/// Both methods have defaults ([`RestartPolicy::Always`] and
/// [`BackoffPolicy::default`]), so `impl Restartable for MyWorker {}` is
/// enough.
///
/// # Examples
///
/// ```
/// use supertrees_core::{BackoffPolicy, RestartPolicy, Restartable};
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
/// # Examples
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use supertrees_core::{Restartable, Worker};
///
/// struct Greeter {
///     name: String,
/// }
///
/// impl Worker for Greeter {
///     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
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
    /// Builds the future to run for this (re)start of the worker.
    fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

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
/// use std::future::Future;
/// use std::pin::Pin;
/// use supertrees_core::{Readiness, Restartable, Worker};
///
/// struct Server;
///
/// impl Worker for Server {
///     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
///         Box::pin(async {
///             // Bind the listener first, then tell the supervisor.
///             supertrees_core::ready();
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
