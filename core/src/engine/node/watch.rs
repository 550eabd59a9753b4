//! The watchdog's deadline for one watched process (a worker host, or a
//! child supervisor), and its judgement of a process that missed it:
//! starved is not hung.
//!
//! A process must show life every period. Once it has been silent for half
//! a period, what the scheduler has done with each of its threads is read
//! ([`Sched`]); at its deadline it is read again and the window between is
//! judged ([`judge`]):
//!
//! * stopped (SIGSTOP, a tracer): **hung**;
//! * it ran at least half the window: **hung** (it had the CPU and said
//!   nothing: a busy loop);
//! * it waited for a CPU at least a quarter of the window, or a thread of
//!   it was runnable all through the window without getting a CPU (the
//!   kernel counts a wait when it ends, so a wait still going on is seen
//!   this way): **starved** (a saturated machine, a CPU quota). Its
//!   deadline moves half a period on, and it is judged again then, on the
//!   next window;
//! * otherwise (it slept: blocked, deadlocked): **hung**.
//!
//! A process that can not be read (gone) is hung, as without a judgement.
//! Nothing is read while a process shows life in time.
//!
//! A process with a thread that spins (never blocks) while the process is
//! starved is judged starved, too, until it gets the CPU it asks for: then
//! it ran, and is hung.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::engine::sys::Sched;

/// What the scheduler says of a silent process over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    /// How long the window lasted.
    pub(super) length: Duration,
    /// Time its threads spent waiting for a CPU in it (waits that ended in
    /// it).
    pub(super) waited: Duration,
    /// Time its threads spent on a CPU in it.
    pub(super) ran: Duration,
    /// A thread of it was runnable at both ends of the window and got no
    /// CPU in between: it waited all through.
    pub(super) queued: bool,
    /// It was stopped at the end of the window.
    pub(super) stopped: bool,
}

impl Window {
    /// The window from `before` to `after`.
    fn between(before: &Sched, after: &Sched) -> Self {
        let mut window = Self {
            length: after.at.saturating_duration_since(before.at),
            waited: Duration::ZERO,
            ran: Duration::ZERO,
            queued: false,
            stopped: after.stopped(),
        };
        for thread in &after.threads {
            let (ran, waited) = match before.thread(thread.tid) {
                Some(was) => {
                    if was.state == 'R' && thread.state == 'R' && was.slices == thread.slices {
                        window.queued = true;
                    }
                    (
                        thread.ran.saturating_sub(was.ran),
                        thread.waited.saturating_sub(was.waited),
                    )
                }
                // It began in the window: all its time is in it.
                None => (thread.ran, thread.waited),
            };
            window.ran = window.ran.saturating_add(ran);
            window.waited = window.waited.saturating_add(waited);
        }
        window
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "waited {:?} for a CPU and ran {:?} in {:?}",
            self.waited, self.ran, self.length
        )?;
        if self.queued {
            f.write_str(", a thread runnable all along without a CPU")?;
        }
        Ok(())
    }
}

/// The judgement of a process that missed its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Stopped, blocked, or silent with the CPU: to be killed.
    Hung,
    /// Runnable but given no CPU: to be given more time.
    Starved,
    /// The window is too short to tell (under a quarter `period`).
    TooShort,
}

/// Judges a process watched with `period` by what the scheduler did with
/// it over `window`: stopped → hung; ran half the window or more → hung;
/// waited for a CPU a quarter of the window or more, or all through it
/// (`queued`) → starved; otherwise → hung.
pub(super) fn judge(period: Duration, window: Window) -> Verdict {
    if window.stopped {
        Verdict::Hung
    } else if window.length < period / 4 {
        Verdict::TooShort
    } else if window.ran >= window.length / 2 {
        Verdict::Hung
    } else if window.waited >= window.length / 4 || window.queued {
        Verdict::Starved
    } else {
        Verdict::Hung
    }
}

/// Why a process was found hung (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hung {
    /// Stopped (SIGSTOP, a tracer).
    Stopped,
    /// Not starved over this window.
    NotStarved(Window),
    /// Its scheduler statistics could not be read.
    Unread,
}

impl std::fmt::Display for Hung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stopped => f.write_str("it is stopped"),
            Self::NotStarved(window) => write!(f, "not starved: it {window}"),
            Self::Unread => f.write_str("its scheduler statistics could not be read"),
        }
    }
}

/// The deadline of one watched process, and what the scheduler had done
/// with it when it was last looked at.
#[derive(Debug)]
pub(super) struct Watch {
    period: Duration,
    /// When it must have shown life by.
    by: Instant,
    /// When it is next looked at: halfway through a silence, then at its
    /// deadline.
    look_at: Instant,
    /// What the scheduler had done with it when it was last looked at,
    /// in this silence.
    seen: Option<Sched>,
    /// It was judged starved before: later judgements are logged at debug.
    starved_before: bool,
}

