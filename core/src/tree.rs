//! The tree model: [`Tree`], the one builder behind [`Supertree`] (the root)
//! and [`Supervisor`] (any other supervisor), built with chained calls before
//! the tree starts.
//!
//! A `Tree<K>` is a supervisor with its children and the policies it applies
//! to them; the *kind* `K` holds what only one sort of supervisor has:
//!
//! * [`Nested`], a supervisor below the root: its own restart and backoff
//!   policy, applied by its parent ([`Supervisor`] is `Tree<Nested>`);
//! * [`Root<B>`], the root: the callbacks and status socket of the tree, and
//!   the backend `B` that [`start`](Tree::start) runs on
//!   ([`Supertree`] is `Tree<Root<NoEngine>>` here, which runs in the
//!   simulation only, and the `supertrees` facade's `Supertree` is the root
//!   of its default backend).
//!
//! Every builder method is defined once: those all supervisors share on
//! `Tree<K>`, the others on the kind they belong to.
//!
//! # Examples
//!
//! A helper that configures the root and any supervisor alike:
//!
//! ```
//! use std::time::Duration;
//! use supertrees_core::{Intensity, Strategy, Supertree, Tree};
//!
//! fn strict<K>(tree: Tree<K>) -> Tree<K> {
//!     tree.with_strategy(Strategy::OneForAll)
//!         .with_intensity(Intensity::new(3, Duration::from_secs(5)))
//! }
//!
//! let tree = strict(Supertree::new()).add_supervisor(strict);
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Undecoded};
use crate::control;
use crate::machine::{ChildPolicy, Machine};
use crate::observe::Observers;
use crate::{
    BackoffPolicy, Error, Event, Intensity, Limits, Listen, RestartPolicy, Restartable, Shutdown,
    Spawner, Strategy, Timer, TreeStatus, Worker,
};

mod run;

pub use run::{Backend, Runner};

/// One child of a supervisor, in the order it was added.
///
/// Both variants are boxed: a tree's children lists stay small, and
/// so do the holes their growth leaves in the heap that every forked process
/// of the tree inherits (and copies where it allocates into them).
#[doc(hidden)]
pub enum Child {
    Worker(Box<dyn Worker>),
    Supervisor(Box<Supervisor>),
}

impl Child {
    /// The policies its supervisor applies to this child: a worker's come
    /// from its [`Restartable`] methods (its `shutdown` and, for a
    /// [`Readiness::Notify`](crate::Readiness::Notify) worker, its
    /// `start_timeout`).
    ///
    /// A child supervisor is stopped with [`Shutdown::Infinity`], as OTP
    /// stops supervisor children: its stop is bounded by its own children's
    /// timeouts (its own [`with_shutdown`](Tree::with_shutdown)), and a
    /// timeout of the parent's running at the same time would kill it in
    /// the middle of its stop and orphan the processes it was stopping.
    #[doc(hidden)]
    pub fn policy(&self) -> ChildPolicy {
        match self {
            Child::Worker(w) => worker_policy(w.as_ref()),
            Child::Supervisor(s) => ChildPolicy {
                restart: s.kind.restart_policy,
                backoff: s.kind.backoff_policy,
                shutdown: Shutdown::Infinity,
                start_timeout: None,
                is_supervisor: true,
                watchdog: s.watchdog,
            },
        }
    }
}

/// The child of a supervisor of `count` children with `names` that a
/// path's `segment` names: a named child by its name, another by its
/// position.
fn child_by(
    count: usize,
    names: &[Option<String>],
    segment: control::Segment<'_>,
) -> Option<usize> {
    match segment {
        control::Segment::Position(n) => {
            (n < count && matches!(names.get(n), Some(None) | None)).then_some(n)
        }
        control::Segment::Named(name) => names
            .iter()
            .position(|given| given.as_deref() == Some(name)),
        control::Segment::Started { .. } => None,
    }
}

