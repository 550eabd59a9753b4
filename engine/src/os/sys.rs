//! Every system call of the process engine, and the only `unsafe` code of
//! supertrees: fork, `_exit`, the parent-death signal, the signal self-pipe,
//! a flag shared by the processes of a tree, and what a process under
//! `RLIMIT_AS` finds when it aborts ([`abort`]).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::ChildExit;

mod abort;
mod shared;
pub(crate) use abort::AbortMark;
use shared::SharedWord;
pub(crate) use shared::{SharedFlag, SharedTallies};

/// Exit code of a forked process whose own code panicked (an engine bug, or
/// a runtime that panicked after it ran): Rust's own code for a panic. The
/// engine reads no meaning into it; a process that could not be set up
/// says so on its channel instead.
pub(crate) const EXIT_PANICKED: i32 = 101;
/// The signals the root supervisor listens to: SIGCHLD, and the signals
/// that stop the tree in order ([`STOP_SIGNALS`]).
pub(crate) const SUPERVISOR_SIGNALS: [Signal; 5] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];
/// The signals that make the root stop the whole tree in order. A forked
/// supervisor stops on SIGTERM only.
pub(crate) const STOP_SIGNALS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];
/// The signals a terminal sends to a whole process group (Ctrl-C, Ctrl-\,
/// a hangup): forked processes ignore them, so the tree stops in order
/// through its root instead of every process dying at once.
const TERMINAL_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP];

/// [`SUPERVISOR_SIGNALS`] as a signal set, for masks.
fn supervisor_signal_set() -> SigSet {
    SUPERVISOR_SIGNALS.into_iter().collect()
}

/// Forks. In the child, `body` runs and its return value becomes the exit
/// code passed to `_exit`: the child never returns into the caller's code,
/// never unwinds past this point, and never runs the caller's destructors or
/// `atexit` handlers.
///
/// Right after fork the child asks for SIGKILL when its parent dies
/// (`PR_SET_PDEATHSIG`) and exits at once if the parent is already gone.
pub(crate) fn fork_child(body: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    let parent = nix::unistd::getpid();
    // Until the child has installed its own handlers, a stop signal must wait
    // instead of being lost: block them across fork. The parent unblocks at
    // once; the child in `SignalPipe::install`.
    let old_mask = supervisor_signal_set().thread_swap_mask(signal::SigmaskHow::SIG_BLOCK);
    // SAFETY: every caller is a supervisor process, which is single-threaded
    // (the root warns when it is not), and the child only runs engine code
    // that ends in `_exit` below.
    let forked = unsafe { nix::unistd::fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        if let Ok(old) = old_mask {
            let _ = old.thread_set_mask();
        }
    }
    match forked? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = match set_parent_death_signal(parent) {
                Ok(()) => catch_unwind(AssertUnwindSafe(body)).unwrap_or(EXIT_PANICKED),
                Err(_) => 0,
            };
            exit_now(code)
        }
    }
}

/// Takes ownership of descriptor `fd`, which systemd passed this process
/// (socket activation), checked to be open; makes it close-on-exec and
/// non-blocking.
pub(crate) fn take_passed_fd(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_GETFD reads the flags of a descriptor number, open or
    // not; it touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above), and the socket activation
    // protocol hands it to this process: nothing else in it owns it, and
    // it is taken once (the `LISTEN_*` variables are removed when read).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let flags = nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(owned)
}

/// Whether this process may switch to another user: it has `CAP_SETUID`
/// and `CAP_SETGID` in its effective set (root usually has; root in a
/// container that dropped them has not).
pub(crate) fn may_switch_users() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return nix::unistd::geteuid().is_root();
    };
    has_caps(&status, &[CAP_SETUID, CAP_SETGID])
}

/// `CAP_SETGID`'s bit (`linux/capability.h`).
const CAP_SETGID: u32 = 6;
/// `CAP_SETUID`'s bit.
const CAP_SETUID: u32 = 7;

