//! The watchdog's judgement of a watched process (a worker host, or a
//! child supervisor) that missed its deadline: starved is not hung.
//!
//! The deadline itself is a timer of the supervisor's machine
//! ([`crate::machine`]), as is what follows from it: a sign of life moves it
//! a period on ([`Machine::handle_alive`]), a process found not hung here
//! has it moved on ([`Machine::handle_reprieve`]), and one silent past it
//! is killed by the machine's decision, as hung. This module only looks at
//! the scheduler, which the machine can not.
//!
//! [`Machine::handle_alive`]: crate::machine::Machine::handle_alive
//! [`Machine::handle_reprieve`]: crate::machine::Machine::handle_reprieve
//!
//! # Who answers
//!
//! A process shows life with [`Note::Alive`](crate::wire::Note::Alive),
//! which names the thread that sent it: a child supervisor's only thread;
//! the thread of a worker host's executor that ran its show-life task (the
//! main thread, in `Spawner::block_on`, on a single-threaded runtime:
//! Tokio's current-thread one, smol's; any worker thread on Tokio's
//! multi-thread one). Those threads *answer* for the process (the
//! [`ANSWERING`] most recent senders that still run; its main thread until
//! it first shows life, or once they all ended), and only they are judged.
//! Any other thread of it (a worker's background thread, a blocking pool,
//! the host's command reader) makes it look neither starved nor alive: a
//! host whose executor thread is blocked while a thread beside it computes
//! is hung, quota or not.
//!
//! # The rule
//!
//! A process must show life every period. Once it has been silent for half
//! a period, its answering threads are read ([`Sched`]); at its deadline
//! they are read again and judged over the window between ([`judge`]):
//!
//! * stopped (SIGSTOP, a tracer): **hung**;
//! * an answering thread is runnable (`R`: on a CPU, or waiting for one,
//!   queued or throttled by a CPU quota) and ran less than its
//!   [`budget`] in the window (a twentieth of the period, at least 1 ms:
//!   10 ms at 200 ms): **starved**. Its deadline moves half a period on,
//!   and it is judged again then, over the window from the same start: the
//!   window grows, and what it ran adds up, while it is starved;
//! * otherwise **hung**: every answering thread is asleep (`S`, `D`:
//!   blocked, deadlocked), or had its budget of CPU and said nothing (a
//!   busy loop, with a quota or without).
//!
//! Why this tells the two apart: an answering thread whose sign of life is
//! due (its timer fires a quarter period after its last one) is runnable
//! until it gets a CPU, and answers in its first turn on one (a note is a
//! write of a few bytes; a supervisor's turn takes well under a
//! millisecond). So a healthy thread of a process silent for a whole period
//! is runnable (starved) or has answered, and the CPU it had in the window
//! without answering is next to none. A hung one is asleep, or runs
//! without answering.
//!
//! The budget is CPU time, not a share of the window: under a quota a busy
//! loop gets only the quota's share of each window (a quarter CPU: 25 ms
//! of every 100 ms, waiting or throttled the rest: it looked starved to a
//! rule on shares), and a starved idle thread under a tiny quota shared by
//! many gets far less than the budget (0.01 CPU: 1 ms per 100 ms, for the
//! whole group). A busy loop under a quota `q` is caught once it has had
//! its budget: after `budget / q` of window, which starts half a period
//! into its silence (a quarter CPU, a 200 ms period: 40 ms, in its first
//! window, so by the deadline; within 2 × the period down to 0.05 CPU;
//! 0.01 CPU: about a second). The quota itself need not be known. A
//! twentieth rather than a tenth of the period: a supervisor that judges
//! under the same quota reads late, when the group's quota comes back, and
//! a quarter CPU's 25 ms per 100 ms must clear the budget with room.
//!
//! A process whose main thread ended is exiting (a Rust process ends when
//! its main thread returns; its other threads need a CPU to end, too, and
//! under a tiny quota that takes seconds), or has exited and waits to be
//! reaped: neither hung nor starved, it is looked at again half a period
//! on. Exiting means as a whole (`exit_group`: every other thread ended or
//! has SIGKILL pending); a main thread that ended by itself while the
//! others run on (a raw `SYS_exit` in a worker) is hung. A process that
//! can not be read at all (gone) is hung, as without a judgement. Nothing is read while a process shows life in time. A
//! process judged hung is killed only once its channel has been read again,
//! after the scheduler was asked (`Node::wait`): a sign of life it sent
//! before (just before, from another CPU: under a quota a starved process
//! and its judge get the CPU back at the same moment) is never taken for
//! silence.
//!
//! # What the kernel shows
//!
//! Measured on Linux 6.18 (task-based CFS throttling: a throttled task is
//! taken off its run queue when it returns to user space), cgroup v1 `cpu`,
//! sampling `/proc/<pid>/stat` and `schedstat` every millisecond:
//!
//! * a thread throttled by its group's quota stays `R` all through the
//!   throttling, and a thread that wakes while its group is throttled is
//!   `R` too (`S` only while it sleeps);
//! * time throttled counts as a wait in `schedstat` (`run_delay`), but only
//!   once the wait ends: a hog under 25 ms per 100 ms had its counters
//!   still for ~60 ms, then its wait grew by all of it at once when the
//!   quota came back. A wait still going on shows in the state letter
//!   only: a rule on counted waits judged hung a starved supervisor that
//!   woke in the window and waited from then on (`attack20_tiny_quota`);
//! * over 200 ms: a hog under a quarter CPU ran 50 ms and waited 150 ms;
//!   beside three hogs, an idle sleeper (waking every 10 ms) ran 0.1 ms
//!   and waited ~180 ms; under 0.01 CPU, a hog ran 0.6 ms and a sleeper
//!   beside it 1.3 ms.
//!
//! # Left as they are
//!
//! * A thread that blocks its executor with short sleeps in a loop is `R`
//!   whenever it is read waiting for a CPU after one: starved for that
//!   window, hung at the first deadline it is read asleep.
//! * A host whose executor runs more than the budget of CPU between two
//!   turns of its show-life task (many tasks, each long between yields) is
//!   hung once a quota stretches that past a period, as a busy loop is.
//! * On a multi-threaded runtime, a worker thread that never sent a sign
//!   of life does not answer yet: if the host's timer fires on it while
//!   the others sleep, a starved host is judged by those.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::machine::Reprieve;
use crate::os::sys::{self, Sched, ThreadSched};

