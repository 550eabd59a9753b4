//! The client side of the status socket: [`query`] asks a running status
//! server for the status, as the `status` command of a program does; the
//! pieces it is made of ([`open`], [`read_answer`], [`exchange`]) serve
//! the public [`Client`](super::control_client::Client) too.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use super::{after, with_context, PERMISSION_DENIED};
use supertrees_core::control::Request;

/// The longest answer [`read_answer`] accepts.
const MAX_ANSWER: usize = 64 << 20;

/// Asks the status server at `path` for the status: connects, sends
/// `status\n` and reads the answer until the server closes, all within
/// `timeout`.
///
/// Fails with a message naming `path` when there is no socket (`NotFound`),
/// nothing serves it (`ConnectionRefused`), it is not ours or we are not
/// allowed (`PermissionDenied`), time runs out (`TimedOut`), or the server
/// answers with an `error: ...` line.
pub(crate) fn query(path: &Path, timeout: Duration) -> Result<String, io::Error> {
    let answer = exchange(path, &Request::Status, timeout)?;
    if let Some(message) = answer.strip_prefix("error: ") {
        let message = message.lines().next().unwrap_or_default();
        let kind = match message {
            "timed out waiting for a request" => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        return Err(io::Error::new(
            kind,
            format!(
                "the status server at {} answered: {message}",
                path.display()
            ),
        ));
    }
    Ok(answer)
}

/// Sends `request` to the status server at `path` and reads its whole
/// answer, until the server closes, all within `timeout`: the answer as
/// the server wrote it (an `error: ...` line included), but for
/// `error: permission denied`, which fails with `PermissionDenied`.
pub(crate) fn exchange(path: &Path, request: &Request, timeout: Duration) -> io::Result<String> {
    let deadline = after(Instant::now(), timeout);
    let sent = open(path, request, deadline)?;
    let answer = read_answer(sent, path, deadline)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    if answer.lines().next() == Some(PERMISSION_DENIED) {
        return Err(denied(path));
    }
    Ok(answer)
}

/// What a client is told when the server at `path` answered
/// [`PERMISSION_DENIED`].
pub(super) fn denied(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "the status server at {} answered: permission denied",
            path.display()
        ),
    )
}

/// A connection to a status server, its request sent.
#[derive(Debug)]
pub(super) struct Sent {
    /// The non-blocking connection.
    pub(super) stream: UnixStream,
    /// Set when the server closed before taking our whole request: it may
    /// have refused us (busy, permission denied) and its answer says why.
    unsent: Option<io::Error>,
}

/// Checks that the server at the other end of `stream` runs as our user
/// (or as root), as its `SO_PEERCRED` says.
pub(super) fn check_peer(stream: &UnixStream, path: &Path) -> io::Result<()> {
    let uid = nix::unistd::geteuid().as_raw();
    match socket::getsockopt(stream, sockopt::PeerCredentials) {
        Ok(peer) if peer.uid() == uid || peer.uid() == 0 => Ok(()),
        Ok(peer) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the status socket {} is served by uid {}, not by us (uid {uid}) nor root",
                path.display(),
                peer.uid()
            ),
        )),
        Err(err) => Err(with_context(
            err.into(),
            format!("checking who serves the status socket {}", path.display()),
        )),
    }
}

/// Connects to the status server at `path`, checks who serves it
/// ([`check_peer`]) and sends `request` and its `'\n'`, by `deadline`.
pub(super) fn open(path: &Path, request: &Request, deadline: Instant) -> io::Result<Sent> {
    let stream = UnixStream::from(connect_until(path, deadline)?);
    check_peer(&stream, path)?;
    let request = format!("{}\n", request.line());
    let mut request: &[u8] = request.as_bytes();
    let mut unsent = None;
    while !request.is_empty() {
        match socket::send(stream.as_raw_fd(), request, MsgFlags::MSG_NOSIGNAL) {
            Ok(sent) => request = &request[sent..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_for(&stream, PollFlags::POLLOUT, deadline, path)?,
            Err(err) => {
                let err = with_context(
                    err.into(),
                    format!("sending a request to the status socket {}", path.display()),
                );
                if matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) {
                    unsent = Some(err);
                    break;
                }
                return Err(err);
            }
        }
    }
    Ok(Sent { stream, unsent })
}

/// Reads the answer on `sent` until the server closes, by `deadline`.
pub(super) fn read_answer(sent: Sent, path: &Path, deadline: Instant) -> io::Result<Vec<u8>> {
    let Sent { stream, unsent } = sent;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match (&stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > MAX_ANSWER {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the status socket {} answered with more than {MAX_ANSWER} bytes",
                            path.display()
                        ),
                    ));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                wait_for(&stream, PollFlags::POLLIN, deadline, path)?;
            }
            // The server closed with some of our input unread, after its
            // answer: that ends the answer like EOF.
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset && !answer.is_empty() => break,
            Err(err) => {
                return Err(unsent.unwrap_or_else(|| {
                    with_context(
                        err,
                        format!("reading from the status socket {}", path.display()),
                    )
                }));
            }
        }
    }
    if let (true, Some(err)) = (answer.is_empty(), unsent) {
        return Err(err);
    }
    Ok(answer)
}

