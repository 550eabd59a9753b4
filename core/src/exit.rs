//! [`ChildExit`]: how a child ended.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a child of a supervisor ended.
///
/// [`Normal`](ChildExit::Normal) and [`Stopped`](ChildExit::Stopped) are
/// normal exits; every other variant is a failure, which is what
/// [`RestartPolicy::OnFailure`](crate::RestartPolicy::OnFailure) restarts.
/// No meaning is read into a process's exit code: a worker host that exits
/// with code 3 is `Exited(3)`.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::ChildExit;
///
/// assert!(!ChildExit::Normal.is_failure());
/// assert!(ChildExit::Signaled(9).is_failure());
/// assert_eq!(ChildExit::Signaled(9).to_string(), "killed by signal SIGKILL");
/// assert_eq!(ChildExit::Stopped.to_string(), "stopped");
/// assert!(!ChildExit::Stopped.is_failure());
/// let timeout = ChildExit::StartTimeout(std::time::Duration::from_secs(30));
/// assert!(timeout.is_failure());
/// assert_eq!(timeout.to_string(), "not ready within 30s");
/// assert!(ChildExit::OutOfMemory.to_string().starts_with("out of memory"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChildExit {
    /// A worker's future returned, or a supervisor finished its work.
    Normal,
    /// The tree stopped it on request: a shutdown, or a sibling's restart
    /// under [`Strategy::OneForAll`](crate::Strategy::OneForAll) or
    /// [`Strategy::RestForOne`](crate::Strategy::RestForOne). Displayed as
    /// `stopped`. A child that had to be killed because it did not stop
    /// within its [`Shutdown`](crate::Shutdown) timeout is reported with the
    /// signal that killed it instead; a worker is always reported
    /// `Stopped`, whether it returned by itself after
    /// [`stopping()`](crate::stopping()) resolved or its future was dropped
    /// at its [`Restartable::shutdown`](crate::Restartable::shutdown)
    /// deadline.
    Stopped,
    /// A worker's future panicked.
    Panicked,
    /// A child process exited with this non-zero code.
    Exited(i32),
    /// A child process was killed by this signal.
    Signaled(i32),
    /// A child supervisor exceeded its restart intensity and gave up.
    GaveUp,
    /// The child's process could not be forked, or a pipe for it could not
    /// be made (the `errno`, e.g. `EAGAIN`, `EMFILE`). A failure of the
    /// engine's own machinery before any of the child's code ran: it is
    /// retried by the child's restart policy, after at least the engine's
    /// floor delay (see [`is_engine_failure`](ChildExit::is_engine_failure)).
    ForkFailed(i32),
    /// The child's process was forked but could not be set up before any of
    /// the child's code ran: its worker host's runtime or threads did not
    /// start (e.g. [`Spawner::block_on`](crate::Spawner::block_on) panicked
    /// building its runtime), or its signal handling could not be
    /// installed. The process said so on its channel before it exited.
    /// Retried like [`ForkFailed`](ChildExit::ForkFailed).
    SetupFailed,
    /// A [`Readiness::Notify`](crate::Readiness::Notify) worker did not call
    /// [`ready()`](crate::ready()) within its
    /// [`start_timeout`](crate::Restartable::start_timeout) (this long): it
    /// was dropped, and is restarted by its restart policy. Displayed as
    /// `not ready within 30s`.
    StartTimeout(std::time::Duration),
    /// It ended at its subtree's memory limit
    /// ([`Limits::memory`](crate::Limits::memory)). Displayed `out of
    /// memory`. Read from:
    ///
    /// * a cgroup: the kernel's OOM killer SIGKILLed it, and the cgroup's
    ///   OOM counter went up;
    /// * `RLIMIT_AS` (no cgroup): an allocation failed, so the process
    ///   aborted (Rust prints `memory allocation of N bytes failed` and
    ///   raises `SIGABRT`). A handler the engine installs in each process
    ///   under `RLIMIT_AS` tells this from other aborts: a `SIGABRT` sent by
    ///   another process, or raised by a thread that was panicking (a panic
    ///   under `panic = "abort"`), stays `Signaled(SIGABRT)`, and so does
    ///   one without `errno` `ENOMEM` unless `RUST_BACKTRACE` is on (the
    ///   backtrace printed before the abort sets `errno`). Hence its
    ///   limits: with `RUST_BACKTRACE` on, an explicit
    ///   [`std::process::abort`] outside a panic also reads as out of
    ///   memory; a process that installs its own `SIGABRT` handler is
    ///   reported `Signaled(SIGABRT)` when it runs out.
    OutOfMemory,
    /// It showed no life within its supervisor's watchdog period
    /// ([`with_watchdog`](crate::Tree::with_watchdog): a worker blocking its
    /// thread, a deadlock, a SIGSTOP), and was not starved of CPU, so it
    /// was killed. Displayed `hung`.
    Hung,
}

