//! # supertrees-engine
//!
//! The Linux process engine of [supertrees]: every supervisor a forked
//! process, every supervisor's workers tasks of one forked worker host, and
//! around them the channels, mailbox and listener sockets, cgroups, status
//! socket and systemd notifications of a running tree. The tree, its
//! policies and the state machine that decides every restart are
//! `supertrees-core`'s, portable; this crate drives that machine with what
//! happens to real processes. The process model is described in the crate
//! docs of `supertrees-core` (`## Process model`), which is what this
//! crate implements.
//!
//! Most users depend on the `supertrees` facade, whose `start()` and
//! `start_with` come here ([`run`]). Off Linux this crate is empty, and
//! the facade's `start()` returns `Error::Unsupported`.
//!
//! ## Module map
//!
//! One place per process role, then what passes between processes, then
//! the OS pieces every role builds on. Each row depends only on rows below
//! it (`tests/layers.rs` checks there is no loop).
//!
//! | file | what it holds |
//! |---|---|
//! | `lib.rs` | [`run`]: the root supervisor of a tree, assembled (`run_parts`); what the root makes before it forks (`Shared`, `ChildIds`); [`query_status`] |
//! | **supervisor** | |
//! | `supervisor/mod.rs` | one supervisor process's poll loop (`Node`): its machine, its signals, its deadlines, the actions it carries out; it owns the parts below and handles what they return (a child supervisor's exit, the worker host's end) |
//! | `supervisor/children.rs` | its child supervisors' processes (`ChildProcs`): their channels, signals, watchdog, exits; and their fork (`Node::start_supervisor`) |
//! | `supervisor/host_link.rs` | its link to its worker host (`HostLink`): its channel, its notes, the workers it runs, its end; and its fork (`Node::launch_host`) |
//! | `supervisor/dynamic.rs` | children started at run time (`Dynamic`): the start requests of the tree's workers, and their answers |
//! | `supervisor/report.rs` | what it tells the world (`Reporter`): the lifecycle events it reports, its readiness to its parent; its children's paths (`View`) |
//! | `supervisor/watch.rs` | the watchdog: a late heartbeat judged against `/proc` (starved or hung) |
//! | `supervisor/outlet.rs`, `supervisor/events.rs` | where its events go (`Outlet`): nowhere, or to the part of its loop that deals with them (`Events`): the root's own (`root/`), or the relay up the event pipe (`relay.rs`) |
//! | **worker host** | |
//! | `host.rs` | the worker host: a supervisor's workers as tasks on the user's runtime |
//! | **root** | |
//! | `root/mod.rs` | what only the root does besides supervising (`Main`): the tree's events into its status, the user's callbacks, the status server and systemd in its loop |
//! | `root/status_socket/` | the status socket: its server, its directory, the client behind [`query_status`], and the operator's [`Client`] (`control_client.rs`) |
//! | `root/systemd.rs` | socket activation and `sd_notify` |
//! | `root/listeners.rs` | the tree's listeners, bound by the root before anything is forked; their socket files removed at the end |
//! | **forked supervisors' events** | |
//! | `relay.rs` | the event pipe from every forked supervisor up to the root: a forked supervisor's end (`Relay`, `EventSink`: events that find it full wait, latest state kept), its messages, the root's `Decoder` |
//! | **between processes** | |
//! | `channel.rs` | the framed pipes between a supervisor and each child process |
//! | `directory.rs`, `socket.rs`, `socket/` | mailboxes' socket pairs and their transport (the `port` seam's socket services) |
//! | `listen.rs`, `listen/` | listeners kept per process, handed out ([`tcp_listener`], [`unix_listener`]), stopped with the tree |
//! | **OS pieces** | |
//! | `os/sys.rs`, `os/sys/` | fork, signals, the self-pipe, shared memory words, the abort mark |
//! | `os/containment.rs`, `os/cgroup/` | limited subtrees: cgroups and rlimits, out-of-memory watch |
//! | `os/trusted_dir.rs` | the checks of a socket's directory (status socket, Unix listeners) |
//! | `os/ratelimit.rs` | one log line per period for repeated failures |
//! | `io.rs`, `io/` | the fd-registration seam, public: [`Register`], [`IoSource`], [`Interest`]; the default reactor ([`DefaultReactor`], `io/reactor.rs`); [`check_register`], a conformance check of a [`Register`] (`io/check.rs`) |
//! | **tests** | |
//! | `testing.rs` | helpers of the engine's own tests |
//! | `fuzzing.rs` | the parsers' entry points for `fuzz/` (feature `fuzzing`) |
//!
//! [supertrees]: https://docs.rs/supertrees
#![cfg(target_os = "linux")]
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod channel;
mod directory;
mod host;
mod io;
mod listen;
mod os;
mod relay;
mod root;
#[allow(unsafe_code)]
mod socket;
mod spans;
mod supervisor;
#[cfg(test)]
mod testing;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

