//! # supertrees-smol
//!
//! The [smol] backend of supertrees: [`SmolSpawner`] runs each worker host
//! on an [`async_executor::Executor`] driven by [`async_io::block_on`], and
//! [`SmolTimer`] sleeps with [`async_io::Timer`].
//!
//! Use it through the `supertrees` facade with `default-features = false,
//! features = ["smol"]`, which makes `Supertree::start()` run on smol and
//! keeps Tokio out of the build.
//!
//! [smol]: https://docs.rs/smol
//!
//! # Examples
//!
//! ```
//! use supertrees_core::Spawner;
//! use supertrees_smol::SmolSpawner;
//!
//! let spawner = SmolSpawner::new();
//! let (tx, rx) = std::sync::mpsc::channel();
//! spawner.block_on(Box::pin(async move {
//!     SmolSpawner::new().spawn(Box::pin(async move {
//!         let _ = tx.send(42);
//!     }));
//!     // Let the spawned task run before block_on returns.
//!     async_io::Timer::after(std::time::Duration::from_millis(1)).await;
//! }));
//! assert_eq!(rx.recv(), Ok(42));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
#[cfg(target_os = "linux")]
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
#[cfg(target_os = "linux")]
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
#[cfg(target_os = "linux")]
use async_io::Async;
use supertrees_core::tree::Root;
use supertrees_core::{Backend, BoxFuture, Error, Runner, Spawner, Timer, Tree};
#[cfg(target_os = "linux")]
use supertrees_engine::{Interest, IoSource, Register};

thread_local! {
    /// The executor of the `block_on` running on this thread, if any.
    static EXECUTOR: RefCell<Option<Rc<LocalExecutor<'static>>>> = const { RefCell::new(None) };
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs worker hosts on a smol executor.
///
/// Each worker host runs one single-threaded executor, driven by
/// [`async_io::block_on`] so that `async-io` timers and I/O (and everything
/// built on them, like `smol::net`) work inside workers.
///
/// [`spawn`](Spawner::spawn) must be called from inside
/// [`block_on`](Spawner::block_on) (which is where the engine calls it);
/// elsewhere the task is run on a thread of its own.
///
/// # Examples
///
/// ```
/// # mod supertrees {
/// #     pub use supertrees_core::*;
/// #     pub mod smol {
/// #         pub use supertrees_smol::*;
/// #     }
/// # }
/// use std::time::Duration;
/// use supertrees::Spawner;
/// use supertrees::smol::SmolSpawner;
///
/// SmolSpawner::new().block_on(Box::pin(async {
///     async_io::Timer::after(Duration::from_millis(1)).await;
/// }));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct SmolSpawner;

impl SmolSpawner {
    /// The smol spawner.
    pub fn new() -> Self {
        Self
    }
}

impl Spawner for SmolSpawner {
    fn block_on(&self, fut: BoxFuture) {
        let executor = Rc::new(LocalExecutor::new());
        let previous = EXECUTOR.with(|e| e.replace(Some(executor.clone())));
        let was_inside = INSIDE.with(|i| i.replace(true));
        async_io::block_on(executor.run(fut));
        INSIDE.with(|i| i.set(was_inside));
        EXECUTOR.with(|e| *e.borrow_mut() = previous);
    }

    fn spawn(&self, fut: BoxFuture) {
        match EXECUTOR.with(|e| e.borrow().clone()) {
            Some(executor) => executor.spawn(fut).detach(),
            None => {
                std::thread::spawn(move || async_io::block_on(fut));
            }
        }
    }

    fn is_inside_runtime(&self) -> bool {
        INSIDE.with(Cell::get)
    }
}

/// The fd registration of the process engine: the `async-io` reactor.
#[cfg(target_os = "linux")]
impl Register for SmolSpawner {
    /// Registers `fd` with the `async-io` reactor, as an
    /// [`async_io::Async`]. The fd's flags are left as they are.
    ///
    /// The reactor is process-wide: [`block_on`](Spawner::block_on) drives
    /// it, and elsewhere `async-io`'s own thread does, so this works outside
    /// `block_on` too.
    ///
    /// # Errors
    ///
    /// If the reactor refuses the fd: epoll takes no regular files, for one.
    ///
    /// # Examples
    ///
    /// ```
    /// # mod supertrees {
    /// #     pub use supertrees_core::*;
    /// #     pub use supertrees_engine::{Interest, Register};
    /// #     pub mod smol {
    /// #         pub use supertrees_smol::*;
    /// #     }
    /// # }
    /// use std::os::fd::AsRawFd;
    /// use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    /// use supertrees::{Interest, Register, Spawner};
    /// use supertrees::smol::SmolSpawner;
    ///
    /// let (ours, theirs) =
    ///     socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    /// SmolSpawner::new().block_on(Box::pin(async move {
    ///     let source = SmolSpawner::new().register(ours).expect("register");
    ///     SmolSpawner::new().spawn(Box::pin(async move {
    ///         async_io::Timer::after(std::time::Duration::from_millis(10)).await;
    ///         let _ = send(theirs.as_raw_fd(), b"hi", MsgFlags::empty());
    ///     }));
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
        Ok(Box::new(SmolSource(Async::new_nonblocking(fd)?)))
    }
}