/// Whether the `CapEff` of a `status` file holds every capability of `caps`.
fn has_caps(status: &str, caps: &[u32]) -> bool {
    status_mask(status, "CapEff:")
        .is_some_and(|mask| caps.iter().all(|&cap| mask & (1u64 << cap) != 0))
}

/// Switches the calling process (a freshly forked supervisor, before
/// anything of its subtree runs) to user `uid` and group `gid` for good:
/// no supplementary groups (when root: only root may drop them), real,
/// effective and saved ids, not dumpable, and `PR_SET_NO_NEW_PRIVS`. The
/// kernel clears the parent-death signal when
/// credentials change, so it is set again for `parent`.
pub(crate) fn become_user(uid: u32, gid: u32, parent: Pid) -> Result<(), Errno> {
    let (uid, gid) = (
        nix::unistd::Uid::from_raw(uid),
        nix::unistd::Gid::from_raw(gid),
    );
    // Only root may drop supplementary groups (a process that keeps its
    // own user keeps them; `start()` let no other switch through).
    if nix::unistd::geteuid().is_root() {
        nix::unistd::setgroups(&[])?;
    }
    nix::unistd::setresgid(gid, gid, gid)?;
    nix::unistd::setresuid(uid, uid, uid)?;
    // Not dumpable (what the kernel does on a switch only while
    // `fs.suid_dumpable` is 0): processes of the same user, its workers
    // among them, may not trace it or take its descriptors (the parent's
    // pipes, the cgroup descriptors of the groups below it).
    nix::sys::prctl::set_dumpable(false)?;
    nix::sys::prctl::set_no_new_privs()?;
    set_parent_death_signal(parent)
}

fn set_parent_death_signal(parent: Pid) -> Result<(), Errno> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The parent may have died between fork and prctl: then no signal comes.
    if nix::unistd::getppid() != parent {
        return Err(Errno::ESRCH);
    }
    Ok(())
}

