//! The worker host: a forked process that runs one supervisor's workers as
//! tasks on the user's [`Spawner`], started and stopped by commands from the
//! supervisor over its channel.
//!
//! It starts a worker when told and reports exactly one [`Note::Exited`] per
//! start (after the worker's future has been dropped). A worker started with
//! a lease is restarted in place while the lease allows ([`crate::lease`]),
//! with a [`Note::Restarted`] for each restart. [`Command::Stop`] asks a
//! worker to stop: a run that called [`stopping()`](crate::stopping()) sees
//! it and may return by itself; any other is dropped at once.
//! [`Command::Drop`] drops a worker's future (the deadline is its
//! supervisor's machine's). On [`Command::Shutdown`] the host asks every
//! worker to stop in reverse order, keeps carrying out `Drop`s, and exits
//! once every worker ended; a SIGTERM from anyone else, or the loss of its
//! supervisor, drops every worker's future in reverse order at once
//! (reported as killed by SIGTERM, or stopped). A thread of its own reads
//! the channel, so the host works on any executor without an I/O reactor.
//!
//! The host leads a process group of its own: processes its workers start
//! (`std::process::Command`, and what those start) are in it, and its
//! supervisor kills the whole group when the host ends, however it ends.
//!
//! If the host can not be set up before it runs any worker (its signal
//! handling, its runtime: `Spawner::block_on` panics or returns without
//! polling) it sends [`Note::SetupFailed`] before it exits; if its reader
//! thread does not start, it stops its workers and reports each as
//! [`ChildExit::SetupFailed`]. Its supervisor then retries after the
//! engine's floor delay, never reading meaning into the exit code.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use nix::sys::signal::Signal;

use crate::channel::{Channel, PipeState};
use crate::directory::Directory;
use crate::lease::{run_leased, Leases};
use crate::machine::{ChildIdx, ChildPolicy, Grant};
use crate::message;
use crate::os::ratelimit::{LogLimit, REPEAT_LOG_PERIOD};
use crate::os::sys::{self, SignalPipe};
use crate::port::Services;
use crate::ready::{run_worker, StopFlag};
use crate::socket::SocketServices;
use crate::tree::{worker_policy, Template};
use crate::wire::{Command, Note};
use crate::{ChildExit, ChildId, Spawner, Timer};
use supertrees_core::Worker;

/// Backoff delays shorter than this are waited out by yielding to the
/// executor instead of sleeping on the timer: runtime timers tick in whole
/// milliseconds, which would turn a 2 µs backoff into 1 ms.
const SPIN_BELOW: Duration = Duration::from_millis(1);

/// A worker, shared between the host's main task and the task that runs it
/// (`Worker` is `Send` but not `Sync`; `init` takes the lock briefly).
type SharedWorker = Arc<Mutex<Box<dyn Worker>>>;

/// Everything a worker task needs besides its worker.
struct Ctx<S, T> {
    spawner: S,
    timer: T,
    path: String,
    /// This process's id (the `pid` of its workers' spans).
    pid: u32,
    /// The path of the supervisor whose workers run here.
    owner: String,
    /// The host's end of its channel; notes are written whole, under the
    /// lock, so tasks on several threads never interleave.
    channel: Mutex<Outgoing>,
    leases: Mutex<Leases>,
    /// Worker panics are logged at most once per period, with a count.
    panics: Mutex<LogLimit>,
    /// What the workers' messages go through.
    services: Arc<dyn Services>,
    /// The templates `Command::Add` builds workers from.
    templates: Vec<Template>,
}

/// The host's end of its channel, and how many started workers' tasks have
/// yet to be polled for the first time. While some have, the `WorkerReady`s
/// of the others are held back, and go with the last one's (or right after
/// its first poll): workers started together (a new host's, a restart's)
/// wake their supervisor once, not once per worker, each of which took the
/// CPU from the host on its way to the next worker. Any other note is
/// written at once, after what was held back.
struct Outgoing {
    channel: Channel,
    unpolled: usize,
}

