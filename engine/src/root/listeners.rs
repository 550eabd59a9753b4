//! Binding the tree's listeners ([`Listen`]) in the root, before anything
//! is forked (Unix sockets only in directories no other user can change,
//! with their mode), and removing their Unix socket files when the tree
//! ends.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use nix::sys::socket::{
    self, bind, getsockname, listen, AddressFamily, Backlog, SockFlag, SockType, SockaddrLike,
    SockaddrStorage, UnixAddr,
};
use nix::sys::stat::Mode;

use crate::listen::{
    self, is_stale_socket, Bound, Family, OnStop, SocketFile, Source, TreeListeners, BACKLOG,
    DEFAULT_MODE,
};
use crate::os::sys::{self, SharedFlag};
use crate::os::trusted_dir;
use crate::tree::Supervisor;
use crate::{Error, Listen};

/// The tree's listeners, bound and made the tree's (see [`listen`]) until
/// this is dropped, when the tree has ended (in the root: forked processes
/// end with `_exit` and never drop it); then their Unix socket files are
/// removed.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    tree: Option<Arc<TreeListeners>>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        listen::set_bound(None);
        if let Some(tree) = &self.tree {
            remove_files(&tree.bound);
        }
    }
}

/// Removes the socket files of the Unix listeners in `bound`, if they are
/// still the ones the root made.
fn remove_files(bound: &[Bound]) {
    for bound in bound {
        if let OnStop::Remove(file) = &bound.on_stop {
            file.remove();
        }
    }
}

impl Listeners {
    /// Binds every listener declared below `root`.
    ///
    /// # Errors
    ///
    /// [`Error::Listener`] naming the first that can not be bound (or is
    /// declared twice, or is missing from systemd's sockets).
    pub(crate) fn bind(root: &Supervisor) -> Result<Self, Error> {
        let declared: Vec<(String, String, Listen)> = root
            .supervisors("root")
            .into_iter()
            .flat_map(|(path, sup)| {
                sup.listeners
                    .iter()
                    .map(move |(name, listen)| (name.clone(), path.clone(), listen.clone()))
            })
            .collect();
        if declared.is_empty() {
            return Ok(Listeners::default());
        }
        let mut bound = Vec::new();
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (name, owner, _) in &declared {
            if let Some(first) = seen.insert(name, owner) {
                return Err(failed(
                    name,
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("declared twice, by {first} and by {owner}"),
                    ),
                ));
            }
        }
        for (name, _, listen) in &declared {
            check_mode(listen).map_err(|err| failed(name, err))?;
        }
        let mut activated = if declared
            .iter()
            .any(|(_, _, listen)| matches!(listen.source, Source::Systemd(_)))
        {
            systemd_sockets().map_err(|err| failed(&declared[0].0, err))?
        } else {
            HashMap::new()
        };
        for (name, owner, listen) in declared {
            match bind_one(name, owner, listen, &mut activated) {
                Ok(one) => bound.push(one),
                Err(err) => {
                    remove_files(&bound);
                    return Err(err);
                }
            }
        }
        let stopping = match SharedFlag::new() {
            Ok(flag) => flag,
            Err(errno) => {
                remove_files(&bound);
                return Err(Error::os("making the listeners' stop mark", errno.into()));
            }
        };
        let tree = Arc::new(TreeListeners {
            bound,
            stopping: Arc::new(stopping),
        });
        listen::set_bound(Some(tree.clone()));
        Ok(Listeners { tree: Some(tree) })
    }
}

/// Refuses a [`Listen::mode`] that is not for a Unix socket the tree
/// binds, or has other bits than the permission bits.
fn check_mode(listen: &Listen) -> io::Result<()> {
    let Some(mode) = listen.mode else {
        return Ok(());
    };
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    match &listen.source {
        Source::Unix(_) if mode & !0o777 != 0 => refuse(format!(
            "mode {mode:04o} is not a socket file's permissions: only the bits 0777 (read, \
             write, execute for its owner, group and others) apply, not setuid, setgid, sticky \
             or a file type"
        )),
        Source::Unix(_) => Ok(()),
        Source::Tcp(addr) => refuse(format!(
            "mode {mode:04o} is for Unix sockets the tree binds; tcp {addr} has no socket file"
        )),
        Source::Systemd(wanted) => refuse(format!(
            "mode {mode:04o} is for Unix sockets the tree binds; systemd socket {wanted:?} has \
             the mode its .socket unit gives it (SocketMode=)"
        )),
    }
}

