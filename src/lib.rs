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
//! ## Using it
//!
//! ```toml
//! [dependencies]
//! supertrees = "0.2"   # workers run on Tokio (default feature `tokio`)
//! # or, for the smol backend (async-executor + async-io) and no Tokio:
//! # supertrees = { version = "0.2", default-features = false, features = ["smol"] }
//! ```
//!
//! ## Pieces
//!
//! * The tree: [`Supertree`] (the root, run in your process) and
//!   [`Supervisor`] (a forked process each), the two kinds of one builder,
//!   [`Tree`], with [`Worker`]s as async tasks.
//! * Policies: [`RestartPolicy`], [`BackoffPolicy`], [`Strategy`],
//!   [`Intensity`], [`Shutdown`], each with its semantics spelled out in
//!   its docs.
//! * Executors: [`Supertree::start`] runs on the default backend (Tokio, or
//!   smol with `default-features = false, features = ["smol"]`);
//!   [`Supertree::start_with`] takes any [`Spawner`] and [`Timer`], including
//!   your own.
//! * Messages: named mailboxes that outlive their server's restarts
//!   ([`Tree::with_mailbox`], [`mailbox()`], [`inbox()`]) and children
//!   started at run time ([`Tree::add_dynamic`], [`start_child()`],
//!   [`terminate_child()`]); see [`message`].
//! * The worker's side: [`ready()`] once it can serve, [`stopping()`] to
//!   drain when asked to stop, [`spawn()`] for subtasks its run owns.
//!   Call `stopping()` in the run and hand the future on: a server that
//!   awaits its shutdown signal in a task of its own takes
//!   `with_graceful_shutdown(supertrees::stopping())`, not
//!   `with_graceful_shutdown(async { supertrees::stopping().await })`,
//!   which calls it outside the run, where it never resolves (see
//!   [`stopping()`]).
//! * Listening sockets that belong to the tree and outlive their workers'
//!   restarts and mistakes: [`Tree::with_listener`], [`Listen`],
//!   [`tcp_listener()`], [`unix_listener()`]; see [`listen`].
//! * [`testing`]: [`testing::run_simulated`] runs a tree in one thread on a
//!   [`testing::FakeTimer`], for exact, instant policy tests (with
//!   [`testing::hang()`] for hung workers, watchdogs and drops; mailboxes and
//!   dynamic children included).
//!
//! ## Outside a worker's run
//!
//! The free functions act for the worker whose run calls them: its `init`,
//! the future that returns, and that future's [`spawn()`]ed subtasks.
//! Called anywhere else, each does one thing, on every backend:
//!
//! | function | in a worker's run | in a thread or task a worker started in its own process | anywhere else: no tree, the root's own threads, a simulated tree outside its runs |
//! |---|---|---|---|
//! | [`mailbox()`] | `Ok(`[`Mailbox`]`)` | as in the run | `Err(`[`Error::NotInTree`]` { function: "mailbox", .. })` |
//! | [`inbox()`] | `Ok(`[`Inbox`]`)` | as in the run | `Err(NotInTree { function: "inbox", .. })` |
//! | [`start_child()`] | resolves to `Ok(`[`ChildId`]`)` | as in the run | resolves to `Err(NotInTree { function: "start_child", .. })` |
//! | [`terminate_child()`] | resolves to `Ok(())` | as in the run | resolves to `Err(NotInTree { function: "terminate_child", .. })` |
//! | [`tcp_listener()`], [`unix_listener()`] | `Ok`: a fresh handle (in a simulated tree, which has no sockets, `Err` of kind `NotFound`) | as in the run | `Err` of kind `NotFound` naming the function and the listener |
//! | [`ready()`] | `true`: the worker is ready | `false`, and does nothing | `false`, and does nothing |
//! | [`stopping()`] | resolves when the worker is asked to stop | never resolves, and logs a warning (once per process) | never resolves, and logs a warning (once per process) |
//! | [`spawn()`] | runs the subtask in the run | drops it unpolled, and logs a warning | drops it unpolled, and logs a warning |
//!
//! Each error says which function was called, e.g.
//! `supertrees::mailbox() called outside a worker of a running tree (...)`
//! or `supertrees::tcp_listener("http") called outside a worker of a running
//! tree (...)`.
//!
//! ## Events and errors grow
//!
//! [`Error`], [`EventKind`] and each of their struct variants, and
//! [`Event`], are `#[non_exhaustive]`: a new variant or field is not a
//! breaking change. Match them with a wildcard arm, name the fields you
//! read and end with `..`:
//!
//! ```
//! use std::time::Duration;
//! use supertrees::testing::{run_simulated, FakeTimer};
//! use supertrees::{BoxFuture, Error, EventKind, Intensity, Restartable, Supertree, Worker};
//!
//! struct Crash;
//! impl Worker for Crash {
//!     fn init(&self) -> BoxFuture {
//!         Box::pin(async { panic!("boom") })
//!     }
//! }
//! impl Restartable for Crash {}
//!
//! let tree = Supertree::new()
//!     .with_intensity(Intensity::new(2, Duration::from_secs(60)))
//!     .add_worker(Crash)
//!     .on_event(|event| match &event.kind {
//!         EventKind::Exited { exit, restart: Some(delay), .. } => {
//!             println!("{}: {exit}; again in {delay:?}", event.path)
//!         }
//!         EventKind::Exited { exit, .. } => println!("{}: {exit}", event.path),
//!         _ => {}
//!     });
//! match run_simulated(tree, FakeTimer::new()) {
//!     Err(Error::IntensityExceeded { path, max_restarts, .. }) => {
//!         assert_eq!((path.as_str(), max_restarts), ("root", 2));
//!     }
//!     other => panic!("expected the root to give up, got {other:?}"),
//! }
//! ```
//!
//! ## Observability
//!
//! Every lifecycle event (child started with its pid, exited with its status
//! or signal, restarting after a delay, giving up, intensity exceeded,
//! shutdown) is a `tracing` event with structured fields (`supervisor`,
//! `child`, `pid`, `exit`, `delay`, ...). Install any subscriber before
//! `start()`, e.g. `tracing_subscriber::fmt().init()`; forked processes
//! inherit it.
//!
//! Every line says which node spoke: each process logs inside a span of
//! its own, `supervisor` or `host` (fields `path` and `pid`), and every
//! run of a worker is inside a `worker` span (`path`, `pid`: its host's),
//! entered whenever its future and its [`spawn`] subtasks are polled; so
//! a line the worker's own code logs carries `path`, e.g. with
//! `tracing_subscriber::fmt().json().init()`:
//! `{"fields":{"message":"listening"},"span":{"path":"root/api/web","pid":4242,"name":"worker"},...}`.
//! A task a worker spawns on the runtime itself (`tokio::spawn`) is
//! outside it: spawn `fut.in_current_span()` ([`tracing::Instrument`]).
//!
//! The tree's figures (restarts and exits by reason per path, up and
//! ready, mailbox traffic by outcome, memory of limited subtrees, ...: see
//! [`figures`]) are served in the Prometheus text format by the status
//! socket's `metrics` request (`supertrees metrics`,
//! [`control::Client::metrics`]), and published into your own `metrics`
//! recorder with [`Tree::with_metrics`].
//!
//! [`tracing::Instrument`]: https://docs.rs/tracing/latest/tracing/trait.Instrument.html
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use listen::{tcp_listener, unix_listener, Listen};
pub use supertrees_core::{
    figures, inbox, mailbox, message, ready, spawn, start_child, stopping, terminate_child,
    Backend, BackoffPolicy, BoxFuture, ChildExit, ChildId, Envelope, Error, Event, EventKind,
    Inbox, Intensity, Limits, Mailbox, NodeKind, NodeState, NodeStatus, Readiness, Resources,
    RestartPolicy, Restartable, Runner, Shutdown, Spawner, Strategy, Supervisor, Timer, Tree,
    TreeStatus, Worker, MAX_MESSAGE,
};
#[cfg(target_os = "linux")]
pub use supertrees_engine::{query_status, Interest, IoSource, Register};

