//! `memory`: the PSS of the processes of an N=100 `tree_start` tree, by
//! kind of process.

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
