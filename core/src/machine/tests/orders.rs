//! Operators' orders (`handle_order`): exact timelines of a restart asked
//! from outside, its refusals and its bound.

use super::*;
use crate::control::{Busy, NodePath, Op, Order, Refusal, Ticket};
use crate::RestartPolicy::Always as Permanent;

/// An operator's restart of child `n`.
fn order(ticket: u64, n: usize) -> Order {
    super::operator::order(ticket, n, Op::Restart)
}

impl Harness {
    fn restart(&mut self, ticket: u64, n: usize, t: u64) -> Vec<Action> {
        let now = self.at(t);
        self.m.handle_order(order(ticket, n), idx(n), now);
        self.drain()
    }

    /// The answers among the reports so far, as (ticket, result).
    fn answers(&mut self) -> Vec<(u64, Result<(), Refusal>)> {
        self.reports()
            .into_iter()
            .filter_map(|r| match r {
                Report::Answered(a) => Some((a.ticket.0, a.result)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_restart_stops_the_child_in_order_and_starts_it_at_once_uncounted() {
    // One restart in 10 s would give up on a failure's second restart.
    let mut h = Harness::new(
        vec![worker(Permanent), worker(Permanent)],
        Strategy::OneForOne,
        Intensity::new(1, Duration::from_secs(10)),
    );
    h.start(0);
    h.reports();
    for (ticket, t) in [(1, 100), (2, 300), (3, 500)] {
        assert_eq!(h.restart(ticket, 1, t), vec![Action::Stop(vec![idx(1)])]);
        assert!(h.answers().is_empty(), "answered before it started again");
        assert_eq!(h.stopped(1, t + 10), vec![Action::Start(idx(1))]);
        let reports = h.reports();
        assert_eq!(
            reports[0],
            Report::Exited {
                child: idx(1),
                exit: ChildExit::Stopped,
                restart: Some(Duration::ZERO),
                reason: None
            }
        );
        assert!(
            matches!(&reports[1], Report::Answered(a) if a.ticket == Ticket(ticket) && a.result == Ok(())),
            "{reports:?}"
        );
    }
    // Three operator's restarts counted nowhere: a failure is still
    // restarted, by its backoff.
    assert!(h.exit(0, Panicked, 600).is_empty());
    assert_eq!(h.timeout(700), vec![Action::Start(idx(0))]);
    assert!(!h.m.is_shutting_down());
}

#[test]
fn a_restart_starts_a_child_waiting_for_its_backoff_now_and_resets_it() {
    let mut h = Harness::one_for_one(vec![worker(Permanent)]);
    h.start(0);
    h.exit(0, Panicked, 10);
    assert_eq!(h.timeout(110), vec![Action::Start(idx(0))]);
    h.exit(0, Panicked, 120);
    // Its restart is due at 320 (200 ms): the operator's comes first.
    assert_eq!(h.m.poll_timeout(), Some(h.base + ms(320)));
    h.reports();
    assert_eq!(h.restart(7, 0, 150), vec![Action::Start(idx(0))]);
    assert_eq!(h.answers(), vec![(7, Ok(()))]);
    // The backoff starts over: 100 ms after its next failure.
    h.exit(0, Panicked, 160);
    assert_eq!(h.m.poll_timeout(), Some(h.base + ms(260)));
}

#[test]
fn a_restart_starts_a_child_that_finished_for_good() {
    let mut h = Harness::one_for_one(vec![worker(RestartPolicy::OnFailure), worker(Permanent)]);
    h.start(0);
    assert!(h.exit(0, Normal, 10).is_empty());
    h.reports();
    assert_eq!(h.restart(1, 0, 20), vec![Action::Start(idx(0))]);
    assert_eq!(h.answers(), vec![(1, Ok(()))]);
}

#[test]
fn under_one_for_all_a_restart_leaves_the_siblings_alone() {
    let mut h = Harness::new(
        vec![worker(Permanent), worker(Permanent), worker(Permanent)],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    assert_eq!(
        h.start(0),
        vec![
            Action::Start(idx(0)),
            Action::Start(idx(1)),
            Action::Start(idx(2))
        ]
    );
    h.reports();
    assert_eq!(h.restart(1, 1, 100), vec![Action::Stop(vec![idx(1)])]);
    // Its siblings ready: it starts at once, in its place.
    assert_eq!(h.stopped(1, 110), vec![Action::Start(idx(1))]);
    assert_eq!(h.answers(), vec![(1, Ok(()))]);
}

#[test]
fn orders_are_refused_for_what_is_not_there_or_busy() {
    let mut h = Harness::one_for_one(vec![worker(Permanent), worker(Permanent)]);
    let early = h.at(0);
    h.m.handle_order(order(1, 0), idx(0), early);
    assert_eq!(h.answers(), vec![(1, Err(Refusal::NotRunning))]);
    h.start(0);
    h.reports();
    assert!(h.restart(2, 5, 10).is_empty());
    assert_eq!(h.answers(), vec![(2, Err(Refusal::NotFound))]);
    h.restart(3, 0, 20);
    assert!(h.restart(4, 0, 30).is_empty());
    assert_eq!(h.answers(), vec![(4, Err(Refusal::Busy(Busy::Ordered)))]);
    // A shutdown answers what waits, and refuses what comes.
    h.shutdown(40);
    assert_eq!(h.answers(), vec![(3, Err(Refusal::ShuttingDown))]);
    h.restart(5, 1, 50);
    assert_eq!(h.answers(), vec![(5, Err(Refusal::ShuttingDown))]);
}

#[test]
fn an_order_not_carried_out_within_its_bound_is_answered_timed_out() {
    // Infinity: a child that never stops holds its restart for ever; the
    // order is answered at 30 s, and the restart still happens later.
    let mut h = Harness::one_for_one(vec![worker(Permanent)]);
    h.start(0);
    h.reports();
    assert_eq!(h.restart(1, 0, 100), vec![Action::Stop(vec![idx(0)])]);
    assert_eq!(h.m.poll_timeout(), Some(h.base + ms(30_100)));
    assert!(h.timeout(30_099).is_empty());
    assert!(h.answers().is_empty());
    h.timeout(30_100);
    assert_eq!(
        h.answers(),
        vec![(1, Err(Refusal::TimedOut(Duration::from_secs(30))))]
    );
    assert_eq!(h.m.poll_timeout(), None);
    assert_eq!(h.stopped(0, 40_000), vec![Action::Start(idx(0))]);
}

#[test]
fn a_restart_kills_a_child_that_does_not_stop_in_its_shutdown_time() {
    let mut h = Harness::one_for_one(vec![ChildPolicy {
        shutdown: Shutdown::Timeout(ms(500)),
        ..worker(Permanent)
    }]);
    h.start(0);
    h.reports();
    assert_eq!(h.restart(1, 0, 0), vec![Action::Stop(vec![idx(0)])]);
    assert_eq!(h.timeout(500), vec![Action::Kill(vec![idx(0)])]);
    assert_eq!(h.exit(0, Signaled(9), 510), vec![Action::Start(idx(0))]);
    assert_eq!(h.answers(), vec![(1, Ok(()))]);
}

#[test]
fn a_restart_of_a_child_supervisor_restarts_its_subtree_and_a_removed_child_is_not_found() {
    let mut h = Harness::one_for_one(vec![supervisor(Permanent)]);
    h.m = std::mem::replace(
        &mut h.m,
        Machine::new(
            String::new(),
            [],
            Strategy::OneForOne,
            Intensity::unlimited(),
            Shutdown::Infinity,
            None,
        ),
    )
    .with_dynamic(None, 1);
    h.start(0);
    assert_eq!(h.restart(1, 0, 10), vec![Action::Stop(vec![idx(0)])]);
    assert_eq!(h.stopped(0, 20), vec![Action::Start(idx(0))]);
    let now = h.at(30);
    let (child, id) = h.m.handle_add(worker(Permanent), now).expect("added");
    h.drain();
    h.reports();
    h.restart(2, child.get(), 40);
    h.m.handle_remove(id, h.base + ms(41)).expect("removed");
    h.stopped(child.get(), 50);
    let answers = h.answers();
    assert_eq!(answers, vec![(2, Err(Refusal::NotFound))]);
}

#[test]
fn a_restart_of_a_member_of_a_group_restart_under_way_waits_for_the_group() {
    // root/0 fails; under OneForAll the group stops root/2, then root/1,
    // one at a time: an operator's restart of root/1 meanwhile does not
    // stop it out of turn, and is answered when the group starts it.
    let mut h = Harness::new(
        vec![worker(Permanent), worker(Permanent), worker(Permanent)],
        Strategy::OneForAll,
        Intensity::unlimited(),
    );
    h.start(0);
    h.reports();
    assert_eq!(h.exit(0, Panicked, 10), vec![Action::Stop(vec![idx(2)])]);
    assert!(h.restart(1, 1, 20).is_empty(), "stopped out of turn");
    assert!(h.answers().is_empty());
    assert_eq!(h.stopped(2, 30), vec![Action::Stop(vec![idx(1)])]);
    assert!(h.stopped(1, 40).is_empty());
    let starts = h.timeout(110);
    assert_eq!(
        starts,
        vec![
            Action::Start(idx(0)),
            Action::Start(idx(1)),
            Action::Start(idx(2))
        ]
    );
    assert_eq!(h.answers(), vec![(1, Ok(()))]);
}

fn deep(ticket: u64) -> Order {
    Order {
        ticket: Ticket(ticket),
        path: NodePath::parse("root/0/3").expect("a path"),
        op: Op::Restart,
    }
}

#[test]
fn an_order_sent_down_is_answered_by_the_child_once_or_lost_or_timed_out() {
    let mut h = Harness::one_for_one(vec![supervisor(Permanent), supervisor(Permanent)]);
    h.start(0);
    h.reports();
    let bound = Duration::from_secs(7);
    let now = h.at(10);
    assert!(h.m.handle_forward(deep(1), idx(0), bound, now));
    assert!(h.m.handle_forward(deep(2), idx(0), bound, now));
    // Its bound and the grace of the way up: the machine wakes for it.
    assert_eq!(h.m.poll_timeout(), Some(now + ms(8_000)));
    // An answer to what was not sent to that child, or about another
    // path, is dropped; the real one goes up, once.
    h.m.handle_answer(idx(1), deep(1).answer(Ok(())));
    let mut other = deep(1).answer(Ok(()));
    other.path = NodePath::parse("root/0/4").expect("a path");
    h.m.handle_answer(idx(0), other);
    assert!(h.answers().is_empty());
    h.m.handle_answer(idx(0), deep(1).answer(Ok(())));
    h.m.handle_answer(idx(0), deep(1).answer(Ok(())));
    assert_eq!(h.answers(), vec![(1, Ok(()))]);
    // The child exits before it answers order 2: lost.
    h.exit(0, Signaled(9), 20);
    assert_eq!(h.answers(), vec![(2, Err(Refusal::Lost))]);
    // A child that never answers (stopped): timed out at the bound.
    let now = h.at(30);
    assert!(h.m.handle_forward(deep(3), idx(1), bound, now));
    // (root/0's restart is due meanwhile.)
    assert_eq!(h.timeout(8_029), vec![Action::Start(idx(0))]);
    assert!(h.answers().is_empty());
    h.timeout(8_030);
    assert_eq!(h.answers(), vec![(3, Err(Refusal::TimedOut(ms(8_000))))]);
}

#[test]
fn an_order_is_not_sent_down_to_a_child_that_does_not_run() {
    let mut h = Harness::one_for_one(vec![supervisor(Permanent)]);
    let early = h.at(0);
    assert!(!h.m.handle_forward(deep(1), idx(0), ms(100), early));
    assert_eq!(h.answers(), vec![(1, Err(Refusal::NotRunning))]);
    h.start(0);
    h.exit(0, Signaled(9), 10);
    h.reports();
    // Waiting for its restart.
    let now = h.at(20);
    assert!(!h.m.handle_forward(deep(2), idx(0), ms(100), now));
    assert_eq!(h.answers(), vec![(2, Err(Refusal::NotRunning))]);
    h.shutdown(30);
    let now = h.at(40);
    assert!(!h.m.handle_forward(deep(3), idx(0), ms(100), now));
    assert_eq!(h.answers(), vec![(3, Err(Refusal::ShuttingDown))]);
}