/// Asks the tree whose root serves `path` for its status; the process
/// engine, which serves it, runs on Linux only.
///
/// # Errors
///
/// Always [`Error::Unsupported`] on this system.
#[cfg(not(target_os = "linux"))]
pub fn query_status(path: impl AsRef<std::path::Path>) -> Result<String, Error> {
    let _ = path;
    Err(Error::Unsupported)
}

pub mod control {
    //! The operator's side of a running tree: its status socket (see
    //! [`status_socket`](crate::Tree::status_socket)), the requests it
    //! answers ([`Request`]), the events it streams ([`WatchLine`]), and
    //! on Linux the [`Client`] that asks them, which the `supertrees`
    //! command (package `supertrees-cli`) is made of.
    //!
    //! # Examples
    //!
    //! ```no_run
    //! # #[cfg(target_os = "linux")] {
    //! use supertrees::control::{Client, WatchLine};
    //!
    //! let tree = Client::connect("/run/user/1000/my-service/status.sock")?;
    //! print!("{}", tree.status_text()?);
    //! println!("{}", tree.restart("root/1/0")?); // "restarted root/1/0"
    //! for line in tree.watch()? {
    //!     if let WatchLine::Event(event) = line? {
    //!         println!("{} {}", event.path, event.text);
    //!     }
    //! }
    //! # }
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```

    pub use supertrees_core::control::{
        BadPath, BadRequest, NodePath, Op, Request, WatchLine, Watched,
    };
    #[cfg(target_os = "linux")]
    pub use supertrees_engine::{Client, ClientError, Watch, COMMAND_TIMEOUT, STATUS_TIMEOUT};
}

pub mod listen {
    //! Listening sockets that belong to the tree: [`Listen`], declared with
    //! [`with_listener`](crate::Tree::with_listener), and reached by
    //! workers with [`tcp_listener`] and [`unix_listener`].
    //!
    //! The root binds each listener before it forks anything, the processes
    //! of the subtree that sees it inherit it, and a worker takes a fresh,
    //! checked handle on it at each (re)start: connections that arrive
    //! while the serving worker restarts wait in the socket's backlog. What
    //! a worker can break (blocking mode, a shutdown, a closed descriptor),
    //! what the tree repairs, and what happens to the listeners when the
    //! tree stops are told in [`Listen`]'s module of `supertrees-core`,
    //! and in [`tcp_listener`].

    pub use supertrees_core::listen::Listen;
    #[cfg(target_os = "linux")]
    pub use supertrees_engine::{tcp_listener, unix_listener};

    /// A fresh handle on the TCP listener `name` of the tree; the process
    /// engine, which holds the tree's listeners, runs on Linux only.
    ///
    /// # Errors
    ///
    /// Always [`std::io::ErrorKind::Unsupported`] on this system.
    #[cfg(not(target_os = "linux"))]
    pub fn tcp_listener(name: &str) -> std::io::Result<std::net::TcpListener> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("supertrees::tcp_listener({name:?}): the process engine runs on Linux only"),
        ))
    }

    /// A fresh handle on the Unix listener `name` of the tree; the process
    /// engine, which holds the tree's listeners, runs on Linux only.
    ///
    /// # Errors
    ///
    /// Always [`std::io::ErrorKind::Unsupported`] on this system.
    #[cfg(all(unix, not(target_os = "linux")))]
    pub fn unix_listener(name: &str) -> std::io::Result<std::os::unix::net::UnixListener> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("supertrees::unix_listener({name:?}): the process engine runs on Linux only"),
        ))
    }
}

pub mod tree {
    //! The tree model: [`Tree`], the one builder behind [`Supertree`] (the root)
    //! and [`Supervisor`] (any other supervisor).
    //!
    //! A `Tree<K>` is a supervisor with its children and the policies it
    //! applies to them; its *kind* `K` holds what only one sort of supervisor
    //! has: [`Nested`] for a supervisor below the root (its own restart and
    //! backoff policy), [`Root<B>`](Root) for the root (the tree's callbacks
    //! and status socket, and the backend `B` that `start()` runs on).
    //! [`Supertree`] is the root of the default backend, and the `Supertree`
    //! here is the same type.
    //!
    //! # Examples
    //!
    //! A helper that configures the root and any supervisor alike:
    //!
    //! ```
    //! use std::time::Duration;
    //! use supertrees::tree::Tree;
    //! use supertrees::{Intensity, Strategy, Supertree};
    //!
    //! fn strict<K>(tree: Tree<K>) -> Tree<K> {
    //!     tree.with_strategy(Strategy::OneForAll)
    //!         .with_intensity(Intensity::new(3, Duration::from_secs(5)))
    //! }
    //!
    //! let tree = strict(Supertree::new()).add_supervisor(strict);
    //! ```