/// Flushes Rust's standard streams and ends the process with `_exit(code)`.
pub(crate) fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` is always safe to call; it ends the process without
    // running atexit handlers or destructors, which is the point.
    unsafe { libc::_exit(code) }
}

/// `write(2)`, retried when a signal interrupts it.
pub(crate) fn write(fd: impl AsFd, bytes: &[u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::write(fd.as_fd(), bytes) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Writes all of `bytes` to the non-blocking `fd`, waiting for room when it
/// is full: how a child process talks to its supervisor, which always reads.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                wait_readable(&mut fds, None);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// In a freshly forked child: closes descriptors of the parent's that this
/// process must not hold (the parent's ends of its channels), without
/// touching the structures that own them, which the child forgets.
pub(crate) fn close_in_child(fds: impl IntoIterator<Item = Option<RawFd>>) {
    let mut ranges = CloseRanges::default();
    for fd in fds.into_iter().flatten() {
        ranges.add(fd);
    }
}

/// Closes descriptors given one by one, a run of consecutive ones with one
/// `close_range(2)` (a parent's channels to a thousand children are two
/// thousand descriptors, mostly in a row: closing them one by one in each
/// child it forks made starting a large tree grow with the square of its
/// size). A run is closed when the next descriptor does not extend it, and
/// the last one when this is dropped.
#[derive(Debug, Default)]
pub(crate) struct CloseRanges {
    run: Option<(RawFd, RawFd)>,
}

impl CloseRanges {
    /// Adds `fd` to the descriptors to close.
    pub(crate) fn add(&mut self, fd: RawFd) {
        if fd < 0 {
            return;
        }
        self.run = match self.run {
            Some((lo, hi)) if (lo..=hi).contains(&fd) => Some((lo, hi)),
            Some((lo, hi)) if fd == hi + 1 => Some((lo, fd)),
            Some((lo, hi)) if fd + 1 == lo => Some((fd, hi)),
            run => {
                if let Some((lo, hi)) = run {
                    close_range(lo, hi);
                }
                Some((fd, fd))
            }
        };
    }
}

impl Drop for CloseRanges {
    fn drop(&mut self) {
        if let Some((lo, hi)) = self.run.take() {
            close_range(lo, hi);
        }
    }
}

/// Closes descriptors `lo` to `hi`: with one `close_range(2)`, or one by
/// one where it is missing (Linux before 5.9).
fn close_range(lo: RawFd, hi: RawFd) {
    let (Ok(first), Ok(last)) = (libc::c_uint::try_from(lo), libc::c_uint::try_from(hi)) else {
        return;
    };
    // SAFETY: close_range(2) only closes descriptors; the structures that
    // own them are forgotten by the caller, never used to close them again.
    if unsafe { libc::close_range(first, last, 0) } == 0 {
        return;
    }
    for fd in lo..=hi {
        let _ = nix::unistd::close(fd);
    }
}

/// A non-blocking, close-on-exec Unix stream socket pair.
pub(crate) fn socket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
    )
}

/// A non-blocking, close-on-exec pipe: `(read end, write end)`.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
}

/// The write end of the current process's signal self-pipe, read by the
/// signal handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: errno access and write(2) are async-signal-safe; the byte lives
    // on this stack frame. errno is saved and restored around the write.
    unsafe {
        let errno = *libc::__errno_location();
        let byte = signo as u8;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// Delivery of `signals` as bytes on a pipe, for a poll loop; and SIGPIPE
/// ignored meanwhile: a write to a child (or parent) that has just died
/// fails with `EPIPE`, which the engine handles, instead of killing the
/// process that wrote (Rust programs ignore it from the start, but a
/// program may have set it back to its default). Dropping it puts the
/// previous actions back.
#[derive(Debug)]
pub(crate) struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// The pipe's device and inode: what the read end must still name (a
    /// worker of a host may put another file in its place with `dup2`).
    identity: (u64, u64),
    previous: Vec<(Signal, SigAction)>,
    previous_mask: Option<SigSet>,
}

/// The device and inode `fd` names.
fn identity(fd: BorrowedFd<'_>) -> Result<(u64, u64), Errno> {
    let stat = nix::sys::stat::fstat(fd)?;
    Ok((stat.st_dev, stat.st_ino))
}

/// At most this many bytes are read from a signal pipe per drain: signals
/// that come faster wait for the next turn (a pipe that always reads as
/// full is not ours: see [`SignalPipe::drain`]).
const DRAIN_MAX: usize = 4096;

impl SignalPipe {
    /// Installs handlers for `signals` that write the signal number to a
    /// fresh pipe.
    pub(crate) fn install(signals: &[Signal]) -> Result<Self, Errno> {
        let (read, write) = pipe()?;
        let identity = identity(read.as_fd())?;
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        let mut pipe = Self {
            read,
            write,
            identity,
            previous: Vec::new(),
            previous_mask: None,
        };
        for &sig in signals {
            // SAFETY: `on_signal` only performs async-signal-safe calls.
            let old = unsafe { signal::sigaction(sig, &action) }?;
            pipe.previous.push((sig, old));
        }
        let ignored = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_IGN installs no handler code.
        let old = unsafe { signal::sigaction(Signal::SIGPIPE, &ignored) }?;
        pipe.previous.push((Signal::SIGPIPE, old));
        // A forked child starts with the stop signals blocked (see
        // `fork_child`); now that they have somewhere to go, let them in.
        pipe.previous_mask =
            Some(supervisor_signal_set().thread_swap_mask(signal::SigmaskHow::SIG_UNBLOCK)?);
        Ok(pipe)
    }

    /// The end to poll for readability.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.read.as_fd()
    }

    /// The signals delivered since the last call, in order.
    ///
    /// # Errors
    ///
    /// Once the pipe is broken, so no signal can come through it any more
    /// (`EPIPE`): its descriptor number now holds another file (such as
    /// `/dev/null` or `/dev/zero`, put there with `dup2` by a worker of a
    /// host), its read end reads as ended (its write end was closed), or a
    /// read fails. At most [`DRAIN_MAX`] bytes are read per call.
    pub(crate) fn drain(&self) -> Result<Vec<Signal>, Errno> {
        if identity(self.read.as_fd())? != self.identity {
            return Err(Errno::EPIPE);
        }
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        let mut read = 0;
        while read < DRAIN_MAX {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) => return Err(Errno::EPIPE),
                Ok(n) => {
                    read += n;
                    out.extend(
                        buf[..n]
                            .iter()
                            .filter_map(|&b| Signal::try_from(i32::from(b)).ok()),
                    );
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    /// Makes the pipe again once [`drain`](Self::drain) found it broken:
    /// the handlers write to the new one from then on. A signal that came
    /// in between is lost; the caller acts as if one had (reaps its
    /// children), and a stop request is sent again or escalated by whoever
    /// sent it.
    pub(crate) fn renew(&mut self) -> Result<(), Errno> {
        let (read, write) = pipe()?;
        self.identity = identity(read.as_fd())?;
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        // Whatever the old descriptor numbers hold now is closed with them.
        self.read = read;
        self.write = write;
        Ok(())
    }

    /// In a freshly forked child: forgets the parent's handlers (this process
    /// installs its own) and closes the parent's pipe.
    pub(crate) fn abandon_in_child(mut self) {
        self.previous.clear();
        self.previous_mask = None;
        SIGNAL_PIPE.store(-1, Ordering::Relaxed);
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        if SIGNAL_PIPE.load(Ordering::Relaxed) == self.write.as_raw_fd() {
            SIGNAL_PIPE.store(-1, Ordering::Relaxed);
        }
        for (sig, old) in self.previous.drain(..).rev() {
            // SAFETY: restores the action that was installed before ours.
            let _ = unsafe { signal::sigaction(sig, &old) };
        }
        if let Some(mask) = self.previous_mask.take() {
            let _ = mask.thread_set_mask();
        }
    }
}

/// Sets `sig` to be ignored.
fn ignore(sig: Signal) {
    let action = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no handler code.
    let _ = unsafe { signal::sigaction(sig, &action) };
}

/// In a forked process: ignores the signals a terminal sends to the whole
/// process group (SIGINT, SIGQUIT, SIGHUP), which the root turns into an
/// orderly stop of the tree instead of every process dying at once.
pub(crate) fn ignore_terminal_signals() {
    for sig in TERMINAL_SIGNALS {
        ignore(sig);
    }
}

/// Resets `sig` to its default action.
pub(crate) fn default_action(sig: Signal) {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL installs no handler code.
    let _ = unsafe { signal::sigaction(sig, &action) };
}

/// Sends `sig` to `pid`, ignoring a process that is already gone.
pub(crate) fn send(pid: Pid, sig: Signal) {
    if let Err(err) = signal::kill(pid, sig) {
        if err != Errno::ESRCH {
            tracing::warn!(pid = pid.as_raw(), signal = %sig, %err, "kill failed");
        }
    }
}

/// Reaps `pid` if it has exited; `None` while it runs.
pub(crate) fn try_reap(pid: Pid) -> Option<ChildExit> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => exit_of(status).map(|(_, exit)| exit),
        // ECHILD: not our child (any more); treat as gone so nothing waits on it.
        Err(Errno::ECHILD) => Some(ChildExit::Exited(-1)),
        Err(_) => None,
    }
}

/// A child of this process that has exited, left unreaped (`WNOWAIT`);
/// `None` when none has.
pub(crate) fn exited_child() -> Option<Pid> {
    use nix::sys::wait::{waitid, Id};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::All, flags) {
        Ok(status) => status.pid(),
        Err(_) => None,
    }
}

/// Reaps any exited child of this process (including adopted orphans, see
/// [`become_subreaper`]); `None` when none has exited.
pub(crate) fn reap_any() -> Option<(Pid, ChildExit)> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(status) => {
                if let Some(reaped) = exit_of(status) {
                    return Some(reaped);
                }
            }
        }
    }
}

fn exit_of(status: WaitStatus) -> Option<(Pid, ChildExit)> {
    match status {
        // Exit codes carry no meaning: a supervisor or host that ended by
        // itself said how on its channel.
        WaitStatus::Exited(pid, code) => Some((pid, ChildExit::Exited(code))),
        WaitStatus::Signaled(pid, sig, _) => Some((pid, ChildExit::Signaled(sig as i32))),
        _ => None,
    }
}

/// Makes this process the leader of a process group of its own: what it
/// starts (and what they start) is in that group unless they leave it, so
/// [`kill_group`] ends all of them with it.
pub(crate) fn become_group_leader() {
    if let Err(err) = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)) {
        tracing::warn!(%err, "setpgid failed; what this process starts may outlive it");
    }
}

/// SIGKILLs every process left in the process group `pgid` (a worker host's,
/// once it has exited). A group with no process left is no error.
pub(crate) fn kill_group(pgid: Pid) {
    match nix::sys::signal::killpg(pgid, Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => {
            tracing::warn!(%err, pgid = pgid.as_raw(), "killing a worker host's process group failed")
        }
    }
}

/// Whether this process is PID 1 of its PID namespace (a container's init),
/// which every orphan of the namespace is re-parented to.
pub(crate) fn is_pid_one() -> bool {
    nix::unistd::getpid().as_raw() == 1
}

/// Makes this (forked supervisor) process the reaper of its orphaned
/// descendants: when one of its child supervisors dies, the grandchildren
/// that `PR_SET_PDEATHSIG` kills are reaped here, not left to init.
pub(crate) fn become_subreaper() {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::debug!(%err, "PR_SET_CHILD_SUBREAPER failed; orphans go to init");
    }
}

/// Waits until one of `fds` is ready or `timeout` passes (`None`: forever),
/// with nanosecond precision. Interruption by a signal counts as a wake-up.
pub(crate) fn wait_readable(fds: &mut [PollFd<'_>], timeout: Option<Duration>) {
    let timeout = timeout.map(TimeSpec::from_duration);
    match nix::poll::ppoll(fds, timeout, None) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(err) => tracing::warn!(%err, "ppoll failed"),
    }
}

/// The descriptors a supervisor's loop waits on, kept from one turn to the
/// next so that waiting allocates nothing: a forked child inherits its
/// parent's heap, and every allocation that lands on an inherited page
/// copies it.
#[derive(Debug, Default)]
pub(crate) struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    /// Forgets last turn's descriptors.
    pub(crate) fn clear(&mut self) {
        self.fds.clear();
    }

    /// How many descriptors it waits for: the index the next one added
    /// gets.
    pub(crate) fn len(&self) -> usize {
        self.fds.len()
    }

    /// Waits for `events` on `fd` in the next [`wait`](Self::wait); returns
    /// its index for [`ready`](Self::ready). `fd` must stay open until then.
    pub(crate) fn add(&mut self, fd: BorrowedFd<'_>, events: PollFlags) -> usize {
        self.fds.push(libc::pollfd {
            fd: fd.as_raw_fd(),
            events: events.bits(),
            revents: 0,
        });
        self.fds.len() - 1
    }

    /// Waits until a descriptor is ready or `timeout` passes (`None`:
    /// forever), with nanosecond precision; a signal counts as a wake-up.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) {
        let timeout = timeout.map(TimeSpec::from_duration);
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t.as_ref() as *const libc::timespec);
        // SAFETY: `fds` is a valid array of `len` pollfds, which ppoll
        // writes `revents` into; the descriptors were open when added and
        // this single-threaded loop closes none before waiting; the timeout
        // is null or points to a live timespec; no signal mask is passed.
        let n = unsafe {
            libc::ppoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ptr,
                std::ptr::null(),
            )
        };
        if n < 0 {
            match Errno::last() {
                Errno::EINTR => {}
                err => tracing::warn!(%err, "ppoll failed"),
            }
        }
    }

    /// Whether the descriptor at `index` had any event in the last wait.
    pub(crate) fn ready(&self, index: usize) -> bool {
        self.fds.get(index).is_some_and(|fd| fd.revents != 0)
    }
}

/// A `PollFd` waiting for input on `fd`.
pub(crate) fn readable(fd: BorrowedFd<'_>) -> PollFd<'_> {
    PollFd::new(fd, PollFlags::POLLIN)
}

/// How many threads the calling process has (1 when `/proc` can't tell).
pub(crate) fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| dir.count())
        .unwrap_or(1)
}

/// Whether process `pid`, whose main thread ended, is exiting as a whole
/// (`exit_group`, which is how a process ends; the kernel then queues a
/// SIGKILL to each of its other threads): every other thread of it has
/// ended, has SIGKILL pending, or has begun to exit (`PF_EXITING`: it took
/// its SIGKILL, and under a CPU quota may wait long for a CPU to end). A
/// main thread that ended by itself (a raw
/// `SYS_exit`) leaves the others running: not exiting. A process that can
/// no longer be read counts as exiting.
pub(crate) fn group_exiting(pid: Pid) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        let tid = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok());
        if tid.is_none_or(|tid| tid == pid.as_raw()) {
            return true;
        }
        // A thread gone meanwhile has ended.
        let ending = std::fs::read_to_string(task.path().join("stat")).map_or(true, |stat| {
            stat_state(&stat).is_some_and(state_ended) || stat_exiting(&stat)
        });
        ending
            || std::fs::read_to_string(task.path().join("status"))
                .map_or(true, |status| kill_pending(&status))
    })
}

/// `PF_EXITING`, in a task's flags: it has begun to exit.
const PF_EXITING: u64 = 0x4;

/// Whether the task of this `stat` file has begun to exit (`PF_EXITING` in
/// its flags, the 9th field): once it took its SIGKILL, until it is gone.
fn stat_exiting(stat: &str) -> bool {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6))
        .and_then(|flags| flags.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

/// Whether the thread of this `status` file has SIGKILL pending (the
/// kernel queued it: its process is exiting).
fn kill_pending(status: &str) -> bool {
    status_mask(status, "SigPnd:").is_some_and(|mask| mask & (1 << (libc::SIGKILL - 1)) != 0)
}

/// The hexadecimal mask of field `name` (with its colon) of a `status`
/// file, such as `SigPnd:` or `CapEff:`.
fn status_mask(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
}

/// Whether a thread in state `state` ended: a zombie (`Z`), or dead (`X`).
fn state_ended(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// What the scheduler has done with some threads of a process
/// (`/proc/<pid>/task/<tid>/stat` and `schedstat`): the threads that
/// answer for it. Read by the watchdog before it calls a silent process
/// hung (see `supervisor::watch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sched {
    /// When it was read.
    pub(crate) at: std::time::Instant,
    /// The threads read, by thread id (those that ended, or are zombies,
    /// are left out).
    pub(crate) threads: Vec<ThreadSched>,
}

