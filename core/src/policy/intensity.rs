//! [`Intensity`]: how many restarts a supervisor tolerates before giving up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The restart intensity of a supervisor, as OTP's `intensity`/`period`.
///
/// More than `max_restarts` restarts inside any window of `within` → the
/// supervisor stops all its children and exits abnormally, so its parent sees
/// a failed child; at the root, starting the tree returns
/// [`Error::IntensityExceeded`](crate::Error::IntensityExceeded). The default
/// is unlimited, as in supertrees 0.1.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::Intensity;
///
/// let limit = Intensity::new(3, Duration::from_secs(5));
/// assert_eq!(limit.max_restarts(), Some(3));
/// assert_eq!(limit.within(), Some(Duration::from_secs(5)));
/// assert_eq!(Intensity::default(), Intensity::unlimited());
/// assert_eq!(Intensity::unlimited().max_restarts(), None);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Intensity {
    limit: Option<(u32, Duration)>,
}

impl Intensity {
    /// At most `max_restarts` restarts within any window of `within`.
    /// `Intensity::new(0, ..)` gives up on the first restart; a zero `within`
    /// never gives up.
    pub fn new(max_restarts: u32, within: Duration) -> Self {
        Self {
            limit: Some((max_restarts, within)),
        }
    }

    /// No limit (the default).
    pub fn unlimited() -> Self {
        Self { limit: None }
    }

    /// The number of restarts tolerated per window, `None` when unlimited.
    pub fn max_restarts(&self) -> Option<u32> {
        self.limit.map(|(max, _)| max)
    }

    /// The window, `None` when unlimited.
    pub fn within(&self) -> Option<Duration> {
        self.limit.map(|(_, within)| within)
    }
}

/// The recent restarts of one supervisor, as many as its intensity needs.
#[derive(Debug, Default, Clone)]
pub struct RestartHistory {
    times: VecDeque<Instant>,
}

impl RestartHistory {
    /// Records a restart at `now`; returns `true` when it makes more than
    /// `max_restarts` restarts inside the last `within`.
    pub fn record(&mut self, intensity: &Intensity, now: Instant) -> bool {
        let Some((max, within)) = intensity.limit else {
            return false;
        };
        self.times.push_back(now);
        while let Some(&oldest) = self.times.front() {
            if now.saturating_duration_since(oldest) >= within {
                self.times.pop_front();
            } else {
                break;
            }
        }
        let exceeded = self.times.len() as u64 > u64::from(max);
        // Only the newest max+1 entries can ever matter.
        while self.times.len() as u64 > u64::from(max) + 1 {
            self.times.pop_front();
        }
        exceeded
    }

    /// How many more restarts, all at `now` or later, stay within
    /// `intensity` if nobody else records one; `None` when unlimited.
    ///
    /// Restarts only leave the window as time passes, so a restart allowed
    /// by the budget is allowed by [`record`](Self::record) at any later
    /// time too: a worker host may spend it without asking.
    pub fn budget(&self, intensity: &Intensity, now: Instant) -> Option<u32> {
        let (max, within) = intensity.limit?;
        if within.is_zero() {
            return None;
        }
        let recent = self
            .times
            .iter()
            .filter(|&&t| now.saturating_duration_since(t) < within)
            .count();
        Some(max.saturating_sub(u32::try_from(recent).unwrap_or(u32::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn unlimited_never_exceeds() {
        let mut h = RestartHistory::default();
        let t = Instant::now();
        assert!((0..10_000).all(|i| !h.record(&Intensity::unlimited(), at(t, i))));
    }

    #[test]
    fn exceeds_on_the_restart_past_the_limit_inside_the_window() {
        let limit = Intensity::new(2, Duration::from_millis(100));
        let mut h = RestartHistory::default();
        let t = Instant::now();
        assert!(!h.record(&limit, at(t, 0)));
        assert!(!h.record(&limit, at(t, 50)));
        assert!(h.record(&limit, at(t, 99)));
    }

    #[test]
    fn restarts_outside_the_window_do_not_count() {
        let limit = Intensity::new(2, Duration::from_millis(100));
        let mut h = RestartHistory::default();
        let t = Instant::now();
        assert!(!h.record(&limit, at(t, 0)));
        assert!(!h.record(&limit, at(t, 50)));
        // t=0 has left the window [t-100, t] at t=100.
        assert!(!h.record(&limit, at(t, 100)));
        assert!(h.record(&limit, at(t, 120)));
    }

    #[test]
    fn zero_restarts_gives_up_at_once_and_zero_window_never() {
        let t = Instant::now();
        assert!(RestartHistory::default().record(&Intensity::new(0, Duration::from_secs(1)), t));
        let mut h = RestartHistory::default();
        let never = Intensity::new(0, Duration::ZERO);
        assert!(!h.record(&never, t));
        assert!(!h.record(&never, t));
    }

    #[test]
    fn the_budget_is_what_record_still_allows() {
        let limit = Intensity::new(3, Duration::from_millis(100));
        let mut h = RestartHistory::default();
        let t = Instant::now();
        assert_eq!(h.budget(&Intensity::unlimited(), t), None);
        assert_eq!(h.budget(&limit, t), Some(3));
        h.record(&limit, at(t, 0));
        h.record(&limit, at(t, 10));
        assert_eq!(h.budget(&limit, at(t, 20)), Some(1));
        assert!(!h.record(&limit, at(t, 20)));
        assert_eq!(h.budget(&limit, at(t, 20)), Some(0));
        assert!(h.clone().record(&limit, at(t, 20)));
        // The window slides: t=0 and t=10 have left it at t=110.
        assert_eq!(h.budget(&limit, at(t, 110)), Some(2));
    }

    #[test]
    fn history_stays_bounded() {
        let limit = Intensity::new(3, Duration::from_secs(3600));
        let mut h = RestartHistory::default();
        let t = Instant::now();
        for i in 0..1000 {
            h.record(&limit, at(t, i));
        }
        assert_eq!(h.times.len(), 4);
    }
}