    pub use crate::Supertree;
    pub use supertrees_core::tree::{Nested, Root, Supervisor, Tree};

    use crate::{Error, Runner, Spawner, Timer};

    /// The backend of a root that has none: a `Tree<Root<Manual>>` has no
    /// `start()` and is run with [`start_with`](Tree::start_with) or
    /// [`run_simulated`](crate::testing::run_simulated).
    ///
    /// A type only: it has no values.
    ///
    /// # Examples
    ///
    /// ```
    /// use supertrees::tree::{Manual, Root};
    /// use supertrees::Tree;
    ///
    /// let tree = Tree::<Root<Manual>>::new();
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Manual {}

    /// Runs a root of no backend with [`run_processes`].
    impl Runner for Manual {
        fn run<S: Spawner, T: Timer>(
            tree: Tree<Root<Self>>,
            spawner: S,
            timer: T,
        ) -> Result<(), Error> {
            run_processes(tree, spawner, timer)
        }
    }

    /// Runs a root tree in processes on the fork-per-supervisor engine
    /// (`supertrees-engine`): what [`start_with`](Tree::start_with) does,
    /// and what a [`Runner`] of your own calls (see
    /// [`Backend`](crate::Backend)).
    ///
    /// The engine registers the tree's sockets with a reactor: a
    /// `TokioSpawner` (feature `tokio`) or `SmolSpawner` (feature `smol`)
    /// with its runtime's, any other spawner with the engine's default
    /// reactor (a thread per process that `poll(2)`s the fds tasks wait
    /// on). The spawner's type tells which: it is looked up with
    /// [`std::any::Any`], so a spawner that wraps a `TokioSpawner` counts
    /// as any other.
    ///
    /// # Errors
    ///
    /// As [`start_with`](Tree::start_with); [`Error::Unsupported`] on a
    /// system the engine does not support (it runs on Linux).
    ///
    /// # Examples
    ///
    /// A backend of your own, here on `futures`' executor and a
    /// thread-sleeping timer:
    ///
    /// ```no_run
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
    /// Tree::<Root<MyBackend>>::new().start()?;
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn run_processes<B, S: Spawner, T: Timer>(
        tree: Tree<Root<B>>,
        spawner: S,
        timer: T,
    ) -> Result<(), Error> {
        #[cfg(target_os = "linux")]
        {
            let any: &dyn std::any::Any = &spawner;
            #[cfg(feature = "tokio")]
            if let Some(tokio) = any.downcast_ref::<supertrees_tokio::TokioSpawner>() {
                return supertrees_engine::run(tree, tokio.clone(), timer);
            }
            #[cfg(feature = "smol")]
            if let Some(smol) = any.downcast_ref::<supertrees_smol::SmolSpawner>() {
                return supertrees_engine::run(tree, *smol, timer);
            }
            let _ = any;
            supertrees_engine::run(tree, supertrees_engine::DefaultReactor(spawner), timer)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (tree, spawner, timer);
            Err(Error::Unsupported)
        }
    }
}

