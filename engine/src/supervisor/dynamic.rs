//! A supervisor's children started at run time: the requests read from its
//! templates' sockets, handed to the machine, and their answers.
//!
//! A request is a datagram on the template's socket pair (see
//! [`crate::message`]) carrying the requester's reply socket. The machine
//! decides (`handle_add`, `handle_remove`); a start is answered with the
//! child's id once its worker host says the child began (built from its
//! argument, its run spawned), so a start answered `Ok` has run; a
//! termination once the machine reports the child removed. A child removed
//! before it began (it could not be built, or its supervisor stops) leaves
//! its requester with the end of its reply socket: `Error::NoReply`.
//!
//! What builds a child is kept by its slot, from its start until the
//! machine's `Removed` report about it: the machine gives the slot to no
//! other child before that report is polled, so every action and report
//! about the slot meanwhile is about this child.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::directory::Directory;
use crate::machine::{ChildIdx, Machine};
use crate::message::{codec, dynamic, Answer, Refusal, Request};
use crate::os::sys::Poller;
use crate::port::Kind;
use crate::socket::{recv_queued, reply_on};
use crate::tree::Template;
use crate::ChildId;

/// How many requests are read from one template's socket per turn of the
/// loop: a flood of requests must not keep the supervisor from its
/// children.
const REQUESTS_PER_TURN: usize = 64;

/// A child started at run time, as its supervisor process keeps it: what
/// builds it again in a new worker host.
#[derive(Debug)]
pub(super) struct Started {
    pub(super) template: u32,
    pub(super) arg: Vec<u8>,
    pub(super) id: ChildId,
}

/// The dynamic children of one supervisor process.
#[derive(Debug, Default)]
pub(super) struct Dynamic {
    /// The directory holding the templates' sockets.
    directory: Arc<Directory>,
    /// The queues of this supervisor's templates: the template's index
    /// among its templates, the queue's among its receiving ends, and its
    /// position in `poller` this turn.
    watched: Vec<(u32, usize, usize)>,
    /// By child index.
    children: Vec<Option<Started>>,
    /// Queues of templates that failed for good (shut down), by template
    /// and queue: not watched.
    broken: Vec<(u32, usize)>,
    /// Reply sockets of `start_child` requests, answered once the child
    /// began in its host.
    starting: HashMap<ChildId, OwnedFd>,
    /// Reply sockets of `terminate_child` requests, answered once the child
    /// is removed (see [`Waiting`]).
    terminating: Waiting,
}

impl Dynamic {
    pub(super) fn new(directory: Arc<Directory>) -> Self {
        Self {
            directory,
            ..Self::default()
        }
    }

    /// The directory of the tree's mailboxes and templates.
    pub(super) fn directory(&self) -> Arc<Directory> {
        self.directory.clone()
    }

    /// The child started at run time at `child`, if it is one.
    pub(super) fn get(&self, child: ChildIdx) -> Option<&Started> {
        self.children.get(child.get()).and_then(Option::as_ref)
    }

    /// In a freshly forked child: lets go of the parent's requests.
    pub(super) fn leave(&mut self) {
        // Closing our copies of the reply sockets is all that dropping
        // them does.
        self.terminating.clear();
        self.starting.clear();
        std::mem::forget(std::mem::take(&mut self.children));
    }

    /// Adds to `poller` the receiving ends of the templates (`templates`)
    /// of the supervisor at `path` (one per user the tree runs as), but
    /// those that failed.
    pub(super) fn watch(&mut self, templates: &[Template], path: &str, poller: &mut Poller) {
        self.watched.clear();
        for (n, template) in templates.iter().enumerate() {
            let Ok(endpoint) = self.directory.find(&template.name, Kind::Template) else {
                continue;
            };
            if endpoint.declared.owner != path {
                continue;
            }
            let Ok(n) = u32::try_from(n) else { break };
            for (queue, rx) in endpoint.receivers().enumerate() {
                if self.broken.contains(&(n, queue)) {
                    continue;
                }
                let at = poller.add(rx, PollFlags::POLLIN);
                self.watched.push((n, queue, at));
            }
        }
    }