impl ChildExit {
    /// Whether this is an abnormal exit: anything but
    /// [`Normal`](ChildExit::Normal) and [`Stopped`](ChildExit::Stopped).
    pub fn is_failure(&self) -> bool {
        !matches!(self, ChildExit::Normal | ChildExit::Stopped)
    }

    /// Whether the engine's own machinery failed before any of the child's
    /// code ran ([`ForkFailed`](ChildExit::ForkFailed),
    /// [`SetupFailed`](ChildExit::SetupFailed)): then the restart waits at
    /// least a floor delay, whatever the child's backoff — 10 ms, doubling
    /// with each consecutive such failure up to 1 s — so a machine out of
    /// processes or file descriptors never sees a busy loop.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::ChildExit;
    ///
    /// assert!(ChildExit::ForkFailed(11).is_engine_failure());
    /// assert!(ChildExit::SetupFailed.is_engine_failure());
    /// assert!(!ChildExit::Panicked.is_engine_failure());
    /// ```
    pub fn is_engine_failure(&self) -> bool {
        matches!(self, ChildExit::ForkFailed(_) | ChildExit::SetupFailed)
    }
}

impl ChildExit {
    /// The exit whose `Display` is `text` (how `status json` shows it),
    /// if `text` is one. Exact for every exit but
    /// [`ForkFailed`](ChildExit::ForkFailed) with an errno Linux does not
    /// name, whose text does not hold its number: read as
    /// `ForkFailed(0)`.
    pub(crate) fn from_display(text: &str) -> Option<ChildExit> {
        let unit = [
            ChildExit::Normal,
            ChildExit::Stopped,
            ChildExit::Panicked,
            ChildExit::GaveUp,
            ChildExit::SetupFailed,
            ChildExit::OutOfMemory,
            ChildExit::Hung,
        ];
        if let Some(exit) = unit.into_iter().find(|exit| exit.to_string() == text) {
            return Some(exit);
        }
        if let Some(code) = text.strip_prefix("exited with code ") {
            return plain_int(code).map(ChildExit::Exited);
        }
        if let Some(signal) = text.strip_prefix("killed by signal ") {
            let named = SIGNALS
                .iter()
                .find(|(_, name)| *name == signal)
                .map(|(number, _)| *number);
            // A number only for a signal that has no name (its text).
            let unnamed = || plain_int(signal).filter(|n| !SIGNALS.iter().any(|(k, _)| k == n));
            return named.or_else(unnamed).map(ChildExit::Signaled);
        }
        if let Some(rest) = text.strip_prefix("could not be forked: ") {
            let (name, desc) = rest.split_once(": ")?;
            if (name, desc) == errno_text(0) {
                return Some(ChildExit::ForkFailed(0));
            }
            return ERRNOS
                .iter()
                .find(|(_, n, d)| (*n, *d) == (name, desc))
                .map(|(number, _, _)| ChildExit::ForkFailed(*number));
        }
        if let Some(limit) = text.strip_prefix("not ready within ") {
            return duration_from_debug(limit).map(ChildExit::StartTimeout);
        }
        None
    }
}

