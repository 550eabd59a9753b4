//! `cargo bench -p supertrees-bench --bench operator [-- FIGURE...]`
//!
//! The operator's door (issue 22), on the default (Tokio) backend. Figures
//! (default: both):
//!
//! * `status_json`: how long `status json` takes, request to the end of
//!   the answer, for a tree of more than 1,000 nodes (100 supervisors of 9
//!   workers each, their worker hosts, and a worker `root/spin` that ends
//!   at once and is restarted at once, as fast as it can, all along):
//!   [`QUERIES`] queries one after the other, their p50, p99 and max, and
//!   how many restarts of `root/spin` the status counted meanwhile.
//! * `restart`: an operator's `restart root/api` (a supervisor of three
//!   workers), [`ROUNDS`] times: the time to its `ok` answer, and to the
//!   first `status json` that shows `root/api` with a new pid and ready.
//!
//! `BENCH_RUNS` (default 3) sets the runs of each figure. The tree of each
//! run is this binary again, with `SUPERTREES_BENCH_TREE=<figure>`, whose
//! single-threaded `main` builds it and calls `start()`; this process
//! measures from outside, as an operator's tool would, and ends it with
//! SIGTERM. It prints a Markdown table of each field's min and median
//! over the runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use supertrees::{BackoffPolicy, BoxFuture, RestartPolicy, Restartable, Supertree, Worker};

#[path = "../common/figures.rs"]
mod figures;
#[path = "../common/socket_tree.rs"]
mod socket_tree;

use socket_tree::SocketTree;

/// The environment variable that makes this binary run one figure's tree.
const TREE_VAR: &str = "SUPERTREES_BENCH_TREE";
/// Where that tree puts its status socket.
const SOCKET_VAR: &str = "SUPERTREES_BENCH_SOCKET";
/// `status json` queries per run of `status_json`.
const QUERIES: usize = 500;
/// Restarts per run of `restart`.
const ROUNDS: usize = 100;
/// How long a tree may take to come up.
const UP_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    if let Ok(figure) = std::env::var(TREE_VAR) {
        tree(&figure);
    }
    figures::run(&["status_json", "restart"], |figure| {
        let fields = measure(figure)?;
        for (key, value) in &fields {
            eprintln!("  {key} = {value:.3}");
        }
        Ok(fields)
    });
}

/// The node at `path` in a `status json` answer.
fn node<'a>(status: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["path"].as_str() == Some(path))
}

/// Runs `figure` once: its fields.
fn measure(figure: &str) -> Result<Vec<(String, f64)>, String> {
    let dir = std::env::temp_dir().join(format!(
        "supertrees-bench-operator-{}-{figure}",
        std::process::id()
    ));
    let tree = SocketTree::start((TREE_VAR, figure), SOCKET_VAR, dir, UP_TIMEOUT)?;
    match figure {
        "status_json" => status_json(&tree),
        "restart" => restart(&tree),
        other => Err(format!("unknown figure {other}")),
    }
}

fn status_json(tree: &SocketTree) -> Result<Vec<(String, f64)>, String> {
    let parse = |text: &str| -> Result<serde_json::Value, String> {
        serde_json::from_str(text).map_err(|e| format!("status json: {e}: {text:.200}"))
    };
    let spins =
        |status: &serde_json::Value| node(status, "root/spin").and_then(|n| n["restarts"].as_f64());
    let first = parse(&tree.ask("status json")?)?;
    let nodes = first["nodes"].as_array().map_or(0, Vec::len);
    if nodes < 1000 {
        return Err(format!("{nodes} nodes in the status, not 1,000 or more"));
    }
    let mut took = Vec::with_capacity(QUERIES);
    let mut last = String::new();
    for _ in 0..QUERIES {
        let began = Instant::now();
        last = tree.ask("status json")?;
        took.push(began.elapsed().as_secs_f64() * 1e3);
        // Every answer is the whole document, not an error line.
        if !last.starts_with("{\"schema\":1,") || !last.ends_with("]}\n") {
            return Err(format!("status json answered {:.200}", last));
        }
    }
    let bytes = last.len();
    let last = parse(&last)?;
    let shown = last["nodes"].as_array().map_or(0, Vec::len);
    let restarted = match (spins(&first), spins(&last)) {
        (Some(a), Some(b)) => b - a,
        _ => return Err("no restarts of root/spin in the status".to_owned()),
    };
    took.sort_by(f64::total_cmp);
    Ok(vec![
        ("nodes".to_owned(), nodes as f64),
        ("nodes_last".to_owned(), shown as f64),
        ("bytes_last".to_owned(), bytes as f64),
        ("p50_ms".to_owned(), percentile(&took, 0.50)),
        ("p99_ms".to_owned(), percentile(&took, 0.99)),
        ("max_ms".to_owned(), took[took.len() - 1]),
        ("spin_restarts_meanwhile".to_owned(), restarted),
    ])
}