/// The policies a supervisor applies to worker `w`: those of its
/// [`Restartable`] methods (its `start_timeout` only if it is a
/// [`Readiness::Notify`](crate::Readiness::Notify) worker).
#[doc(hidden)]
pub fn worker_policy(w: &dyn Worker) -> ChildPolicy {
    ChildPolicy {
        restart: w.restart_policy(),
        backoff: w.backoff_policy(),
        shutdown: w.shutdown(),
        start_timeout: w
            .start_timeout()
            .filter(|_| w.readiness() == crate::Readiness::Notify),
        is_supervisor: false,
        watchdog: None,
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

/// A supervisor being built, with everything below it: its children, in
/// the order they were added, and the policies it applies to them.
///
/// You do not name `Tree` often: `Supertree` (the root, a
/// `Tree<`[`Root`]`<_>>`) and [`Supervisor`] (any other supervisor) are its
/// two kinds, and the methods on this page
/// are theirs. Those in the first block work on both; the others on the
/// kind they name ([`Nested`] for a supervisor, [`Root`] for the root).
/// Each call returns the changed tree, so calls chain.
///
/// In the process engine every supervisor is its own process: the root is
/// the process that calls `start`, every other supervisor is forked.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::{Intensity, RestartPolicy, Strategy, Supertree};
/// # use supertrees::{Restartable, Worker};
/// # struct W;
/// # impl Worker for W { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
/// # impl Restartable for W {}
///
/// let tree = Supertree::new()
///     .with_intensity(Intensity::new(10, Duration::from_secs(60)))
///     .add_worker(W)
///     .add_supervisor(|s| {
///         s.with_strategy(Strategy::OneForAll)
///             // How the root treats this supervisor when it fails:
///             .with_restart_policy(RestartPolicy::OnFailure)
///             .add_worker(W)
///             .add_worker(W)
///     });
/// ```
#[must_use = "a tree does nothing until it is started, and each builder method returns the changed tree"]
pub struct Tree<K> {
    #[doc(hidden)]
    pub children: Vec<Child>,
    /// The name of each child: its path segment; `None` (or no entry: the
    /// vector stays empty until a child is named, and shorter than
    /// `children` after the last named one) for a child known by its
    /// position. Nothing is allocated for a tree without names.
    #[doc(hidden)]
    pub names: Vec<Option<String>>,
    #[doc(hidden)]
    pub strategy: Strategy,
    #[doc(hidden)]
    pub intensity: Intensity,
    #[doc(hidden)]
    pub shutdown: Shutdown,
    /// The mailboxes it declared ([`with_mailbox`](Tree::with_mailbox)).
    #[doc(hidden)]
    pub mailboxes: Vec<String>,
    /// Its templates of children started at run time
    /// ([`add_dynamic`](Tree::add_dynamic)).
    #[doc(hidden)]
    pub templates: Vec<Template>,
    /// The most children started at run time it runs at once.
    #[doc(hidden)]
    pub max_children: Option<u32>,
    /// What its subtree may use ([`with_limits`](Tree::with_limits)).
    #[doc(hidden)]
    pub limits: Limits,
    /// How often its processes must show life
    /// ([`with_watchdog`](Tree::with_watchdog)); `None`: its parent's.
    #[doc(hidden)]
    pub watchdog: Option<Duration>,
    /// The user and group its subtree runs as
    /// ([`with_user`](Tree::with_user)).
    #[doc(hidden)]
    pub user: Option<(u32, u32)>,
    /// The listening sockets it declared
    /// ([`with_listener`](Tree::with_listener)).
    #[doc(hidden)]
    pub listeners: Vec<(String, Listen)>,
    #[doc(hidden)]
    pub kind: K,
}

/// Builds a worker from an encoded argument.
#[doc(hidden)]
pub type Build = Arc<dyn Fn(&[u8]) -> Result<Box<dyn Worker>, Undecoded> + Send + Sync>;

/// A template of children started at run time.
#[derive(Clone)]
#[doc(hidden)]
pub struct Template {
    #[doc(hidden)]
    pub name: String,
    /// The type name of its argument, checked by `start_child`.
    #[doc(hidden)]
    pub argument: &'static str,
    #[doc(hidden)]
    pub build: Build,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("argument", &self.argument)
            .finish()
    }
}

/// A supervisor below the root: a node of the tree with its own children and
/// the policies it applies to them, and its own restart policy, applied by
/// its parent. In the process engine, every `Supervisor` is its own forked
/// process.
///
/// You get one in the closure of [`add_supervisor`](Tree::add_supervisor),
/// on the root or on another supervisor. Its methods are those of
/// [`Tree`].
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::{BackoffPolicy, Intensity, RestartPolicy, Strategy, Supertree, Supervisor};
/// # use supertrees::{Restartable, Worker};
/// # struct W;
/// # impl Worker for W { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
/// # impl Restartable for W {}
///
/// fn pool(s: Supervisor) -> Supervisor {
///     s.with_strategy(Strategy::OneForAll)
///         .with_intensity(Intensity::new(5, Duration::from_secs(10)))
///         // How the parent treats this supervisor when it fails:
///         .with_restart_policy(RestartPolicy::OnFailure)
///         .with_backoff_policy(BackoffPolicy::immediate())
///         .add_worker(W)
///         .add_worker(W)
/// }
///
/// let tree = Supertree::new().add_supervisor(pool).add_supervisor(pool);
/// ```
pub type Supervisor = Tree<Nested>;

/// A supervision tree: the root supervisor and everything below it.
///
/// Build it with chained calls (the methods of [`Tree`]), then run it with
/// [`testing::run_simulated`](crate::testing::run_simulated) (one thread,
/// virtual time). This crate's `Supertree` reaches no engine
/// ([`NoEngine`]); the `supertrees` facade's `Supertree` is the same tree on
/// its default backend, which adds [`start_with`](Tree::start_with) and
/// [`start()`](Tree::start) (real processes).
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
pub type Supertree = Tree<Root<NoEngine>>;

/// The kind of a [`Supervisor`]: what a supervisor below the root has and
/// the root has not, its own restart and backoff policy, applied by its
/// parent when it fails. Set them with
/// [`with_restart_policy`](Tree::with_restart_policy) and
/// [`with_backoff_policy`](Tree::with_backoff_policy).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::tree::Nested;
/// use supertrees::{Supervisor, Tree};
///
/// // The two are one type.
/// fn same(s: Supervisor) -> Tree<Nested> {
///     s
/// }
/// ```
#[derive(Debug, Default)]
pub struct Nested {
    restart_policy: RestartPolicy,
    backoff_policy: BackoffPolicy,
    /// Its name, from [`with_name`](Tree::with_name), until its parent
    /// takes it as its child's name.
    name: Option<String>,
}

/// The kind of the root of a tree: what only the root has, the observers of
/// the whole tree ([`on_event`](Tree::on_event),
/// [`on_ready`](Tree::on_ready), [`status_socket`](Tree::status_socket)),
/// and the backend `B` that [`start`](Tree::start) runs the tree on: any
/// [`Backend`]; any [`Runner`] for [`start_with`](Tree::start_with) alone
/// (the facade's `tree::Manual`); or [`NoEngine`] for none.
///
/// # Examples
///
/// A helper that works on the root of any backend:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::tree::Root;
/// use supertrees::{Supertree, Tree};
///
/// fn logged<B>(root: Tree<Root<B>>) -> Tree<Root<B>> {
///     root.on_event(|event| eprintln!("{event}"))
/// }
///
/// let tree = logged(Supertree::new());
/// ```
pub struct Root<B> {
    observers: Observers,
    backend: PhantomData<fn() -> B>,
}

/// The backend of this crate's [`Supertree`]: none, and no engine either.
/// A `Tree<Root<NoEngine>>` has neither `start()` nor `start_with`, as this
/// crate holds no process engine; it runs in
/// [`run_simulated`](crate::testing::run_simulated). The `supertrees`
/// facade's roots (`supertrees::Supertree`, and `supertrees::tree::Manual`
/// for a root of no backend) reach the engine.
///
/// A type only: it has no values.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::testing::{run_simulated, FakeTimer};
/// use supertrees::tree::{NoEngine, Root};
/// use supertrees::Tree;
///
/// let tree = Tree::<Root<NoEngine>>::new();
/// run_simulated(tree, FakeTimer::new())?;
/// # Ok::<(), supertrees::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoEngine {}

/// A root tree taken apart for the process engine and the simulation: the
/// root as a plain supervisor (its kind's policies are never applied: it has
/// no parent), and what the root process does besides supervising.
#[doc(hidden)]
pub struct TreeParts {
    #[doc(hidden)]
    pub root: Supervisor,
    #[doc(hidden)]
    pub observers: Observers,
}

impl<B> From<Tree<Root<B>>> for TreeParts {
    fn from(tree: Tree<Root<B>>) -> Self {
        let Tree {
            children,
            names,
            strategy,
            intensity,
            shutdown,
            mailboxes,
            templates,
            max_children,
            limits,
            watchdog,
            user,
            listeners,
            kind,
        } = tree;
        let root = Tree {
            children,
            names,
            strategy,
            intensity,
            shutdown,
            mailboxes,
            templates,
            max_children,
            limits,
            watchdog,
            user,
            listeners,
            kind: Nested::default(),
        };
        let named = root.named_positions("root");
        Self {
            root,
            observers: Observers {
                named,
                ..kind.observers
            },
        }
    }
}

/// The builder methods of every supervisor, the root included.
impl<K> Tree<K> {
    fn with_kind(kind: K) -> Self {
        Self {
            children: Vec::new(),
            names: Vec::new(),
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            shutdown: Shutdown::default(),
            mailboxes: Vec::new(),
            templates: Vec::new(),
            max_children: None,
            limits: Limits::default(),
            watchdog: None,
            user: None,
            listeners: Vec::new(),
            kind,
        }
    }

    /// Adds a worker as this supervisor's next child.
    ///
    /// Children start in the order they were added and stop in reverse.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{Restartable, Supertree, Worker};
    ///
    /// struct Job;
    /// impl Worker for Job {
    ///     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    ///         Box::pin(async { println!("job ran") })
    ///     }
    /// }
    /// impl Restartable for Job {}
    ///
    /// let tree = Supertree::new().add_worker(Job).add_supervisor(|s| s.add_worker(Job));
    /// ```
    pub fn add_worker(mut self, worker: impl Worker) -> Self {
        self.children.push(Child::Worker(Box::new(worker)));
        self
    }

    /// Adds a worker named `name` as this supervisor's next child: its path
    /// is its supervisor's and its name (`root/api/web`) in events, the
    /// status and the commands of the status socket, instead of its
    /// position (`root/0/0`).
    ///
    /// A name is 1 to 64 ASCII letters, digits, `_` and `-`, not only
    /// digits (which read as a position) and not `host` (a supervisor's
    /// worker host), and unique among its siblings; `start()` (and
    /// [`run_simulated`](crate::testing::run_simulated)) fails with
    /// [`Error::InvalidName`] naming it otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::testing::{run_simulated, FakeTimer};
    /// use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    ///
    /// // Runs once.
    /// struct Job;
    /// impl Worker for Job {
    ///     fn init(&self) -> BoxFuture {
    ///         Box::pin(async {})
    ///     }
    /// }
    /// impl Restartable for Job {
    ///     fn restart_policy(&self) -> RestartPolicy {
    ///         RestartPolicy::Never
    ///     }
    /// }
    ///
    /// let tree = Supertree::new()
    ///     .add_supervisor(|s| s.with_name("api").add_named_worker("web", Job).add_worker(Job))
    ///     .add_named_worker("jobs", Job);
    /// // Paths: root/api, root/api/web, root/api/1, root/jobs.
    /// run_simulated(tree, FakeTimer::new())?;
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn add_named_worker(mut self, name: &str, worker: impl Worker) -> Self {
        self.name_next(Some(name.to_owned()));
        self.children.push(Child::Worker(Box::new(worker)));
        self
    }

    /// Adds a child supervisor, built by `f` from an empty one, as this
    /// supervisor's next child.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{RestartPolicy, Supertree};
    /// # use supertrees::{Restartable, Worker};
    /// # struct W;
    /// # impl Worker for W { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
    /// # impl Restartable for W {}
    ///
    /// let tree = Supertree::new().add_supervisor(|s| {
    ///     s.with_restart_policy(RestartPolicy::OnFailure)
    ///         .add_worker(W)
    ///         .add_supervisor(|s| s.add_worker(W))
    /// });
    /// ```
    pub fn add_supervisor<F>(mut self, f: F) -> Self
    where
        F: FnOnce(Supervisor) -> Supervisor,
    {
        let mut sup = f(Tree::with_kind(Nested::default()));
        self.name_next(sup.kind.name.take());
        self.children.push(Child::Supervisor(Box::new(sup)));
        self
    }

    /// Which siblings restart with a failed child of this supervisor
    /// (default [`Strategy::OneForOne`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{Strategy, Supertree};
    ///
    /// let tree = Supertree::new()
    ///     .with_strategy(Strategy::RestForOne)
    ///     .add_supervisor(|s| s.with_strategy(Strategy::OneForAll));
    /// ```
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How many restarts of its children this supervisor tolerates before
    /// it stops them all and gives up (default unlimited). Its parent then
    /// sees a failed child; at the root, the tree ends with
    /// [`Error::IntensityExceeded`].
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::{Intensity, Supertree};
    ///
    /// let tree = Supertree::new()
    ///     .with_intensity(Intensity::new(10, Duration::from_secs(60)))
    ///     .add_supervisor(|s| s.with_intensity(Intensity::new(3, Duration::from_secs(5))));
    /// ```
    pub fn with_intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// How long this supervisor's worker host has to exit once it is told
    /// to (default: 5 s), before the supervisor SIGKILLs it.
    ///
    /// Each worker's own stop time is its
    /// [`Restartable::shutdown`]; a
    /// supervisor tells its worker host to exit once every worker has
    /// ended, so this bounds only what is left: a host stalled by a worker
    /// that blocks its thread, or by the runtime's own shutdown.
    /// [`Shutdown::Infinity`] counts as the default 5 s here, and
    /// [`Shutdown::Kill`] SIGKILLs the host as soon as its workers are done.
    ///
    /// Child supervisors are not bound by it: a supervisor sends a child
    /// supervisor SIGTERM and waits for it as long as it takes
    /// ([`Shutdown::Infinity`], as OTP waits for supervisor children),
    /// because that child's stop is bounded by its own `with_shutdown`: it
    /// kills its own stuck workers when its timeout passes, then exits. So
    /// the stop of a whole tree takes at most the sum of the timeouts of the
    /// supervisors along its deepest chain, and no timeout of a parent ever
    /// kills a child supervisor in the middle of its own stop (which would
    /// orphan the processes it was stopping).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::{Shutdown, Supertree};
    ///
    /// let tree = Supertree::new()
    ///     .with_shutdown(Shutdown::Timeout(Duration::from_secs(30)))
    ///     .add_supervisor(|s| s.with_shutdown(Shutdown::Kill));
    /// ```
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Declares the mailbox `name`, owned by this supervisor: a worker of
    /// this supervisor serves it ([`inbox()`](crate::inbox())), and any
    /// worker of the tree sends to it ([`mailbox()`](crate::mailbox())).
    ///
    /// The mailbox is made before anything of the tree is forked and
    /// belongs to this supervisor, so its name, and the messages that wait
    /// in it, outlive every restart of the worker that serves it. Names of
    /// mailboxes and templates ([`add_dynamic`](Self::add_dynamic)) are
    /// unique in a tree: `start()` refuses a duplicate with
    /// [`Error::DuplicateName`]. See [`message`](crate::message) for how
    /// messages are delivered.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Supertree;
    /// # use supertrees::{Restartable, Worker};
    /// # struct KvServer;
    /// # impl Worker for KvServer { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
    /// # impl Restartable for KvServer {}
    ///
    /// let tree = Supertree::new().add_supervisor(|s| s.with_mailbox("kv").add_worker(KvServer));
    /// ```
    pub fn with_mailbox(mut self, name: &str) -> Self {
        self.mailboxes.push(name.to_owned());
        self
    }

    /// Declares the template `name` of children started at run time, as
    /// OTP's `DynamicSupervisor`: [`start_child(name, arg)`](crate::start_child())
    /// from any worker of the tree makes this supervisor build a worker
    /// with `template(arg)` and start it, and
    /// [`terminate_child(name, id)`](crate::terminate_child()) stops and
    /// removes it.
    ///
    /// A child started this way:
    ///
    /// * is built from exactly the argument of the `start_child` that
    ///   returned its id, once per start (and again only by its restart
    ///   policy), however many callers start children and however many
    ///   children end and free their places meanwhile;
    /// * has a [`ChildId`](crate::ChildId) that no other child of the
    ///   template gets in the tree's life, restarts of this supervisor
    ///   included, so `terminate_child` with the id of a child that is
    ///   gone is [`Error::UnknownChild`], never another child;
    /// * runs in this supervisor's worker host with the worker's own
    ///   [`Restartable`] policies, and is restarted *alone* whatever this
    ///   supervisor's [`Strategy`] (a restart of its static children does
    ///   not touch it); its restarts count towards this supervisor's
    ///   [`Intensity`];
    /// * is removed once it ends for good (by its restart policy) or is
    ///   terminated; it is stopped with the others when the supervisor
    ///   stops; a new worker host (after its host died) builds it again
    ///   from the template and its argument;
    /// * belongs to this supervisor process: when this supervisor ends (it
    ///   was killed, gave up, or stopped), so do its children started at
    ///   run time: each has its [`EventKind::Exited`](crate::EventKind::Exited)
    ///   (with the supervisor's exit, if it was still running) and its
    ///   [`EventKind::Removed`](crate::EventKind::Removed), and leaves the
    ///   status. Restarted, the supervisor starts again with its static
    ///   children only, as OTP's `DynamicSupervisor` does; requests sent
    ///   meanwhile wait for it, as messages wait in a mailbox;
    /// * appears in events and the status as `<supervisor>/<name>#<id>`,
    ///   e.g. `root/1/conn#7` (the path the status socket's `restart`
    ///   takes), and gets an [`EventKind::Removed`](crate::EventKind::Removed)
    ///   when removed.
    ///
    /// `name` is 1 to 64 ASCII letters, digits, `_` and `-`, unique in the
    /// tree among mailboxes and templates; `start()` refuses another with
    /// [`Error::InvalidName`] (or [`Error::DuplicateName`]).
    ///
    /// A supervisor with a template never ends for having no child left:
    /// it runs until the tree stops or it gives up. At most
    /// [`with_max_children`](Self::with_max_children) run at once. The
    /// template runs in this supervisor's process too (to learn the
    /// worker's policies), so it should only build the worker, not start
    /// anything. The argument travels encoded with `postcard`, with the
    /// name of its type: `start_child` checks that it is an `A`, and the
    /// supervisor decodes it only as an `A`, to its last byte.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use serde::{Deserialize, Serialize};
    /// use supertrees::Supertree;
    /// # use supertrees::{Restartable, Worker};
    /// # struct Conn { port: u16 }
    /// # impl Worker for Conn { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
    /// # impl Restartable for Conn {}
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct ConnArgs { port: u16 }
    ///
    /// let tree = Supertree::new().add_supervisor(|s| {
    ///     s.add_dynamic("conn", |arg: ConnArgs| Conn { port: arg.port })
    ///         .with_max_children(64)
    /// });
    /// ```
    pub fn add_dynamic<A, W, F>(mut self, name: &str, template: F) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
        W: Worker,
        F: Fn(A) -> W + Send + Sync + 'static,
    {
        let build: Build = Arc::new(move |arg: &[u8]| {
            let arg = codec::decode::<A>(arg)?;
            Ok(Box::new(template(arg)) as Box<dyn Worker>)
        });
        self.templates.push(Template {
            name: name.to_owned(),
            argument: std::any::type_name::<A>(),
            build,
        });
        self
    }

    /// The most children started at run time ([`add_dynamic`](Self::add_dynamic))
    /// this supervisor runs at once; `start_child` beyond it fails with
    /// [`Error::TooManyChildren`]. Default: no limit, as OTP's
    /// `max_children`.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Supertree;
    ///
    /// let tree = Supertree::new().add_supervisor(|s| s.with_max_children(1000));
    /// ```
    pub fn with_max_children(mut self, max: u32) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Declares the listening socket `name`, held by the tree on behalf of
    /// this supervisor's subtree: the root binds it and starts listening
    /// before anything is forked, the processes of this subtree (and the
    /// supervisors above it) inherit it, no other process holds it, and the
    /// workers of this supervisor and of those below it take a
    /// fresh handle at each run with `supertrees::tcp_listener`
    /// or `supertrees::unix_listener`. Connections that arrive
    /// while the serving worker restarts wait in the backlog: none is
    /// refused. See [`Listen`] for the kinds of socket.
    ///
    /// # Errors
    ///
    /// `start()` returns [`Error::Listener`] naming it, before anything is
    /// forked, when it can not be bound (address in use, not permitted, a
    /// path taken, a Unix socket's directory that another user can change),
    /// when its [`Listen::mode`] can not apply, or when systemd passed no
    /// such socket; names are unique in a tree.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{Listen, Supertree};
    ///
    /// let tree = Supertree::new()
    ///     .with_listener("http", Listen::tcp("127.0.0.1:8080".parse().expect("an address")))
    ///     .add_supervisor(|s| s.with_listener("admin", Listen::unix("/run/my-service/admin.sock")));
    /// ```
    pub fn with_listener(mut self, name: &str, listen: Listen) -> Self {
        self.listeners.push((name.to_owned(), listen));
        self
    }

    /// Hang detection for this supervisor's subtree: each of its processes
    /// must show life every `period`, or it is SIGKILLed, reported as
    /// [`ChildExit::Hung`](crate::ChildExit::Hung), and restarted by its
    /// policy, within 2 × `period`.
    ///
    /// * Its worker host shows life through a task on its executor, so a
    ///   worker that blocks the executor's thread, a deadlock, or a SIGSTOP
    ///   of the host is caught; all the workers of the host are restarted,
    ///   as after any death of their host.
    /// * The supervisor process itself (below the root) shows life to its
    ///   parent from its loop, so a stopped or stuck supervisor is killed
    ///   and restarted by its parent.
    /// * Supervisors below inherit the period unless they set their own.
    /// * Starved is not hung: a process that is runnable but gets no CPU (a
    ///   saturated machine, a CPU quota such as
    ///   [`Limits::cpu`](crate::Limits::cpu)) is not killed. Before it
    ///   kills a silent process, its supervisor asks the scheduler about
    ///   the threads that answer for it, those its signs of life came from
    ///   (Linux `/proc/<pid>/task/<tid>/schedstat` and `stat`, read from
    ///   half a period of silence to the deadline): if one of them is
    ///   runnable (waiting for a CPU, or throttled) and was on a CPU less
    ///   than a twentieth of the period in that window (10 ms of a 200 ms
    ///   period), the process is starved, and its deadline moves on by half
    ///   a period, to be judged again then over the grown window. A
    ///   stopped process, one whose answering threads sleep (blocked,
    ///   deadlocked), or one silent after that much CPU (a busy loop) is
    ///   hung. A busy loop under a CPU quota gets only the quota's share:
    ///   it is caught within 2 × `period` under 0.05 CPU or more, and
    ///   under a smaller quota `q` after about `period / (20 q)` of silence
    ///   (a second, for 0.01 CPU and a 200 ms period). Other threads of the
    ///   process (a worker's background thread) make it look neither
    ///   starved nor alive. A process whose main thread ended by itself
    ///   while its other threads run on (its executor gone) is hung; one
    ///   that exits as a whole is left to exit. A process that can not be
    ///   read is judged hung.
    ///
    /// The root process itself is watched by systemd's `WatchdogSec`. The
    /// deadlines, and the kill of a process that missed its own, are its
    /// supervisor's state machine's, so the simulation keeps them too: its
    /// simulated worker hosts and supervisors show life four times per
    /// period, and a host hung by [`testing::hang()`](crate::testing::hang)
    /// is killed at its deadline, on virtual time.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::Supertree;
    ///
    /// let tree = Supertree::new()
    ///     .with_watchdog(Duration::from_secs(1))
    ///     .add_supervisor(|s| s.with_watchdog(Duration::from_millis(200)));
    /// ```
    pub fn with_watchdog(mut self, period: Duration) -> Self {
        self.watchdog = Some(period);
        self
    }

    /// The bound of an operator's order about node `path`, below this
    /// supervisor at `own`: [`control::bound`] of its shutdown, as its
    /// own supervisor's machine bounds it. For a child started at run time
    /// (whose policies are its worker's, built from its argument) and a
    /// path this tree does not have, [`control::ORDER_BOUND`].
    #[doc(hidden)]
    pub fn order_bound(&self, own: &str, path: &control::NodePath) -> Duration {
        let (mut children, mut names) = (&self.children[..], &self.names[..]);
        let mut rest = path
            .as_str()
            .strip_prefix(own)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or_default()
            .split('/')
            .peekable();
        while let Some(segment) = rest.next() {
            let found =
                control::Segment::parse(segment).and_then(|s| child_by(children.len(), names, s));
            let Some(n) = found else {
                break;
            };
            match (children.get(n), rest.peek()) {
                (Some(child), None) => return control::bound(child.policy().shutdown),
                (Some(Child::Supervisor(below)), Some(_)) => {
                    (children, names) = (&below.children, &below.names);
                }
                _ => break,
            }
        }
        control::ORDER_BOUND
    }

    /// The path segment of child `n`: its name, or its position.
    #[doc(hidden)]
    pub fn segment(&self, n: usize) -> String {
        match self.names.get(n) {
            Some(Some(name)) => name.clone(),
            _ => n.to_string(),
        }
    }

    /// The path of child `n` of this supervisor, whose path is `path`.
    #[doc(hidden)]
    pub fn child_path(&self, path: &str, n: usize) -> String {
        format!("{path}/{}", self.segment(n))
    }

    /// The child given to the builder that a path's `segment` names: a
    /// named child by its name, another by its position.
    #[doc(hidden)]
    pub fn child_by(&self, segment: control::Segment<'_>) -> Option<usize> {
        child_by(self.children.len(), &self.names, segment)
    }

    /// Names the next child added (`None`: none), which takes its place
    /// in `names` then.
    fn name_next(&mut self, name: Option<String>) {
        if let Some(name) = name {
            self.names.resize(self.children.len(), None);
            self.names.push(Some(name));
        }
    }

    /// Checks the names of this supervisor's children (it is at `path`):
    /// each a path segment, unique among them.
    fn check_names(&self, path: &str) -> Result<(), Error> {
        for (n, name) in self.names.iter().enumerate() {
            let Some(name) = name else { continue };
            let reason = control::bad_child_name(name).or_else(|| {
                self.names[..n]
                    .contains(&Some(name.clone()))
                    .then_some("another child of this supervisor has this name")
            });
            if let Some(reason) = reason {
                return Err(Error::InvalidName {
                    name: name.clone(),
                    path: path.to_owned(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// The state machine that supervises this supervisor's children; both
    /// the simulation and the process engine drive one per supervisor. Its
    /// children started at run time are numbered from `first_id` on (see
    /// [`Machine::with_dynamic`]); its processes are watched with its own
    /// watchdog period, else `inherited`, its parent's.
    #[doc(hidden)]
    pub fn machine(&self, path: String, first_id: u64, inherited: Option<Duration>) -> Machine {
        let policies = self.children.iter().map(Child::policy);
        let machine = Machine::new(
            path,
            policies,
            self.strategy,
            self.intensity,
            self.shutdown,
            self.watchdog.or(inherited),
        );
        if self.templates.is_empty() {
            machine
        } else {
            machine.with_dynamic(self.max_children, first_id)
        }
    }
}

/// What the engine reads off a whole tree before it starts.
impl Tree<Nested> {
    /// The users the processes of this subtree run as, when this
    /// supervisor's parent runs as `inherited`: its own
    /// ([`with_user`](Self::with_user), else `inherited`) and those below
    /// it; each once.
    #[doc(hidden)]
    pub fn users(&self, inherited: u32) -> Vec<u32> {
        let own = self.user.map_or(inherited, |(uid, _)| uid);
        let mut users = vec![own];
        for child in &self.children {
            if let Child::Supervisor(sup) = child {
                users.extend(sup.users(own));
            }
        }
        users.sort_unstable();
        users.dedup();
        users
    }

    /// This supervisor (at `path`) and every one below it, with their
    /// paths, each before the supervisors below it.
    #[doc(hidden)]
    pub fn supervisors(&self, path: &str) -> Vec<(String, &Supervisor)> {
        let mut all = vec![(path.to_owned(), self)];
        for (n, child) in self.children.iter().enumerate() {
            if let Child::Supervisor(sup) = child {
                all.extend(sup.supervisors(&self.child_path(path, n)));
            }
        }
        all
    }

    /// Every named child of this supervisor (at `path`) and below, with its
    /// position among its siblings: what a [`TreeStatus`] needs to list
    /// them in tree order.
    #[doc(hidden)]
    pub fn named_positions(&self, path: &str) -> Vec<(String, u32)> {
        let mut named = Vec::new();
        // A tree without names (most) allocates nothing here: the root's
        // heap, which every process forks from, stays as it was.
        if !self.has_names() {
            return named;
        }
        for (path, sup) in self.supervisors(path) {
            for (n, name) in sup.names.iter().enumerate() {
                if let (Some(name), Ok(n)) = (name, u32::try_from(n)) {
                    named.push((format!("{path}/{name}"), n));
                }
            }
        }
        named
    }

    /// Whether this supervisor or any below it names a child.
    fn has_names(&self) -> bool {
        !self.names.is_empty()
            || self.children.iter().any(|child| match child {
                Child::Supervisor(sup) => sup.has_names(),
                Child::Worker(_) => false,
            })
    }

    /// Checks the limits of this supervisor (at `path`) and every one
    /// below; with `users`, the uid and gid the calling process runs as and
    /// whether it may switch users (see `check_users`), that each
    /// supervisor's [`with_user`](Tree::with_user) can be honoured where it
    /// is forked.
    #[doc(hidden)]
    pub fn check(&self, path: &str, users: Option<((u32, u32), bool)>) -> Result<(), Error> {
        for (path, sup) in self.supervisors(path) {
            sup.limits.check()?;
            sup.check_names(&path)?;
        }
        if let Some((me, may)) = users {
            self.check_users(path, me, may, "this process")?;
        }
        Ok(())
    }

    /// Checks that this supervisor (at `path`), forked by a process that
    /// runs as `parent` (uid, gid; `who` says which) and `may` switch
    /// users (root with `CAP_SETUID` and `CAP_SETGID`), may switch to its
    /// user, and so on below. A process that switched to another user than
    /// root has no capabilities left, so a supervisor below a
    /// [`with_user`](Tree::with_user) supervisor of another user than root
    /// can only keep that user.
    fn check_users(
        &self,
        path: &str,
        parent: (u32, u32),
        may: bool,
        who: &str,
    ) -> Result<(), Error> {
        let runs_as = match self.user {
            Some(user) if user != parent && !may => {
                let without = if parent.0 == 0 {
                    " without CAP_SETUID and CAP_SETGID"
                } else {
                    ""
                };
                return Err(Error::Privilege {
                    path: path.to_owned(),
                    reason: format!(
                        "only root may switch to uid {} and gid {}; {who} runs as uid {} and gid {}{without}",
                        user.0, user.1, parent.0, parent.1
                    ),
                });
            }
            Some(user) => user,
            None => parent,
        };
        let may = may && runs_as.0 == 0;
        let who = if self.user.is_some() {
            format!("{path} above it")
        } else {
            who.to_owned()
        };
        for (n, child) in self.children.iter().enumerate() {
            if let Child::Supervisor(sup) = child {
                sup.check_users(&self.child_path(path, n), runs_as, may, &who)?;
            }
        }
        Ok(())
    }
}

/// The builder methods only a supervisor below the root has: its own
/// policies, applied by its parent.
impl Tree<Nested> {
    /// Names this supervisor: its path segment is `name` (`root/api`)
    /// rather than its position (`root/0`), for it and every node below
    /// it. The rules of [`add_named_worker`](Tree::add_named_worker) apply.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Supertree;
    /// # use supertrees::{BoxFuture, Restartable, Worker};
    /// # struct Http;
    /// # impl Worker for Http { fn init(&self) -> BoxFuture { Box::pin(async {}) } }
    /// # impl Restartable for Http {}
    ///
    /// // The worker's path is root/api/web.
    /// let tree = Supertree::new().add_supervisor(|s| s.with_name("api").add_named_worker("web", Http));
    /// ```
    pub fn with_name(mut self, name: &str) -> Self {
        self.kind.name = Some(name.to_owned());
        self
    }

    /// When the parent restarts this supervisor after it *fails* (killed by a
    /// signal, or its restart intensity exceeded); default
    /// [`RestartPolicy::Always`]. A supervisor that finishes its work is
    /// never restarted.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{RestartPolicy, Supertree};
    /// # use supertrees::{Restartable, Worker};
    /// # struct W;
    /// # impl Worker for W { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
    /// # impl Restartable for W {}
    ///
    /// let tree = Supertree::new()
    ///     .add_supervisor(|s| s.with_restart_policy(RestartPolicy::Never).add_worker(W));
    /// ```
    pub fn with_restart_policy(mut self, restart_policy: RestartPolicy) -> Self {
        self.kind.restart_policy = restart_policy;
        self
    }

    /// How long the parent waits before restarting this supervisor (default
    /// [`BackoffPolicy::default`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{BackoffPolicy, Supertree};
    /// # use supertrees::{Restartable, Worker};
    /// # struct W;
    /// # impl Worker for W { fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> { Box::pin(async {}) } }
    /// # impl Restartable for W {}
    ///
    /// let tree = Supertree::new()
    ///     .add_supervisor(|s| s.with_backoff_policy(BackoffPolicy::immediate()).add_worker(W));
    /// ```
    pub fn with_backoff_policy(mut self, backoff_policy: BackoffPolicy) -> Self {
        self.kind.backoff_policy = backoff_policy;
        self
    }

    /// Bounds what this supervisor's whole subtree may use — the
    /// supervisor process, its worker host and everything below — with a
    /// cgroup where the tree may create one, else with rlimits; see
    /// [`Limits`] for which mechanism enforces what. A process that ends at
    /// the memory limit is reported as
    /// [`ChildExit::OutOfMemory`](crate::ChildExit::OutOfMemory) and
    /// restarted by its policy; the rest of the tree runs on.
    ///
    /// # Errors
    ///
    /// `start()` returns [`Error::UnenforceableLimit`]
    /// naming this supervisor and the limit, before anything is forked,
    /// when a limit needs a cgroup the tree can not make here (`processes`,
    /// `cpu`), and [`Error::InvalidLimits`]
    /// for a value that makes no sense (a zero, fewer than 16 open files).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{Limits, Supertree};
    ///
    /// let tree = Supertree::new().add_supervisor(|s| {
    ///     s.with_limits(Limits::new().memory(64 << 20).processes(64).open_files(1024))
    /// });
    /// ```
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs this supervisor's whole subtree as user `uid` and group `gid`:
    /// real, effective and saved ids, no supplementary groups, and
    /// `PR_SET_NO_NEW_PRIVS`, set in the supervisor process right after
    /// fork, before anything of the subtree runs. Events, the status and
    /// mailboxes still reach across (they are inherited pipes and sockets).
    ///
    /// # Errors
    ///
    /// `start()` returns [`Error::Privilege`] naming the supervisor, before
    /// anything is forked, when the process that forks it may not switch
    /// to that user: only root (with `CAP_SETUID` and `CAP_SETGID`, which a
    /// container may have dropped) may, so the tree must run as root, and a
    /// supervisor below a `with_user` supervisor of another user than root
    /// may only name that same user. Naming the user a process already
    /// runs as is always allowed (it keeps its supplementary groups when
    /// it is not root: only root may drop them).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Supertree;
    ///
    /// // `nobody`.
    /// let tree = Supertree::new().add_supervisor(|s| s.with_user(65534, 65534));
    /// ```
    pub fn with_user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }
}

/// The root: what only it has, and how to run the tree.
impl<B> Tree<Root<B>> {
    /// An empty tree: a root supervisor with no children.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Supertree;
    ///
    /// let tree = Supertree::new();
    /// ```
    pub fn new() -> Self {
        Tree::with_kind(Root {
            observers: Observers::default(),
            backend: PhantomData,
        })
    }

    /// Kept for supertrees 0.1 code; does nothing. The root has no parent to
    /// restart it, so its own restart policy was never applied. Set restart
    /// policies on workers ([`Restartable`]) and on supervisors below the
    /// root.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{RestartPolicy, Supertree};
    ///
    /// #[allow(deprecated)]
    /// let tree = Supertree::new().with_restart_policy(RestartPolicy::Always);
    /// ```
    #[deprecated(
        since = "0.2.0",
        note = "the root has no parent, so its restart policy is never applied; this call does nothing"
    )]
    pub fn with_restart_policy(self, restart_policy: RestartPolicy) -> Self {
        let _ = restart_policy;
        self
    }

    /// Kept for supertrees 0.1 code; does nothing. The root has no parent to
    /// restart it, so its own backoff policy was never applied. Set backoff
    /// policies on workers ([`Restartable`]) and on supervisors below the
    /// root.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{BackoffPolicy, Supertree};
    ///
    /// #[allow(deprecated)]
    /// let tree = Supertree::new().with_backoff_policy(BackoffPolicy::default());
    /// ```
    #[deprecated(
        since = "0.2.0",
        note = "the root has no parent, so its backoff policy is never applied; this call does nothing"
    )]
    pub fn with_backoff_policy(self, backoff_policy: BackoffPolicy) -> Self {
        let _ = backoff_policy;
        self
    }

    /// Calls `f` in the root process for every lifecycle [`Event`] anywhere
    /// in the tree: each start, readiness, exit (with its restart decision)
    /// and shutdown, with the path it concerns (`root/1/0`).
    ///
    /// `f` runs in the root's one thread (the root forks, so it stays
    /// single-threaded), but it never holds the root's loop for long:
    /// events wait for `f` in a queue, and each turn of the loop calls `f`
    /// for at most 5 ms (and at least once). Between turns the root handles
    /// signals, its children's exits, status requests and systemd watchdog
    /// pings. So a slow `f` gets:
    ///
    /// * the events late, in order;
    /// * when more than 1024 wait, not the oldest: they are dropped, and
    ///   `f` gets an [`EventKind::Dropped`](crate::EventKind::Dropped) with
    ///   their count before its next event;
    /// * when the tree ends, the newest 64 of those still waiting, for at
    ///   most 1 s, and a last `Dropped` for the rest.
    ///
    /// A call is never interrupted: an `f` that takes a second delays the
    /// root (SIGTERM, the watchdog) by a second each time it is called. Keep
    /// it short, and do not start threads in it (the root forks); hand slow
    /// work to another process, e.g. over a non-blocking socket.
    ///
    /// The [`TreeStatus`] (the status socket, `on_ready`) never waits for
    /// `f`: each event is folded into it as soon as the root reads it.
    ///
    /// Events travel to the root over one pipe that no supervisor ever waits
    /// on: when the pipe is full, a supervisor keeps the latest event of
    /// each kind about each node and sends them once there is room (it tries
    /// every 10 ms), after a `Dropped` count of the others, rather than
    /// slowing the tree down. If
    /// `f` panics, the panic is logged and `f` is not called again (the tree
    /// goes on).
    ///
    /// [`run_simulated`](crate::testing::run_simulated) calls it too, at
    /// once, with the same events (`pid: None`, and no worker-host events),
    /// so alerting on events can be tested on virtual time.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::{EventKind, Supertree};
    ///
    /// let tree = Supertree::new().on_event(|event| match event.kind {
    ///     EventKind::Dropped(n) => eprintln!("{n} events missed"),
    ///     _ => eprintln!("{event}"),
    /// });
    /// ```
    pub fn on_event(mut self, f: impl FnMut(&Event) + Send + 'static) -> Self {
        self.kind.observers.on_event = Some(Box::new(f));
        self
    }

    /// Calls `f` in the root process once the whole tree is up: every
    /// supervisor's children are ready (see [`ready()`](crate::ready())),
    /// with the tree's status, which shows every node of the tree as
    /// built ready (and every worker host running); children started at
    /// run time are not waited for, and show as they are. When
    /// `NOTIFY_SOCKET` is set, the root also sends systemd `READY=1` then,
    /// with the same status served on the status socket. Like the calls of
    /// [`on_event`](Self::on_event), the call waits its turn behind the
    /// events before it (it is never dropped), so the status it gets may be
    /// newer than the moment the tree got ready. The simulation calls it
    /// too, at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Supertree;
    ///
    /// let tree = Supertree::new().on_ready(|status| println!("up:\n{status}"));
    /// ```
    pub fn on_ready(mut self, f: impl FnOnce(&TreeStatus) + Send + 'static) -> Self {
        self.kind.observers.on_ready = Some(Box::new(f));
        self
    }

    /// Serves the live [`TreeStatus`] on a Unix socket at `path` while the
    /// tree runs; `supertrees::query_status` (or the `status`
    /// example) prints it from another terminal.
    ///
    /// The socket is created with mode 0600 in a directory only its owner can
    /// enter (created with mode 0700 if missing; an existing directory that
    /// others can enter is refused), and peers of another uid are refused.
    /// No directory above it may be writable by group or others unless it
    /// has the sticky bit (as `/tmp` has), nor a symbolic link on the way
    /// be owned by another user than the tree's and root: others could
    /// replace the socket's directory. `path` must fit a Unix socket address (107 bytes on
    /// Linux). A directory the root creates for the socket is removed with
    /// it when the tree ends, and at once if the socket can not be created.
    ///
    /// One request per connection, one line:
    ///
    /// | request | answer |
    /// |---|---|
    /// | `status` | the text tree (see [`TreeStatus`]) |
    /// | `status json` | the same as one JSON document, `{"schema": 1, ...}` (see [`TreeStatus`]) |
    /// | `watch` | a stream of JSON lines, one per lifecycle event from then on (see [`control::WatchLine`]), until the client hangs up; a client that reads too slowly is sent `{"dropped": n}` for what it missed, and never slows the tree |
    /// | `stop PATH` | an operator's stop: the node is stopped in order and held down, restarted neither by its policy nor with its group (`OneForAll`, `RestForOne`), until `start PATH` ([`EventKind::Held`](crate::EventKind::Held)); a supervisor is stopped with its subtree; a child started at run time is terminated and removed. The hold is its supervisor's: a supervisor that is itself restarted starts all its children again. `ok stopped PATH`, or `error: already stopped: PATH` |
    /// | `start PATH` | starts a node an operator stopped, at once, its backoff reset: `ok started PATH`, or `error: already running: PATH` for any other |
    /// | `restart PATH` | an operator's restart of the node at PATH (`root/1/0`; a supervisor: its whole subtree): stopped in order, started again at once, not counted in its supervisor's intensity, its backoff reset. Decided by the state machine of the supervisor that owns PATH, in whatever process it runs; answered `ok restarted PATH` once started again, or one `error: ...` line (`not found`, `not running`, `busy`, `shutting down`, `timed out after ...`) naming PATH, within the child's shutdown time plus 5 s (30 s for `Shutdown::Infinity`) |
    ///
    /// Every supervisor on the way down to the node's own waits for its
    /// answer no longer than that bound and 1 s (a supervisor stopped or
    /// hung on the way makes `error: timed out`, one that ends `error:
    /// lost`); an order delayed on the way may still be carried out later.
    /// Every command is logged with the peer's uid and pid; `restart`,
    /// `stop` and `start` share the bound and the refusals above, and are
    /// carried out one at a time per node: while an order about a node
    /// waits, another about it is refused `busy (another order about it is
    /// under way)`. A worker host (`root/1/host`) takes no command: its
    /// supervisor starts and stops it with its workers. A node
    /// is named by its path: a named child's segment is its name
    /// ([`add_named_worker`](Self::add_named_worker),
    /// [`with_name`](Self::with_name)), any other's its position. Up to 64
    /// clients may wait for answers (more get `error: busy`) besides the 16
    /// served, so waiting orders never keep `status` out. A client that
    /// sends anything else, or ends the connection before its newline, gets
    /// an error line; one that sends nothing is dropped after 2 s. Up to 16
    /// clients are served at a time; more wait their turn in order, and a
    /// client that has not sent its request 20 ms after it was accepted is
    /// cut off (`error: busy`) when another waits, so a flood of idle
    /// connections does not lock others out. The root never waits on a
    /// client, nor on the `on_event` callback: the status is always current.
    /// The socket file is removed when the tree ends. A socket that can not
    /// be created makes `start` return [`Error::Os`], naming the path and the
    /// reason, before anything forks.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Supertree;
    ///
    /// let dir = std::env::temp_dir().join("my-service");
    /// let tree = Supertree::new().status_socket(dir.join("status.sock"));
    /// ```
    pub fn status_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.kind.observers.status_socket = Some(path.into());
        self
    }

    /// Publishes the tree's figures (restarts, exits by reason, up and
    /// ready per path, mailbox traffic, ...: see [`figures`](crate::figures)
    /// for every family and its labels) through the
    /// [`metrics`](https://docs.rs/metrics) facade, into the recorder that is
    /// global when the tree starts: install yours (OpenTelemetry, StatsD,
    /// `metrics-exporter-prometheus`'s `build_recorder`) with
    /// `metrics::set_global_recorder` in `main`, before
    /// [`start`](Self::start).
    ///
    /// The root process records them all, once a second while anything
    /// changed (the traffic counted by the other processes included) and
    /// once more when the tree ends; every other process of the tree, a
    /// worker's included, records none. A worker that counts its own figures
    /// records them in its own process: serve them from there (see the
    /// `metrics_http` example). The root forks, and a fork copies only the
    /// calling thread: a recorder that starts a thread or needs a runtime
    /// belongs in a worker, not in `main` (`start` warns when it is called
    /// in a multi-threaded process), and there it can read the tree's
    /// figures from the status socket
    /// ([`Client::metrics`](https://docs.rs/supertrees/latest/supertrees/control/struct.Client.html#method.metrics)).
    /// The recorder is called on the root's only thread: one that blocks
    /// stalls the root; one that panics is no longer published to (logged).
    ///
    /// A [`status_socket`](Self::status_socket) serves the same figures
    /// (its `metrics` request, in the Prometheus text format) with or
    /// without this. In [`run_simulated`](crate::testing::run_simulated),
    /// the figures are published once, when the run ends, into the
    /// calling thread's recorder.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use metrics_util::debugging::DebuggingRecorder;
    /// use supertrees::testing::{run_simulated, FakeTimer};
    /// use supertrees::Supertree;
    ///
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// metrics::with_local_recorder(&recorder, || {
    ///     run_simulated(Supertree::new().with_metrics(), FakeTimer::new())
    /// })?;
    /// let names: Vec<String> = snapshotter
    ///     .snapshot()
    ///     .into_vec()
    ///     .into_iter()
    ///     .map(|(key, ..)| key.key().name().to_owned())
    ///     .collect();
    /// assert!(names.iter().any(|name| name == "supertrees_child_up"));
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn with_metrics(mut self) -> Self {
        self.kind.observers.metrics = true;
        self
    }
}

/// Running a root in processes, on the engine its kind's [`Runner`] reaches.
impl<B: Runner> Tree<Root<B>> {
    /// Runs the tree with real processes on `spawner`'s executor, with
    /// `timer` as the clock of every supervisor, and returns when the tree
    /// ends.
    ///
    /// The calling process becomes the root supervisor; every child
    /// supervisor is forked, and each supervisor's workers run as tasks of
    /// one forked worker host that calls [`Spawner::block_on`]. See the
    /// process model in the [crate documentation](crate#process-model).
    ///
    /// Returns `Ok(())` once no child runs or will restart, or after SIGTERM,
    /// SIGINT, SIGHUP or SIGQUIT stopped the tree in order (the handlers
    /// that were installed before are put back; SIGPIPE, ignored while the
    /// tree runs in every process of it, as Rust programs do by default,
    /// too). No forked process ever returns
    /// from this call. Call it from a plain, single-threaded `fn main`.
    ///
    /// # Errors
    ///
    /// * [`Error::InsideRuntime`] at once, if `spawner` reports that the
    ///   calling thread is inside its runtime;
    /// * [`Error::IntensityExceeded`] if the root's restart intensity was
    ///   exceeded;
    /// * [`Error::Os`] if the root's signal handling or status socket could
    ///   not be set up;
    /// * [`Error::Unsupported`] on a system the process engine does not
    ///   support (it runs on Linux; [`run_simulated`](crate::testing::run_simulated)
    ///   runs everywhere).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # extern crate supertrees_core as supertrees;
    /// # // The facade's `Supertree`, whose backend reaches the engine.
    /// # enum Tokio {}
    /// # impl supertrees::Runner for Tokio {
    /// #     fn run<S: Spawner, T: Timer>(_: supertrees::Tree<supertrees::tree::Root<Self>>, _: S, _: T) -> Result<(), supertrees::Error> { Ok(()) }
    /// # }
    /// # type Supertree = supertrees::Tree<supertrees::tree::Root<Tokio>>;
    /// use std::time::{Duration, Instant};
    /// use supertrees::{BoxFuture, Spawner, Timer};
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
    ///         let (tx, rx) = futures::channel::oneshot::channel::<()>();
    ///         std::thread::spawn(move || {
    ///             std::thread::sleep(duration);
    ///             let _ = tx.send(());
    ///         });
    ///         Box::pin(async move {
    ///             let _ = rx.await;
    ///         })
    ///     }
    /// }
    ///
    /// Supertree::new().start_with(Blocking, ThreadTimer)?;
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn start_with(self, spawner: impl Spawner, timer: impl Timer) -> Result<(), Error> {
        B::run(self, spawner, timer)
    }
}

/// Starting a root whose backend is known by type.
impl<B: Backend> Tree<Root<B>> {
    /// Runs the tree on the backend `B` (for `supertrees::Supertree`: Tokio
    /// with the default features, smol with only `smol`),
    /// and returns when it ends. The same as
    /// [`start_with`](Tree::start_with)`(B::spawner(), B::timer())`.
    ///
    /// Call it from a plain, single-threaded `fn main`: the calling process
    /// becomes the root supervisor and forks the rest of the tree.
    ///
    /// # Errors
    ///
    /// As [`start_with`](Tree::start_with): [`Error::InsideRuntime`] when
    /// called from inside a running runtime (e.g. within `#[tokio::main]`),
    /// [`Error::IntensityExceeded`] when the root gives up, [`Error::Os`] if
    /// the root could not be set up.
    ///
    /// # Examples
    ///
    /// With a backend of your own (see [`Backend`]; the paths are the
    /// `supertrees` facade's, which re-exports these):
    ///
    /// ```no_run
    /// # mod supertrees {
    /// #     pub use supertrees_core::*;
    /// #     pub mod tree {
    /// #         pub use supertrees_core::tree::*;
    /// #         pub fn run_processes<B, S, T>(_: supertrees_core::Tree<Root<B>>, _: S, _: T) -> Result<(), supertrees_core::Error> { Ok(()) }
    /// #     }
    /// # }
    /// # use std::time::{Duration, Instant};
    /// # use supertrees::{BoxFuture, Spawner, Timer};
    /// # #[derive(Clone)]
    /// # struct Blocking;
    /// # impl Spawner for Blocking {
    /// #     fn block_on(&self, fut: BoxFuture) { futures::executor::block_on(fut) }
    /// #     fn spawn(&self, fut: BoxFuture) { std::thread::spawn(move || futures::executor::block_on(fut)); }
    /// # }
    /// # #[derive(Clone)]
    /// # struct ThreadTimer;
    /// # impl Timer for ThreadTimer {
    /// #     fn now(&self) -> Instant { Instant::now() }
    /// #     fn sleep(&self, d: Duration) -> BoxFuture { Box::pin(async move { std::thread::sleep(d) }) }
    /// # }
    /// use supertrees::tree::Root;
    /// use supertrees::{Backend, Error, Runner, Tree};
    ///
    /// enum Threads {}
    /// impl Runner for Threads {
    ///     fn run<S: Spawner, T: Timer>(tree: Tree<Root<Self>>, spawner: S, timer: T) -> Result<(), Error> {
    ///         supertrees::tree::run_processes(tree, spawner, timer)
    ///     }
    /// }
    /// impl Backend for Threads {
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
    /// fn main() -> Result<(), supertrees::Error> {
    ///     Tree::<Root<Threads>>::new().start()
    /// }
    /// ```
    pub fn start(self) -> Result<(), Error> {
        self.start_with(B::spawner(), B::timer())
    }
}

impl<B> Default for Tree<Root<B>> {
    fn default() -> Self {
        Self::new()
    }
}

impl Restartable for Tree<Nested> {
    fn restart_policy(&self) -> RestartPolicy {
        self.kind.restart_policy
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        self.kind.backoff_policy
    }
}

impl fmt::Debug for Tree<Nested> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("shutdown", &self.shutdown)
            .field("restart_policy", &self.kind.restart_policy)
            .field("backoff_policy", &self.kind.backoff_policy)
            .field("mailboxes", &self.mailboxes)
            .field("templates", &self.templates)
            .field("max_children", &self.max_children)
            .field("listeners", &self.listeners)
            .field("children", &self.children)
            .finish()
    }
}

