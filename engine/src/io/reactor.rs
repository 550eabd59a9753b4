//! The default reactor behind [`Spawner::register`](crate::Spawner::register),
//! for executors that have none of their own.
//!
//! It is deliberately plain:
//!
//! * **One thread per process**, `supertrees-reactor`, started by the first
//!   registration in the process and living as long as the process.
//! * **Only fds that a task waits on are polled**, level-triggered, with
//!   `poll(2)`. Once an fd is ready for an interest, the waker stored for that
//!   interest is woken and forgotten, so an idle source costs nothing and a
//!   ready one never spins the thread.
//! * **A self-pipe** wakes the thread when a wait is added (or a source that
//!   was waited on is dropped), so its next `poll` sees the change.
//!
//! No wake-up is lost: a task stores its waker after its operation returned
//! `WouldBlock`, and the thread polls level-triggered after it was told of
//! that waker, so readiness that came in between is reported at once.
//!
//! Wakers are never woken nor dropped with the state locked: either can run
//! an executor's code (dropping a task, and with it a source, which locks).
//!
//! **Fork.** The reactor remembers the process that started it. The engine
//! forks only single-threaded processes, so a reactor thread never exists
//! there; but should a process with one fork, its child starts a reactor of
//! its own at its first registration, and a source registered before the
//! fork returns an error from `poll_io` in the child instead of waiting
//! forever on a thread that is not there (and, dropped there, leaves the
//! parent's state alone: its fd stays open in the child).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use super::{Interest, IoSource};

/// The reactor of this process, once one was started (here, or before a
/// fork by the parent: then its `pid` tells).
static CURRENT: Mutex<Option<Arc<Reactor>>> = Mutex::new(None);

/// How long the thread pauses after `poll` itself failed (`ENOMEM`), so a
/// lasting failure is a slow retry loop, not a busy one.
const POLL_FAILED_PAUSE: Duration = Duration::from_millis(10);

/// Registers `fd` with this process's reactor, starting it if need be.
pub(crate) fn register(fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
    let reactor = current()?;
    let id = {
        let mut state = reactor.lock();
        state.next_id += 1;
        state.next_id
    };
    Ok(Box::new(Source {
        reactor,
        id,
        fd: Arc::new(fd),
    }))
}

/// This process's reactor, started on first use.
fn current() -> io::Result<Arc<Reactor>> {
    let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = nix::unistd::getpid();
    if let Some(reactor) = current.as_ref().filter(|r| r.pid == pid) {
        return Ok(Arc::clone(reactor));
    }
    let reactor = Reactor::start(pid)?;
    *current = Some(Arc::clone(&reactor));
    Ok(reactor)
}

/// The state shared by the reactor thread and every source of one process.
struct Reactor {
    /// The process whose thread this is.
    pid: Pid,
    state: Mutex<State>,
    /// The write end of the self-pipe: a byte makes the thread poll anew.
    wake_tx: OwnedFd,
}

#[derive(Default)]
struct State {
    /// The last source id handed out; ids are never reused.
    next_id: u64,
    /// The sources some task waits on.
    waiting: HashMap<u64, Waiting>,
}

/// The tasks waiting on one source.
struct Waiting {
    /// Shared with the source, so that the thread can poll the fd while the
    /// source is dropped: the fd is closed by whichever lets go last.
    fd: Arc<OwnedFd>,
    readable: Option<Waker>,
    writable: Option<Waker>,
}

impl Waiting {
    /// What to poll the fd for.
    fn events(&self) -> PollFlags {
        let mut events = PollFlags::empty();
        if self.readable.is_some() {
            events |= PollFlags::POLLIN;
        }
        if self.writable.is_some() {
            events |= PollFlags::POLLOUT;
        }
        events
    }

    /// Moves the wakers that `revents` answers to `wakers`. An error or a
    /// hang-up answers both: the operations will not block any more.
    fn take_ready(&mut self, revents: PollFlags, wakers: &mut Vec<Waker>) {
        let failed = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
        if revents.intersects(PollFlags::POLLIN | failed) {
            wakers.extend(self.readable.take());
        }
        if revents.intersects(PollFlags::POLLOUT | failed) {
            wakers.extend(self.writable.take());
        }
    }

    fn is_idle(&self) -> bool {
        self.readable.is_none() && self.writable.is_none()
    }
}

impl Reactor {
    /// Makes the self-pipe and starts the thread.
    fn start(pid: Pid) -> io::Result<Arc<Self>> {
        let (wake_rx, wake_tx) = self_pipe()?;
        let reactor = Arc::new(Self {
            pid,
            state: Mutex::new(State::default()),
            wake_tx,
        });
        let thread_reactor = Arc::clone(&reactor);
        std::thread::Builder::new()
            .name("supertrees-reactor".into())
            .spawn(move || thread_reactor.run(&wake_rx))?;
        Ok(reactor)
    }