impl<S, T> Ctx<S, T> {
    fn outgoing(&self) -> std::sync::MutexGuard<'_, Outgoing> {
        self.channel.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, note: &Note) {
        let sent = self.outgoing().channel.send(note);
        self.sent(sent);
    }

    fn sent(&self, sent: Result<(), nix::errno::Errno>) {
        if let Err(err) = sent {
            tracing::error!(host = %self.path, %err, "worker host could not report to its supervisor");
        }
    }

    /// Worker `child` is ready: told now, unless workers started with it
    /// have yet to be polled.
    fn ready(&self, child: ChildIdx) {
        let mut out = self.outgoing();
        if out.unpolled > 0 {
            out.channel.queue(&Note::WorkerReady(child));
            return;
        }
        let sent = out.channel.send(&Note::WorkerReady(child));
        drop(out);
        self.sent(sent);
    }

    /// A worker's task is about to be started (spawned).
    fn will_start(&self) {
        self.outgoing().unpolled += 1;
    }

    /// A worker's task is polled for the first time.
    fn first_poll(&self) {
        let mut out = self.outgoing();
        out.unpolled = out.unpolled.saturating_sub(1);
    }

    /// A worker's task was polled for the first time: once no other waits
    /// for its first poll, what was held back is written (the last one's
    /// own `WorkerReady` took it along, unless the worker is not ready yet).
    fn first_polled(&self) {
        let mut out = self.outgoing();
        if out.unpolled == 0 {
            let sent = out.channel.send_queued();
            drop(out);
            self.sent(sent);
        }
    }
}

/// What the host's main task is told by the reader thread.
#[derive(Debug)]
enum Input {
    Command(Command),
    /// A SIGTERM from someone else than the supervisor: stop everything.
    Terminated,
    /// The supervisor's end of the channel is gone: drop everything.
    Gone,
    /// The reader thread could not be started: stop everything, and report
    /// each worker as [`ChildExit::SetupFailed`].
    SetupFailed,
}

/// What a worker host is given at fork.
pub(crate) struct Setup {
    pub(crate) path: String,
    pub(crate) workers: Vec<Option<Box<dyn Worker>>>,
    /// The policies of the workers it may restart in place.
    pub(crate) leasable: Vec<Option<ChildPolicy>>,
    pub(crate) grant: Grant,
    /// The host's end of its channel.
    pub(crate) channel: Channel,
    /// The supervisor's templates of children started at run time.
    pub(crate) templates: Vec<Template>,
    /// The tree's mailboxes, and the path of the supervisor whose workers
    /// run here (the mailboxes they may serve).
    pub(crate) directory: Arc<Directory>,
    pub(crate) owner: String,
    /// The path of each child of its supervisor, by index (the workers'
    /// are the `path` of their `worker` span).
    pub(crate) paths: Vec<String>,
    /// Its supervisor's watchdog period: a task on the executor shows life
    /// four times per period.
    pub(crate) watchdog: Option<Duration>,
}

