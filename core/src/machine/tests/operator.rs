//! An operator's stop and start (`Op::Stop`, `Op::Start`): exact timelines
//! of a child held down, kept out of its group's restarts, and started
//! again.

use super::*;
use crate::control::{NodePath, Op, Order, Refusal, Ticket};
use crate::RestartPolicy::Always as Permanent;

/// Order `ticket`: `op` of child `n` of the root.
pub(super) fn order(ticket: u64, n: usize, op: Op) -> Order {
    Order {
        ticket: Ticket(ticket),
        path: NodePath::parse(&format!("root/{n}")).expect("a path"),
        op,
    }
}

/// The answers told, as (ticket, result), and the children held.
type Told = (Vec<(u64, Result<(), Refusal>)>, Vec<usize>);

impl Harness {
    fn op(&mut self, op: Op, ticket: u64, n: usize, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_order(order(ticket, n, op), idx(n), now);
        self.drain()
    }

    /// The reports so far: answers as (ticket, result), `Held` as the
    /// child, the rest dropped.
    fn told(&mut self) -> Told {
        let (mut answers, mut held) = (Vec::new(), Vec::new());
        for report in self.reports() {
            match report {
                Report::Answered(a) => answers.push((a.ticket.0, a.result)),
                Report::Held(child) => held.push(child.get()),
                _ => {}
            }
        }
        (answers, held)
    }
}

#[test]
fn a_stop_holds_the_child_down_until_a_start() {
    let mut h = Harness::one_for_one(vec![worker(Permanent), worker(Permanent)]);
    h.start(0);
    h.reports();
    assert_eq!(h.op(Op::Stop, 1, 1, 100), [Stop([1])]);
    assert_eq!(h.told(), (vec![], vec![]), "answered before it stopped");
    assert!(h.stopped(1, 110).is_empty(), "restarted by its policy");
    let reports = h.reports();
    assert_eq!(
        reports[0],
        Report::Exited {
            child: idx(1),
            exit: ChildExit::Stopped,
            restart: None,
            reason: None
        }
    );
    assert_eq!(reports[1], Report::Held(idx(1)));
    assert!(
        matches!(&reports[2], Report::Answered(a) if a.ticket == Ticket(1) && a.result == Ok(()))
    );
    // Nothing is due: its policy does not restart it.
    assert_eq!(h.next_timeout(), None);
    assert!(h.timeout(60_000).is_empty());
    // A second stop is refused; a start brings it back at once.
    assert!(h.op(Op::Stop, 2, 1, 60_100).is_empty());
    assert_eq!(h.told(), (vec![(2, Err(Refusal::AlreadyStopped))], vec![]));
    assert_eq!(h.op(Op::Start, 3, 1, 60_200), [Start(1)]);
    assert_eq!(h.told(), (vec![(3, Ok(()))], vec![]));
    // Started, it is an ordinary child again: restarted after a failure.
    assert!(h.exit(1, Panicked, 60_300).is_empty());
    assert_eq!(h.timeout(60_400), [Start(1)]);
}

#[test]
fn a_start_of_a_child_no_operator_stopped_is_refused() {
    let mut h = Harness::one_for_one(vec![worker(Permanent), worker(RestartPolicy::Never)]);
    h.start(0);
    h.reports();
    assert!(h.op(Op::Start, 1, 0, 10).is_empty());
    // One that finished by its policy is not an operator's to start.
    assert!(h.exit(1, Normal, 20).is_empty());
    assert!(h.op(Op::Start, 2, 1, 30).is_empty());
    assert_eq!(
        h.told().0,
        vec![
            (1, Err(Refusal::AlreadyRunning)),
            (2, Err(Refusal::AlreadyRunning))
        ]
    );
}

