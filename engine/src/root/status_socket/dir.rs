//! Where the socket file goes: a path short enough for a socket address, in
//! a directory only the owner can enter (created with mode 0700 if missing,
//! refused if others can enter it) below directories no other user owns or
//! can write to (sticky ones, like `/tmp`, excepted), and nothing in the way at the socket's
//! path but a stale socket, which is replaced. What is created for a socket
//! that then fails is removed.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;

use super::client::connect_nonblocking;
use super::with_context;

/// The longest path a Unix socket address holds (`sun_path`, without its
/// terminating NUL).
const MAX_SOCKET_PATH: usize = std::mem::size_of::<nix::libc::sockaddr_un>()
    - std::mem::size_of::<nix::libc::sa_family_t>()
    - 1;

/// Fails, before anything is created, when `path` is too long to bind a
/// Unix socket at.
pub(super) fn check_length(path: &Path) -> Result<(), io::Error> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the status socket path {} is too long: {len} bytes, and a Unix socket path \
                 holds at most {MAX_SOCKET_PATH}; pick a shorter one",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses `dir` when a directory above it can be changed by another user
/// (owned by one, or writable by others without the sticky bit): the rule
/// the tree's Unix listeners follow too, in
/// [`trusted_dir`](crate::os::trusted_dir).
pub(super) fn check_ancestors(dir: &Path) -> Result<(), io::Error> {
    crate::os::trusted_dir::check_ancestors(dir, "the status socket")
}

/// Makes sure `dir` exists and only the owner (`uid`) can enter it;
/// whether it was created now. A directory created here and then found
/// unfit is removed again.
pub(super) fn prepare_directory(dir: &Path, uid: u32) -> Result<bool, io::Error> {
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => false,
        Err(err) => {
            return Err(with_context(
                err,
                format!("creating the status socket directory {}", dir.display()),
            ))
        }
    };
    if created {
        tracing::debug!(dir = %dir.display(), "created the status socket directory");
    }
    check_directory(dir, uid, created).inspect_err(|_| {
        if created {
            remove_created_directory(dir);
        }
    })?;
    Ok(created)
}

/// Removes `dir`, which this process created, if it is empty.
pub(super) fn remove_created_directory(dir: &Path) {
    if let Err(err) = std::fs::remove_dir(dir) {
        tracing::debug!(dir = %dir.display(), %err, "leaving the status socket directory");
    }
}

/// Checks that only the owner (`uid`) can enter `dir`; makes it mode 0700
/// first if it was just `created`.
fn check_directory(dir: &Path, uid: u32, created: bool) -> Result<(), io::Error> {
    if created {
        // The umask may have taken bits away; make it exactly 0700.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|err| {
            with_context(
                err,
                format!(
                    "making private the status socket directory {}",
                    dir.display()
                ),
            )
        })?;
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
    use crate::root::status_socket::testing::{exchange, TempDir};
    use crate::root::status_socket::StatusServer;
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
    fn a_too_long_path_is_refused_before_anything_is_created() {
        let dir = TempDir::new("long");
        let fresh = dir.join("fresh");
        let path = fresh.join(format!("{}.sock", "x".repeat(MAX_SOCKET_PATH)));
        let err = StatusServer::bind(&path).expect_err("a too-long path");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("too long"), "{err}");
        assert!(!fresh.exists());
        // The longest path that fits binds.
        let base = dir.join("s").as_os_str().len();
        let longest = dir.join(&format!("s{}", "y".repeat(MAX_SOCKET_PATH - base)));
        assert_eq!(longest.as_os_str().len(), MAX_SOCKET_PATH);
        drop(StatusServer::bind(&longest).expect("the longest path"));
    }

    #[test]
    fn the_directory_made_for_the_socket_goes_with_it() {
        let dir = TempDir::new("made");
        let fresh = dir.join("fresh");
        let server = StatusServer::bind(&fresh.join("status.sock")).expect("bind");
        assert!(fresh.is_dir());
        drop(server);
        assert!(!fresh.exists());
        // A directory that was there stays.
        drop(StatusServer::bind(&dir.join("status.sock")).expect("bind"));
        assert!(dir.join("").is_dir());
    }

    #[test]
    fn directories_above_that_others_can_write_are_refused_unless_sticky() {
        let dir = TempDir::new("ancestors");
        for (name, mode) in [("open", 0o777), ("group", 0o770)] {
            let open = dir.join(name);
            std::fs::create_dir(&open).expect("mkdir");
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let run = open.join("run");
            let err = StatusServer::bind(&run.join("status.sock")).expect_err(name);
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            let message = err.to_string();
            assert!(
                message.contains(&format!("{} above it is writable", open.display())),
                "{message}"
            );
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
            assert!(!run.exists());
            // Deeper down, and through a symlink from a safe place, too.
            std::fs::create_dir(&run).expect("mkdir");
            std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            let deeper = run.join("deeper");
            assert!(StatusServer::bind(&deeper.join("status.sock")).is_err());
            let link = dir.join(&format!("{name}-link"));
            std::os::unix::fs::symlink(&run, &link).expect("symlink");
            let err = StatusServer::bind(&link.join("status.sock")).expect_err("via a symlink");
            assert!(
                err.to_string().contains(&open.display().to_string()),
                "{err}"
            );
        }
        let sticky = dir.join("sticky");
        std::fs::create_dir(&sticky).expect("mkdir");
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let run = sticky.join("run");
        drop(StatusServer::bind(&run.join("status.sock")).expect("under a sticky directory"));
        assert!(!run.exists(), "the server's directory was removed with it");
    }

    #[test]
    fn stale_socket_is_replaced() {
        let dir = TempDir::new("stale");
        let path = dir.join("status.sock");
        drop(UnixListener::bind(&path).expect("bind a socket that will go stale"));
        assert!(path.exists());
        let mut server = StatusServer::bind(&path).expect("replace the stale socket");
        let mut render = |_| "replaced\n".to_owned();
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
