//! Room in a mailbox, for any number of senders at once.
//!
//! Every attempt at sending is one non-blocking `sendmsg`. The first is
//! made on the spot. One that finds the mailbox full records its task's
//! waker among the [`Waiters`] of the mailbox's [`Room`], and the room
//! waits for its socket to be writable with a waker of its own, which
//! wakes every task recorded, each to make its next attempt: a reactor
//! keeps one waker per direction of a source (the last), so the tasks
//! could not each wait for the socket themselves.
//!
//! Nothing is held for a future that is not being polled: its waker is
//! woken, and forgotten, with the others, and a future dropped takes its
//! waker out. A task's sends stay in its order, since it makes one at a
//! time.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use crate::{Interest, IoSource};

/// The sending end of one mailbox in this process, and the tasks waiting
/// for room in it.
pub(crate) struct Room {
    /// The socket, for attempts made on the spot.
    tx: Arc<OwnedFd>,
    /// The same socket registered with the runtime's reactor, to wait on.
    source: Box<dyn IoSource>,
    waiters: Arc<Waiters>,
    /// Wakes every waiter: what the reactor is given.
    wake_all: Waker,
}

impl Room {
    /// The room of socket `tx`, which `source` (registered) waits on.
    pub(crate) fn new(tx: Arc<OwnedFd>, source: Box<dyn IoSource>) -> Self {
        let waiters = Arc::new(Waiters::default());
        Self {
            tx,
            source,
            wake_all: Waker::from(waiters.clone()),
            waiters,
        }
    }

    /// Makes one attempt, now.
    pub(crate) fn try_now<T>(
        &self,
        attempt: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        attempt(self.tx.as_fd())
    }

    /// Makes attempts until one does not find the mailbox full (fails with
    /// [`io::ErrorKind::WouldBlock`]): its result.
    pub(crate) async fn wait<T>(
        &self,
        mut attempt: impl FnMut(BorrowedFd<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut turn = Turn {
            waiters: &self.waiters,
            id: None,
        };
        std::future::poll_fn(|cx| {
            if turn.id.is_none() {
                match attempt(self.tx.as_fd()) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    done => return Poll::Ready(done),
                }
            }
            // Recorded before the attempt: room made from now on wakes
            // this task.
            turn.record(cx.waker());
            let polled = self.poll_attempt(&mut attempt);
            if polled.is_ready() {
                turn.leave();
            }
            polled
        })
        .await
    }

    /// One attempt through the reactor: `Pending` if it finds no room, with
    /// the reactor holding the waker that wakes every waiter.
    fn poll_attempt<T>(
        &self,
        attempt: &mut impl FnMut(BorrowedFd<'_>) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        let mut done = None;
        let polled = self.source.poll_io(
            &mut Context::from_waker(&self.wake_all),
            Interest::Writable,
            &mut |fd| {
                done = Some(attempt(fd)?);
                Ok(())
            },
        );
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(())) => Poll::Ready(done.ok_or_else(|| {
                io::Error::other("the runtime reported a send done that it did not run")
            })),
        }
    }
}

/// The tasks waiting for room, by the order they first found none.
#[derive(Default)]
struct Waiters {
    next: AtomicU64,
    wakers: Mutex<BTreeMap<u64, Waker>>,
}

impl Waiters {
    /// The wakers; a panic elsewhere while holding them leaves them
    /// consistent (every change is one insert, remove or take), so poison
    /// is ignored. Wakers are never woken nor dropped with them locked:
    /// either can run an executor's code, which may drop a future that
    /// waits here.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, id: u64, waker: &Waker) {
        let replaced = {
            let mut wakers = self.lock();
            match wakers.get(&id) {
                Some(recorded) if recorded.will_wake(waker) => None,
                _ => wakers.insert(id, waker.clone()),
            }
        };
        drop(replaced);
    }

    fn forget(&self, id: u64) {
        let removed = self.lock().remove(&id);
        drop(removed);
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let woken = std::mem::take(&mut *self.lock());
        for waker in woken.into_values() {
            waker.wake();
        }
    }
}

/// One sender's place among the waiters, from its first attempt that found
/// no room until it is done or dropped.
struct Turn<'a> {
    waiters: &'a Waiters,
    id: Option<u64>,
}

impl Turn<'_> {
    fn record(&mut self, waker: &Waker) {
        let waiters = self.waiters;
        let id = *self
            .id
            .get_or_insert_with(|| waiters.next.fetch_add(1, Ordering::Relaxed));
        waiters.record(id, waker);
    }

    fn leave(&mut self) {
        if let Some(id) = self.id.take() {
            self.waiters.forget(id);
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}
