//! The names a tree declares — mailboxes and dynamic-children templates —
//! and, in the process engine, the socket pair behind each.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::Kind;
use crate::tree::Supervisor;
use crate::Error;

/// One name declared by a supervisor of the tree.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub(crate) name: String,
    /// The path of the supervisor that declared it, e.g. `root/1`.
    pub(crate) owner: String,
    pub(crate) kind: Kind,
    /// For a template: the type name of its argument.
    pub(crate) argument: &'static str,
}

impl Declared {
    /// Every name the tree below `root` declares, with the supervisor that
    /// declared it. Names are unique in the tree.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateName`] naming the first name declared twice, and
    /// both supervisors.
    pub(crate) fn collect(root: &Supervisor) -> Result<Vec<Declared>, Error> {
        let names: Vec<Declared> = root
            .supervisors("root")
            .into_iter()
            .flat_map(|(path, sup)| declared_by(sup, &path))
            .collect();
        let mut seen: std::collections::HashMap<&str, &Declared> = std::collections::HashMap::new();
        for declared in &names {
            if let Some(first) = seen.insert(&declared.name, declared) {
                return Err(Error::DuplicateName {
                    name: declared.name.clone(),
                    first: first.owner.clone(),
                    second: declared.owner.clone(),
                });
            }
        }
        Ok(names)
    }
}

/// The names supervisor `sup`, at `path`, declares.
fn declared_by(sup: &Supervisor, path: &str) -> Vec<Declared> {
    let mailboxes = sup.mailboxes.iter().map(|name| Declared {
        name: name.clone(),
        owner: path.to_owned(),
        kind: Kind::Mailbox,
        argument: "",
    });
    let templates = sup.templates.iter().map(|t| Declared {
        name: t.name.clone(),
        owner: path.to_owned(),
        kind: Kind::Template,
        argument: t.argument,
    });
    mailboxes.chain(templates).collect()
}

/// One declared name and its socket pair: datagrams written to `tx` queue
/// at `rx`, where they stay until read, whoever holds `rx`.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) declared: Declared,
    tx: Arc<OwnedFd>,
    rx: OwnedFd,
}

impl Endpoint {
    /// The sending end, which every process of the tree holds.
    pub(crate) fn tx(&self) -> BorrowedFd<'_> {
        self.tx.as_fd()
    }

    /// The sending end, shared with what sends on it.
    pub(crate) fn shared_tx(&self) -> Arc<OwnedFd> {
        self.tx.clone()
    }

    /// The receiving end.
    pub(crate) fn rx(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}

/// Every name of a tree with its socket pair, made by the root before it
/// forks anything, so that every process of the tree inherits them all.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    endpoints: Vec<Endpoint>,
}

impl Directory {
    /// Opens a socket pair for each of `declared`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if a socket pair can not be made (out of file
    /// descriptors).
    pub(crate) fn open(declared: Vec<Declared>) -> Result<Self, Error> {
        let endpoints = declared
            .into_iter()
            .map(|declared| {
                // Close-on-exec: a program a worker runs inherits none of
                // them. Blocking: every process uses `MSG_DONTWAIT` itself,
                // as the file status is shared by all of them.
                let (tx, rx) = socketpair(
                    AddressFamily::Unix,
                    SockType::Datagram,
                    None,
                    SockFlag::SOCK_CLOEXEC,
                )
                .map_err(|errno| Error::Os {
                    context: "making the socket pair of a mailbox",
                    source: errno.into(),
                })?;
                Ok(Endpoint {
                    declared,
                    tx: Arc::new(tx),
                    rx,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self { endpoints })
    }

    /// The endpoint named `name`, checked to be a `kind`.
    pub(crate) fn find(&self, name: &str, kind: Kind) -> Result<&Endpoint, Error> {
        self.endpoints
            .iter()
            .find(|e| e.declared.name == name && e.declared.kind == kind)
            .ok_or_else(|| Error::UnknownName {
                name: name.to_owned(),
                kind: kind.noun(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Supertree;

    #[test]
    fn names_are_collected_with_their_supervisors_and_must_be_unique() {
        let tree = crate::tree::TreeParts::from(
            Supertree::new()
                .with_mailbox("a")
                .add_supervisor(|s| s.with_mailbox("b"))
                .add_supervisor(|s| s.add_dynamic("c", |_: u8| Noop)),
        );
        let names = Declared::collect(&tree.root).expect("unique");
        let owners: Vec<(&str, &str, Kind)> = names
            .iter()
            .map(|d| (d.name.as_str(), d.owner.as_str(), d.kind))
            .collect();
        assert_eq!(
            owners,
            [
                ("a", "root", Kind::Mailbox),
                ("b", "root/0", Kind::Mailbox),
                ("c", "root/1", Kind::Template)
            ]
        );
        assert_eq!(names[2].argument, "u8");

        let tree = crate::tree::TreeParts::from(
            Supertree::new()
                .with_mailbox("a")
                .add_supervisor(|s| s.add_dynamic("a", |_: u8| Noop)),
        );
        let err = Declared::collect(&tree.root).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the name \"a\" is declared twice, by root and by root/0: names of mailboxes and templates are unique in a tree"
        );
    }

    #[test]
    fn a_name_is_found_only_as_what_it_was_declared() {
        let tree = crate::tree::TreeParts::from(Supertree::new().with_mailbox("kv"));
        let dir = Directory::open(Declared::collect(&tree.root).expect("unique")).expect("sockets");
        assert!(dir.find("kv", Kind::Mailbox).is_ok());
        let err = dir.find("kv", Kind::Template).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no dynamic-children template is named \"kv\" in this tree"
        );
        assert!(dir.find("nope", Kind::Mailbox).is_err());
    }

    struct Noop;
    impl crate::Worker for Noop {
        fn init(&self) -> crate::BoxFuture {
            Box::pin(async {})
        }
    }
    impl crate::Restartable for Noop {}
}