/// What the scheduler has done with one thread since it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadSched {
    /// Its thread id.
    pub(crate) tid: i32,
    /// Time on a CPU.
    pub(crate) ran: Duration,
    /// Time runnable but waiting for a CPU, counted when the wait ends
    /// (when the thread gets a CPU): a wait still going on is not in it.
    /// With a CPU quota, time throttled counts as waiting (measured on
    /// Linux 6.18, where a throttled thread stays `R`).
    pub(crate) waited: Duration,
    /// Its state letter: `R` running or runnable (throttled too), `S`/`D`
    /// asleep, `T` stopped, `t` stopped by a tracer...
    pub(crate) state: char,
}

impl ThreadSched {
    /// Whether it is stopped, by a signal (`T`) or a tracer (`t`).
    pub(crate) fn stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }

    /// Whether it ended: a zombie (`Z`; the main thread of a process stays
    /// one until every thread of it ended, and the process until it is
    /// reaped), or dead (`X`).
    pub(crate) fn ended(&self) -> bool {
        state_ended(self.state)
    }
}

impl Sched {
    /// Reads threads `tids` of process `pid` (each once); `None` if none
    /// of them can be read: the process is gone (reaped), they ended, or
    /// `/proc` can not tell. Only threads of `pid` are read, whatever
    /// `tids` holds; zombies are read (see [`ThreadSched::ended`]).
    pub(crate) fn read(pid: Pid, tids: &[i32]) -> Option<Self> {
        let at = std::time::Instant::now();
        let mut threads: Vec<ThreadSched> = Vec::with_capacity(tids.len());
        for &tid in tids {
            if threads.iter().any(|t| t.tid == tid) {
                continue;
            }
            // A thread that ended (or a zombie) is left out.
            if let Some(thread) = ThreadSched::read(pid, tid) {
                threads.push(thread);
            }
        }
        threads.sort_unstable_by_key(|t| t.tid);
        (!threads.is_empty()).then_some(Self { at, threads })
    }

