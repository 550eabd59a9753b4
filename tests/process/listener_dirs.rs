//! Where a Unix listener may go: `start()` refuses a socket in a directory
//! another user can change (writable by others, sticky or not; owned by
//! another user), or below one, naming the listener, and makes nothing
//! there; in a private directory the socket file gets mode 0600, or the
//! one `Listen::mode` says. A mode that can not apply (bits beyond 0777, a
//! TCP listener) is refused too.

pub(crate) mod scenario {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    use supertrees::{Listen, Supertree};

    use crate::observe::test_dir;
    use crate::scenario::{report, Life};

    /// Prints `<what>: Ok` or `<what>: Err <error as Debug>`.
    fn outcome(what: &str, result: Result<(), supertrees::Error>) {
        match result {
            Ok(()) => println!("{what}: Ok"),
            Err(err) => println!("{what}: Err {err:?}"),
        }
    }

    /// A fresh directory `name` of `mode` in `base`.
    fn dir(base: &Path, name: &str, mode: u32) -> std::io::Result<PathBuf> {
        let dir = base.join(name);
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
        Ok(dir)
    }

    /// `start()` of a tree with listener `name` at `path`, reported under
    /// `name`, then whether a socket file was left there.
    fn try_listener(name: &str, listen: Listen, path: &Path) {
        let idle = Life::new(|| Box::pin(async {}));
        outcome(
            name,
            Supertree::new()
                .with_listener(name, listen)
                .add_worker(idle)
                .start(),
        );
        println!("{name} socket made {}", path.exists());
    }

    /// The modes of the socket files at `paths`, as the worker sees them.
    fn modes(paths: Vec<(&'static str, PathBuf)>) -> Life {
        Life::new(move || {
            let paths = paths.clone();
            Box::pin(async move {
                let modes: Vec<String> = paths
                    .iter()
                    .map(|(name, path)| {
                        let mode = std::fs::symlink_metadata(path).map_or(0, |m| m.mode() & 0o7777);
                        format!("{name} {mode:04o}")
                    })
                    .collect();
                println!("modes {}", modes.join(" "));
            })
        })
    }

    pub(crate) fn unix_dirs() {
        let base = test_dir();
        let setup = || -> std::io::Result<()> {
            std::fs::create_dir_all(&base)?;
            for (name, mode) in [("open", 0o777), ("sticky", 0o1777), ("group", 0o770)] {
                let dir = dir(&base, name, mode)?;
                let path = dir.join("s.sock");
                try_listener(name, Listen::unix(&path), &path);
            }
            // Private, but below a directory anyone can write to.
            let below = dir(&base.join("open"), "private", 0o700)?;
            let path = below.join("s.sock");
            try_listener("below-open", Listen::unix(&path), &path);
            if nix::unistd::geteuid().is_root() {
                let theirs = dir(&base, "theirs", 0o755)?;
                let nobody = Some(nix::unistd::Uid::from_raw(65534));
                nix::unistd::chown(&theirs, nobody, None)?;
                let path = theirs.join("s.sock");
                try_listener("theirs", Listen::unix(&path), &path);
            } else {
                println!("theirs: skipped (only root can give a directory away)");
            }
            let private = dir(&base, "private", 0o700)?;
            let path = private.join("bad.sock");
            try_listener("bad-mode", Listen::unix(&path).mode(0o7777), &path);
            let tcp = Listen::tcp("127.0.0.1:0".parse().map_err(std::io::Error::other)?);
            try_listener("tcp-mode", tcp.mode(0o660), &path);
            let default = private.join("default.sock");
            let shared = private.join("shared.sock");
            report(
                Supertree::new()
                    .with_listener("default", Listen::unix(&default))
                    .with_listener("shared", Listen::unix(&shared).mode(0o660))
                    .add_worker(modes(vec![("default", default), ("shared", shared)]))
                    .start(),
            );
            Ok(())
        };
        if let Err(err) = setup() {
            println!("setup failed: {err}");
        }
    }
}

pub(crate) mod drive {
    use crate::drive::{expect_count, expect_exit_code, expect_prefix_once};
    use crate::runner::Run;

    pub(crate) fn unix_dirs(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        if let Some(failed) = run.stdout().iter().find(|l| l.starts_with("setup failed")) {
            return Err(failed.clone());
        }
        let mut refused = vec!["open", "sticky", "group", "below-open"];
        if run.count(|l| l.starts_with("theirs: skipped")) == 0 {
            refused.push("theirs");
        }
        for name in refused {
            let got = expect_prefix_once(run, &format!("{name}: "))?;
            let expected = format!("{name}: Err Listener {{ name: \"{name}\"");
            if !got.starts_with(&expected) || !got.contains("refusing to put the socket") {
                return Err(format!(
                    "expected start() to refuse listener {name}, naming it: {got}"
                ));
            }
            expect_count(run, &format!("{name} socket made false"), 1)?;
        }
        for (name, says) in [
            ("bad-mode", "mode 7777 is not a socket file's permissions"),
            ("tcp-mode", "has no socket file"),
        ] {
            let got = expect_prefix_once(run, &format!("{name}: "))?;
            if !got.starts_with(&format!("{name}: Err Listener {{ name: \"{name}\""))
                || !got.contains(says)
            {
                return Err(format!(
                    "expected start() to refuse the mode of {name}: {got}"
                ));
            }
        }
        expect_count(run, "modes default 0600 shared 0660", 1)?;
        expect_prefix_once(run, "returned Ok")?;
        run.note("refused in open, sticky, group-writable, other-owned dirs and below an open one; 0600 by default, 0660 asked".to_owned());
        Ok(())
    }
}
