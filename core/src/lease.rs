//! Restarting a worker in place, on a lease from its supervisor's machine.
//!
//! A supervisor's [`Machine`](crate::machine::Machine) makes every restart
//! decision. For a `OneForOne` worker it may hand the decision's *state* to
//! the worker host, so that a restart costs no round trip between processes:
//! each `Start` carries the worker's record (restarts so far, place in its
//! backoff sequence) as a lease, and a [`Grant`] tells how many restarts the
//! supervisor's intensity still allows. The host applies the very rule the
//! machine applies ([`ChildRecord::restart_delay`]) to that record and hands
//! the new record back with each `Restarted` note; the machine adopts it and
//! counts the restart. When the rule says "not again" or the budget is
//! spent, the host reports the exit and the machine decides, on the same
//! state. So there is one rule and one state: a host's death after four
//! in-place restarts is the fifth consecutive failure for the machine too.
//!
//! The same code runs in a real worker host and in the simulation's
//! simulated one ([`run_leased`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::machine::{ChildIdx, ChildPolicy, ChildRecord, Grant, RecordState};
use crate::ready::{panic_message, Panic, StopFlag};
use crate::wire::Note;
use crate::{ChildExit, Timer};

/// The leases a worker host holds: one per worker started with one, and the
/// supervisor's latest grant.
#[derive(Debug)]
pub struct Leases {
    /// The policies of the workers that may be restarted in place.
    policies: Vec<Option<ChildPolicy>>,
    /// The current record of each worker that holds a lease.
    records: Vec<Option<RecordState>>,
    grant: Grant,
    /// In-place restarts made so far (the `Restarted` notes sent).
    spent: u64,
}

impl Leases {
    /// Leases for the workers whose `policies` are given, under `grant`.
    pub fn new(policies: Vec<Option<ChildPolicy>>, grant: Grant) -> Self {
        let records = policies.iter().map(|_| None).collect();
        Self {
            policies,
            records,
            grant,
            spent: 0,
        }
    }

    /// Worker `child` starts, with this lease (or none: then every exit of
    /// this run goes back to the supervisor).
    pub fn start(&mut self, child: ChildIdx, lease: Option<RecordState>) {
        if let Some(slot) = self.records.get_mut(child.get()) {
            *slot = lease;
        }
    }

    /// Worker `child` (one started at run time) may be restarted in place
    /// by `policy`.
    pub fn set_policy(&mut self, child: ChildIdx, policy: ChildPolicy) {
        let n = child.get();
        if self.policies.len() <= n {
            self.policies.resize(n + 1, None);
            self.records.resize(n + 1, None);
        }
        self.policies[n] = Some(policy);
    }

    /// The supervisor's new grant.
    pub fn grant(&mut self, grant: Grant) {
        self.grant = grant;
    }

    /// Worker `child` ran for `ran_for` and ended with `exit`: the delay
    /// before it runs again in place and its record after this restart, or
    /// `None` when its supervisor must decide (no lease, the rule says no,
    /// or the budget is spent). Nothing changes when it returns `None`.
    pub fn spend(
        &mut self,
        child: ChildIdx,
        exit: &ChildExit,
        ran_for: Duration,
    ) -> Option<(Duration, RecordState)> {
        let policy = (*self.policies.get(child.get())?)?;
        let state = self.records.get_mut(child.get())?.as_mut()?;
        if let Some(budget) = self.grant.budget {
            if self.spent.saturating_sub(self.grant.as_of) >= u64::from(budget) {
                return None;
            }
        }
        let mut record = ChildRecord::new(policy, *state);
        let delay = record.restart_delay(exit, ran_for)?;
        record.restarted();
        *state = record.state;
        self.spent += 1;
        Some((delay, record.state))
    }
}

/// One run of a worker, as [`run_worker`](crate::ready::run_worker) makes
/// it: ends with the panic, if it panicked.
pub type Run = Pin<Box<dyn Future<Output = Result<(), Panic>> + Send>>;

/// Runs worker `child` (its `first` run, then each run made by `run`; a
/// panic is handed to `panicked`) and restarts it in place while its lease
/// allows, sending a `Restarted` note for each restart;
/// returns the exit its supervisor must decide on, with its reason (a
/// panic's message). Once `stop` is requested, a run that ends is
/// `Stopped` and not restarted, and a pending restart is not made. Backoff delays below
/// `spin_below` are waited out by yielding to the executor (runtime timers
/// tick in whole milliseconds), zero included: a worker that ends at once
/// must still let the rest of the host run.
#[allow(clippy::too_many_arguments)]
pub async fn run_leased<T: Timer>(
    child: ChildIdx,
    first: Run,
    mut run: impl FnMut() -> Run,
    stop: &std::sync::Arc<StopFlag>,
    panicked: impl Fn(&Panic),
    leases: &Mutex<Leases>,
    timer: &T,
    spin_below: Duration,
    note: impl Fn(Note),
) -> (ChildExit, Option<String>) {
    let mut next = Some(first);
    loop {
        let started = timer.now();
        let (exit, reason) = match next.take().unwrap_or_else(&mut run).await {
            Ok(()) => (ChildExit::Normal, None),
            Err(panic) => {
                panicked(&panic);
                (ChildExit::Panicked, Some(panic_message(panic.as_ref())))
            }
        };
        if stop.is_requested() {
            return (ChildExit::Stopped, None);
        }
        let ran_for = timer.now().saturating_duration_since(started);
        let spent = match leases.lock() {
            Ok(mut leases) => leases.spend(child, &exit, ran_for),
            Err(_) => None,
        };
        let Some((delay, state)) = spent else {
            return (exit, reason);
        };
        note(Note::Restarted {
            child,
            exit,
            reason,
            delay,
            state,
        });
        let paused = std::pin::pin!(pause(timer, delay, spin_below));
        if let futures::future::Either::Right(_) =
            futures::future::select(paused, stop.wait()).await
        {
            return (ChildExit::Stopped, None);
        }
    }
}

