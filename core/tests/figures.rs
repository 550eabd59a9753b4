//! The figures on virtual time: a scripted history in `run_simulated`,
//! read back through a recorder (see also the process scenarios
//! `panic_metrics_*` in the facade's tests).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use supertrees_core::figures::{exit_reason, CallOutcome, VERSION};
use supertrees_core::testing::{run_simulated, FakeTimer};
use supertrees_core::{ChildExit, Intensity, RestartPolicy, Supertree};

mod common;
use common::{run, worker};

/// Every series of `tree`'s run, which must not be refused.
fn figures_of<B>(
    tree: supertrees_core::Tree<supertrees_core::tree::Root<B>>,
) -> BTreeMap<String, f64> {
    match run(tree) {
        Ok(figures) => figures,
        Err(err) => panic!("the tree was refused: {err}"),
    }
}

fn value(figures: &BTreeMap<String, f64>, series: &str) -> f64 {
    match figures.get(series) {
        Some(v) => *v,
        None => panic!("no {series} in {figures:#?}"),
    }
}

#[test]
fn a_scripted_history_reads_back_exactly() {
    // root/0: panics three times, then returns. root/1 declares `kv`,
    // served by root/1/0 for 150 messages, and the template `conn`.
    // root/2: 100 casts and 50 calls to `kv`, then three children of
    // `conn`, which return at once.
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let flaky = worker(RestartPolicy::OnFailure, || {
        Box::pin(async {
            if RUNS.fetch_add(1, SeqCst) < 3 {
                panic!("boom");
            }
        })
    });
    let server = worker(RestartPolicy::Never, || {
        Box::pin(async {
            let mut inbox = supertrees_core::inbox::<u32>("kv").expect("kv");
            for _ in 0..150 {
                let envelope = inbox.recv().await.expect("a message");
                if envelope.is_call() {
                    let n = *envelope.message();
                    envelope.reply(n + 1);
                }
            }
        })
    });
    let client = worker(RestartPolicy::Never, || {
        Box::pin(async {
            let kv = supertrees_core::mailbox::<u32>("kv").expect("kv");
            for n in 0..100 {
                kv.send(n).await.expect("sent");
            }
            for n in 0..50 {
                let got: u32 = kv.call(n, Duration::from_secs(1)).await.expect("a reply");
                assert_eq!(got, n + 1);
            }
            for port in 0..3u16 {
                supertrees_core::start_child("conn", port)
                    .await
                    .expect("started");
            }
        })
    });
    let tree = Supertree::new()
        .with_metrics()
        .with_intensity(Intensity::new(10, Duration::from_secs(1)))
        .add_worker(flaky)
        .add_supervisor(|s| {
            s.with_mailbox("kv")
                .add_dynamic("conn", |_port: u16| {
                    worker(RestartPolicy::Never, || Box::pin(async {}))
                })
                .add_worker(server)
        })
        .add_worker(client);
    let figures = figures_of(tree);
    let expect = [
        ("supertrees_child_restarts_total{path=root/0}", 3.0),
        (
            "supertrees_child_exits_total{path=root/0,reason=panicked}",
            3.0,
        ),
        (
            "supertrees_child_exits_total{path=root/0,reason=exited}",
            1.0,
        ),
        ("supertrees_child_restarts_total{path=root/1}", 0.0),
        (
            "supertrees_child_exits_total{path=root/1/0,reason=exited}",
            1.0,
        ),
        (
            "supertrees_child_exits_total{path=root/1/conn,reason=exited}",
            3.0,
        ),
        ("supertrees_child_restarts_total{path=root/1/conn}", 0.0),
        ("supertrees_dynamic_children{template=root/1/conn}", 0.0),
        ("supertrees_child_up{path=root/1/conn}", 0.0),
        ("supertrees_child_up{path=root/0}", 0.0),
        ("supertrees_child_ready{path=root/2}", 0.0),
        ("supertrees_mailbox_sent_total{mailbox=kv}", 100.0),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=ok}",
            50.0,
        ),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=timeout}",
            0.0,
        ),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=no_reply}",
            0.0,
        ),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=error}",
            0.0,
        ),
        ("supertrees_intensity_exceeded_total{supervisor=root}", 0.0),
        (
            "supertrees_intensity_exceeded_total{supervisor=root/1}",
            0.0,
        ),
        ("supertrees_events_dropped_total{}", 0.0),
        ("supertrees_generation{}", 1.0),
        ("supertrees_upgrades_total{outcome=committed}", 0.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&figures, series), want, "{series}");
    }
    assert_eq!(
        value(
            &figures,
            &format!("supertrees_build_info{{version={VERSION}}}")
        ),
        1.0
    );
    // No series names a child's id, and none a worker host.
    for series in figures.keys() {
        assert!(
            !series.contains('#') && !series.contains("host"),
            "{series}"
        );
    }
}