/// Binds listener `name` of supervisor `owner` (or takes it from the
/// sockets systemd passed, `activated`).
fn bind_one(
    name: String,
    owner: String,
    listen: Listen,
    activated: &mut HashMap<String, OwnedFd>,
) -> Result<Bound, Error> {
    let named = |err: io::Error| failed(&name, err);
    let (fd, family, on_stop) = match &listen.source {
        Source::Tcp(addr) => (
            bind_tcp(addr).map_err(named)?,
            Family::Tcp,
            OnStop::ShutDown,
        ),
        Source::Unix(path) => {
            let fd = bind_unix(path, listen.mode.unwrap_or(DEFAULT_MODE)).map_err(named)?;
            let on_stop = match std::fs::symlink_metadata(path) {
                Ok(meta) => OnStop::Remove(SocketFile {
                    path: path.clone(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                }),
                Err(_) => OnStop::Leave,
            };
            (fd, Family::Unix, on_stop)
        }
        Source::Systemd(wanted) => {
            let fd = activated.remove(wanted.as_str()).ok_or_else(|| {
                named(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("systemd passed no socket named {wanted:?} (LISTEN_FDNAMES)"),
                ))
            })?;
            let family = family_of(&fd).map_err(named)?;
            (fd, family, OnStop::Leave)
        }
    };
    let identity = listen::identity(&fd).map_err(named)?;
    let addr = match family {
        Family::Tcp => Some(getsockname(fd.as_raw_fd()).map_err(|e| named(e.into()))?),
        Family::Unix => None,
    };
    tracing::info!(listener = %name, supervisor = %owner, source = %listen, "listening");
    Ok(Bound {
        name,
        owner,
        family,
        fd,
        identity,
        addr,
        on_stop,
        reported: AtomicBool::new(false),
    })
}

fn failed(name: &str, source: io::Error) -> Error {
    Error::listener(name.to_owned(), source)
}

/// A non-blocking, close-on-exec stream socket of `family`.
fn stream_socket(family: AddressFamily) -> io::Result<OwnedFd> {
    Ok(socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?)
}

fn start_listening(fd: &OwnedFd) -> io::Result<()> {
    let backlog = Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN);
    Ok(listen(fd, backlog)?)
}

/// Binds `addr` (std sets `SO_REUSEADDR` and close-on-exec), then listens
/// with the tree's longer backlog, non-blocking.
fn bind_tcp(addr: &std::net::SocketAddr) -> io::Result<OwnedFd> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let fd = OwnedFd::from(listener);
    // A second `listen` on a listening socket only sets its backlog.
    start_listening(&fd)?;
    Ok(fd)
}

/// Binds a Unix socket at `path` with permissions `mode`, in a directory
/// no other user can change (see [`trusted_dir`]), replacing a stale
/// socket file there and refusing anything else: never follows a symlink,
/// never removes what is not a socket.
fn bind_unix(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let dir = trusted_dir::socket_dir(path, "a socket")?;
    trusted_dir::check_socket_dir(dir, &format!("the socket {}", path.display()))?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let what = if meta.file_type().is_symlink() {
            Some("a symbolic link")
        } else if !meta.file_type().is_socket() {
            Some("not a socket")
        } else if !is_stale_socket(path) {
            Some("a socket in use")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is {what}; it was left alone", path.display()),
            ));
        }
        tracing::info!(path = %path.display(), "replacing a stale socket file (left by a tree that was killed?)");
        std::fs::remove_file(path)?;
    }
    let fd = stream_socket(AddressFamily::Unix)?;
    // The socket file is made with the socket's own mode less the umask,
    // so it is never more open than `mode`, not even before the `chmod`
    // below (a new socket's mode is 0777; no umask is changed).
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    // Exactly `mode`, whatever the umask (or a default ACL) made of it.
    let ready = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .and_then(|()| start_listening(&fd));
    if let Err(err) = ready {
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    Ok(fd)
}