#[test]
fn the_last_child_held_down_keeps_its_supervisor_running() {
    let mut h = Harness::one_for_one(vec![worker(Permanent)]);
    h.start(0);
    assert_eq!(h.op(Op::Stop, 1, 0, 10), [Stop([0])]);
    // No child runs, none will by its policy: without the hold the
    // supervisor would be done.
    assert!(h.stopped(0, 20).is_empty(), "the supervisor exited");
    assert_eq!(h.op(Op::Start, 2, 0, 30), [Start(0)]);
    // The hold gone, a child finished for good ends the supervisor as ever.
    assert_eq!(h.op(Op::Stop, 3, 0, 40), [Stop([0])]);
    assert!(h.stopped(0, 50).is_empty());
    assert_eq!(h.shutdown(60), [Exit(Outcome::Normal)]);
}

#[test]
fn under_one_for_all_a_held_child_is_left_out_of_its_group() {
    let mut h = Harness::new(always(3), Strategy::OneForAll, Intensity::unlimited());
    assert_eq!(h.start(0), [Start(0), Start(1), Start(2)]);
    h.reports();
    assert_eq!(h.op(Op::Stop, 1, 1, 10), [Stop([1])]);
    assert!(h.stopped(1, 20).is_empty());
    // Child 0 fails: the group stops child 2, and starts 0 and 2, not 1.
    assert_eq!(h.exit(0, Panicked, 30), [Stop([2])]);
    assert!(h.stopped(2, 40).is_empty());
    assert_eq!(h.timeout(130), [Start(0), Start(2)]);
    assert!(!h.m.is_shutting_down());
    assert_eq!(h.op(Op::Start, 2, 1, 200), [Start(1)]);
}

#[test]
fn under_rest_for_one_a_held_child_stays_down_when_an_earlier_one_fails() {
    let mut h = Harness::new(always(3), Strategy::RestForOne, Intensity::unlimited());
    h.start(0);
    assert_eq!(h.op(Op::Stop, 1, 2, 10), [Stop([2])]);
    assert!(h.stopped(2, 20).is_empty());
    assert_eq!(h.exit(0, Panicked, 30), [Stop([1])]);
    assert!(h.stopped(1, 40).is_empty());
    assert_eq!(h.timeout(130), [Start(0), Start(1)]);
    assert_eq!(h.next_timeout(), None);
}

#[test]
fn a_stop_during_a_group_restart_holds_a_stopped_member_at_once() {
    let mut h = Harness::new(always(3), Strategy::OneForAll, Intensity::unlimited());
    h.start(0);
    h.reports();
    // Child 0 fails; the group stops 2 (then 1).
    assert_eq!(h.exit(0, Panicked, 10), [Stop([2])]);
    assert_eq!(h.stopped(2, 20), [Stop([1])]);
    // Child 2 waits with the group: held at once, answered at once.
    assert!(h.op(Op::Stop, 1, 2, 25).is_empty());
    assert_eq!(h.told(), (vec![(1, Ok(()))], vec![2]));
    // Child 1 is stopped by the group, in turn: a stop of it now waits
    // for that stop and holds it.
    assert!(h.op(Op::Stop, 2, 1, 26).is_empty());
    assert_eq!(
        h.told(),
        (
            vec![(2, Err(Refusal::Busy(crate::control::Busy::Stopping)))],
            vec![]
        )
    );
    assert!(h.stopped(1, 30).is_empty());
    assert_eq!(h.timeout(110), [Start(0), Start(1)]);
}

#[test]
fn a_stop_of_a_child_waiting_for_its_backoff_cancels_its_restart() {
    let mut h = Harness::one_for_one(vec![worker(Permanent), worker(Permanent)]);
    h.start(0);
    h.reports();
    assert!(h.exit(0, Panicked, 10).is_empty());
    assert_eq!(h.next_timeout(), Some(110));
    assert!(h.op(Op::Stop, 1, 0, 50).is_empty());
    assert_eq!(h.told(), (vec![(1, Ok(()))], vec![0]));
    assert_eq!(h.next_timeout(), None);
    assert!(h.timeout(110).is_empty());
    // Started by the operator at once, its backoff reset.
    assert_eq!(h.op(Op::Start, 2, 0, 200), [Start(0)]);
    assert!(h.exit(0, Panicked, 210).is_empty());
    assert_eq!(h.next_timeout(), Some(310));
}