#[test]
fn a_thousand_children_of_a_template_make_one_series_per_family() {
    let spawner = worker(RestartPolicy::Never, || {
        Box::pin(async {
            for n in 0..1000u32 {
                supertrees_core::start_child("job", n)
                    .await
                    .expect("started");
            }
        })
    });
    let tree = Supertree::new().with_metrics().add_supervisor(|s| {
        s.add_dynamic("job", |_n: u32| {
            worker(RestartPolicy::Never, || Box::pin(async {}))
        })
        .add_worker(spawner)
    });
    let figures = figures_of(tree);
    assert_eq!(
        value(
            &figures,
            "supertrees_child_exits_total{path=root/0/job,reason=exited}"
        ),
        1000.0
    );
    assert_eq!(
        value(&figures, "supertrees_dynamic_children{template=root/0/job}"),
        0.0
    );
    let job_series = figures.keys().filter(|s| s.contains("job")).count();
    // restarts, exits (one reason), up, ready, children.
    assert_eq!(job_series, 5, "{figures:#?}");
}

#[test]
fn a_supervisor_that_gives_up_is_counted_and_its_children_summed_by_template() {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let tree = Supertree::new()
        .with_metrics()
        .with_intensity(Intensity::new(0, Duration::from_secs(1)))
        .add_supervisor(|s| {
            s.with_intensity(Intensity::new(1, Duration::from_secs(60)))
                .add_worker(worker(RestartPolicy::OnFailure, || {
                    Box::pin(async {
                        RUNS.fetch_add(1, SeqCst);
                        panic!("always")
                    })
                }))
        });
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let ended = metrics::with_local_recorder(&recorder, || run_simulated(tree, FakeTimer::new()));
    assert!(ended.is_err(), "the root gives up too: {ended:?}");
    let gave_up: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == "supertrees_intensity_exceeded_total")
        .filter_map(|(k, _, _, v)| match v {
            DebugValue::Counter(n) => {
                let label = k.key().labels().next().map(|l| l.value().to_owned());
                label.map(|l| (l, n))
            }
            _ => None,
        })
        .collect();
    let of = |path: &str| gave_up.iter().find(|(p, _)| p == path).map(|(_, n)| *n);
    assert_eq!(of("root/0"), Some(1), "{gave_up:?}");
    assert_eq!(of("root"), Some(1), "{gave_up:?}");
}

#[test]
fn without_metrics_nothing_is_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let tree = Supertree::new().add_worker(worker(RestartPolicy::Never, || Box::pin(async {})));
    let ended = metrics::with_local_recorder(&recorder, || run_simulated(tree, FakeTimer::new()));
    assert!(ended.is_ok());
    assert!(snapshotter.snapshot().into_vec().is_empty());
}

#[test]
fn call_outcomes_and_exit_reasons_cover_the_contract() {
    let labels: Vec<&str> = CallOutcome::ALL.iter().map(|o| o.label()).collect();
    assert_eq!(labels, ["ok", "timeout", "no_reply", "error"]);
    let reasons: std::collections::BTreeSet<&str> = [
        ChildExit::Normal,
        ChildExit::Exited(3),
        ChildExit::GaveUp,
        ChildExit::Stopped,
        ChildExit::Panicked,
        ChildExit::Signaled(9),
        ChildExit::ForkFailed(11),
        ChildExit::SetupFailed,
        ChildExit::StartTimeout(Duration::from_secs(1)),
        ChildExit::OutOfMemory,
        ChildExit::Hung,
    ]
    .into_iter()
    .map(exit_reason)
    .collect();
    let contract = [
        "exited",
        "panicked",
        "signal",
        "out_of_memory",
        "hung",
        "start_timeout",
        "stopped",
        "setup_failed",
    ];
    assert_eq!(reasons, contract.into_iter().collect());
}
