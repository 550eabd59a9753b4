//! Listening sockets that belong to the tree: [`Listen`], declared with
//! [`with_listener`](crate::Tree::with_listener), and reached by workers
//! with [`tcp_listener`] and [`unix_listener`].
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
//! handle is done to all of them. Each hand-out ([`tcp_listener`],
//! [`unix_listener`]) checks the socket first:
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
//! # extern crate supertrees_core as supertrees;
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

mod handout;
mod stop;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::sys::socket::SockaddrStorage;

use crate::engine::sys::SharedFlag;
use crate::path::within;

/// How many connections wait for `accept` while the serving worker
/// restarts (capped by the kernel's `somaxconn`).
pub(crate) const BACKLOG: i32 = 4096;

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
    pub(crate) source: Source,
    /// The socket file's mode ([`Listen::mode`]), when set.
    pub(crate) mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Tcp(SocketAddr),
    Unix(PathBuf),
    Systemd(String),
}

/// The mode of a Unix listener's socket file unless [`Listen::mode`] says
/// otherwise: only the tree's user may connect.
pub(crate) const DEFAULT_MODE: u32 = 0o600;

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

/// What kind of socket a bound listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Tcp,
    Unix,
}

/// One listening socket of the tree, bound by the root or passed by
/// systemd.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) name: String,
    /// The supervisor that declared it: its subtree sees it.
    pub(crate) owner: String,
    pub(crate) family: Family,
    pub(crate) fd: OwnedFd,
    /// The device and inode of the socket `fd` named when it was bound: a
    /// hand-out checks that `fd` still names it.
    pub(crate) identity: (u64, u64),
    /// Where a TCP socket is bound (`None` for Unix sockets): bound there
    /// again if a shutdown released the port.
    pub(crate) addr: Option<SockaddrStorage>,
    /// What the tree does to it when it stops.
    pub(crate) on_stop: OnStop,
    /// Whether this process logged that it can not hand it out any more.
    pub(crate) reported: AtomicBool,
}

/// The listeners of a running tree, made by the root before it forks.
#[derive(Debug)]
pub(crate) struct TreeListeners {
    pub(crate) bound: Vec<Bound>,
    /// Set by the root when the tree stops, before it stops the listeners;
    /// every process of the tree sees it (see [`stop`]).
    pub(crate) stopping: Arc<SharedFlag>,
}

/// The listeners of the running tree, set by the root before it forks (so
/// every process of the tree has them).
#[derive(Default)]
struct Registry {
    tree: Option<Arc<TreeListeners>>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { tree: None });
/// The supervisor whose workers run in this process (set by each worker
/// host).
static OWNER: OnceLock<String> = OnceLock::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `tree` the tree's listeners (the root, before it forks), or
/// forgets them (`None`, when the tree has ended).
pub(crate) fn set_bound(tree: Option<Arc<TreeListeners>>) {
    registry().tree = tree;
}

/// In a freshly forked child: keeps the listeners its role needs (those
/// `keep` keeps, duplicated) and closes every other one in this process,
/// so that a process holds no listener of another subtree. What the
/// parent had is forgotten, never dropped here (the child ends with
/// `_exit`).
///
/// # Errors
///
/// The system's, if a descriptor can not be duplicated (out of
/// descriptors).
pub(crate) fn keep_in_child(keep: impl Fn(&Bound) -> bool) -> io::Result<()> {
    let mut registry = registry();
    let Some(theirs) = registry.tree.take() else {
        return Ok(());
    };
    let kept = theirs
        .bound
        .iter()
        .filter(|b| keep(b))
        .map(|b| {
            Ok(Bound {
                name: b.name.clone(),
                owner: b.owner.clone(),
                family: b.family,
                fd: b.fd.try_clone()?,
                identity: b.identity,
                addr: b.addr,
                on_stop: b.on_stop.clone(),
                reported: AtomicBool::new(false),
            })
        })
        .collect::<io::Result<Vec<_>>>();
    for bound in &theirs.bound {
        let _ = nix::unistd::close(std::os::fd::AsRawFd::as_raw_fd(&bound.fd));
    }
    let stopping = theirs.stopping.clone();
    std::mem::forget(theirs);
    registry.tree = Some(Arc::new(TreeListeners {
        bound: kept?,
        stopping,
    }));
    Ok(())
}

/// Makes `owner` the supervisor whose workers run in this process (a
/// worker host, once).
pub(crate) fn set_owner(owner: &str) {
    let _ = OWNER.set(owner.to_owned());
}

/// The tree is stopping (in the root): the listeners it bound stop taking
/// connections, once. See [`stop`].
pub(crate) fn tree_stops() {
    if let Some(tree) = &registry().tree {
        stop::stop(tree);
    }
}

pub(crate) use handout::identity;
pub(crate) use stop::{OnStop, SocketFile};