/// Waits out a backoff `delay`, yielding at least once.
async fn pause<T: Timer>(timer: &T, delay: Duration, spin_below: Duration) {
    if delay >= spin_below && !delay.is_zero() {
        return timer.sleep(delay).await;
    }
    let deadline = timer.now() + delay;
    loop {
        YieldNow(false).await;
        if timer.now() >= deadline {
            return;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackoffPolicy, RestartPolicy, Shutdown};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy(restart: RestartPolicy) -> ChildPolicy {
        ChildPolicy {
            restart,
            backoff: BackoffPolicy::new(ms(20), ms(10_000), Duration::from_secs(60), 2.0),
            shutdown: Shutdown::default(),
            start_timeout: None,
            is_supervisor: false,
            watchdog: None,
        }
    }

    fn idx(n: usize) -> ChildIdx {
        ChildIdx::new(n).unwrap()
    }

    #[test]
    fn a_lease_follows_the_backoff_and_hands_the_record_back() {
        let mut leases = Leases::new(
            vec![Some(policy(RestartPolicy::Always))],
            Grant {
                budget: None,
                as_of: 0,
            },
        );
        assert_eq!(
            leases.spend(idx(0), &ChildExit::Panicked, ms(1)),
            None,
            "no lease yet"
        );
        leases.start(idx(0), Some(RecordState::default()));
        let delays: Vec<Duration> = (0..4)
            .map(|_| leases.spend(idx(0), &ChildExit::Panicked, ms(1)).unwrap().0)
            .collect();
        assert_eq!(delays, [ms(20), ms(40), ms(80), ms(160)]);
        // The record handed back is what the machine continues from: its
        // next failure is the fifth.
        let (_, state) = leases.spend(idx(0), &ChildExit::Panicked, ms(1)).unwrap();
        assert_eq!(state.restarts, 5);
        let mut record = ChildRecord::new(policy(RestartPolicy::Always), state);
        assert_eq!(
            record.restart_delay(&ChildExit::Signaled(9), ms(1)),
            Some(ms(640))
        );
    }

    #[test]
    fn the_budget_is_spent_then_the_supervisor_decides() {
        let mut leases = Leases::new(
            vec![Some(policy(RestartPolicy::Always)), None],
            Grant {
                budget: Some(2),
                as_of: 0,
            },
        );
        leases.start(idx(0), Some(RecordState::default()));
        leases.start(idx(1), Some(RecordState::default()));
        assert!(
            leases.spend(idx(1), &ChildExit::Normal, ms(1)).is_none(),
            "not leasable"
        );
        assert!(leases.spend(idx(0), &ChildExit::Normal, ms(1)).is_some());
        assert!(leases.spend(idx(0), &ChildExit::Normal, ms(1)).is_some());
        assert!(
            leases.spend(idx(0), &ChildExit::Normal, ms(1)).is_none(),
            "budget spent"
        );
        // A grant made after the supervisor saw one of the two restarts
        // allows one more; the one it has not seen yet is not spent twice.
        leases.grant(Grant {
            budget: Some(2),
            as_of: 1,
        });
        assert!(leases.spend(idx(0), &ChildExit::Normal, ms(1)).is_some());
        assert!(leases.spend(idx(0), &ChildExit::Normal, ms(1)).is_none());
    }

    #[test]
    fn the_rule_decides_what_is_not_restarted() {
        let mut leases = Leases::new(
            vec![
                Some(policy(RestartPolicy::OnFailure)),
                Some(policy(RestartPolicy::Once)),
            ],
            Grant {
                budget: None,
                as_of: 0,
            },
        );
        leases.start(idx(0), Some(RecordState::default()));
        leases.start(idx(1), Some(RecordState::default()));
        assert!(leases.spend(idx(0), &ChildExit::Normal, ms(1)).is_none());
        assert!(leases.spend(idx(0), &ChildExit::Stopped, ms(1)).is_none());
        assert!(leases.spend(idx(0), &ChildExit::Panicked, ms(1)).is_some());
        assert!(leases.spend(idx(1), &ChildExit::Normal, ms(1)).is_some());
        assert!(leases.spend(idx(1), &ChildExit::Normal, ms(1)).is_none());
    }
}
