//! The tree model: [`Supertree`] (the root) and [`Supervisor`] (any other
//! node), built with chained calls before the tree starts.

use std::fmt;
use std::path::PathBuf;

use crate::machine::{ChildPolicy, Machine};
use crate::{
    BackoffPolicy, Event, Intensity, RestartPolicy, Restartable, Shutdown, Strategy, TreeStatus,
    Worker,
};

/// One child of a supervisor, in the order it was added.
pub(crate) enum Child {
    Worker(Box<dyn Worker>),
    Supervisor(Supervisor),
}

impl Child {
    /// The policies its supervisor applies to this child, which it stops
    /// as `shutdown` says.
    pub(crate) fn policy(&self, shutdown: Shutdown) -> ChildPolicy {
        match self {
            Child::Worker(w) => ChildPolicy {
                restart: w.restart_policy(),
                backoff: w.backoff_policy(),
                shutdown,
                is_supervisor: false,
            },
            Child::Supervisor(s) => ChildPolicy {
                restart: s.restart_policy,
                backoff: s.backoff_policy,
                shutdown,
                is_supervisor: true,
            },
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Child::Worker(w) => f
                .debug_struct("Worker")
                .field("restart_policy", &w.restart_policy())
                .field("backoff_policy", &w.backoff_policy())
                .finish(),
            Child::Supervisor(s) => s.fmt(f),
        }
    }
}

/// A supervisor below the root: a node of the tree with its own children and
/// the policies it applies to them. In the process engine, every
/// `Supervisor` is its own forked process.
///
/// You get one in the closure of [`Supertree::add_supervisor`] or
/// [`Supervisor::add_supervisor`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supertrees_core::{Intensity, RestartPolicy, Strategy, Supertree};
/// # use supertrees_core::{Restartable, Worker};
/// # struct W;
/// # impl Worker for W { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
/// # impl Restartable for W {}
///
/// let tree = Supertree::new().add_supervisor(|s| {
///     s.with_strategy(Strategy::OneForAll)
///         .with_intensity(Intensity::new(5, Duration::from_secs(10)))
///         // How the parent treats this supervisor when it fails:
///         .with_restart_policy(RestartPolicy::OnFailure)
///         .add_worker(W)
///         .add_worker(W)
/// });
/// ```
pub struct Supervisor {
    pub(crate) children: Vec<Child>,
    pub(crate) restart_policy: RestartPolicy,
    pub(crate) backoff_policy: BackoffPolicy,
    pub(crate) strategy: Strategy,
    pub(crate) intensity: Intensity,
    pub(crate) shutdown: Shutdown,
}

impl Supervisor {
    fn new() -> Self {
        Self {
            children: Vec::new(),
            restart_policy: RestartPolicy::default(),
            backoff_policy: BackoffPolicy::default(),
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            shutdown: Shutdown::default(),
        }
    }

    /// Adds a worker as the next child.
    pub fn add_worker(mut self, worker: impl Worker) -> Self {
        self.children.push(Child::Worker(Box::new(worker)));
        self
    }

    /// Adds a child supervisor as the next child, built by `f`.
    pub fn add_supervisor<F>(mut self, f: F) -> Self
    where
        F: FnOnce(Supervisor) -> Supervisor,
    {
        self.children.push(Child::Supervisor(f(Supervisor::new())));
        self
    }

    /// When the parent restarts this supervisor after it *fails* (killed by a
    /// signal, or its restart intensity exceeded). A supervisor that finishes
    /// its work is never restarted.
    pub fn with_restart_policy(mut self, restart_policy: RestartPolicy) -> Self {
        self.restart_policy = restart_policy;
        self
    }

    /// How long the parent waits before restarting this supervisor.
    pub fn with_backoff_policy(mut self, backoff_policy: BackoffPolicy) -> Self {
        self.backoff_policy = backoff_policy;
        self
    }

    /// Which siblings restart with a failed child of this supervisor.
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How many restarts of its children this supervisor tolerates.
    pub fn with_intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// How this supervisor stops its child processes.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The state machine that supervises this supervisor's children; both
    /// the simulation and the process engine drive one per supervisor.
    pub(crate) fn machine(&self, path: String) -> Machine {
        let policies = self.children.iter().map(|c| c.policy(self.shutdown));
        Machine::new(path, policies, self.strategy, self.intensity)
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("shutdown", &self.shutdown)
            .field("restart_policy", &self.restart_policy)
            .field("backoff_policy", &self.backoff_policy)
            .field("children", &self.children)
            .finish()
    }
}

impl Restartable for Supervisor {
    fn restart_policy(&self) -> RestartPolicy {
        self.restart_policy
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        self.backoff_policy
    }
}

/// A supervision tree: the root supervisor and everything below it.
///
/// Build it with chained calls, then run it with
/// [`start_with`](Supertree::start_with) (real processes) or
/// [`testing::run_simulated`](crate::testing::run_simulated) (one thread,
/// virtual time). The `supertrees` facade adds `start()` on its default
/// backend.
///
/// # Examples
///
/// ```
/// use supertrees_core::{RestartPolicy, Restartable, Supertree, Worker};
///
/// struct W(i32);
/// impl Worker for W {
///     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
///         let n = self.0;
///         Box::pin(async move { println!("worker {n}") })
///     }
/// }
/// impl Restartable for W {
///     fn restart_policy(&self) -> RestartPolicy {
///         RestartPolicy::Never
///     }
/// }
///
/// let tree = Supertree::new()
///     .add_worker(W(1))
///     .add_supervisor(|s| s.add_worker(W(2)).add_supervisor(|s| s.add_worker(W(3))));
/// println!("{tree:#?}");
/// ```
pub struct Supertree {
    pub(crate) root: Supervisor,
    pub(crate) observers: Observers,
}