/// Whether `fd` is a TCP or a Unix socket.
fn family_of(fd: &OwnedFd) -> io::Result<Family> {
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    match addr.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => Ok(Family::Tcp),
        Some(AddressFamily::Unix) => Ok(Family::Unix),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("systemd passed a socket of family {other:?}, not TCP or Unix"),
        )),
    }
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// The sockets systemd passed this process, by name, taken once: the
/// `LISTEN_*` variables are removed from the environment.
fn systemd_sockets() -> io::Result<HashMap<String, OwnedFd>> {
    let vars = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"].map(std::env::var_os);
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // The root is single-threaded here: nothing reads the environment
        // meanwhile.
        std::env::remove_var(var);
    }
    let [pid, fds, names] = vars;
    let passed = passed_sockets(pid, fds, names, std::process::id())?;
    passed
        .into_iter()
        .map(|(name, fd)| Ok((name, sys::take_passed_fd(fd)?)))
        .collect()
}

/// What the `LISTEN_*` variables say this process was passed: each socket's
/// name and descriptor.
fn passed_sockets(
    pid: Option<OsString>,
    fds: Option<OsString>,
    names: Option<OsString>,
    me: u32,
) -> io::Result<Vec<(String, i32)>> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::NotFound, what);
    let pid = pid.and_then(|p| p.into_string().ok()).ok_or_else(|| {
        invalid(
            "LISTEN_PID is not set: the tree was not started by systemd socket activation".into(),
        )
    })?;
    if pid.parse::<u32>().ok() != Some(me) {
        return Err(invalid(format!(
            "LISTEN_PID is {pid}, not this process ({me})"
        )));
    }
    let count: i32 = fds
        .and_then(|n| n.into_string().ok())
        .and_then(|n| n.parse().ok())
        .filter(|&n| (0..=1024).contains(&n))
        .ok_or_else(|| invalid("LISTEN_FDS is not a number of sockets".into()))?;
    let names: Vec<String> = names
        .and_then(|n| n.into_string().ok())
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    Ok((0..count)
        .map(|i| {
            let name = names
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned());
            (name, FIRST_FD + i)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(s.into())
    }

    #[test]
    fn the_listen_variables_name_the_passed_sockets() {
        let passed = passed_sockets(os("42"), os("2"), os("http:admin"), 42).expect("valid");
        assert_eq!(passed, [("http".to_owned(), 3), ("admin".to_owned(), 4)]);
        let unnamed = passed_sockets(os("42"), os("1"), None, 42).expect("valid");
        assert_eq!(unnamed, [("unknown".to_owned(), 3)]);
        let other = passed_sockets(os("41"), os("1"), None, 42).unwrap_err();
        assert_eq!(other.to_string(), "LISTEN_PID is 41, not this process (42)");
        assert!(passed_sockets(None, os("1"), None, 42).is_err());
        assert!(passed_sockets(os("42"), os("many"), None, 42).is_err());
    }

    #[test]
    fn a_unix_path_that_is_not_a_stale_socket_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("supertrees-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("file");
        std::fs::write(&file, b"keep").expect("file");
        let err = bind_unix(&file, DEFAULT_MODE).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not a socket; it was left alone"),
            "{err}"
        );
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let err = bind_unix(&link, DEFAULT_MODE).unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert_eq!(std::fs::read(&file).expect("kept"), b"keep");
        // A stale socket (its listener gone) is replaced.
        let sock = dir.join("sock");
        drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
        let fd = bind_unix(&sock, DEFAULT_MODE).expect("stale socket replaced");
        // One in use is not.
        let err = bind_unix(&sock, DEFAULT_MODE).unwrap_err();
        assert!(err.to_string().contains("a socket in use"), "{err}");
        drop(fd);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh directory of `mode` under `base`.
    fn dir(base: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let dir = base.join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
        dir
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("metadata").mode() & 0o7777
    }

    /// A fresh private directory for a test, removed on drop.
    struct Base(std::path::PathBuf);

    impl Base {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("supertrees-listen-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir(&path).expect("mkdir");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            Self(path)
        }
    }

    impl Drop for Base {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_unix_socket_goes_only_where_no_other_user_can_change_it() {
        let base = Base::new("dirs");
        let base = base.0.as_path();
        // Writable by others, sticky or not: refused, naming the directory.
        for (name, mode) in [("open", 0o777), ("sticky", 0o1777), ("group", 0o770)] {
            let open = dir(base, name, mode);
            let sock = open.join("s.sock");
            let err = bind_unix(&sock, DEFAULT_MODE).expect_err(name);
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{name}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("in {}: it is writable by", open.display())),
                "{message}"
            );
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
            assert!(!sock.exists(), "{name}");
            // Below it, however private the socket's own directory is,
            // unless it is sticky (like /tmp).
            let private = dir(&open, "private", 0o700);
            let below = private.join("s.sock");
            if mode & 0o1000 != 0 {
                drop(bind_unix(&below, DEFAULT_MODE).expect("below a sticky directory"));
                continue;
            }
            let err = bind_unix(&below, DEFAULT_MODE).expect_err(name);
            let message = err.to_string();
            assert!(
                message.contains(&format!("{} above it is writable", open.display())),
                "{message}"
            );
            // Through a symlink from a safe place, too.
            let link = base.join(format!("{name}-link"));
            std::os::unix::fs::symlink(&private, &link).expect("symlink");
            let err = bind_unix(&link.join("s.sock"), DEFAULT_MODE).expect_err("a link");
            assert!(
                err.to_string().contains(&open.display().to_string()),
                "{err}"
            );
        }
        // Ours, others may enter but not write: bound, 0600 by default.
        for (name, mode) in [("private", 0o700), ("enterable", 0o755)] {
            let ours = dir(base, name, mode);
            let sock = ours.join("s.sock");
            let fd = bind_unix(&sock, DEFAULT_MODE).expect(name);
            assert_eq!(mode_of(&sock), 0o600, "{name}");
            drop(fd);
            std::fs::remove_file(&sock).expect("remove");
        }
        // A mode of its own, exactly, whatever the umask; and through a
        // symlink to a safe directory.
        let link = base.join("private-link");
        std::os::unix::fs::symlink(base.join("private"), &link).expect("symlink");
        let sock = link.join("shared.sock");
        let _fd = bind_unix(&sock, 0o660).expect("bound");
        assert_eq!(mode_of(&sock), 0o660);
        // A missing directory is not made.
        let err = bind_unix(&base.join("missing").join("s.sock"), DEFAULT_MODE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(!base.join("missing").exists());
    }

    #[test]
    fn a_directory_another_user_owns_is_refused_whatever_its_mode() {
        if !nix::unistd::geteuid().is_root() {
            return; // Only root can give a directory away.
        }
        let base = Base::new("owner");
        let theirs = dir(&base.0, "theirs", 0o755);
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::chown(&theirs, nobody, None).expect("chown");
        let err = bind_unix(&theirs.join("s.sock"), DEFAULT_MODE).unwrap_err();
        assert!(
            err.to_string().contains("it is owned by uid 65534"),
            "{err}"
        );
        // Above the socket's directory too.
        let below = dir(&theirs, "ours", 0o700);
        let err = bind_unix(&below.join("s.sock"), DEFAULT_MODE).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "{} above it is owned by uid 65534",
                theirs.display()
            )),
            "{err}"
        );
    }

    /// Listener `name` of `listen` in a tree, bound.
    fn bind_tree(name: &str, listen: Listen) -> Result<Listeners, Error> {
        let tree =
            crate::tree::TreeParts::from(crate::Supertree::new().with_listener(name, listen));
        Listeners::bind(&tree.root)
    }

    #[test]
    fn a_mode_that_can_not_apply_is_refused_naming_the_listener() {
        let base = Base::new("modes");
        let unix = base.0.join("s.sock");
        for (listen, says) in [
            (
                Listen::unix(&unix).mode(0o7777),
                "mode 7777 is not a socket file's permissions",
            ),
            (
                Listen::unix(&unix).mode(0o100600),
                "mode 100600 is not a socket file's permissions",
            ),
            (
                Listen::tcp("127.0.0.1:0".parse().expect("an address")).mode(0o660),
                "tcp 127.0.0.1:0 has no socket file",
            ),
            (
                Listen::systemd("http").mode(0o660),
                "systemd socket \"http\" has the mode its .socket unit gives it",
            ),
        ] {
            match bind_tree("api", listen.clone()) {
                Err(Error::Listener { name, source, .. }) => {
                    assert_eq!(name, "api");
                    assert_eq!(source.kind(), io::ErrorKind::InvalidInput);
                    assert!(source.to_string().contains(says), "{listen}: {source}");
                }
                other => panic!("{listen}: {other:?}"),
            }
            assert!(!unix.exists());
        }
        // In a directory others can write to: refused, naming it.
        let open = dir(&base.0, "open", 0o777);
        match bind_tree("api", Listen::unix(open.join("s.sock"))) {
            Err(err @ Error::Listener { .. }) => {
                let message = err.to_string();
                assert!(
                    message.starts_with("listener \"api\": refusing to put"),
                    "{message}"
                );
                assert!(message.contains(&open.display().to_string()), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_address_in_use_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind_tcp(&addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
