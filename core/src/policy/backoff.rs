//! [`BackoffPolicy`]: how long to wait before restarting a child.

use std::time::Duration;

use crate::Error;

/// How long a supervisor waits before restarting a child.
///
/// The delay before the k-th consecutive restart is
/// `min_delay * multiplier^(k-1)`, capped at `max_delay`. A child that ran for
/// at least `reset_after` before it exited starts again from `min_delay`.
///
/// [`BackoffPolicy::default`] is 50 ms, 60 s, 120 s, ×1.2, as in supertrees
/// 0.1; [`BackoffPolicy::immediate`] restarts with no delay at all.
///
/// # Examples
///
/// min 100 ms, max 800 ms, ×2: a worker that exits at once restarts after
/// 100, 200, 400, 800, 800 ms, i.e. it starts at t = 0, 100, 300, 700, 1500,
/// 2300 ms.
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::BackoffPolicy;
///
/// let ms = Duration::from_millis;
/// let policy = BackoffPolicy::try_new(ms(100), ms(800), Duration::from_secs(10), 2.0)?;
/// let delays: Vec<_> = (1..=5).map(|k| policy.delay_for(k)).collect();
/// assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(800)]);
/// # Ok::<(), supertrees::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    min_delay: Duration,
    max_delay: Duration,
    reset_after: Duration,
    multiplier: f64,
}

impl BackoffPolicy {
    /// Creates a policy, checking every argument.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPolicy`] naming the field when `min_delay` or
    /// `reset_after` is zero, `max_delay` is below `min_delay`, or
    /// `multiplier` is below 1, NaN or infinite.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::BackoffPolicy;
    ///
    /// let s = Duration::from_secs;
    /// let err = BackoffPolicy::try_new(s(2), s(1), s(10), 2.0).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid policy: max_delay must not be less than min_delay");
    /// let err = BackoffPolicy::try_new(s(1), s(2), s(10), f64::NAN).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid policy: multiplier must be a finite number");
    /// ```
    pub fn try_new(
        min_delay: Duration,
        max_delay: Duration,
        reset_after: Duration,
        multiplier: f64,
    ) -> Result<Self, Error> {
        let invalid = |field, reason| Err(Error::InvalidPolicy { field, reason });
        if min_delay.is_zero() {
            return invalid("min_delay", "must be greater than zero");
        }
        if max_delay < min_delay {
            return invalid("max_delay", "must not be less than min_delay");
        }
        if reset_after.is_zero() {
            return invalid("reset_after", "must be greater than zero");
        }
        if !multiplier.is_finite() {
            return invalid("multiplier", "must be a finite number");
        }
        if multiplier < 1.0 {
            return invalid("multiplier", "must be at least 1");
        }
        Ok(Self {
            min_delay,
            max_delay,
            reset_after,
            multiplier,
        })
    }

    /// Creates a policy, as in supertrees 0.1.
    ///
    /// # Panics
    ///
    /// On the input [`try_new`](Self::try_new) rejects, with the same message.
    ///
    /// ```should_panic
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::BackoffPolicy;
    ///
    /// // panics: "invalid policy: multiplier must be at least 1"
    /// BackoffPolicy::new(Duration::from_millis(1), Duration::from_secs(1), Duration::from_secs(2), 0.5);
    /// ```
    pub fn new(
        min_delay: Duration,
        max_delay: Duration,
        reset_after: Duration,
        multiplier: f64,
    ) -> Self {
        match Self::try_new(min_delay, max_delay, reset_after, multiplier) {
            Ok(policy) => policy,
            Err(err) => panic!("{err}"),
        }
    }

    /// Restart at once, every time.
    ///
    /// The process engine still waits a floor delay (10 ms, growing to 1 s)
    /// before it retries a child whose process it could not fork or set up
    /// ([`ChildExit::is_engine_failure`](crate::ChildExit::is_engine_failure)),
    /// so a machine out of processes or descriptors never sees a busy loop.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use std::time::Duration;
    /// use supertrees::BackoffPolicy;
    ///
    /// assert_eq!(BackoffPolicy::immediate().delay_for(1000), Duration::ZERO);
    /// ```
    pub fn immediate() -> Self {
        Self {
            min_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            reset_after: Duration::ZERO,
            multiplier: 1.0,
        }
    }

    /// The delay before the first restart.
    pub fn min_delay(&self) -> Duration {
        self.min_delay
    }