impl Watch {
    /// A process forked `now`: its first sign of life may take its
    /// start-up, so it has two periods.
    pub(super) fn new(period: Duration, now: Instant) -> Self {
        let mut watch = Self {
            period,
            by: now,
            look_at: now,
            seen: None,
            starved_before: false,
        };
        watch.until(now + 2 * period);
        watch
    }

    /// Its watchdog period.
    pub(super) fn period(&self) -> Duration {
        self.period
    }

    /// It showed life `now`.
    pub(super) fn alive(&mut self, now: Instant) {
        self.until(now + self.period);
    }

    /// Its deadline is `by`; it is looked at halfway through a silence.
    fn until(&mut self, by: Instant) {
        self.by = by;
        self.look_at = by.checked_sub(self.period / 2).unwrap_or(by);
        self.seen = None;
    }

    /// When it must next be looked at (with [`Watch::check`]).
    pub(super) fn next(&self) -> Instant {
        self.look_at
    }

    /// Looks at process `pid` (a `what`) if it is time to: `Some` if it is
    /// hung, to be killed.
    pub(super) fn check(&mut self, pid: Pid, what: &str, now: Instant) -> Option<Hung> {
        if now < self.look_at {
            return None;
        }
        let sched = Sched::read(pid);
        if now < self.by {
            // Halfway through its silence: where the window starts.
            self.seen = sched;
            self.look_at = self.by;
            return None;
        }
        let Some(after) = sched else {
            return Some(Hung::Unread);
        };
        if after.stopped() {
            return Some(Hung::Stopped);
        }
        let Some(before) = &self.seen else {
            // Looked at late (this supervisor was starved or busy itself),
            // or not read then: the window starts now.
            tracing::debug!(pid = pid.as_raw(), period = ?self.period,
                "{what} missed its watchdog deadline, looked at late; judged over the next half period");
            self.seen = Some(after);
            self.by = now + self.period / 2;
            self.look_at = self.by;
            return None;
        };
        let window = Window::between(before, &after);
        match judge(self.period, window) {
            Verdict::Hung => Some(Hung::NotStarved(window)),
            Verdict::TooShort => {
                self.look_at = now + self.period / 4;
                self.by = self.look_at;
                None
            }
            Verdict::Starved => {
                if self.starved_before {
                    tracing::debug!(pid = pid.as_raw(), period = ?self.period, %window,
                        "{what} still starved of CPU; its watchdog deadline moves on");
                } else {
                    self.starved_before = true;
                    tracing::info!(pid = pid.as_raw(), period = ?self.period, %window,
                        "{what} missed its watchdog deadline starved of CPU (runnable, given none), not hung; \
                         its deadline moves on by half a period while it is (logged once)");
                }
                self.seen = Some(after);
                self.by = now + self.period / 2;
                self.look_at = self.by;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sys::ThreadSched;

    const PERIOD: Duration = Duration::from_millis(200);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn window(length: u64, waited: u64, ran: u64) -> Window {
        Window {
            length: ms(length),
            waited: ms(waited),
            ran: ms(ran),
            queued: false,
            stopped: false,
        }
    }

    #[test]
    fn runnable_without_cpu_is_starved() {
        // Measured: an idle sleeper under a quarter-CPU quota beside three
        // hogs, over 200 ms: 99.7 ms waiting, 0.1 ms on a CPU.
        let measured = Window {
            waited: Duration::from_micros(99_700),
            ran: Duration::from_micros(100),
            ..window(200, 0, 0)
        };
        assert_eq!(judge(PERIOD, measured), Verdict::Starved);
        assert_eq!(judge(PERIOD, window(100, 75, 1)), Verdict::Starved);
        // Exactly a quarter waiting, just under half running.
        assert_eq!(judge(PERIOD, window(100, 25, 49)), Verdict::Starved);
        // Waiting all through a window, the wait not yet counted.
        let queued = Window {
            queued: true,
            ..window(100, 0, 0)
        };
        assert_eq!(judge(PERIOD, queued), Verdict::Starved);
    }

    #[test]
    fn stopped_is_hung_whatever_it_waited() {
        let stopped = Window {
            stopped: true,
            queued: true,
            ..window(100, 90, 0)
        };
        assert_eq!(judge(PERIOD, stopped), Verdict::Hung);
        // Even in a window too short to judge.
        let short = Window {
            stopped: true,
            ..window(1, 0, 0)
        };
        assert_eq!(judge(PERIOD, short), Verdict::Hung);
    }

    #[test]
    fn blocked_is_hung() {
        // A thread asleep (a blocking call, a deadlock) waits for nothing.
        assert_eq!(judge(PERIOD, window(100, 0, 0)), Verdict::Hung);
        assert_eq!(judge(PERIOD, window(100, 24, 0)), Verdict::Hung);
    }

    #[test]
    fn silent_with_the_cpu_is_hung() {
        // A busy loop on an idle machine: on a CPU all along.
        assert_eq!(judge(PERIOD, window(100, 0, 100)), Verdict::Hung);
        // On two CPUs at once (two threads), waiting a little.
        assert_eq!(judge(PERIOD, window(100, 30, 190)), Verdict::Hung);
        // Half the window running is enough CPU to have said something,
        // whatever else waited.
        let busy = Window {
            queued: true,
            ..window(100, 50, 50)
        };
        assert_eq!(judge(PERIOD, busy), Verdict::Hung);
    }

    #[test]
    fn a_short_window_is_not_judged() {
        assert_eq!(judge(PERIOD, window(49, 0, 0)), Verdict::TooShort);
        assert_eq!(judge(PERIOD, window(50, 0, 0)), Verdict::Hung);
    }

    fn thread(tid: i32, ran: u64, waited: u64, slices: u64, state: char) -> ThreadSched {
        ThreadSched {
            tid,
            ran: ms(ran),
            waited: ms(waited),
            slices,
            state,
        }
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let at = Instant::now();
        let before = Sched {
            at,
            threads: vec![thread(1, 10, 500, 7, 'S'), thread(2, 3, 40, 5, 'S')],
        };
        let after = Sched {
            at: at + ms(100),
            threads: vec![
                thread(1, 11, 580, 9, 'S'),
                thread(2, 3, 45, 6, 'R'),
                // A thread begun in the window: all its time is in it.
                thread(3, 1, 2, 1, 'S'),
            ],
        };
        assert_eq!(Window::between(&before, &after), window(100, 87, 2));
        // A thread that ended took its counts along; one whose counts
        // went down (its id reused) counts nothing.
        let fewer = Sched {
            threads: vec![thread(1, 5, 400, 9, 'S')],
            ..after.clone()
        };
        assert_eq!(Window::between(&before, &fewer), window(100, 0, 0));
        // Stopped: a thread stopped by a signal or a tracer.
        let stopped = Sched {
            threads: vec![thread(1, 10, 500, 7, 't')],
            ..after
        };
        assert!(Window::between(&before, &stopped).stopped);
    }

    #[test]
    fn runnable_at_both_ends_without_a_cpu_is_queued() {
        let at = Instant::now();
        let before = Sched {
            at,
            threads: vec![thread(1, 10, 500, 7, 'R'), thread(2, 3, 40, 5, 'S')],
        };
        let after = Sched {
            at: at + ms(100),
            threads: vec![thread(1, 10, 500, 7, 'R'), thread(2, 3, 40, 5, 'S')],
        };
        let window = Window::between(&before, &after);
        assert!(window.queued, "{window:?}");
        assert_eq!(judge(PERIOD, window), Verdict::Starved);
        // It got a CPU in between: its wait was counted, not assumed.
        let ran = Sched {
            threads: vec![thread(1, 11, 510, 8, 'R'), thread(2, 3, 40, 5, 'S')],
            ..after.clone()
        };
        let window = Window::between(&before, &ran);
        assert!(!window.queued, "{window:?}");
        assert_eq!(judge(PERIOD, window), Verdict::Hung);
        // Runnable at the end only: it woke up in the window.
        let woke = Sched {
            threads: vec![thread(1, 10, 500, 7, 'S'), thread(2, 3, 40, 5, 'R')],
            ..before
        };
        assert!(!Window::between(&woke, &after).queued);
    }

    #[test]
    fn a_watch_looks_halfway_then_at_the_deadline() {
        let now = Instant::now();
        let mut watch = Watch::new(PERIOD, now);
        assert_eq!(watch.next(), now + ms(300));
        watch.alive(now + ms(10));
        assert_eq!(watch.next(), now + ms(110));
        // Nothing is read before it is time.
        assert_eq!(watch.check(Pid::this(), "test", now + ms(20)), None);
        assert_eq!(watch.next(), now + ms(110));
        // Halfway: this process is read, and judged at the deadline.
        assert_eq!(watch.check(Pid::this(), "test", now + ms(110)), None);
        assert!(watch.seen.is_some());
        assert_eq!(watch.next(), now + ms(210));
        // A process that is gone is hung.
        let mut gone = Watch::new(PERIOD, now);
        let pid = Pid::from_raw(i32::MAX);
        assert_eq!(gone.check(pid, "test", now + ms(300)), None);
        assert_eq!(gone.check(pid, "test", now + ms(400)), Some(Hung::Unread));
    }
}