#[test]
fn a_restart_of_a_held_child_starts_it() {
    let mut h = Harness::one_for_one(vec![worker(Permanent), worker(Permanent)]);
    h.start(0);
    h.op(Op::Stop, 1, 1, 10);
    h.stopped(1, 20);
    h.reports();
    assert_eq!(h.op(Op::Restart, 2, 1, 30), [Start(1)]);
    assert_eq!(h.told().0, vec![(2, Ok(()))]);
    assert_eq!(h.op(Op::Stop, 3, 1, 40), [Stop([1])], "still held");
}

#[test]
fn a_stop_of_a_child_started_at_run_time_removes_it() {
    let mut h = Harness::dynamic(vec![], Strategy::OneForOne, Intensity::unlimited(), None);
    h.start(0);
    let (n, id, _) = h.added(worker(Permanent), 10);
    h.reports();
    assert_eq!(h.op(Op::Stop, 1, n, 20), [Stop([n])]);
    assert!(h.stopped(n, 30).is_empty());
    let reports = h.reports();
    assert!(
        reports.contains(&Report::Removed { child: idx(n), id }),
        "{reports:?}"
    );
    assert!(
        reports.iter().any(
            |r| matches!(r, Report::Answered(a) if a.ticket == Ticket(1) && a.result == Ok(()))
        ),
        "{reports:?}"
    );
    assert!(!reports.contains(&Report::Held(idx(n))));
}

#[test]
fn no_stop_or_start_while_the_supervisor_shuts_down() {
    let mut h = Harness::one_for_one(vec![worker(Permanent), worker(Permanent)]);
    h.start(0);
    h.op(Op::Stop, 1, 0, 10);
    h.stopped(0, 20);
    h.shutdown(30);
    h.reports();
    h.op(Op::Start, 2, 0, 40);
    h.op(Op::Stop, 3, 1, 40);
    assert_eq!(
        h.told().0,
        vec![
            (2, Err(Refusal::ShuttingDown)),
            (3, Err(Refusal::ShuttingDown))
        ]
    );
}

#[test]
fn a_second_order_about_a_child_waits_its_turn_and_each_is_answered_its_own_way() {
    // Child 0 fails; under OneForAll the group stops 2, then 1; child 1's
    // restart waits for the group: a stop or start of it meanwhile is
    // refused, and the restart is answered when the group starts it.
    let mut h = Harness::new(always(3), Strategy::OneForAll, Intensity::unlimited());
    h.start(0);
    h.reports();
    assert_eq!(h.exit(0, Panicked, 10), [Stop([2])]);
    assert!(h.op(Op::Restart, 1, 1, 20).is_empty());
    assert!(h.op(Op::Stop, 2, 1, 21).is_empty());
    assert!(h.op(Op::Start, 3, 1, 22).is_empty());
    let busy = Err(Refusal::Busy(crate::control::Busy::Ordered));
    assert_eq!(h.told(), (vec![(2, busy), (3, busy)], vec![]));
    assert_eq!(h.stopped(2, 30), [Stop([1])]);
    assert!(h.stopped(1, 40).is_empty());
    assert_eq!(h.timeout(110), [Start(0), Start(1), Start(2)]);
    assert_eq!(h.told(), (vec![(1, Ok(()))], vec![]));
    // Its turn over, the next order is carried out.
    assert_eq!(h.op(Op::Stop, 4, 1, 120), [Stop([1])]);
    assert!(h.stopped(1, 130).is_empty());
    assert_eq!(h.told(), (vec![(4, Ok(()))], vec![1]));
}
