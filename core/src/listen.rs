//! Listening sockets that belong to the tree: [`Listen`], declared with
//! [`with_listener`](crate::Tree::with_listener), and reached by workers
//! with `supertrees::tcp_listener` and `supertrees::unix_listener`.
//!
//! A supervisor outlives its worker host, so the tree, not the worker,
//! holds the socket: the root binds it and starts listening before it forks
//! anything, the processes of the subtree that sees it (and the
//! supervisors above, which hand it down) inherit it, and a worker takes a
//! fresh handle on it at each (re)start. No process of another subtree
//! holds it: a worker can not accept from, or shut down, a listener it was
//! not given. Connections that arrive while the
//! serving worker restarts (its host SIGKILLed, say) wait in the socket's
//! backlog, and the next run accepts them: no client is refused.
//!
//! # What a worker can break, and what the tree repairs
//!
//! Every handle on a socket, in every process that holds it, shares the
//! socket and its open file description, so what one worker does to its
//! handle is done to all of them. Each hand-out (`supertrees::tcp_listener`,
//! `supertrees::unix_listener`) checks the socket first:
//!
//! * **Non-blocking.** `O_NONBLOCK` is a flag of the open file description:
//!   a worker that makes its handle blocking (`set_nonblocking(false)`)
//!   makes every handle blocking. Each hand-out makes it non-blocking again.
//! * **Listening.** `shutdown(2)` on any handle makes a TCP socket leave
//!   `LISTEN` for every holder (connections waiting in its backlog are
//!   reset, new ones refused). The next hand-out makes it listen again, on
//!   the same address (bound again if the shutdown released a port the
//!   system picked), and logs a warning naming the listener. Connections
//!   made between the shutdown and that hand-out are refused.
//! * **Still the tree's.** A worker closing its handle closes that handle
//!   only: harmless. Closing the descriptor its process inherited from the
//!   tree (a raw `close(2)` of a number it does not own) leaves that number
//!   free for anything else; the hand-outs of that process then fail with
//!   an error naming the listener (logged once), never handing out
//!   whatever has the number now. A restarted worker host inherits the
//!   socket afresh.
//!
//! Not repaired: a Unix listener a worker shut down. Linux keeps the
//! shutdown on a Unix socket (listening again does not clear it), so it
//! refuses connections for good (and Tokio's `accept` on it never returns,
//! busying its thread); its hand-outs fail naming it (logged once), and the
//! tree has to be restarted. Nor are handles taken before a
//! repair: a run whose socket another run shut down sees its `accept`
//! fail.
//!
//! # When the tree stops
//!
//! When the root begins to stop (SIGTERM or SIGINT, its restart intensity
//! exceeded, its work done), and not when a worker or a supervisor
//! restarts, the listeners it bound stop taking connections at once, so a
//! client that connects while the workers drain is refused instead of
//! waiting in the backlog for a worker that will not accept it:
//!
//! * a TCP listener is shut down (`shutdown(2)`): new connections are
//!   refused, those waiting in its backlog reset, and `accept` on a handle
//!   fails at once from then on (`EINVAL`): stop accepting when
//!   [`stopping`](crate::stopping) resolves or `accept` fails, since a loop
//!   that retries at once spins; a hand-out then fails instead of making
//!   the listener listen again;
//! * a Unix listener's socket file is removed: new clients get `ENOENT`;
//!   the socket itself still listens, so the connections waiting in its
//!   backlog can still be accepted.
//!
//! Connections already accepted are not touched: the workers finish them.
//! Sockets passed by systemd ([`Listen::systemd`]) are left listening:
//! they are systemd's, which holds the connections for the next start.
//!
//! # Examples
//!
//! ```no_run
//! # // The facade's `tcp_listener` is the engine's, which needs Linux.
//! # mod supertrees {
//! #     pub use supertrees_core::*;
//! #     pub fn tcp_listener(_: &str) -> std::io::Result<std::net::TcpListener> {
//! #         std::net::TcpListener::bind("127.0.0.1:0")
//! #     }
//! # }
//! use supertrees::{BoxFuture, Listen, Restartable, Supertree, Worker};
//!
//! struct Http;
//! impl Worker for Http {
//!     fn init(&self) -> BoxFuture {
//!         Box::pin(async {
//!             // A fresh, non-blocking handle, for `tokio::net::TcpListener::from_std`
//!             // or `async_io::Async::new`.
//!             let listener = supertrees::tcp_listener("http").expect("declared above");
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
use std::net::SocketAddr;
use std::path::PathBuf;

/// How many connections wait for `accept` while the serving worker
/// restarts (capped by the kernel's `somaxconn`).
#[doc(hidden)]
pub const BACKLOG: i32 = 4096;