/// The callback of [`Supertree::on_event`].
type OnEvent = Box<dyn FnMut(&Event) + Send>;
/// The callback of [`Supertree::on_ready`].
type OnReady = Box<dyn FnOnce(&TreeStatus) + Send>;

/// What the root process does with the tree's events, besides running it.
#[derive(Default)]
pub(crate) struct Observers {
    pub(crate) on_event: Option<OnEvent>,
    pub(crate) on_ready: Option<OnReady>,
    pub(crate) status_socket: Option<PathBuf>,
}

impl Supertree {
    /// An empty tree: a root supervisor with no children.
    pub fn new() -> Self {
        Self {
            root: Supervisor::new(),
            observers: Observers::default(),
        }
    }

    /// Calls `f` in the root process for every lifecycle [`Event`] anywhere
    /// in the tree: each start, readiness, exit (with its restart decision)
    /// and shutdown, with the path it concerns (`root/1/0`).
    ///
    /// Events travel to the root over one pipe that no supervisor ever waits
    /// on: when the root falls behind, events are dropped and counted
    /// ([`EventKind::Dropped`](crate::EventKind::Dropped)) rather than
    /// slowing the tree down. `f` runs on the root's own loop, so it should
    /// return quickly; if it panics, the panic is logged and `f` is not
    /// called again (the tree goes on). Not called by the simulation.
    ///
    /// # Examples
    ///
    /// ```
    /// use supertrees_core::Supertree;
    ///
    /// let tree = Supertree::new().on_event(|event| eprintln!("{event}"));
    /// ```
    pub fn on_event(mut self, f: impl FnMut(&Event) + Send + 'static) -> Self {
        self.observers.on_event = Some(Box::new(f));
        self
    }

    /// Calls `f` in the root process once the whole tree is up: every
    /// supervisor's children are ready (see [`ready()`](crate::ready())),
    /// with the tree's status at that moment. When `NOTIFY_SOCKET` is set,
    /// the root also sends systemd `READY=1` then. Not called by the
    /// simulation.
    ///
    /// # Examples
    ///
    /// ```
    /// use supertrees_core::Supertree;
    ///
    /// let tree = Supertree::new().on_ready(|status| println!("up:\n{status}"));
    /// ```
    pub fn on_ready(mut self, f: impl FnOnce(&TreeStatus) + Send + 'static) -> Self {
        self.observers.on_ready = Some(Box::new(f));
        self
    }

    /// Serves the live [`TreeStatus`] on a Unix socket at `path` while the
    /// tree runs; [`query_status`](crate::query_status) (or the `status`
    /// example) prints it from another terminal.
    ///
    /// The socket is created with mode 0600 in a directory only its owner can
    /// enter (created with mode 0700 if missing; an existing directory that
    /// others can enter is refused), and peers of another uid are refused.
    /// One request per connection: the line `status`. A client that sends
    /// anything else gets an error line; one that sends nothing is dropped
    /// after 2 s. The root never waits on a client. The socket file is
    /// removed when the tree ends. A socket that can not be created makes
    /// `start` return [`Error::Os`](crate::Error::Os) before anything forks.
    ///
    /// # Examples
    ///
    /// ```
    /// use supertrees_core::Supertree;
    ///
    /// let dir = std::env::temp_dir().join("my-service");
    /// let tree = Supertree::new().status_socket(dir.join("status.sock"));
    /// ```
    pub fn status_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.observers.status_socket = Some(path.into());
        self
    }

    /// Adds a worker as the root's next child.
    pub fn add_worker(mut self, worker: impl Worker) -> Self {
        self.root = self.root.add_worker(worker);
        self
    }

    /// Adds a child supervisor as the root's next child, built by `f`.
    pub fn add_supervisor<F>(mut self, f: F) -> Self
    where
        F: FnOnce(Supervisor) -> Supervisor,
    {
        self.root = self.root.add_supervisor(f);
        self
    }

    /// Kept for supertrees 0.1 code: the root has no parent to restart it, so
    /// its own restart policy is never applied.
    pub fn with_restart_policy(mut self, restart_policy: RestartPolicy) -> Self {
        self.root = self.root.with_restart_policy(restart_policy);
        self
    }

    /// Kept for supertrees 0.1 code: the root has no parent to restart it, so
    /// its own backoff policy is never applied.
    pub fn with_backoff_policy(mut self, backoff_policy: BackoffPolicy) -> Self {
        self.root = self.root.with_backoff_policy(backoff_policy);
        self
    }

    /// Which siblings restart with a failed child of the root.
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.root = self.root.with_strategy(strategy);
        self
    }

    /// How many restarts of its children the root tolerates before the whole
    /// tree stops with [`Error::IntensityExceeded`](crate::Error::IntensityExceeded).
    pub fn with_intensity(mut self, intensity: Intensity) -> Self {
        self.root = self.root.with_intensity(intensity);
        self
    }

    /// How the root stops its child processes.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.root = self.root.with_shutdown(shutdown);
        self
    }
}

impl Default for Supertree {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Supertree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supertree")
            .field("root", &self.root)
            .field("on_event", &self.observers.on_event.is_some())
            .field("on_ready", &self.observers.on_ready.is_some())
            .field("status_socket", &self.observers.status_socket)
            .finish()
    }
}
