//! `memory`: the PSS of the processes of an N=100 `tree_start` tree, by
//! kind of process.

use std::collections::BTreeMap;

use crate::procs::{self, Snapshot};
use crate::stats::Series;

/// Memory of one N=100 tree.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    pub root: f64,
    pub sup: f64,
    pub host: f64,
    pub sups: usize,
    pub hosts: usize,
}

#[derive(Debug, Default)]
pub struct MemSeries {
    pub root: Series,
    pub sup: Series,
    pub host: Series,
    pub pair: Series,
    pub counts: Vec<(usize, usize)>,
}

/// PSS of the root and of each descendant, classified by structure: a
/// descendant with children is a supervisor process, a leaf a worker host
/// (the seed: a "watcher").
pub fn memory(snap: &Snapshot, root: i32, descendants: &[i32]) -> Option<Mem> {
    let (mut sups, mut hosts) = (Vec::new(), Vec::new());
    for &pid in descendants {
        let pss = procs::pss_kib(pid)? as f64;
        if snap.live_children(pid).is_empty() {
            hosts.push(pss);
        } else {
            sups.push(pss);
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Some(Mem {
        root: procs::pss_kib(root)? as f64,
        sup: mean(&sups),
        host: mean(&hosts),
        sups: sups.len(),
        hosts: hosts.len(),
    })
}

/// With `BENCH_SMAPS` set: prints to stderr, for the supervisor processes
/// and for the worker hosts of one N=100 tree, the mean per process of each
/// mapping's `Pss`, `Private_Dirty` and `Private_Clean` (KiB, from
/// `/proc/PID/smaps`), and the mean minor page faults since each was forked
/// (`minflt` of `/proc/PID/stat`): where the memory of a process that is
/// not shared with its parent comes from.
pub fn breakdown(label: &str, snap: &Snapshot, descendants: &[i32]) {
    if std::env::var_os("BENCH_SMAPS").is_none() {
        return;
    }
    let (sups, hosts): (Vec<i32>, Vec<i32>) = descendants
        .iter()
        .partition(|&&pid| !snap.live_children(pid).is_empty());
    for (kind, pids) in [("supervisor", sups), ("host", hosts)] {
        let mut rows: BTreeMap<String, [f64; 3]> = BTreeMap::new();
        let (mut faults, mut seen) = (0.0, 0usize);
        for &pid in &pids {
            let Some(maps) = procs::smaps(pid) else {
                continue;
            };
            seen += 1;
            faults += procs::minflt(pid).unwrap_or(0) as f64;
            for (name, v) in maps {
                let row = rows.entry(name).or_default();
                for (sum, x) in row.iter_mut().zip(v) {
                    *sum += x as f64;
                }
            }
        }
        if seen == 0 {
            continue;
        }
        let n = seen as f64;
        let total = rows.values().fold([0.0; 3], |mut t, r| {
            for (t, x) in t.iter_mut().zip(r) {
                *t += x;
            }
            t
        });
        eprintln!(
            "  smaps {label} {kind} (mean of {seen}): Pss {:.1} Private_Dirty {:.1} \
             Private_Clean {:.1} KiB, minflt {:.1}",
            total[0] / n,
            total[1] / n,
            total[2] / n,
            faults / n
        );
        for (name, [pss, dirty, clean]) in rows {
            if pss / n >= 0.5 || dirty > 0.0 {
                eprintln!(
                    "    {:>7.1} {:>7.1} {:>7.1}  {name}",
                    pss / n,
                    dirty / n,
                    clean / n
                );
            }
        }
    }
}
