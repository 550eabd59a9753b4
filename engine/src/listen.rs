//! The tree's listening sockets in the processes of a running tree: the
//! listeners the root bound ([`TreeListeners`]), what each process keeps
//! of them, and their hand-out to workers ([`tcp_listener`],
//! [`unix_listener`]); what a [`Listen`] declares is `supertrees_core`'s.
//! The module docs of `supertrees::listen` tell what a worker can break
//! and what the tree repairs.

mod handout;
mod stop;

use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::sys::socket::SockaddrStorage;

use crate::os::sys::SharedFlag;
use crate::path::within;
pub(crate) use supertrees_core::listen::*;

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
/// Whether the tree has listeners: read, never written, by a freshly
/// forked child of a tree without any, which so does not lock (write)
/// [`REGISTRY`], and leaves the page it lies on shared with its parent.
static ANY_BOUND: AtomicBool = AtomicBool::new(false);
/// The supervisor whose workers run in this process (set by each worker
/// host).
static OWNER: OnceLock<String> = OnceLock::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `tree` the tree's listeners (the root, before it forks), or
/// forgets them (`None`, when the tree has ended).
pub(crate) fn set_bound(tree: Option<Arc<TreeListeners>>) {
    let mut registry = registry();
    ANY_BOUND.store(tree.is_some(), Ordering::Relaxed);
    registry.tree = tree;
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
    // Set before the forks, by the root: a child sees its parent's value.
    if !ANY_BOUND.load(Ordering::Relaxed) {
        return Ok(());
    }
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
/// Each call checks the socket first (see the module docs of `supertrees::listen`): it
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
/// [`run_simulated`](supertrees_core::testing::run_simulated), which has no sockets;
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
/// # extern crate supertrees_engine as supertrees;
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
/// # extern crate supertrees_engine as supertrees;
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
/// # extern crate supertrees_engine as supertrees;
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