/// `text` as an `i32` written as `Display` writes one (no `+`, no
/// leading zeros).
fn plain_int(text: &str) -> Option<i32> {
    text.parse().ok().filter(|n: &i32| n.to_string() == text)
}

/// The [`Duration`](std::time::Duration) whose `Debug` is `text`
/// (`30s`, `1.5ms`, `10µs`, `1.000000001s`, `0ns`), if `text` is one.
fn duration_from_debug(text: &str) -> Option<std::time::Duration> {
    // Each unit and its size in nanoseconds, with how many digits its
    // fraction may have.
    const UNITS: [(&str, u128, usize); 4] = [
        ("ns", 1, 0),
        ("µs", 1_000, 3),
        ("ms", 1_000_000, 6),
        ("s", 1_000_000_000, 9),
    ];
    let (number, size, places) = UNITS
        .iter()
        .find_map(|&(unit, size, places)| Some((text.strip_suffix(unit)?, size, places)))?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > places {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut nanos = whole.checked_mul(size)?;
    if !fraction.is_empty() {
        let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
        let part: u128 = fraction.parse().ok()?;
        nanos = nanos.checked_add(part * size / scale)?;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    let duration = std::time::Duration::new(secs, sub);
    // The form `Debug` writes, and no other (`1.50s`, `1000ms`).
    (format!("{duration:?}") == text).then_some(duration)
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Normal => f.write_str("exited normally"),
            ChildExit::Stopped => f.write_str("stopped"),
            ChildExit::Panicked => f.write_str("panicked"),
            ChildExit::Exited(code) => write!(f, "exited with code {code}"),
            ChildExit::Signaled(sig) => match signal_name(*sig) {
                Some(signal) => write!(f, "killed by signal {signal}"),
                None => write!(f, "killed by signal {sig}"),
            },
            ChildExit::GaveUp => f.write_str("gave up: restart intensity exceeded"),
            ChildExit::ForkFailed(errno) => {
                let (name, desc) = errno_text(*errno);
                write!(f, "could not be forked: {name}: {desc}")
            }
            ChildExit::SetupFailed => {
                f.write_str("could not be set up: its process failed before it ran")
            }
            ChildExit::StartTimeout(limit) => write!(f, "not ready within {limit:?}"),
            ChildExit::OutOfMemory => {
                f.write_str("out of memory: ended at its subtree's memory limit")
            }
            ChildExit::Hung => {
                f.write_str("hung: no sign of life within its watchdog period; killed")
            }
        }
    }
}

/// `SIGKILL`, the signal a killed child dies of (the same number on every
/// system the process engine runs on).
pub const SIGKILL: i32 = 9;

/// The name of Linux signal `sig` (`SIGKILL`), as the process engine
/// reports it; `None` for a number that names no signal.
fn signal_name(sig: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|(number, _)| *number == sig)
        .map(|(_, name)| *name)
}

/// The name and description of Linux errno `errno` (`EAGAIN`, `Try
/// again`), as the process engine reports it (the text of `nix`'s
/// `Errno`, kept here as data so this crate stays portable).
fn errno_text(errno: i32) -> (&'static str, &'static str) {
    ERRNOS
        .iter()
        .find(|(number, _, _)| *number == errno)
        .map_or(("UnknownErrno", "Unknown errno"), |(_, name, desc)| {
            (*name, *desc)
        })
}

/// Linux's signals: number and name.
const SIGNALS: &[(i32, &str)] = &[
    (1, "SIGHUP"),
    (2, "SIGINT"),
    (3, "SIGQUIT"),
    (4, "SIGILL"),
    (5, "SIGTRAP"),
    (6, "SIGABRT"),
    (7, "SIGBUS"),
    (8, "SIGFPE"),
    (9, "SIGKILL"),
    (10, "SIGUSR1"),
    (11, "SIGSEGV"),
    (12, "SIGUSR2"),
    (13, "SIGPIPE"),
    (14, "SIGALRM"),
    (15, "SIGTERM"),
    (16, "SIGSTKFLT"),
    (17, "SIGCHLD"),
    (18, "SIGCONT"),
    (19, "SIGSTOP"),
    (20, "SIGTSTP"),
    (21, "SIGTTIN"),
    (22, "SIGTTOU"),
    (23, "SIGURG"),
    (24, "SIGXCPU"),
    (25, "SIGXFSZ"),
    (26, "SIGVTALRM"),
    (27, "SIGPROF"),
    (28, "SIGWINCH"),
    (29, "SIGIO"),
    (30, "SIGPWR"),
    (31, "SIGSYS"),
];

