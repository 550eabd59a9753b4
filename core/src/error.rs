//! The one error type of supertrees.

use std::fmt;
use std::time::Duration;

use crate::ChildId;

/// Everything that can go wrong when building or running a supervision tree.
///
/// The error is `Send + Sync + 'static` so it travels through `?`, `anyhow`
/// and threads. It grows: the enum and each of its struct variants are
/// `#[non_exhaustive]`, so match it with a wildcard arm and its struct
/// variants with `..` (`Error::Timeout { name, .. }`).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::{BackoffPolicy, Error};
///
/// let err = BackoffPolicy::try_new(Duration::ZERO, Duration::from_secs(1), Duration::from_secs(2), 2.0)
///     .unwrap_err();
/// assert!(matches!(err, Error::InvalidPolicy { field: "min_delay", .. }));
/// assert_eq!(err.to_string(), "invalid policy: min_delay must be greater than zero");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A policy was given a value it can not work with. `field` names the
    /// argument at fault.
    #[non_exhaustive]
    InvalidPolicy {
        /// The name of the offending argument, e.g. `"multiplier"`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The supervisor at `path` restarted its children more than
    /// `max_restarts` times within `within`, stopped them all and gave up.
    /// At the root, [`start`](crate::Tree::start) returns this.
    #[non_exhaustive]
    IntensityExceeded {
        /// The supervisor that gave up, e.g. `"root"`.
        path: String,
        /// The configured limit.
        max_restarts: u32,
        /// The configured window.
        within: Duration,
    },
    /// The tree was started from inside a running async runtime (for example
    /// within `#[tokio::main]`). Forking such a process is unsound, so the tree
    /// refuses to start; start it from a plain `fn main` instead.
    InsideRuntime,
    /// The tree was started on a system the process engine does not
    /// support: it runs on Linux. Elsewhere the crates still build, and a
    /// tree runs in the simulation
    /// ([`run_simulated`](crate::testing::run_simulated)).
    Unsupported,
    /// A simulated tree can make no more progress: every task waits, and no
    /// timer is pending (e.g. a worker awaits a future that nothing will wake).
    Stalled,
    /// An operating-system call the engine needs failed while setting up the
    /// root supervisor (e.g. creating its signal pipe).
    #[non_exhaustive]
    Os {
        /// What the engine was doing.
        context: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A [`Limits`](crate::Limits) value can not be enforced as given.
    /// `field` names the limit at fault. From `start()`.
    #[non_exhaustive]
    InvalidLimits {
        /// The limit, e.g. `"memory"`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A supervisor's [`Limits`](crate::Limits) can not be enforced for its
    /// subtree alone on this machine: limit `field` needs a cgroup the tree
    /// can not make here (it is not root and has no delegated cgroup, or
    /// the controller is missing) and no rlimit bounds it for the subtree
    /// (`processes`: `RLIMIT_NPROC` counts every process of the user;
    /// `cpu`: no rlimit bounds a share of CPU time), or `open_files` is
    /// below the descriptors its processes hold for the tree (see
    /// [`Limits::open_files`](crate::Limits::open_files)). From `start()`,
    /// before anything is forked. See the table in [`Limits`](crate::Limits).
    ///
    /// Displayed as, e.g., `supervisor root/0: its processes limit can not
    /// be enforced for its subtree: there is no pids cgroup for it`.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Error;
    ///
    /// /// The supervisor and the limit at fault, if that is what went wrong.
    /// fn unenforceable(err: &Error) -> Option<(&str, &str)> {
    ///     match err {
    ///         Error::UnenforceableLimit { path, field, .. } => Some((path, field)),
    ///         _ => None,
    ///     }
    /// }
    /// assert_eq!(unenforceable(&Error::Stalled), None);
    /// ```
    #[non_exhaustive]
    UnenforceableLimit {
        /// The supervisor, e.g. `"root/0"`.
        path: String,
        /// The limit, e.g. `"processes"`.
        field: &'static str,
        /// Why nothing enforces it.
        reason: String,
    },
    /// A supervisor's [`with_user`](crate::Tree::with_user) can not be
    /// honoured: this process may not switch to that user. From `start()`,
    /// before anything is forked.
    #[non_exhaustive]
    Privilege {
        /// The supervisor, e.g. `"root/1"`.
        path: String,
        /// Why not.
        reason: String,
    },
    /// A listener ([`with_listener`](crate::Tree::with_listener)) could not
    /// be bound or taken: the address is in use or not permitted, a path
    /// is taken, systemd passed no such socket. From `start()`, before
    /// anything is forked.
    #[non_exhaustive]
    Listener {
        /// The listener's name.
        name: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A function that reaches the running tree
    /// ([`mailbox()`](crate::mailbox()), [`inbox()`](crate::inbox()),
    /// [`start_child()`](crate::start_child()) or
    /// [`terminate_child()`](crate::terminate_child())) was called outside
    /// a worker of a running tree: neither in a worker's run nor in a thread
    /// or task of a worker's process. `function` names it.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Error;
    ///
    /// // No tree runs here.
    /// let err = supertrees::mailbox::<u64>("kv").unwrap_err();
    /// assert!(matches!(err, Error::NotInTree { function: "mailbox", .. }));
    /// assert!(err.to_string().starts_with("supertrees::mailbox() called outside a worker"));
    /// ```
    #[non_exhaustive]
    NotInTree {
        /// The function called, e.g. `"mailbox"`.
        function: &'static str,
    },
    /// No supervisor of the tree declared a `kind` (a mailbox, or a
    /// dynamic-children template) called `name`.
    #[non_exhaustive]
    UnknownName {
        /// The name asked for.
        name: String,
        /// What was asked for: `"mailbox"` or `"dynamic-children template"`.
        kind: &'static str,
    },
    /// A name that paths, status and operators' requests could not carry:
    /// a dynamic-children template's name (the segment of its children's
    /// paths, `root/1/conn#7`) and a child's name
    /// ([`add_named_worker`](crate::Tree::add_named_worker),
    /// [`with_name`](crate::Tree::with_name)) are 1 to 64 ASCII letters,
    /// digits, `_` and `-`; a child's is not digits only nor `host`, and
    /// no sibling has it. From `start()`.
    #[non_exhaustive]
    InvalidName {
        /// The name, as given.
        name: String,
        /// The path of the supervisor that declared it.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two supervisors (or one, twice) declared the same name for a mailbox
    /// or a template; names are unique in a tree. From `start()`.
    #[non_exhaustive]
    DuplicateName {
        /// The name declared twice.
        name: String,
        /// The path of the supervisor that declared it first.
        first: String,
        /// The path of the supervisor that declared it again.
        second: String,
    },
    /// [`inbox()`](crate::inbox()) was called by a worker of another
    /// supervisor than `owner`, which declared mailbox `name`.
    #[non_exhaustive]
    NotOwner {
        /// The mailbox.
        name: String,
        /// The path of the supervisor that declared it.
        owner: String,
    },
    /// A message (or a `start_child` argument) for `name` is larger than
    /// [`MAX_MESSAGE`](crate::MAX_MESSAGE) once encoded.
    #[non_exhaustive]
    MessageTooLarge {
        /// The mailbox or template.
        name: String,
        /// Its encoded size in bytes.
        size: usize,
        /// The largest size allowed.
        max: usize,
    },
    /// A message, argument or reply of `name` could not be encoded, or
    /// could not be decoded although it is of the right type (it is
    /// malformed: cut short, or with bytes left over). A body of another
    /// type is [`Error::WrongType`].
    #[non_exhaustive]
    Encoding {
        /// The mailbox or template.
        name: String,
        /// What `postcard` said.
        reason: String,
    },
    /// A [`call`](crate::Mailbox::call) to mailbox `name` had no reply
    /// within `after`.
    #[non_exhaustive]
    Timeout {
        /// The mailbox.
        name: String,
        /// The call's timeout.
        after: Duration,
    },
    /// The server of mailbox `name` let go of a call without replying: it
    /// dropped the message, found it malformed, or ended (panicked, was
    /// killed) with it. Or the supervisor asked about its dynamic children
    /// (template `name`) ended before it answered, is gone for good, or did
    /// not answer within 5 s.
    #[non_exhaustive]
    NoReply {
        /// The mailbox or template.
        name: String,
    },
    /// [`start_child()`](crate::start_child()) was given another type of
    /// argument than template `name` takes. No longer returned: a wrong
    /// argument is an [`Error::WrongType`], as a message of the wrong type
    /// is.
    #[deprecated(
        since = "0.2.1",
        note = "start_child reports an argument of another type as Error::WrongType"
    )]
    #[non_exhaustive]
    WrongArgument {
        /// The template.
        name: String,
        /// The type its template takes.
        expected: &'static str,
        /// The type it was given.
        given: &'static str,
    },
    /// The supervisor of template `name` already runs its
    /// [`with_max_children`](crate::Tree::with_max_children) children.
    #[non_exhaustive]
    TooManyChildren {
        /// The template.
        name: String,
        /// The supervisor's maximum.
        max: u32,
    },
    /// [`terminate_child()`](crate::terminate_child()) named a child that
    /// does not run under template `name` (any more).
    #[non_exhaustive]
    UnknownChild {
        /// The template.
        name: String,
        /// The id asked for.
        id: ChildId,
    },
    /// The supervisor of template `name` is shutting down and starts no
    /// more children.
    #[non_exhaustive]
    ShuttingDown {
        /// The template.
        name: String,
    },
    /// [`Mailbox::try_send`](crate::Mailbox::try_send) found mailbox `name`
    /// full: the message was not sent.
    #[non_exhaustive]
    MailboxFull {
        /// The mailbox.
        name: String,
    },
    /// A message, reply or argument of `name` is of another type than the
    /// receiving side's: it was not decoded (nor delivered). Every body
    /// carries the name of its type
    /// ([`std::any::type_name`](std::any::type_name()) of the sending
    /// side's), and is decoded only as that type.
    ///
    /// For a [`call`](crate::Mailbox::call) whose message the server's
    /// [`Inbox`](crate::Inbox) does not take, `expected` is the server's
    /// message type and `found` the caller's; for a reply of another type
    /// than the caller's `R`, `expected` is `R` and `found` the reply's.
    #[non_exhaustive]
    WrongType {
        /// The mailbox or template.
        name: String,
        /// The type the receiving side takes.
        expected: String,
        /// The type that was sent.
        found: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidPolicy { field, reason } => {
                write!(f, "invalid policy: {field} {reason}")
            }
            Error::IntensityExceeded {
                path,
                max_restarts,
                within,
            } => write!(
                f,
                "supervisor {path} exceeded its restart intensity \
                 (more than {max_restarts} restarts within {within:?}) and gave up"
            ),
            Error::InsideRuntime => f.write_str(
                "a supervision tree can not be started from inside a running async runtime; \
                 call start() from a plain fn main",
            ),
            Error::Unsupported => f.write_str(
                "the process engine does not support this system (it runs on Linux); \
                 run_simulated runs a tree anywhere",
            ),
            Error::Stalled => {
                f.write_str("simulation stalled: every task waits and no timer is pending")
            }
            Error::Os { context, source } => write!(f, "{context}: {source}"),
            Error::InvalidLimits { field, reason } => {
                write!(f, "invalid limits: {field} {reason}")
            }
            Error::InvalidName { name, path, reason } => {
                write!(f, "supervisor {path}: invalid name {name:?}: {reason}")
            }
            Error::UnenforceableLimit {
                path,
                field,
                reason,
            } => write!(
                f,
                "supervisor {path}: its {field} limit can not be enforced for its subtree: {reason}"
            ),
            Error::Privilege { path, reason } => {
                write!(f, "supervisor {path} can not run as its user: {reason}")
            }
            Error::Listener { name, source } => write!(f, "listener {name:?}: {source}"),
            Error::NotInTree { function } => write!(
                f,
                "supertrees::{function}() called outside a worker of a running tree (it works in \
                 a worker's run, and in the threads and tasks a worker started in its process)"
            ),
            Error::UnknownName { name, kind } => {
                write!(f, "no {kind} is named {name:?} in this tree")
            }
            Error::DuplicateName {
                name,
                first,
                second,
            } => write!(
                f,
                "the name {name:?} is declared twice, by {first} and by {second}: names of \
                 mailboxes and templates are unique in a tree"
            ),
            Error::NotOwner { name, owner } => write!(
                f,
                "mailbox {name:?} belongs to supervisor {owner}: only its workers can serve it"
            ),
            Error::MessageTooLarge { name, size, max } => write!(
                f,
                "a message for {name:?} is {size} bytes once encoded, more than the {max} allowed"
            ),
            Error::Encoding { name, reason } => {
                write!(
                    f,
                    "a message of {name:?} could not be encoded or decoded: {reason}"
                )
            }
            Error::Timeout { name, after } => {
                write!(f, "no reply from mailbox {name:?} within {after:?}")
            }
            Error::NoReply { name } => write!(
                f,
                "{name:?} let go of the request without a reply (dropped, undecodable, or its \
                 server ended)"
            ),
            #[allow(deprecated)]
            Error::WrongArgument {
                name,
                expected,
                given,
            } => write!(f, "template {name:?} takes a {expected}, not a {given}"),
            Error::TooManyChildren { name, max } => write!(
                f,
                "the supervisor of template {name:?} already runs its maximum of {max} children"
            ),
            Error::UnknownChild { name, id } => {
                write!(f, "no child {id} runs under template {name:?}")
            }
            Error::ShuttingDown { name } => write!(
                f,
                "the supervisor of template {name:?} is shutting down and starts no children"
            ),
            Error::MailboxFull { name } => {
                write!(f, "mailbox {name:?} is full: the message was not sent")
            }
            Error::WrongType {
                name,
                expected,
                found,
            } => write!(
                f,
                "{name:?} was sent a {found} where its receiving side takes a {expected}: it was \
                 not decoded"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } | Error::Listener { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Constructors of the variants the process engine (`supertrees-engine`)
/// makes: `#[non_exhaustive]` variants can not be built outside this crate.
/// The engine's seam, not part of the API.
#[doc(hidden)]
impl Error {
    pub fn os(context: &'static str, source: std::io::Error) -> Self {
        Error::Os { context, source }
    }
    pub fn unenforceable_limit(path: String, field: &'static str, reason: String) -> Self {
        Error::UnenforceableLimit {
            path,
            field,
            reason,
        }
    }
    pub fn listener(name: String, source: std::io::Error) -> Self {
        Error::Listener { name, source }
    }
    pub fn unknown_name(name: String, kind: &'static str) -> Self {
        Error::UnknownName { name, kind }
    }
    pub fn not_owner(name: String, owner: String) -> Self {
        Error::NotOwner { name, owner }
    }
    pub fn timeout(name: String, after: Duration) -> Self {
        Error::Timeout { name, after }
    }
    pub fn no_reply(name: String) -> Self {
        Error::NoReply { name }
    }
    pub fn mailbox_full(name: String) -> Self {
        Error::MailboxFull { name }
    }
    pub fn intensity_exceeded(path: String, max_restarts: u32, within: Duration) -> Self {
        Error::IntensityExceeded {
            path,
            max_restarts,
            within,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_is_at_fault() {
        let unenforceable = Error::UnenforceableLimit {
            path: "root/0".to_owned(),
            field: "processes",
            reason: "there is no pids cgroup for it".to_owned(),
        };
        assert_eq!(
            unenforceable.to_string(),
            "supervisor root/0: its processes limit can not be enforced for its subtree: \
             there is no pids cgroup for it"
        );
        let outside = Error::NotInTree {
            function: "start_child",
        };
        assert_eq!(
            outside.to_string(),
            "supertrees::start_child() called outside a worker of a running tree (it works in a \
             worker's run, and in the threads and tasks a worker started in its process)"
        );
    }
}