/// The engine's parsers, for the fuzz targets (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz {
    pub(crate) use super::os::cgroup::fuzz_parsers as cgroup_parsers;
    pub(crate) use super::root::status_socket::fuzz_request as status_request;
}

// The core's internals the engine builds on (its seam), named as they were
// when the engine was a module of the core.
#[cfg(test)]
use supertrees_core::Supertree;
use supertrees_core::{
    control, lease, limits, machine, message, observe, path, port, ready, tree, wire,
};
use supertrees_core::{
    ChildExit, ChildId, Error, Event, EventKind, Limits, Listen, NodeKind, Timer,
};

pub use io::{check_register, DefaultReactor, Interest, IoSource, Register};
pub use listen::{tcp_listener, unix_listener};
pub use root::status_socket::{Client, ClientError, Watch, COMMAND_TIMEOUT, STATUS_TIMEOUT};

/// What the engine needs of an executor: to run futures
/// ([`supertrees_core::Spawner`]) and to register fds with its reactor
/// ([`Register`]).
pub(crate) trait Spawner: supertrees_core::Spawner + Register {}
impl<S: supertrees_core::Spawner + Register> Spawner for S {}

use std::sync::Arc;

use std::path::Path;
use std::time::Duration;

use crate::directory::Directory;
use crate::machine::Outcome;
use crate::message::Declared;
use crate::tree::{Root, Tree, TreeParts};
use os::containment::Containment;
use os::sys::{self, SignalPipe};
use root::listeners::Listeners;
use supervisor::{Events, Node, Outlet};

/// What the root makes for the whole tree before it forks anything, so
/// that every process of the tree inherits it (each child keeps what its
/// role needs: see [`Directory::for_child`]).
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// The mailboxes and templates, with their sockets.
    pub(crate) directory: Arc<Directory>,
    /// The limited subtrees, with their cgroups.
    pub(crate) containment: Arc<Containment>,
    /// Where the ids of a supervisor's children started at run time begin
    /// (see [`ChildIds`]).
    pub(crate) ids: ChildIds,
}

/// Where each incarnation of a supervisor numbers its children started at
/// run time from, so that a [`ChildId`](crate::ChildId) is never reused in
/// the tree's life, restarts of the supervisor included, without the
/// incarnations telling each other anything.
///
/// The first incarnation of a supervisor (the root's, or one forked for the
/// first time by a first incarnation of its parent) numbers them from 1.
/// Any later one numbers them from the nanoseconds that passed since the
/// root started ([`std::time::Instant`] is the same monotonic clock in
/// every process), read when its parent forks it: each earlier
/// incarnation of it ended before that, and handed out fewer ids than
/// nanoseconds passed while it ran, so every id it gave is below.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildIds {
    /// When the root started.
    pub(crate) epoch: std::time::Instant,
    /// The first id of this incarnation.
    pub(crate) first: u64,
}

impl ChildIds {
    /// The ids of the root, which runs once.
    fn root() -> Self {
        Self {
            epoch: std::time::Instant::now(),
            first: 1,
        }
    }

    /// The ids of a child supervisor forked now, for the first time in this
    /// incarnation (`again`: not) of this supervisor.
    pub(crate) fn for_child(self, again: bool) -> Self {
        let first = if self.first == 1 && !again {
            1
        } else {
            let nanos = self.epoch.elapsed().as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX / 2).max(2)
        };
        Self { first, ..self }
    }
}

/// Runs `tree` in this process as the root supervisor, with its worker
/// hosts on `spawner` (and its fds on the reactor of `spawner`'s
/// [`Register`]) and every supervisor's time on `timer`, and returns when
/// the tree ends: what `start_with` does, documented there
/// (`supertrees_core::Tree::start_with`). A backend's `Runner` calls it;
/// wrap a spawner that has no [`Register`] of its own in
/// [`DefaultReactor`].
///
/// # Errors
///
/// As `start_with`: [`Error::InsideRuntime`], [`Error::IntensityExceeded`],
/// [`Error::Os`], and the errors of a tree that can not start (limits,
/// users, names, listeners, the status socket).
pub fn run<B, S, T>(tree: Tree<Root<B>>, spawner: S, timer: T) -> Result<(), Error>
where
    S: supertrees_core::Spawner + Register,
    T: Timer,
{
    run_parts(TreeParts::from(tree), spawner, timer)
}