/// Deterministic testing: [`run_simulated`](testing::run_simulated) runs a
/// tree in one thread on a [`FakeTimer`](testing::FakeTimer)'s virtual
/// time, where [`hang()`](testing::hang) scripts a worker that hangs its
/// worker host (for watchdog, drop and stop timelines).
pub mod testing {
    pub use supertrees_core::testing::{hang, run_simulated, FakeTimer};
}

/// The Tokio backend (feature `tokio`, on by default).
#[cfg(feature = "tokio")]
pub mod tokio {
    pub use supertrees_tokio::{Tokio, TokioSpawner, TokioTimer};
}

/// The smol backend (feature `smol`).
#[cfg(feature = "smol")]
pub mod smol {
    pub use supertrees_smol::{Smol, SmolSpawner, SmolTimer};
}

/// A supervision tree: the root supervisor, run in the calling process, and
/// everything below it.
///
/// Build it with chained calls (the methods of [`Tree`]), then
/// [`start`](Tree::start) it. Each call adds a child in order; that order is
/// the start order, and stops go in reverse.
///
/// This is the root [`Tree`] of the default backend: Tokio
/// ([`tokio::Tokio`]) with the default features, smol (`smol::Smol`) with
/// only `smol`. So `start()` runs on that backend, and
/// [`start_with`](Tree::start_with) on any other. Without either feature it
/// is the root tree of no backend ([`tree::Root`]`<`[`tree::Manual`]`>`),
/// which has only `start_with`.
///
/// On Tokio each worker host runs a current-thread runtime
/// (`TokioSpawner::new()`); for a multi-thread runtime per host, as
/// supertrees 0.1 built, use
/// `start_with(TokioSpawner::multi_thread(), TokioTimer::new())`.
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
#[cfg(feature = "tokio")]
pub type Supertree = Tree<tree::Root<tokio::Tokio>>;

