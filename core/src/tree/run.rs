//! The seam between a root tree and what runs it: [`Runner`], and
//! [`Backend`], a spawner and timer known by type.

use super::{Root, Tree};
use crate::{Error, Spawner, Timer};

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
