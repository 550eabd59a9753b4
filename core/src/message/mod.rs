//! Messages between the workers of a tree, across processes: named
//! mailboxes ([`mailbox()`], [`inbox()`]) and children started at run time
//! ([`start_child()`], [`terminate_child()`]).
//!
//! # Mailboxes
//!
//! A supervisor declares a mailbox by name
//! ([`with_mailbox`](crate::Tree::with_mailbox)). The mailbox belongs to
//! that supervisor, not to the worker that serves it: it is made before
//! anything of the tree is forked, its supervisor's processes hold its
//! receiving end, and what waits in it outlives every restart of the worker
//! that serves it, in place or in a new worker host. Every process that
//! sends holds only a sending end of its own user's (see below): a subtree
//! that runs as another user can send and call, and can read, redirect or
//! shut down nothing of another subtree's. A worker of that supervisor serves it
//! through an [`Inbox`]; any worker anywhere in the tree sends to it
//! through a [`Mailbox`], which stays valid across those restarts.
//!
//! * [`Mailbox::send`] is a *cast*: it returns once the message is queued,
//!   waiting while the mailbox is full; [`Mailbox::try_send`] never waits
//!   ([`Error::MailboxFull`] instead).
//! * [`Mailbox::call`] waits for the server's [`Envelope::reply`], at most
//!   its timeout.
//!
//! Delivery is the one Erlang/OTP gives between processes:
//!
//! * **FIFO per sender**: messages one task sends arrive in that order.
//! * **Bounded**: a mailbox holds what its kernel socket buffer holds (a
//!   few hundred small messages: 278 of 4 bytes on Linux's default buffer;
//!   see [`MAX_MESSAGE`] for the largest message), and 256 in simulation. A
//!   full mailbox makes `send` and `call` wait, and `try_send` fail;
//!   nothing grows without bound.
//! * **At most once, never twice**: a message waiting in the mailbox when
//!   its server restarts is delivered to the next run; a message already
//!   handed to a run that dies is lost, and its `call` fails at once with
//!   [`Error::NoReply`] (never later than its timeout).
//!
//! Every wait is bounded:
//!
//! * A call's timeout bounds the **whole** call, waiting for room in a full
//!   mailbox included (a message still waiting for room then is not sent).
//! * A `send` or `call` future that is dropped, or kept without being
//!   polled, holds up no other sender: each attempt at sending is one
//!   non-blocking send, and a sender that finds no room only leaves a way to
//!   wake it, which room wakes (with every other) and forgets.
//! * A call costs no file descriptor while it waits for room: its reply
//!   socket is made by the attempt that sends it.
//! * [`start_child()`] and [`terminate_child()`] answer within 5 s;
//!   [`Error::NoReply`] when the supervisor is gone for good or does not
//!   answer.
//!
//! In the process engine a mailbox is a Unix datagram socket pair made by
//! the root: nothing of it is on a file system, and only processes of the
//! tree hold it. A call passes the server a socket of its own for the
//! reply, so replies take the direct path too, and a server that dies
//! closes it, which ends the call. Any other descriptor a peer sends along
//! with a message (more of them, or a control message cut short) is closed
//! and the message dropped and logged. In
//! [`run_simulated`](crate::testing::run_simulated) the same API runs on
//! in-memory queues and virtual time, with the same guarantees.
//!
//! Messages are encoded with [`serde`] and `postcard`, with the name of
//! their type ([`std::any::type_name`](std::any::type_name()) of the
//! sender's `M`): `M` is any type both sides agree on, and types are
//! checked. A message, reply or [`start_child()`] argument of another type
//! than the receiving side's is never decoded: it is dropped and logged,
//! and its caller gets [`Error::WrongType`] (a call whose message the
//! server's [`Inbox`] does not take, at once; a call whose reply is not its
//! `R`). A body is decoded to its last byte: one with bytes left over is
//! malformed, dropped and logged (its caller gets [`Error::NoReply`]).
//! Types are told apart by that name: two types of one name (a crate in
//! two versions in one program, or two types of the same name declared in
//! function bodies) are not, so keep the types of one mailbox distinct by
//! name.
//!
//! # Children started at run time
//!
//! A supervisor declares a template by name
//! ([`add_dynamic`](crate::Tree::add_dynamic)); [`start_child()`] asks that
//! supervisor (wherever the caller runs) to build a worker from the
//! template and an argument, and [`terminate_child()`] stops and removes
//! one, as OTP's `DynamicSupervisor` does. See [`add_dynamic`](crate::Tree::add_dynamic)
//! for their policies.
//!
//! # Examples
//!
//! A key-value server in one supervisor, a client in another, tested in
//! the deterministic simulation:
//!
//! ```
//! # extern crate supertrees_core as supertrees;
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use supertrees::testing::{run_simulated, FakeTimer};
//! use supertrees::{RestartPolicy, Restartable, Supertree, Worker};
//!
//! #[derive(Serialize, Deserialize)]
//! enum Kv { Put(String, u64), Get(String) }
//!
//! struct KvServer;
//! impl Worker for KvServer {
//!     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
//!         Box::pin(async {
//!             let mut inbox = supertrees::inbox::<Kv>("kv").expect("kv is ours");
//!             let mut map = std::collections::HashMap::new();
//!             while let Some(envelope) = inbox.recv().await {
//!                 // By reference: the envelope is still needed to reply.
//!                 match envelope.message() {
//!                     Kv::Put(k, v) => { map.insert(k.clone(), *v); }
//!                     Kv::Get(k) => {
//!                         let v = map.get(k).copied();
//!                         envelope.reply(v);
//!                     }
//!                 }
//!             }
//!         })
//!     }
//! }
//! impl Restartable for KvServer {}
//!
//! struct Client;
//! impl Worker for Client {
//!     fn init(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
//!         Box::pin(async {
//!             let kv = supertrees::mailbox::<Kv>("kv").expect("kv is declared");
//!             kv.send(Kv::Put("apples".into(), 2)).await.expect("queued");
//!             let v: Option<u64> = kv.call(Kv::Get("apples".into()), Duration::from_secs(1))
//!                 .await
//!                 .expect("answered");
//!             assert_eq!(v, Some(2));
//!         })
//!     }
//! }
//! impl Restartable for Client {
//!     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
//! }
//!
//! let tree = Supertree::new()
//!     .add_supervisor(|s| s.with_mailbox("kv").add_worker(KvServer)
//!         .with_restart_policy(RestartPolicy::Never))
//!     .add_worker(Client);
//! # let _ = tree;
//! ```

