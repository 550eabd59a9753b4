//! # supertrees-core
//!
//! The runtime-agnostic core of [supertrees]: Erlang/OTP-style supervision
//! trees for async Rust, where every supervisor is its own forked process and
//! workers are async tasks.
//!
//! This crate holds everything that depends neither on an async runtime
//! nor on the operating system (no `nix`, `libc` or `std::os::unix`: it
//! builds wherever Rust's std does):
//!
//! * the tree model — [`Supertree`] and [`Supervisor`] (the two kinds of
//!   one builder, [`Tree`]), [`Worker`], [`Restartable`];
//! * the policies, as plain values with pure functions —
//!   [`RestartPolicy`], [`BackoffPolicy`], [`Strategy`], [`Intensity`],
//!   [`Shutdown`];
//! * the [`Spawner`] and [`Timer`] traits a backend implements;
//! * [`Runner`], the hook through which the fork-per-supervisor process
//!   engine (`supertrees-engine`, Linux, with the fd-registration seam
//!   `Register`/`IoSource`) runs a tree: [`Tree::start_with`];
//! * [`testing`]: a deterministic simulation on a fake clock, where
//!   [`testing::hang()`] scripts a worker that hangs its worker host.
//!
//! Most users depend on the `supertrees` facade instead, whose `Supertree`
//! is the same tree on the Tokio (default) or smol [`Backend`], so it has
//! [`start()`](Tree::start).
//!
//! ## Semantics in one place
//!
//! Each supervisor is driven by one sans-IO state machine: it takes child
//! exits and timer expiries with the time they happened and returns what to
//! start and stop. The simulation and the process engine drive the same
//! machine, so a timeline proven with [`testing::run_simulated`] holds in
//! real processes.
//!
//! * A worker's future returning is a **normal** exit; a panic (or the death
//!   of its worker host) is **abnormal**. A child the tree stopped on request
//!   exits [`ChildExit::Stopped`].
//! * **Restart**: [`RestartPolicy`] decides whether the child runs again;
//!   [`BackoffPolicy`] how long to wait (`min_delay * multiplier^(k-1)`, capped
//!   at `max_delay`, reset after a run of at least `reset_after`).
//! * **Failures of the engine itself**: a child whose process could not be
//!   forked (or a pipe made for it, [`ChildExit::ForkFailed`]) or set up
//!   before any of its code ran ([`ChildExit::SetupFailed`]: a worker
//!   host's runtime or threads did not start) is retried by its policies
//!   too, but never sooner than a floor delay, whatever its backoff: 10 ms
//!   after the first such failure in a row, doubling up to 1 s, and back to
//!   10 ms once the child runs. The floor is the machine's decision, so it
//!   shows in the [`EventKind::Exited`] restart delay. A machine out of
//!   processes or file descriptors never sees a busy loop; signals are
//!   handled meanwhile.
//! * **Strategy**: with [`Strategy::OneForAll`] and [`Strategy::RestForOne`]
//!   a restart also stops the affected siblings one at a time in reverse
//!   order, then starts the whole group in order after the failed child's
//!   backoff. Siblings stopped this way run again unless their policy forbids
//!   another run (`Never`, or `Once` already used). A child that is not
//!   restarted (e.g. `Never`) does not trigger its strategy.
//! * **Shutdown**: a worker asked to stop sees [`stopping()`] resolve, if
//!   its run called it (as an OTP process traps exits), and has its own
//!   [`Restartable::shutdown`] time (default 5 s) to return by itself
//!   (drain, flush); then its future is dropped ([`Shutdown::Kill`]: at
//!   once; [`Shutdown::Infinity`]: it is waited for). A worker that never
//!   called `stopping()` is dropped as soon as it is asked to stop. Either
//!   way its exit is [`ChildExit::Stopped`]. A worker that blocks its
//!   thread can not be dropped: its worker host is SIGKILLed if it has not
//!   ended 1 s after the drop (taking its other workers down). A
//!   supervisor's [`with_shutdown`](Tree::with_shutdown) bounds only its
//!   worker host's exit once its workers are done. A child supervisor is
//!   waited for as long as its
//!   stop takes ([`Shutdown::Infinity`], as in OTP): its own timeouts bound
//!   it, so a parent's timeout never races its child's and kills the child
//!   in the middle of its stop. In a shutdown, the workers of a supervisor
//!   stop together, still in reverse order; each child supervisor stops
//!   alone.
//! * **Intensity**: more than `max_restarts` restarts within `within` and the
//!   supervisor stops all children in reverse order and gives up; its parent
//!   sees a failed child ([`ChildExit::GaveUp`]) and, at the root, the tree
//!   ends with [`Error::IntensityExceeded`].
//! * **End of work**: a supervisor whose children have all finished for good
//!   exits normally and is never restarted, whatever its restart policy.
//! * **Readiness**: a worker is ready when its future is first polled, or,
//!   with [`Readiness::Notify`], when it calls [`ready()`]. A supervisor is
//!   ready once every child is ready (or done for good). Under `OneForAll`
//!   and `RestForOne` children start one at a time, each once the one before
//!   is ready, as OTP starts them; group restarts do the same. Under
//!   `OneForOne` they all start at once. A child that never becomes ready
//!   holds up its later siblings, unless its
//!   [`Restartable::start_timeout`] passes first: then it is dropped and
//!   fails with [`ChildExit::StartTimeout`], restarted by its policy and
//!   counted by the intensity.
//! * **Subtasks**: [`spawn()`] runs a future owned by the calling worker's
//!   current run, polled inside that run (on every backend and in the
//!   simulation): dropped when the run ends, a panic in it fails the
//!   worker, and [`ready()`]/[`stopping()`] work from it.
//! * **Failure reasons**: a worker's panic message (at most 256 bytes)
//!   travels to the root in its [`EventKind::Exited`] event
//!   (`root/0 (pid 7): panicked: boom-42; restarting after 10ms`) and shows
//!   in the [`TreeStatus`] as its last exit.
//!
//! ## Process model
//!
//! ```text
//!  your process ── root supervisor (the thread that called start)
//!   │   single-threaded poll loop: signal self-pipe, one channel per child
//!   │   process, event pipe, status socket, timers
//!   ├── worker host   (forked)  ── runtime built by Spawner::block_on
//!   │     tasks: worker 0, worker 2, ...      reader thread: its channel
//!   ├── supervisor root/1 (forked, single-threaded) ──events──▶ root
//!   │     ├── worker host (forked)
//!   │     └── supervisor root/1/1 (forked) ──events──▶ root ...
//!   └── supervisor root/3 (forked) ...
//! ```
//!
//! * **Who decides.** Every supervisor process drives one state machine —
//!   the same state machine the simulation drives — with everything that
//!   happens to its children. Restart, backoff, strategy, intensity, and
//!   every deadline of a supervisor are decided there and nowhere else:
//!   a stop's TERM→KILL (the child's [`Restartable::shutdown`]), a worker's
//!   start timeout, the grace of a dropped worker (its worker host is
//!   killed if it has not ended 1 s on), the worker host's exit once the
//!   supervisor ended (its [`with_shutdown`](Tree::with_shutdown), 5 s for
//!   [`Shutdown::Infinity`]), a cut channel's (the host is killed 100 ms
//!   on), and the watchdog's (below). The engine carries out the kills the
//!   machine decides, and tells it what it saw: an exit, a sign of life, a
//!   silent process the scheduler starves.
//! * **One channel per child.** Each child process talks to its supervisor
//!   over one channel (a pipe each way for a worker host, one up for a child
//!   supervisor), in one framing for everything: typed
//!   messages, serialized with postcard, length-prefixed behind a magic, so
//!   a reader skips (and logs) bytes that are not a frame. Lifecycle events
//!   use the same framing on their own pipe to the root. Exit codes carry no
//!   meaning: a worker that calls `std::process::exit(3)` kills its host with
//!   [`ChildExit::Exited(3)`](ChildExit::Exited), nothing else.
//! * **Workers.** A supervisor's workers are tasks in one forked *worker
//!   host*. The supervisor sends `Start`/`Stop` commands and the host answers
//!   with exactly one `Exited` per start (normal return, panic, or stopped),
//!   after the future was dropped, and with `WorkerReady`.
//! * **Restarts in place, on a lease.** Under `OneForOne`, where a worker's
//!   restart concerns it alone, a restart costs no round trip between
//!   processes: each `Start` carries the worker's restart record (restarts so
//!   far, place in its backoff sequence) as a lease, with a budget of
//!   restarts the intensity still allows. The host applies the machine's own
//!   rule to that record and hands the new record back with each `Restarted`
//!   note; the machine adopts it and counts the restart. When the rule says
//!   "not again" or the budget is spent, the host reports the exit and the
//!   machine decides on the same state. So after four in-place restarts with
//!   backoff 20 ms ×2 (20, 40, 80, 160 ms), a SIGKILL of the host is the
//!   fifth consecutive failure and the worker comes back after 320 ms. A
//!   host that dies (SIGKILL, OOM) is a failure of each worker it was
//!   running; its event says how many it took down and when they return.
//! * **Supervisors.** Every child supervisor is a forked, single-threaded
//!   process: runtimes only ever exist in worker hosts, so every `fork`
//!   happens in a single-threaded process. Before it exits, a supervisor
//!   tells its parent how it ended (work done, gave up, or stopped by a
//!   signal). Its parent reports any exit of a child it asked to stop as
//!   [`ChildExit::Stopped`]; a SIGTERM from anyone else makes the
//!   supervisor a failed child, restarted by policy.
//! * **Failures travel up**: the parent reaps the child (SIGCHLD self-pipe,
//!   `waitpid` on its own pids only, so the root never steals your other
//!   children, unless it is PID 1: see below), reads what the child said
//!   on its channel, and feeds the exit to its machine.
//! * **When the engine itself fails** — `fork` or a pipe fails (`EAGAIN`
//!   under a process limit, `EMFILE`), a worker host's runtime or threads
//!   do not start (`Spawner::block_on` panics), a forked process can not
//!   install its signal handling — the child is failed with
//!   [`ChildExit::ForkFailed`] or [`ChildExit::SetupFailed`] (a forked
//!   process says so on its channel before it exits; its exit code is not
//!   read), and the machine retries it after at least its floor delay.
//!   Every turn of a supervisor's loop goes through its wait, which handles
//!   signals, whatever failed; and such failures are logged once, then in
//!   one summary line per second per supervisor with their count.
//! * **Stops travel down** as signals and commands: a supervisor stops a
//!   child supervisor with SIGTERM and waits for it (that child applies its
//!   own [`Shutdown`] timeout to its workers, so its stop is bounded); a
//!   worker with a `Stop` command (its `stopping()` resolves, or it is
//!   dropped at once), then, at its `shutdown()` deadline, a `Drop`
//!   command; a worker that is still not gone 1 s later (it blocks its
//!   thread) with a SIGKILL of its host.
//!   Children stop in reverse start order. SIGTERM, SIGINT, SIGHUP or
//!   SIGQUIT at the root stops the whole tree that way and `start` returns
//!   `Ok(())` (the root removes its status socket). Forked processes ignore
//!   SIGINT, SIGHUP and SIGQUIT, which a terminal sends to its whole
//!   process group (`Ctrl-C`, `Ctrl-\`, a hangup): the tree then stops in
//!   order through its root instead of every process dying at once. A
//!   forked supervisor stops on SIGTERM alone.
//! * **Nothing is orphaned.** Each forked process asks for SIGKILL when its
//!   parent dies (`PR_SET_PDEATHSIG`, checked against a parent that died
//!   first), so killing any supervisor, even the root with SIGKILL, takes
//!   its whole subtree with it. Forked processes end with `_exit`: they never
//!   return into your `main`, and never run its destructors or `atexit`
//!   handlers. Forked supervisors are subreapers (`PR_SET_CHILD_SUBREAPER`),
//!   so the orphans of a killed child supervisor are reaped by their
//!   grandparent instead of init; the root, which is your process, only
//!   waits for its own children's pids. A root that is PID 1 (the init of
//!   a container or PID namespace) is where every orphan of the namespace
//!   goes, e.g. the worker host of a child supervisor killed with SIGKILL:
//!   it reaps every child that exits, as init must (tini does the same),
//!   and feeds its own children's exits to its machine by pid. There, a
//!   child your program forked itself before `start` is reaped too.
//! * **What workers start ends with their host.** A worker host leads a
//!   process group of its own, and its supervisor SIGKILLs the whole group
//!   when the host ends, whether it was killed or stopped in order: a
//!   `std::process::Command` a worker spawned does not outlive it. (A
//!   process that leaves the group, e.g. with `setsid`, is on its own; and
//!   when a supervisor itself is SIGKILLed, its host dies with it but what
//!   the host's workers started is not killed: containing that needs a
//!   cgroup.) Since hosts are background process groups of the terminal's
//!   session, a worker that reads the terminal is stopped by `SIGTTIN`.
//! * **Readiness travels up** as notes on the same channels: a host reports
//!   `WorkerReady` for its workers, a child supervisor `Ready` once all its
//!   children are ready.
//!
//! ## Events, status and systemd
//!
//! With [`Supertree::on_event`] or [`Supertree::status_socket`], the root
//! creates one pipe before it forks anything, and every supervisor writes an
//! [`Event`] to it for each start, readiness, exit (with the restart
//! decision) and shutdown of its children, with their paths (`root/1/0`) and
//! pids. Writes never block: each message is smaller than `PIPE_BUF` (so
//! atomic), and the pipe is non-blocking. When it is full, a supervisor
//! keeps the latest event of each kind about each node and sends them, in
//! order, once there is room (its loop tries again every 10 ms, whether or
//! not it has anything new to say), after the count of the events it
//! dropped ([`EventKind::Dropped`]): what reaches the root is the current
//! state, not the whole history.
//!
//! The root folds every event into a [`TreeStatus`] (pid, state, restart
//! count, last exit, uptime of every node) as soon as it reads it. Folding
//! is cheap, so the root empties the pipe quickly (up to 256 KiB of events
//! per turn of its loop) and the status stays current under a flood; it
//! counts the events it missed. The status is printed as an indented tree
//! and served on the status socket (`supertrees::query_status` reads it).
//!
//! The callbacks are the user's code and may be slow, yet they never hold
//! the root's loop (which stays single-threaded: it forks). Events wait for
//! `on_event` in a queue of at most 16 384, the oldest dropped first (the
//! callback then gets an [`EventKind::Dropped`] with the count before its
//! next event), and each turn of the loop makes callbacks for at most 5 ms,
//! and at least one call. Between turns the root handles signals, its
//! children's exits, status requests and watchdog pings, so a slow callback
//! delays them by at most one call. When the tree ends, the newest 64
//! waiting events are still delivered, for at most 1 s.
//!
//! When `NOTIFY_SOCKET` is set the root speaks systemd's notify protocol:
//! `READY=1` once the whole tree is ready, `STOPPING=1` when it shuts down
//! (or has no work left), and `WATCHDOG=1` every half `WATCHDOG_USEC` (but
//! not more often than every 10 ms) while its loop runs.
//!
//! ## Messages and children started at run time
//!
//! Named mailboxes ([`Tree::with_mailbox`], [`mailbox()`], [`inbox()`]) and
//! dynamic children ([`Tree::add_dynamic`], [`start_child()`],
//! [`terminate_child()`]) are described in [`message`]. In the process
//! engine, the root opens Unix datagram socket pairs for each declared name
//! (one per user the tree runs as) before it forks anything, and every
//! process keeps only what its role needs: the sending ends of its own
//! user's, and the receiving ends where it serves them (the supervisor
//! that declared the name, and those above it, hold them too, so a mailbox
//! outlives every restart of its server). A subtree that runs as another
//! user ([`Tree::with_user`]) holds nothing through which it could read,
//! redirect or shut down another subtree's messages. A worker sends straight to
//! the socket; a call passes its own reply socket along; a request about
//! dynamic children goes straight to the supervisor process that declared
//! the template, whose machine decides, and whose worker host builds the
//! child from the template and its encoded argument (sent over the host's
//! channel). Waiting on these sockets is the runtime's business:
//! `supertrees-engine`'s `Register` hands a socket to the backend's reactor.
//!
//! ## Containment and listening sockets
//!
//! What the root makes for the whole tree before it forks anything, every
//! process inherits: the sockets of mailboxes and templates, the listening
//! sockets of [`Tree::with_listener`] (see [`listen`]), and the cgroups of
//! the subtrees limited with [`Tree::with_limits`] (see [`Limits`]; a
//! limit that no cgroup can enforce here and no rlimit enforces for the
//! subtree alone makes `start()` fail with [`Error::UnenforceableLimit`]).
//! A limited supervisor enters its cgroup and sets its rlimits right after
//! its fork, then switches to its [`Tree::with_user`] user, before anything
//! of its subtree runs. The cgroups' files stay root's: one below another
//! user's supervisor enters its cgroup through a descriptor of its leaf's
//! `cgroup.procs` that the root opened (the kernel checks the opener's
//! credentials, since Linux 5.16), held only by the supervisors on the way
//! down to it, so no worker can move a process into another cgroup. A Unix listener's socket goes only in a directory
//! no other user can change ([`Listen::unix`]). With [`Tree::with_watchdog`], a worker host shows
//! life from a task on its executor and a supervisor from its loop; a
//! process silent for a period is killed and reported as
//! [`ChildExit::Hung`], unless it was starved: once a process has been
//! silent for half a period, its supervisor reads what the scheduler did
//! with the threads that answer for it (those its signs of life came
//! from: `/proc/<pid>/task/<tid>/schedstat` and `stat`), and at the
//! deadline judges the window between. One of them runnable (waiting for
//! a CPU: a CPU quota, a saturated machine) after less than a twentieth of
//! the period on a CPU: starved, and its deadline moves on half a period
//! at a time, judged again each time over the grown window. Otherwise
//! (stopped, asleep: blocked, deadlocked; or silent after that much CPU: a
//! busy loop, under a quota too): hung. Other threads of the process (a
//! worker's background thread) count for nothing. Nothing is read while
//! processes show life in time. When a process must show life, and what
//! follows when it has not, is the state machine's (the engine reads the
//! scheduler and tells it "starved"), so [`testing::run_simulated`] keeps
//! watchdogs too: a worker that awaits [`testing::hang()`] hangs its
//! simulated worker host, which is killed at its deadline on virtual time.
//!
//! [supertrees]: https://docs.rs/supertrees
//!
//! ## Example
//!
//! ```
//! use std::time::Duration;
//! use supertrees_core::testing::{run_simulated, FakeTimer};
//! use supertrees_core::{RestartPolicy, Restartable, Supertree, Worker};
//!
//! struct Job;
//! impl Worker for Job {
//!     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
//!         Box::pin(async { println!("job ran") })
//!     }
//! }
//! impl Restartable for Job {
//!     fn restart_policy(&self) -> RestartPolicy {
//!         RestartPolicy::Never
//!     }
//! }
//!
//! let tree = Supertree::new().add_supervisor(|s| s.add_worker(Job).add_worker(Job));
//! run_simulated(tree, FakeTimer::new())?;
//! # Ok::<(), supertrees_core::Error>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod child_id;
mod error;
mod event;
mod exit;
pub mod listen;
pub mod message;
mod policy;
mod rt;
mod status;
pub mod tree;
mod worker;

