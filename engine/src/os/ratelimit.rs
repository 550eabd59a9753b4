//! Rate limiting of a log line that may repeat without end: a supervisor
//! whose forks keep failing, or a worker that panics as fast as it is
//! restarted, logs the first occurrence, then at most one line per period
//! with the number of occurrences it did not log.

use std::time::{Duration, Instant};

/// How often a line that keeps repeating is logged: failures of the
/// engine's own machinery (a fork, a pipe, a worker host that could not be
/// set up) in a supervisor, worker panics in a worker host.
pub(crate) const REPEAT_LOG_PERIOD: Duration = Duration::from_secs(1);

/// Decides which occurrences of a repeated event are logged: one, then
/// nothing but a summary of those that follow, at most one line (either
/// kind) per `period`.
///
/// A driver logs an occurrence when [`admit`](Self::admit) says so, wakes
/// up at [`due`](Self::due), and logs what [`summary`](Self::summary)
/// counts; so an occurrence is never lost, only told later.
#[derive(Debug)]
pub(crate) struct LogLimit {
    period: Duration,
    /// When the last line (an occurrence or a summary) was logged.
    last: Option<Instant>,
    /// Occurrences not logged since then.
    suppressed: u64,
}

impl LogLimit {
    /// A limit of one line per `period`.
    pub(crate) const fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// An occurrence at `now`: whether to log it (no line within the last
    /// `period`); if not, it is counted for the next summary.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.suppressed = self.suppressed.saturating_add(1);
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// An occurrence at `now`, for a line that tells what was held back
    /// itself: `Some(n)` to log it with the `n` occurrences not logged
    /// since the last line, `None` (counted) within `period` of it. Needs
    /// no wake-up: what is held back is told with the next line.
    pub(crate) fn take(&mut self, now: Instant) -> Option<u64> {
        self.admit(now)
            .then(|| std::mem::take(&mut self.suppressed))
    }

    /// When a summary is due: a `period` after the last line, if anything
    /// was counted since.
    pub(crate) fn due(&self) -> Option<Instant> {
        match self.last {
            Some(last) if self.suppressed > 0 => Some(last + self.period),
            _ => None,
        }
    }

    /// The occurrences to tell in a summary line at `now`, once it is due;
    /// `None` if there is nothing to tell yet.
    pub(crate) fn summary(&mut self, now: Instant) -> Option<u64> {
        if self.due().is_some_and(|due| due <= now) {
            self.last = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_tells_what_it_held_back_with_the_next_line() {
        let t = Instant::now();
        let mut limit = LogLimit::new(ms(1000));
        assert_eq!(limit.take(t), Some(0));
        assert_eq!(limit.take(t + ms(1)), None);
        assert_eq!(limit.take(t + ms(999)), None);
        assert_eq!(limit.take(t + ms(1000)), Some(2));
        assert_eq!(limit.take(t + ms(2500)), Some(0));
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn logs_one_then_a_summary_per_period() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(ms(1000));
        assert_eq!(limit.due(), None);
        assert!(limit.admit(t0));
        // Nothing counted: no summary due.
        assert_eq!(limit.due(), None);
        assert!(!limit.admit(t0 + ms(1)));
        assert!(!limit.admit(t0 + ms(999)));
        assert_eq!(limit.due(), Some(t0 + ms(1000)));
        assert_eq!(limit.summary(t0 + ms(999)), None);
        assert_eq!(limit.summary(t0 + ms(1000)), Some(2));
        // The summary was a line: the next occurrence is counted.
        assert!(!limit.admit(t0 + ms(1500)));
        assert_eq!(limit.summary(t0 + ms(2000)), Some(1));
        assert_eq!(limit.due(), None);
        // Quiet for a period: the next one is logged at once.
        assert!(limit.admit(t0 + ms(3000)));
        // A clock that goes back is treated as no time passed.
        assert!(!limit.admit(t0));
    }

    #[test]
    fn a_flood_logs_one_line_per_period_and_loses_no_occurrence() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(ms(1000));
        // 100 000 occurrences over 3 s, the driver checking for a summary
        // after each, as a supervisor's loop does.
        let (mut lines, mut told) = (0, 0);
        for k in 0..100_000u64 {
            let now = t0 + Duration::from_micros(k * 30);
            if limit.admit(now) {
                lines += 1;
                told += 1;
            }
            if let Some(n) = limit.summary(now) {
                lines += 1;
                told += n;
            }
        }
        let end = limit.due().expect("a last summary is due");
        told += limit.summary(end).unwrap_or(0);
        lines += 1;
        assert_eq!(lines, 4);
        assert_eq!(told, 100_000);
    }
}
