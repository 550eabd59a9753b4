//! Where the tree may put a Unix socket: in a directory that no other user
//! can change, below directories that no other user can change either.
//! Whoever can write to the socket's directory, or to one above it, can
//! replace the socket (or the directory) with their own, and the clients
//! then talk to them. One rule for the status socket and for the sockets
//! of [`Listen::unix`](crate::Listen::unix):
//!
//! * a directory owned by another user than this process's (effective)
//!   one and root can be changed by its owner, whatever its mode;
//! * a directory writable by its group or by anyone can be changed by
//!   them, unless it is *above* the socket's directory and sticky (like
//!   `/tmp`): there, others can add entries but not rename or remove ours.
//!
//! * a symbolic link on the path owned by another user than ours and root
//!   can be pointed elsewhere by its owner (in a sticky directory, the
//!   owner of an entry may rename over it).
//!
//! Both the path as given and the one its symlinks resolve to are checked.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Who else than this process's user and root can change a directory with
/// `meta`, if anyone: its owner, its group or anyone. `above`: the
/// directory is above the socket's, where the sticky bit protects our
/// entry.
fn other_writers(meta: &Metadata, uid: u32, above: bool) -> Option<String> {
    if meta.uid() != uid && meta.uid() != 0 {
        return Some(format!(
            "owned by uid {} (not by us, uid {uid}, nor root)",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 == 0 || (above && sticky) {
        return None;
    }
    let who = if mode & 0o002 != 0 {
        "anyone"
    } else {
        "its group"
    };
    let sticky = if sticky {
        ""
    } else {
        " without the sticky bit"
    };
    Some(format!("writable by {who} (mode {mode:04o}){sticky}"))
}

/// The first symbolic link met while resolving `path` (absolute) as the
/// kernel does, component by component, on the path as written or in the
/// target of a link met before, that is owned by another user than `uid`
/// and root: the link, and its owner. Components that do not exist (yet)
/// are taken as written; a chain of more than 40 links is left to the
/// socket's creation to report (`ELOOP`).
fn foreign_link(path: &Path, uid: u32) -> Option<(PathBuf, u32)> {
    use std::collections::VecDeque;
    use std::os::unix::ffi::OsStrExt;
    let mut pending: VecDeque<std::ffi::OsString> = VecDeque::new();
    let push_front = |pending: &mut VecDeque<std::ffi::OsString>, p: &Path| {
        let parts: Vec<std::ffi::OsString> =
            p.components().map(|c| c.as_os_str().to_owned()).collect();
        for part in parts.into_iter().rev() {
            pending.push_front(part);
        }
    };
    push_front(&mut pending, path);
    let mut at = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        match part.as_bytes() {
            b"/" => at = PathBuf::from("/"),
            b"." => {}
            b".." => {
                at.pop();
            }
            _ => {
                let next = at.join(&part);
                let meta = std::fs::symlink_metadata(&next);
                match meta {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        if meta.uid() != uid && meta.uid() != 0 {
                            return Some((next, meta.uid()));
                        }
                        links += 1;
                        let Ok(target) = std::fs::read_link(&next) else {
                            return None;
                        };
                        if links > 40 {
                            return None;
                        }
                        push_front(&mut pending, &target);
                    }
                    _ => at = next,
                }
            }
        }
    }
    None
}

/// The directory that holds the socket at `path` (`.` for a bare file
/// name); an error naming `path` when it names no file (`/`, `..`, or
/// empty), `what` saying what the socket is for (e.g. `a status socket`).
pub(crate) fn socket_dir<'p>(path: &'p Path, what: &str) -> io::Result<&'p Path> {
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(dir) if path.file_name().is_some() => Ok(dir),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a path for {what}", path.display()),
        )),
    }
}

/// `err` with `context` prepended to its message, keeping its kind.
fn with_context(err: io::Error, context: String) -> io::Error {
    io::Error::new(err.kind(), format!("{context}: {err}"))
}

/// `dir` made absolute against the current directory.
fn absolute(dir: &Path) -> io::Result<PathBuf> {
    if dir.is_absolute() {
        return Ok(dir.to_owned());
    }
    let here = std::env::current_dir()
        .map_err(|err| with_context(err, "finding the current directory".to_owned()))?;
    Ok(here.join(dir))
}

