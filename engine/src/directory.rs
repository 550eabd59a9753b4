//! The socket pairs behind the names a tree declares (mailboxes and
//! dynamic-children templates; the names themselves are
//! `supertrees_core`'s `Declared`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::message::Declared;
use crate::os::sys::SharedTallies;
use crate::port::Kind;
use supertrees_core::figures::{HoldsTally, MailboxCounts, MailboxTally, Tally};
use supertrees_core::Error;

/// One declared name and its queues: a Unix datagram socket pair for each
/// user the tree runs as (see [`Directory`]).
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) declared: Declared,
    queues: Vec<Queue>,
}

/// The socket pair of one endpoint for the processes of one user:
/// datagrams written to `tx` queue at `rx`, where they stay until read,
/// whoever holds `rx`.
#[derive(Debug)]
struct Queue {
    uid: u32,
    /// The sending end, in the processes of user `uid` (and the
    /// supervisors above them, which hand it down).
    tx: Option<Arc<OwnedFd>>,
    /// The receiving end, in the processes whose role reads it (and the
    /// supervisors above them).
    rx: Option<OwnedFd>,
}

impl Endpoint {
    /// The sending end for this process, whose effective user is `uid`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::PermissionDenied`] if this process holds none for
    /// that user (a process of the tree always does).
    pub(crate) fn sender(&self, uid: u32) -> io::Result<Arc<OwnedFd>> {
        self.queues
            .iter()
            .find(|q| q.uid == uid)
            .and_then(|q| q.tx.clone())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("this process (user {uid}) holds no sending socket of it"),
                )
            })
    }

    /// The receiving ends this process holds: one per user the tree runs
    /// as, in the processes whose role reads them.
    pub(crate) fn receivers(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.queues
            .iter()
            .filter_map(|q| q.rx.as_ref().map(AsFd::as_fd))
    }
}

/// Every name of a tree with its queues, made by the root before it forks
/// anything.
///
/// A name has a queue for each user the tree runs as (its own, and each of
/// [`with_user`](crate::Tree::with_user)), a Unix datagram socket pair on
/// no file system. Every process holds only what its role needs: the
/// sending ends of its own user's queues, and, in the processes of the
/// supervisor that declared a name (and the supervisors above it, which
/// hand them to its next incarnation), its receiving ends. So a process
/// shares no descriptor with a process of another user through which it
/// could read, redirect or shut down what that one depends on: a worker
/// that shuts its sending socket down, or connects it elsewhere, breaks
/// the sends of its own user's processes, never another's, and no
/// process of the tree holds a receiving end it does not serve. The
/// server reads every queue of its name; each is bounded by its socket
/// buffer, and messages of one sender stay in order.
///
/// When the tree keeps its figures, each user also has the tallies of
/// every mailbox ([`SharedTallies`]), which its processes count their
/// traffic into and the root reads; a process keeps those of the users it
/// keeps sending ends of.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    endpoints: Vec<Endpoint>,
    tallies: Vec<(u32, Arc<SharedTallies>)>,
}

/// Tally `n` of a user's [`SharedTallies`].
struct MappedTally {
    tallies: Arc<SharedTallies>,
    n: usize,
}

impl HoldsTally for MappedTally {
    fn tally(&self) -> Option<&MailboxTally> {
        self.tallies.get(self.n)
    }
}

