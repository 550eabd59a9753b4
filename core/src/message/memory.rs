//! Mailboxes in the simulation: bounded in-memory queues, and call
//! timeouts on the time of the [`Timer`] they are given (the simulation's
//! [`FakeTimer`](crate::testing::FakeTimer), virtual time).

use crate::figures::{MailboxCounts, MailboxTally, Tally};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};

use super::{Declared, InboxPort, Kind, Op, Outbox, Received, Replier, Services};
use crate::{Error, Timer};

/// How many messages a simulated mailbox holds before `send` waits: about
/// what a process engine's mailbox holds of small messages.
pub const CAPACITY: usize = 256;

struct Item {
    body: Vec<u8>,
    reply: Option<oneshot::Sender<Vec<u8>>>,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Item>,
    receivers: Vec<Waker>,
    senders: Vec<Waker>,
}

/// One simulated mailbox (or template's request queue).
#[derive(Default)]
pub struct Queue {
    state: Mutex<QueueState>,
    /// What the tree's workers sent to it, for the figures.
    tally: Arc<MailboxTally>,
}

/// Adds `waker` to `wakers` unless it is there already (a task polled
/// again before it was woken).
fn remember(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item` if there is room; otherwise gives it back, having
    /// recorded `waiting` (if any) to be woken when there is room again.
    /// Every waiting sender is woken then, so one that is not polled any
    /// more holds up no other.
    fn push(&self, item: Item, waiting: Option<&Waker>) -> Result<(), Item> {
        let mut state = self.lock();
        if state.items.len() >= CAPACITY {
            if let Some(waker) = waiting {
                remember(&mut state.senders, waker);
            }
            return Err(item);
        }
        state.items.push_back(item);
        let receivers = std::mem::take(&mut state.receivers);
        drop(state);
        for waker in receivers {
            waker.wake();
        }
        Ok(())
    }

    /// The next item, once there is one.
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Received> {
        let mut state = self.lock();
        let Some(item) = state.items.pop_front() else {
            remember(&mut state.receivers, cx.waker());
            return Poll::Pending;
        };
        let senders = std::mem::take(&mut state.senders);
        drop(state);
        for waker in senders {
            waker.wake();
        }
        Poll::Ready(Received {
            body: item.body,
            reply: item
                .reply
                .map(|tx| Box::new(MemoryReplier(tx)) as Box<dyn Replier>),
        })
    }
}

struct MemoryReplier(oneshot::Sender<Vec<u8>>);

impl Replier for MemoryReplier {
    fn reply(self: Box<Self>, body: Vec<u8>) {
        // The caller may have given up.
        let _ = self.0.send(body);
    }
}

/// The simulated mailboxes of a tree, as the workers of one supervisor
/// reach them, whose calls time out on the clock of timer `T`.
#[derive(Clone)]
pub struct MemoryServices<T> {
    endpoints: Arc<Vec<(Declared, Arc<Queue>)>>,
    owner: String,
    timer: T,
}

impl<T: Timer> MemoryServices<T> {
    /// A queue for each of `declared`, on `timer`'s time.
    pub fn new(declared: Vec<Declared>, timer: T) -> Self {
        Self {
            endpoints: Arc::new(
                declared
                    .into_iter()
                    .map(|d| (d, Arc::new(Queue::default())))
                    .collect(),
            ),
            owner: String::new(),
            timer,
        }
    }

    /// The same mailboxes, for the workers of supervisor `owner`.
    pub fn for_owner(&self, owner: &str) -> Arc<dyn Services> {
        Arc::new(Self {
            owner: owner.to_owned(),
            ..self.clone()
        })
    }

    /// The request queues of the templates supervisor `owner` declared,
    /// with their names.
    pub fn templates_of(&self, owner: &str) -> Vec<(Declared, Arc<Queue>)> {
        self.endpoints
            .iter()
            .filter(|(d, _)| d.kind == Kind::Template && d.owner == owner)
            .cloned()
            .collect()
    }

    /// The traffic of each mailbox so far, by name.
    pub fn mailbox_counts(&self) -> Vec<(&str, MailboxCounts)> {
        self.endpoints
            .iter()
            .filter(|(d, _)| d.kind == Kind::Mailbox)
            .map(|(d, queue)| (d.name.as_str(), queue.tally.counts()))
            .collect()
    }

    fn find(&self, name: &str, kind: Kind) -> Result<&(Declared, Arc<Queue>), Error> {
        self.endpoints
            .iter()
            .find(|(d, _)| d.name == name && d.kind == kind)
            .ok_or_else(|| Error::UnknownName {
                name: name.to_owned(),
                kind: kind.noun(),
            })
    }
}

impl<T: Timer> Services for MemoryServices<T> {
    fn outbox(&self, name: &str, kind: Kind) -> Result<Arc<dyn Outbox>, Error> {
        let (_, queue) = self.find(name, kind)?;
        Ok(Arc::new(MemoryOutbox {
            name: name.into(),
            queue: queue.clone(),
            timer: self.timer.clone(),
        }))
    }

    fn inbox(&self, name: &str) -> Result<Box<dyn InboxPort>, Error> {
        let (declared, queue) = self.find(name, Kind::Mailbox)?;
        if declared.owner != self.owner {
            return Err(Error::NotOwner {
                name: name.to_owned(),
                owner: declared.owner.clone(),
            });
        }
        Ok(Box::new(MemoryInbox(queue.clone())))
    }

    fn argument_type(&self, name: &str) -> Result<&'static str, Error> {
        Ok(self.find(name, Kind::Template)?.0.argument)
    }

    fn tally(&self, name: &str) -> Tally {
        match self.find(name, Kind::Mailbox) {
            Ok((_, queue)) => Tally::new(queue.tally.clone()),
            Err(_) => Tally::default(),
        }
    }
}

struct MemoryOutbox<T> {
    name: Arc<str>,
    queue: Arc<Queue>,
    timer: T,
}

impl<T> MemoryOutbox<T> {
    /// Queues `item` once there is room.
    async fn push(&self, item: Item) {
        let mut item = Some(item);
        std::future::poll_fn(|cx| match item.take() {
            Some(taken) => match self.queue.push(taken, Some(cx.waker())) {
                Ok(()) => Poll::Ready(()),
                Err(back) => {
                    item = Some(back);
                    Poll::Pending
                }
            },
            None => Poll::Ready(()),
        })
        .await;
    }

    /// Queues the call `body`, and waits for its reply.
    async fn ask(&self, body: Vec<u8>) -> Result<Vec<u8>, Error> {
        let (tx, rx) = oneshot::channel();
        self.push(Item {
            body,
            reply: Some(tx),
        })
        .await;
        rx.await.map_err(|_| Error::NoReply {
            name: self.name.to_string(),
        })
    }
}

impl<T: Timer> Outbox for MemoryOutbox<T> {
    fn send(self: Arc<Self>, body: Vec<u8>) -> Op<Result<(), Error>> {
        Box::pin(async move {
            self.push(Item { body, reply: None }).await;
            Ok(())
        })
    }

    fn try_send(&self, body: &[u8]) -> Result<(), Error> {
        let item = Item {
            body: body.to_vec(),
            reply: None,
        };
        self.queue.push(item, None).map_err(|_| Error::MailboxFull {
            name: self.name.to_string(),
        })
    }

    fn call(self: Arc<Self>, body: Vec<u8>, timeout: Duration) -> Op<Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let asked = std::pin::pin!(self.ask(body));
            match select(asked, self.timer.sleep(timeout)).await {
                Either::Left((reply, _)) => reply,
                Either::Right(((), _)) => Err(Error::Timeout {
                    name: self.name.to_string(),
                    after: timeout,
                }),
            }
        })
    }
}

struct MemoryInbox(Arc<Queue>);

impl InboxPort for MemoryInbox {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        self.0.poll_take(cx).map(Some)
    }
}
