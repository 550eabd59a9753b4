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
}
