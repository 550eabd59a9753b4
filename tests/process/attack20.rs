//! Attacks on the boundaries between subtrees, the starved-vs-hung
//! watchdog, limits and `Listen::unix` (review of issue 20).
//!
//! * `attack20_stop_mark`: a worker of a `with_user(65534, 65534)` subtree
//!   writes 1 to every shared writable page it finds in its own memory
//!   (`/proc/self/maps`, `rw-s /dev/zero (deleted)`). One of them is the
//!   tree's listener stop mark, shared with every process of the tree,
//!   root-owned ones included. When the tree is then stopped (SIGTERM), the
//!   root finds the mark set and does not shut its listeners down: a
//!   client that connects while the workers drain is taken into the
//!   backlog and left waiting, instead of refused at once. The runner also
//!   lists what the processes of uid 65534 share with root-owned ones.
//! * `attack20_busy_under_quota`: a worker that spins on its host's thread
//!   (a busy loop, silent) in a subtree with `Limits::cpu(0.25)` and a
//!   200 ms watchdog: it must be killed as `hung` within 2 × the period.
//! * `attack20_deadlock_beside_work`: the same subtree; a worker starts a
//!   CPU-bound thread (background work), then blocks its host's executor
//!   thread for good (a deadlock): `hung` within 2 × the period.
//! * `attack20_unix_symlink`: `Listen::unix` under a symbolic link that
//!   another user (65534) owns in a sticky directory (`/tmp`-like), to a
//!   private root-owned directory: the link's owner can point it elsewhere
//!   at any time, so it is a directory another user can change; `start()`
//!   must refuse it. If started, the runner (as that user would) swaps the
//!   link to a directory of its own with a socket of its own, and checks
//!   whether a client that connects to the listener's path reaches the
//!   tree.
//! * `attack20_cgroup_escape`: under a `with_user(65534, 65534)`
//!   supervisor, two limited child supervisors (a tight memory limit, a
//!   loose one). A worker of the tight one tries to move its own host into
//!   every other cgroup leaf (cgroup v1 lets a task's owner move it
//!   wherever it may write `cgroup.procs`): by path, then through every
//!   descriptor of a `cgroup.procs` it or another process of its session
//!   holds (`/proc/<pid>/fd`, `pidfd_getfd`); then it allocates past its
//!   limit. When the leaves were chowned to 65534 it moved and allocated
//!   96 MiB under 32 MiB. It must stay and be reported out of memory; the
//!   runner checks which processes hold `cgroup.procs` descriptors (the
//!   root and the `with_user` supervisor, which fork the limited ones:
//!   no worker host, no limited supervisor once in its cgroup).

/// `attack20_own_user` runs as nobody (see `limits_unprivileged::as_nobody`).
pub(crate) fn own_user_command(exe: &std::path::Path) -> std::process::Command {
    crate::limits_unprivileged::as_nobody(exe, "attack20_own_user")
}

/// `attack20_forged_oom` runs where no cgroup can be made: in a mount
/// namespace of its own with the cgroup v1 memory hierarchy read-only.
pub(crate) fn no_cgroups_command(exe: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        "mount -o remount,ro,bind /sys/fs/cgroup/memory 2>/dev/null; mount -o remount,ro,bind /sys/fs/cgroup 2>/dev/null; exec \"$0\"",
    ])
    .arg(exe)
    .env(crate::SCENARIO_VAR, "attack20_forged_oom");
    cmd
}

/// Set in the environment of this binary (to a directory of
/// `attack20_unix_chmod_race`) to make it the link swapper (see
/// [`swapper`]).
pub(crate) const SWAP_VAR: &str = "SUPERTREES_A20_SWAP";

/// As uid 65534 (run through `setpriv`): points `<dir>/sticky/app`, its
/// own link in a sticky directory, at `<dir>/private` and at its own
/// `<dir>/theirs` in turn, as fast as it can (a new link renamed over the
/// old one), for 60 s at most.
pub(crate) fn swapper(dir: &std::path::Path) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let link = dir.join("sticky/app");
    let tmp = dir.join(format!("sticky/app.{}", std::process::id()));
    let targets = [dir.join("private"), dir.join("theirs")];
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut n = 0usize;
    while std::time::Instant::now() < until {
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(&targets[n % 2], &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, &link);
        }
        n += 1;
    }
    std::process::exit(0)
}

pub(crate) mod scenario {
    use std::io::Write;
    use std::time::{Duration, Instant};

    use supertrees::{Limits, Listen, RestartPolicy, Shutdown, Supertree};

    use crate::observe::now_ms;
    use crate::scenario::{events, lenient, not_root, report, Life};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A worker that waits until stopped, silent; restarted always.
    pub(crate) fn quiet_idle() -> Life {
        let mut life = Life::new(|| Box::pin(std::future::pending::<()>()));
        life.restart = RestartPolicy::Always;
        life
    }