/// A supervision tree: the root supervisor, run in the calling process, and
/// everything below it.
///
/// Build it with chained calls (the methods of [`Tree`]), then
/// [`start`](Tree::start) it on smol, the default backend when `smol` is
/// the only backend feature ([`smol::Smol`]); [`start_with`](Tree::start_with)
/// runs it on any other.
///
/// # Examples
///
/// ```no_run
/// use supertrees::{Restartable, Supertree, Worker};
///
/// struct Server;
/// impl Worker for Server {
///     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
///         Box::pin(async { /* accept connections... */ })
///     }
/// }
/// impl Restartable for Server {}
///
/// Supertree::new().add_worker(Server).start()?;
/// # Ok::<(), supertrees::Error>(())
/// ```
#[cfg(all(feature = "smol", not(feature = "tokio")))]
pub type Supertree = Tree<tree::Root<smol::Smol>>;

/// A supervision tree: the root supervisor, run in the calling process, and
/// everything below it.
///
/// Build it with chained calls (the methods of [`Tree`]). With neither
/// backend feature (`tokio`, `smol`) it is the root tree of no backend
/// ([`tree::Root`]`<`[`tree::Manual`]`>`): run it with
/// [`start_with`](Tree::start_with) and a [`Spawner`] and [`Timer`] of your
/// own, or with [`testing::run_simulated`].
///
/// # Examples
///
/// ```
/// use supertrees::testing::{run_simulated, FakeTimer};
/// use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
///
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
/// run_simulated(Supertree::new().add_worker(Job), FakeTimer::new())?;
/// # Ok::<(), supertrees::Error>(())
/// ```
#[cfg(not(any(feature = "tokio", feature = "smol")))]
pub type Supertree = Tree<tree::Root<tree::Manual>>;
