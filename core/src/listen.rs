//! Listening sockets that belong to the tree: [`Listen`], declared with
//! [`with_listener`](crate::Tree::with_listener), and reached by workers
//! with [`tcp_listener`] and [`unix_listener`].
//!
//! A supervisor outlives its worker host, so the tree, not the worker,
//! holds the socket: the root binds it and starts listening before it forks
//! anything, every process of the tree inherits it, and a worker takes a
//! fresh handle on it at each (re)start. Connections that arrive while the
//! serving worker restarts (its host SIGKILLed, say) wait in the socket's
//! backlog, and the next run accepts them: no client is refused.
//!
//! # Examples
//!
//! ```no_run
//! use supertrees_core::{BoxFuture, Listen, Restartable, Supertree, Worker};
//!
//! struct Http;
//! impl Worker for Http {
//!     fn init(&self) -> BoxFuture {
//!         Box::pin(async {
//!             // A fresh, non-blocking handle, for `tokio::net::TcpListener::from_std`
//!             // or `async_io::Async::new`.
//!             let listener = supertrees_core::tcp_listener("http").expect("declared above");
//!             let _ = listener.local_addr();
//!         })
//!     }
//! }
//! impl Restartable for Http {}
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tree = Supertree::new()
//!     .with_listener("http", Listen::tcp("127.0.0.1:8080".parse()?))
//!     .add_worker(Http);
//! # Ok(()) }
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::tree::within;

/// Where a listener of the tree comes from: an address the root binds, or
/// a socket systemd passes. Given to
/// [`with_listener`](crate::Tree::with_listener).
///
/// # Examples
///
/// ```
/// use supertrees_core::Listen;
///
/// let web = Listen::tcp("0.0.0.0:8080".parse().expect("an address"));
/// let admin = Listen::unix("/run/my-service/admin.sock");
/// let activated = Listen::systemd("http");
/// assert_eq!(web.to_string(), "tcp 0.0.0.0:8080");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen(pub(crate) Source);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Tcp(SocketAddr),
    Unix(PathBuf),
    Systemd(String),
}

impl Listen {
    /// A TCP socket bound to `addr` (port 0: one the system picks; the
    /// worker learns it from the listener's `local_addr`), with
    /// `SO_REUSEADDR`.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self(Source::Tcp(addr))
    }

    /// A Unix stream socket at `path`, made with the permissions of the
    /// user running the tree (and its umask) and removed when the tree
    /// ends. A socket left at `path` by a tree that was killed is replaced;
    /// anything else there (a file, a directory, a symlink, a socket in
    /// use) makes `start()` fail and is left alone.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self(Source::Unix(path.into()))
    }

    /// The listening socket systemd passed under this name (socket
    /// activation: `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, from a
    /// `.socket` unit's `FileDescriptorName=` or `systemd-socket-activate
    /// --fdname=`). The `LISTEN_*` variables are removed from the
    /// environment once read.
    pub fn systemd(name: &str) -> Self {
        Self(Source::Systemd(name.to_owned()))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::Tcp(addr) => write!(f, "tcp {addr}"),
            Source::Unix(path) => write!(f, "unix {}", path.display()),
            Source::Systemd(name) => write!(f, "systemd socket {name:?}"),
        }
    }
}

/// What kind of socket a bound listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Tcp,
    Unix,
}

/// One listening socket of the tree, bound by the root.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) name: String,
    /// The supervisor that declared it: its subtree sees it.
    pub(crate) owner: String,
    pub(crate) family: Family,
    pub(crate) fd: OwnedFd,
}

/// The listeners of the running tree, set by the root before it forks (so
/// every process of the tree has them), and the supervisor whose workers
/// run in this process (set by each worker host).
#[derive(Default)]
struct Registry {
    bound: Option<Arc<Vec<Bound>>>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { bound: None });
static OWNER: OnceLock<String> = OnceLock::new();

/// Makes `bound` the tree's listeners (the root, before it forks), or
/// forgets them (`None`, when the tree has ended).
pub(crate) fn set_bound(bound: Option<Arc<Vec<Bound>>>) {
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .bound = bound;
}

/// Makes `owner` the supervisor whose workers run in this process (a
/// worker host, once).
pub(crate) fn set_owner(owner: &str) {
    let _ = OWNER.set(owner.to_owned());
}

/// A duplicate of listener `name`, checked to be a `family` socket that
/// this process's workers may use.
fn duplicate(name: &str, family: Family) -> io::Result<OwnedFd> {
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let owner = OWNER.get().map_or("", String::as_str);
    let found = registry
        .bound
        .iter()
        .flat_map(|bound| bound.iter())
        .find(|b| b.name == name && within(owner, &b.owner));
    let Some(bound) = found else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no listener is named {name:?} for this worker (declared with with_listener on its \
                 supervisor or one above it)"
            ),
        ));
    };
    if bound.family != family {
        let kind = match bound.family {
            Family::Tcp => "a TCP",
            Family::Unix => "a Unix",
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("listener {name:?} is {kind} socket"),
        ));
    }
    bound.fd.try_clone()
}

/// A fresh non-blocking handle on the TCP listener `name` of the tree, for
/// `tokio::net::TcpListener::from_std` or `async_io::Async::new`. Take one
/// in each run of the worker: the socket itself stays with the tree, so
/// the connections that arrive while the worker restarts wait for its next
/// run.
///
/// # Errors
///
/// [`io::ErrorKind::NotFound`] naming `name` when neither the worker's
/// supervisor nor one above it declared it (or outside a worker of a
/// running tree; the simulation has no sockets),
/// [`io::ErrorKind::InvalidInput`] when it is a Unix socket, and the
/// error of `dup` if the process is out of file descriptors.
///
/// # Examples
///
/// ```
/// let err = supertrees_core::tcp_listener("http").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert!(err.to_string().contains("\"http\""));
/// ```
pub fn tcp_listener(name: &str) -> io::Result<TcpListener> {
    duplicate(name, Family::Tcp).map(TcpListener::from)
}

/// A fresh non-blocking handle on the Unix listener `name` of the tree; as
/// [`tcp_listener`].
///
/// # Errors
///
/// As [`tcp_listener`], with [`io::ErrorKind::InvalidInput`] when it is a
/// TCP socket.
///
/// # Examples
///
/// ```
/// let err = supertrees_core::unix_listener("admin").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// ```
pub fn unix_listener(name: &str) -> io::Result<UnixListener> {
    duplicate(name, Family::Unix).map(UnixListener::from)
}

/// Whether `path` is a Unix socket nobody listens on (left by a tree that
/// was killed): connecting is refused.
pub(crate) fn is_stale_socket(path: &Path) -> bool {
    matches!(
        std::os::unix::net::UnixStream::connect(path),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_sees_the_listeners_of_its_supervisor_and_those_above() {
        assert!(within("root/1/0", "root/1"));
        assert!(within("root/1", "root/1"));
        assert!(within("root/1", "root"));
        assert!(!within("root/10", "root/1"));
        assert!(!within("root", "root/1"));
    }
}
