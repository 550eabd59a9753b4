//! The worker host: a forked process that runs one supervisor's workers as
//! tasks on the user's [`Spawner`], started and stopped by commands from the
//! supervisor.
//!
//! It starts a worker when told and reports exactly one [`Note::Exited`] per
//! start (after the worker's future has been dropped). A `OneForOne` worker
//! that exits on its own is restarted in place, with the supervisor's own
//! rule ([`ChildRecord::restart_delay`]) and intensity, and reported as
//! [`Note::Restarted`]: a restart costs no round trip between processes.
//! Whatever the rule leaves undecided (a worker done for good, an intensity
//! exceeded, any other strategy) goes back to the supervisor as `Exited`.
//! On SIGTERM or [`Command::Shutdown`] the host drops every worker's future
//! in reverse order before it exits. A thread of its own reads the command
//! pipe, so the host works on any executor without an I/O reactor.

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::StreamExt;
use nix::sys::signal::Signal;

use super::sys::{self, SignalPipe};
use super::wire::{self, Command, Note, PipeState};
use crate::machine::ChildRecord;
use crate::policy::RestartHistory;
use crate::ready::run_worker;
use crate::{ChildExit, Intensity, Spawner, Timer, Worker};

/// Backoff delays shorter than this are waited out by yielding to the
/// executor instead of sleeping on the timer: runtime timers tick in whole
/// milliseconds, which would turn a 2 µs backoff into 1 ms.
const SPIN_BELOW: Duration = Duration::from_millis(1);

/// What the host needs to restart `OneForOne` workers in place: their restart
/// records and the supervisor's restart history, as the supervisor had them
/// when it forked the host.
#[derive(Debug)]
pub(crate) struct Delegation {
    pub(crate) records: Vec<Option<ChildRecord>>,
    pub(crate) history: RestartHistory,
    pub(crate) intensity: Intensity,
}

impl Delegation {
    /// Applies the restart rule to worker `n`, which ran for `ran_for` and
    /// exited with `exit` at `now`: the delay before it runs again, or `None`
    /// when the supervisor must decide.
    fn restart_delay(
        &mut self,
        n: usize,
        exit: &ChildExit,
        ran_for: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let record = self.records.get_mut(n)?.as_mut()?;
        let delay = record.restart_delay(exit, ran_for)?;
        if self.history.record(&self.intensity, now) {
            return None;
        }
        record.restarted();
        Some(delay)
    }
}

/// A worker, shared between the host's main task and the task that runs it
/// (`Worker` is `Send` but not `Sync`; `init` takes the lock briefly).
type SharedWorker = Arc<Mutex<Box<dyn Worker>>>;

/// Everything a worker task needs besides its worker.
struct Ctx<S, T> {
    spawner: S,
    timer: T,
    path: String,
    events: Arc<OwnedFd>,
    delegation: Mutex<Delegation>,
}

/// Exit code of a host stopped by SIGTERM from anyone but its supervisor's
/// `Shutdown` command: 128 + SIGTERM, as a shell reports it.
const EXIT_TERMINATED: i32 = 128 + Signal::SIGTERM as i32;