    /// The state; a panic elsewhere while holding it leaves it consistent
    /// (every change is a single insert, take or remove), so poison is
    /// ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the thread poll anew.
    fn notify(&self) {
        // A full pipe (EAGAIN) already holds a wake-up for the thread; no
        // other error can happen on a pipe whose read end the thread holds.
        let _ = nix::unistd::write(&self.wake_tx, &[1]);
    }

    /// Stores `waker` to be woken when the fd of source `id` is ready for
    /// `interest`.
    fn wait(
        &self,
        id: u64,
        fd: &Arc<OwnedFd>,
        interest: Interest,
        waker: &Waker,
    ) -> io::Result<()> {
        if nix::unistd::getpid() != self.pid {
            return Err(io::Error::other(
                "supertrees: this I/O source was registered before a fork, with the parent's \
                 reactor; register the fd again in this process",
            ));
        }
        let mut state = self.lock();
        let waiting = state.waiting.entry(id).or_insert_with(|| Waiting {
            fd: Arc::clone(fd),
            readable: None,
            writable: None,
        });
        let slot = match interest {
            Interest::Readable => &mut waiting.readable,
            Interest::Writable => &mut waiting.writable,
        };
        // A waker already stored means the fd is polled for this interest
        // (or a wake-up for the thread is on its way): replacing it is
        // enough. A new interest needs the thread to poll anew.
        let added = slot.is_none();
        let replaced = match slot {
            Some(old) if old.will_wake(waker) => None,
            _ => slot.replace(waker.clone()),
        };
        drop(state);
        drop(replaced);
        if added {
            self.notify();
        }
        Ok(())
    }

    /// Removes source `id`, which is being dropped.
    fn forget(&self, id: u64) {
        if nix::unistd::getpid() != self.pid {
            // A source that crossed a fork: the state is the parent's, and
            // its lock may have been held by a thread that the child does not
            // have. Leave it alone; the fd stays open in this child.
            return;
        }
        let removed = self.lock().waiting.remove(&id);
        if removed.is_some() {
            // The thread may be polling the fd: let it go of it, which closes
            // it now that the source is gone.
            self.notify();
        }
        drop(removed);
    }

    /// The thread: poll what is waited on, wake who is ready, forever.
    fn run(&self, wake_rx: &OwnedFd) {
        let mut polled: Vec<(u64, Arc<OwnedFd>, PollFlags)> = Vec::new();
        let mut ready: Vec<(u64, PollFlags)> = Vec::new();
        let mut wakers: Vec<Waker> = Vec::new();
        loop {
            polled.extend(
                self.lock()
                    .waiting
                    .iter()
                    .map(|(&id, waiting)| (id, Arc::clone(&waiting.fd), waiting.events())),
            );
            let mut fds = Vec::with_capacity(polled.len() + 1);
            fds.push(PollFd::new(wake_rx.as_fd(), PollFlags::POLLIN));
            fds.extend(
                polled
                    .iter()
                    .map(|(_, fd, events)| PollFd::new(fd.as_fd(), *events)),
            );
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {
                    ready.extend(
                        fds[1..]
                            .iter()
                            .zip(&polled)
                            .filter_map(|(fd, &(id, _, _))| {
                                fd.revents()
                                    .filter(|revents| !revents.is_empty())
                                    .map(|revents| (id, revents))
                            }),
                    );
                }
                Err(err) => {
                    // Out of memory, most likely: wake everyone, so each task
                    // tries its operation again (and waits anew), and pause.
                    tracing::warn!(%err, "supertrees-reactor: poll failed; waking every waiting task");
                    ready.extend(polled.iter().map(|&(id, _, events)| (id, events)));
                    std::thread::sleep(POLL_FAILED_PAUSE);
                }
            }
            if fds[0].any().unwrap_or(true) {
                drain(wake_rx);
            }
            drop(fds);
            {
                let mut state = self.lock();
                for (id, revents) in ready.drain(..) {
                    if let Some(waiting) = state.waiting.get_mut(&id) {
                        waiting.take_ready(revents, &mut wakers);
                        if waiting.is_idle() {
                            state.waiting.remove(&id);
                        }
                    }
                }
            }
            // Closes the fds of sources dropped while they were polled.
            polled.clear();
            for waker in wakers.drain(..) {
                waker.wake();
            }
        }
    }
}

/// A non-blocking, close-on-exec pipe for the self-pipe: `(read end,
/// write end)`.
fn self_pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
}

