//! Datagrams on the socket of a mailbox or template, and the descriptors
//! they carry.
//!
//! A call passes one descriptor (its reply socket) with its message; a cast
//! passes none. Whatever else a peer sends along (more descriptors, a
//! control message the kernel cut short for want of room, a descriptor in
//! another kind of control message) is never kept: every descriptor the
//! kernel installed with a datagram that is dropped is closed with it.
//! Closing never blocks: a socket a peer passed with `SO_LINGER` set (a
//! TCP connection whose peer never reads) would hold the last close for
//! its linger time, so every descriptor received has its lingering turned
//! off first. Credentials (`SCM_CREDENTIALS`, if a holder of the socket
//! turns `SO_PASSCRED` on) have room of their own and are ignored.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use nix::libc;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::message::MAX_MESSAGE;
use crate::os::ratelimit::{LogLimit, REPEAT_LOG_PERIOD};

/// The lines about dropped messages with unexpected descriptors.
static UNEXPECTED_LOG: Mutex<LogLimit> = Mutex::new(LogLimit::new(REPEAT_LOG_PERIOD));

/// How many descriptors there is room for in the control message of a
/// datagram received: more than the one a call passes, so that a datagram
/// with several is told (and dropped).
const FDS_PER_MESSAGE: usize = 4;

/// The room for the control messages of one datagram received: the
/// descriptors, a sender's credentials and a pidfd, which the kernel adds
/// when the receiving socket asks for them (`SO_PASSCRED`,
/// `SO_PASSPIDFD`).
// SAFETY: `CMSG_SPACE` only computes a size.
const CONTROL_SPACE: usize = unsafe {
    libc::CMSG_SPACE((FDS_PER_MESSAGE * size_of::<libc::c_int>()) as u32)
        + libc::CMSG_SPACE(size_of::<libc::ucred>() as u32)
        + libc::CMSG_SPACE(size_of::<libc::c_int>() as u32)
} as usize;

/// `SCM_PIDFD` (Linux 6.5): a pidfd of the sender, which the kernel
/// installs when the receiving socket asked for it (`SO_PASSPIDFD`).
const SCM_PIDFD: libc::c_int = 4;

thread_local! {
    /// Where datagrams are received: one per thread, large enough to tell a
    /// message over [`MAX_MESSAGE`].
    static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_MESSAGE + 1]);
}

/// Runs `f` with this thread's receive buffer.
pub(crate) fn with_buffer<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    BUFFER.with(|buffer| f(&mut buffer.borrow_mut()))
}

/// One datagram read from a socket.
pub(crate) struct Datagram {
    pub(crate) body: Vec<u8>,
    /// The file descriptor it carried (a call's reply socket).
    pub(crate) passed: Option<OwnedFd>,
}

