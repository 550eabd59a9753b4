//! What the tests of the figures on virtual time share: workers made of
//! functions, and a simulated run read back through a recorder.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use supertrees_core::testing::{run_simulated, FakeTimer};
use supertrees_core::{BoxFuture, Error, RestartPolicy, Restartable, Worker};

/// A worker made of a function, with a restart policy.
pub struct Run(Arc<dyn Fn() -> BoxFuture + Send + Sync>, RestartPolicy);

impl Worker for Run {
    fn init(&self) -> BoxFuture {
        (self.0)()
    }
}

impl Restartable for Run {
    fn restart_policy(&self) -> RestartPolicy {
        self.1
    }
}

pub fn worker(policy: RestartPolicy, f: impl Fn() -> BoxFuture + Send + Sync + 'static) -> Run {
    Run(Arc::new(f), policy)
}

/// What `tree` ended with, run on virtual time: `Err` if `start`
/// refused it, else every series the recorder got when it ended, or
/// stalled (a supervisor of templates waits for more requests):
/// `name{label=value,...}` → its value.
pub fn run<B>(
    tree: supertrees_core::Tree<supertrees_core::tree::Root<B>>,
) -> Result<BTreeMap<String, f64>, Error> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let ended = metrics::with_local_recorder(&recorder, || run_simulated(tree, FakeTimer::new()));
    match ended {
        Ok(()) | Err(Error::Stalled) => {}
        Err(err) => return Err(err),
    }
    Ok(snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => f64::NAN,
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect())
}