fn restart(tree: &SocketTree) -> Result<Vec<(String, f64)>, String> {
    let pid_of = |tree: &SocketTree| -> Result<(Option<u64>, bool), String> {
        let status: serde_json::Value =
            serde_json::from_str(&tree.ask("status json")?).map_err(|e| e.to_string())?;
        let api = node(&status, "root/api").ok_or("no root/api in the status")?;
        Ok((api["pid"].as_u64(), api["state"].as_str() == Some("ready")))
    };
    let (mut answered, mut shown) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (before, _) = pid_of(tree)?;
        let began = Instant::now();
        let answer = tree.ask("restart root/api")?;
        if answer != "ok restarted root/api\n" {
            return Err(format!("restart answered {answer:?}"));
        }
        answered.push(began.elapsed().as_secs_f64() * 1e3);
        loop {
            let (pid, ready) = pid_of(tree)?;
            if ready && pid.is_some() && pid != before {
                break;
            }
            if began.elapsed() > Duration::from_secs(10) {
                return Err("root/api did not come back with a new pid in 10 s".to_owned());
            }
        }
        shown.push(began.elapsed().as_secs_f64() * 1e3);
    }
    answered.sort_by(f64::total_cmp);
    shown.sort_by(f64::total_cmp);
    Ok(vec![
        ("answer_p50_ms".to_owned(), percentile(&answered, 0.50)),
        ("answer_p99_ms".to_owned(), percentile(&answered, 0.99)),
        ("new_pid_p50_ms".to_owned(), percentile(&shown, 0.50)),
        ("new_pid_p99_ms".to_owned(), percentile(&shown, 0.99)),
    ])
}

/// The `q` quantile of `sorted` (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

// ---------------------------------------------------------------------------
// The trees (in the subprocess)
// ---------------------------------------------------------------------------

/// A worker that runs until it is asked to stop.
struct Idle;

impl Worker for Idle {
    fn init(&self) -> BoxFuture {
        Box::pin(supertrees::stopping())
    }
}

impl Restartable for Idle {}

/// A worker that ends at once and is restarted at once.
struct Spin;

impl Worker for Spin {
    fn init(&self) -> BoxFuture {
        Box::pin(async {})
    }
}

impl Restartable for Spin {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Always
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::immediate()
    }
}

/// Runs `figure`'s tree in this process and exits.
fn tree(figure: &str) -> ! {
    let Some(socket) = std::env::var_os(SOCKET_VAR).map(PathBuf::from) else {
        eprintln!("{SOCKET_VAR} is not set");
        std::process::exit(2);
    };
    let tree = match figure {
        "status_json" => (0..100)
            .fold(Supertree::new(), |t, _| {
                t.add_supervisor(|s| (0..9).fold(s, |s, _| s.add_worker(Idle)))
            })
            .add_named_worker("spin", Spin),
        "restart" => Supertree::new()
            .add_supervisor(|s| {
                s.with_name("api")
                    .add_named_worker("web", Idle)
                    .add_named_worker("cache", Idle)
                    .add_worker(Idle)
            })
            .add_named_worker("jobs", Idle),
        other => {
            eprintln!("unknown figure {other}");
            std::process::exit(2);
        }
    };
    let code = match tree.status_socket(&socket).start() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("start() returned {err}");
            1
        }
    };
    std::process::exit(code)
}