/// Sends `body` as one datagram on `fd`, passing `pass` along, without
/// blocking.
pub(crate) fn send_datagram(
    fd: BorrowedFd<'_>,
    body: &[u8],
    pass: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let passed = pass.map(|fd| [fd.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> = passed
        .iter()
        .map(|fds| ControlMessage::ScmRights(fds))
        .collect();
    sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(body)],
        &cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Reads one datagram from `fd` without blocking. A datagram over
/// [`MAX_MESSAGE`], or carrying more than one descriptor or a control
/// message cut short, is dropped and logged, with every descriptor the
/// kernel installed for it closed (which ends its call): `Ok(None)`.
pub(crate) fn recv_datagram(fd: BorrowedFd<'_>, what: &str) -> io::Result<Option<Datagram>> {
    with_buffer(|buffer| {
        let mut control = [0u8; CONTROL_SPACE];
        let (len, flags, used) = recvmsg(fd, buffer, &mut control)?;
        let fds = Descriptors::of(&control[..used]);
        if flags & libc::MSG_TRUNC != 0 || len > MAX_MESSAGE {
            tracing::warn!(
                endpoint = what,
                max = MAX_MESSAGE,
                "an oversized message was dropped"
            );
            return Ok(None);
        }
        let Descriptors { mut rights, others } = fds;
        if flags & libc::MSG_CTRUNC != 0 || rights.len() > 1 || !others.is_empty() {
            // A flood (or a process out of descriptors, where the kernel
            // cuts every control message short) logs a line per second.
            if let Some(not_logged) = UNEXPECTED_LOG
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(Instant::now())
            {
                tracing::warn!(
                    endpoint = what,
                    passed = rights.len() + others.len(),
                    cut_short = flags & libc::MSG_CTRUNC != 0,
                    not_logged,
                    "a message carrying unexpected file descriptors (or cut short: is this process out \
                     of descriptors?) was dropped, and the descriptors closed"
                );
            }
            return Ok(None);
        }
        Ok(Some(Datagram {
            body: buffer[..len].to_vec(),
            passed: rights.pop(),
        }))
    })
}

/// Reads one datagram from `fd`, a receiving end of endpoint `what`,
/// without blocking, as [`recv_datagram`]; but a socket that was shut down
/// (by a process of the role that holds it) reads as its end
/// ([`io::ErrorKind::BrokenPipe`]), not as empty for ever: it polls
/// readable, and has nothing to read, so a reader that waited for it again
/// would spin.
pub(crate) fn recv_queued(fd: BorrowedFd<'_>, what: &str) -> io::Result<Option<Datagram>> {
    match recv_datagram(fd, what) {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock && is_shut_down(fd) => Err(
            io::Error::new(io::ErrorKind::BrokenPipe, "the socket was shut down"),
        ),
        other => other,
    }
}

/// Whether `fd` was shut down for reading.
fn is_shut_down(fd: BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    // A Unix socket shut down polls as hung up (and readable).
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
}

/// `recvmsg(2)` of one datagram into `buffer`, its control messages into
/// `control`, without blocking, descriptors close-on-exec: its length, its
/// flags, and how much of `control` the kernel filled.
fn recvmsg(
    fd: BorrowedFd<'_>,
    buffer: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, libc::c_int, usize)> {
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: all zeroes is a valid `msghdr` (null pointers, no lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: `msg` points at `iov`, `buffer` and `control`, which outlive
    // the call, with their lengths.
    let len = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    let len = usize::try_from(len).map_err(|_| io::Error::last_os_error())?;
    #[allow(clippy::unnecessary_cast)] // `socklen_t` on some targets
    let used = (msg.msg_controllen as usize).min(control.len());
    Ok((len, msg.msg_flags, used))
}

/// The descriptors the kernel installed with one datagram, owned: closed
/// when dropped.
#[derive(Debug, Default)]
struct Descriptors {
    /// Passed with `SCM_RIGHTS`.
    rights: Vec<OwnedFd>,
    /// Installed with any other control message.
    others: Vec<OwnedFd>,
}

impl Descriptors {
    /// Every descriptor in the control messages `control` (the part of the
    /// buffer the kernel filled), a control message cut short included.
    fn of(control: &[u8]) -> Self {
        let header = size_of::<libc::cmsghdr>();
        // SAFETY: `CMSG_LEN` only computes a size.
        let data_at = unsafe { libc::CMSG_LEN(0) } as usize;
        let mut found = Self::default();
        let mut at = 0;
        while control.len().saturating_sub(at) >= header {
            // SAFETY: `header` bytes from `at` are in `control`; any bytes
            // make a `cmsghdr` (plain integers), read unaligned.
            let cmsg = unsafe {
                control
                    .as_ptr()
                    .add(at)
                    .cast::<libc::cmsghdr>()
                    .read_unaligned()
            };
            #[allow(clippy::unnecessary_cast)] // `socklen_t` on some targets
            let len = cmsg.cmsg_len as usize;
            if len < data_at {
                break;
            }
            let end = (at + len).min(control.len());
            let data = control.get(at + data_at..end).unwrap_or_default();
            let list = match (cmsg.cmsg_level, cmsg.cmsg_type) {
                (libc::SOL_SOCKET, libc::SCM_RIGHTS) => Some(&mut found.rights),
                (libc::SOL_SOCKET, SCM_PIDFD) => Some(&mut found.others),
                _ => None,
            };
            if let Some(list) = list {
                for raw in data.chunks_exact(size_of::<libc::c_int>()) {
                    let mut bytes = [0; size_of::<libc::c_int>()];
                    bytes.copy_from_slice(raw);
                    // SAFETY: the kernel installed this descriptor in this
                    // process for this datagram; nothing else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(libc::c_int::from_ne_bytes(bytes)) };
                    no_lingering(&fd);
                    list.push(fd);
                }
            }
            // The next header is aligned as a `cmsghdr` is.
            let align = size_of::<usize>();
            at += len.div_ceil(align) * align;
        }
        found
    }
}

/// Turns lingering off on `fd`, if it is a socket, so that closing it
/// never blocks (the kernel finishes in the background).
fn no_lingering(fd: &OwnedFd) {
    let off = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
    // Not a socket (ENOTSOCK), or one that has no lingering: nothing to do.
    let _ = nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::Linger, &off);
}
