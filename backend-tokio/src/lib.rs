//! # supertrees-tokio
//!
//! The [Tokio] backend of supertrees: [`TokioSpawner`] runs each worker host
//! on a Tokio runtime built inside the freshly forked host, and
//! [`TokioTimer`] is Tokio's clock.
//!
//! Most users get these through the `supertrees` facade (feature `tokio`, on
//! by default) and never name them; `Supertree::start()` uses them.
//!
//! [Tokio]: https://tokio.rs
//!
//! # Examples
//!
//! ```
//! use supertrees_core::Spawner;
//! use supertrees_tokio::TokioSpawner;
//!
//! let spawner = TokioSpawner::new();
//! assert!(!spawner.is_inside_runtime());
//! spawner.block_on(Box::pin(async {
//!     let (tx, rx) = tokio::sync::oneshot::channel();
//!     TokioSpawner::new().spawn(Box::pin(async move {
//!         let _ = tx.send(42);
//!     }));
//!     assert_eq!(rx.await, Ok(42));
//! }));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
#[cfg(target_os = "linux")]
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use supertrees_core::tree::Root;
use supertrees_core::{Backend, BoxFuture, Error, Runner, Spawner, Timer, Tree};
#[cfg(target_os = "linux")]
use supertrees_engine::{Interest, IoSource, Register};
#[cfg(target_os = "linux")]
use tokio::io::unix::AsyncFd;

/// Which Tokio scheduler a worker host runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Tokio's multi-thread scheduler, as `#[tokio::main]` builds.
    MultiThread,
    /// One thread per worker host.
    #[default]
    CurrentThread,
}

/// Runs worker hosts on Tokio.
///
/// [`new`](TokioSpawner::new) (and `Default`, which `Supertree::start()`
/// uses) builds a current-thread runtime in each worker host: supertrees
/// spreads work over cores with processes (one host per supervisor), and a
/// single-threaded host starts in about half the time, restarts faster after
/// a crash and stops at once (see `BENCHMARKS.md`). Blocking work still has
/// Tokio's blocking pool (`spawn_blocking`). Workers that need several cores
/// inside one host can have a multi-thread runtime, as supertrees 0.1 built,
/// with [`multi_thread`](TokioSpawner::multi_thread) and `start_with`. Both
/// enable Tokio's I/O and time drivers.
///
/// # Examples
///
/// ```
/// # mod supertrees {
/// #     pub use supertrees_core::*;
/// #     pub mod tokio {
/// #         pub use supertrees_tokio::*;
/// #     }
/// # }
/// use supertrees::Spawner;
/// use supertrees::tokio::TokioSpawner;
///
/// TokioSpawner::current_thread().block_on(Box::pin(async {
///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
/// }));
/// ```
#[derive(Debug, Default, Clone)]
pub struct TokioSpawner {
    flavor: Flavor,
}

impl TokioSpawner {
    /// A spawner that builds a current-thread runtime in each worker host.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same as [`new`](TokioSpawner::new): a current-thread runtime in
    /// each worker host.
    pub fn current_thread() -> Self {
        Self {
            flavor: Flavor::CurrentThread,
        }
    }

    /// A spawner that builds a multi-thread runtime in each worker host, as
    /// `#[tokio::main]` (and supertrees 0.1) would: its workers run in
    /// parallel on all cores.
    ///
    /// ```
    /// # mod supertrees {
    /// #     pub use supertrees_core::*;
    /// #     pub mod tokio {
    /// #         pub use supertrees_tokio::*;
    /// #     }
    /// # }
    /// use supertrees::Spawner;
    /// use supertrees::tokio::TokioSpawner;
    ///
    /// TokioSpawner::multi_thread().block_on(Box::pin(async {
    ///     let task = tokio::spawn(async { std::thread::current().id() });
    ///     task.await.unwrap();
    /// }));
    /// ```
    pub fn multi_thread() -> Self {
        Self {
            flavor: Flavor::MultiThread,
        }
    }
}

impl Spawner for TokioSpawner {
    /// Builds the runtime and runs `fut` on it.
    ///
    /// # Panics
    ///
    /// If the runtime can not be built (e.g. no threads can be spawned); in a
    /// worker host the engine turns that panic into a failed host, reported
    /// with this message, and restarts its workers with backoff.
    fn block_on(&self, fut: BoxFuture) {
        let mut builder = match self.flavor {
            Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        };
        match builder.enable_all().build() {
            Ok(runtime) => {
                runtime.block_on(fut);
                // The host exits right after: do not wait for idle threads.
                runtime.shutdown_background();
            }
            Err(err) => panic!("supertrees-tokio: could not build the Tokio runtime: {err}"),
        }
    }

    fn spawn(&self, fut: BoxFuture) {
        tokio::spawn(fut);
    }

    fn is_inside_runtime(&self) -> bool {
        tokio::runtime::Handle::try_current().is_ok()
    }
}

