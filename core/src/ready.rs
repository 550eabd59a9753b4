//! Readiness: how a running worker tells its supervisor that it is up.
//!
//! Each run of a worker is polled inside a [`ReadyScope`], which makes the
//! run's signal the *current* one on its thread for the duration of each
//! poll; [`ready()`] fires it. This needs no runtime support, so it works on
//! any executor and in the simulation.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;

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

thread_local! {
    static CURRENT: RefCell<Option<Arc<Signal>>> = const { RefCell::new(None) };
}

/// Declares the calling worker ready; its supervisor counts it as started.
///
/// Call it from inside the future of a worker whose
/// [`readiness`](crate::Worker::readiness) is [`Readiness::Notify`], once it
/// can serve (its listener is bound, its connection is open). Calling it
/// again in the same run does nothing. Returns `false` when called outside a
/// worker run by supertrees (for instance from a thread the worker spawned),
/// where it has no effect.
///
/// Under [`Strategy::OneForAll`](crate::Strategy::OneForAll) and
/// [`Strategy::RestForOne`](crate::Strategy::RestForOne) the next sibling
/// starts only once this worker is ready, as OTP starts children one after
/// the other; a supervisor is ready when all its children are; and the whole
/// tree being ready is what `on_ready` and systemd's `READY=1` report.
///
/// # Examples
///
/// ```
/// // Outside a tree it has no effect.
/// assert!(!supertrees_core::ready());
/// ```
pub fn ready() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().map(|s| s.fire()).is_some())
}

/// The payload of a worker's panic.
pub(crate) type Panic = Box<dyn Any + Send>;

/// Starts one run of `worker`, as both engines run workers: calls its
/// `init` now and returns the run, which calls `notify` once the worker is
/// ready (see [`Readiness`]) and ends with the panic, if the worker (or its
/// `init`) panicked.
pub(crate) fn run_worker(
    worker: &dyn Worker,
    notify: impl Fn() + Send + Sync + 'static,
) -> Pin<Box<dyn Future<Output = Result<(), Panic>> + Send>> {
    match catch_unwind(AssertUnwindSafe(|| (worker.init(), worker.readiness()))) {
        Ok((fut, readiness)) => {
            Box::pin(AssertUnwindSafe(ReadyScope::new(fut, readiness, notify)).catch_unwind())
        }
        Err(panic) => Box::pin(std::future::ready(Err(panic))),
    }
}

/// One run of a worker, polled with its readiness signal current.
struct ReadyScope {
    fut: BoxFuture,
    signal: Arc<Signal>,
    on_start: bool,
}

impl ReadyScope {
    /// Wraps one run's future; `notify` is called once, when it is ready.
    fn new(
        fut: BoxFuture,
        readiness: Readiness,
        notify: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        Self {
            fut,
            signal: Arc::new(Signal {
                fired: AtomicBool::new(false),
                notify: Box::new(notify),
            }),
            on_start: readiness == Readiness::OnStart,
        }
    }
}

impl Future for ReadyScope {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::take(&mut self.on_start) {
            self.signal.fire();
        }
        let previous = CURRENT.with(|c| c.replace(Some(self.signal.clone())));
        // Restores the previous signal even if the worker panics.
        struct Restore(Option<Arc<Signal>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let _restore = Restore(previous);
        self.fut.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
        let scope = ReadyScope::new(
            Box::pin(async { assert!(ready()) }),
            Readiness::OnStart,
            notify,
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
        futures::executor::block_on(ReadyScope::new(fut, Readiness::Notify, notify));
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // The scope is gone: outside a worker again.
        assert!(!ready());
    }

    #[test]
    fn a_worker_that_never_calls_ready_is_not_ready() {
        let (count, notify) = counter();
        futures::executor::block_on(ReadyScope::new(
            Box::pin(async {}),
            Readiness::Notify,
            notify,
        ));
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