/// Runs the host until it is told to stop; returns the exit code (which
/// carries no meaning: everything the supervisor needs went over the
/// channel).
pub(crate) fn run<S: Spawner, T: Timer>(spawner: S, timer: T, setup: Setup) -> i32 {
    let Setup {
        path,
        workers,
        leasable,
        grant,
        mut channel,
        templates,
        directory,
        owner,
        paths,
        watchdog,
    } = setup;
    // Every line this process logs says which node it is (its workers'
    // runs are in `worker` spans of their own, within it), and only it.
    crate::spans::leave_inherited();
    let span = tracing::info_span!("host", path = %path, pid = std::process::id());
    let _span = span.enter();
    // Everything the workers start is in the host's own process group, and
    // is killed with it when the host ends (see `HostLink`).
    sys::become_group_leader();
    sys::ignore_terminal_signals();
    sys::default_action(Signal::SIGCHLD);
    let mut signals = match SignalPipe::install(&[Signal::SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!(host = %path, %err, "worker host could not set up its signals");
            let _ = channel.send(&Note::SetupFailed);
            return 1;
        }
    };
    // Commands are read by a thread of the host's; notes are written by
    // its tasks, one at a time.
    let (commands, notes) = channel.split();
    let (tx, rx) = mpsc::unbounded();
    // The supervisor wrote the first `Start`s before it forked this host:
    // take them now, so those workers start before the reader thread (which
    // takes ~100 µs to spawn) and without a hand-over between threads.
    let mut reader = CommandReader { channel: commands };
    let ended = reader.forward_available(&tx);
    let host = path.clone();
    let failed = tx.clone();
    let start_reader = move || {
        if ended {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("supertrees-host".into())
            .spawn(move || reader.run(&mut signals, &tx));
        if let Err(err) = spawned {
            tracing::error!(host = %host, %err, "worker host could not start its command reader");
            let _ = failed.unbounded_send(Input::SetupFailed);
        }
    };
    let owner_path = owner.clone();
    let services: Arc<dyn Services> = Arc::new(SocketServices {
        uid: nix::unistd::geteuid().as_raw(),
        directory,
        owner,
        register: {
            let spawner = spawner.clone();
            Arc::new(move |fd| spawner.register(fd))
        },
        sleep: {
            let timer = timer.clone();
            Arc::new(move |d| timer.sleep(d))
        },
    });
    message::install(services.clone());
    crate::listen::set_owner(&owner_path);
    let ctx = Arc::new(Ctx {
        spawner: spawner.clone(),
        services,
        templates,
        timer,
        path,
        pid: std::process::id(),
        owner: owner_path.clone(),
        channel: Mutex::new(Outgoing {
            channel: notes,
            unpolled: 0,
        }),
        leases: Mutex::new(Leases::new(leasable, grant)),
        panics: Mutex::new(LogLimit::new(REPEAT_LOG_PERIOD)),
    });
    let workers: Vec<Option<SharedWorker>> = workers
        .into_iter()
        .map(|w| w.map(|w| Arc::new(Mutex::new(w))))
        .collect();
    // Whether `block_on` polled the host's main task at all: if not, the
    // runtime never ran and nothing of the workers did.
    let began = Arc::new(AtomicBool::new(false));
    let main = {
        let (ctx, began) = (ctx.clone(), began.clone());
        async move {
            began.store(true, Ordering::Relaxed);
            if let Some(period) = watchdog {
                let ctx = ctx.clone();
                ctx.spawner.clone().spawn(Box::pin(show_life(ctx, period)));
            }
            serve(ctx, workers, paths, rx, start_reader).await;
        }
    };
    let ran = catch_unwind(AssertUnwindSafe(|| spawner.block_on(Box::pin(main))));
    if began.load(Ordering::Relaxed) {
        return match ran {
            Ok(()) => 0,
            Err(panic) => resume_unwind(panic),
        };
    }
    tracing::error!(host = %ctx.path, "the worker host's runtime did not run (Spawner::block_on panicked or returned at once)");
    ctx.note(&Note::SetupFailed);
    1
}

/// Tells the supervisor four times per watchdog `period` that the
/// executor runs tasks: a worker that blocks the executor's thread, a
/// deadlock or a SIGSTOP silences it, and the supervisor kills the host.
/// Each note names the thread that sent it (the executor's: the main
/// thread on a single-threaded runtime), whose scheduling the supervisor
/// judges when the host is silent.
async fn show_life<S, T: Timer>(ctx: Arc<Ctx<S, T>>, period: Duration) {
    loop {
        let thread = nix::unistd::gettid().as_raw();
        ctx.note(&Note::Alive { thread });
        ctx.timer.sleep(period / 4).await;
    }
}

/// Reads the channel and forwards commands (and SIGTERM) to the host's main
/// task.
struct CommandReader {
    channel: Channel,
}

impl CommandReader {
    /// Runs until the host must stop.
    fn run(mut self, signals: &mut SignalPipe, tx: &mpsc::UnboundedSender<Input>) {
        loop {
            let mut fds = vec![sys::readable(signals.fd())];
            fds.extend(
                self.channel
                    .interest()
                    .map(|(fd, events)| nix::poll::PollFd::new(fd, events)),
            );
            sys::wait_readable(&mut fds, None);
            match signals.drain() {
                Ok(got) if got.contains(&Signal::SIGTERM) => {
                    let _ = tx.unbounded_send(Input::Terminated);
                    return;
                }
                Ok(_) => {}
                Err(err) => {
                    // Polled again, it would be ready at once for ever.
                    tracing::error!(%err, "the worker host's signal pipe is broken (a worker closed or replaced it); making it again");
                    if let Err(err) = signals.renew() {
                        // Cut off instead (this reader and the channel
                        // dropped): the supervisor kills the host and runs
                        // its workers again in a new one.
                        tracing::error!(%err, "the worker host could not make its signal pipe again; cutting it off from its supervisor");
                        return;
                    }
                }
            }
            if self.forward_available(tx) {
                return;
            }
        }
    }

    /// Forwards what the channel holds now, without blocking (a `Shutdown`
    /// too: the `Drop`s that follow it are still read). Returns `true` once
    /// the supervisor is gone, after forwarding `Gone`.
    fn forward_available(&mut self, tx: &mpsc::UnboundedSender<Input>) -> bool {
        let gone = match self.channel.receive(usize::MAX) {
            PipeState::Open => false,
            PipeState::Closed => true,
            PipeState::Failed(err) => {
                tracing::error!(%err, "worker host lost its channel");
                true
            }
        };
        while let Some(command) = self.channel.next::<Command>() {
            let _ = tx.unbounded_send(Input::Command(command));
        }
        if gone {
            let _ = tx.unbounded_send(Input::Gone);
        }
        gone
    }
}

/// A running worker task: its stop request, a way to drop it (with the
/// exit to report) and to learn that it ended.
struct Running {
    stop: Arc<StopFlag>,
    drop: Option<oneshot::Sender<ChildExit>>,
    done: oneshot::Receiver<()>,
}

impl Running {
    /// Drops the worker's future now; it reports `exit`.
    fn drop_now(&mut self, exit: ChildExit) {
        if let Some(tx) = self.drop.take() {
            // Fails only if the worker already ended, and reported it.
            let _ = tx.send(exit);
        }
    }

    /// Asks the worker to stop: drops it at once unless its run listens
    /// (called `stopping()`).
    fn stop(&mut self) {
        if !self.stop.request() {
            self.drop_now(ChildExit::Stopped);
        }
    }

    /// What resolves once its task has ended (and reported it); the
    /// task's own is left resolved.
    fn take_done(&mut self) -> oneshot::Receiver<()> {
        let (_, ended) = oneshot::channel();
        std::mem::replace(&mut self.done, ended)
    }
}

/// The host's main task: starts and stops workers as commands arrive.
/// `start_reader` starts the command reader thread; it runs as a task spawned
/// once the commands received before the runtime existed have been carried
/// out, so the workers they started are polled first.
async fn serve<S: Spawner, T: Timer>(
    ctx: Arc<Ctx<S, T>>,
    mut workers: Vec<Option<SharedWorker>>,
    paths: Vec<String>,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    start_reader: impl FnOnce() + Send + 'static,
) {
    let mut running: Vec<Option<Running>> = workers.iter().map(|_| None).collect();
    // Each child's path, for its `worker` span.
    let mut paths: Vec<Arc<str>> = paths.into_iter().map(Arc::from).collect();
    // Children started at run time built since their last start: their
    // next start is told (`Note::Began`).
    let mut built: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut start_reader = Some(start_reader);
    let dropped_as = loop {
        let input = match inputs.try_recv() {
            Ok(input) => input,
            Err(err) if err.is_closed() => break ChildExit::Stopped,
            Err(_) => {
                if let Some(start) = start_reader.take() {
                    ctx.spawner.spawn(Box::pin(async move { start() }));
                }
                match inputs.next().await {
                    Some(input) => input,
                    None => break ChildExit::Stopped,
                }
            }
        };
        let command = match input {
            Input::Command(command) => command,
            Input::Terminated => break ChildExit::Signaled(Signal::SIGTERM as i32),
            Input::Gone => break ChildExit::Stopped,
            Input::SetupFailed => break ChildExit::SetupFailed,
        };
        match command {
            Command::Start { child, lease } => {
                let Some(Some(worker)) = workers.get(child.get()) else {
                    // Only a dynamic child whose `Add` failed (logged):
                    // its supervisor retries after the engine's floor.
                    ctx.note(&Note::Exited {
                        child,
                        exit: ChildExit::SetupFailed,
                        reason: Some("the worker could not be built".to_owned()),
                    });
                    continue;
                };
                if let Ok(mut leases) = ctx.leases.lock() {
                    leases.start(child, lease);
                }
                ctx.will_start();
                let path = paths
                    .get(child.get())
                    .cloned()
                    .unwrap_or_else(|| "?".into());
                running[child.get()] = Some(start(&ctx, child, worker.clone(), path));
                if built.remove(&child.get()) {
                    ctx.note(&Note::Began(child));
                }
            }
            Command::Add {
                child,
                template,
                id,
                arg,
            } => {
                let Some(worker) = ctx.build(template, &arg) else {
                    continue;
                };
                let n = child.get();
                if workers.len() <= n {
                    workers.resize_with(n + 1, || None);
                    running.resize_with(n + 1, || None);
                }
                if paths.len() <= n {
                    paths.resize_with(n + 1, || "?".into());
                }
                paths[n] = ctx.dynamic_path(template, id).into();
                if let Ok(mut leases) = ctx.leases.lock() {
                    leases.set_policy(child, worker_policy(worker.as_ref()));
                }
                workers[n] = Some(Arc::new(Mutex::new(worker)));
                built.insert(n);
            }
            Command::Stop(child) => {
                if let Some(task) = running.get_mut(child.get()).and_then(Option::as_mut) {
                    task.stop();
                }
            }
            Command::Drop(child) => {
                if let Some(task) = running.get_mut(child.get()).and_then(Option::as_mut) {
                    task.drop_now(ChildExit::Stopped);
                }
            }
            Command::Grant(grant) => {
                if let Ok(mut leases) = ctx.leases.lock() {
                    leases.grant(grant);
                }
            }
            Command::Shutdown => {
                drain(&mut running, &mut inputs).await;
                return;
            }
        }
    };
    for mut task in running.into_iter().rev().flatten() {
        task.drop_now(dropped_as);
        let _ = task.done.await;
    }
}

/// The host was told to shut down: asks every worker to stop, in reverse
/// order, and carries out the `Drop`s its supervisor sends at each one's
/// deadline, until every worker ended. Losing the supervisor or a SIGTERM
/// drops the rest at once. Each end is awaited once, as it comes: a host
/// of 100 000 workers drains in linear time.
async fn drain(running: &mut [Option<Running>], inputs: &mut mpsc::UnboundedReceiver<Input>) {
    for task in running.iter_mut().rev().flatten() {
        task.stop();
    }
    let mut ends: FuturesUnordered<oneshot::Receiver<()>> = running
        .iter_mut()
        .flatten()
        .map(Running::take_done)
        .collect();
    while !ends.is_empty() {
        let dropped_as = match select(inputs.next(), ends.next()).await {
            Either::Right(_) => continue,
            Either::Left((Some(Input::Command(Command::Drop(child))), _)) => {
                if let Some(task) = running.get_mut(child.get()).and_then(Option::as_mut) {
                    task.drop_now(ChildExit::Stopped);
                }
                continue;
            }
            Either::Left((Some(Input::Command(_)), _)) => continue,
            Either::Left((None | Some(Input::Gone), _)) => ChildExit::Stopped,
            Either::Left((Some(Input::Terminated), _)) => {
                ChildExit::Signaled(Signal::SIGTERM as i32)
            }
            Either::Left((Some(Input::SetupFailed), _)) => ChildExit::SetupFailed,
        };
        for task in running.iter_mut().rev().flatten() {
            task.drop_now(dropped_as);
        }
        while ends.next().await.is_some() {}
        return;
    }
}

/// Spawns the task of worker `child`: it runs the worker, restarts it in
/// place while its lease allows, and reports its end.
fn start<S: Spawner, T: Timer>(
    ctx: &Arc<Ctx<S, T>>,
    child: ChildIdx,
    worker: SharedWorker,
    path: Arc<str>,
) -> Running {
    let (drop_tx, drop_rx) = oneshot::channel::<ChildExit>();
    let (done_tx, done_rx) = oneshot::channel();
    let stop = Arc::new(StopFlag::default());
    let ctx = ctx.clone();
    let flag = stop.clone();
    ctx.spawner.clone().spawn(Box::pin(async move {
        ctx.first_poll();
        let run_once = || {
            // A poisoned lock still holds the worker (`run_worker` catches
            // panics, so it can only come from elsewhere).
            let worker = worker.lock().unwrap_or_else(PoisonError::into_inner);
            let ready = ctx.clone();
            let services = ready.services.clone();
            let span = tracing::info_span!("worker", path = %path, pid = ctx.pid);
            run_worker(
                worker.as_ref(),
                flag.clone(),
                move || ready.ready(child),
                Some(services),
                span,
            )
        };
        let first = run_once();
        let (exit, reason) = {
            let runs = std::pin::pin!(run_leased(
                child,
                first,
                run_once,
                &flag,
                |panic| ctx.log_panic(&path, panic.as_ref()),
                &ctx.leases,
                &ctx.timer,
                SPIN_BELOW,
                |note| ctx.note(&note),
            ));
            let mut both = select(runs, drop_rx);
            let mut first = true;
            let both = std::future::poll_fn(|cx| {
                let polled = std::future::Future::poll(std::pin::Pin::new(&mut both), cx);
                if std::mem::take(&mut first) {
                    ctx.first_polled();
                }
                polled
            });
            match both.await {
                Either::Left((ended, _)) => ended,
                Either::Right((dropped, _)) => (dropped.unwrap_or(ChildExit::Stopped), None),
            }
            // The worker's future is dropped here, before its exit is told.
        };
        ctx.note(&Note::Exited {
            child,
            exit,
            reason,
        });
        let _ = done_tx.send(());
    }));
    Running {
        stop,
        drop: Some(drop_tx),
        done: done_rx,
    }
}

impl<S, T> Ctx<S, T> {
    /// The path of child `id` of template `template`: `root/1/conn#7`.
    fn dynamic_path(&self, template: u32, id: ChildId) -> String {
        let name = self.template(template).map_or("?", |t| t.name.as_str());
        format!("{}/{name}#{id}", self.owner)
    }

    /// The supervisor's template `template`, if it has one.
    fn template(&self, template: u32) -> Option<&Template> {
        usize::try_from(template)
            .ok()
            .and_then(|t| self.templates.get(t))
    }

    /// Builds a worker from template `template` and its argument `arg`
    /// (its supervisor built one from the same bytes already, so this
    /// fails only if the tree is inconsistent; it is logged).
    fn build(&self, template: u32, arg: &[u8]) -> Option<Box<dyn Worker>> {
        let Some(found) = self.template(template) else {
            tracing::error!(host = %self.path, template, "a worker of an unknown template was not built");
            return None;
        };
        crate::message::dynamic::build(found, arg)
            .map_err(|err| {
                tracing::error!(host = %self.path, template = %found.name, %err, "a dynamic child could not be built");
            })
            .ok()
    }
}

impl<S, T: Timer> Ctx<S, T> {
    /// Logs a worker's panic, unless one was logged less than a period ago
    /// (a worker that panics as fast as it restarts); the next line says
    /// how many were not logged.
    fn log_panic(&self, worker: &str, payload: &(dyn std::any::Any + Send)) {
        let now = self.timer.now();
        let told = self
            .panics
            .lock()
            .map_or(Some(0), |mut limit| limit.take(now));
        let Some(not_logged) = told else { return };
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(non-string panic payload)");
        tracing::warn!(host = %self.path, path = %worker, panic = message, not_logged, "worker panicked");
    }
}