impl<B> fmt::Debug for Tree<Root<B>> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let observers = &self.kind.observers;
        f.debug_struct("Supertree")
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("shutdown", &self.shutdown)
            .field("on_event", &observers.on_event.is_some())
            .field("on_ready", &observers.on_ready.is_some())
            .field("status_socket", &observers.status_socket)
            .field("mailboxes", &self.mailboxes)
            .field("templates", &self.templates)
            .field("max_children", &self.max_children)
            .field("listeners", &self.listeners)
            .field("children", &self.children)
            .finish()
    }
}

impl<B> fmt::Debug for Root<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Root")
            .field("on_event", &self.observers.on_event.is_some())
            .field("on_ready", &self.observers.on_ready.is_some())
            .field("status_socket", &self.observers.status_socket)
            .field("backend", &std::any::type_name::<B>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::Noop;

    fn users(tree: Supertree, runs_as: (u32, u32)) -> Result<(), Error> {
        TreeParts::from(tree)
            .root
            .check_users("root", runs_as, runs_as.0 == 0, "this process")
    }

    fn refused(result: Result<(), Error>) -> (String, String) {
        match result {
            Err(Error::Privilege { path, reason }) => (path, reason),
            other => panic!("expected a privilege error, got {other:?}"),
        }
    }

    #[test]
    fn only_root_switches_users_and_a_subtree_keeps_its_own() {
        let nested = |inner: (u32, u32)| {
            Supertree::new().add_supervisor(|s| {
                s.with_user(65534, 65534)
                    .add_supervisor(move |s| s.with_user(inner.0, inner.1).add_worker(Noop))
            })
        };
        // Root forks every user's subtree; a subtree may name its own
        // user again.
        assert!(users(nested((65534, 65534)), (0, 0)).is_ok());
        // Below another user than root, no other user, root included.
        for inner in [(65533, 65533), (65534, 0), (0, 0)] {
            let (path, reason) = refused(users(nested(inner), (0, 0)));
            assert_eq!(path, "root/0/0");
            assert_eq!(
                reason,
                format!(
                    "only root may switch to uid {} and gid {}; root/0 above it runs as uid 65534 and gid 65534",
                    inner.0, inner.1
                )
            );
        }
        // Root without CAP_SETUID and CAP_SETGID (a container that dropped
        // them) may not switch either.
        let capless = TreeParts::from(nested((65534, 65534))).root.check_users(
            "root",
            (0, 0),
            false,
            "this process",
        );
        assert_eq!(
            refused(capless),
            (
                "root/0".to_owned(),
                "only root may switch to uid 65534 and gid 65534; this process runs as uid 0 and gid 0 without CAP_SETUID and CAP_SETGID".to_owned()
            )
        );
        // A tree that is not root: only its own user.
        let own = Supertree::new().add_supervisor(|s| s.with_user(1000, 1000).add_worker(Noop));
        assert!(users(own, (1000, 1000)).is_ok());
        let other = Supertree::new().add_supervisor(|s| s.with_user(1001, 1000).add_worker(Noop));
        assert_eq!(
            refused(users(other, (1000, 1000))),
            (
                "root/0".to_owned(),
                "only root may switch to uid 1001 and gid 1000; this process runs as uid 1000 and gid 1000".to_owned()
            )
        );
    }

    fn named_tree() -> Supertree {
        Supertree::new()
            .add_supervisor(|s| {
                s.with_name("api")
                    .add_named_worker("web", Noop)
                    .add_worker(Noop)
                    .add_supervisor(|s| s.add_named_worker("cache", Noop))
            })
            .add_worker(Noop)
            .add_named_worker("jobs", Noop)
    }

    #[test]
    fn named_children_are_known_by_their_names_and_the_others_by_position() {
        let root = TreeParts::from(named_tree()).root;
        let paths: Vec<String> = root
            .supervisors("root")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["root", "root/api", "root/api/2"]);
        assert_eq!(
            (0..3)
                .map(|n| root.child_path("root", n))
                .collect::<Vec<_>>(),
            ["root/api", "root/1", "root/jobs"]
        );
        let seg = |s| control::Segment::parse(s).expect("a segment");
        assert_eq!(root.child_by(seg("api")), Some(0));
        assert_eq!(root.child_by(seg("1")), Some(1));
        assert_eq!(root.child_by(seg("jobs")), Some(2));
        // A named child is not known by its position.
        assert_eq!(root.child_by(seg("0")), None);
        assert_eq!(root.child_by(seg("2")), None);
        assert_eq!(root.child_by(seg("web")), None);
        // The bound of an order walks the names down.
        let path = control::NodePath::parse("root/api/2/cache").expect("a path");
        let Some(Child::Worker(cache)) = root.children.first().and_then(|c| match c {
            Child::Supervisor(api) => match api.children.get(2) {
                Some(Child::Supervisor(inner)) => inner.children.first(),
                _ => None,
            },
            Child::Worker(_) => None,
        }) else {
            panic!("the tree has root/api/2/cache");
        };
        assert_eq!(
            root.order_bound("root", &path),
            control::bound(cache.shutdown())
        );
        assert_ne!(control::bound(cache.shutdown()), control::ORDER_BOUND);
        root.check("root", None).expect("the names are good");
    }

    #[test]
    fn bad_and_duplicate_names_fail_naming_them() {
        let refused = |tree: Supertree| match TreeParts::from(tree).root.check("root", None) {
            Err(Error::InvalidName { name, path, reason }) => format!("{path} {name}: {reason}"),
            other => panic!("expected an invalid name, got {other:?}"),
        };
        assert_eq!(
            refused(
                Supertree::new()
                    .add_named_worker("a", Noop)
                    .add_named_worker("a", Noop)
            ),
            "root a: another child of this supervisor has this name"
        );
        assert_eq!(
            refused(
                Supertree::new()
                    .add_supervisor(|s| s.with_name("web"))
                    .add_named_worker("web", Noop)
            ),
            "root web: another child of this supervisor has this name"
        );
        assert_eq!(
            refused(
                Supertree::new().add_supervisor(|s| s.with_name("api").add_named_worker("7", Noop))
            ),
            "root/api 7: a name of digits only reads as a position"
        );
        assert_eq!(
            refused(Supertree::new().add_named_worker("host", Noop)),
            "root host: `host` names a supervisor's worker host"
        );
        assert_eq!(
            refused(Supertree::new().add_named_worker("a/b", Noop)),
            "root a/b: a name holds ASCII letters, digits, `_` and `-` only"
        );
        assert_eq!(
            refused(Supertree::new().add_named_worker(&"x".repeat(65), Noop)),
            format!("root {}: a name is 1 to 64 characters long", "x".repeat(65))
        );
        assert_eq!(
            refused(Supertree::new().add_named_worker("", Noop)),
            "root : a name is 1 to 64 characters long"
        );
        // Siblings only: the same name in two supervisors is fine.
        let fine = Supertree::new()
            .add_supervisor(|s| s.add_named_worker("web", Noop))
            .add_supervisor(|s| s.add_named_worker("web", Noop));
        TreeParts::from(fine)
            .root
            .check("root", None)
            .expect("fine");
    }
}