/// Refuses `dir`, the directory meant for `what` (e.g. `the status
/// socket`), when a directory above it can be changed by another user
/// (see the module docs). Ancestors that do not exist (yet) are left to
/// the creation to report.
pub(crate) fn check_ancestors(dir: &Path, what: &str) -> io::Result<()> {
    let uid = nix::unistd::geteuid().as_raw();
    let absolute = absolute(dir)?;
    let resolved: Vec<PathBuf> = match std::fs::canonicalize(&absolute) {
        Ok(real) => real.ancestors().skip(1).map(Path::to_owned).collect(),
        // `dir` is to be created: its parent is the first ancestor.
        Err(_) => absolute
            .parent()
            .and_then(|parent| std::fs::canonicalize(parent).ok())
            .map(|real| real.ancestors().map(Path::to_owned).collect())
            .unwrap_or_default(),
    };
    // A symbolic link on the way is replaced (pointed elsewhere) by whoever
    // owns it, wherever it lies (in a sticky directory such as `/tmp`, its
    // owner may rename over it): every link met while resolving the path,
    // on it as written or in a link's target; the directories it leads to
    // are checked through `resolved`.
    if let Some((link, owner)) = foreign_link(&absolute, uid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to put {what} in {}: {} on its way is a symbolic link owned by \
                 uid {owner} (not by us, uid {uid}, nor root), who can point it elsewhere; use a \
                 directory under one only you can write to (such as $XDG_RUNTIME_DIR)",
                dir.display(),
                link.display(),
            ),
        ));
    }
    let lexical = absolute.ancestors().skip(1).map(Path::to_owned);
    for ancestor in lexical.chain(resolved) {
        let meta = match std::fs::metadata(&ancestor) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => {
                return Err(with_context(
                    err,
                    format!(
                        "inspecting {}, above the directory {} for {what}",
                        ancestor.display(),
                        dir.display()
                    ),
                ))
            }
        };
        if let Some(who) = other_writers(&meta, uid, true) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to put {what} in {}: {} above it is {who}, so another user could \
                     replace the socket's directory; use a directory under one only you can \
                     write to (such as $XDG_RUNTIME_DIR)",
                    dir.display(),
                    ancestor.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses `dir`, an existing directory meant to hold the socket of
/// `what`, when another user can change it or a directory above it (see
/// the module docs): others may enter it (to connect), not write to it,
/// sticky or not.
pub(crate) fn check_socket_dir(dir: &Path, what: &str) -> io::Result<()> {
    check_ancestors(dir, what)?;
    let meta = std::fs::metadata(dir).map_err(|err| {
        with_context(
            err,
            format!("inspecting the directory {} for {what}", dir.display()),
        )
    })?;
    let refuse = |reason: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing to put {what} in {}: {reason}", dir.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("it is not a directory".to_owned());
    }
    if let Some(who) = other_writers(&meta, nix::unistd::geteuid().as_raw(), false) {
        return refuse(format!(
            "it is {who}, so another user could replace the socket in it; use a directory only \
             you (or root) can write to"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir_with(mode: u32) -> (PathBuf, Metadata) {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("supertrees-trusted-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let meta = std::fs::metadata(&dir).expect("metadata");
        (dir, meta)
    }

    #[test]
    fn who_else_can_write() {
        let me = nix::unistd::geteuid().as_raw();
        for (mode, above, expected) in [
            (0o700, false, None),
            (0o755, false, None),
            (
                0o777,
                false,
                Some("writable by anyone (mode 0777) without the sticky bit"),
            ),
            (0o1777, false, Some("writable by anyone (mode 1777)")),
            (0o1777, true, None),
            (
                0o770,
                true,
                Some("writable by its group (mode 0770) without the sticky bit"),
            ),
        ] {
            let (dir, meta) = dir_with(mode);
            assert_eq!(
                other_writers(&meta, me, above).as_deref(),
                expected,
                "{mode:o}"
            );
            // Another owner than us and root can change it whatever its mode.
            let other = me.wrapping_add(1).max(1);
            if meta.uid() != 0 {
                assert!(other_writers(&meta, other, above)
                    .is_some_and(|who| who.starts_with(&format!("owned by uid {me}"))));
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
    #[test]
    fn a_link_another_user_owns_on_the_path_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: giving a link to another user needs root");
            return;
        }
        let (base, _) = dir_with(0o1777);
        let private = base.join("private");
        std::fs::create_dir(&private).expect("mkdir");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let link = base.join("app");
        std::os::unix::fs::symlink(&private, &link).expect("symlink");
        // Ours: it leads to a private directory, which is fine.
        assert!(check_socket_dir(&link, "the test socket").is_ok());
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown");
        let err = check_socket_dir(&link, "the test socket").expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string()
                .contains("is a symbolic link owned by uid 65534"),
            "{err}"
        );
        // Below it, too, and through a link of ours that leads to it.
        assert!(check_socket_dir(&link.join("."), "the test socket").is_err());
        let ours = base.join("ours");
        std::os::unix::fs::symlink(&link, &ours).expect("symlink");
        let err = check_socket_dir(&ours, "the test socket").expect_err("refused");
        assert!(err.to_string().contains("/app on its way"), "{err}");
        let relative = base.join("relative");
        std::os::unix::fs::symlink("./app/../app", &relative).expect("symlink");
        assert!(check_socket_dir(&relative, "the test socket").is_err());
        let _ = std::fs::remove_dir_all(&base);
    }
}