/// The fd registration of the process engine: Tokio's I/O driver.
#[cfg(target_os = "linux")]
impl Register for TokioSpawner {
    /// Registers `fd` with the I/O driver of the current Tokio runtime, as a
    /// [`tokio::io::unix::AsyncFd`]. The fd's flags are left as they are.
    ///
    /// # Errors
    ///
    /// Outside a Tokio runtime (call it from a task), or if the driver
    /// refuses the fd: epoll takes no regular files, for one.
    ///
    /// # Panics
    ///
    /// Inside a Tokio runtime built without its I/O driver (not one that
    /// [`block_on`](Spawner::block_on) builds, which enables it).
    ///
    /// # Examples
    ///
    /// ```
    /// # mod supertrees {
    /// #     pub use supertrees_core::*;
    /// #     pub use supertrees_engine::{Interest, Register};
    /// #     pub mod tokio {
    /// #         pub use supertrees_tokio::*;
    /// #     }
    /// # }
    /// use std::os::fd::AsRawFd;
    /// use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    /// use supertrees::{Interest, Register, Spawner};
    /// use supertrees::tokio::TokioSpawner;
    ///
    /// let (ours, theirs) =
    ///     socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    /// TokioSpawner::new().block_on(Box::pin(async move {
    ///     let source = TokioSpawner::new().register(ours).expect("register");
    ///     tokio::spawn(async move {
    ///         tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    ///         send(theirs.as_raw_fd(), b"hi", MsgFlags::empty())
    ///     });
    ///     let mut buf = [0; 8];
    ///     let mut len = 0;
    ///     std::future::poll_fn(|cx| {
    ///         source.poll_io(cx, Interest::Readable, &mut |fd| {
    ///             len = recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)?;
    ///             Ok(())
    ///         })
    ///     })
    ///     .await
    ///     .expect("recv");
    ///     assert_eq!(&buf[..len], b"hi");
    /// }));
    /// # Ok::<(), nix::Error>(())
    /// ```
    fn register(&self, fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "supertrees-tokio: register needs a Tokio runtime: call it from a task",
            ));
        }
        // Tokio 1.54 deprecates `AsyncFd::new` for types whose `as_raw_fd`
        // may change or close under it, in favour of an `unsafe` `register`
        // (which `forbid(unsafe_code)` rules out, and older Tokio 1.x lacks).
        // An `OwnedFd` always returns the fd it owns, open until it drops,
        // which is exactly what `register` asks of the caller.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Box::new(TokioSource(fd)))
    }
}

/// An fd on Tokio's I/O driver: what [`TokioSpawner`]'s
/// [`register`](Register::register) returns.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct TokioSource(AsyncFd<OwnedFd>);

#[cfg(target_os = "linux")]
impl IoSource for TokioSource {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
    ) -> Poll<io::Result<()>> {
        loop {
            // The guard holds the driver's readiness; `try_io` clears it when
            // `op` would block, so the next poll waits for a new event.
            let mut guard = match interest {
                Interest::Readable => ready!(self.0.poll_read_ready(cx))?,
                Interest::Writable => ready!(self.0.poll_write_ready(cx))?,
            };
            match guard.try_io(|inner| op(inner.get_ref().as_fd())) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Tokio's clock: [`now`](Timer::now) follows `tokio::time::Instant`, so a
/// paused Tokio clock (`start_paused`) is seen by the engine too.
///
/// # Examples
///
/// ```
/// # mod supertrees {
/// #     pub use supertrees_core::*;
/// #     pub mod tokio {
/// #         pub use supertrees_tokio::*;
/// #     }
/// # }
/// use std::time::Duration;
/// use supertrees::Timer;
/// use supertrees::tokio::TokioTimer;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
/// rt.block_on(async {
///     let timer = TokioTimer::new();
///     let start = timer.now();
///     timer.sleep(Duration::from_millis(2)).await;
///     assert!(timer.now() - start >= Duration::from_millis(2));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioTimer;

impl TokioTimer {
    /// Tokio's timer.
    pub fn new() -> Self {
        Self
    }
}

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The Tokio backend as a type: [`TokioSpawner::new()`] (a current-thread
/// runtime per worker host) and [`TokioTimer`]. A root tree of this backend,
/// `Tree<Root<Tokio>>`, has `start()`; it is the `supertrees` facade's
/// `Supertree` with the default features.
///
/// A type only: it has no values.
///
/// # Examples
///
/// With the `supertrees` facade, which re-exports it as
/// `supertrees::tokio::Tokio`:
///
/// ```no_run
/// # mod supertrees {
/// #     pub use supertrees_core::{tree, Error, Tree};
/// #     pub mod tokio {
/// #         pub use supertrees_tokio::Tokio;
/// #     }
/// # }
/// use supertrees::tokio::Tokio;
/// use supertrees::tree::Root;
/// use supertrees::Tree;
///
/// fn main() -> Result<(), supertrees::Error> {
///     Tree::<Root<Tokio>>::new().start()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tokio {}

/// Runs a tree of this backend on the process engine (`supertrees-engine`,
/// Linux; elsewhere [`Error::Unsupported`]). A [`TokioSpawner`] registers
/// the tree's sockets with Tokio's I/O driver; any other spawner given to
/// `start_with` (which only knows `block_on` and `spawn`) gets the engine's
/// default reactor.
impl Runner for Tokio {
    fn run<S: Spawner, T: Timer>(
        tree: Tree<Root<Self>>,
        spawner: S,
        timer: T,
    ) -> Result<(), Error> {
        #[cfg(target_os = "linux")]
        {
            supertrees_engine::run_preferring::<TokioSpawner, _, _, _>(tree, spawner, timer)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (tree, spawner, timer);
            Err(Error::Unsupported)
        }
    }
}

impl Backend for Tokio {
    type Spawner = TokioSpawner;
    type Timer = TokioTimer;

    fn spawner() -> TokioSpawner {
        TokioSpawner::new()
    }

    fn timer() -> TokioTimer {
        TokioTimer::new()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn register_passes_the_conformance_check_on_both_flavors() {
        supertrees_engine::check_register(&TokioSpawner::current_thread());
        supertrees_engine::check_register(&TokioSpawner::multi_thread());
    }

    #[test]
    fn register_outside_a_runtime_is_an_error() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        assert!(TokioSpawner::new().register(ours.into()).is_err());
    }
}
