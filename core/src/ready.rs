//! The run context: how a running worker talks to its supervisor without
//! any runtime support.
//!
//! Each run of a worker is polled inside a [`ReadyScope`], which makes the
//! run's context the *current* one on its thread for the duration of each
//! poll: [`ready()`] fires its readiness signal, [`stopping()`] waits for its
//! stop request, and [`spawn()`] adds a subtask that the scope polls along
//! with the worker's own future (within the same scope, so subtasks can call
//! all three too). This needs no runtime support, so it works on any
//! executor and in the simulation.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::port::Services;
use crate::{BoxFuture, Readiness, Worker};

/// Fires a callback at most once.
struct Signal {
    fired: AtomicBool,
    notify: Box<dyn Fn() + Send + Sync>,
}

impl Signal {
    fn fire(&self) {
        if !self.fired.swap(true, Ordering::AcqRel) {
            (self.notify)();
        }
    }
}

/// The stop request of one start of a worker (its runs restarted in place
/// included), shared by the driver that asks and the runs that listen.
#[derive(Default)]
pub struct StopFlag {
    state: Mutex<StopState>,
}

#[derive(Default)]
struct StopState {
    requested: bool,
    /// Whether a run called [`stopping()`]: only then does a stop request
    /// wait for the run to return by itself.
    listening: bool,
    wakers: Vec<Waker>,
}

impl StopFlag {
    fn lock(&self) -> std::sync::MutexGuard<'_, StopState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the worker to stop; returns whether it listens (called
    /// [`stopping()`]): if not, the driver drops it at once.
    pub fn request(&self) -> bool {
        let mut state = self.lock();
        state.requested = true;
        for waker in state.wakers.drain(..) {
            waker.wake();
        }
        state.listening
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.lock().requested
    }

    /// Resolves once a stop is requested.
    pub fn wait(self: &Arc<Self>) -> Stopping {
        Stopping(Some(self.clone()))
    }
}

/// The current run's context, while it is polled.
struct Current {
    signal: Arc<Signal>,
    stop: Arc<StopFlag>,
    /// Subtasks spawned during this poll, for the scope to take.
    spawned: Vec<BoxFuture>,
    /// What the run's messages go through.
    services: Option<Arc<dyn Services>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Whether a worker's run is being polled on this thread (in either
/// engine).
pub fn in_run() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// The message services of the run being polled on this thread, if any.
pub fn current_services() -> Option<Arc<dyn Services>> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(|cur| cur.services.clone()))
}

/// Declares the calling worker ready; its supervisor counts it as started.
///
/// Call it from inside the future of a worker whose
/// [`readiness`](crate::Worker::readiness) is [`Readiness::Notify`], once it
/// can serve (its listener is bound, its connection is open), or from a
/// subtask of it ([`spawn()`]). Calling it again in the same run does
/// nothing. Returns `false` when called outside a worker run by supertrees
/// (for instance from a thread the worker spawned, or a task spawned on the
/// runtime directly), where it has no effect.
///
/// Under [`Strategy::OneForAll`](crate::Strategy::OneForAll) and
/// [`Strategy::RestForOne`](crate::Strategy::RestForOne) the next sibling
/// starts only once this worker is ready, as OTP starts children one after
/// the other; a supervisor is ready when all its children are; and the whole
/// tree being ready is what `on_ready` and systemd's `READY=1` report. See
/// also [`Restartable::start_timeout`](crate::Restartable::start_timeout).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// // Outside a tree it has no effect.
/// assert!(!supertrees::ready());
/// ```
pub fn ready() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().map(|cur| cur.signal.fire()).is_some())
}

