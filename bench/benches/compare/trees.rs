//! The trees under test: the tree code of `scenario.rs`, compiled against
//! each crate, and forking a process that runs one.

use crate::procs::{Child, Failure};
use crate::shm::Shared;
use crate::Crate;

/// The scenario code, compiled against this workspace's crate.
mod ours {
    use supertrees as st;

    fn start_tree(tree: st::Supertree) -> Result<(), String> {
        tree.start().map_err(|err| err.to_string())
    }

    include!("scenario.rs");

    /// `host_kill`: a root with 10 workers that never finish, restarted at
    /// once.
    pub fn host_kill_tree(shm: &'static Shared) -> st::Supertree {
        (0..10).fold(st::Supertree::new(), |tree, _| {
            tree.add_worker(Probe::new(
                shm,
                Behavior::Pend,
                st::BackoffPolicy::immediate(),
            ))
        })
    }

    /// `panic_restart`: one worker that panics at once, restarted at once.
    pub fn panic_tree(shm: &'static Shared) -> st::Supertree {
        st::Supertree::new().add_worker(Probe::new(
            shm,
            Behavior::Panic,
            st::BackoffPolicy::immediate(),
        ))
    }
}

/// The same scenario code, compiled against supertrees 0.1.2.
mod seed {
    use seed as st;

    fn start_tree(tree: st::Supertree) -> Result<(), String> {
        // The seed's start() returns nothing, and also returns in the forked
        // children of the tree; the caller `_exit`s right after.
        tree.start();
        Ok(())
    }

    include!("scenario.rs");
}

#[derive(Debug, Clone, Copy)]
pub enum Tree {
    RestartRate,
    Supervisors(usize),
    HostKill,
    PanicRestart,
}

/// Forks the process that runs `tree` of `krate` as its root.
pub fn spawn_tree(krate: Crate, shm: &'static Shared, tree: Tree) -> Result<Child, Failure> {
    Child::spawn(move || match (krate, tree) {
        (Crate::Ours, Tree::RestartRate) => ours::run(shm, ours::restart_rate_tree(shm)),
        (Crate::Seed, Tree::RestartRate) => seed::run(shm, seed::restart_rate_tree(shm)),
        (Crate::Ours, Tree::Supervisors(n)) => ours::run(shm, ours::supervisors_tree(shm, n)),
        (Crate::Seed, Tree::Supervisors(n)) => seed::run(shm, seed::supervisors_tree(shm, n)),
        (Crate::Ours, Tree::HostKill) => ours::run(shm, ours::host_kill_tree(shm)),
        (Crate::Ours, Tree::PanicRestart) => {
            std::panic::set_hook(Box::new(|_| {}));
            ours::run(shm, ours::panic_tree(shm))
        }
        (Crate::Seed, Tree::HostKill | Tree::PanicRestart) => 2,
    })
}