/// Where a listener of the tree comes from: an address the root binds, or
/// a socket systemd passes. Given to
/// [`with_listener`](crate::Tree::with_listener).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::Listen;
///
/// let web = Listen::tcp("0.0.0.0:8080".parse().expect("an address"));
/// let admin = Listen::unix("/run/my-service/admin.sock").mode(0o660);
/// let activated = Listen::systemd("http");
/// assert_eq!(web.to_string(), "tcp 0.0.0.0:8080");
/// assert_eq!(admin.to_string(), "unix /run/my-service/admin.sock (mode 0660)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    #[doc(hidden)]
    pub source: Source,
    /// The socket file's mode ([`Listen::mode`]), when set.
    #[doc(hidden)]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(hidden)]
pub enum Source {
    Tcp(SocketAddr),
    Unix(PathBuf),
    Systemd(String),
}

/// The mode of a Unix listener's socket file unless [`Listen::mode`] says
/// otherwise: only the tree's user may connect.
#[doc(hidden)]
pub const DEFAULT_MODE: u32 = 0o600;

impl Listen {
    fn from(source: Source) -> Self {
        Self { source, mode: None }
    }

    /// A TCP socket bound to `addr` (port 0: one the system picks; the
    /// worker learns it from the listener's `local_addr`), with
    /// `SO_REUSEADDR`.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Listen;
    ///
    /// let any_port = Listen::tcp("127.0.0.1:0".parse().expect("an address"));
    /// assert_eq!(any_port.to_string(), "tcp 127.0.0.1:0");
    /// ```
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::from(Source::Tcp(addr))
    }

    /// A Unix stream socket at `path`, with mode 0600 (only the tree's
    /// user may connect; [`mode`](Self::mode) to let others in), removed
    /// when the tree ends.
    ///
    /// The directory that holds it must exist, and neither it nor any
    /// directory above it may be one that another user can change: owned
    /// by another user than the tree's and root, or writable by its group
    /// or by anyone (the sticky bit, as on `/tmp`, makes that harmless for
    /// a directory *above* the socket's, not for the socket's own). Whoever
    /// can change one could replace the socket with theirs, and the
    /// clients would talk to them. `start()` fails otherwise, naming the
    /// listener and the directory; use a directory such as
    /// `$XDG_RUNTIME_DIR` or `/run/<service>`. Both the path as given and
    /// the one its symlinks resolve to are checked, and a symbolic link on
    /// the way owned by another user than the tree's and root is refused
    /// too (its owner could point it elsewhere).
    ///
    /// A socket left at `path` by a tree that was killed is replaced;
    /// anything else there (a file, a directory, a symlink, a socket in
    /// use) makes `start()` fail and is left alone.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Listen;
    ///
    /// let admin = Listen::unix("/run/my-service/admin.sock");
    /// assert_eq!(admin.to_string(), "unix /run/my-service/admin.sock");
    /// ```
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::from(Source::Unix(path.into()))
    }

    /// The listening socket systemd passed under this name (socket
    /// activation: `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, from a
    /// `.socket` unit's `FileDescriptorName=` or `systemd-socket-activate
    /// --fdname=`). The `LISTEN_*` variables are removed from the
    /// environment once read.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Listen;
    ///
    /// assert_eq!(Listen::systemd("http").to_string(), "systemd socket \"http\"");
    /// ```
    pub fn systemd(name: &str) -> Self {
        Self::from(Source::Systemd(name.to_owned()))
    }

    /// The permissions of a [`unix`](Self::unix) listener's socket file
    /// (default 0600): who may connect (connecting takes write
    /// permission), e.g. `0o660` for the tree's user and its group. Set
    /// exactly, whatever the umask; the socket file is never more open
    /// than `mode`, not even the moment it is made.
    ///
    /// Only the permission bits `0o777` apply: `start()` fails with
    /// [`Error::Listener`](crate::Error::Listener) naming the listener for
    /// any other bit (setuid, setgid, sticky, a file type), and for a mode
    /// on a TCP listener (it has no file) or on a socket systemd passes
    /// (its mode is the `.socket` unit's `SocketMode=`), rather than
    /// ignoring it.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Listen;
    ///
    /// let shared = Listen::unix("/run/my-service/api.sock").mode(0o660);
    /// assert_eq!(shared.to_string(), "unix /run/my-service/api.sock (mode 0660)");
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Tcp(addr) => write!(f, "tcp {addr}")?,
            Source::Unix(path) => write!(f, "unix {}", path.display())?,
            Source::Systemd(name) => write!(f, "systemd socket {name:?}")?,
        }
        match self.mode {
            Some(mode) => write!(f, " (mode {mode:04o})"),
            None => Ok(()),
        }
    }
}
