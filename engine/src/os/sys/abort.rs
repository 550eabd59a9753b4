//! What a process whose memory limit is `RLIMIT_AS` found when it aborted,
//! so that its supervisor can tell an allocation that failed at the limit
//! (reported `out of memory`) from the other ways to die of `SIGABRT`.
//!
//! Under `RLIMIT_AS` the kernel kills nothing: an allocation past the limit
//! fails, and Rust then prints `memory allocation of N bytes failed` (and,
//! with `RUST_BACKTRACE` on, a backtrace) and aborts. The supervisor makes
//! an [`AbortMark`], a word shared with the process, before it forks it; the
//! process installs a `SIGABRT` handler ([`AbortMark::install`]) that, when
//! the process aborts by itself, records in the word:
//!
//! * that it did: a `SIGABRT` that another process sent does not count;
//! * whether the aborting thread was panicking: a panic under
//!   `panic = "abort"`, or a panic while panicking, is not an allocation
//!   that failed;
//! * whether `errno` was `ENOMEM`, as the failed `malloc` or `mmap` left
//!   it: printing the message is a `write` that succeeds and `abort` sets
//!   no `errno`, so it is still there;
//! * whether `RUST_BACKTRACE` was on (read at install): then the backtrace
//!   printed after the message has set `errno` (files it looked for and did
//!   not find), and `errno` tells nothing.
//!
//! It then lets the abort go on: the process still dies of `SIGABRT`, with
//! its core dump where those are on. [`AbortMark::out_of_memory`] reads the
//! verdict. Only the supervisor and that process share the word: both keep
//! it from the processes they fork later.
//!
//! What this can not tell: with `RUST_BACKTRACE` on, an explicit
//! [`std::process::abort`] (or a C library's `abort()`) outside a panic
//! reads as out of memory; with it off, an abort right after an unrelated
//! call failed with `ENOMEM` does too. An allocation that failed while a
//! thread was panicking, or whose message could not be written (stderr
//! closed), or a process that put its own `SIGABRT` handler in place of
//! this one, reads as what it is: killed by `SIGABRT`.

use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::SharedWord;

/// The process aborted by itself, and the handler saw it.
const ABORTED: u32 = 1;
/// The aborting thread was panicking.
const PANICKING: u32 = 1 << 1;
/// `errno` was `ENOMEM` when it aborted.
const NO_MEMORY: u32 = 1 << 2;
/// `RUST_BACKTRACE` was on: `errno` tells nothing.
const BACKTRACES: u32 = 1 << 3;

/// The word of the mark this process installed (null: none).
static MARK: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());
/// The process that installed it: a process forked from it (by a worker's
/// code) inherits the handler but is not the one the mark is about.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// What one forked process found when it aborted (see the module docs).
#[derive(Debug)]
pub(crate) struct AbortMark {
    word: SharedWord,
}

impl AbortMark {
    /// A mark for a process about to be forked.
    pub(crate) fn new() -> Result<Self, Errno> {
        SharedWord::new().map(|word| Self { word })
    }

    /// In the parent, once the process the mark is for has been forked:
    /// processes it forks from now on do not inherit the mark, so no other
    /// process can forge what it records (see
    /// [`SharedWord::keep_from_forks`]).
    pub(crate) fn keep_from_forks(&self) -> Result<(), Errno> {
        self.word.keep_from_forks()
    }

    /// In the freshly forked process, before anything of its own runs:
    /// installs the `SIGABRT` handler that records in this mark, and keeps
    /// the mark from the processes it forks.
    pub(crate) fn install(&self) -> Result<(), Errno> {
        self.word.keep_from_forks()?;
        let backtraces = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
        if backtraces {
            self.word.get().fetch_or(BACKTRACES, Ordering::SeqCst);
        }
        OWNER.store(nix::unistd::getpid().as_raw(), Ordering::SeqCst);
        let word: *const AtomicU32 = self.word.get();
        MARK.store(word.cast_mut(), Ordering::SeqCst);
        // SA_RESETHAND: the default action is back as the handler runs, so
        // the abort goes on as it would have without it.
        let action = SigAction::new(
            SigHandler::SigAction(on_abort),
            SaFlags::SA_SIGINFO | SaFlags::SA_RESETHAND,
            SigSet::empty(),
        );
        // SAFETY: `on_abort` makes only async-signal-safe calls (see it).
        unsafe { signal::sigaction(Signal::SIGABRT, &action) }.map(drop)
    }

    /// Whether the process, which died of `SIGABRT`, aborted because an
    /// allocation failed, as far as the mark can tell.
    pub(crate) fn out_of_memory(&self) -> bool {
        reads_as_out_of_memory(self.word.get().load(Ordering::SeqCst))
    }
}

/// The verdict on what a handler recorded (see the module docs).
fn reads_as_out_of_memory(bits: u32) -> bool {
    let has = |bit| bits & bit != 0;
    has(ABORTED) && !has(PANICKING) && (has(NO_MEMORY) || has(BACKTRACES))
}

/// The `SIGABRT` handler: records what it finds in the installed mark,
/// then lets the signal end the process.
extern "C" fn on_abort(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: `__errno_location` is this thread's errno; reading it (and
    // putting it back below) is what async-signal-safe handlers do.
    let errno = unsafe { *libc::__errno_location() };
    let me = nix::unistd::getpid().as_raw();
    let word = MARK.load(Ordering::SeqCst);
    let sender = if info.is_null() {
        0
    } else {
        // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO
        // handler; `si_pid` is the sender's pid for a signal sent by
        // `kill`, `tgkill` (`raise`, `abort`) and `sigqueue`.
        unsafe { (*info).si_pid() }
    };
    if !word.is_null() && OWNER.load(Ordering::SeqCst) == me && sender == me {
        let mut bits = ABORTED;
        // A read of the panic counts (an atomic, and a thread-local cell
        // without destructor): nothing is allocated or locked.
        if std::thread::panicking() {
            bits |= PANICKING;
        }
        if errno == libc::ENOMEM {
            bits |= NO_MEMORY;
        }
        // SAFETY: `word` is the installed mark's shared word, mapped until
        // the process ends (a forked process never drops its copy).
        unsafe { (*word).fetch_or(bits, Ordering::SeqCst) };
    }
    // SA_RESETHAND made the action the default one: a SIGABRT raised now
    // waits (blocked while the handler runs) and ends the process when it
    // returns, whether `abort` raised this one or something else did.
    // SAFETY: `raise` is async-signal-safe.
    unsafe {
        libc::raise(libc::SIGABRT);
        *libc::__errno_location() = errno;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_abort_outside_a_panic_with_evidence_of_memory_reads_as_out_of_memory() {
        assert!(reads_as_out_of_memory(ABORTED | NO_MEMORY));
        assert!(reads_as_out_of_memory(ABORTED | BACKTRACES));
        assert!(reads_as_out_of_memory(ABORTED | NO_MEMORY | BACKTRACES));
        // A panic that aborts, whatever errno says.
        assert!(!reads_as_out_of_memory(ABORTED | PANICKING | NO_MEMORY));
        assert!(!reads_as_out_of_memory(ABORTED | PANICKING | BACKTRACES));
        // An abort with another errno, and RUST_BACKTRACE off.
        assert!(!reads_as_out_of_memory(ABORTED));
        // The handler never ran (replaced, or sent by another process).
        assert!(!reads_as_out_of_memory(0));
        assert!(!reads_as_out_of_memory(BACKTRACES));
        let mark = AbortMark::new().expect("a mapping");
        assert!(!mark.out_of_memory());
    }
}