#[doc(hidden)]
pub use crate::codec;
mod declared;
#[doc(hidden)]
pub mod dynamic;
#[doc(hidden)]
pub mod memory;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use codec::Undecoded;

use crate::figures::Tally;

#[doc(hidden)]
pub use declared::Declared;
#[doc(hidden)]
pub use memory::MemoryServices;

use crate::port::{InboxPort, Kind, Op, Outbox, Received, Replier, Services};
use crate::{ChildId, Error};

pub use crate::port::MAX_MESSAGE;

/// How long [`start_child()`] and [`terminate_child()`] wait for the
/// supervisor's answer, waiting for room to ask included.
#[doc(hidden)]
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The services of this process, set by a worker host before it runs any
/// worker: what [`mailbox()`] and friends use outside a worker's own run
/// (in a thread or a runtime task a worker started).
static PROCESS: OnceLock<Arc<dyn Services>> = OnceLock::new();

/// Makes `services` this process's (in a worker host, once).
#[doc(hidden)]
pub fn install(services: Arc<dyn Services>) {
    let _ = PROCESS.set(services);
}

/// The services of the calling worker: its run's, else its process's;
/// outside a worker of a running tree, [`Error::NotInTree`] naming
/// `function`, the public function called.
fn services(function: &'static str) -> Result<Arc<dyn Services>, Error> {
    crate::ready::current_services()
        .or_else(|| PROCESS.get().cloned())
        .ok_or(Error::NotInTree { function })
}

/// The sending side of the mailbox `name`, from any worker of the tree, in
/// any process.
///
/// The handle is cheap to clone and stays valid across every restart of
/// the worker that serves the mailbox.
///
/// Outside a worker's run, in a thread or task a worker started in its own
/// process, it works as in the run; anywhere else (no tree, the root's own
/// threads, a simulated tree outside its runs) it fails with
/// [`Error::NotInTree`] naming `mailbox`.
///
/// # Errors
///
/// [`Error::UnknownName`] if no supervisor of the tree declared a mailbox
/// `name` (with [`with_mailbox`](crate::Tree::with_mailbox)),
/// [`Error::NotInTree`] outside a worker of a running tree (see above),
/// [`Error::Os`] if the process is out of file descriptors.
///
/// # Examples
///
/// From any worker of the tree, in any process:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// # use supertrees::testing::{run_simulated, FakeTimer};
/// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
/// # // A worker made of a function; DONE counts the runs that returned.
/// # static DONE: AtomicUsize = AtomicUsize::new(0);
/// # struct Run(fn() -> BoxFuture);
/// # impl Worker for Run {
/// #     fn init(&self) -> BoxFuture {
/// #         let run = (self.0)();
/// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
/// #     }
/// # }
/// # impl Restartable for Run {
/// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
/// # }
/// use supertrees::Error;
///
/// async fn greet() -> Result<(), Error> {
///     let log = supertrees::mailbox::<String>("log")?;
///     log.send("hello".to_owned()).await
/// }
/// # let tree = Supertree::new()
/// #     .add_supervisor(|s| s.with_mailbox("log").add_worker(Run(|| Box::pin(async {
/// #         let mut inbox = supertrees::inbox::<String>("log").unwrap();
/// #         assert_eq!(inbox.recv().await.unwrap().message(), "hello");
/// #     }))))
/// #     .add_worker(Run(|| Box::pin(async { greet().await.unwrap() })));
/// # run_simulated(tree, FakeTimer::new())?;
/// # assert_eq!(DONE.load(SeqCst), 2);
/// # Ok::<(), supertrees::Error>(())
/// ```
///
/// Outside a worker of a running tree it fails, naming itself:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// let err = supertrees::mailbox::<String>("log").unwrap_err();
/// assert!(matches!(err, supertrees::Error::NotInTree { function: "mailbox", .. }));
/// ```
pub fn mailbox<M: Serialize>(name: &str) -> Result<Mailbox<M>, Error> {
    let services = services("mailbox")?;
    let outbox = services.outbox(name, Kind::Mailbox)?;
    Ok(Mailbox {
        name: name.into(),
        outbox,
        tally: services.tally(name),
        message: PhantomData,
    })
}

