//! Model-based property test of the machine's slot and id bookkeeping for
//! children started at run time, driven the way a supervisor process
//! drives it: requests (adds, removals) are handled whenever they come,
//! while the reports and actions of earlier events may still wait to be
//! polled, as they do between the reads of one turn of the engine's loop
//! and its `carry_out`.
//!
//! The driver keeps what a real one keeps: what each slot holds (set when
//! an add is answered, cleared when its `Removed` is polled), and builds a
//! child from that when it polls a `Start`. The properties: an add never
//! gets a slot the driver still holds for another child, so every `Start`
//! and every report about a slot is about the child the driver has there
//! (a start runs its own argument); ids are handed out in increasing order
//! from the machine's first id and never again; a removal names exactly
//! the child with that id, or none; an operator's order (a restart, stop
//! or start of the child in a slot, or of a slot nobody holds) is answered
//! exactly once, within its bound.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::{prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
use proptest::strategy::Strategy as Gen;
use proptest::test_runner::TestCaseError;

use super::*;
use crate::props::config;
use crate::{BackoffPolicy, RestartPolicy, Shutdown};

/// One thing that happens to the supervisor.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `start_child`, with a restart policy.
    Add(RestartPolicy),
    /// A running child (the `pick`-th) exits on its own.
    Exit { pick: usize, failed: bool },
    /// A child asked to stop (the `pick`-th) exits.
    AnswerStop { pick: usize },
    /// `terminate_child` of the `pick`-th id handed out so far (removed
    /// ones included), or of one never handed out.
    Remove { pick: usize },
    /// An operator's restart, stop or start (`op` 0, 1, 2) of slot
    /// `slot`, held or not.
    Order { slot: usize, op: u8 },
    /// Time passes; the timeout is handled if due.
    Advance { ms: u64 },
    /// The driver polls the reports and actions, as `carry_out` does.
    Poll,
}

fn an_op() -> impl Gen<Value = Op> {
    prop_oneof![
        prop_oneof![
            Just(RestartPolicy::Never),
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Once),
        ]
        .prop_map(Op::Add),
        (0..8usize, prop::bool::ANY).prop_map(|(pick, failed)| Op::Exit { pick, failed }),
        (0..8usize).prop_map(|pick| Op::AnswerStop { pick }),
        (0..12usize).prop_map(|pick| Op::Remove { pick }),
        (0..8usize, 0..3u8).prop_map(|(slot, op)| Op::Order { slot, op }),
        (0..30u64).prop_map(|ms| Op::Advance { ms }),
        Just(Op::Poll),
    ]
}

/// A dynamic child's policies: a short backoff, and a stop that takes
/// until it is answered or 20 ms.
fn policy(restart: RestartPolicy) -> ChildPolicy {
    ChildPolicy {
        restart,
        backoff: BackoffPolicy::new(
            Duration::from_millis(5),
            Duration::from_millis(5),
            Duration::from_secs(60),
            1.0,
        ),
        shutdown: Shutdown::Timeout(Duration::from_millis(20)),
        start_timeout: None,
        is_supervisor: false,
        watchdog: None,
    }
}

/// What the driver keeps, as a supervisor process does.
struct Driver {
    m: Machine,
    base: Instant,
    now: Duration,
    /// What each slot holds for the driver: the id of the child it builds
    /// there (its "argument").
    slots: BTreeMap<usize, ChildId>,
    /// Children whose `Start` the driver carried out and that have not
    /// exited since, and those it was asked to stop or kill.
    running: BTreeSet<usize>,
    stopping: BTreeSet<usize>,
    /// Every id handed out, in order.
    ids: Vec<ChildId>,
    first_id: u64,
    /// Orders given and not answered yet, and how many were given.
    orders: BTreeSet<u64>,
    given: u64,
}

impl Driver {
    fn at(&self) -> Instant {
        self.base + self.now
    }

    /// Polls reports and actions as `carry_out` does (the reports before
    /// each action), checking each against what the driver holds.
    fn poll(&mut self) -> Result<(), TestCaseError> {
        loop {
            while let Some(report) = self.m.poll_report() {
                self.report(report)?;
            }
            let Some(action) = self.m.poll_action() else {
                return Ok(());
            };
            match action {
                Action::KillHost(_) => {}
                Action::Start(child) => {
                    let n = child.get();
                    // The driver builds the child from what the slot holds:
                    // it must be the child the machine has there.
                    prop_assert!(
                        self.slots.contains_key(&n),
                        "Start({n}) of a slot the driver holds nothing for"
                    );
                    prop_assert_eq!(self.m.child_id(child), self.slots.get(&n).copied());
                    self.running.insert(n);
                }
                Action::Stop(children) | Action::Kill(children) => {
                    for child in children {
                        prop_assert!(self.slots.contains_key(&child.get()));
                        if self.running.contains(&child.get()) {
                            self.stopping.insert(child.get());
                        }
                    }
                }
                Action::Grant | Action::Exit(_) => {}
            }
        }
    }