/// An fd on the `async-io` reactor: what [`SmolSpawner`]'s
/// [`register`](Register::register) returns.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct SmolSource(Async<OwnedFd>);

#[cfg(target_os = "linux")]
impl IoSource for SmolSource {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
    ) -> Poll<io::Result<()>> {
        loop {
            match op(self.0.get_ref().as_fd()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
            // Registers interest with the reactor, which then reports even
            // readiness that came before (it polls level-triggered, one
            // shot), and is `Ready` once an event came since the last call.
            match interest {
                Interest::Readable => ready!(self.0.poll_readable(cx))?,
                Interest::Writable => ready!(self.0.poll_writable(cx))?,
            }
        }
    }
}

/// The `async-io` clock and timers.
///
/// # Examples
///
/// ```
/// # mod supertrees {
/// #     pub use supertrees_core::*;
/// #     pub mod smol {
/// #         pub use supertrees_smol::*;
/// #     }
/// # }
/// use std::time::Duration;
/// use supertrees::Timer;
/// use supertrees::smol::SmolTimer;
///
/// let timer = SmolTimer::new();
/// let start = timer.now();
/// async_io::block_on(timer.sleep(Duration::from_millis(2)));
/// assert!(timer.now() - start >= Duration::from_millis(2));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct SmolTimer;

impl SmolTimer {
    /// The `async-io` timer.
    pub fn new() -> Self {
        Self
    }
}

impl Timer for SmolTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(async move {
            async_io::Timer::after(duration).await;
        })
    }
}

/// The smol backend as a type: [`SmolSpawner::new()`] and [`SmolTimer`]. A
/// root tree of this backend, `Tree<Root<Smol>>`, has `start()`; it is the
/// `supertrees` facade's `Supertree` with `default-features = false,
/// features = ["smol"]`.
///
/// A type only: it has no values.
///
/// # Examples
///
/// With the `supertrees` facade, which re-exports it as
/// `supertrees::smol::Smol`:
///
/// ```no_run
/// # mod supertrees {
/// #     pub use supertrees_core::{tree, Error, Tree};
/// #     pub mod smol {
/// #         pub use supertrees_smol::Smol;
/// #     }
/// # }
/// use supertrees::smol::Smol;
/// use supertrees::tree::Root;
/// use supertrees::Tree;
///
/// fn main() -> Result<(), supertrees::Error> {
///     Tree::<Root<Smol>>::new().start()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Smol {}

/// Runs a tree of this backend on the process engine (`supertrees-engine`,
/// Linux; elsewhere [`Error::Unsupported`]). A [`SmolSpawner`] registers
/// the tree's sockets with the `async-io` reactor; any other spawner given
/// to `start_with` (which only knows `block_on` and `spawn`) gets the
/// engine's default reactor.
impl Runner for Smol {
    fn run<S: Spawner, T: Timer>(
        tree: Tree<Root<Self>>,
        spawner: S,
        timer: T,
    ) -> Result<(), Error> {
        #[cfg(target_os = "linux")]
        {
            supertrees_engine::run_preferring::<SmolSpawner, _, _, _>(tree, spawner, timer)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (tree, spawner, timer);
            Err(Error::Unsupported)
        }
    }
}

impl Backend for Smol {
    type Spawner = SmolSpawner;
    type Timer = SmolTimer;

    fn spawner() -> SmolSpawner {
        SmolSpawner::new()
    }

    fn timer() -> SmolTimer {
        SmolTimer::new()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn register_passes_the_conformance_check() {
        supertrees_engine::check_register(&SmolSpawner::new());
    }
}