/// The serving side of the mailbox `name`, for a worker of the supervisor
/// that declared it.
///
/// Take it in each run of the serving worker (its `init` future): the
/// messages not yet received by a run that ended are there for the next.
/// Several inboxes of one mailbox share its messages, each message going to
/// one of them.
///
/// Outside a worker's run, in a thread or task a worker started in its own
/// process, it works as in the run; anywhere else (no tree, the root's own
/// threads, a simulated tree outside its runs) it fails with
/// [`Error::NotInTree`] naming `inbox`.
///
/// # Errors
///
/// [`Error::UnknownName`] if no supervisor declared a mailbox `name`,
/// [`Error::NotOwner`] if the calling worker's supervisor is not the one
/// that declared it, [`Error::NotInTree`] outside a worker of a running
/// tree (see above).
///
/// # Examples
///
/// In a worker of the supervisor that declared the mailbox
/// (`.with_mailbox("log")`):
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// # use supertrees::testing::{run_simulated, FakeTimer};
/// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
/// # // A worker made of a function; DONE counts the runs that returned.
/// # static DONE: AtomicUsize = AtomicUsize::new(0);
/// # struct Run(fn() -> BoxFuture);
/// # impl Worker for Run {
/// #     fn init(&self) -> BoxFuture {
/// #         let run = (self.0)();
/// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
/// #     }
/// # }
/// # impl Restartable for Run {
/// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
/// # }
/// use supertrees::Error;
///
/// async fn serve() -> Result<(), Error> {
///     let mut inbox = supertrees::inbox::<String>("log")?;
///     while let Some(envelope) = inbox.recv().await {
///         println!("log: {}", envelope.message());
///     }
///     Ok(())
/// }
/// # let tree = Supertree::new()
/// #     .add_supervisor(|s| s.with_mailbox("log").add_worker(Run(|| Box::pin(async {
/// #         serve().await.unwrap()
/// #     }))))
/// #     .add_worker(Run(|| Box::pin(async {
/// #         supertrees::mailbox::<String>("log").unwrap().send("hello".into()).await.unwrap()
/// #     })));
/// # // The server waits for more: the simulation stalls once the rest is done.
/// # let ended = run_simulated(tree, FakeTimer::new());
/// # assert!(matches!(ended, Err(supertrees::Error::Stalled)), "{ended:?}");
/// # assert_eq!(DONE.load(SeqCst), 1);
/// # Ok::<(), supertrees::Error>(())
/// ```
///
/// Outside a worker of a running tree it fails, naming itself:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// let err = supertrees::inbox::<String>("log").unwrap_err();
/// assert!(matches!(err, supertrees::Error::NotInTree { function: "inbox", .. }));
/// ```
pub fn inbox<M: DeserializeOwned + Send + 'static>(name: &str) -> Result<Inbox<M>, Error> {
    let port = services("inbox")?.inbox(name)?;
    Ok(Inbox {
        name: name.into(),
        port,
        message: PhantomData,
    })
}

/// A handle on a named mailbox, for sending it messages of type `M`. Made
/// by [`mailbox()`].
///
/// # Examples
///
/// See [the module](crate::message) for a server and a client.
pub struct Mailbox<M> {
    name: Arc<str>,
    outbox: Arc<dyn Outbox>,
    /// Where its casts and calls are counted (the tree's figures).
    tally: Tally,
    message: PhantomData<fn(M)>,
}

/// The engine's seam (its tests), not part of the API.
#[doc(hidden)]
impl<M> Mailbox<M> {
    /// The mailbox `name` that sends through `outbox`.
    pub fn from_outbox(name: &str, outbox: Arc<dyn Outbox>) -> Self {
        Mailbox {
            name: name.into(),
            outbox,
            tally: Tally::default(),
            message: PhantomData,
        }
    }

    /// This mailbox, as one of messages of type `N`.
    pub fn retyped<N>(&self) -> Mailbox<N> {
        Mailbox {
            name: self.name.clone(),
            outbox: self.outbox.clone(),
            tally: self.tally.clone(),
            message: PhantomData,
        }
    }
}

impl<M> Clone for Mailbox<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            outbox: self.outbox.clone(),
            tally: self.tally.clone(),
            message: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Mailbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox").field("name", &self.name).finish()
    }
}