    /// The base of `attack20_unix_symlink`'s kind of layout, made afresh:
    /// `<base>` (root's, 0755), `<base>/sticky` (like /tmp: anyone may add
    /// entries, nobody may remove others'; 1777) and `<base>/private` (the
    /// root's private directory, where the socket is meant to go; 0700).
    /// Returns the last two.
    pub(crate) fn sticky_and_private(
        base: &std::path::Path,
    ) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_dir_all(base);
        std::fs::create_dir(base)?;
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755))?;
        let sticky = base.join("sticky");
        std::fs::create_dir(&sticky)?;
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777))?;
        let private = base.join("private");
        std::fs::create_dir(&private)?;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))?;
        Ok((sticky, private))
    }

    /// Serves listener `app` (Unix, at `path`) with a worker that writes
    /// `genuine` to each client (saying `serving` once it has the listener,
    /// or `listener error: ...`), and reports what `start()` returned.
    pub(crate) fn serve_genuine(path: &std::path::Path) {
        let mut server = Life::new(|| {
            Box::pin(async {
                let listener = match supertrees::unix_listener("app")
                    .and_then(tokio::net::UnixListener::from_std)
                {
                    Ok(l) => l,
                    Err(err) => return println!("listener error: {err}"),
                };
                println!("serving");
                loop {
                    if let Ok((mut conn, _)) = listener.accept().await {
                        use tokio::io::AsyncWriteExt;
                        let _ = conn.write_all(b"genuine\n").await;
                    }
                }
            })
        });
        server.restart = RestartPolicy::Always;
        println!("socket path {}", path.display());
        report(
            Supertree::new()
                .with_listener("app", Listen::unix(path))
                .add_worker(server)
                .start(),
        );
    }

    /// Takes descriptors `0..upto` of process `pid` with `pidfd_getfd`,
    /// hands each to `each`, then closes it: whether `pidfd_open` worked,
    /// and how many it took.
    #[allow(unsafe_code)]
    pub(crate) fn take_fds(pid: i32, upto: i32, mut each: impl FnMut(i32)) -> (bool, usize) {
        // SAFETY: raw system calls on numbers; descriptors got are closed.
        unsafe {
            let pidfd = nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) as i32;
            let mut got = 0;
            if pidfd >= 0 {
                for fd in 0..upto {
                    let stolen =
                        nix::libc::syscall(nix::libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
                    if stolen >= 0 {
                        got += 1;
                        each(stolen);
                        nix::libc::close(stolen);
                    }
                }
                nix::libc::close(pidfd);
            }
            (pidfd >= 0, got)
        }
    }

    /// The shared writable mappings of this process: `(start, length,
    /// line)`.
    pub(crate) fn shared_writable() -> Vec<(usize, usize, String)> {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let range = fields.next()?;
                let perms = fields.next()?;
                if !perms.starts_with("rw") || !perms.ends_with('s') {
                    return None;
                }
                let (a, b) = range.split_once('-')?;
                let a = usize::from_str_radix(a, 16).ok()?;
                let b = usize::from_str_radix(b, 16).ok()?;
                Some((a, b - a, line.to_owned()))
            })
            .collect()
    }

    /// Stores `value` in the first word of the mapping at `start`.
    #[allow(unsafe_code)]
    fn poke(start: usize, value: u32) {
        // SAFETY: `start` is the start of a writable shared mapping of this
        // process, listed in /proc/self/maps just now, page-aligned; an
        // atomic store of a u32 touches nothing else. (That is the attack:
        // the page is shared with other processes.)
        unsafe {
            (*(start as *const std::sync::atomic::AtomicU32))
                .store(value, std::sync::atomic::Ordering::SeqCst)
        };
    }

    /// What this process holds: its descriptors (numbers and targets).
    fn descriptors() -> Vec<String> {
        let mut fds: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let fd = e.file_name().to_string_lossy().parse().ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                Some((fd, target.to_string_lossy().into_owned()))
            })
            .collect();
        fds.sort();
        fds.into_iter().map(|(fd, t)| format!("{fd}={t}")).collect()
    }

    /// What this process can reach of the other processes of its session:
    /// their descriptors through `/proc/<pid>/fd`, `pidfd_getfd`, and
    /// `ptrace` attach.
    #[allow(unsafe_code)]
    fn reach() -> String {
        let me = std::process::id() as i32;
        let sid = nix::unistd::getsid(None).map_or(0, |s| s.as_raw());
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me
                || nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
                    .map_or(0, |s| s.as_raw())
                    != sid
            {
                continue;
            }
            let listed = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map_or_else(|e| e.to_string(), |d| format!("{} fds", d.count()));
            let (pidfd, got) = take_fds(pid, 64, |_| {});
            // SAFETY: PTRACE_ATTACH/DETACH on a pid number; no memory is passed.
            let traced = unsafe {
                let r = nix::libc::ptrace(nix::libc::PTRACE_ATTACH, pid, 0, 0);
                if r == 0 {
                    nix::libc::ptrace(nix::libc::PTRACE_DETACH, pid, 0, 0);
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            out.push(format!(
                "pid {pid}: /proc fd {listed}, pidfd {pidfd}, pidfd_getfd took {got}, ptrace {}",
                traced.map_or_else(|e| e.to_string(), |()| "attached".to_owned())
            ));
        }
        out.join("; ")
    }

    /// The attacker: as uid 65534, lists what it holds and sets every
    /// shared writable page it has.
    fn page_setter() -> Life {
        Life::new(|| {
            Box::pin(async {
                tokio::time::sleep(ms(300)).await;
                println!(
                    "attacker uid {} fds {}",
                    nix::unistd::getuid(),
                    descriptors().join(" ")
                );
                println!("attacker reach: {}", reach());
                let pages = shared_writable();
                for (start, len, line) in &pages {
                    println!("attacker shared mapping {start:#x} +{len}: {line}");
                    poke(*start, 1);
                }
                println!("attacker wrote {} shared pages", pages.len());
                std::future::pending::<()>().await
            })
        })
    }

    /// The attacker of `attack20_forged_oom`: as uid 65534, stores
    /// `ABORTED | NO_MEMORY` (the bits a process's own SIGABRT handler
    /// records when an allocation failed) in every shared writable page it
    /// finds.
    fn oom_forger() -> Life {
        Life::new(|| {
            Box::pin(async {
                tokio::time::sleep(ms(300)).await;
                let pages = shared_writable();
                for (start, len, line) in &pages {
                    println!("forger shared mapping {start:#x} +{len}: {line}");
                    poke(*start, 0b101);
                }
                println!(
                    "forger uid {} wrote {} shared pages",
                    nix::unistd::getuid(),
                    pages.len()
                );
                std::future::pending::<()>().await
            })
        })
    }

    /// Run as root where no cgroup can be made (the runner remounts the
    /// memory hierarchy read-only in a mount namespace of its own), so
    /// `memory` is `RLIMIT_AS` and the root makes an abort mark for
    /// root/0 before it forks it: root/1, a `with_user(65534)` subtree
    /// forked after, shares that page.
    pub(crate) fn forged_oom() {
        if not_root("switching users needs root") {
            return;
        }
        report(
            events(
                Supertree::new()
                    .with_intensity(lenient())
                    .add_supervisor(|s| {
                        s.with_limits(Limits::new().memory(1 << 30))
                            .add_worker(quiet_idle())
                    })
                    .add_supervisor(|s| s.with_user(65534, 65534).add_worker(oom_forger())),
            )
            .start(),
        );
    }

    /// `Listen::unix(<sticky>/app/s.sock).mode(0o666)`, the link `app`
    /// owned by 65534, who re-points it between the root's private
    /// directory and its own, where `s.sock` is a symbolic link to a
    /// root-owned file of mode 0600. The root binds in its directory, then
    /// sets the mode by path (`chmod` follows links): if the link was
    /// swapped in between, the file 65534 chose gets mode 0666. Trees are
    /// started until that happens (at most 3 s: before links were checked,
    /// it took a few starts).
    pub(crate) fn unix_chmod_race() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if not_root("only root can give a link away") {
            return;
        }
        let base = link_base(std::process::id() as i32);
        let nobody = Some(65534);
        let setup = || -> std::io::Result<std::path::PathBuf> {
            let (sticky, private) = sticky_and_private(&base)?;
            // A root-owned file only root may read or write.
            let target = base.join("target");
            std::fs::write(&target, "secret\n")?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
            // 65534's own directory, with a link where the socket would be.
            let theirs = base.join("theirs");
            std::fs::create_dir(&theirs)?;
            std::os::unix::fs::symlink(&target, theirs.join("s.sock"))?;
            std::os::unix::fs::lchown(theirs.join("s.sock"), nobody, nobody)?;
            std::os::unix::fs::chown(&theirs, nobody, nobody)?;
            let link = sticky.join("app");
            std::os::unix::fs::symlink(&private, &link)?;
            std::os::unix::fs::lchown(&link, nobody, nobody)?;
            Ok(link.join("s.sock"))
        };
        let path = match setup() {
            Ok(path) => path,
            Err(err) => return println!("setup failed: {err}"),
        };
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => return println!("setup failed: {err}"),
        };
        let swapper = std::process::Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&exe)
            .env_remove(crate::SCENARIO_VAR)
            .env(super::SWAP_VAR, &base)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let mut swapper = match swapper {
            Ok(child) => child,
            Err(err) => return println!("setup failed: setpriv: {err}"),
        };
        let target = base.join("target");
        let began = Instant::now();
        let (mut attempts, mut ok, mut refused) = (0u64, 0u64, 0u64);
        let mut mode = 0o600;
        while began.elapsed() < Duration::from_secs(3) {
            attempts += 1;
            let mut quick = Life::new(|| Box::pin(async {}));
            quick.restart = RestartPolicy::Never;
            let started = Supertree::new()
                .with_listener("app", Listen::unix(&path).mode(0o666))
                .add_worker(quick)
                .start();
            if started.is_ok() {
                ok += 1;
            } else {
                refused += 1;
            }
            mode = std::fs::metadata(&target).map_or(0, |m| m.mode() & 0o7777);
            if mode != 0o600 {
                break;
            }
        }
        let _ = swapper.kill();
        let _ = swapper.wait();
        println!(
            "chmod race: {attempts} starts ({ok} ran, {refused} refused) in {:.1} s; target mode {mode:04o}",
            began.elapsed().as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A server of listener `web`: says where it listens, then waits to be
    /// asked to stop, and drains for 1.5 s (without accepting: connections
    /// that arrive meanwhile wait in the backlog, if the listener still
    /// listens).
    fn drainer() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                let stop = supertrees::stopping();
                match supertrees::tcp_listener("web").and_then(|l| l.local_addr()) {
                    Ok(addr) => println!("web on {addr}"),
                    Err(err) => return println!("listener error: {err}"),
                }
                stop.await;
                println!("stopping");
                tokio::time::sleep(ms(1500)).await;
                println!("drained");
            })
        });
        life.restart = RestartPolicy::Always;
        life.shutdown = Shutdown::Timeout(Duration::from_secs(5));
        life
    }

    pub(crate) fn stop_mark() {
        if not_root("switching users needs root") {
            return;
        }
        report(
            Supertree::new()
                .add_supervisor(|s| {
                    s.with_listener("web", Listen::tcp(([127, 0, 0, 1], 0).into()))
                        .add_worker(drainer())
                })
                .add_supervisor(|s| s.with_user(65534, 65534).add_worker(page_setter()))
                .start(),
        );
    }

    /// A tree with everything that makes descriptors (events, a status
    /// socket, mailboxes, a template, listeners, a watchdog) and a
    /// `with_user` subtree, for the runner's inventory of what its
    /// processes share.
    pub(crate) fn audit() {
        if not_root("switching users needs root") {
            return;
        }
        let dir = crate::observe::test_dir();
        let idle = || {
            let mut life = Life::new(|| {
                Box::pin(async {
                    println!("idle up");
                    std::future::pending::<()>().await
                })
            });
            life.restart = RestartPolicy::Always;
            life
        };
        report(
            events(
                Supertree::new()
                    .status_socket(dir.join("status.sock"))
                    .with_watchdog(Duration::from_secs(1))
                    .with_mailbox("top")
                    .add_supervisor(|s| {
                        s.with_listener("web", Listen::tcp(([127, 0, 0, 1], 0).into()))
                            .with_mailbox("kv")
                            .add_dynamic("t", |_: u32| {
                                let mut l = Life::new(|| Box::pin(async {}));
                                l.restart = RestartPolicy::Never;
                                l
                            })
                            .add_worker(idle())
                    })
                    .add_supervisor(|s| {
                        s.with_user(65534, 65534)
                            .with_mailbox("own")
                            .add_worker(idle())
                            .add_supervisor(|s| s.add_worker(idle()))
                    })
                    .add_worker(idle()),
            )
            .start(),
        );
    }

    /// Idle workers in five supervisors (each its worker host), all
    /// under one tiny CPU quota (a hundredth of a CPU), watched every
    /// 200 ms, one worker doing cooperative CPU work (it yields between
    /// 1 ms chunks): starved, none hung.
    pub(crate) fn tiny_quota() {
        if not_root("cpu limits need cgroups (root)") {
            return;
        }
        let idle = || {
            let mut life = Life::new(|| {
                Box::pin(async {
                    println!("idle up at {}", now_ms());
                    std::future::pending::<()>().await
                })
            });
            life.restart = RestartPolicy::Always;
            life
        };
        let mut worker = Life::new(|| {
            Box::pin(async {
                println!("cooperative up at {}", now_ms());
                let mut n: u64 = 1;
                loop {
                    let until = Instant::now() + ms(1);
                    while Instant::now() < until {
                        n = std::hint::black_box(n.wrapping_mul(3).wrapping_add(1));
                    }
                    tokio::task::yield_now().await;
                }
            })
        });
        worker.restart = RestartPolicy::Always;
        report(
            events(
                Supertree::new()
                    .with_intensity(lenient())
                    .add_supervisor(|s| {
                        let mut s = s
                            .with_limits(Limits::new().cpu(0.01))
                            .with_watchdog(PERIOD)
                            .with_intensity(lenient())
                            .add_worker(worker)
                            .add_worker(idle());
                        for _ in 0..4 {
                            s = s.add_supervisor(|s| {
                                s.with_intensity(lenient())
                                    .add_worker(idle())
                                    .add_worker(idle())
                            });
                        }
                        s
                    }),
            )
            .start(),
        );
    }

    /// A subtree with `open_files(64)` in a tree that declares 80
    /// mailboxes elsewhere: every process holds a sending socket of each,
    /// so the subtree's processes start above their limit.
    pub(crate) fn open_files_names() {
        let mut tree = Supertree::new()
            .with_intensity(lenient())
            .add_supervisor(|s| {
                s.with_limits(Limits::new().open_files(64))
                    .with_intensity(lenient())
                    .add_worker(whoami())
            });
        for n in 0..80 {
            tree = tree.with_mailbox(&format!("box{n}"));
        }
        report(events(tree).start());
    }

    /// Prints `whoami <uid>` and waits; restarted always.
    pub(crate) fn whoami() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                println!("whoami {}", nix::unistd::getuid());
                std::future::pending::<()>().await
            })
        });
        life.restart = RestartPolicy::Always;
        life
    }

    /// A `with_user(65534)` subtree with a `with_user(65533)` supervisor
    /// below it: once the first has switched, it may switch no more, so
    /// `start()` must refuse (naming `root/0/1`).
    pub(crate) fn nested_users() {
        if not_root("switching users needs root") {
            return;
        }
        report(
            events(Supertree::new().add_supervisor(|s| {
                s.with_user(65534, 65534)
                    .add_worker(whoami())
                    .add_supervisor(|s| s.with_user(65533, 65533).add_worker(whoami()))
            }))
            .start(),
        );
    }

    /// Run as nobody (65534): a subtree `with_user(65534, 65534)`, the
    /// user it already is, which `start()` accepts as needing no privilege.
    pub(crate) fn own_user() {
        if nix::unistd::geteuid().is_root() {
            println!("skipped: not run as another user");
            return;
        }
        report(
            events(Supertree::new().add_supervisor(|s| {
                let (uid, gid) = (
                    nix::unistd::getuid().as_raw(),
                    nix::unistd::getgid().as_raw(),
                );
                s.with_user(uid, gid).add_worker(whoami())
            }))
            .start(),
        );
    }

    /// The marker file of the worker tagged `tag` of the scenarios of
    /// `file` (`a20`, `a20b`), in this session: made by the worker's first
    /// run, so that only that one misbehaves.
    fn marker(file: &str, tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "supertrees-{file}-{tag}-{}",
            nix::unistd::getsid(None).map_or(0, |s| s.as_raw())
        ))
    }

    /// Whether this is the first run of the worker tagged `tag` (of
    /// `file`) in this scenario (see [`marker`]).
    pub(crate) fn first_run(file: &str, tag: &str) -> bool {
        std::fs::File::create_new(marker(file, tag)).is_ok()
    }

    /// Removes the marker of the worker tagged `tag` (of `file`).
    pub(crate) fn remove_marker(file: &str, tag: &str) {
        let _ = std::fs::remove_file(marker(file, tag));
    }

    /// Spins on the host's thread (silent) for 20 s, on its first run.
    fn spinner() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                println!("start {} at {}", std::process::id(), now_ms());
                if first_run("a20", "busy") {
                    tokio::time::sleep(ms(300)).await;
                    println!("spinning at {}", now_ms());
                    let until = Instant::now() + Duration::from_secs(20);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    println!("spun 20 s unharmed at {}", now_ms());
                }
                std::future::pending::<()>().await;
            })
        });
        life.restart = RestartPolicy::Always;
        life
    }

    /// The CPU quota under which the watchdog is judged: a quarter CPU.
    const QUOTA: f64 = 0.25;
    /// The watchdog's period.
    pub(crate) const PERIOD: Duration = Duration::from_millis(200);

    /// Runs `worker` in a subtree of `host` (a supervisor as it is, or
    /// made another user's) with `Limits::cpu(quota)` and a `PERIOD`
    /// watchdog, restarts allowed often (unless not root: skipped).
    pub(crate) fn watched_under_quota(
        host: fn(supertrees::Supervisor) -> supertrees::Supervisor,
        quota: f64,
        worker: Life,
    ) {
        if not_root("cpu limits need cgroups (root)") {
            return;
        }
        report(
            events(
                Supertree::new()
                    .with_intensity(lenient())
                    .add_supervisor(|s| {
                        host(s)
                            .with_limits(Limits::new().cpu(quota))
                            .with_watchdog(PERIOD)
                            .with_intensity(lenient())
                            .add_worker(worker)
                    }),
            )
            .start(),
        );
    }

    pub(crate) fn busy_under_quota() {
        watched_under_quota(|s| s, QUOTA, spinner());
        remove_marker("a20", "busy");
    }

    /// On its first run: starts a thread that computes for 20 s (CPU-bound
    /// background work), then blocks the host's thread for good.
    fn deadlocker() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                println!("start {} at {}", std::process::id(), now_ms());
                if first_run("a20", "deadlock") {
                    tokio::time::sleep(ms(300)).await;
                    std::thread::spawn(|| {
                        let until = Instant::now() + Duration::from_secs(20);
                        let mut n: u64 = 1;
                        while Instant::now() < until {
                            for _ in 0..10_000 {
                                n = std::hint::black_box(
                                    n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                                );
                            }
                        }
                    });
                    println!("blocking at {}", now_ms());
                    let _ = std::io::stdout().flush();
                    // A deadlock: a lock that is never released.
                    let lock = std::sync::Mutex::new(());
                    let _held = lock.lock();
                    std::thread::sleep(Duration::from_secs(20));
                    println!("blocked 20 s unharmed at {}", now_ms());
                }
                std::future::pending::<()>().await;
            })
        });
        life.restart = RestartPolicy::Always;
        life
    }

    pub(crate) fn deadlock_beside_work() {
        watched_under_quota(|s| s, QUOTA, deadlocker());
        remove_marker("a20", "deadlock");
    }

    /// The directories of `attack20_unix_symlink`, under the scenario's
    /// session id: `<tmp>/supertrees-a20-link-<sid>/{sticky,private,theirs}`.
    pub(crate) fn link_base(sid: i32) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("supertrees-a20-link-{sid}"))
    }

    pub(crate) fn unix_symlink() {
        if not_root("only root can give a link away") {
            return;
        }
        let base = link_base(std::process::id() as i32);
        let setup = || -> std::io::Result<std::path::PathBuf> {
            let (sticky, private) = sticky_and_private(&base)?;
            // A link in the sticky directory, made by (owned by) 65534.
            let link = sticky.join("app");
            std::os::unix::fs::symlink(&private, &link)?;
            let nobody = Some(nix::unistd::Uid::from_raw(65534));
            let nogroup = Some(nix::unistd::Gid::from_raw(65534));
            std::os::unix::fs::lchown(
                &link,
                nobody.map(|u| u.as_raw()),
                nogroup.map(|g| g.as_raw()),
            )?;
            Ok(link.join("s.sock"))
        };
        let path = match setup() {
            Ok(path) => path,
            Err(err) => return println!("setup failed: {err}"),
        };
        serve_genuine(&path);
        let _ = std::fs::remove_dir_all(&base);
    }

    /// The `cgroup.procs` files this process holds descriptors of.
    fn held_procs() -> Vec<String> {
        descriptors()
            .into_iter()
            .filter(|d| d.ends_with("/cgroup.procs"))
            .collect()
    }

    /// Tries to write this process's pid to a `cgroup.procs` (not `own`)
    /// through a descriptor it holds, or one another process of its
    /// session holds: opened again through `/proc/<pid>/fd/<n>`, or taken
    /// with `pidfd_getfd`. Returns where it moved, if it did, and what it
    /// saw.
    #[allow(unsafe_code)]
    fn steal_entry(me: u32, own: &str) -> (Option<String>, String) {
        use std::os::unix::fs::OpenOptionsExt;
        let sid = nix::unistd::getsid(None).map_or(0, |s| s.as_raw());
        let mut seen = Vec::new();
        let write_me = |fd: i32| {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
            let link = link.to_string_lossy().into_owned();
            if !link.ends_with("/cgroup.procs") || link.ends_with(own) {
                return None;
            }
            let text = me.to_string();
            // SAFETY: a write of a local buffer to a descriptor number.
            let n = unsafe { nix::libc::write(fd, text.as_ptr().cast(), text.len()) };
            (n > 0).then_some(link)
        };
        let mine: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        for fd in mine {
            if let Some(link) = write_me(fd) {
                return (
                    Some(format!("{link} (through its own {fd})")),
                    String::new(),
                );
            }
        }
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let in_session = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
                .is_ok_and(|s| s.as_raw() == sid);
            if pid == me as i32 || !in_session {
                continue;
            }
            let mut opened = 0;
            for fd in 0..64 {
                let path = format!("/proc/{pid}/fd/{fd}");
                // Non-blocking: a pipe without a reader must not hang it.
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open(&path);
                if let Ok(file) = file {
                    opened += 1;
                    if let Some(link) = write_me(std::os::fd::AsRawFd::as_raw_fd(&file)) {
                        return (Some(format!("{link} (through {path})")), String::new());
                    }
                }
            }
            let mut moved = None;
            let (_, taken) = take_fds(pid, 64, |stolen| {
                moved = moved.take().or_else(|| write_me(stolen));
            });
            if let Some(link) = moved {
                return (
                    Some(format!("{link} (pidfd_getfd of pid {pid})")),
                    String::new(),
                );
            }
            seen.push(format!("pid {pid}: {opened} reopened, {taken} taken"));
        }
        (None, seen.join("; "))
    }

    /// `attack20_cgroup_escape`'s worker in the tight subtree: says which
    /// `cgroup.procs` descriptors its host holds, moves its own host into
    /// every other cgroup leaf it may write to (by path, then through the
    /// descriptors of the other processes of its session), then allocates
    /// and touches 96 MiB.
    fn escaper() -> Life {
        Life::new(|| {
            Box::pin(async {
                tokio::time::sleep(ms(300)).await;
                let me = std::process::id();
                let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                let memory = own
                    .lines()
                    .find_map(|l| {
                        let mut f = l.splitn(3, ':');
                        let c = f.nth(1)?;
                        let p = f.next()?;
                        c.split(',').any(|c| c == "memory").then(|| p.to_owned())
                    })
                    .unwrap_or_default();
                println!(
                    "escaper uid {} in memory cgroup {memory}",
                    nix::unistd::getuid()
                );
                println!("escaper holds cgroup.procs descriptors: {:?}", held_procs());
                // Up to the tree's base: the directory of all its groups.
                let here = std::path::Path::new("/sys/fs/cgroup/memory")
                    .join(memory.trim_start_matches('/'));
                let mut moved_to = None;
                for base in here.ancestors().skip(1).take(4) {
                    for entry in walk(base) {
                        let procs = entry.join("cgroup.procs");
                        if entry == here || !procs.exists() {
                            continue;
                        }
                        if std::fs::write(&procs, me.to_string()).is_ok() {
                            moved_to = Some(entry.clone());
                            break;
                        }
                    }
                    if moved_to.is_some() {
                        break;
                    }
                }
                if moved_to.is_none() {
                    let own = format!("{}/cgroup.procs", here.display());
                    let (stolen, seen) = steal_entry(me, &own);
                    println!("escaper tried the descriptors of its session: {seen}");
                    moved_to = stolen.map(std::path::PathBuf::from);
                }
                match &moved_to {
                    Some(dir) => println!("escaper moved itself to {}", dir.display()),
                    None => println!("escaper could not move"),
                }
                let mut held: Vec<Vec<u8>> = Vec::new();
                for n in 1..=96 {
                    held.push(vec![1u8; 1 << 20]);
                    if n % 32 == 0 {
                        println!("escaper holds {n} MiB");
                    }
                }
                println!("escaper allocated 96 MiB under a 32 MiB limit");
                std::future::pending::<()>().await
            })
        })
    }

    /// Every directory at or below `dir`.
    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = vec![dir.to_owned()];
        let mut n = 0;
        while n < out.len() {
            if let Ok(entries) = std::fs::read_dir(&out[n]) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        out.push(e.path());
                    }
                }
            }
            n += 1;
        }
        out
    }

    pub(crate) fn cgroup_escape() {
        if not_root("switching users needs root") {
            return;
        }
        report(
            events(Supertree::new().add_supervisor(|s| {
                s.with_user(65534, 65534)
                    .add_supervisor(|s| {
                        s.with_limits(Limits::new().memory(32 << 20))
                            .add_worker(escaper())
                    })
                    .add_supervisor(|s| {
                        s.with_limits(Limits::new().memory(1 << 30))
                            .add_worker(quiet_idle())
                    })
                    // Beside them (`root/0/2`): its host is forked by the
                    // supervisor that holds their groups' descriptors.
                    .add_worker(quiet_idle())
            }))
            .start(),
        );
    }

    /// This process's pipe descriptors above 2: `(fd, inode, access mode)`
    /// with `O_ACCMODE` (0 read, 1 write).
    pub(crate) fn pipes() -> Vec<(i32, String, u32)> {
        std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let fd: i32 = e.file_name().to_string_lossy().parse().ok()?;
                let target = std::fs::read_link(e.path())
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                if fd <= 2 || !target.starts_with("pipe:") {
                    return None;
                }
                let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
                let flags = info
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())?;
                Some((fd, target, flags & 3))
            })
            .collect()
    }

    /// `dup2(/dev/null, fd)`: the descriptor number stays taken, the pipe
    /// end it held is closed.
    fn null_over(fd: i32) -> String {
        let null = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            Ok(null) => null,
            Err(err) => return format!("no /dev/null: {err}"),
        };
        use std::os::fd::AsRawFd;
        #[allow(unsafe_code)]
        // SAFETY: dup2 on two descriptor numbers; that it replaces a
        // descriptor the engine owns is the point of the attack.
        let done = unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        if done < 0 {
            format!("dup2 {fd}: {}", std::io::Error::last_os_error())
        } else {
            format!("nulled {fd}")
        }
    }

    /// On its first run (marker `tag` of `file`, see [`first_run`]),
    /// breaks one of its host's pipes (`what`: `notes`, the host's end of
    /// its channel to the supervisor, written only by the host; `signals`,
    /// the read end of the host's signal self-pipe) with `over` (given the
    /// pipe's descriptor and inode, says what it did), then returns;
    /// restarted always.
    pub(crate) fn pipe_breaker(
        file: &'static str,
        tag: &'static str,
        what: &'static str,
        over: fn(i32, &str) -> String,
    ) -> Life {
        let mut life = Life::new(move || {
            Box::pin(async move {
                println!("start {} at {}", std::process::id(), now_ms());
                if !first_run(file, tag) {
                    // Every later run returns after 100 ms: restarted by
                    // its policy, each time.
                    tokio::time::sleep(ms(100)).await;
                    return;
                }
                tokio::time::sleep(ms(200)).await;
                let pipes = pipes();
                let both_here = |inode: &str| pipes.iter().filter(|p| p.1 == inode).count() == 2;
                let target = match what {
                    // A write end whose read end is elsewhere (the supervisor).
                    "notes" => pipes.iter().find(|p| p.2 == 1 && !both_here(&p.1)),
                    // The read end of a pipe whose both ends are here.
                    _ => pipes.iter().find(|p| p.2 == 0 && both_here(&p.1)),
                };
                let done = match target {
                    Some(p) => over(p.0, &p.1),
                    None => format!("no such pipe in {pipes:?}"),
                };
                println!("broke {what}: {done} at {}", now_ms());
                tokio::time::sleep(ms(100)).await;
                println!("returning at {}", now_ms());
            })
        });
        life.restart = RestartPolicy::Always;
        life
    }

    /// `root/0` (made by `host` from a supervisor as it is): `breaker`, and
    /// dynamic child spec `kid`; `root/1`: a worker that starts that child
    /// 600 ms in (a command to `root/0`'s host). `loud`: the starter says
    /// `starting kid at <ms>` first, and the child says when it runs.
    pub(crate) fn broken_pipe_tree(
        kid: &'static str,
        loud: bool,
        host: fn(supertrees::Supervisor) -> supertrees::Supervisor,
        breaker: Life,
    ) {
        // Starts a child of root/0 after 600 ms: a command to its host.
        let mut starter = Life::new(move || {
            Box::pin(async move {
                tokio::time::sleep(ms(600)).await;
                if loud {
                    println!("starting kid at {}", now_ms());
                }
                match supertrees::start_child(kid, 1u32).await {
                    Ok(id) => println!("started kid {id} at {}", now_ms()),
                    Err(err) => println!("start_child failed: {err} at {}", now_ms()),
                }
                std::future::pending::<()>().await
            })
        });
        starter.restart = RestartPolicy::Never;
        let child = move |_: u32| {
            let mut life = Life::new(move || {
                Box::pin(async move {
                    if loud {
                        println!("kid runs at {}", now_ms());
                    } else {
                        println!("kid runs");
                    }
                    std::future::pending::<()>().await
                })
            });
            life.restart = RestartPolicy::Never;
            life
        };
        report(
            events(
                Supertree::new()
                    .with_intensity(lenient())
                    .add_supervisor(|s| {
                        host(s)
                            .with_intensity(lenient())
                            .add_dynamic(kid, child)
                            .add_worker(breaker)
                    })
                    .add_supervisor(|s| s.add_worker(starter)),
            )
            .start(),
        );
    }

    /// [`broken_pipe_tree`] of this file, its breaker putting `/dev/null`
    /// over the pipe `what`.
    fn null_pipe_tree(what: &'static str) {
        let breaker = pipe_breaker("a20", what, what, |fd, _| null_over(fd));
        broken_pipe_tree("a20-kid", false, |s| s, breaker);
        remove_marker("a20", what);
    }

    pub(crate) fn mute_host() {
        null_pipe_tree("notes");
    }

    pub(crate) fn host_signal_pipe() {
        null_pipe_tree("signals");
    }
}

