//! The fork-per-supervisor process engine.
//!
//! The process model is described in the crate docs (`## Process model`),
//! which is what this module implements.

mod cgroup;
mod channel;
mod containment;
mod events;
mod host;
mod listeners;
mod node;
mod outlet;
pub(crate) mod ratelimit;
mod root;
mod status_socket;
#[allow(unsafe_code)]
pub(crate) mod sys;
mod systemd;
mod trusted_dir;

/// The engine's parsers, for the fuzz targets (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz {
    pub(crate) use super::cgroup::fuzz_parsers as cgroup_parsers;
    pub(crate) use super::status_socket::fuzz_request as status_request;
}

use std::sync::Arc;

use crate::machine::Outcome;
use crate::message::{Declared, Directory};
use crate::tree::TreeParts;
use crate::{Error, Spawner, Timer};
use containment::Containment;
use listeners::Listeners;
use node::Node;
use outlet::Outlet;
use root::Events;
pub(crate) use status_socket::query as query_status;
use sys::SignalPipe;

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

/// Runs `tree` in this process as the root supervisor; see the module docs.
pub(crate) fn run<S: Spawner, T: Timer>(
    mut tree: TreeParts,
    spawner: S,
    timer: T,
) -> Result<(), Error> {
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
    tree.root.check("root", true)?;
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
        let directory = Arc::new(Directory::open(Declared::collect(&tree.root)?, &users)?);
        let signals = SignalPipe::install(&sys::SUPERVISOR_SIGNALS).map_err(|errno| Error::Os {
            context: "installing the root supervisor's signal handlers",
            source: errno.into(),
        })?;
        let root = Events::new(std::mem::take(&mut tree.observers), timer.now())?;
        Ok((listeners, directory, signals, root))
    })();
    // What failed ends `start()` with the cgroups made for it removed.
    let (_listeners, directory, signals, root) = made.inspect_err(|_| containment.remove())?;
    let mut node = Node::new(
        &mut tree.root,
        "root".to_owned(),
        spawner,
        timer,
        signals,
        Outlet::Events(Box::new(root.with_usage(containment.clone()))),
        Shared {
            directory,
            containment: containment.clone(),
            ids: ChildIds::root(),
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
        Outcome::GaveUp => Err(Error::IntensityExceeded {
            path: "root".to_owned(),
            max_restarts: intensity.max_restarts().unwrap_or(u32::MAX),
            within: intensity.within().unwrap_or_default(),
        }),
    }
}