    /// The longest delay between restarts.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// How long a child must run before its delay starts again from
    /// [`min_delay`](Self::min_delay).
    pub fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// The factor between two consecutive delays.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The delay before the `attempt`-th consecutive restart (counting from 1):
    /// `min_delay * multiplier^(attempt-1)`, capped at `max_delay`.
    /// `attempt` 0 is treated as 1.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let nanos = self.min_delay.as_nanos() as f64 * self.multiplier.powi(exponent);
        if nanos >= self.max_delay.as_nanos() as f64 {
            self.max_delay
        } else {
            // Below max_delay, so it fits in a Duration.
            Duration::from_nanos(nanos.round() as u64)
        }
    }
}

impl Default for BackoffPolicy {
    /// 50 ms, 60 s, 120 s, ×1.2 (the values of supertrees 0.1).
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(60),
            reset_after: Duration::from_secs(120),
            multiplier: 1.2,
        }
    }
}

/// One child's place in its backoff sequence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackoffState {
    consecutive: u32,
}

impl BackoffState {
    /// The delay before restarting a child that ran for `ran_for` before it
    /// exited, advancing the sequence.
    pub fn next_delay(&mut self, policy: &BackoffPolicy, ran_for: Duration) -> Duration {
        if ran_for >= policy.reset_after() {
            self.consecutive = 0;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        policy.delay_for(self.consecutive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_grow_geometrically_and_cap() {
        let p = BackoffPolicy::new(ms(100), ms(800), ms(10_000), 2.0);
        let got: Vec<_> = (1..=6).map(|k| p.delay_for(k)).collect();
        assert_eq!(got, [ms(100), ms(200), ms(400), ms(800), ms(800), ms(800)]);
        assert_eq!(p.delay_for(0), ms(100));
        assert_eq!(p.delay_for(u32::MAX), ms(800));
    }

    #[test]
    fn default_matches_the_seed() {
        let p = BackoffPolicy::default();
        assert_eq!(
            (
                p.min_delay(),
                p.max_delay(),
                p.reset_after(),
                p.multiplier()
            ),
            (
                ms(50),
                Duration::from_secs(60),
                Duration::from_secs(120),
                1.2
            )
        );
        assert_eq!(p.delay_for(2), ms(60));
    }

    #[test]
    fn state_resets_after_a_long_run() {
        let p = BackoffPolicy::new(ms(100), ms(800), ms(1000), 2.0);
        let mut s = BackoffState::default();
        assert_eq!(s.next_delay(&p, ms(0)), ms(100));
        assert_eq!(s.next_delay(&p, ms(999)), ms(200));
        assert_eq!(s.next_delay(&p, ms(5)), ms(400));
        assert_eq!(s.next_delay(&p, ms(1000)), ms(100));
        assert_eq!(s.next_delay(&p, ms(0)), ms(200));
    }

    #[test]
    fn immediate_is_always_zero() {
        let p = BackoffPolicy::immediate();
        let mut s = BackoffState::default();
        for _ in 0..5 {
            assert_eq!(s.next_delay(&p, ms(0)), Duration::ZERO);
        }
    }

    fn field_of(r: Result<BackoffPolicy, Error>) -> &'static str {
        match r {
            Err(Error::InvalidPolicy { field, .. }) => field,
            other => panic!("expected InvalidPolicy, got {other:?}"),
        }
    }

    #[test]
    fn try_new_names_the_bad_field() {
        let s = Duration::from_secs;
        assert_eq!(
            field_of(BackoffPolicy::try_new(ms(0), s(1), s(2), 2.0)),
            "min_delay"
        );
        assert_eq!(
            field_of(BackoffPolicy::try_new(s(2), s(1), s(3), 2.0)),
            "max_delay"
        );
        assert_eq!(
            field_of(BackoffPolicy::try_new(s(1), s(2), ms(0), 2.0)),
            "reset_after"
        );
        for m in [0.99, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                field_of(BackoffPolicy::try_new(s(1), s(2), s(3), m)),
                "multiplier"
            );
        }
        assert!(BackoffPolicy::try_new(s(1), s(1), s(1), 1.0).is_ok());
    }

    #[test]
    #[should_panic(expected = "invalid policy: max_delay must not be less than min_delay")]
    fn new_panics_with_the_same_message() {
        BackoffPolicy::new(ms(2), ms(1), ms(3), 2.0);
    }
}
