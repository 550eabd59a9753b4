//! What a worker's messages go through, whichever engine carries them: the
//! sending and serving sides of named endpoints ([`Outbox`],
//! [`InboxPort`]), replies ([`Replier`]), and the [`Services`] that hand
//! them out, implemented by the process engine's sockets and the
//! simulation's queues. Below both [`crate::message`], the API built on
//! them, and [`crate::ready`](mod@crate::ready), whose run context carries a run's services.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::figures::Tally;
use crate::Error;

/// The largest message (and reply) in bytes, once encoded, with the name
/// of its type: 64 KiB. A larger one is refused by [`Mailbox::send`](crate::Mailbox::send),
/// [`Mailbox::try_send`](crate::Mailbox::try_send) and [`Mailbox::call`](crate::Mailbox::call) with
/// [`Error::MessageTooLarge`](crate::Error::MessageTooLarge); a larger reply is dropped and logged (its
/// caller gets [`Error::NoReply`](crate::Error::NoReply)).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// A boxed, sendable future with an output.
pub type Op<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The sending side of one named endpoint: a mailbox, or the requests of a
/// dynamic-children template.
///
/// A future of `send` or `call` that is dropped, or kept without being
/// polled, holds up no other sender.
pub trait Outbox: Send + Sync {
    /// Queues `body`, waiting while the endpoint is full.
    fn send(self: Arc<Self>, body: Vec<u8>) -> Op<Result<(), Error>>;
    /// Queues `body` if the endpoint has room now, else
    /// [`Error::MailboxFull`].
    fn try_send(&self, body: &[u8]) -> Result<(), Error>;
    /// Queues `body` with a way to reply, and waits for the reply: the
    /// whole call, waiting for room included, at most `timeout`.
    fn call(self: Arc<Self>, body: Vec<u8>, timeout: Duration) -> Op<Result<Vec<u8>, Error>>;
}

/// The serving side of a mailbox.
pub trait InboxPort: Send {
    /// The next message, once there is one; `None` once the mailbox is gone.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received>>;
}

/// A message taken from a mailbox, with its reply path if it is a call.
pub struct Received {
    pub body: Vec<u8>,
    pub reply: Option<Box<dyn Replier>>,
}

/// Where the reply to one call goes.
pub trait Replier: Send {
    /// Sends the reply; the caller may be gone.
    fn reply(self: Box<Self>, body: Vec<u8>);
}

/// What a worker's messages go through: the process engine's sockets, or
/// the simulation's queues.
pub trait Services: Send + Sync {
    /// The sending side of `name`, which must be declared as `kind`.
    fn outbox(&self, name: &str, kind: Kind) -> Result<Arc<dyn Outbox>, Error>;
    /// The serving side of mailbox `name`, for a worker of its supervisor.
    fn inbox(&self, name: &str) -> Result<Box<dyn InboxPort>, Error>;
    /// The type of the argument of template `name`.
    fn argument_type(&self, name: &str) -> Result<&'static str, Error>;
    /// Where this process counts its traffic to mailbox `name`: nowhere
    /// unless the tree keeps its figures.
    fn tally(&self, name: &str) -> Tally {
        let _ = name;
        Tally::default()
    }
}

/// What a name was declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mailbox,
    Template,
}

impl Kind {
    /// What it is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Mailbox => "mailbox",
            Kind::Template => "dynamic-children template",
        }
    }
}