    fn report(&mut self, report: Report) -> Result<(), TestCaseError> {
        match report {
            Report::Removed { child, id } => {
                let n = child.get();
                prop_assert_eq!(
                    self.slots.remove(&n),
                    Some(id),
                    "Removed of slot {} as {}",
                    n,
                    id
                );
                prop_assert!(!self.running.contains(&n), "{} removed while it runs", id);
            }
            Report::Exited { child, .. } | Report::ChildReady(child) | Report::Held(child) => {
                prop_assert!(
                    self.slots.contains_key(&child.get()),
                    "a report about slot {} which the driver holds nothing for",
                    child
                );
            }
            Report::Answered(answer) => {
                prop_assert!(
                    self.orders.remove(&answer.ticket.0),
                    "an answer to order {} which is not waiting",
                    answer.ticket.0
                );
            }
            Report::Ready | Report::Stopping(_) => {}
        }
        Ok(())
    }

    fn op(&mut self, op: Op) -> Result<(), TestCaseError> {
        let now = self.at();
        match op {
            Op::Add(restart) => {
                if let Ok((child, id)) = self.m.handle_add(policy(restart), now) {
                    let n = child.get();
                    prop_assert!(
                        !self.slots.contains_key(&n),
                        "slot {} given to {} while the driver still holds {:?} there",
                        n,
                        id,
                        self.slots.get(&n)
                    );
                    let above = self.ids.last().map_or(self.first_id, |last| last.get() + 1);
                    prop_assert!(id.get() >= above, "{} after {:?}", id, self.ids.last());
                    self.ids.push(id);
                    self.slots.insert(n, id);
                }
            }
            Op::Exit { pick, failed } => {
                let up: Vec<usize> = self.running.difference(&self.stopping).copied().collect();
                if let Some(&n) = up.get(pick % up.len().max(1)) {
                    self.running.remove(&n);
                    let exit = if failed {
                        ChildExit::Panicked
                    } else {
                        ChildExit::Normal
                    };
                    self.m.handle_exit(idx(n), exit, now);
                }
            }
            Op::AnswerStop { pick } => {
                let asked: Vec<usize> = self.stopping.iter().copied().collect();
                if let Some(&n) = asked.get(pick % asked.len().max(1)) {
                    self.stopping.remove(&n);
                    self.running.remove(&n);
                    self.m.handle_exit(idx(n), ChildExit::Stopped, now);
                }
            }
            Op::Remove { pick } => {
                let never = ChildId::new(u64::MAX);
                let id = self.ids.get(pick).copied().unwrap_or(never);
                let held = self.slots.iter().find(|(_, &i)| i == id).map(|(&n, _)| n);
                let removed = self.m.handle_remove(id, now).map(|c| c.get());
                // A live id names its own slot; any other, none.
                match (removed, held) {
                    (Ok(n), Some(h)) => prop_assert_eq!(n, h),
                    (Err(RemoveError::Unknown), _) => {
                        prop_assert!(self.m.find(id).is_none());
                    }
                    (Ok(n), None) => {
                        return Err(TestCaseError::fail(format!(
                            "{id} removed from slot {n}, which the driver does not hold for it"
                        )))
                    }
                }
            }
            Op::Order { slot, op } => {
                let ticket = self.given;
                self.given += 1;
                self.orders.insert(ticket);
                let order = crate::control::Order {
                    ticket: crate::control::Ticket(ticket),
                    path: crate::control::NodePath::parse(&format!("root/{slot}"))
                        .map_err(|e| TestCaseError::fail(e.to_string()))?,
                    op: crate::control::Op::ALL[usize::from(op) % 3],
                };
                self.m.handle_order(order, idx(slot), now);
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(ms);
                let now = self.at();
                if self.m.poll_timeout().is_some_and(|t| t <= now) {
                    self.m.handle_timeout(now);
                }
            }
            Op::Poll => self.poll()?,
        }
        Ok(())
    }
}

fn idx(n: usize) -> ChildIdx {
    ChildIdx::new(n).expect("a small index")
}

proptest! {
    #![proptest_config(config())]

    /// A start always runs its own argument, reports are about the child
    /// they name, and ids are never reused, whenever the driver polls.
    #[test]
    fn slots_and_ids_hold_however_late_the_driver_polls(
        ops in prop::collection::vec(an_op(), 1..120),
        max in prop::option::of(1..6u32),
        first_id in 1..1_000u64,
    ) {
        let m = Machine::new("root".to_owned(), [], Strategy::OneForOne, Intensity::unlimited(), Shutdown::Infinity, None)
            .with_dynamic(max, first_id);
        let mut d = Driver {
            m,
            base: Instant::now(),
            now: Duration::ZERO,
            slots: BTreeMap::new(),
            running: BTreeSet::new(),
            stopping: BTreeSet::new(),
            ids: Vec::new(),
            first_id,
            orders: BTreeSet::new(),
            given: 0,
        };
        d.m.handle_start(d.at());
        for op in ops {
            d.op(op)?;
        }
        d.poll()?;
        // Every order's bound (20 ms of stop and 5 s) passes: each was
        // answered once.
        d.op(Op::Advance { ms: 6_000 })?;
        d.poll()?;
        prop_assert!(d.orders.is_empty(), "orders never answered: {:?}", d.orders);
        let distinct: BTreeSet<ChildId> = d.ids.iter().copied().collect();
        prop_assert_eq!(distinct.len(), d.ids.len());
    }
}
