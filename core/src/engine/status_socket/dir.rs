//! Where the socket file goes: a directory only the owner can enter (created
//! with mode 0700 if missing, refused if others can enter it), and nothing
//! in the way at the socket's path but a stale socket, which is replaced.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;

use super::client::connect_nonblocking;
use super::with_context;

/// Makes sure `dir` exists and only the owner (`uid`) can enter it.
pub(super) fn prepare_directory(dir: &Path, uid: u32) -> Result<(), io::Error> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away; make it exactly 0700.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |err| {
                    with_context(
                        err,
                        format!(
                            "making private the status socket directory {}",
                            dir.display()
                        ),
                    )
                },
            )?;
            tracing::debug!(dir = %dir.display(), "created the status socket directory");
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(with_context(
                err,
                format!("creating the status socket directory {}", dir.display()),
            ))
        }
    }
    let meta = std::fs::metadata(dir).map_err(|err| {
        with_context(
            err,
            format!("inspecting the status socket directory {}", dir.display()),
        )
    })?;
    let refuse = |reason: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to put the status socket in {}: {reason}",
                dir.display()
            ),
        ))
    };
    if !meta.is_dir() {
        return refuse("it is not a directory".to_owned());
    }
    if meta.uid() != uid {
        return refuse(format!(
            "it is owned by uid {}, not by us (uid {uid})",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return refuse(format!(
            "its mode is {mode:04o}; group and others must have no access (chmod 700 it)"
        ));
    }
    Ok(())
}

/// Removes a stale socket at `path` (one nothing accepts on); fails on a
/// live socket or a file that is not a socket.
pub(super) fn remove_stale_socket(path: &Path) -> Result<(), io::Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(with_context(
                err,
                format!("inspecting {} for the status socket", path.display()),
            ))
        }
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "can't put the status socket at {}: a file that is not a socket is there",
                path.display()
            ),
        ));
    }
    match connect_nonblocking(path) {
        Err(Errno::ECONNREFUSED) => {
            std::fs::remove_file(path).map_err(|err| {
                with_context(
                    err,
                    format!("removing the stale status socket {}", path.display()),
                )
            })?;
            tracing::info!(path = %path.display(), "replacing a stale status socket");
            Ok(())
        }
        Err(Errno::ENOENT) => Ok(()),
        // EAGAIN: the listener's backlog is full, so it is alive.
        Ok(_) | Err(Errno::EAGAIN) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another process is serving a status socket at {}",
                path.display()
            ),
        )),
        Err(err) => Err(with_context(
            err.into(),
            format!("probing the existing status socket {}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::status_socket::testing::{exchange, TempDir};
    use crate::engine::status_socket::StatusServer;
    use std::os::unix::net::UnixListener;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("metadata").mode() & 0o7777
    }

    #[test]
    fn socket_is_0600_in_a_new_0700_directory() {
        let dir = TempDir::new("modes");
        let run = dir.join("run");
        let path = run.join("status.sock");
        let server = StatusServer::bind(&path).expect("bind");
        assert_eq!(mode(&run), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert!(std::fs::symlink_metadata(&path)
            .expect("metadata")
            .file_type()
            .is_socket());
        drop(server);
    }

    #[test]
    fn open_or_missing_ancestor_directories_are_refused() {
        let dir = TempDir::new("open");
        let open = dir.join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = StatusServer::bind(&open.join("status.sock")).expect_err("an open directory");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let message = err.to_string();
        assert!(message.contains(&open.display().to_string()), "{message}");
        assert!(message.contains("0755"), "{message}");
        // Only the parent is created, never its ancestors.
        let deep = dir.join("a").join("b").join("status.sock");
        let err = StatusServer::bind(&deep).expect_err("a missing grandparent");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!dir.join("a").exists());
        // A parent that is a file.
        let file = dir.join("file");
        std::fs::write(&file, b"").expect("create a file");
        assert!(StatusServer::bind(&file.join("status.sock")).is_err());
    }

    #[test]
    fn stale_socket_is_replaced() {
        let dir = TempDir::new("stale");
        let path = dir.join("status.sock");
        drop(UnixListener::bind(&path).expect("bind a socket that will go stale"));
        assert!(path.exists());
        let mut server = StatusServer::bind(&path).expect("replace the stale socket");
        let mut render = || "replaced\n".to_owned();
        assert_eq!(
            exchange(&mut server, b"status\n", &mut render),
            "replaced\n"
        );
    }

    #[test]
    fn live_socket_and_other_files_are_not_replaced() {
        let dir = TempDir::new("live");
        let path = dir.join("status.sock");
        let _live = StatusServer::bind(&path).expect("bind");
        let err = StatusServer::bind(&path).expect_err("a live socket");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(path.exists());
        let file = dir.join("file");
        std::fs::write(&file, b"keep me").expect("create a file");
        let err = StatusServer::bind(&file).expect_err("a regular file");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
    }
}
