//! The numbers: unit conversions, percentiles, the values of one figure over
//! the runs, and a least-squares fit.

use std::time::Duration;

use crate::procs::Failure;

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

pub fn as_ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Nearest-rank percentile of `sorted` (ascending), `p` in (0, 1].
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The values of one figure over the runs, and the runs that gave none.
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub values: Vec<f64>,
    pub failures: Vec<String>,
}

impl Series {
    pub fn push(&mut self, r: Result<f64, Failure>) {
        match r {
            Ok(v) => self.values.push(v),
            Err(f) => self.failures.push(f.to_string()),
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    pub fn median(&self) -> Option<f64> {
        percentile(&self.sorted(), 0.5)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.failures.is_empty()
    }
}

/// Least-squares fit y = a + b·x: (b, a, r²).
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        sxy * sxy / (sxx * syy)
    };
    Some((b, my - b * mx, r2))
}

pub fn median_usize(v: &[usize]) -> Option<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied()
}
