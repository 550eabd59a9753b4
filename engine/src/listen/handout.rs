//! What a hand-out ([`tcp_listener`](super::tcp_listener),
//! [`unix_listener`](super::unix_listener)) checks, and repairs, before it
//! gives a worker a handle: that the descriptor this process inherited
//! still names the tree's socket, that the socket is non-blocking, and that
//! it listens (see the [`listen`](super) module docs for what a worker can
//! break).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{self, getsockname, getsockopt, sockopt, Backlog, SockaddrStorage};

use super::{Bound, Family, OnStop, BACKLOG};
use crate::os::sys::SharedFlag;

/// A fresh non-blocking handle on `bound`, which listens; `stopping` is the
/// tree's stop mark (see [`stop`](super::stop)).
pub(super) fn hand_out(bound: &Bound, stopping: &SharedFlag) -> io::Result<OwnedFd> {
    // The duplicate is checked, not the number it was made from: another
    // thread may put something else at that number in between.
    let fd = duplicate(bound)?;
    set_nonblocking(&fd)?;
    if is_listening(&fd)? {
        return Ok(fd);
    }
    // Whether the tree stopped it, checked after the state: the root sets
    // the mark before it shuts a listener down.
    let stopped_by_tree = || matches!(bound.on_stop, OnStop::ShutDown) && stopping.is_set();
    if stopped_by_tree() {
        return Err(stopped(bound));
    }
    listen_again(bound, &fd)?;
    if stopped_by_tree() {
        // The tree began to stop meanwhile, and may have shut the socket
        // down before this made it listen: stopped again, to be sure.
        let _ = socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Read);
        return Err(stopped(bound));
    }
    Ok(fd)
}

/// The device and inode of the file `fd` names.
pub(crate) fn identity(fd: impl AsFd) -> io::Result<(u64, u64)> {
    let stat = nix::sys::stat::fstat(fd)?;
    Ok((stat.st_dev as u64, stat.st_ino as u64))
}

/// A duplicate of the descriptor of `bound`, checked to name the socket
/// bound: a raw `close` of it in this process leaves the number to
/// whatever opens next.
fn duplicate(bound: &Bound) -> io::Result<OwnedFd> {
    let what = match bound.fd.try_clone() {
        Err(err) => format!("is closed ({err})"),
        Ok(fd) => match identity(&fd) {
            Ok(now) if now == bound.identity => return Ok(fd),
            Ok(_) => "names another file now".to_owned(),
            Err(err) => format!("can not be read ({err})"),
        },
    };
    Err(broken(
        bound,
        format!(
            "descriptor {} of this process no longer names its socket: it {what}. Something in \
             this process closed it (a raw close of a descriptor it does not own?); it can not be \
             handed out here any more (a new worker host inherits it afresh)",
            bound.fd.as_raw_fd()
        ),
    ))
}

/// Makes the open file description of `fd`, which every handle shares,
/// non-blocking again if a worker made it blocking.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    if !flags.contains(OFlag::O_NONBLOCK) {
        tracing::debug!("a listener's handle was made blocking; non-blocking again");
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    }
    Ok(())
}

/// Whether `fd` takes connections: a TCP socket shut down has left
/// `LISTEN`; a Unix socket shut down stays in it but has its read side
/// shut (`EPOLLRDHUP`, which `poll` as nix has it can not ask for).
fn is_listening(fd: &OwnedFd) -> io::Result<bool> {
    if !getsockopt(fd, sockopt::AcceptConn)? {
        return Ok(false);
    }
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLRDHUP, 0))?;
    let mut events = [EpollEvent::empty()];
    let ready = loop {
        match epoll.wait(&mut events, EpollTimeout::ZERO) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
    };
    let shut = ready > 0 && events[0].events().contains(EpollFlags::EPOLLRDHUP);
    Ok(!shut)
}

/// Makes a listener a worker shut down listen again: a TCP socket on the
/// address it had; a Unix socket can not (Linux keeps it shut down).
fn listen_again(bound: &Bound, fd: &OwnedFd) -> io::Result<()> {
    let Some(addr) = bound.addr.filter(|_| bound.family == Family::Tcp) else {
        return Err(broken(
            bound,
            "was shut down (shutdown(2) on a handle) and refuses connections; Linux does not let a \
             Unix socket listen again after that: restart the tree"
                .to_owned(),
        ));
    };
    // A shutdown releases a port the system picked (bound to port 0);
    // one bound by number stays bound (EINVAL: already bound).
    match socket::bind(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(err) => {
            return Err(failed(
                bound,
                format!("was shut down, and can not be bound to {addr} again: {err}"),
            ))
        }
    }
    let backlog = Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN);
    socket::listen(fd, backlog).map_err(|err| {
        failed(
            bound,
            format!("was shut down, and can not listen again: {err}"),
        )
    })?;
    let now: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    if now != addr {
        let _ = socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Read);
        return Err(failed(
            bound,
            format!("was shut down, and listens on {now} instead of {addr} again"),
        ));
    }
    tracing::warn!(listener = ?bound.name, address = %addr,
        "a listener had stopped listening (shut down by a worker?); listening again");
    Ok(())
}

fn error(bound: &Bound, what: String) -> io::Error {
    io::Error::other(format!("listener {:?} {what}", bound.name))
}

/// The error of a hand-out after the tree stopped the listener.
fn stopped(bound: &Bound) -> io::Error {
    error(
        bound,
        "no longer takes connections: the tree is stopping".to_owned(),
    )
}

