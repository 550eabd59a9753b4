//! A worker for tests of the worker lifecycle, shared by the simulation
//! tests and the process scenarios: its runs are made by a closure, and its
//! policies are fields.

use std::sync::Arc;
use std::time::Duration;

use supertrees::{
    BackoffPolicy, BoxFuture, Readiness, RestartPolicy, Restartable, Shutdown, Worker,
};

/// A worker whose runs are made by `make`, with lifecycle policies.
pub(crate) struct Life {
    pub(crate) make: Arc<dyn Fn() -> BoxFuture + Send + Sync>,
    pub(crate) restart: RestartPolicy,
    /// Default: 10 ms, fixed.
    pub(crate) backoff: BackoffPolicy,
    pub(crate) shutdown: Shutdown,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) readiness: Readiness,
}

impl Life {
    pub(crate) fn new(make: impl Fn() -> BoxFuture + Send + Sync + 'static) -> Self {
        Self {
            make: Arc::new(make),
            restart: RestartPolicy::Never,
            backoff: BackoffPolicy::new(
                Duration::from_millis(10),
                Duration::from_millis(10),
                Duration::from_secs(60),
                1.0,
            ),
            shutdown: Shutdown::default(),
            start_timeout: None,
            readiness: Readiness::OnStart,
        }
    }
}

impl Worker for Life {
    fn init(&self) -> BoxFuture {
        (self.make)()
    }
    fn readiness(&self) -> Readiness {
        self.readiness
    }
}

impl Restartable for Life {
    fn restart_policy(&self) -> RestartPolicy {
        self.restart
    }
    fn backoff_policy(&self) -> BackoffPolicy {
        self.backoff
    }
    fn shutdown(&self) -> Shutdown {
        self.shutdown
    }
    fn start_timeout(&self) -> Option<Duration> {
        self.start_timeout
    }
}