/// A checked handle on listener `name` (see [`handout`]), which must be a
/// `family` socket that this process's workers may use. `function` is the
/// public function called, named by the error outside a worker host.
fn duplicate(function: &str, name: &str, family: Family) -> io::Result<OwnedFd> {
    // Only a worker host has an owner: its workers' supervisor.
    let Some(owner) = OWNER.get() else {
        return Err(outside(function, name));
    };
    let registry = registry();
    let tree = registry.tree.as_deref();
    let found = tree
        .iter()
        .flat_map(|tree| tree.bound.iter())
        .find(|b| b.name == name && within(owner, &b.owner));
    let (Some(tree), Some(bound)) = (tree, found) else {
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
    handout::hand_out(bound, &tree.stopping)
}

/// A fresh non-blocking handle on the TCP listener `name` of the tree, for
/// `tokio::net::TcpListener::from_std` or `async_io::Async::new`. Take one
/// in each run of the worker: the socket itself stays with the tree, so
/// the connections that arrive while the worker restarts wait for its next
/// run.
///
/// Each call checks the socket first (see [the module docs](self)): it
/// makes it non-blocking again, and listening again if a worker shut it
/// down. Every handle shares the socket and its flags, in every process:
/// making one blocking makes all of them blocking, shutting one down shuts
/// the socket down. Close your own handles only.
///
/// # Errors
///
/// [`io::ErrorKind::NotFound`] naming `name` when neither the worker's
/// supervisor nor one above it declared it; also `NotFound`, naming this
/// function and `name`, outside a worker of a running tree (in a thread or
/// task a worker started in its process it works as in the run) and in
/// [`run_simulated`](crate::testing::run_simulated), which has no sockets;
/// [`io::ErrorKind::InvalidInput`] when it is a Unix socket, the error of
/// `dup` if the process is out of file descriptors, and
/// [`io::ErrorKind::Other`] naming `name` when the tree is stopping, when
/// the descriptor this process inherited no longer names the socket
/// (something in the process closed it), or when a socket a worker shut
/// down can not listen again (its address taken meanwhile).
///
/// # Examples
///
/// In a worker, with `.with_listener("http", Listen::tcp(addr))` on its
/// supervisor or one above it, here on smol's reactor:
///
/// ```no_run
/// # extern crate supertrees_core as supertrees;
/// use async_io::Async;
///
/// async fn serve() -> std::io::Result<()> {
///     let listener = Async::new(supertrees::tcp_listener("http")?)?;
///     loop {
///         let (_stream, peer) = listener.accept().await?;
///         println!("connection from {peer}");
///     }
/// }
/// ```
///
/// Outside a worker of a running tree it fails, naming itself:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// let err = supertrees::tcp_listener("http").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert!(err.to_string().starts_with(
///     "supertrees::tcp_listener(\"http\") called outside a worker of a running tree"
/// ));
/// ```
pub fn tcp_listener(name: &str) -> io::Result<TcpListener> {
    duplicate("tcp_listener", name, Family::Tcp).map(TcpListener::from)
}

/// A fresh non-blocking handle on the Unix listener `name` of the tree; as
/// [`tcp_listener`]. A Unix socket a worker shut down can not listen again
/// (Linux keeps it shut down): its hand-outs fail.
///
/// # Errors
///
/// As [`tcp_listener`], with [`io::ErrorKind::InvalidInput`] when it is a
/// TCP socket, and [`io::ErrorKind::Other`] naming `name` when a worker
/// shut it down.
///
/// # Examples
///
/// Outside a worker of a running tree it fails, naming itself:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// let err = supertrees::unix_listener("admin").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert!(err.to_string().starts_with(
///     "supertrees::unix_listener(\"admin\") called outside a worker of a running tree"
/// ));
/// ```
pub fn unix_listener(name: &str) -> io::Result<UnixListener> {
    duplicate("unix_listener", name, Family::Unix).map(UnixListener::from)
}

/// The error of `function` (asked for listener `name`) outside a worker
/// host: in a simulated worker's run (the simulation has no sockets), or
/// anywhere else, outside a worker of a running tree.
fn outside(function: &str, name: &str) -> io::Error {
    let message = if crate::ready::in_run() {
        format!(
            "supertrees::{function}({name:?}) called in a simulated tree, which has no listeners"
        )
    } else {
        format!(
            "supertrees::{function}({name:?}) called outside a worker of a running tree (it works \
             in a worker's run, and in the threads and tasks a worker started in its process)"
        )
    };
    io::Error::new(io::ErrorKind::NotFound, message)
}

/// Whether `path` is a Unix socket nobody listens on (left by a tree that
/// was killed): connecting is refused.
pub(crate) fn is_stale_socket(path: &Path) -> bool {
    matches!(
        std::os::unix::net::UnixStream::connect(path),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused
    )
}