/// Empties the (non-blocking) self-pipe.
fn drain(wake_rx: &OwnedFd) {
    let mut buf = [0; 64];
    while let Ok(1..) = nix::unistd::read(wake_rx, &mut buf) {}
}

/// A source of the default reactor.
struct Source {
    reactor: Arc<Reactor>,
    id: u64,
    fd: Arc<OwnedFd>,
}

impl IoSource for Source {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut(std::os::fd::BorrowedFd<'_>) -> io::Result<()>,
    ) -> Poll<io::Result<()>> {
        match op(self.fd.as_fd()) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
        match self.reactor.wait(self.id, &self.fd, interest, cx.waker()) {
            Ok(()) => Poll::Pending,
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.reactor.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::os::fd::AsRawFd;

    use futures::executor::block_on;
    use nix::sys::socket::{recv, send, MsgFlags};

    use super::*;
    use crate::io::check::{pair, recv_from, send_to};

    const DELAY: Duration = Duration::from_millis(50);

    /// An executor without a reactor of its own: it gets the default.
    #[derive(Clone)]
    struct Blocking;

    impl supertrees_core::Spawner for Blocking {
        fn block_on(&self, fut: supertrees_core::BoxFuture) {
            block_on(fut)
        }
        fn spawn(&self, fut: supertrees_core::BoxFuture) {
            std::thread::spawn(move || block_on(fut));
        }
    }

    impl crate::Register for Blocking {}

    #[test]
    fn the_default_passes_the_conformance_check() {
        crate::io::check_register(&Blocking);
    }

    #[test]
    fn ping_pong_loses_no_wake_up() {
        const ROUNDS: u32 = 2000;
        let (a, b) = pair();
        let (a, b) = (
            register(a).expect("register"),
            register(b).expect("register"),
        );
        std::thread::scope(|scope| {
            scope.spawn(|| {
                block_on(async {
                    let mut buf = [0; 4];
                    for round in 0..ROUNDS {
                        recv_from(&*b, &mut buf).await.expect("recv");
                        assert_eq!(u32::from_ne_bytes(buf), round);
                        send_to(&*b, &buf).await.expect("send");
                    }
                });
            });
            block_on(async {
                let mut buf = [0; 4];
                for round in 0..ROUNDS {
                    send_to(&*a, &round.to_ne_bytes()).await.expect("send");
                    recv_from(&*a, &mut buf).await.expect("recv");
                    assert_eq!(u32::from_ne_bytes(buf), round);
                }
            });
        });
    }

    #[test]
    fn many_sources_wait_at_once() {
        const N: usize = 100;
        let (ours, theirs): (Vec<_>, Vec<_>) = (0..N).map(|_| pair()).unzip();
        let sources: Vec<_> = ours
            .into_iter()
            .map(|fd| register(fd).expect("register"))
            .collect();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(DELAY);
            for (i, fd) in theirs.iter().enumerate().rev() {
                send(fd.as_raw_fd(), &i.to_ne_bytes(), MsgFlags::empty()).expect("send");
            }
            theirs
        });
        let received = block_on(futures::future::join_all(sources.iter().map(
            |source| async move {
                let mut buf = [0; 8];
                let len = recv_from(&**source, &mut buf).await.expect("recv");
                assert_eq!(len, 8);
                usize::from_ne_bytes(buf)
            },
        )));
        assert_eq!(received, (0..N).collect::<Vec<_>>());
        drop(writer.join());
    }

    #[test]
    fn dropping_a_source_that_is_waited_on_closes_its_fd() {
        for _ in 0..10 {
            let (ours, theirs) = pair();
            let source = register(ours).expect("register");
            let mut buf = [0; 16];
            let mut fut = Box::pin(recv_from(&*source, &mut buf));
            let waker = futures::task::noop_waker();
            let poll = fut.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(poll.is_pending());
            drop(fut);
            drop(source);
            // The peer sees the hang-up once the reactor let go of the fd.
            let mut fds = [PollFd::new(theirs.as_fd(), PollFlags::POLLIN)];
            let n = nix::poll::poll(&mut fds, PollTimeout::from(5000u16)).expect("poll");
            assert_eq!(n, 1, "the fd was not closed");
            assert_eq!(
                recv(theirs.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT),
                Ok(0)
            );
        }
        // The reactor still works.
        let (ours, theirs) = pair();
        let source = register(ours).expect("register");
        send(theirs.as_raw_fd(), b"x", MsgFlags::empty()).expect("send");
        let mut buf = [0; 4];
        assert_eq!(block_on(recv_from(&*source, &mut buf)).expect("recv"), 1);
    }
}