/// Runs the host until it is told to stop; returns the exit code.
pub(crate) fn run<S: Spawner, T: Timer>(
    spawner: S,
    timer: T,
    path: String,
    workers: Vec<Option<Box<dyn Worker>>>,
    delegation: Delegation,
    commands: OwnedFd,
    events: OwnedFd,
) -> i32 {
    sys::ignore(Signal::SIGINT);
    sys::default_action(Signal::SIGCHLD);
    let signals = match SignalPipe::install(&[Signal::SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!(host = %path, %err, "worker host could not set up its signals");
            return 1;
        }
    };
    if let Err(err) = sys::set_blocking(events.as_fd()) {
        tracing::error!(host = %path, %err, "worker host could not set up its event pipe");
        return 1;
    }
    let (tx, rx) = mpsc::unbounded();
    // The supervisor wrote the first `Start`s before it forked this host:
    // take them now, so those workers start before the reader thread (which
    // takes ~100 µs to spawn) and without a hand-over between threads.
    let mut reader = CommandReader::new(commands);
    let ended = reader.forward_available(&tx);
    let handle: Arc<Mutex<Option<std::thread::JoinHandle<bool>>>> = Arc::default();
    let failed = Arc::new(AtomicBool::new(false));
    let (slot, reader_failed, host) = (handle.clone(), failed.clone(), path.clone());
    let start_reader = move || {
        if ended {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("supertrees-host".into())
            .spawn(move || reader.run(&signals, &tx));
        match spawned {
            Ok(handle) => {
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(handle);
                }
            }
            Err(err) => {
                tracing::error!(host = %host, %err, "worker host could not start its command reader");
                reader_failed.store(true, Ordering::SeqCst);
            }
        }
    };
    let ctx = Arc::new(Ctx {
        spawner: spawner.clone(),
        timer,
        path,
        events: Arc::new(events),
        delegation: Mutex::new(delegation),
    });
    let workers: Vec<Option<SharedWorker>> = workers
        .into_iter()
        .map(|w| w.map(|w| Arc::new(Mutex::new(w))))
        .collect();
    spawner.block_on(Box::pin(serve(ctx, workers, rx, start_reader)));
    let joined = handle
        .lock()
        .ok()
        .and_then(|mut h| h.take())
        .map(|h| h.join());
    match joined {
        Some(Ok(true)) => EXIT_TERMINATED,
        _ if failed.load(Ordering::SeqCst) => 1,
        _ => 0,
    }
}

/// Reads the command pipe and forwards commands (and SIGTERM, as
/// `Shutdown`) to the host's main task.
struct CommandReader {
    commands: OwnedFd,
    buf: Vec<u8>,
}

impl CommandReader {
    fn new(commands: OwnedFd) -> Self {
        Self {
            commands,
            buf: Vec::with_capacity(wire::FRAME * 64),
        }
    }

    /// Runs until the host must stop; returns whether SIGTERM arrived.
    fn run(mut self, signals: &SignalPipe, tx: &mpsc::UnboundedSender<Command>) -> bool {
        loop {
            let mut fds = [
                sys::readable(signals.fd()),
                sys::readable(self.commands.as_fd()),
            ];
            sys::wait_readable(&mut fds, None);
            if signals.drain().contains(&Signal::SIGTERM) {
                let _ = tx.unbounded_send(Command::Shutdown);
                return true;
            }
            if self.forward_available(tx) {
                return false;
            }
        }
    }

    /// Forwards what the pipe holds now, without blocking. Returns `true`
    /// once the host must stop (a `Shutdown`, or the supervisor is gone),
    /// after forwarding a `Shutdown`.
    fn forward_available(&mut self, tx: &mpsc::UnboundedSender<Command>) -> bool {
        let (frames, state) = wire::read_frames(&self.commands, &mut self.buf, usize::MAX);
        let mut gone = match state {
            PipeState::Open => false,
            PipeState::Closed => true,
            PipeState::Failed(err) => {
                tracing::error!(%err, "worker host lost its command pipe");
                true
            }
        };
        for frame in frames {
            match Command::decode(&frame) {
                Some(Command::Shutdown) => {
                    gone = true;
                    break;
                }
                Some(cmd) => {
                    let _ = tx.unbounded_send(cmd);
                }
                None => tracing::warn!(?frame, "garbled command dropped"),
            }
        }
        if gone {
            let _ = tx.unbounded_send(Command::Shutdown);
        }
        gone
    }
}