    /// Reads the requests waiting on the templates' sockets that `poller`
    /// found ready, and has `machine` handle them. Returns how many
    /// children the supervisor must have room for (the children it added
    /// among them; 0 if none). An answer given at once goes after `flush`
    /// sent this turn's events, so what the request changed reaches the
    /// root's status first.
    pub(super) fn handle_requests(
        &mut self,
        templates: &[Template],
        machine: &mut Machine,
        poller: &Poller,
        flush: &mut dyn FnMut(),
        now: Instant,
    ) -> usize {
        let mut room = 0;
        let ready: Vec<(u32, usize)> = self
            .watched
            .iter()
            .filter(|&&(_, _, at)| poller.ready(at))
            .map(|&(t, queue, _)| (t, queue))
            .collect();
        for (template, queue) in ready {
            let Some(name) = templates.get(template as usize).map(|t| t.name.clone()) else {
                continue;
            };
            let directory = self.directory.clone();
            let Some(rx) = directory
                .find(&name, Kind::Template)
                .ok()
                .and_then(|endpoint| endpoint.receivers().nth(queue))
            else {
                continue;
            };
            for _ in 0..REQUESTS_PER_TURN {
                match recv_queued(rx, &name) {
                    Ok(Some(datagram)) => {
                        let Some(reply) = datagram.passed else {
                            tracing::warn!(supervisor = %machine.path(), template = %name, "a request without a reply socket was dropped");
                            continue;
                        };
                        match self.request(
                            templates,
                            machine,
                            (template, &name),
                            &datagram.body,
                            reply,
                            now,
                        ) {
                            Ok(added) => room = room.max(added),
                            Err((reply, answer)) => {
                                // What the request changed reaches the
                                // root's status first.
                                flush();
                                answer_on(&reply, &answer);
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(err) if err.raw_os_error() == Some(Errno::EAGAIN as i32) => break,
                    Err(err) => {
                        // Shut down by a process of this supervisor, or
                        // broken otherwise: it would poll ready for ever.
                        tracing::error!(supervisor = %machine.path(), template = %name, %err,
                            "reading requests failed; this queue of the template is read no more in this incarnation");
                        self.broken.push((template, queue));
                        break;
                    }
                }
            }
        }
        room
    }

    /// Handles one request on the socket of template `template` (`name`):
    /// how many children the supervisor must have room for (0: none
    /// added), or the answer to give now, on `reply`.
    fn request(
        &mut self,
        templates: &[Template],
        machine: &mut Machine,
        (template, name): (u32, &str),
        body: &[u8],
        reply: OwnedFd,
        now: Instant,
    ) -> Result<usize, (OwnedFd, Answer)> {
        let answer = match codec::strict::<Request>(body) {
            Ok(Request::Start(arg)) => match self.add(templates, machine, template, arg, now) {
                Ok((id, room)) => {
                    self.starting.insert(id, reply);
                    return Ok(room);
                }
                Err(refusal) => Err(refusal),
            },
            Ok(Request::Terminate(id)) => match dynamic::remove(machine, id, now) {
                Ok(_) => {
                    self.terminating.push(id, reply);
                    return Ok(0);
                }
                Err(refusal) => Err(refusal),
            },
            Err(err) => {
                tracing::warn!(supervisor = %machine.path(), template = %name, %err, "a malformed request was dropped");
                return Ok(0);
            }
        };
        Err((reply, answer))
    }

    /// Has `machine` add a child of `template` with `arg`: its id, and how
    /// many children the supervisor must have room for.
    fn add(
        &mut self,
        templates: &[Template],
        machine: &mut Machine,
        template: u32,
        arg: Vec<u8>,
        now: Instant,
    ) -> Result<(ChildId, usize), Refusal> {
        let Some(found) = templates.get(template as usize) else {
            return Err(Refusal::BadArgument("no such template".to_owned()));
        };
        // Built to learn its policies; its host builds its own.
        let (child, id, _worker) = dynamic::add(machine, found, &arg, now)?;
        let n = child.get();
        if self.children.len() <= n {
            self.children.resize_with(n + 1, || None);
        }
        self.children[n] = Some(Started { template, arg, id });
        Ok((id, n + 1))
    }

    /// Dynamic child `child` began in its host: answers who started it,
    /// after `flush` sent this turn's events (its start among them).
    pub(super) fn began(&mut self, child: ChildIdx, flush: &mut dyn FnMut()) {
        let Some(id) = self.get(child).map(|started| started.id) else {
            return;
        };
        if let Some(reply) = self.starting.remove(&id) {
            flush();
            answer_on(&reply, &Ok(Some(id)));
        }
    }

    /// Dynamic child `child` (`id`) is gone: answers who asked to
    /// terminate it, after `flush` sent this turn's events (its exit among
    /// them).
    pub(super) fn removed(&mut self, child: ChildIdx, id: ChildId, flush: &mut dyn FnMut()) {
        if let Some(slot) = self.children.get_mut(child.get()) {
            if slot.as_ref().is_some_and(|started| started.id == id) {
                *slot = None;
            }
        }
        // Never began: its requester learns from the end of its socket.
        self.starting.remove(&id);
        let answer: Answer = Ok(None);
        let replies = self.terminating.take(id);
        if !replies.is_empty() {
            flush();
        }
        for reply in replies {
            answer_on(&reply, &answer);
        }
    }
}

/// Who waits for the removal of which child: the reply sockets of
/// `terminate_child` requests. A requester that gave up (its `NoReply`
/// after 5 s) closed its end: such sockets are let go of as requests come
/// in, so a flood of requests for a child that takes long to stop costs
/// the supervisor no descriptor per request. At most
/// [`MAX_WAITING_PER_CHILD`] wait for one child; a request beyond is let
/// go of at once (its requester gets `NoReply`).
#[derive(Debug, Default)]
struct Waiting {
    by_child: HashMap<ChildId, Vec<OwnedFd>>,
    /// How many wait in all, and how many did after the last sweep: the
    /// next sweep comes once they doubled, so sweeps cost O(1) a request.
    count: usize,
    swept_at: usize,
}

/// The most `terminate_child` requests that wait for one child.
const MAX_WAITING_PER_CHILD: usize = 8;

impl Waiting {
    fn push(&mut self, id: ChildId, reply: OwnedFd) {
        if self.count >= 2 * self.swept_at.max(32) {
            self.sweep();
        }
        let waiting = self.by_child.entry(id).or_default();
        let before = waiting.len();
        waiting.retain(|fd| !peer_closed(fd));
        self.count -= before - waiting.len();
        if waiting.len() < MAX_WAITING_PER_CHILD {
            waiting.push(reply);
            self.count += 1;
        }
    }

    /// Lets go of every socket whose requester is gone.
    fn sweep(&mut self) {
        self.by_child.retain(|_, waiting| {
            waiting.retain(|fd| !peer_closed(fd));
            !waiting.is_empty()
        });
        self.count = self.by_child.values().map(Vec::len).sum();
        self.swept_at = self.count;
    }

    /// The sockets waiting for child `id`.
    fn take(&mut self, id: ChildId) -> Vec<OwnedFd> {
        let taken = self.by_child.remove(&id).unwrap_or_default();
        self.count -= taken.len();
        taken
    }

    fn clear(&mut self) {
        self.by_child.clear();
        self.count = 0;
    }
}

/// Whether the other end of reply socket `fd` is closed (its requester
/// gave up).
fn peer_closed(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Sends `answer` on a requester's reply socket.
fn answer_on(reply: &OwnedFd, answer: &Answer) {
    reply_on(reply, &dynamic::encode_answer(answer));
}
