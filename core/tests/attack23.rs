//! Attacks on the figures (review of issue 23), on virtual time.
//!
//! * A template's label is `<supervisor>/<template>`: a template named
//!   like a child of the same supervisor (a named child, or a position,
//!   since a template's name may be digits only) shares that child's
//!   series, so neither reads right. `start()` must refuse such a tree,
//!   or their series must differ.
//! * A call whose future is dropped after its message was queued (the
//!   server got it) is counted under no outcome: decided so, and
//!   documented (`supertrees_mailbox_calls_total` counts calls that
//!   ended); the test holds it to that.

use std::collections::BTreeMap;
use std::time::Duration;

use supertrees_core::{Error, RestartPolicy, Supertree};

mod common;
use common::{run, worker, Run};

/// Starts two children of `template`, one after the other.
fn starter(template: &'static str) -> Run {
    worker(RestartPolicy::Never, move || {
        Box::pin(async move {
            for n in 0..2u32 {
                supertrees_core::start_child(template, n)
                    .await
                    .expect("started");
            }
        })
    })
}

/// A child that returns at once: one exit `exited` each.
fn done() -> Run {
    worker(RestartPolicy::Never, || Box::pin(async {}))
}

/// A child that runs until the tree stalls.
fn forever() -> Run {
    worker(RestartPolicy::Never, || {
        Box::pin(std::future::pending::<()>())
    })
}

fn check_apart(figures: Result<BTreeMap<String, f64>, Error>, child: &str, template: &str) {
    let figures = match figures {
        // Refused: fine.
        Err(Error::InvalidName { .. } | Error::DuplicateName { .. }) => return,
        Err(other) => panic!("{other}"),
        Ok(figures) => figures,
    };
    // The static child runs (up 1) and never exited; the template's two
    // children exited once each and are gone (up 0).
    let up = format!("supertrees_child_up{{path={child}}}");
    let exits = format!("supertrees_child_exits_total{{path={child},reason=exited}}");
    assert_eq!(
        figures.get(&up),
        Some(&1.0),
        "the child {child} runs: {figures:#?}"
    );
    assert_eq!(
        figures.get(&exits),
        None,
        "the child {child} never exited, its template {template}'s children did: {figures:#?}"
    );
}

#[test]
fn a_template_named_like_a_named_child_shares_its_series() {
    let tree = Supertree::new().with_metrics().add_supervisor(|s| {
        s.add_dynamic("conn", |_n: u32| done())
            .add_named_worker("conn", forever())
            .add_worker(starter("conn"))
    });
    check_apart(run(tree), "root/0/conn", "root/0/conn");
}

#[test]
fn a_template_named_like_a_position_shares_its_series() {
    let tree = Supertree::new().with_metrics().add_supervisor(|s| {
        s.add_dynamic("0", |_n: u32| done())
            .add_worker(forever())
            .add_worker(starter("0"))
    });
    check_apart(run(tree), "root/0/0", "root/0/0");
}

#[test]
fn a_call_dropped_after_its_message_was_queued_is_not_counted() {
    // The server takes the call and holds it; the caller gives up on it
    // (its future dropped by a select, not by the call's own timeout).
    let server = worker(RestartPolicy::Never, || {
        Box::pin(async {
            let mut inbox = supertrees_core::inbox::<u32>("kv").expect("kv");
            let held = inbox.recv().await.expect("the call");
            assert!(held.is_call());
            println!("the server got the call");
            std::future::pending::<()>().await;
        })
    });
    let client = worker(RestartPolicy::Never, || {
        Box::pin(async {
            let kv = supertrees_core::mailbox::<u32>("kv").expect("kv");
            let call = kv.call::<u32>(1, Duration::from_secs(3600));
            let gave_up =
                futures::future::select(Box::pin(call), Box::pin(futures::future::ready(())));
            // Polled once: the message is queued, then the call dropped.
            let _ = gave_up.await;
        })
    });
    let tree = Supertree::new()
        .with_metrics()
        .add_supervisor(|s| s.with_mailbox("kv").add_worker(server))
        .add_worker(client);
    let figures = run(tree).expect("ran");
    let calls: f64 = ["ok", "timeout", "no_reply", "error"]
        .iter()
        .map(|o| {
            figures
                .get(&format!(
                    "supertrees_mailbox_calls_total{{mailbox=kv,outcome={o}}}"
                ))
                .copied()
                .unwrap_or(0.0)
        })
        .sum();
    // Documented: a call whose future was dropped before it ended has no
    // outcome, and is not counted.
    assert_eq!(
        calls, 0.0,
        "a call dropped before it ended is counted under no outcome: {figures:#?}"
    );
}