/// A running worker task: a way to stop it and to learn that it ended.
struct Running {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

/// The host's main task: starts and stops workers as commands arrive.
/// `start_reader` starts the command reader thread; it runs as a task spawned
/// once the commands received before the runtime existed have been carried
/// out, so the workers they started are polled first.
async fn serve<S: Spawner, T: Timer>(
    ctx: Arc<Ctx<S, T>>,
    workers: Vec<Option<SharedWorker>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    start_reader: impl FnOnce() + Send + 'static,
) {
    let mut running: Vec<Option<Running>> = workers.iter().map(|_| None).collect();
    let mut start_reader = Some(start_reader);
    loop {
        let cmd = match commands.try_recv() {
            Ok(cmd) => cmd,
            Err(err) if err.is_closed() => break,
            Err(_) => {
                if let Some(start) = start_reader.take() {
                    // If the thread can not start, its sender is dropped, the
                    // channel closes and the host stops.
                    ctx.spawner.spawn(Box::pin(async move { start() }));
                }
                match commands.next().await {
                    Some(cmd) => cmd,
                    None => break,
                }
            }
        };
        match cmd {
            Command::Start(n) => {
                let n = n as usize;
                let Some(Some(worker)) = workers.get(n) else {
                    tracing::warn!(host = %ctx.path, child = n, "start of an unknown worker ignored");
                    continue;
                };
                running[n] = Some(start(&ctx, n, worker.clone()));
            }
            Command::Stop(n) => {
                if let Some(task) = running.get_mut(n as usize).and_then(Option::take) {
                    // Fails only if the worker already ended, and reported it.
                    let _ = task.stop.send(());
                }
            }
            Command::Shutdown => break,
        }
    }
    for task in running.into_iter().rev().flatten() {
        if task.stop.send(()).is_ok() {
            let _ = task.done.await;
        }
    }
}

/// Spawns the task of worker `n`: it runs the worker, restarts it in place
/// while the restart rule allows, and reports its end on `events`.
fn start<S: Spawner, T: Timer>(ctx: &Arc<Ctx<S, T>>, n: usize, worker: SharedWorker) -> Running {
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel();
    let ctx = ctx.clone();
    ctx.spawner.clone().spawn(Box::pin(async move {
        let exit = loop {
            let started = ctx.timer.now();
            let exit = match run_once(&ctx, n, &worker, &mut stop_rx).await {
                Some(exit) => exit,
                None => break ChildExit::STOPPED,
            };
            let now = ctx.timer.now();
            let delay = match ctx.delegation.lock() {
                Ok(mut d) => d.restart_delay(n, &exit, now.saturating_duration_since(started), now),
                Err(_) => None,
            };
            let Some(delay) = delay else { break exit };
            report(&ctx.events, Note::Restarted(n as u32, exit, delay));
            if !pause(&ctx.timer, delay, &mut stop_rx).await {
                break ChildExit::STOPPED;
            }
        };
        report(&ctx.events, Note::Exited(n as u32, exit));
        let _ = done_tx.send(());
    }));
    Running {
        stop: stop_tx,
        done: done_rx,
    }
}

/// Runs worker `n` once: its exit, or `None` when it was stopped (its future
/// is dropped before this returns).
async fn run_once<S, T>(
    ctx: &Ctx<S, T>,
    n: usize,
    worker: &Mutex<Box<dyn Worker>>,
    stop: &mut oneshot::Receiver<()>,
) -> Option<ChildExit> {
    let run = {
        // A poisoned lock still holds the worker (`run_worker` catches
        // panics, so it can only come from elsewhere).
        let worker = worker.lock().unwrap_or_else(PoisonError::into_inner);
        let events = ctx.events.clone();
        run_worker(worker.as_ref(), move || {
            report(&events, Note::Ready(n as u32))
        })
    };
    match select(run, stop).await {
        Either::Left((Ok(()), _)) => Some(ChildExit::Normal),
        Either::Left((Err(payload), _)) => {
            log_panic(&ctx.path, n, payload.as_ref());
            Some(ChildExit::Panicked)
        }
        Either::Right((_, unfinished)) => {
            drop(unfinished);
            None
        }
    }
}

/// Waits out a backoff `delay`; `false` when the worker was stopped meanwhile.
///
/// Delays below [`SPIN_BELOW`], zero included, are waited out by yielding to
/// the executor, at least once: a worker that ends at once and is restarted
/// at once must still let the rest of the host (its commands, the other
/// workers) run.
async fn pause<T: Timer>(timer: &T, delay: Duration, stop: &mut oneshot::Receiver<()>) -> bool {
    if delay >= SPIN_BELOW {
        return matches!(select(timer.sleep(delay), stop).await, Either::Left(_));
    }
    let deadline = timer.now() + delay;
    loop {
        YieldNow(false).await;
        if !matches!(stop.try_recv(), Ok(None)) {
            return false;
        }
        if timer.now() >= deadline {
            return true;
        }
    }
}

/// Lets the executor run other tasks once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn report(events: &OwnedFd, note: Note) {
    if let Err(err) = sys::write(events, &note.encode()) {
        tracing::error!(%err, "worker host could not report to its supervisor");
    }
}

fn log_panic(path: &str, n: usize, payload: &(dyn std::any::Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    tracing::warn!(host = %path, child = n, message, "worker panicked");
}
