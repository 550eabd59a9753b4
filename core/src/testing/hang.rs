//! A scripted hang: a worker that blocks its worker host, for watchdog,
//! drop and shutdown timelines.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

thread_local! {
    /// The simulated worker host whose worker is being polled on this
    /// thread: set while `run_simulated` polls a worker.
    static HOST: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Polls a worker of the simulated host whose hang flag is `hung`: a
/// [`hang()`] polled meanwhile sets it.
pub(crate) fn polling<R>(hung: &Arc<AtomicBool>, poll: impl FnOnce() -> R) -> R {
    /// Restores the host polled before, even if the poll unwinds.
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            HOST.with(|h| *h.borrow_mut() = previous);
        }
    }
    let _restore = Restore(HOST.with(|h| h.replace(Some(hung.clone()))));
    poll()
}

/// Hangs the worker that awaits it, and with it the worker host it runs in,
/// as a worker that blocks its thread does: for testing a tree's
/// [watchdog](crate::Tree::with_watchdog), the grace of a dropped worker and
/// the stop of a hung tree.
///
/// The future never completes. In [`run_simulated`](super::run_simulated),
/// from the moment it is first polled, the simulated worker host of the
/// worker's supervisor is hung until its supervisor kills it: it shows no
/// more life, runs none of its workers, carries out no stop or drop, and
/// reports nothing (a worker that ended in the same poll included). Its
/// supervisor then decides as in processes, on virtual time: with a
/// watchdog it kills the host at its deadline (a period after its last
/// sign of life, which a host gives four times per period), and its
/// workers exit [`Hung`](crate::ChildExit::Hung); a worker of it that is
/// dropped (stopped past its [`shutdown`](crate::Restartable::shutdown)
/// time) gets the host killed a second later. Whatever kills the host,
/// its workers then run again by their policies, in a new host.
///
/// In a worker run in processes it blocks the thread that polls it, for
/// good (on a single-threaded runtime, the worker host's executor; on a
/// multi-threaded one, one of its threads, which may leave the host showing
/// life). Anywhere else it never completes, and does nothing else.
///
/// # Examples
///
/// A worker that hangs 50 ms into each run, watched with a 200 ms period:
/// its host showed life last at 0 ms (it does four times per period, from
/// its start; the sign due at 50 ms comes after the worker's turn), so it
/// is killed as hung at 200 ms, and its worker restarted after its
/// backoff.
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use supertrees::testing::{hang, run_simulated, FakeTimer};
/// use supertrees::{ChildExit, EventKind, Intensity, Restartable, Supertree, Timer, Worker};
///
/// struct Hangs(FakeTimer);
/// impl Worker for Hangs {
///     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         let timer = self.0.clone();
///         Box::pin(async move {
///             timer.sleep(Duration::from_millis(50)).await;
///             hang().await;
///         })
///     }
/// }
/// impl Restartable for Hangs {}
///
/// let timer = FakeTimer::new();
/// let hung = Arc::new(Mutex::new(Vec::new()));
/// let (seen, t) = (hung.clone(), timer.clone());
/// let tree = Supertree::new()
///     .with_watchdog(Duration::from_millis(200))
///     // Give up at the second hang.
///     .with_intensity(Intensity::new(1, Duration::from_secs(10)))
///     .add_worker(Hangs(timer.clone()))
///     .on_event(move |event| {
///         if let EventKind::Exited { exit: ChildExit::Hung, .. } = event.kind {
///             seen.lock().unwrap().push(t.elapsed().as_millis());
///         }
///     });
/// assert!(run_simulated(tree, timer.clone()).is_err());
/// // Restarted after the default backoff (50 ms), at 250 ms, in a new host,
/// // which showed life last at 250 ms: it hangs at 300 ms, killed at 450.
/// assert_eq!(*hung.lock().unwrap(), [200, 450]);
/// ```
pub fn hang() -> impl Future<Output = ()> + Send + 'static {
    Hang
}

/// What [`hang()`] returns.
struct Hang;

impl Future for Hang {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if let Some(host) = HOST.with(|h| h.borrow().clone()) {
            host.store(true, Ordering::SeqCst);
            return Poll::Pending;
        }
        if crate::ready::in_run() {
            tracing::warn!("supertrees::testing::hang(): blocking this worker's thread for good");
            loop {
                std::thread::park();
            }
        }
        Poll::Pending
    }
}