/// The error of a repair that failed, logged.
fn failed(bound: &Bound, what: String) -> io::Error {
    let err = error(bound, what);
    tracing::error!(listener = ?bound.name, %err, "could not repair a listener");
    err
}

/// The error of a listener this process can not hand out any more, logged
/// once per process.
fn broken(bound: &Bound, what: String) -> io::Error {
    let err = error(bound, what);
    if !bound.reported.swap(true, Ordering::Relaxed) {
        tracing::error!(listener = ?bound.name, %err, "a listener can not be handed out");
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::atomic::AtomicBool;

    fn bound(fd: OwnedFd, family: Family, stopped_with_tree: bool) -> Bound {
        let on_stop = if stopped_with_tree {
            OnStop::ShutDown
        } else {
            OnStop::Leave
        };
        let addr = match family {
            Family::Tcp => Some(getsockname(fd.as_raw_fd()).expect("an address")),
            Family::Unix => None,
        };
        Bound {
            name: "web".to_owned(),
            owner: "root".to_owned(),
            family,
            identity: identity(&fd).expect("fstat"),
            fd,
            addr,
            on_stop,
            reported: AtomicBool::new(false),
        }
    }

    fn tcp(stopped_with_tree: bool) -> (Bound, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        (bound(listener.into(), Family::Tcp, stopped_with_tree), addr)
    }

    fn is_nonblocking(fd: &OwnedFd) -> bool {
        OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).expect("flags"))
            .contains(OFlag::O_NONBLOCK)
    }

    #[test]
    fn every_handle_is_non_blocking_whatever_an_earlier_one_did() {
        let (bound, _) = tcp(true);
        let mark = SharedFlag::new().expect("mark");
        let first = TcpListener::from(hand_out(&bound, &mark).expect("a handle"));
        first.set_nonblocking(false).expect("blocking");
        // Shared: the tree's own descriptor is blocking too.
        assert!(!is_nonblocking(&bound.fd));
        let second = hand_out(&bound, &mark).expect("a handle");
        assert!(is_nonblocking(&second));
    }

    #[test]
    fn a_tcp_listener_shut_down_listens_again_on_its_port() {
        // Port 0: the shutdown releases the port the system picked.
        let (bound, addr) = tcp(true);
        let mark = SharedFlag::new().expect("mark");
        for _ in 0..2 {
            let handle = hand_out(&bound, &mark).expect("a handle");
            socket::shutdown(handle.as_raw_fd(), socket::Shutdown::Read).expect("shutdown");
            drop(handle);
            assert!(TcpStream::connect(addr).is_err(), "refused once shut down");
            let handle = TcpListener::from(hand_out(&bound, &mark).expect("listening again"));
            assert_eq!(handle.local_addr().expect("addr"), addr);
            let _client = TcpStream::connect(addr).expect("served again");
            handle.set_nonblocking(false).expect("blocking, to accept");
            handle.accept().expect("the connection");
        }
    }

    #[test]
    fn a_listener_the_tree_stopped_is_not_made_to_listen_again() {
        let (bound, addr) = tcp(true);
        let mark = SharedFlag::new().expect("mark");
        mark.set();
        socket::shutdown(bound.fd.as_raw_fd(), socket::Shutdown::Read).expect("shutdown");
        let err = hand_out(&bound, &mark).unwrap_err();
        assert!(err.to_string().contains("\"web\""), "{err}");
        assert!(err.to_string().contains("the tree is stopping"), "{err}");
        assert!(!getsockopt(&bound.fd, sockopt::AcceptConn).expect("state"));
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn a_systemd_socket_a_worker_shut_down_listens_again_even_while_the_tree_stops() {
        let (bound, addr) = tcp(false);
        let mark = SharedFlag::new().expect("mark");
        mark.set();
        socket::shutdown(bound.fd.as_raw_fd(), socket::Shutdown::Read).expect("shutdown");
        hand_out(&bound, &mark).expect("listening again");
        TcpStream::connect(addr).expect("served again");
    }

    #[test]
    fn a_unix_listener_shut_down_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("supertrees-handout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("web.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let bound = bound(listener.into(), Family::Unix, true);
        let mark = SharedFlag::new().expect("mark");
        let handle = hand_out(&bound, &mark).expect("a handle");
        drop(handle);
        UnixStream::connect(&path).expect("a handle closed is harmless");
        let handle = hand_out(&bound, &mark).expect("a handle");
        socket::shutdown(handle.as_raw_fd(), socket::Shutdown::Read).expect("shutdown");
        let err = hand_out(&bound, &mark).unwrap_err();
        assert!(err.to_string().contains("\"web\""), "{err}");
        assert!(err.to_string().contains("restart the tree"), "{err}");
        assert!(bound.reported.load(Ordering::Relaxed));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_descriptor_that_names_another_file_is_not_handed_out() {
        let (mut bound, _) = tcp(true);
        let mark = SharedFlag::new().expect("mark");
        // What a raw close and a later open leave at the number.
        let other = TcpListener::bind("127.0.0.1:0").expect("bind");
        bound.fd = other.into();
        let err = hand_out(&bound, &mark).unwrap_err();
        assert!(err.to_string().contains("\"web\""), "{err}");
        assert!(
            err.to_string().contains("no longer names its socket"),
            "{err}"
        );
    }
}
