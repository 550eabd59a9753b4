//! The fork-per-supervisor process engine.
//!
//! # Process model
//!
//! ```text
//!  your process ── root supervisor (the thread that called start)
//!   │   single-threaded poll loop: signal self-pipe, host event pipe, timers
//!   ├── worker host   (forked)  ── runtime built by Spawner::block_on
//!   │     tasks: worker 0, worker 2, ...      reader thread: command pipe
//!   ├── supervisor root/1 (forked, single-threaded)
//!   │     ├── worker host (forked)
//!   │     └── supervisor root/1/1 (forked) ...
//!   └── supervisor root/3 (forked) ...
//! ```
//!
//! * **Who decides.** Every supervisor process drives one
//!   [`Machine`](crate::machine) — the same state machine the simulation
//!   drives — with the exits of its children. Restart, backoff, strategy and
//!   intensity are decided there and nowhere else.
//! * **Workers.** A supervisor's workers are tasks in one forked *worker
//!   host*. The host owns no policy: the supervisor sends `Start(n)`/`Stop(n)`
//!   over a pipe and the host answers with exactly one `Exited(n, how)` per
//!   start (normal return, panic, or stopped), after the future was dropped.
//!   A host that dies (SIGKILL, OOM) is a failure of each worker it was
//!   running.
//! * **Supervisors.** Every child supervisor is a forked, single-threaded
//!   process: runtimes only ever exist in worker hosts, so every `fork`
//!   happens in a single-threaded process. A supervisor exits 0 when its work
//!   is done, [`EXIT_GAVE_UP`](sys::EXIT_GAVE_UP) when its intensity was
//!   exceeded, and 128+signal after a stop it did not get from its parent.
//! * **Failures travel up** as exit statuses: the parent reaps the child
//!   (SIGCHLD self-pipe, `waitpid` on its own pids only, so the root never
//!   steals your other children) and feeds the exit to its machine.
//! * **Stops travel down** as signals: a supervisor stops a child process
//!   with SIGTERM and, after its [`Shutdown`](crate::Shutdown) timeout,
//!   SIGKILL; children stop one at a time in reverse start order. SIGTERM or
//!   SIGINT at the root stops the whole tree that way and `start` returns
//!   `Ok(())`. Forked processes ignore SIGINT, so Ctrl-C in a terminal stops
//!   the tree in order instead of killing every process at once.
//! * **Nothing is orphaned.** Each forked process asks for SIGKILL when its
//!   parent dies (`PR_SET_PDEATHSIG`, checked against a parent that died
//!   first), so killing any supervisor, even the root with SIGKILL, takes
//!   its whole subtree with it. Forked processes end with `_exit`: they never
//!   return into your `main`, and never run its destructors or `atexit`
//!   handlers.

mod host;
mod node;
#[allow(unsafe_code)]
pub(crate) mod sys;
mod wire;

use crate::machine::Outcome;
use crate::{Error, Spawner, Supertree, Timer};
use node::Node;
use sys::SignalPipe;

/// Runs `tree` in this process as the root supervisor; see the module docs.
pub(crate) fn run<S: Spawner, T: Timer>(mut tree: Supertree, spawner: S, timer: T) -> Result<(), Error> {
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
    let signals = SignalPipe::install(&sys::SUPERVISOR_SIGNALS).map_err(|errno| Error::Os {
        context: "installing the root supervisor's signal handlers",
        source: errno.into(),
    })?;
    let node = Node::new(&mut tree.root, "root".to_owned(), spawner, timer, signals);
    let intensity = node.intensity();
    let ending = node.run();
    match ending.outcome {
        Outcome::Normal => Ok(()),
        Outcome::GaveUp => Err(Error::IntensityExceeded {
            path: "root".to_owned(),
            max_restarts: intensity.max_restarts().unwrap_or(u32::MAX),
            within: intensity.within().unwrap_or_default(),
        }),
    }
}