/// How many threads that answer for a process are remembered: the most
/// recent distinct senders of its signs of life.
pub(super) const ANSWERING: usize = 16;

/// The CPU time an answering thread may have in a window without showing
/// life and still be judged starved, for a watchdog `period`: a twentieth
/// of it, at least 1 ms (see the module doc).
pub(super) fn budget(period: Duration) -> Duration {
    (period / 20).max(Duration::from_millis(1))
}

/// What the scheduler did with one answering thread over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Answerer {
    /// Its thread id.
    pub(super) tid: i32,
    /// Time it spent on a CPU in the window.
    pub(super) ran: Duration,
    /// Time it waited for a CPU in the window (waits that ended in it;
    /// for the log only).
    pub(super) waited: Duration,
    /// Its state letter at the end of the window.
    pub(super) state: char,
}

impl Answerer {
    /// Whether it was runnable at the end of the window, and ran less than
    /// `budget` in it: it can not have had its chance to answer.
    fn starved(&self, budget: Duration) -> bool {
        self.state == 'R' && self.ran < budget
    }
}

impl std::fmt::Display for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            'R' => "runnable",
            'S' => "asleep",
            'D' => "asleep, uninterruptible",
            'T' | 't' => "stopped",
            _ => "in state",
        };
        write!(
            f,
            "thread {} ran {:?} and waited {:?} for a CPU, {state} ({})",
            self.tid, self.ran, self.waited, self.state
        )
    }
}

/// What the scheduler did with the answering threads of a silent process
/// over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Window {
    /// How long the window lasted.
    pub(super) length: Duration,
    /// Its answering threads that could be read at its end.
    pub(super) threads: Vec<Answerer>,
    /// A thread read was stopped at the end of the window.
    pub(super) stopped: bool,
}