impl Directory {
    /// Opens a queue for each of `declared` and each of `uids`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if a socket pair can not be made (out of file
    /// descriptors).
    ///
    /// With `tallies`, the tallies of its mailboxes for each user too
    /// (made before anything is forked, shared with every process of that
    /// user).
    pub(crate) fn open(
        declared: Vec<Declared>,
        uids: &[u32],
        tallies: bool,
    ) -> Result<Self, Error> {
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        let endpoints = declared
            .into_iter()
            .map(|declared| {
                let queues = uids
                    .iter()
                    .map(|&uid| {
                        // Close-on-exec: a program a worker runs inherits
                        // none of them. Blocking: every process uses
                        // `MSG_DONTWAIT` itself.
                        let (tx, rx) = socketpair(
                            AddressFamily::Unix,
                            SockType::Datagram,
                            None,
                            SockFlag::SOCK_CLOEXEC,
                        )
                        .map_err(|errno| {
                            Error::os("making the socket pair of a mailbox", errno.into())
                        })?;
                        Ok(Queue {
                            uid,
                            tx: Some(Arc::new(tx)),
                            rx: Some(rx),
                        })
                    })
                    .collect::<Result<_, Error>>()?;
                Ok(Endpoint { declared, queues })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mailboxes = endpoints
            .iter()
            .filter(|e| e.declared.kind == Kind::Mailbox)
            .count();
        let tallies = match std::num::NonZeroUsize::new(mailboxes) {
            Some(count) if tallies => uids
                .iter()
                .map(|&uid| {
                    SharedTallies::new(count)
                        .map(|t| (uid, Arc::new(t)))
                        .map_err(|errno| {
                            Error::os("mapping the tallies of the mailboxes", errno.into())
                        })
                })
                .collect::<Result<_, Error>>()?,
            _ => Vec::new(),
        };
        Ok(Self { endpoints, tallies })
    }

    /// Where a process of user `uid` counts its traffic to mailbox
    /// `name`: nowhere if the tree keeps no figures, or the process holds
    /// no tallies of that user.
    pub(crate) fn tally(&self, name: &str, uid: u32) -> Tally {
        let n = self.mailboxes().position(|d| d.name == name);
        let tallies = self.tallies.iter().find(|(u, _)| *u == uid);
        match (n, tallies) {
            (Some(n), Some((_, tallies))) => Tally::new(Arc::new(MappedTally {
                tallies: tallies.clone(),
                n,
            })),
            _ => Tally::default(),
        }
    }

    /// The traffic of each mailbox, by name: what the processes of every
    /// user whose tallies this process holds (in the root: all) counted.
    pub(crate) fn mailbox_counts(&self) -> Vec<(&str, MailboxCounts)> {
        self.mailboxes()
            .enumerate()
            .map(|(n, d)| {
                let mut sum = MailboxCounts::default();
                for tally in self.tallies.iter().filter_map(|(_, t)| t.get(n)) {
                    sum += tally.counts();
                }
                (d.name.as_str(), sum)
            })
            .collect()
    }

    fn mailboxes(&self) -> impl Iterator<Item = &Declared> {
        self.endpoints
            .iter()
            .map(|e| &e.declared)
            .filter(|d| d.kind == Kind::Mailbox)
    }

    /// The endpoint named `name`, checked to be a `kind`.
    pub(crate) fn find(&self, name: &str, kind: Kind) -> Result<&Endpoint, Error> {
        self.endpoints
            .iter()
            .find(|e| e.declared.name == name && e.declared.kind == kind)
            .ok_or_else(|| Error::unknown_name(name.to_owned(), kind.noun()))
    }

    /// In a freshly forked child: the directory of its role, holding the
    /// receiving ends of the names `read` keeps and the sending ends of
    /// the users in `users`, duplicated, with their tallies; every
    /// descriptor of `self`, the parent's, is closed in this process, and
    /// the tallies of other users are unmapped. `self` must never be dropped
    /// here after (the child ends with `_exit`; its parent's state is
    /// forgotten).
    ///
    /// # Errors
    ///
    /// The system's, if a socket can not be duplicated (out of
    /// descriptors).
    pub(crate) fn for_child(
        &self,
        read: impl Fn(&Declared) -> bool,
        users: &[u32],
    ) -> io::Result<Directory> {
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| {
                let queues = e
                    .queues
                    .iter()
                    .map(|q| {
                        let tx = match &q.tx {
                            Some(tx) if users.contains(&q.uid) => Some(Arc::new(tx.try_clone()?)),
                            _ => None,
                        };
                        let rx = match &q.rx {
                            Some(rx) if read(&e.declared) => Some(rx.try_clone()?),
                            _ => None,
                        };
                        Ok(Queue { uid: q.uid, tx, rx })
                    })
                    .collect::<io::Result<Vec<_>>>()?;
                Ok(Endpoint {
                    declared: e.declared.clone(),
                    queues,
                })
            })
            .collect::<io::Result<Vec<_>>>();
        for q in self.endpoints.iter().flat_map(|e| &e.queues) {
            for fd in
                q.tx.iter()
                    .map(|tx| tx.as_raw_fd())
                    .chain(q.rx.iter().map(AsRawFd::as_raw_fd))
            {
                let _ = nix::unistd::close(fd);
            }
        }
        let mut tallies = Vec::new();
        for (uid, mine) in &self.tallies {
            if users.contains(uid) {
                tallies.push((*uid, Arc::new(mine.for_child())));
            } else {
                mine.unmap_in_child();
            }
        }
        Ok(Directory {
            endpoints: endpoints?,
            tallies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Supertree;

    #[test]
    fn a_name_is_found_only_as_what_it_was_declared() {
        let tree = crate::tree::TreeParts::from(Supertree::new().with_mailbox("kv"));
        let dir = Directory::open(Declared::collect(&tree.root).expect("unique"), &[0], false)
            .expect("sockets");
        assert!(dir.find("kv", Kind::Mailbox).is_ok());
        let err = dir.find("kv", Kind::Template).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no dynamic-children template is named \"kv\" in this tree"
        );
        assert!(dir.find("nope", Kind::Mailbox).is_err());
    }
}