// The seam of `supertrees-engine`, the Linux process engine: the internals
// it builds on, public for it alone. Not part of the API; hidden from the
// docs, and they may change in any release.
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod codec;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod control;
pub mod figures;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod lease;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod limits;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod machine;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod observe;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod path;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod port;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod ready;
#[doc(hidden)]
#[allow(rustdoc::private_intra_doc_links)]
pub mod wire;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod testing;

// Tests above the modules they test: the machine and the leases against
// a model of the documented rules, and machines built from trees.
#[cfg(test)]
mod model;
#[cfg(test)]
mod props;

pub use child_id::ChildId;
pub use error::Error;
pub use event::{Event, EventKind, NodeKind};
pub use exit::ChildExit;
pub use limits::Limits;
pub use listen::Listen;
pub use message::{inbox, mailbox, start_child, terminate_child, Envelope, Inbox, Mailbox};
pub use policy::{BackoffPolicy, Intensity, RestartPolicy, Shutdown, Strategy};
pub use port::MAX_MESSAGE;
pub use ready::{ready, spawn, stopping};
pub use rt::{BoxFuture, Spawner, Timer};
pub use status::{NodeState, NodeStatus, Resources, TreeStatus};
pub use tree::{Backend, Runner, Supertree, Supervisor, Tree};
pub use worker::{Readiness, Restartable, Worker};