/// Connects to `path`, retrying while the server's backlog is full, until
/// `deadline`.
fn connect_until(path: &Path, deadline: Instant) -> Result<OwnedFd, io::Error> {
    loop {
        let errno = match connect_nonblocking(path) {
            Ok(fd) => return Ok(fd),
            Err(Errno::EINTR) => continue,
            Err(errno) => errno,
        };
        if errno == Errno::EAGAIN {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !remaining.is_zero() {
                std::thread::sleep(remaining.min(Duration::from_millis(10)));
                continue;
            }
        }
        return Err(connect_error(path, errno));
    }
}

/// What failing to connect to the status socket `path` with `errno` means.
pub(super) fn connect_error(path: &Path, errno: Errno) -> io::Error {
    let (kind, reason) = match errno {
        Errno::EAGAIN => (io::ErrorKind::TimedOut, "timed out connecting".to_owned()),
        Errno::ENOENT => (
            io::ErrorKind::NotFound,
            "no such socket (is the supervision tree running?)".to_owned(),
        ),
        Errno::ECONNREFUSED => (
            io::ErrorKind::ConnectionRefused,
            "nothing is serving it (a stale socket?)".to_owned(),
        ),
        Errno::EACCES | Errno::EPERM => (
            io::ErrorKind::PermissionDenied,
            "permission denied".to_owned(),
        ),
        errno => (io::Error::from(errno).kind(), errno.desc().to_owned()),
    };
    io::Error::new(
        kind,
        format!(
            "can't connect to the status socket {}: {reason}",
            path.display()
        ),
    )
}

/// Waits until `stream` is ready for `events`, failing with `TimedOut` once
/// `deadline` has passed.
pub(super) fn wait_for(
    stream: &UnixStream,
    events: PollFlags,
    deadline: Instant,
    path: &Path,
) -> Result<(), io::Error> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out waiting for the status socket {}", path.display()),
        ));
    }
    // Round up, so that the wait doesn't end just before the deadline.
    let millis = remaining.as_nanos().div_ceil(1_000_000);
    let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut [PollFd::new(stream.as_fd(), events)], timeout) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(err) => Err(with_context(
            err.into(),
            format!("waiting for the status socket {}", path.display()),
        )),
    }
}

/// Connects a non-blocking, close-on-exec stream socket to `path` without
/// waiting (a full backlog gives `EAGAIN`).
pub(super) fn connect_nonblocking(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    socket::connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::status_socket::testing::{turn, TempDir};
    use crate::root::status_socket::StatusServer;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Runs `server` on a helper thread until the returned flag is set.
    fn serve_in_background(
        mut server: StatusServer,
        text: &'static str,
    ) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut render = |_| text.to_owned();
            while !stopping.load(Ordering::Relaxed) {
                turn(&mut server, &mut render);
            }
        });
        (stop, thread)
    }

    #[test]
    fn query_returns_the_status() {
        let dir = TempDir::new("query");
        let path = dir.join("status.sock");
        let server = StatusServer::bind(&path).expect("bind");
        let (stop, thread) = serve_in_background(server, "root: running\n");
        let answers: Vec<_> = (0..3)
            .map(|_| query(&path, Duration::from_secs(5)))
            .collect();
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("the server thread");
        for answer in answers {
            assert_eq!(answer.expect("an answer"), "root: running\n");
        }
        assert!(!path.exists());
    }

    #[test]
    fn query_reports_server_errors() {
        let dir = TempDir::new("query-busy");
        let path = dir.join("status.sock");
        // A server that answers everyone `busy`.
        let listener = UnixListener::bind(&path).expect("bind");
        let thread = std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = [0u8; 7];
                let _ = stream.read_exact(&mut request);
                let _ = std::io::Write::write_all(&mut stream, b"error: busy\n");
            }
        });
        let answer = query(&path, Duration::from_secs(5));
        thread.join().expect("the server thread");
        let err = answer.expect_err("a busy server");
        assert!(err.to_string().contains("answered: busy"), "{err}");
    }

    #[test]
    fn query_without_a_server_is_a_clear_error() {
        let dir = TempDir::new("query-missing");
        let path = dir.join("status.sock");
        let err = query(&path, Duration::from_secs(1)).expect_err("no socket");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("no such socket"), "{err}");

        drop(UnixListener::bind(&path).expect("bind a socket that will go stale"));
        let err = query(&path, Duration::from_secs(1)).expect_err("a stale socket");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }

    #[test]
    fn query_times_out_on_a_silent_server() {
        let dir = TempDir::new("query-silent");
        let path = dir.join("status.sock");
        // Connections queue in the backlog, but nobody ever answers.
        let _listener = UnixListener::bind(&path).expect("bind");
        let start = Instant::now();
        let err = query(&path, Duration::from_millis(100)).expect_err("a silent server");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