impl Window {
    /// The window from `before` to `after`, of the threads `answering`
    /// (any other thread read is left out).
    fn between(before: &Sched, after: &Sched, answering: &[i32]) -> Self {
        let threads = after
            .threads
            .iter()
            .filter(|t| answering.contains(&t.tid))
            .map(|thread| {
                let (ran, waited) = match before.thread(thread.tid) {
                    Some(was) => (
                        thread.ran.saturating_sub(was.ran),
                        thread.waited.saturating_sub(was.waited),
                    ),
                    // It began in the window: all its time is in it.
                    None => (thread.ran, thread.waited),
                };
                Answerer {
                    tid: thread.tid,
                    ran,
                    waited,
                    state: thread.state,
                }
            })
            .collect();
        Self {
            length: after.at.saturating_duration_since(before.at),
            threads,
            stopped: after.threads.iter().any(ThreadSched::stopped),
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "in {:?}", self.length)?;
        if self.threads.is_empty() {
            return f.write_str(", no thread that answers for it");
        }
        for (n, thread) in self.threads.iter().enumerate() {
            f.write_str(if n == 0 { ": " } else { "; " })?;
            write!(f, "{thread}")?;
        }
        Ok(())
    }
}

/// The judgement of a process that missed its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Stopped, asleep, or silent with its budget of CPU: to be killed.
    Hung,
    /// An answering thread is runnable but was given next to no CPU: to be
    /// given more time.
    Starved,
    /// The window is too short to tell (under a quarter `period`).
    TooShort,
}

/// Judges a process watched with `period` by what the scheduler did with
/// its answering threads over `window`: stopped → hung; one of them
/// runnable at the end, having run less than its [`budget`] → starved;
/// otherwise (all asleep, or silent with the CPU) → hung.
pub(super) fn judge(period: Duration, window: &Window) -> Verdict {
    let budget = budget(period);
    if window.stopped {
        Verdict::Hung
    } else if window.length < period / 4 {
        Verdict::TooShort
    } else if window.threads.iter().any(|t| t.starved(budget)) {
        Verdict::Starved
    } else {
        Verdict::Hung
    }
}

/// Why a process was found hung (for the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Hung {
    /// Stopped (SIGSTOP, a tracer).
    Stopped,
    /// Not starved over this window, with this budget.
    NotStarved(Window, Duration),
    /// Its scheduler statistics could not be read.
    Unread,
    /// Its main thread ended by itself while its other threads run on.
    MainThreadEnded,
}

impl std::fmt::Display for Hung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stopped => f.write_str("it is stopped"),
            Self::NotStarved(window, budget) => write!(
                f,
                "not starved (no thread that answers for it is runnable with less than \
                 {budget:?} of CPU: asleep, or busy without answering) {window}"
            ),
            Self::Unread => f.write_str("its scheduler statistics could not be read"),
            Self::MainThreadEnded => {
                f.write_str("its main thread ended by itself while its other threads run on")
            }
        }
    }
}

/// What the engine keeps to judge one watched process: the threads that
/// answer for it, and what the scheduler had done with them when its
/// silence was first looked at. When it is due to show life is its
/// supervisor's machine's ([`Machine::alive_by`]), and so is what happens
/// when it has not: the judgement only tells the machine that a silent
/// process is not hung (yet) ([`Machine::handle_reprieve`]).
///
/// [`Machine::alive_by`]: crate::machine::Machine::alive_by
/// [`Machine::handle_reprieve`]: crate::machine::Machine::handle_reprieve
#[derive(Debug)]
pub(super) struct Watch {
    period: Duration,
    /// Whether its current silence was looked at halfway (or judged
    /// since): it is next looked at at its deadline.
    halfway: bool,
    /// What the scheduler had done with its answering threads when this
    /// silence was first looked at: where the judged window starts.
    seen: Option<Sched>,
    /// The threads its signs of life came from, the most recent last (at
    /// most [`ANSWERING`]); none before the first.
    answering: Vec<i32>,
}

/// What a look at a process silent at its deadline found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Judged {
    /// It is hung: its machine kills it, unless a sign of life it sent
    /// meanwhile is read first.
    Hung(Hung),
    /// It is not hung (yet): its machine moves its deadline on.
    NotHung(Reprieve),
}

impl Watch {
    /// A process forked with a watchdog `period`.
    pub(super) fn new(period: Duration) -> Self {
        Self {
            period,
            halfway: false,
            seen: None,
            answering: Vec::new(),
        }
    }

    /// Its watchdog period.
    pub(super) fn period(&self) -> Duration {
        self.period
    }

    /// It showed life, from its thread `thread`: its silence ended.
    pub(super) fn alive(&mut self, thread: i32) {
        if self.answering.last() != Some(&thread) {
            self.answering.retain(|&t| t != thread);
            if self.answering.len() >= ANSWERING {
                self.answering.remove(0);
            }
            self.answering.push(thread);
        }
        self.halfway = false;
        self.seen = None;
    }