/// [`run`] with `spawner`'s own reactor if it is an `R` (a backend's
/// spawner, which registers fds with its runtime), else with the engine's
/// default reactor ([`DefaultReactor`]): what a backend's `Runner` does
/// with the spawner `start_with` was given, which is known only as a
/// `Spawner`. A spawner that wraps an `R` counts as any other.
///
/// # Errors
///
/// As [`run`].
///
/// # Examples
///
/// A backend's runner (here with the default reactor for every spawner
/// but `DefaultReactor<MySpawner>` itself):
///
/// ```no_run
/// use supertrees_core::tree::Root;
/// use supertrees_core::{BoxFuture, Error, Runner, Spawner, Timer, Tree};
/// use supertrees_engine::DefaultReactor;
///
/// #[derive(Clone)]
/// struct MySpawner;
/// impl Spawner for MySpawner {
///     fn block_on(&self, fut: BoxFuture) {
///         futures::executor::block_on(fut)
///     }
///     fn spawn(&self, fut: BoxFuture) {
///         std::thread::spawn(move || futures::executor::block_on(fut));
///     }
/// }
///
/// enum Mine {}
/// impl Runner for Mine {
///     fn run<S: Spawner, T: Timer>(tree: Tree<Root<Self>>, spawner: S, timer: T) -> Result<(), Error> {
///         supertrees_engine::run_preferring::<DefaultReactor<MySpawner>, _, _, _>(tree, spawner, timer)
///     }
/// }
/// ```
pub fn run_preferring<R, B, S, T>(tree: Tree<Root<B>>, spawner: S, timer: T) -> Result<(), Error>
where
    R: supertrees_core::Spawner + Register,
    S: supertrees_core::Spawner,
    T: Timer,
{
    match (&spawner as &dyn std::any::Any).downcast_ref::<R>() {
        Some(own) => run(tree, own.clone(), timer),
        None => run(tree, DefaultReactor(spawner), timer),
    }
}

/// Asks the tree whose root serves `path` (see `status_socket` on the
/// root tree) for its status, as the indented text of
/// `supertrees_core::TreeStatus`. Gives up after 5 s.
///
/// # Errors
///
/// [`Error::Os`] with a message that names `path`: no socket there, nothing
/// serving it, a socket of another user, a timeout, or an error line from
/// the root.
///
/// # Examples
///
/// ```no_run
/// let text = supertrees_engine::query_status("/run/user/1000/my-service/status.sock")?;
/// print!("{text}");
/// # Ok::<(), supertrees_core::Error>(())
/// ```
pub fn query_status(path: impl AsRef<Path>) -> Result<String, Error> {
    root::status_socket::query(path.as_ref(), Duration::from_secs(5))
        .map_err(|source| Error::os("asking the status socket", source))
}

/// [`run`], on the tree taken apart.
fn run_parts<S: Spawner, T: Timer>(mut tree: TreeParts, spawner: S, timer: T) -> Result<(), Error> {
    if spawner.is_inside_runtime() {
        return Err(Error::InsideRuntime);
    }
    let threads = sys::thread_count();
    if threads > 1 {
        tracing::warn!(
            threads,
            "starting a supervision tree in a multi-threaded process: fork copies only the calling \
             thread, so locks held by the others stay locked in every child; start the tree from \
             a single-threaded fn main"
        );
    }
    let me = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    tree.root
        .check("root", Some((me, sys::may_switch_users())))?;
    // The limited subtrees' cgroups, made first: a limit nothing can
    // enforce ends `start()` here, before anything is bound or forked.
    let containment = Arc::new(Containment::new(&tree.root)?);
    let made = (|| {
        // Bound before anything is forked (each process keeps those its
        // subtree sees), and a bind that fails ends `start()` here.
        let listeners = Listeners::bind(&tree.root)?;
        // Every mailbox and template, made before anything is forked: a
        // queue per name for each user the tree runs as (see `Directory`).
        let users = tree.root.users(nix::unistd::geteuid().as_raw());
        let tallies = tree.observers.keep_figures();
        let directory = Arc::new(Directory::open(
            Declared::collect(&tree.root)?,
            &users,
            tallies,
        )?);
        let signals = SignalPipe::install(&sys::SUPERVISOR_SIGNALS).map_err(|errno| {
            Error::os(
                "installing the root supervisor's signal handlers",
                errno.into(),
            )
        })?;
        let root = Events::new(std::mem::take(&mut tree.observers), timer.now())?;
        Ok((listeners, directory, signals, root))
    })();
    // What failed ends `start()` with the cgroups made for it removed.
    let (_listeners, directory, signals, root) = made.inspect_err(|_| containment.remove())?;
    let ids = ChildIds::root();
    let machine = tree.root.machine("root".to_owned(), ids.first, None);
    let mut node = Node::new(
        &mut tree.root,
        machine,
        spawner,
        timer,
        signals,
        Outlet::Events(Box::new(
            root.with_readings(containment.clone(), directory.clone()),
        )),
        Shared {
            directory,
            containment: containment.clone(),
            ids,
        },
    );
    if sys::is_pid_one() {
        tracing::info!("running as PID 1: reaping every orphan of the PID namespace");
        node = node.init_process();
    }
    let intensity = node.intensity();
    let ending = node.run();
    containment.remove();
    match ending.outcome {
        Outcome::Normal => Ok(()),
        Outcome::GaveUp => Err(Error::intensity_exceeded(
            "root".to_owned(),
            intensity.max_restarts().unwrap_or(u32::MAX),
            intensity.within().unwrap_or_default(),
        )),
    }
}