/// Resolves when the supervisor asks the calling worker to stop: a tree
/// shutdown, a sibling's restart under
/// [`Strategy::OneForAll`](crate::Strategy::OneForAll) or
/// [`Strategy::RestForOne`](crate::Strategy::RestForOne), or the worker's
/// start timing out.
///
/// Calling it is how a worker opts in to a graceful stop, as an OTP process
/// traps exits: once its run has called `stopping()` (from its own future or
/// a subtask, in this start of the worker), a stop request resolves the
/// future and the worker has its
/// [`Restartable::shutdown`](crate::Restartable::shutdown) time to return by
/// itself (drain, flush); after that its future is dropped
/// ([`Shutdown::Kill`](crate::Shutdown::Kill): at once;
/// [`Shutdown::Infinity`](crate::Shutdown::Infinity): it is waited for). A
/// worker that never called it is dropped as soon as it is asked to stop.
/// Either way its exit is [`ChildExit::Stopped`](crate::ChildExit::Stopped).
///
/// The request is captured when `stopping()` is *called*, not when its
/// future is first polled: call it inside the worker run (`init`, its
/// future or a subtask), then hand the future on wherever it is awaited. Called
/// outside a worker run by supertrees (a thread or a runtime task of the
/// worker's own), it returns a future that never resolves, and logs a
/// warning (once per process). So with a server that awaits its shutdown
/// signal in a task of its own, as axum's `with_graceful_shutdown` does:
///
/// ```text
/// // Works: stopping() is called here, in the run.
/// axum::serve(listener, app).with_graceful_shutdown(supertrees::stopping()).await
/// // Never resolves: the async block calls stopping() when the server's
/// // task first polls it, outside the run.
/// axum::serve(listener, app).with_graceful_shutdown(async { supertrees::stopping().await }).await
/// ```
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::time::Duration;
/// use supertrees::{Restartable, Shutdown, Worker};
///
/// struct Server;
/// impl Worker for Server {
///     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
///         Box::pin(async {
///             let stop = supertrees::stopping();
///             // ... serve until asked to stop ...
///             stop.await;
///             // ... drain: up to `shutdown()` ...
///         })
///     }
/// }
/// impl Restartable for Server {
///     fn shutdown(&self) -> Shutdown {
///         Shutdown::Timeout(Duration::from_secs(10))
///     }
/// }
///
/// // Outside a tree it never resolves.
/// let mut outside = Box::pin(supertrees::stopping());
/// assert!(futures::FutureExt::now_or_never(&mut outside).is_none());
/// ```
pub fn stopping() -> impl Future<Output = ()> + Send + 'static {
    let stop = CURRENT.with(|c| c.borrow().as_ref().map(|cur| cur.stop.clone()));
    match &stop {
        Some(stop) => stop.lock().listening = true,
        None => warn_outside_run(&WARNED_OUTSIDE_RUN),
    }
    Stopping(stop)
}

/// Whether this process warned that [`stopping()`] was called outside a
/// worker run.
static WARNED_OUTSIDE_RUN: AtomicBool = AtomicBool::new(false);

/// Warns, once per `warned`, that [`stopping()`] was called outside a
/// worker run, and how to call it.
fn warn_outside_run(warned: &AtomicBool) {
    if !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "supertrees::stopping() called outside a worker run (in a thread or a runtime task of \
             the worker's own): it never resolves. Call it in the worker's run and hand the future \
             on, e.g. `with_graceful_shutdown(supertrees::stopping())`, not `async {{ \
             supertrees::stopping().await }}`, which calls it only when that task first polls it. \
             Logged once per process"
        );
    }
}

/// What [`stopping()`] returns.
pub struct Stopping(Option<Arc<StopFlag>>);

impl Future for Stopping {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(stop) = &self.0 else {
            return Poll::Pending;
        };
        let mut state = stop.lock();
        if state.requested {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Runs `fut` as a subtask of the calling worker's current run.
///
/// The subtask is polled by the run itself, along with the worker's own
/// future, so it works on every backend and in
/// [`run_simulated`](crate::testing::run_simulated), and
/// [`ready()`], [`stopping()`] and `spawn()` work from it as from the worker.
/// It is owned by the run: dropped when the run ends (the worker's future
/// returns or panics, or it is stopped); a panic in it fails the worker as
/// a panic in the worker's own future does. It runs on the worker's task,
/// so a subtask that blocks its thread blocks the worker too: spawn
/// blocking work on the runtime's blocking pool instead.
///
/// Called outside a worker run by supertrees (a thread or a runtime task
/// of the worker's own), `fut` is dropped without being polled, with a
/// warning in the log; it never panics.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::future::Future;
/// use std::pin::Pin;
/// use supertrees::{Restartable, Worker};
///
/// struct Pair;
/// impl Worker for Pair {
///     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
///         Box::pin(async {
///             let (tx, rx) = futures::channel::oneshot::channel();
///             supertrees::spawn(async move {
///                 let _ = tx.send(42);
///             });
///             assert_eq!(rx.await, Ok(42));
///         })
///     }
/// }
/// impl Restartable for Pair {}
/// ```
pub fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
    let fut: BoxFuture = Box::pin(fut);
    let refused = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(cur) => {
            cur.spawned.push(fut);
            None
        }
        None => Some(fut),
    });
    if refused.is_some() {
        tracing::warn!("supertrees::spawn called outside a worker run: the future is dropped");
    }
}

/// The payload of a worker's panic.
pub type Panic = Box<dyn Any + Send>;

