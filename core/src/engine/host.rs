//! The worker host: a forked process that runs one supervisor's workers as
//! tasks on the user's [`Spawner`], started and stopped by commands from the
//! supervisor.
//!
//! The host owns no policy. It starts a worker when told, reports exactly one
//! [`Event::Exited`] per start (after the worker's future has been dropped),
//! and on SIGTERM or [`Command::Shutdown`] drops every worker's future in
//! reverse order before it exits. A thread of its own reads the command pipe,
//! so the host works on any executor without an I/O reactor.

use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::{FutureExt, StreamExt};
use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::sys::{self, SignalPipe};
use super::wire::{self, Command, Event};
use crate::{BoxFuture, ChildExit, Spawner, Worker};

/// Exit code of a host stopped by SIGTERM from anyone but its supervisor's
/// `Shutdown` command: 128 + SIGTERM, as a shell reports it.
const EXIT_TERMINATED: i32 = 128 + Signal::SIGTERM as i32;

/// Runs the host until it is told to stop; returns the exit code.
pub(crate) fn run<S: Spawner>(
    spawner: S,
    path: String,
    workers: Vec<Option<Box<dyn Worker>>>,
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
    let reader = std::thread::Builder::new()
        .name("supertrees-host".into())
        .spawn(move || read_commands(&commands, &signals, &tx));
    let reader = match reader {
        Ok(handle) => handle,
        Err(err) => {
            tracing::error!(host = %path, %err, "worker host could not start its command reader");
            return 1;
        }
    };
    let events = Arc::new(events);
    let main = serve(spawner.clone(), path, workers, rx, events);
    spawner.block_on(Box::pin(main));
    match reader.join() {
        Ok(true) => EXIT_TERMINATED,
        _ => 0,
    }
}

/// Forwards commands (and SIGTERM, as `Shutdown`) to the host's main task.
/// Returns whether SIGTERM arrived.
fn read_commands(
    commands: &OwnedFd,
    signals: &SignalPipe,
    tx: &mpsc::UnboundedSender<Command>,
) -> bool {
    let mut buf = Vec::with_capacity(wire::FRAME * 64);
    let mut chunk = [0u8; wire::FRAME * 64];
    loop {
        let mut fds = [sys::readable(signals.fd()), sys::readable(commands.as_fd())];
        sys::wait_readable(&mut fds, None);
        if signals.drain().contains(&Signal::SIGTERM) {
            let _ = tx.unbounded_send(Command::Shutdown);
            return true;
        }
        match nix::unistd::read(commands, &mut chunk) {
            Ok(0) => {
                let _ = tx.unbounded_send(Command::Shutdown);
                return false;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(err) => {
                tracing::error!(%err, "worker host lost its command pipe");
                let _ = tx.unbounded_send(Command::Shutdown);
                return false;
            }
        }
        for frame in wire::take_frames(&mut buf) {
            match Command::decode(&frame) {
                Some(Command::Shutdown) => {
                    let _ = tx.unbounded_send(Command::Shutdown);
                    return false;
                }
                Some(cmd) => {
                    let _ = tx.unbounded_send(cmd);
                }
                None => tracing::warn!(?frame, "garbled command dropped"),
            }
        }
    }
}

/// A running worker task: a way to stop it and to learn that it ended.
struct Running {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

async fn serve<S: Spawner>(
    spawner: S,
    path: String,
    workers: Vec<Option<Box<dyn Worker>>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: Arc<OwnedFd>,
) {
    let mut running: Vec<Option<Running>> = workers.iter().map(|_| None).collect();
    while let Some(cmd) = commands.next().await {
        match cmd {
            Command::Start(n) => {
                let n = n as usize;
                let Some(Some(worker)) = workers.get(n) else {
                    tracing::warn!(host = %path, child = n, "start of an unknown worker ignored");
                    continue;
                };
                running[n] = Some(start(&spawner, &path, n, worker.as_ref(), events.clone()));
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

/// Spawns worker `n`; the task reports its end on `events`.
fn start<S: Spawner>(
    spawner: &S,
    path: &str,
    n: usize,
    worker: &dyn Worker,
    events: Arc<OwnedFd>,
) -> Running {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let fut: Option<BoxFuture> = match catch_unwind(AssertUnwindSafe(|| worker.init())) {
        Ok(fut) => Some(fut),
        Err(payload) => {
            log_panic(path, n, payload.as_ref());
            None
        }
    };
    let path = path.to_owned();
    spawner.spawn(Box::pin(async move {
        let exit = match fut {
            // init() itself panicked: a failure, reported like any other.
            None => ChildExit::Panicked,
            Some(fut) => match select(AssertUnwindSafe(fut).catch_unwind(), stop_rx).await {
                Either::Left((Ok(()), _)) => ChildExit::Normal,
                Either::Left((Err(payload), _)) => {
                    log_panic(&path, n, payload.as_ref());
                    ChildExit::Panicked
                }
                Either::Right((_, unfinished)) => {
                    drop(unfinished);
                    ChildExit::STOPPED
                }
            },
        };
        report(&events, Event::Exited(n as u32, exit));
        let _ = done_tx.send(());
    }));
    Running {
        stop: stop_tx,
        done: done_rx,
    }
}

fn report(events: &OwnedFd, event: Event) {
    let frame = event.encode();
    loop {
        match nix::unistd::write(events, &frame) {
            Err(Errno::EINTR) => continue,
            Err(err) => {
                tracing::error!(%err, "worker host could not report to its supervisor");
                return;
            }
            Ok(_) => return,
        }
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