pub(crate) mod drive {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::{ErrorKind, Read};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use crate::drive::{expect_exit_code, line_with, wait_any, wait_line};
    use crate::runner::Run;

    /// What one process holds: uid, descriptors (`socket:[n]`, `pipe:[n]`
    /// with access mode) and shared writable mappings (by device:inode).
    struct Holdings {
        pid: i32,
        uid: u32,
        fds: BTreeSet<String>,
        maps: BTreeSet<String>,
    }

    fn holdings(pid: i32) -> Option<Holdings> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let uid = status
            .lines()
            .find(|l| l.starts_with("Uid:"))?
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()?;
        let mut fds = BTreeSet::new();
        for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            let fdinfo = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let flags = fdinfo
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            let mode = match flags & 3 {
                0 => "r",
                1 => "w",
                _ => "rw",
            };
            if target.starts_with("pipe:") {
                fds.insert(format!("{target}/{mode}"));
            } else {
                fds.insert(target);
            }
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let perms = f.get(1)?;
                if !(perms.starts_with("rw") && perms.ends_with('s')) {
                    return None;
                }
                Some(format!(
                    "shared page {} inode {} {}",
                    f.get(3)?,
                    f.get(4)?,
                    f.get(5..)?.join(" ")
                ))
            })
            .collect();
        Some(Holdings {
            pid,
            uid,
            fds,
            maps,
        })
    }

    /// A descriptor or mapping, the root-owned processes and the uid-65534
    /// processes that hold it.
    type Shared = (String, BTreeSet<i32>, BTreeSet<i32>);

    /// What the processes of uid 65534 hold that a root-owned process of
    /// the tree holds too (excluding stdin/out/err, which the runner
    /// gives all).
    fn shared_items(run: &mut Run) -> Vec<Shared> {
        let all: Vec<Holdings> = run
            .group()
            .into_iter()
            .filter_map(|p| holdings(p.pid))
            .collect();
        let std_streams: BTreeSet<String> = all
            .iter()
            .find(|h| h.pid == run.pid())
            .map(|root| {
                (0..3)
                    .filter_map(|fd| {
                        std::fs::read_link(format!("/proc/{}/fd/{fd}", root.pid))
                            .ok()
                            .map(|t| t.to_string_lossy().into_owned())
                    })
                    .flat_map(|t| {
                        [
                            t.clone(),
                            format!("{t}/r"),
                            format!("{t}/w"),
                            format!("{t}/rw"),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        // What this test process holds too came from outside the tree
        // (cargo's jobserver pipe); an `anon_inode` (a runtime's epoll or
        // eventfd) names no instance, so two processes' can't be told apart.
        let outside = holdings(std::process::id() as i32)
            .map(|h| h.fds)
            .unwrap_or_default();
        let mut found: BTreeMap<String, (BTreeSet<i32>, BTreeSet<i32>)> = BTreeMap::new();
        for h in &all {
            for item in h.fds.iter().chain(&h.maps) {
                if std_streams.contains(item)
                    || outside.contains(item)
                    || item.starts_with("anon_inode:")
                    || item.starts_with('/') && !item.contains("(deleted)")
                {
                    continue;
                }
                let entry = found.entry(item.clone()).or_default();
                if h.uid == 0 {
                    entry.0.insert(h.pid);
                } else {
                    entry.1.insert(h.pid);
                }
            }
        }
        found
            .into_iter()
            .filter(|(_, (root, other))| !root.is_empty() && !other.is_empty())
            .map(|(item, (root, other))| (item, root, other))
            .collect()
    }

    /// [`shared_items`], as text.
    fn shared_with_root(run: &mut Run) -> Vec<String> {
        shared_items(run)
            .into_iter()
            .map(|(item, root, other)| {
                format!("{item}: root pids {root:?}, uid 65534 pids {other:?}")
            })
            .collect()
    }

    /// Whether the scenario said it skipped (`skipped: ...`): if so, notes
    /// why and checks that it exited 0.
    pub(crate) fn skipped(run: &mut Run) -> Result<bool, String> {
        if let Some(line) = run
            .stdout()
            .into_iter()
            .find(|l| l.starts_with("skipped: "))
        {
            run.note(line);
            expect_exit_code(run, 0)?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(crate) fn stop_mark(run: &mut Run) -> Result<(), String> {
        let web = wait_any(run, "the web address, or a skip", &["web on ", "skipped: "])?;
        if skipped(run)? {
            return Ok(());
        }
        let addr: SocketAddr = web["web on ".len()..]
            .parse()
            .map_err(|e| format!("bad address {web:?}: {e}"))?;
        let wrote = wait_line(run, "attacker wrote ")?;
        for shared in shared_with_root(run) {
            run.note(format!("shared with root: {shared}"));
        }
        run.note(wrote);
        run.signal_root(Signal::SIGTERM)?;
        wait_line(run, "stopping")?;
        // The workers drain for 1.5 s: every connection now must be refused.
        let began = Instant::now();
        let (mut refused, mut taken, mut other) = (0, 0, Vec::new());
        let mut held = Vec::new();
        while began.elapsed() < Duration::from_millis(500) {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => refused += 1,
                Ok(stream) => {
                    taken += 1;
                    held.push(stream);
                }
                Err(err) => other.push(err.to_string()),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // What a client left waiting sees in the end.
        let ends: Vec<String> = held
            .iter_mut()
            .take(1)
            .map(|s| {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let mut buf = [0u8; 16];
                match s.read(&mut buf) {
                    Ok(0) => "closed".to_owned(),
                    Ok(n) => format!("{n} bytes"),
                    Err(e) => e.to_string(),
                }
            })
            .collect();
        expect_exit_code(run, 0)?;
        run.note(format!(
            "during the drain: {refused} refused, {taken} taken into the backlog, other {other:?}; a waiting client saw {ends:?}"
        ));
        if taken > 0 {
            return Err(format!(
                "after a uid-65534 worker set the shared stop mark, the tree's stop left its listener listening: {taken} connections made during the drain were taken into the backlog and left waiting (expected: refused at once)"
            ));
        }
        Ok(())
    }

    /// The first `event ... hung` line's time, if any, and when the worker
    /// began to misbehave (`<what> at <ms>`).
    fn hung_after(run: &mut Run, what: &str, within: Duration) -> Result<(), String> {
        let began = wait_line(run, what)?;
        let at = crate::drive::number_after(&began, ' ')?;
        let deadline = Instant::now() + within;
        let mut hung = None;
        while Instant::now() < deadline {
            hung = run
                .stdout()
                .into_iter()
                .find(|l| l.starts_with("event ") && l.contains("hung"));
            if hung.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        let starved = run.stderr_count(|l| l.contains("starved of CPU"));
        match hung {
            Some(line) => {
                let t = crate::drive::number_after(&line, ' ')?;
                run.note(format!("{line} ({} ms after it began)", t.saturating_sub(at)));
                // Within 2 × the period, as the watchdog promises.
                if t.saturating_sub(at) > 400 {
                    return Err(format!("hung only {} ms after it began (at most 400)", t - at));
                }
                Ok(())
            }
            None => Err(format!(
                "a worker that began `{}` at {at} under Limits::cpu(0.25) with a 200 ms watchdog was never reported hung in {within:?} ({starved} 'starved of CPU' log lines)",
                what.trim()
            )),
        }
    }

    /// Once the worker started (or the scenario skipped): it must be
    /// reported hung soon after it began `what` (see [`hung_after`]).
    fn hung_once_started(run: &mut Run, what: &str) -> Result<(), String> {
        let first = wait_any(run, "a start, or a skip", &["start ", "skipped: "])?;
        if first.starts_with("skipped: ") {
            return skipped(run).map(drop);
        }
        hung_after(run, what, Duration::from_secs(5))
    }

    pub(crate) fn busy_under_quota(run: &mut Run) -> Result<(), String> {
        hung_once_started(run, "spinning at ")
    }

    pub(crate) fn deadlock_beside_work(run: &mut Run) -> Result<(), String> {
        hung_once_started(run, "blocking at ")
    }

    /// The start of a `Listen::unix` scenario (see
    /// `scenario::serve_genuine`): `Ok(true)` once its worker is serving;
    /// `Ok(false)` when it skipped, or `start()` refused (as it should: the
    /// scenario passes); an error otherwise.
    pub(crate) fn unix_serving(run: &mut Run) -> Result<bool, String> {
        let first = run.wait_for("serving, an error or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| {
                    l == "serving"
                        || l.starts_with("returned ")
                        || l.starts_with("skipped: ")
                        || l.starts_with("setup failed")
                        || l.starts_with("listener error")
                })
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if skipped(run)? {
            return Ok(false);
        }
        if first.starts_with("returned Err") {
            expect_exit_code(run, 0)?;
            run.note(first);
            return Ok(false);
        }
        if first != "serving" {
            run.signal_root(Signal::SIGTERM)?;
            return Err(first);
        }
        Ok(true)
    }

    /// What uid 65534, the owner of link `<base>/sticky/app`, can do at any
    /// time: point it at a directory of its own (`<base>/theirs`), with a
    /// socket of its own in it; then what a client of the listener's
    /// `path` reads.
    pub(crate) fn impostor_swap(
        base: &std::path::Path,
        path: std::path::PathBuf,
    ) -> std::io::Result<String> {
        use std::io::{BufRead, BufReader, Write};
        use std::os::unix::net::{UnixListener, UnixStream};
        let theirs = base.join("theirs");
        std::fs::create_dir(&theirs)?;
        let impostor = UnixListener::bind(theirs.join("s.sock"))?;
        let nobody = Some(65534);
        std::os::unix::fs::chown(&theirs, nobody, nobody)?;
        // The swap, done by the link's owner itself.
        let link = base.join("sticky/app");
        let swapped = std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "ln",
                "-sfn",
            ])
            .arg(&theirs)
            .arg(&link)
            .status()?;
        if !swapped.success() {
            return Err(std::io::Error::other(format!("ln as 65534: {swapped}")));
        }
        let client = std::thread::spawn(move || -> std::io::Result<String> {
            let mut line = String::new();
            BufReader::new(UnixStream::connect(&path)?).read_line(&mut line)?;
            Ok(line)
        });
        impostor.set_nonblocking(false)?;
        let (mut conn, _) = impostor.accept()?;
        conn.write_all(b"impostor\n")?;
        client
            .join()
            .unwrap_or_else(|_| Ok("client panicked".to_owned()))
    }

    pub(crate) fn unix_symlink(run: &mut Run) -> Result<(), String> {
        use std::io::{BufRead, BufReader};
        use std::os::unix::net::UnixStream;
        if !unix_serving(run)? {
            return Ok(());
        }
        let base = super::scenario::link_base(run.pid());
        let path = base.join("sticky/app/s.sock");
        let genuine = (|| -> std::io::Result<String> {
            let mut line = String::new();
            BufReader::new(UnixStream::connect(&path)?).read_line(&mut line)?;
            Ok(line)
        })();
        let swapped = impostor_swap(&base, path);
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        run.note(format!(
            "before the swap a client read {genuine:?}; after the link's owner swapped it, {swapped:?}"
        ));
        Err(format!(
            "start() accepted Listen::unix under a symbolic link owned by uid 65534 in a sticky directory; after that user re-pointed the link, a client of the listener's path read {swapped:?}"
        ))
    }

    /// The `cgroup.procs` files each process of the scenario holds
    /// descriptors of, as this runner (root) reads `/proc/<pid>/fd`.
    fn procs_holders(run: &mut Run) -> Vec<(i32, Vec<String>)> {
        run.group()
            .into_iter()
            .filter_map(|p| {
                let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", p.pid))
                    .ok()?
                    .flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .filter(|t| t.ends_with("/cgroup.procs"))
                    .collect();
                (!held.is_empty()).then_some((p.pid, held))
            })
            .collect()
    }

    /// The node whose process is `pid`, from the events (`?` if none).
    fn node_of(lines: &[String], pid: i32) -> String {
        let tag = format!(" (pid {pid}): ");
        if lines
            .first()
            .is_some_and(|l| l == &format!("root-pid {pid}"))
        {
            return "root".to_owned();
        }
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("event "))
            .find_map(|l| l.split_once(&tag).map(|(node, _)| node.to_owned()))
            .unwrap_or_else(|| "?".to_owned())
    }

    /// The escaper's moves fail, its host holds no `cgroup.procs`
    /// descriptor, only the supervisors that fork limited supervisors below
    /// the `with_user` one (the root and `root/0`) do, and the escaper is
    /// reported out of memory at its 32 MiB limit.
    pub(crate) fn cgroup_escape(run: &mut Run) -> Result<(), String> {
        let first = wait_any(run, "the escaper, or a skip", &["escaper uid", "skipped: "])?;
        if first.starts_with("skipped: ") {
            return skipped(run).map(drop);
        }
        let held = wait_line(run, "escaper holds cgroup.procs descriptors")?;
        let mv = wait_any(
            run,
            "the escaper's move",
            &["escaper moved", "escaper could not"],
        )?;
        let end = run.wait_for("the escaper's end", |run| {
            run.stdout()
                .into_iter()
                .find(|l| {
                    l.starts_with("escaper allocated")
                        || l.starts_with("event root/0/0/") && l.contains("out of memory")
                })
                .ok_or_else(|| "not yet".to_owned())
        })?;
        let holders = procs_holders(run);
        std::thread::sleep(Duration::from_millis(300));
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        let lines = run.stdout();
        let holders: Vec<(String, i32, Vec<String>)> = holders
            .into_iter()
            .map(|(pid, held)| (node_of(&lines, pid), pid, held))
            .collect();
        run.note(first);
        run.note(held.clone());
        if let Some(tried) = line_with(run, "escaper tried") {
            run.note(tried);
        }
        run.note(mv.clone());
        run.note(end.clone());
        run.note(format!("cgroup.procs descriptors held: {holders:?}"));
        if let Some(done) = lines.iter().find(|l| l.starts_with("escaper allocated")) {
            return Err(format!(
                "a worker of a subtree limited to 32 MiB moved its host out of its cgroup ({mv}) and {done}"
            ));
        }
        if !mv.starts_with("escaper could not") {
            return Err(format!(
                "a worker of a subtree limited to 32 MiB moved its host: {mv}"
            ));
        }
        if !held.ends_with(": []") {
            return Err(format!(
                "the escaper's worker host holds a way into a cgroup: {held}"
            ));
        }
        let strays: Vec<_> = holders
            .iter()
            .filter(|(node, _, _)| node != "root" && node != "root/0")
            .collect();
        if !strays.is_empty() {
            return Err(format!(
                "processes that fork no limited supervisor below the with_user one hold cgroup.procs descriptors: {strays:?}"
            ));
        }
        if !end.contains("out of memory") {
            return Err(format!("the escaper was not reported out of memory: {end}"));
        }
        Ok(())
    }

    /// After the worker broke a pipe of its host and returned: whether it
    /// was started again (within 3 s), and what spins.
    fn broken_pipe(run: &mut Run) -> Result<(), String> {
        let broke = wait_line(run, "broke ")?;
        // Its host may be cut off and killed before it returns (`notes`):
        // then it runs again in a new host.
        run.wait_for("the worker's run after the break", |run| {
            let returned = run.count(|l| l.starts_with("returning at "));
            let starts = run.count(|l| l.starts_with("start "));
            (returned > 0 || starts >= 2)
                .then_some(())
                .ok_or_else(|| "not yet".to_owned())
        })?;
        let kid = wait_line(run, "start")?;
        let _ = wait_any(
            run,
            "the kid's start",
            &["started kid", "start_child failed"],
        );
        let _ = kid;
        let spin = crate::boundaries::drive::spinning(run);
        // Every run after the first returns after 100 ms and is restarted
        // (10 ms backoff): ~20 runs in these 2 s, each an `Exited` event.
        let starts = run.count(|l| l.starts_with("start "));
        let exits = run.count(|l| l.starts_with("event root/0/0") && l.contains("restarting"));
        let restarted = starts >= 5 && exits + 2 >= starts;
        run.note(format!(
            "in 2 s after the break: {starts} starts, {exits} restart events reached the root"
        ));
        // wait_for fails only at the scenario's deadline: stop before it.
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        run.note(broke.clone());
        for line in run.stdout().into_iter().filter(|l| l.contains("kid")) {
            run.note(line);
        }
        let mut broken = Vec::new();
        if !spin.is_empty() {
            broken.push(format!("processes spinning after it: {spin:?}"));
        }
        if !restarted {
            broken.push(format!("after the break, the worker ran {starts} times but the root saw {exits} of its restarts"));
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken.join("; "))
        }
    }

    pub(crate) fn mute_host(run: &mut Run) -> Result<(), String> {
        broken_pipe(run)
    }

    pub(crate) fn host_signal_pipe(run: &mut Run) -> Result<(), String> {
        broken_pipe(run)
    }

    pub(crate) fn audit(run: &mut Run) -> Result<(), String> {
        let first = run.wait_for("the tree up, or a skip", |run| {
            let up = run.count(|l| l == "idle up");
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("skipped: "))
                .or_else(|| (up >= 4).then(|| "up".to_owned()))
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if first.starts_with("skipped: ") {
            return skipped(run).map(drop);
        }
        std::thread::sleep(Duration::from_millis(300));
        for p in run.group() {
            if let Some(h) = holdings(p.pid) {
                run.note(format!(
                    "pid {} uid {}: {:?} {:?}",
                    h.pid, h.uid, h.fds, h.maps
                ));
            }
        }
        // The root makes every descriptor and hands each on to the processes
        // whose role needs it; a pipe's write end is the event pipe, which
        // supervisors share (a supervisor of another user can't be reached
        // by its workers: it is not dumpable). Anything else shared between
        // a root-owned process and one of uid 65534 is a channel between
        // two privilege domains.
        let mut crossing = Vec::new();
        for (item, root_pids, _) in shared_items(run) {
            let only_the_root = root_pids.iter().all(|&p| p == run.pid());
            let event_pipe = item.starts_with("pipe:") && item.ends_with("/w");
            if !only_the_root && !event_pipe {
                crossing.push(item);
            }
        }
        for shared in shared_with_root(run) {
            run.note(format!("shared with root: {shared}"));
        }
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        if crossing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "root-owned processes other than the root share with uid-65534 processes: {crossing:?}"
            ))
        }
    }

    /// Either `start()` refused at once (`returned Err`), or, the tree
    /// running, whether the worker of every supervisor ran within 3 s.
    /// `refusal`: `start()` must fail with an error that contains it;
    /// `None`: the tree must run, and the worker of every supervisor within
    /// 3 s.
    fn users_outcome(
        run: &mut Run,
        workers: usize,
        what: &str,
        refusal: Option<&str>,
    ) -> Result<(), String> {
        let first = run.wait_for("a start or an answer", |run| {
            run.stdout()
                .into_iter()
                .find(|l| {
                    l.starts_with("returned ")
                        || l.starts_with("skipped: ")
                        || l.starts_with("event ")
                })
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if first.starts_with("skipped: ") {
            return skipped(run).map(drop);
        }
        if first.starts_with("returned Err") {
            run.note(first.clone());
            expect_exit_code(run, 0)?;
            return match refusal {
                Some(want) if first.contains(want) => Ok(()),
                Some(want) => Err(format!("{what}: refused, but not naming {want:?}")),
                None => Err(format!("{what}: start() refused a tree it can run")),
            };
        }
        if let Some(want) = refusal {
            run.signal_root(Signal::SIGTERM)?;
            let _ = expect_exit_code(run, 0);
            return Err(format!(
                "{what}: start() accepted the tree; expected it refused with {want:?}"
            ));
        }
        std::thread::sleep(Duration::from_secs(3));
        let ran = run.count(|l| l.starts_with("whoami "));
        let setup_failures = run.count(|l| l.starts_with("event ") && l.contains("set up"));
        run.signal_root(Signal::SIGTERM)?;
        let _ = expect_exit_code(run, 0);
        let failed_lines: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("event ") && l.contains("set up"))
            .take(2)
            .collect();
        if ran >= workers {
            return Ok(());
        }
        Err(format!(
            "{what}: start() accepted the tree, then {ran} of {workers} workers ran in 3 s; {setup_failures} setup-failure events, e.g. {failed_lines:?}"
        ))
    }

    pub(crate) fn nested_users(run: &mut Run) -> Result<(), String> {
        users_outcome(
            run,
            2,
            "with_user(65533) below with_user(65534)",
            Some("Privilege { path: \"root/0/1\""),
        )
    }

    pub(crate) fn own_user(run: &mut Run) -> Result<(), String> {
        users_outcome(run, 1, "run as 65534, with_user(65534, 65534)", None)
    }

    pub(crate) fn tiny_quota(run: &mut Run) -> Result<(), String> {
        let first = wait_any(run, "a start, or a skip", &["cooperative up", "skipped: "])?;
        if first.starts_with("skipped: ") {
            return skipped(run).map(drop);
        }
        std::thread::sleep(Duration::from_secs(10));
        let ups = run.count(|l| l.starts_with("idle up"));
        run.signal_root(Signal::SIGTERM)?;
        let _ = expect_exit_code(run, 0);
        let hung: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("event ") && l.contains("hung"))
            .collect();
        run.note(format!(
            "{ups} idle starts (9 workers); {} starved log lines",
            run.stderr_count(|l| l.contains("starved of CPU"))
        ));
        if hung.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} processes starved under a 0.01 CPU quota were killed as hung: {:?}",
                hung.len(),
                hung.iter().take(3).collect::<Vec<_>>()
            ))
        }
    }

    pub(crate) fn open_files_names(run: &mut Run) -> Result<(), String> {
        users_outcome(
            run,
            1,
            "open_files(64) in a tree of 80 mailboxes",
            Some("UnenforceableLimit { path: \"root/0\", field: \"open_files\""),
        )
    }

    pub(crate) fn forged_oom(run: &mut Run) -> Result<(), String> {
        let first = wait_any(run, "the forger, or a skip", &["forger uid", "skipped: "])?;
        if first.starts_with("skipped: ") {
            return skipped(run).map(drop);
        }
        let started = wait_line(run, "event root/0 (pid ")?;
        let pid = crate::drive::pid_in(&started)?;
        let plan = run.stderr_count(|l| l.contains("RLIMIT_AS"));
        // Some other reason for a SIGABRT than memory: here, a signal.
        run.signal(pid, Signal::SIGABRT)?;
        let exited = run.wait_for("root/0's exit", |run| {
            run.stdout()
                .into_iter()
                .find(|l| {
                    (l.starts_with("event root/0:")
                        || l.starts_with(&format!("event root/0 (pid {pid}):")))
                        && (l.contains("restarting")
                            || l.contains("killed")
                            || l.contains("out of memory"))
                })
                .ok_or_else(|| "not yet".to_owned())
        })?;
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        run.note(first);
        run.note(format!("{plan} log lines name RLIMIT_AS"));
        run.note(exited.clone());
        if exited.contains("out of memory") {
            return Err(format!(
                "root/0 (root-owned, RLIMIT_AS memory limit) was sent SIGABRT by another process after a uid-65534 worker wrote the shared abort page: reported {exited:?}, expected killed by SIGABRT"
            ));
        }
        Ok(())
    }

    pub(crate) fn unix_chmod_race(run: &mut Run) -> Result<(), String> {
        let line = run.wait_for("the race's end, or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| {
                    l.starts_with("chmod race: ")
                        || l.starts_with("skipped: ")
                        || l.starts_with("setup failed")
                })
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if skipped(run)? {
            return Ok(());
        }
        expect_exit_code(run, 0)?;
        run.note(line.clone());
        if line.starts_with("setup failed") {
            return Err(line);
        }
        if !line.ends_with("target mode 0600") {
            return Err(format!(
                "a root-owned file of mode 0600, chosen by uid 65534 (the owner of a link on the listener's path), was chmodded by the tree's start(): {line}"
            ));
        }
        Ok(())
    }
}