/// The most bytes of a panic message that travel to the root.
pub const REASON_MAX: usize = 256;

/// Cuts `text` to at most [`REASON_MAX`] bytes, at a char boundary.
pub fn cap_reason(mut text: String) -> String {
    if text.len() > REASON_MAX {
        let mut end = REASON_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The message of a panic, capped (see [`cap_reason`]).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned());
    cap_reason(text)
}

/// Starts one run of `worker`, as both engines run workers: calls its
/// `init` now and returns the run, which calls `notify` once the worker is
/// ready (see [`Readiness`]), sees `stop` from [`stopping()`], and ends
/// with the panic, if the worker (or its `init`, or a subtask) panicked.
///
/// `services` are what the run's mailboxes and dynamic children go
/// through ([`crate::message`]). `span` (the engines' `worker` span, with
/// the node's `path` and `pid`) is entered while `init` runs and whenever
/// the run (its future and its subtasks) is polled, so that what the
/// worker's own code logs says which node it is.
pub fn run_worker(
    worker: &dyn Worker,
    stop: Arc<StopFlag>,
    notify: impl Fn() + Send + Sync + 'static,
    services: Option<Arc<dyn Services>>,
    span: tracing::Span,
) -> Pin<Box<dyn Future<Output = Result<(), Panic>> + Send>> {
    let signal = Arc::new(Signal {
        fired: AtomicBool::new(false),
        notify: Box::new(notify),
    });
    // `init` is part of the run: `stopping()`, `ready()` and `spawn()`
    // called in it (not only in the future it returns) act for the run.
    let began = catch_unwind(AssertUnwindSafe(|| {
        let _span = span.enter();
        let entered = Entered::new(Current {
            signal: signal.clone(),
            stop: stop.clone(),
            spawned: Vec::new(),
            services: services.clone(),
        });
        let made = (worker.init(), worker.readiness());
        (made, entered.take_spawned())
    }));
    match began {
        Ok(((fut, readiness), spawned)) => Box::pin(
            AssertUnwindSafe(ReadyScope {
                fut,
                subtasks: (!spawned.is_empty()).then(|| spawned.into_iter().collect()),
                signal,
                stop,
                services,
                on_start: readiness == Readiness::OnStart,
                span,
            })
            .catch_unwind(),
        ),
        Err(panic) => Box::pin(std::future::ready(Err(panic))),
    }
}

/// Makes a run's context this thread's until dropped, then restores the
/// one before (even if the worker panics).
struct Entered(Option<Current>);

impl Entered {
    fn new(current: Current) -> Self {
        Self(CURRENT.with(|c| c.replace(Some(current))))
    }