impl<M: Serialize> Mailbox<M> {
    /// The name of the mailbox.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// async fn check() -> Result<(), supertrees::Error> {
    ///     let log = supertrees::mailbox::<String>("log")?;
    ///     assert_eq!(log.name(), "log");
    ///     Ok(())
    /// }
    /// # let tree = Supertree::new()
    /// #     .with_mailbox("log")
    /// #     .add_worker(Run(|| Box::pin(async { check().await.unwrap() })));
    /// # run_simulated(tree, FakeTimer::new())?;
    /// # assert_eq!(DONE.load(SeqCst), 1);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `msg` (a cast): resolves once it is queued in the mailbox,
    /// waiting while the mailbox is full (that is its backpressure; see
    /// [`try_send`](Self::try_send) for a send that does not wait).
    ///
    /// The message is encoded at once; the future holds only its bytes.
    /// Dropped before it resolved, it sent nothing; dropped or kept
    /// unpolled, it holds up no other sender.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] over [`MAX_MESSAGE`],
    /// [`Error::Encoding`] if `msg` can not be encoded, [`Error::Os`] if
    /// the socket fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use supertrees::{Error, Mailbox};
    ///
    /// async fn announce(log: &Mailbox<String>) -> Result<(), Error> {
    ///     log.send("starting".to_owned()).await?; // waits while "log" is full
    ///     log.send("started".to_owned()).await
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("log").add_worker(Run(|| Box::pin(async {
    /// #         let mut inbox = supertrees::inbox::<String>("log").unwrap();
    /// #         assert_eq!(inbox.recv().await.unwrap().message(), "starting");
    /// #         assert_eq!(inbox.recv().await.unwrap().message(), "started");
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async {
    /// #         let log = supertrees::mailbox::<String>("log").unwrap();
    /// #         announce(&log).await.unwrap()
    /// #     })));
    /// # run_simulated(tree, FakeTimer::new())?;
    /// # assert_eq!(DONE.load(SeqCst), 2);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn send(&self, msg: M) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let queued = codec::encode(&self.name, &msg).map(|body| self.outbox.clone().send(body));
        let tally = self.tally.clone();
        async move {
            let sent = match queued {
                Ok(sending) => sending.await,
                Err(err) => Err(err),
            };
            tally.sent(&sent);
            sent
        }
    }

    /// Sends `msg` (a cast) if the mailbox has room now; never waits.
    ///
    /// # Errors
    ///
    /// [`Error::MailboxFull`] at once when the mailbox has no room (the
    /// message was not sent), and those of [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// A log line is dropped rather than wait for a logger that falls
    /// behind:
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use supertrees::{Error, Mailbox};
    ///
    /// fn log(logger: &Mailbox<String>, line: String) -> Result<(), Error> {
    ///     match logger.try_send(line) {
    ///         Err(Error::MailboxFull { .. }) => Ok(()),
    ///         other => other,
    ///     }
    /// }
    /// # // Nobody serves "log" here: it fills up (256 messages in the simulation).
    /// # let tree = Supertree::new().with_mailbox("log").add_worker(Run(|| Box::pin(async {
    /// #     let logger = supertrees::mailbox::<String>("log").unwrap();
    /// #     for n in 0..300 {
    /// #         log(&logger, format!("line {n}")).unwrap();
    /// #     }
    /// #     assert!(matches!(logger.try_send("one more".into()), Err(Error::MailboxFull { .. })));
    /// # })));
    /// # run_simulated(tree, FakeTimer::new())?;
    /// # assert_eq!(DONE.load(SeqCst), 1);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn try_send(&self, msg: M) -> Result<(), Error> {
        let body = codec::encode(&self.name, &msg)?;
        let sent = self.outbox.try_send(&body);
        self.tally.sent(&sent);
        sent
    }

    /// Sends `msg` and waits for the server's reply, decoded as `R`: the
    /// whole call, waiting for room in a full mailbox included, takes at
    /// most `timeout`.
    ///
    /// The call costs no file descriptor while it waits for room (its
    /// reply socket is made when its message is sent), and dropped or kept
    /// unpolled, its future holds up no other sender.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no reply came within `timeout` (a message
    /// still waiting for room then is not sent; a reply that comes later
    /// is dropped); [`Error::NoReply`] when the server dropped the message
    /// without replying, found it malformed, or died with it;
    /// [`Error::WrongType`] when the server's [`Inbox`] takes another type
    /// than `M` (it refused the message without decoding it) or the reply
    /// is not an `R`; [`Error::Encoding`] if the reply is malformed; and
    /// those of [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use std::time::Duration;
    /// use supertrees::Error;
    ///
    /// async fn shout(text: &str) -> Result<String, Error> {
    ///     let upper = supertrees::mailbox::<String>("upper")?;
    ///     // The server answers with `envelope.reply(...)`.
    ///     upper.call(text.to_owned(), Duration::from_secs(1)).await
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("upper").add_worker(Run(|| Box::pin(async {
    /// #         let mut inbox = supertrees::inbox::<String>("upper").unwrap();
    /// #         let envelope = inbox.recv().await.unwrap();
    /// #         let upper = envelope.message().to_uppercase();
    /// #         envelope.reply(upper);
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async {
    /// #         assert_eq!(shout("hello").await.unwrap(), "HELLO");
    /// #     })));
    /// # run_simulated(tree, FakeTimer::new())?;
    /// # assert_eq!(DONE.load(SeqCst), 2);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn call<R: DeserializeOwned>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> impl Future<Output = Result<R, Error>> + Send + 'static {
        let name = self.name.clone();
        let asked =
            codec::encode(&self.name, &msg).map(|body| self.outbox.clone().call(body, timeout));
        let tally = self.tally.clone();
        async move {
            let replied = match asked {
                Ok(asking) => asking
                    .await
                    .and_then(|reply| codec::decode_reply::<M, R>(&name, &reply)),
                Err(err) => Err(err),
            };
            tally.called(&replied);
            replied
        }
    }
}

/// The serving side of a named mailbox, receiving messages of type `M`.
/// Made by [`inbox()`].
pub struct Inbox<M> {
    name: Arc<str>,
    port: Box<dyn InboxPort>,
    message: PhantomData<fn() -> M>,
}

/// The engine's seam (its tests), not part of the API.
#[doc(hidden)]
impl<M> Inbox<M> {
    /// The inbox of mailbox `name` that reads from `port`.
    pub fn from_port(name: &str, port: Box<dyn InboxPort>) -> Self {
        Inbox {
            name: name.into(),
            port,
            message: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Inbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox").field("name", &self.name).finish()
    }
}

impl<M: DeserializeOwned + Send + 'static> Inbox<M> {
    /// The name of the mailbox.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// async fn check() -> Result<(), supertrees::Error> {
    ///     let inbox = supertrees::inbox::<String>("log")?;
    ///     assert_eq!(inbox.name(), "log");
    ///     Ok(())
    /// }
    /// # let tree = Supertree::new()
    /// #     .with_mailbox("log")
    /// #     .add_worker(Run(|| Box::pin(async { check().await.unwrap() })));
    /// # run_simulated(tree, FakeTimer::new())?;
    /// # assert_eq!(DONE.load(SeqCst), 1);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next message, once one arrives. A message of another type than
    /// `M` is not decoded: it is dropped and logged, and its caller gets
    /// [`Error::WrongType`]. A malformed one (not what its type encodes to,
    /// to the last byte) is dropped and logged, and its caller gets
    /// [`Error::NoReply`]. `None` only once the mailbox itself is gone (the
    /// tree is ending).
    ///
    /// # Examples
    ///
    /// A server that answers calls with their text in upper case:
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use supertrees::Error;
    ///
    /// async fn serve() -> Result<(), Error> {
    ///     let mut inbox = supertrees::inbox::<String>("upper")?;
    ///     while let Some(envelope) = inbox.recv().await {
    ///         let upper = envelope.message().to_uppercase();
    ///         envelope.reply(upper);
    ///     }
    ///     Ok(()) // the tree is ending
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("upper").add_worker(Run(|| Box::pin(async {
    /// #         serve().await.unwrap()
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async {
    /// #         let upper = supertrees::mailbox::<String>("upper").unwrap();
    /// #         let reply: String = upper.call("hi".into(), std::time::Duration::from_secs(1)).await.unwrap();
    /// #         assert_eq!(reply, "HI");
    /// #     })));
    /// # // The server waits for more: the simulation stalls once the rest is done.
    /// # let ended = run_simulated(tree, FakeTimer::new());
    /// # assert!(matches!(ended, Err(supertrees::Error::Stalled)), "{ended:?}");
    /// # assert_eq!(DONE.load(SeqCst), 1);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn recv(&mut self) -> impl Future<Output = Option<Envelope<M>>> + Send + '_ {
        std::future::poll_fn(move |cx| self.poll_recv(cx))
    }

    /// The next message, polled by hand (what [`recv`](Self::recv) does).
    ///
    /// # Examples
    ///
    /// An inbox as a [`Stream`](futures::Stream) of its messages:
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll};
    /// use futures::{Stream, StreamExt};
    /// use supertrees::{Envelope, Inbox};
    ///
    /// struct Lines(Inbox<String>);
    ///
    /// impl Stream for Lines {
    ///     type Item = String;
    ///
    ///     fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
    ///         self.0.poll_recv(cx).map(|next| next.map(Envelope::into_message))
    ///     }
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("log").add_worker(Run(|| Box::pin(async {
    /// #         let lines = Lines(supertrees::inbox::<String>("log").unwrap());
    /// #         let first: Vec<String> = lines.take(2).collect().await;
    /// #         assert_eq!(first, ["a", "b"]);
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async {
    /// #         let log = supertrees::mailbox::<String>("log").unwrap();
    /// #         log.send("a".into()).await.unwrap();
    /// #         log.send("b".into()).await.unwrap();
    /// #     })));
    /// # run_simulated(tree, FakeTimer::new())?;
    /// # assert_eq!(DONE.load(SeqCst), 2);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope<M>>> {
        loop {
            let Some(received) = std::task::ready!(self.port.poll_recv(cx)) else {
                return Poll::Ready(None);
            };
            match codec::decode::<M>(&received.body) {
                Ok(message) => {
                    return Poll::Ready(Some(Envelope {
                        message,
                        reply: received.reply,
                        name: self.name.clone(),
                    }))
                }
                Err(Undecoded::WrongType(found)) => {
                    let expected = std::any::type_name::<M>();
                    tracing::warn!(mailbox = %self.name, expected, found, is_call = received.reply.is_some(),
                        "a message of another type than this inbox's was dropped");
                    if let Some(replier) = received.reply {
                        replier.reply(codec::encode_refusal(expected));
                    }
                }
                Err(Undecoded::Malformed(reason)) => {
                    tracing::warn!(mailbox = %self.name, reason, bytes = received.body.len(),
                        "a malformed message was dropped");
                }
            }
        }
    }
}

/// One message taken from a mailbox, and the way to answer it if it came
/// from [`Mailbox::call`].
pub struct Envelope<M> {
    message: M,
    reply: Option<Box<dyn Replier>>,
    name: Arc<str>,
}

impl<M: fmt::Debug> fmt::Debug for Envelope<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("message", &self.message)
            .field("is_call", &self.is_call())
            .finish()
    }
}

impl<M> Envelope<M> {
    /// The message.
    ///
    /// # Examples
    ///
    /// A counter: casts add, calls ask for the total.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use serde::{Deserialize, Serialize};
    /// use supertrees::Error;
    ///
    /// #[derive(Serialize, Deserialize)]
    /// enum Counter {
    ///     Add(u64),
    ///     Total,
    /// }
    ///
    /// async fn serve() -> Result<(), Error> {
    ///     let mut inbox = supertrees::inbox::<Counter>("counter")?;
    ///     let mut total = 0;
    ///     while let Some(envelope) = inbox.recv().await {
    ///         // By reference: the envelope is still needed to reply.
    ///         match envelope.message() {
    ///             Counter::Add(n) => total += n,
    ///             Counter::Total => envelope.reply(total),
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("counter").add_worker(Run(|| Box::pin(async {
    /// #         serve().await.unwrap()
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async {
    /// #         let counter = supertrees::mailbox::<Counter>("counter").unwrap();
    /// #         counter.send(Counter::Add(2)).await.unwrap();
    /// #         counter.send(Counter::Add(3)).await.unwrap();
    /// #         let total: u64 = counter.call(Counter::Total, std::time::Duration::from_secs(1)).await.unwrap();
    /// #         assert_eq!(total, 5);
    /// #     })));
    /// # // The server waits for more: the simulation stalls once the rest is done.
    /// # let ended = run_simulated(tree, FakeTimer::new());
    /// # assert!(matches!(ended, Err(supertrees::Error::Stalled)), "{ended:?}");
    /// # assert_eq!(DONE.load(SeqCst), 1);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn message(&self) -> &M {
        &self.message
    }

    /// The message, taken out; a caller waiting for a reply gets
    /// [`Error::NoReply`].
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use supertrees::{Envelope, Inbox};
    ///
    /// async fn next_line(inbox: &mut Inbox<String>) -> Option<String> {
    ///     inbox.recv().await.map(Envelope::into_message)
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("log").add_worker(Run(|| Box::pin(async {
    /// #         let mut inbox = supertrees::inbox::<String>("log").unwrap();
    /// #         assert_eq!(next_line(&mut inbox).await.as_deref(), Some("hello"));
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async {
    /// #         supertrees::mailbox::<String>("log").unwrap().send("hello".into()).await.unwrap()
    /// #     })));
    /// # run_simulated(tree, FakeTimer::new())?;
    /// # assert_eq!(DONE.load(SeqCst), 2);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn into_message(self) -> M {
        self.message
    }

    /// Whether the sender waits for a [`reply`](Self::reply) (it used
    /// [`Mailbox::call`]).
    ///
    /// # Examples
    ///
    /// Casts are counted; a call gets the count so far:
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use supertrees::Error;
    ///
    /// async fn serve() -> Result<(), Error> {
    ///     let mut inbox = supertrees::inbox::<String>("hits")?;
    ///     let mut hits = 0u64;
    ///     while let Some(envelope) = inbox.recv().await {
    ///         if envelope.is_call() {
    ///             envelope.reply(hits);
    ///         } else {
    ///             hits += 1;
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("hits").add_worker(Run(|| Box::pin(async {
    /// #         serve().await.unwrap()
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async {
    /// #         let hits = supertrees::mailbox::<String>("hits").unwrap();
    /// #         hits.send("/".into()).await.unwrap();
    /// #         hits.send("/about".into()).await.unwrap();
    /// #         let count: u64 = hits.call("count".into(), std::time::Duration::from_secs(1)).await.unwrap();
    /// #         assert_eq!(count, 2);
    /// #     })));
    /// # // The server waits for more: the simulation stalls once the rest is done.
    /// # let ended = run_simulated(tree, FakeTimer::new());
    /// # assert!(matches!(ended, Err(supertrees::Error::Stalled)), "{ended:?}");
    /// # assert_eq!(DONE.load(SeqCst), 1);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn is_call(&self) -> bool {
        self.reply.is_some()
    }

    /// Answers a call with `reply` (for a cast: does nothing). Never waits:
    /// a caller that gave up, or is gone, is not an error here. The reply
    /// must be of the type the caller's [`call`](Mailbox::call) expects
    /// (else it gets [`Error::WrongType`]); a reference is taken as what it
    /// refers to (`&T` as a `T`), but a `&str` is not a `String`. A reply that
    /// can not be encoded, or is larger than [`MAX_MESSAGE`], is dropped and
    /// logged, and the caller gets [`Error::NoReply`].
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// # use supertrees::testing::{run_simulated, FakeTimer};
    /// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
    /// # // A worker made of a function; DONE counts the runs that returned.
    /// # static DONE: AtomicUsize = AtomicUsize::new(0);
    /// # struct Run(fn() -> BoxFuture);
    /// # impl Worker for Run {
    /// #     fn init(&self) -> BoxFuture {
    /// #         let run = (self.0)();
    /// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
    /// #     }
    /// # }
    /// # impl Restartable for Run {
    /// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
    /// # }
    /// use std::time::Duration;
    /// use supertrees::Error;
    ///
    /// // The server.
    /// async fn serve() -> Result<(), Error> {
    ///     let mut inbox = supertrees::inbox::<String>("len")?;
    ///     while let Some(envelope) = inbox.recv().await {
    ///         let len = envelope.message().len();
    ///         envelope.reply(len);
    ///     }
    ///     Ok(())
    /// }
    ///
    /// // A caller: the type it asks for is the type the server replies with.
    /// async fn len(text: &str) -> Result<usize, Error> {
    ///     let server = supertrees::mailbox::<String>("len")?;
    ///     server.call(text.to_owned(), Duration::from_secs(1)).await
    /// }
    /// # let tree = Supertree::new()
    /// #     .add_supervisor(|s| s.with_mailbox("len").add_worker(Run(|| Box::pin(async {
    /// #         serve().await.unwrap()
    /// #     }))))
    /// #     .add_worker(Run(|| Box::pin(async { assert_eq!(len("four").await.unwrap(), 4) })));
    /// # // The server waits for more: the simulation stalls once the rest is done.
    /// # let ended = run_simulated(tree, FakeTimer::new());
    /// # assert!(matches!(ended, Err(supertrees::Error::Stalled)), "{ended:?}");
    /// # assert_eq!(DONE.load(SeqCst), 1);
    /// # Ok::<(), supertrees::Error>(())
    /// ```
    pub fn reply<R: Serialize>(self, reply: R) {
        let Some(replier) = self.reply else { return };
        match codec::encode_reply(&self.name, &reply) {
            Ok(body) => replier.reply(body),
            Err(err) => tracing::warn!(mailbox = %self.name, %err, "reply dropped"),
        }
    }
}

/// A request to a supervisor about its dynamic children.
#[derive(Debug, Serialize, Deserialize)]
#[doc(hidden)]
pub enum Request {
    /// Build a worker from the template and this argument, and start it.
    Start(Vec<u8>),
    /// Stop and remove this child.
    Terminate(ChildId),
}

/// Why a supervisor refused a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[doc(hidden)]
pub enum Refusal {
    /// It already runs its maximum number of dynamic children.
    Full { max: u32 },
    /// No such child (never was, or already removed).
    UnknownChild(ChildId),
    /// The argument is malformed, or the template panicked.
    BadArgument(String),
    /// It is shutting down.
    ShuttingDown,
    /// The argument is of another type (`found`) than the template takes
    /// (`expected`).
    WrongType { expected: String, found: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full { max } => write!(f, "it already runs its maximum of {max} children"),
            Refusal::UnknownChild(id) => write!(f, "no child {id}"),
            Refusal::BadArgument(reason) => write!(f, "a bad argument: {reason}"),
            Refusal::ShuttingDown => f.write_str("it is shutting down"),
            Refusal::WrongType { expected, found } => {
                write!(
                    f,
                    "an argument of type {found}, where the template takes a {expected}"
                )
            }
        }
    }
}

/// A supervisor's answer to a [`Request`].
#[doc(hidden)]
pub type Answer = Result<Option<ChildId>, Refusal>;

impl Refusal {
    fn into_error(self, name: &str) -> Error {
        let name = name.to_owned();
        match self {
            Refusal::Full { max } => Error::TooManyChildren { name, max },
            Refusal::UnknownChild(id) => Error::UnknownChild { name, id },
            Refusal::BadArgument(reason) => Error::Encoding { name, reason },
            Refusal::ShuttingDown => Error::ShuttingDown { name },
            Refusal::WrongType { expected, found } => Error::WrongType {
                name,
                expected,
                found,
            },
        }
    }
}

/// Asks the supervisor that declared template `name` about its children,
/// waiting at most [`ASK_TIMEOUT`]: past it, [`Error::NoReply`].
#[doc(hidden)]
pub async fn ask(
    outbox: Arc<dyn Outbox>,
    name: Arc<str>,
    request: Request,
) -> Result<Option<ChildId>, Error> {
    let body = codec::encode_plain(&name, &request)?;
    let reply = match outbox.call(body, ASK_TIMEOUT).await {
        Err(Error::Timeout { name, .. }) => return Err(Error::NoReply { name }),
        reply => reply?,
    };
    let answer = codec::strict::<Answer>(&reply).map_err(|reason| Error::Encoding {
        name: name.to_string(),
        reason,
    })?;
    answer.map_err(|refusal| refusal.into_error(&name))
}

/// Starts a child under the supervisor that declared the template `name`
/// (with [`add_dynamic`](crate::Tree::add_dynamic)), from any worker of the
/// tree, in any process: that supervisor builds the worker from its
/// template and `arg`, and starts it with the worker's own
/// [`Restartable`](crate::Restartable) policies.
///
/// Resolves once the child began, with its id: the supervisor added it,
/// and its worker host built it from `arg` and spawned its run (as OTP's
/// `start_child` returns once the child's `init` ran; its readiness is not
/// waited for). A start answered `Ok` has run: a child whose supervisor or
/// host dies before it began is never answered `Ok`.
///
/// Outside a worker's run, in a thread or task a worker started in its own
/// process, it works as in the run; anywhere else (no tree, the root's own
/// threads, a simulated tree outside its runs) its future resolves to
/// [`Error::NotInTree`] naming `start_child`.
///
/// # Errors
///
/// [`Error::UnknownName`] if no supervisor declared a template `name`,
/// [`Error::WrongType`] if its template takes another type than `A`,
/// [`Error::TooManyChildren`] at the supervisor's
/// [`with_max_children`](crate::Tree::with_max_children),
/// [`Error::ShuttingDown`] while it stops, [`Error::NotInTree`] outside a
/// worker of a running tree (see above), [`Error::NoReply`] if the
/// supervisor did not answer within 5 s (waiting for room to ask
/// included): it died while asked or before the child began, is gone for
/// good (it gave up and is not restarted), or is stopped or too busy. A request the supervisor had not read by then may
/// still be served when it reads it (as a call after its timeout).
///
/// # Examples
///
/// With a template `"conn"` declared as
/// `.add_dynamic("conn", |port: u16| Conn::new(port))`, any worker starts a
/// child for port 8080:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// # use supertrees::testing::{run_simulated, FakeTimer};
/// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
/// # // A worker made of a function; DONE counts the runs that returned.
/// # static DONE: AtomicUsize = AtomicUsize::new(0);
/// # struct Run(fn() -> BoxFuture);
/// # impl Worker for Run {
/// #     fn init(&self) -> BoxFuture {
/// #         let run = (self.0)();
/// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
/// #     }
/// # }
/// # impl Restartable for Run {
/// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
/// # }
/// # struct Conn(u16);
/// # impl Conn { fn new(port: u16) -> Self { Conn(port) } }
/// # impl Worker for Conn { fn init(&self) -> BoxFuture { Box::pin(std::future::pending()) } }
/// # impl Restartable for Conn {}
/// use supertrees::{ChildId, Error};
///
/// async fn connect() -> Result<ChildId, Error> {
///     supertrees::start_child("conn", 8080u16).await
/// }
/// # let tree = Supertree::new()
/// #     .add_supervisor(|s| s.add_dynamic("conn", |port: u16| Conn::new(port)))
/// #     .add_worker(Run(|| Box::pin(async { connect().await.unwrap(); })));
/// # // The server waits for more: the simulation stalls once the rest is done.
/// # let ended = run_simulated(tree, FakeTimer::new());
/// # assert!(matches!(ended, Err(supertrees::Error::Stalled)), "{ended:?}");
/// # assert_eq!(DONE.load(SeqCst), 1);
/// # Ok::<(), supertrees::Error>(())
/// ```
///
/// Outside a worker of a running tree it fails, naming itself:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// let started = futures::executor::block_on(supertrees::start_child("conn", 8080u16));
/// assert!(matches!(started, Err(supertrees::Error::NotInTree { function: "start_child", .. })));
/// ```
pub fn start_child<A: Serialize>(
    name: &str,
    arg: A,
) -> impl Future<Output = Result<ChildId, Error>> + Send + 'static {
    let request = prepare::<A>("start_child", name, Some(&arg)).and_then(|(outbox, name)| {
        let arg = codec::encode(&name, &arg)?;
        Ok((outbox, name, Request::Start(arg)))
    });
    async move {
        let (outbox, name, request) = request?;
        match ask(outbox, name.clone(), request).await? {
            Some(id) => Ok(id),
            None => Err(Error::NoReply {
                name: name.to_string(),
            }),
        }
    }
}

/// Stops the child `id` that [`start_child()`] started under the template
/// `name`, with its graceful stop (its run sees
/// [`stopping()`](crate::stopping()) and has its
/// [`Restartable::shutdown`](crate::Restartable::shutdown) time), and
/// removes it. Resolves once it has stopped, within 5 s.
///
/// Outside a worker's run, in a thread or task a worker started in its own
/// process, it works as in the run; anywhere else (no tree, the root's own
/// threads, a simulated tree outside its runs) its future resolves to
/// [`Error::NotInTree`] naming `terminate_child`.
///
/// # Errors
///
/// [`Error::UnknownChild`] if there is no such child (any more),
/// [`Error::UnknownName`] and [`Error::NotInTree`] as for
/// [`start_child()`]; [`Error::NoReply`] if the supervisor did not answer
/// within 5 s, as for [`start_child()`], and also when the child takes
/// longer than that to stop (its stop goes on: it is removed once it
/// ended, or its shutdown time passed).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// # use supertrees::testing::{run_simulated, FakeTimer};
/// # use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};
/// # // A worker made of a function; DONE counts the runs that returned.
/// # static DONE: AtomicUsize = AtomicUsize::new(0);
/// # struct Run(fn() -> BoxFuture);
/// # impl Worker for Run {
/// #     fn init(&self) -> BoxFuture {
/// #         let run = (self.0)();
/// #         Box::pin(async move { run.await; DONE.fetch_add(1, SeqCst); })
/// #     }
/// # }
/// # impl Restartable for Run {
/// #     fn restart_policy(&self) -> RestartPolicy { RestartPolicy::Never }
/// # }
/// # struct Conn(u16);
/// # impl Conn { fn new(port: u16) -> Self { Conn(port) } }
/// # impl Worker for Conn { fn init(&self) -> BoxFuture { Box::pin(std::future::pending()) } }
/// # impl Restartable for Conn {}
/// use supertrees::Error;
///
/// async fn connect_once() -> Result<(), Error> {
///     let id = supertrees::start_child("conn", 8080u16).await?;
///     // ... later: stop it and remove it from the tree.
///     supertrees::terminate_child("conn", id).await?;
///     // Its id is never given to another child.
///     let again = supertrees::terminate_child("conn", id).await;
///     assert!(matches!(again, Err(Error::UnknownChild { .. })));
///     Ok(())
/// }
/// # let tree = Supertree::new()
/// #     .add_supervisor(|s| s.add_dynamic("conn", |port: u16| Conn::new(port)))
/// #     .add_worker(Run(|| Box::pin(async { connect_once().await.unwrap() })));
/// # // The server waits for more: the simulation stalls once the rest is done.
/// # let ended = run_simulated(tree, FakeTimer::new());
/// # assert!(matches!(ended, Err(supertrees::Error::Stalled)), "{ended:?}");
/// # assert_eq!(DONE.load(SeqCst), 1);
/// # Ok::<(), supertrees::Error>(())
/// ```
pub fn terminate_child(
    name: &str,
    id: ChildId,
) -> impl Future<Output = Result<(), Error>> + Send + 'static {
    let request = prepare::<()>("terminate_child", name, None);
    async move {
        let (outbox, name) = request?;
        ask(outbox, name, Request::Terminate(id)).await.map(drop)
    }
}

/// The request endpoint of template `name`, checking that it takes an `A`
/// when `arg` is given; `function` is the public function called.
fn prepare<A>(
    function: &'static str,
    name: &str,
    arg: Option<&A>,
) -> Result<(Arc<dyn Outbox>, Arc<str>), Error> {
    let services = services(function)?;
    let outbox = services.outbox(name, Kind::Template)?;
    if arg.is_some() {
        let expected = services.argument_type(name)?;
        // A reference is sent as what it refers to, as for messages.
        let found = codec::wire_name::<A>();
        if expected != found {
            return Err(Error::WrongType {
                name: name.to_owned(),
                expected: expected.to_owned(),
                found: found.into_owned(),
            });
        }
    }
    Ok((outbox, name.into()))
}
