//! [`FakeTimer`]: a clock that only moves when told to.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::{BoxFuture, Timer};

/// A virtual clock for deterministic tests.
///
/// Time stands still until [`advance`](FakeTimer::advance) moves it, or until
/// [`run_simulated`](super::run_simulated) jumps it to the next deadline when
/// every task waits. Clones share one clock, so workers can hold a clone and
/// record [`elapsed`](FakeTimer::elapsed) when they start.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::testing::FakeTimer;
/// use supertrees::Timer;
///
/// let timer = FakeTimer::new();
/// let start = timer.now();
/// timer.advance(Duration::from_millis(5));
/// assert_eq!(timer.now() - start, Duration::from_millis(5));
/// assert_eq!(timer.clone().elapsed(), Duration::from_millis(5));
/// ```
#[derive(Debug, Clone)]
pub struct FakeTimer {
    clock: Arc<Mutex<Clock>>,
}

#[derive(Debug)]
struct Clock {
    start: Instant,
    elapsed: Duration,
    next_id: u64,
    /// Pending sleeps by (deadline, id).
    sleepers: BTreeMap<(Duration, u64), Option<Waker>>,
    /// The ids of the pending sleeps made in the background
    /// ([`FakeTimer::sleep_in_background`]).
    background: BTreeSet<u64>,
}

impl FakeTimer {
    /// A clock at zero.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(Mutex::new(Clock {
                start: Instant::now(),
                elapsed: Duration::ZERO,
                next_id: 0,
                sleepers: BTreeMap::new(),
                background: BTreeSet::new(),
            })),
        }
    }

    fn clock(&self) -> MutexGuard<'_, Clock> {
        // A panic while the lock is held leaves the clock consistent (every
        // update is a single assignment), so a poisoned lock is still usable.
        self.clock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The clock's current instant: the instant it was made at, plus
    /// [`elapsed`](Self::elapsed). The same as [`Timer::now`], without the
    /// trait in scope.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::testing::FakeTimer;
    ///
    /// let timer = FakeTimer::new();
    /// let start = timer.now();
    /// timer.advance(Duration::from_millis(5));
    /// assert_eq!(timer.now() - start, Duration::from_millis(5));
    /// ```
    pub fn now(&self) -> Instant {
        let clock = self.clock();
        clock.start + clock.elapsed
    }

    /// Time passed on this clock since [`new`](FakeTimer::new).
    pub fn elapsed(&self) -> Duration {
        self.clock().elapsed
    }

    /// Moves the clock forward by `by`, waking every sleep that is due.
    pub fn advance(&self, by: Duration) {
        let target = self.elapsed() + by;
        self.advance_to(target);
    }

    /// Moves the clock to `elapsed` (never backwards), waking due sleeps.
    fn advance_to(&self, elapsed: Duration) {
        let due: Vec<Waker> = {
            let mut clock = self.clock();
            clock.elapsed = clock.elapsed.max(elapsed);
            let now = clock.elapsed;
            let due_keys: Vec<_> = clock
                .sleepers
                .range(..=(now, u64::MAX))
                .map(|(k, _)| *k)
                .collect();
            due_keys
                .into_iter()
                .filter_map(|k| clock.sleepers.get_mut(&k).and_then(Option::take))
                .collect()
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// Jumps to the earliest pending deadline; `false` if there is none
    /// but those of sleeps in the background, which keep nothing going.
    pub fn jump_to_next_deadline(&self) -> bool {
        let next = {
            let clock = self.clock();
            let now = clock.elapsed;
            // Deadlines at or before now were woken already.
            let pending = || {
                clock
                    .sleepers
                    .keys()
                    .filter(move |(deadline, _)| *deadline > now)
            };
            let going = pending().any(|(_, id)| !clock.background.contains(id));
            going
                .then(|| pending().map(|(deadline, _)| *deadline).next())
                .flatten()
        };
        match next {
            Some(deadline) => {
                self.advance_to(deadline);
                true
            }
            None => false,
        }
    }
}

impl FakeTimer {
    /// A sleep that does not keep a simulation going by itself: while
    /// nothing but such sleeps is pending, the simulation has stalled (the
    /// simulated processes' signs of life, which a tree shows as long as
    /// it runs).
    pub(crate) fn sleep_in_background(&self, duration: Duration) -> BoxFuture {
        let sleep = self.sleep_keyed(duration);
        self.clock().background.insert(sleep.key.1);
        Box::pin(sleep)
    }

    fn sleep_keyed(&self, duration: Duration) -> Sleep {
        let mut clock = self.clock();
        let id = clock.next_id;
        clock.next_id += 1;
        let deadline = clock.elapsed.saturating_add(duration);
        clock.sleepers.insert((deadline, id), None);
        Sleep {
            timer: self.clone(),
            key: (deadline, id),
        }
    }
}

impl Default for FakeTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer for FakeTimer {
    fn now(&self) -> Instant {
        FakeTimer::now(self)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(self.sleep_keyed(duration))
    }
}

/// A pending [`FakeTimer::sleep`]; dropping it withdraws its deadline, so a
/// cancelled sleep never makes the simulation jump.
struct Sleep {
    timer: FakeTimer,
    key: (Duration, u64),
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut clock = self.timer.clock();
        if clock.elapsed >= self.key.0 {
            clock.sleepers.remove(&self.key);
            clock.background.remove(&self.key.1);
            return Poll::Ready(());
        }
        clock.sleepers.insert(self.key, Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        let mut clock = self.timer.clock();
        clock.sleepers.remove(&self.key);
        clock.background.remove(&self.key.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn sleep_completes_only_once_its_deadline_is_reached() {
        let timer = FakeTimer::new();
        let mut sleep = timer.sleep(Duration::from_millis(10));
        assert!(sleep.as_mut().now_or_never().is_none());
        timer.advance(Duration::from_millis(9));
        assert!(sleep.as_mut().now_or_never().is_none());
        timer.advance(Duration::from_millis(1));
        assert!(sleep.as_mut().now_or_never().is_some());
    }

    #[test]
    fn dropped_sleeps_leave_no_deadline() {
        let timer = FakeTimer::new();
        drop(timer.sleep(Duration::from_secs(1)));
        assert!(!timer.jump_to_next_deadline());
        assert_eq!(timer.elapsed(), Duration::ZERO);
    }

    #[test]
    fn jumps_to_the_earliest_deadline() {
        let timer = FakeTimer::new();
        let _a = timer.sleep(Duration::from_secs(3));
        let _b = timer.sleep(Duration::from_secs(1));
        assert!(timer.jump_to_next_deadline());
        assert_eq!(timer.elapsed(), Duration::from_secs(1));
    }
}