    /// When it must next be looked at (with [`Watch::check`]), if it must
    /// show life `by`: halfway through a silence, then at the deadline.
    pub(super) fn next(&self, by: Instant) -> Instant {
        if self.halfway {
            by
        } else {
            by.checked_sub(self.period / 2).unwrap_or(by)
        }
    }

    /// The threads of process `pid` to read: its main thread, and those
    /// its signs of life came from.
    fn to_read(&self, pid: Pid) -> Vec<i32> {
        std::iter::once(pid.as_raw())
            .chain(self.answering.iter().copied())
            .collect()
    }

    /// The threads that answer for process `pid`, as read in `after`:
    /// those its signs of life came from that still run; its main thread
    /// before the first sign, or once they all ended.
    fn answering(&self, pid: Pid, after: &Sched) -> Vec<i32> {
        let running: Vec<i32> = self
            .answering
            .iter()
            .copied()
            .filter(|&tid| after.thread(tid).is_some_and(|t| !t.ended()))
            .collect();
        if running.is_empty() {
            vec![pid.as_raw()]
        } else {
            running
        }
    }

    /// Looks at process `pid` (a `what`), due to show life `by`, if it is
    /// time to: `Some` once its deadline passed, with what was found.
    pub(super) fn check(
        &mut self,
        pid: Pid,
        what: &str,
        now: Instant,
        by: Instant,
    ) -> Option<Judged> {
        if now < self.next(by) {
            return None;
        }
        let sched = Sched::read(pid, &self.to_read(pid));
        self.look(pid, what, now, by, sched)
    }