/// Linux's errnos: number, name and description.
const ERRNOS: &[(i32, &str, &str)] = &[
    (1, "EPERM", "Operation not permitted"),
    (2, "ENOENT", "No such file or directory"),
    (3, "ESRCH", "No such process"),
    (4, "EINTR", "Interrupted system call"),
    (5, "EIO", "I/O error"),
    (6, "ENXIO", "No such device or address"),
    (7, "E2BIG", "Argument list too long"),
    (8, "ENOEXEC", "Exec format error"),
    (9, "EBADF", "Bad file number"),
    (10, "ECHILD", "No child processes"),
    (11, "EAGAIN", "Try again"),
    (12, "ENOMEM", "Out of memory"),
    (13, "EACCES", "Permission denied"),
    (14, "EFAULT", "Bad address"),
    (15, "ENOTBLK", "Block device required"),
    (16, "EBUSY", "Device or resource busy"),
    (17, "EEXIST", "File exists"),
    (18, "EXDEV", "Cross-device link"),
    (19, "ENODEV", "No such device"),
    (20, "ENOTDIR", "Not a directory"),
    (21, "EISDIR", "Is a directory"),
    (22, "EINVAL", "Invalid argument"),
    (23, "ENFILE", "File table overflow"),
    (24, "EMFILE", "Too many open files"),
    (25, "ENOTTY", "Not a typewriter"),
    (26, "ETXTBSY", "Text file busy"),
    (27, "EFBIG", "File too large"),
    (28, "ENOSPC", "No space left on device"),
    (29, "ESPIPE", "Illegal seek"),
    (30, "EROFS", "Read-only file system"),
    (31, "EMLINK", "Too many links"),
    (32, "EPIPE", "Broken pipe"),
    (33, "EDOM", "Math argument out of domain of func"),
    (34, "ERANGE", "Math result not representable"),
    (35, "EDEADLK", "Resource deadlock would occur"),
    (36, "ENAMETOOLONG", "File name too long"),
    (37, "ENOLCK", "No record locks available"),
    (38, "ENOSYS", "Function not implemented"),
    (39, "ENOTEMPTY", "Directory not empty"),
    (40, "ELOOP", "Too many symbolic links encountered"),
    (42, "ENOMSG", "No message of desired type"),
    (43, "EIDRM", "Identifier removed"),
    (44, "ECHRNG", "Channel number out of range"),
    (45, "EL2NSYNC", "Level 2 not synchronized"),
    (46, "EL3HLT", "Level 3 halted"),
    (47, "EL3RST", "Level 3 reset"),
    (48, "ELNRNG", "Link number out of range"),
    (49, "EUNATCH", "Protocol driver not attached"),
    (50, "ENOCSI", "No CSI structure available"),
    (51, "EL2HLT", "Level 2 halted"),
    (52, "EBADE", "Invalid exchange"),
    (53, "EBADR", "Invalid request descriptor"),
    (54, "EXFULL", "Exchange full"),
    (55, "ENOANO", "No anode"),
    (56, "EBADRQC", "Invalid request code"),
    (57, "EBADSLT", "Invalid slot"),
    (59, "EBFONT", "Bad font file format"),
    (60, "ENOSTR", "Device not a stream"),
    (61, "ENODATA", "No data available"),
    (62, "ETIME", "Timer expired"),
    (63, "ENOSR", "Out of streams resources"),
    (64, "ENONET", "Machine is not on the network"),
    (65, "ENOPKG", "Package not installed"),
    (66, "EREMOTE", "Object is remote"),
    (67, "ENOLINK", "Link has been severed"),
    (68, "EADV", "Advertise error"),
    (69, "ESRMNT", "Srmount error"),
    (70, "ECOMM", "Communication error on send"),
    (71, "EPROTO", "Protocol error"),
    (72, "EMULTIHOP", "Multihop attempted"),
    (73, "EDOTDOT", "RFS specific error"),
    (74, "EBADMSG", "Not a data message"),
    (75, "EOVERFLOW", "Value too large for defined data type"),
    (76, "ENOTUNIQ", "Name not unique on network"),
    (77, "EBADFD", "File descriptor in bad state"),
    (78, "EREMCHG", "Remote address changed"),
    (79, "ELIBACC", "Can not access a needed shared library"),
    (80, "ELIBBAD", "Accessing a corrupted shared library"),
    (81, "ELIBSCN", ".lib section in a.out corrupted"),
    (
        82,
        "ELIBMAX",
        "Attempting to link in too many shared libraries",
    ),
    (83, "ELIBEXEC", "Cannot exec a shared library directly"),
    (84, "EILSEQ", "Illegal byte sequence"),
    (
        85,
        "ERESTART",
        "Interrupted system call should be restarted",
    ),
    (86, "ESTRPIPE", "Streams pipe error"),
    (87, "EUSERS", "Too many users"),
    (88, "ENOTSOCK", "Socket operation on non-socket"),
    (89, "EDESTADDRREQ", "Destination address required"),
    (90, "EMSGSIZE", "Message too long"),
    (91, "EPROTOTYPE", "Protocol wrong type for socket"),
    (92, "ENOPROTOOPT", "Protocol not available"),
    (93, "EPROTONOSUPPORT", "Protocol not supported"),
    (94, "ESOCKTNOSUPPORT", "Socket type not supported"),
    (
        95,
        "EOPNOTSUPP",
        "Operation not supported on transport endpoint",
    ),
    (96, "EPFNOSUPPORT", "Protocol family not supported"),
    (
        97,
        "EAFNOSUPPORT",
        "Address family not supported by protocol",
    ),
    (98, "EADDRINUSE", "Address already in use"),
    (99, "EADDRNOTAVAIL", "Cannot assign requested address"),
    (100, "ENETDOWN", "Network is down"),
    (101, "ENETUNREACH", "Network is unreachable"),
    (
        102,
        "ENETRESET",
        "Network dropped connection because of reset",
    ),
    (103, "ECONNABORTED", "Software caused connection abort"),
    (104, "ECONNRESET", "Connection reset by peer"),
    (105, "ENOBUFS", "No buffer space available"),
    (106, "EISCONN", "Transport endpoint is already connected"),
    (107, "ENOTCONN", "Transport endpoint is not connected"),
    (
        108,
        "ESHUTDOWN",
        "Cannot send after transport endpoint shutdown",
    ),
    (109, "ETOOMANYREFS", "Too many references: cannot splice"),
    (110, "ETIMEDOUT", "Connection timed out"),
    (111, "ECONNREFUSED", "Connection refused"),
    (112, "EHOSTDOWN", "Host is down"),
    (113, "EHOSTUNREACH", "No route to host"),
    (114, "EALREADY", "Operation already in progress"),
    (115, "EINPROGRESS", "Operation now in progress"),
    (116, "ESTALE", "Stale file handle"),
    (117, "EUCLEAN", "Structure needs cleaning"),
    (118, "ENOTNAM", "Not a XENIX named type file"),
    (119, "ENAVAIL", "No XENIX semaphores available"),
    (120, "EISNAM", "Is a named type file"),
    (121, "EREMOTEIO", "Remote I/O error"),
    (122, "EDQUOT", "Quota exceeded"),
    (123, "ENOMEDIUM", "No medium found"),
    (124, "EMEDIUMTYPE", "Wrong medium type"),
    (125, "ECANCELED", "Operation canceled"),
    (126, "ENOKEY", "Required key not available"),
    (127, "EKEYEXPIRED", "Key has expired"),
    (128, "EKEYREVOKED", "Key has been revoked"),
    (129, "EKEYREJECTED", "Key was rejected by service"),
    (130, "EOWNERDEAD", "Owner died"),
    (131, "ENOTRECOVERABLE", "State not recoverable"),
    (132, "ERFKILL", "Operation not possible due to RF-kill"),
    (133, "EHWPOISON", "Memory page has hardware error"),
];

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use proptest::prelude::{any, prop_assert_eq, prop_oneof, proptest, Just};
    use proptest::strategy::Strategy as Gen;

    use super::*;
    use crate::props::config;

    /// Every exit, with the numbers and times that shape its text.
    pub(crate) fn an_exit() -> impl Gen<Value = ChildExit> {
        prop_oneof![
            Just(ChildExit::Normal),
            Just(ChildExit::Stopped),
            Just(ChildExit::Panicked),
            Just(ChildExit::GaveUp),
            Just(ChildExit::SetupFailed),
            Just(ChildExit::OutOfMemory),
            Just(ChildExit::Hung),
            any::<i32>().prop_map(ChildExit::Exited),
            any::<i32>().prop_map(ChildExit::Signaled),
            (0..ERRNOS.len()).prop_map(|i| ChildExit::ForkFailed(ERRNOS[i].0)),
            Just(ChildExit::ForkFailed(0)),
            prop_oneof![
                (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
                (0u64..10_000_000_000).prop_map(Duration::from_nanos),
                (0u64..100_000).prop_map(Duration::from_millis),
            ]
            .prop_map(ChildExit::StartTimeout),
        ]
    }

    #[test]
    fn signals_and_errnos_are_named_as_the_process_engine_names_them() {
        assert_eq!(
            ChildExit::Signaled(SIGKILL).to_string(),
            "killed by signal SIGKILL"
        );
        assert_eq!(
            ChildExit::Signaled(15).to_string(),
            "killed by signal SIGTERM"
        );
        assert_eq!(ChildExit::Signaled(99).to_string(), "killed by signal 99");
        assert_eq!(
            ChildExit::ForkFailed(11).to_string(),
            "could not be forked: EAGAIN: Try again"
        );
        assert_eq!(
            ChildExit::ForkFailed(24).to_string(),
            "could not be forked: EMFILE: Too many open files"
        );
        assert_eq!(
            ChildExit::ForkFailed(0).to_string(),
            "could not be forked: UnknownErrno: Unknown errno"
        );
    }

    proptest! {
        #![proptest_config(config())]

        /// Every exit's text reads back as that exit.
        #[test]
        fn every_exit_reads_back_from_its_text(exit in an_exit()) {
            prop_assert_eq!(ChildExit::from_display(&exit.to_string()), Some(exit));
        }

        /// No other text reads as an exit whose text it is not.
        #[test]
        fn other_texts_read_as_no_exit(text in "(exited with code |killed by signal |not ready within |could not be forked: )?[-+0-9.a-zµA-Z: ]{0,12}") {
            if let Some(exit) = ChildExit::from_display(&text) {
                prop_assert_eq!(exit.to_string(), text);
            }
        }
    }

    #[test]
    fn odd_texts_are_no_exit() {
        for text in [
            "",
            // SIGHUP's number: its text is its name.
            "killed by signal 1",
            "exited with code +3",
            "exited with code 03",
            "killed by signal SIGNOPE",
            "not ready within 1.50s",
            "not ready within 1000ms",
            "not ready within 1.0000000001s",
            "not ready within s",
            "could not be forked: EAGAIN: Nope",
        ] {
            assert_eq!(ChildExit::from_display(text), None, "{text:?}");
        }
        assert_eq!(
            ChildExit::from_display("could not be forked: UnknownErrno: Unknown errno"),
            Some(ChildExit::ForkFailed(0))
        );
    }
}