    /// Whether it is stopped: a thread read is, by a signal (`T`) or a
    /// tracer (`t`). A SIGSTOP stops every thread, the main one too.
    pub(crate) fn stopped(&self) -> bool {
        self.threads.iter().any(ThreadSched::stopped)
    }

    /// Whether process `pid`, whose main thread was read, is exiting or
    /// has exited: its main thread ended (a Rust process ends when its
    /// main thread returns; until all its threads are gone the main thread
    /// is a zombie).
    pub(crate) fn exiting(&self, pid: Pid) -> bool {
        self.thread(pid.as_raw()).is_some_and(ThreadSched::ended)
    }

    /// Its thread `tid`, if it was read.
    pub(crate) fn thread(&self, tid: i32) -> Option<&ThreadSched> {
        self.threads
            .binary_search_by_key(&tid, |t| t.tid)
            .ok()
            .and_then(|n| self.threads.get(n))
    }
}

impl ThreadSched {
    /// Reads thread `tid` of process `pid`; `None` if it is gone, or not a
    /// thread of `pid`. A zombie is read, with its state letter (`Z`).
    fn read(pid: Pid, tid: i32) -> Option<Self> {
        let dir = format!("/proc/{pid}/task/{tid}");
        let read = |file: &str| std::fs::read_to_string(format!("{dir}/{file}")).ok();
        let state = read("stat").as_deref().and_then(stat_state)?;
        let counts = read("schedstat").as_deref().and_then(parse_schedstat);
        let (ran, waited) = match counts {
            Some(counts) => counts,
            // What it did no longer matters once it ended.
            None if matches!(state, 'Z' | 'X' | 'x') => (0, 0),
            None => return None,
        };
        Some(Self {
            tid,
            ran: Duration::from_nanos(ran),
            waited: Duration::from_nanos(waited),
            state,
        })
    }
}