    /// [`check`](Self::check), with what the scheduler had done with its
    /// threads (see [`to_read`](Self::to_read)) read at `now` (`None`:
    /// they could not be).
    fn look(
        &mut self,
        pid: Pid,
        what: &str,
        now: Instant,
        by: Instant,
        sched: Option<Sched>,
    ) -> Option<Judged> {
        self.halfway = true;
        if now < by {
            // Halfway through its silence: where the window starts.
            self.seen = sched;
            return None;
        }
        let Some(after) = sched else {
            return Some(Judged::Hung(Hung::Unread));
        };
        if after.exiting(pid) {
            if !sys::group_exiting(pid) {
                // Its executor thread is gone (a raw `SYS_exit`), and the
                // process would run on with nothing to answer for it.
                return Some(Judged::Hung(Hung::MainThreadEnded));
            }
            // Its main thread returned: it exits (its other threads need a
            // CPU to end, too), or has, and is reaped once it has. Neither
            // hung nor starved: looked at again later.
            tracing::debug!(pid = pid.as_raw(), period = ?self.period,
                "{what} missed its watchdog deadline exiting");
            return Some(Judged::NotHung(Reprieve::Exiting));
        }
        if after.stopped() {
            return Some(Judged::Hung(Hung::Stopped));
        }
        let Some(before) = &self.seen else {
            // Looked at late (this supervisor was starved or busy itself),
            // or not read then: the window starts now.
            tracing::debug!(pid = pid.as_raw(), period = ?self.period,
                "{what} missed its watchdog deadline, looked at late; judged over the window from now");
            self.seen = Some(after);
            return Some(Judged::NotHung(Reprieve::LookedLate));
        };
        let window = Window::between(before, &after, &self.answering(pid, &after));
        Some(match judge(self.period, &window) {
            Verdict::Hung => Judged::Hung(Hung::NotStarved(window, budget(self.period))),
            Verdict::TooShort => Judged::NotHung(Reprieve::ShortWindow),
            Verdict::Starved => {
                // The window keeps its start: what it runs adds up.
                tracing::debug!(pid = pid.as_raw(), period = ?self.period, %window,
                    "{what} missed its watchdog deadline starved of CPU");
                Judged::NotHung(Reprieve::Starved)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(200);
    /// The answering thread of the tests' processes (a single-threaded
    /// runtime's main thread), and their pid: above the kernel's largest
    /// pid (2^22), so that no process of the machine is read for it.
    const MAIN: i32 = 4_194_400;
    /// Another thread of it (a worker's background thread).
    const OTHER: i32 = MAIN + 1;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn answerer(tid: i32, ran: Duration, waited: Duration, state: char) -> Answerer {
        Answerer {
            tid,
            ran,
            waited,
            state,
        }
    }

    /// A window of `length` ms over the main thread alone.
    fn window(length: u64, ran: Duration, waited: Duration, state: char) -> Window {
        Window {
            length: ms(length),
            threads: vec![answerer(MAIN, ran, waited, state)],
            stopped: matches!(state, 'T' | 't'),
        }
    }

    /// A watch with the deadline its machine keeps for it: two periods
    /// after its start, a period after each sign of life, moved on by each
    /// reprieve.
    struct Timed {
        watch: Watch,
        by: Instant,
    }

    impl Timed {
        fn new(t0: Instant) -> Self {
            Self {
                watch: Watch::new(PERIOD),
                by: t0 + 2 * PERIOD,
            }
        }

        fn alive(&mut self, now: Instant, thread: i32) {
            self.watch.alive(thread);
            self.by = now + PERIOD;
        }

        fn next(&self) -> Instant {
            self.watch.next(self.by)
        }

        /// What the machine learns: a reprieve moves the deadline on.
        fn judged(&mut self, at: Instant, judged: Option<Judged>) -> Option<Hung> {
            match judged? {
                Judged::Hung(why) => Some(why),
                Judged::NotHung(why) => {
                    self.by = at + why.delay(PERIOD);
                    None
                }
            }
        }

        fn look(
            &mut self,
            pid: Pid,
            what: &str,
            at: Instant,
            sched: Option<Sched>,
        ) -> Option<Hung> {
            let judged = self.watch.look(pid, what, at, self.by, sched);
            self.judged(at, judged)
        }

        fn check(&mut self, pid: Pid, what: &str, at: Instant) -> Option<Hung> {
            let judged = self.watch.check(pid, what, at, self.by);
            self.judged(at, judged)
        }
    }

    impl std::ops::Deref for Timed {
        type Target = Watch;

        fn deref(&self) -> &Watch {
            &self.watch
        }
    }

    fn thread(tid: i32, ran: Duration, waited: Duration, state: char) -> ThreadSched {
        ThreadSched {
            tid,
            ran,
            waited,
            state,
        }
    }

    #[test]
    fn the_budget_is_a_twentieth_of_the_period_at_least_a_millisecond() {
        assert_eq!(budget(PERIOD), ms(10));
        assert_eq!(budget(Duration::from_secs(2)), ms(100));
        assert_eq!(budget(ms(10)), ms(1));
    }

    #[test]
    fn runnable_without_its_budget_of_cpu_is_starved() {
        // Measured: an idle sleeper under a quarter-CPU quota beside three
        // hogs, over 200 ms: 0.1 ms on a CPU, ~180 ms waiting.
        assert_eq!(
            judge(PERIOD, &window(200, us(100), ms(180), 'R')),
            Verdict::Starved
        );
        // Waiting still (the wait is not counted until it ends).
        assert_eq!(
            judge(PERIOD, &window(100, ms(0), ms(0), 'R')),
            Verdict::Starved
        );
        // Just under the budget.
        assert_eq!(
            judge(PERIOD, &window(100, us(9_999), ms(0), 'R')),
            Verdict::Starved
        );
    }

    #[test]
    fn starved_under_a_tiny_quota_is_starved() {
        // attack20_tiny_quota, measured before this rule: a child
        // supervisor under 0.01 CPU shared by eleven processes, judged by
        // a starved supervisor over 400 ms: 49 ms of waits that ended in
        // the window, 17 µs on a CPU, and waiting again at its end (it
        // woke for its sign of life). Counted waits said hung; the state
        // says starved.
        assert_eq!(
            judge(PERIOD, &window(399, us(17), ms(49), 'R')),
            Verdict::Starved
        );
        // The whole group gets 1 ms per 100 ms: even a thread that had all
        // of it over a second is under the budget.
        assert_eq!(
            judge(PERIOD, &window(1_000, ms(9), ms(990), 'R')),
            Verdict::Starved
        );
    }

    #[test]
    fn spinning_under_a_quota_is_hung() {
        // attack20_busy_under_quota: a busy loop under a quarter CPU runs
        // 25 ms of every 100 ms and is throttled the rest (its wait
        // counted once the quota comes back): runnable, but it had the CPU.
        assert_eq!(
            judge(PERIOD, &window(100, ms(25), ms(75), 'R')),
            Verdict::Hung
        );
        // Exactly the budget.
        assert_eq!(
            judge(PERIOD, &window(100, ms(10), ms(90), 'R')),
            Verdict::Hung
        );
        // On an idle machine: on a CPU all along.
        assert_eq!(
            judge(PERIOD, &window(100, ms(100), ms(0), 'R')),
            Verdict::Hung
        );
    }

    #[test]
    fn asleep_is_hung_whatever_it_waited() {
        // A blocking call, a deadlock: asleep, however long it waited for
        // a CPU before it went to sleep.
        assert_eq!(
            judge(PERIOD, &window(100, ms(0), ms(0), 'S')),
            Verdict::Hung
        );
        assert_eq!(
            judge(PERIOD, &window(100, us(50), ms(90), 'S')),
            Verdict::Hung
        );
        assert_eq!(
            judge(PERIOD, &window(100, ms(0), ms(0), 'D')),
            Verdict::Hung
        );
    }

    #[test]
    fn stopped_is_hung_whatever_it_waited() {
        assert_eq!(
            judge(PERIOD, &window(100, ms(0), ms(90), 'T')),
            Verdict::Hung
        );
        assert_eq!(
            judge(PERIOD, &window(100, ms(0), ms(0), 't')),
            Verdict::Hung
        );
        // Even in a window too short to judge.
        assert_eq!(judge(PERIOD, &window(1, ms(0), ms(0), 'T')), Verdict::Hung);
    }

    #[test]
    fn a_short_window_is_not_judged() {
        assert_eq!(
            judge(PERIOD, &window(49, ms(0), ms(0), 'S')),
            Verdict::TooShort
        );
        assert_eq!(judge(PERIOD, &window(50, ms(0), ms(0), 'S')), Verdict::Hung);
    }

    #[test]
    fn no_thread_to_answer_is_hung() {
        let none = Window {
            length: ms(100),
            threads: Vec::new(),
            stopped: false,
        };
        assert_eq!(judge(PERIOD, &none), Verdict::Hung);
    }

    #[test]
    fn one_starved_answering_thread_of_several_is_enough() {
        // A multi-thread runtime: one worker thread spins, another that
        // answered before waits for a CPU: it may answer yet.
        let two = Window {
            length: ms(100),
            threads: vec![
                answerer(MAIN, ms(25), ms(75), 'R'),
                answerer(OTHER, us(5), ms(60), 'R'),
            ],
            stopped: false,
        };
        assert_eq!(judge(PERIOD, &two), Verdict::Starved);
        // Both asleep, or one asleep and one busy: hung.
        let busy = Window {
            threads: vec![
                answerer(MAIN, ms(25), ms(75), 'R'),
                answerer(OTHER, ms(0), ms(0), 'S'),
            ],
            ..two
        };
        assert_eq!(judge(PERIOD, &busy), Verdict::Hung);
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings_of_the_answering_threads() {
        let at = Instant::now();
        let before = Sched {
            at,
            threads: vec![
                thread(MAIN, ms(10), ms(500), 'S'),
                thread(OTHER, ms(3), ms(40), 'R'),
            ],
        };
        let after = Sched {
            at: at + ms(100),
            threads: vec![
                thread(MAIN, ms(11), ms(580), 'R'),
                thread(OTHER, ms(90), ms(45), 'R'),
                // A thread begun in the window: all its time is in it.
                thread(102, ms(1), ms(2), 'S'),
            ],
        };
        let window = Window::between(&before, &after, &[MAIN, 102]);
        assert_eq!(
            window,
            Window {
                length: ms(100),
                threads: vec![
                    answerer(MAIN, ms(1), ms(80), 'R'),
                    answerer(102, ms(1), ms(2), 'S'),
                ],
                stopped: false,
            }
        );
        // A thread whose counts went down (its id reused) counts nothing.
        let reused = Sched {
            threads: vec![thread(MAIN, ms(5), ms(400), 'S')],
            ..after.clone()
        };
        assert_eq!(
            Window::between(&before, &reused, &[MAIN]).threads,
            vec![answerer(MAIN, ms(0), ms(0), 'S')]
        );
        // Stopped: a thread stopped by a signal or a tracer.
        let stopped = Sched {
            threads: vec![thread(MAIN, ms(10), ms(500), 't')],
            ..after
        };
        assert!(Window::between(&before, &stopped, &[MAIN]).stopped);
    }

    #[test]
    fn blocked_beside_a_busy_thread_is_hung() {
        // attack20_deadlock_beside_work: the executor's thread blocks for
        // good while a thread beside it computes under a quarter CPU
        // (runnable, throttled most of the time). That thread does not
        // answer for the process: it makes it look neither starved nor
        // alive.
        let at = Instant::now();
        let before = Sched {
            at,
            threads: vec![
                thread(MAIN, ms(40), ms(5), 'S'),
                thread(OTHER, ms(30), ms(70), 'R'),
            ],
        };
        let after = Sched {
            at: at + ms(100),
            threads: vec![
                thread(MAIN, ms(40), ms(5), 'S'),
                thread(OTHER, ms(31), ms(170), 'R'),
            ],
        };
        let window = Window::between(&before, &after, &[MAIN]);
        assert_eq!(window.threads, vec![answerer(MAIN, ms(0), ms(0), 'S')]);
        assert_eq!(judge(PERIOD, &window), Verdict::Hung);
    }

    /// A reading of the main thread at `at`.
    fn reading(at: Instant, ran: Duration, waited: Duration, state: char) -> Option<Sched> {
        Some(Sched {
            at,
            threads: vec![thread(MAIN, ran, waited, state)],
        })
    }

    #[test]
    fn a_spinner_under_a_small_quota_is_caught_once_it_had_its_budget() {
        // Under 0.05 CPU a busy loop runs 5 ms per 100 ms: no single window
        // holds the budget, but the window grows while it is judged
        // starved, and what it ran adds up.
        let pid = Pid::from_raw(MAIN);
        let t0 = Instant::now();
        let mut watch = Timed::new(t0);
        watch.alive(t0, MAIN);
        let halfway = t0 + ms(100);
        assert_eq!(watch.next(), halfway);
        let look = |watch: &mut Timed, at: Instant, ran| {
            watch.look(pid, "test", at, reading(at, ran, ms(0), 'R'))
        };
        assert_eq!(look(&mut watch, halfway, ms(100)), None);
        // The deadline: 5 ms in 100 ms, starved; judged again 100 ms on.
        assert_eq!(look(&mut watch, t0 + ms(200), ms(105)), None);
        assert_eq!(watch.next(), t0 + ms(300));
        // 10 ms over the 200 ms from the halfway reading: its budget.
        let hung = look(&mut watch, t0 + ms(300), ms(110));
        let Some(Hung::NotStarved(window, budget)) = hung else {
            panic!("{hung:?}");
        };
        assert_eq!(budget, ms(10));
        assert_eq!(window.length, ms(200));
        assert_eq!(window.threads, vec![answerer(MAIN, ms(10), ms(0), 'R')]);
    }

    #[test]
    fn a_starved_idle_thread_stays_starved_and_a_stopped_one_is_hung() {
        let pid = Pid::from_raw(MAIN);
        let t0 = Instant::now();
        let mut watch = Timed::new(t0);
        watch.alive(t0, MAIN);
        let mut at = t0 + ms(100);
        let mut ran = ms(50);
        assert_eq!(
            watch.look(pid, "test", at, reading(at, ran, ms(7), 'S')),
            None
        );
        // Under 0.01 CPU: a few hundred µs now and then, waiting the rest,
        // for two seconds.
        for _ in 0..20 {
            at += ms(100);
            ran += us(300);
            assert_eq!(
                watch.look(pid, "test", at, reading(at, ran, ms(9), 'R')),
                None
            );
            assert_eq!(watch.next(), at + ms(100));
        }
        // Then it is SIGSTOPped.
        at += ms(100);
        assert_eq!(
            watch.look(pid, "test", at, reading(at, ran, ms(9), 'T')),
            Some(Hung::Stopped)
        );
    }

    #[test]
    fn a_watch_judges_the_threads_that_showed_life() {
        let now = Instant::now();
        let pid = Pid::from_raw(MAIN);
        let mut watch = Timed::new(now);
        let all = |tids: &[i32]| Sched {
            at: now,
            threads: tids
                .iter()
                .map(|&tid| thread(tid, ms(0), ms(0), 'S'))
                .collect(),
        };
        // Before any sign of life: the main thread.
        assert_eq!(watch.to_read(pid), vec![MAIN]);
        assert_eq!(watch.answering(pid, &all(&[MAIN])), vec![MAIN]);
        watch.alive(now, 7);
        watch.alive(now, 8);
        watch.alive(now, 7);
        assert_eq!(watch.to_read(pid), vec![MAIN, 8, 7]);
        assert_eq!(watch.answering(pid, &all(&[MAIN, 7, 8])), vec![8, 7]);
        // A thread that ended answers no more; once all did, the main
        // thread answers again.
        assert_eq!(watch.answering(pid, &all(&[MAIN, 7])), vec![7]);
        assert_eq!(watch.answering(pid, &all(&[MAIN])), vec![MAIN]);
        for tid in 0..40 {
            watch.alive(now, tid);
        }
        let last: Vec<i32> = (40 - ANSWERING as i32..40).collect();
        assert_eq!(watch.answering(pid, &all(&last)), last);
        assert_eq!(watch.to_read(pid).len(), ANSWERING + 1);
    }

    #[test]
    fn a_multi_threaded_host_is_judged_by_its_answering_threads() {
        // Tokio's multi-thread runtime: signs of life came from worker
        // threads 7 and 8; the main thread (in `block_on`) sleeps.
        let pid = Pid::from_raw(MAIN);
        let t0 = Instant::now();
        let mut watch = Timed::new(t0);
        watch.alive(t0, 7);
        watch.alive(t0, 8);
        let read = |at, seven: char, eight: char| {
            Some(Sched {
                at,
                threads: vec![
                    thread(MAIN, ms(1), ms(0), 'S'),
                    thread(7, ms(0), ms(0), seven),
                    thread(8, ms(0), ms(0), eight),
                ],
            })
        };
        assert_eq!(
            watch.look(pid, "test", t0 + ms(100), read(t0, 'S', 'S')),
            None
        );
        // Worker 8 waits for a CPU: starved.
        assert_eq!(
            watch.look(pid, "test", t0 + ms(200), read(t0 + ms(100), 'S', 'R')),
            None
        );
        // Both asleep (a deadlock): hung, the main thread notwithstanding.
        let hung = watch.look(pid, "test", t0 + ms(300), read(t0 + ms(200), 'S', 'S'));
        assert!(
            matches!(&hung, Some(Hung::NotStarved(w, _)) if w.threads.len() == 2),
            "{hung:?}"
        );
    }

    #[test]
    fn an_exiting_process_is_neither_hung_nor_starved() {
        let pid = Pid::from_raw(MAIN);
        let t0 = Instant::now();
        let mut watch = Timed::new(t0);
        watch.alive(t0, MAIN);
        let halfway = t0 + ms(100);
        assert_eq!(
            watch.look(pid, "test", halfway, reading(halfway, ms(5), ms(1), 'S')),
            None
        );
        // Its main thread returned: a zombie until its other threads end
        // (they wait for a CPU, under a quota), and it is reaped.
        let at = t0 + ms(200);
        assert_eq!(
            watch.look(pid, "test", at, reading(at, ms(0), ms(0), 'Z')),
            None
        );
        assert_eq!(watch.next(), at + ms(100));
        // Reaped (by someone else): gone, hung as without a judgement.
        assert_eq!(
            watch.look(pid, "test", at + ms(100), None),
            Some(Hung::Unread)
        );
    }

    #[test]
    fn a_watch_looks_halfway_then_at_the_deadline() {
        let now = Instant::now();
        let this = nix::unistd::gettid().as_raw();
        let mut watch = Timed::new(now);
        assert_eq!(watch.next(), now + ms(300));
        watch.alive(now + ms(10), this);
        assert_eq!(watch.next(), now + ms(110));
        // Nothing is read before it is time.
        assert_eq!(watch.check(Pid::this(), "test", now + ms(20)), None);
        assert_eq!(watch.next(), now + ms(110));
        // Halfway: this thread is read, and judged at the deadline.
        assert_eq!(watch.check(Pid::this(), "test", now + ms(110)), None);
        assert!(watch
            .seen
            .as_ref()
            .is_some_and(|s| s.thread(this).is_some()));
        assert_eq!(watch.next(), now + ms(210));
        // A process that is gone is hung.
        let mut gone = Timed::new(now);
        let pid = Pid::from_raw(i32::MAX);
        assert_eq!(gone.check(pid, "test", now + ms(300)), None);
        assert_eq!(gone.check(pid, "test", now + ms(400)), Some(Hung::Unread));
    }

    #[test]
    fn a_hung_process_is_explained() {
        let why = Hung::NotStarved(window(100, ms(25), ms(75), 'R'), ms(10));
        assert_eq!(
            why.to_string(),
            "not starved (no thread that answers for it is runnable with less than 10ms of CPU: \
             asleep, or busy without answering) in 100ms: thread 4194400 ran 25ms and waited 75ms \
             for a CPU, runnable (R)"
        );
    }
}