    /// The subtasks spawned since the context was entered.
    fn take_spawned(&self) -> Vec<BoxFuture> {
        CURRENT.with(|c| {
            c.borrow_mut()
                .as_mut()
                .map(|cur| std::mem::take(&mut cur.spawned))
                .unwrap_or_default()
        })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// One run of a worker, polled with its context current, with its subtasks.
struct ReadyScope {
    fut: BoxFuture,
    /// Made at the first [`spawn()`]: most runs have none, and a restart
    /// path that allocates less restarts faster.
    subtasks: Option<FuturesUnordered<BoxFuture>>,
    signal: Arc<Signal>,
    stop: Arc<StopFlag>,
    services: Option<Arc<dyn Services>>,
    on_start: bool,
    /// The `worker` span: entered whenever the run is polled.
    span: tracing::Span,
}

impl Drop for ReadyScope {
    /// The run's future and subtasks are dropped in its span too (a
    /// guard's `Drop` that logs says which node it was).
    fn drop(&mut self) {
        let _span = self.span.enter();
        drop(self.subtasks.take());
        // A pending future is zero-sized: nothing is allocated.
        self.fut = Box::pin(std::future::pending());
    }
}

impl Future for ReadyScope {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let _span = this.span.enter();
        if std::mem::take(&mut this.on_start) {
            this.signal.fire();
        }
        let entered = Entered::new(Current {
            signal: this.signal.clone(),
            stop: this.stop.clone(),
            spawned: Vec::new(),
            services: this.services.clone(),
        });
        if this.fut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        loop {
            let spawned = entered.take_spawned();
            if !spawned.is_empty() {
                this.subtasks
                    .get_or_insert_with(FuturesUnordered::new)
                    .extend(spawned);
            }
            // Finished subtasks are taken out; pending ones are woken
            // through `cx`.
            if let Some(subtasks) = this.subtasks.as_mut().filter(|s| !s.is_empty()) {
                while let Poll::Ready(Some(())) = subtasks.poll_next_unpin(cx) {}
            }
            let more = CURRENT.with(|c| {
                c.borrow()
                    .as_ref()
                    .is_some_and(|cur| !cur.spawned.is_empty())
            });
            if !more {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// The scope of one run of `fut`, as `run_worker` makes it.
    fn scope(
        fut: BoxFuture,
        readiness: Readiness,
        stop: Arc<StopFlag>,
        notify: impl Fn() + Send + Sync + 'static,
        services: Option<Arc<dyn Services>>,
    ) -> ReadyScope {
        ReadyScope {
            fut,
            subtasks: None,
            signal: Arc::new(Signal {
                fired: AtomicBool::new(false),
                notify: Box::new(notify),
            }),
            stop,
            services,
            on_start: readiness == Readiness::OnStart,
            span: tracing::Span::none(),
        }
    }

    fn counter() -> (Arc<AtomicUsize>, impl Fn() + Send + Sync + 'static) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        (count, move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn on_start_fires_at_the_first_poll_once() {
        let (count, notify) = counter();
        let scope = scope(
            Box::pin(async { assert!(ready()) }),
            Readiness::OnStart,
            Arc::default(),
            notify,
            None,
        );
        assert_eq!(count.load(Ordering::SeqCst), 0);
        futures::executor::block_on(scope);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn notify_fires_when_the_worker_calls_ready() {
        let (count, notify) = counter();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let fut = Box::pin(async move {
            s.store(1, Ordering::SeqCst);
            futures::future::ready(()).await;
            assert!(ready());
            assert!(ready());
        });
        futures::executor::block_on(scope(fut, Readiness::Notify, Arc::default(), notify, None));
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // The scope is gone: outside a worker again.
        assert!(!ready());
    }

    /// The messages of the warnings logged on this thread meanwhile.
    fn warnings(f: impl FnOnce()) -> Vec<String> {
        use tracing::field::{Field, Visit};
        use tracing::span::{Attributes, Id, Record};
        use tracing::{Event, Level, Metadata, Subscriber};

        struct Warnings(Mutex<Vec<String>>);
        struct Message<'a>(&'a mut String);
        impl Visit for Message<'_> {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        impl Subscriber for Warnings {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &Attributes<'_>) -> Id {
                Id::from_u64(1)
            }
            fn record(&self, _: &Id, _: &Record<'_>) {}
            fn record_follows_from(&self, _: &Id, _: &Id) {}
            fn event(&self, event: &Event<'_>) {
                if *event.metadata().level() == Level::WARN {
                    let mut message = String::new();
                    event.record(&mut Message(&mut message));
                    self.0
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(message);
                }
            }
            fn enter(&self, _: &Id) {}
            fn exit(&self, _: &Id) {}
        }
        let subscriber = Arc::new(Warnings(Mutex::new(Vec::new())));
        tracing::subscriber::with_default(subscriber.clone(), f);
        let seen = subscriber
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        seen
    }

    #[test]
    fn stopping_outside_a_run_warns_once_and_shows_the_form_that_works() {
        let warned = AtomicBool::new(false);
        let seen = warnings(|| {
            warn_outside_run(&warned);
            warn_outside_run(&warned);
        });
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].contains("with_graceful_shutdown(supertrees::stopping())"),
            "{seen:?}"
        );
        // stopping() itself goes through the process's flag: after a call
        // outside a run it is set, and later calls say nothing.
        drop(stopping());
        assert!(WARNED_OUTSIDE_RUN.load(Ordering::Relaxed));
        assert!(warnings(|| drop(stopping())).is_empty());
    }

    #[test]
    fn stopping_called_in_the_run_resolves_wherever_it_is_awaited() {
        let stop: Arc<StopFlag> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let scope = scope(
            Box::pin(async move {
                // Called in the run, awaited on another thread.
                let _ = tx.send(stopping());
            }),
            Readiness::OnStart,
            stop.clone(),
            || {},
            None,
        );
        let seen = warnings(|| futures::executor::block_on(scope));
        assert!(seen.is_empty(), "{seen:?}");
        let handed_on = rx.recv().expect("the future");
        let waiter = std::thread::spawn(move || futures::executor::block_on(handed_on));
        assert!(stop.request(), "the run listens");
        waiter.join().expect("resolved");
    }

    #[test]
    fn a_worker_that_never_calls_ready_is_not_ready() {
        let (count, notify) = counter();
        futures::executor::block_on(scope(
            Box::pin(async {}),
            Readiness::Notify,
            Arc::default(),
            notify,
            None,
        ));
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
