//! File-system work on cgroup directories: writing a control file, making
//! a directory, and emptying and removing a whole subtree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::parse;

/// How long [`remove_tree`] keeps trying while killed processes leave.
const REMOVE_PATIENCE: Duration = Duration::from_millis(100);
/// The pause between two tries of [`remove_tree`].
const REMOVE_PAUSE: Duration = Duration::from_millis(5);

/// `err` with `path` (and what was done) in its message, same kind.
pub(super) fn context(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

/// Writes `value` to the control file `path` (a single `write(2)`, as the
/// kernel wants).
pub(super) fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|err| context(err, "writing", path))
}

/// Makes the directory `path`; one that exists already is fine.
pub(super) fn make(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
            Err(context(err, "creating", path))
        }
        _ => Ok(()),
    }
}

/// `dir` and every directory below it, deepest first (the order to remove
/// them in). Directories that can not be listed are still included.
pub(super) fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(dir, &mut out);
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_owned());
}

/// SIGKILLs every process in the cgroup `dir` and below: at once with
/// `cgroup.kill` where the kernel has it (cgroup v2, Linux 5.14), else one
/// by one from each `cgroup.procs`. The calling process is never killed.
/// Returns how many processes were signalled one by one.
pub(super) fn kill_all(dirs: &[PathBuf]) -> usize {
    if let Some(top) = dirs.last() {
        let kill_file = top.join("cgroup.kill");
        if kill_file.exists() && write(&kill_file, "1").is_ok() {
            return 0;
        }
    }
    let me = nix::unistd::getpid().as_raw();
    let mut killed = 0;
    for dir in dirs {
        let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) else {
            continue;
        };
        for pid in parse::pids(&text) {
            if pid == me {
                tracing::warn!(dir = %dir.display(), "not killing the calling process, which is in a cgroup being removed");
                continue;
            }
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) => killed += 1,
                Err(Errno::ESRCH) => {}
                Err(err) => tracing::debug!(pid, %err, "kill failed"),
            }
        }
    }
    killed
}

/// Kills what is left in the cgroup `dir` and below, then removes the
/// directories bottom-up, trying again for a little while as the killed
/// processes leave. A `dir` that does not exist is removed already.
pub(super) fn remove_tree(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + REMOVE_PATIENCE;
    loop {
        let dirs = subtree(dir);
        kill_all(&dirs);
        let mut last = None;
        for d in &dirs {
            match fs::remove_dir(d) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => last = Some(context(err, "removing", d)),
            }
        }
        match last {
            None => return Ok(()),
            Some(err) if Instant::now() >= deadline => return Err(err),
            Some(_) => std::thread::sleep(REMOVE_PAUSE),
        }
    }
}