/// The state letter in the text of a `stat` file (after the command name
/// in parentheses, which may hold anything, a `)` too).
fn stat_state(stat: &str) -> Option<char> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().next()?.chars().next()
}

/// Nanoseconds on a CPU and nanoseconds waiting for one, from the text of
/// a `schedstat` file (`<ran> <waited> <timeslices>`).
fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let parsed = (fields.next()?.ok()?, fields.next()?.ok()?);
    // The third field (timeslices) is not used, but must be there.
    fields.next()?.ok()?;
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_ranges_closes_what_it_is_given_and_nothing_between() {
        use std::os::fd::IntoRawFd;
        // Six descriptors; every other one kept open (`kept`).
        let mut given = Vec::new();
        let mut kept = Vec::new();
        for n in 0..3 {
            let (read, write) = pipe().expect("a pipe");
            if n == 1 {
                kept.push(read);
                given.push(write.into_raw_fd());
            } else {
                given.push(read.into_raw_fd());
                given.push(write.into_raw_fd());
            }
        }
        let mut ranges = CloseRanges::default();
        // In any order (each once: a repeat after its run was closed
        // would close whatever took its number since), and nonsense.
        for &fd in given.iter().rev() {
            ranges.add(fd);
        }
        ranges.add(-1);
        drop(ranges);
        for fd in &kept {
            assert!(
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok(),
                "a descriptor not given was closed"
            );
        }
    }

    #[test]
    fn switching_users_takes_both_capabilities() {
        let caps = [CAP_SETUID, CAP_SETGID];
        assert!(has_caps("CapInh:\t0\nCapEff:\t000001ffffffffff\n", &caps));
        // CAP_SETGID (6) without CAP_SETUID (7), and none.
        assert!(!has_caps("CapEff:\t0000000000000040\n", &caps));
        assert!(!has_caps("CapEff:\t0000000000000000\n", &caps));
        assert!(!has_caps("no such field\n", &caps));
    }

    #[test]
    fn a_thread_ends_once_a_zombie_exiting_or_killed() {
        assert!(stat_state("7 (a b) Z 1 7 7 0 -1 4194368 0 0").is_some_and(state_ended));
        assert!(!stat_state("7 (a b) R 1 7 7 0 -1 4194368 0 0").is_some_and(state_ended));
        assert!(kill_pending(
            "State:\tR (running)\nSigPnd:\t0000000000000100\n"
        ));
        assert!(!kill_pending(
            "State:\tS (sleeping)\nSigPnd:\t0000000000000000\n"
        ));
        assert!(!kill_pending(
            "State:\tS (sleeping)\nSigPnd:\t0000000000004000\n"
        ));
        // Flags 0x400044: PF_EXITING among others; 0x400040: without.
        assert!(stat_exiting("7 (a b) R 1 7 7 0 -1 4194372 0 0"));
        assert!(!stat_exiting("7 (a b) S 1 7 7 0 -1 4194368 0 0"));
        assert!(!stat_exiting("garbage"));
        // This process is not exiting; one that is gone counts as exiting.
        assert!(!group_exiting(nix::unistd::Pid::this()) || thread_count() == 1);
        assert!(group_exiting(nix::unistd::Pid::from_raw(i32::MAX)));
    }

    #[test]
    fn stat_and_schedstat_are_parsed() {
        assert_eq!(stat_state("42 (a) b) T 1 42 42 0 -1"), Some('T'));
        assert_eq!(stat_state("42 (sleepy) S 1"), Some('S'));
        assert_eq!(stat_state("42 (no state)"), None);
        assert_eq!(stat_state("garbage"), None);
        assert_eq!(
            parse_schedstat("1529867 99700321 12\n"),
            Some((1_529_867, 99_700_321))
        );
        assert_eq!(parse_schedstat("1529867 99700321\n"), None);
        assert_eq!(parse_schedstat("x 1 2\n"), None);
    }

    #[test]
    fn this_process_is_read() {
        let pid = nix::unistd::Pid::this();
        let this = nix::unistd::gettid().as_raw();
        // This thread, the main thread, this thread again (read once), and
        // an id that is no thread of this process (left out).
        let sched =
            Sched::read(pid, &[this, pid.as_raw(), this, i32::MAX]).expect("/proc of this process");
        assert!(!sched.stopped());
        let me = sched.thread(this).expect("this thread");
        // Reading /proc, this thread runs (its own time on a CPU may not
        // be counted yet: a running thread's is, at the next tick).
        assert_eq!(me.state, 'R', "{sched:?}");
        let main = sched.thread(pid.as_raw()).expect("the main thread");
        assert!(main.ran > Duration::ZERO, "{sched:?}");
        assert_eq!(sched.thread(i32::MAX), None);
        let expected = if this == pid.as_raw() { 1 } else { 2 };
        assert_eq!(sched.threads.len(), expected, "{sched:?}");
        assert_eq!(Sched::read(pid, &[]), None);
        assert_eq!(Sched::read(pid, &[i32::MAX]), None);
        let gone = nix::unistd::Pid::from_raw(i32::MAX);
        assert_eq!(Sched::read(gone, &[gone.as_raw()]), None);
    }

    #[test]
    fn a_zombie_is_read_as_exiting() {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        let mut child = std::process::Command::new("true").spawn().expect("a child");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Until it exited, without reaping it.
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).expect("waitid");
        let sched = Sched::read(pid, &[pid.as_raw()]);
        let _ = child.wait();
        let sched = sched.expect("a zombie is read");
        assert!(sched.exiting(pid), "{sched:?}");
        assert!(!sched.stopped(), "{sched:?}");
        assert!(!Sched::read(
            nix::unistd::Pid::this(),
            &[nix::unistd::Pid::this().as_raw()]
        )
        .expect("this process")
        .exiting(nix::unistd::Pid::this()));
    }
}
