//! The tree's stop: the listeners it bound stop taking connections, in a
//! way every process of the tree can tell from a worker's mistake.
//!
//! What stops a listener at once, found on Linux: `shutdown(SHUT_RD)` makes
//! a TCP socket leave `LISTEN` (new connections refused, those waiting in
//! the backlog reset). A Unix socket shut down refuses new connections
//! too, but keeps reporting itself readable while `accept` says "would
//! block", and Tokio's `accept` then loops inside one poll for ever,
//! blocking the worker's thread; so a Unix listener's socket file is
//! removed instead (new clients get `ENOENT` at once) and the socket keeps
//! listening: the connections already waiting can still be accepted.
//!
//! A hand-out in any process makes a TCP listener that does not listen
//! listen again (see [`handout`](super::handout)), since a worker may have
//! shut it down. The root's own shutdown must not be undone that way, yet
//! it looks the same on the socket. So the root first sets the tree's stop
//! mark, a flag in memory it made before it forked anything
//! ([`SharedFlag`]), which every process of the tree reads and only the
//! root can set (a worker that writes to it, or to any page it shares,
//! could otherwise keep the root from stopping the listeners); then it
//! shuts the listeners down.
//!
//! A hand-out reads the socket's state first, then the mark, and reads the
//! mark again after it made the socket listen: a socket found not
//! listening because the root shut it down was shut down after the mark
//! was set, so the first read sees the mark; a root that sets the mark
//! after the first read either shuts the socket down after the hand-out
//! made it listen, or is seen by the second read, and the hand-out shuts it
//! down itself. Either way the tree's stop stands.
//!
//! [`SharedFlag`]: crate::os::sys::SharedFlag

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::socket::{self, Shutdown};

use super::TreeListeners;

/// What the tree does to a listener when it stops.
#[derive(Debug, Clone)]
pub(crate) enum OnStop {
    /// Shuts it down: a TCP socket the root bound.
    ShutDown,
    /// Removes its socket file: a Unix socket the root bound.
    Remove(SocketFile),
    /// Leaves it alone: a socket systemd passed, or a Unix socket whose
    /// file could not be told when it was bound.
    Leave,
}

/// A Unix socket file the root made, with its device and inode: only that
/// file is removed, not whatever another process put at its path since.
#[derive(Debug, Clone)]
pub(crate) struct SocketFile {
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl SocketFile {
    /// Removes the file if it is still the one the root made.
    pub(crate) fn remove(&self) {
        let same = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
        if same {
            if let Err(err) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), %err, "could not remove a listener's socket file");
            }
        }
    }
}

/// Stops the listeners the root bound (not those systemd passed) taking
/// connections, once; connections already accepted are left alone.
pub(super) fn stop(tree: &TreeListeners) {
    if tree.stopping.is_set() {
        return;
    }
    tree.stopping.set();
    for bound in &tree.bound {
        let stopped = match &bound.on_stop {
            OnStop::ShutDown => {
                match socket::shutdown(bound.fd.as_raw_fd(), Shutdown::Read) {
                    // ENOTCONN: a socket a worker shut down, not listening.
                    Ok(()) | Err(Errno::ENOTCONN) => true,
                    Err(err) => {
                        tracing::warn!(listener = ?bound.name, %err,
                            "the tree is stopping, but its listener could not be shut down");
                        false
                    }
                }
            }
            OnStop::Remove(file) => {
                file.remove();
                true
            }
            OnStop::Leave => false,
        };
        if stopped {
            tracing::info!(listener = ?bound.name,
                "the tree is stopping: the listener takes no more connections");
        }
    }
}
