//! Abuse of the guarantees of issue 19, by an adversarial review: each
//! scenario prints what it saw, and its drive fails when the guarantee it
//! attacks does not hold.
//!
//! * `abuse_terminate_flood`: `terminate_child` asked again and again for
//!   a child whose stop takes long: the supervisor must not keep a reply
//!   socket per request (its descriptors must not grow with them).
//! * `abuse_handout_race`: a worker thread dup2s another listening socket
//!   over the descriptor its host inherited, and back, in a loop, while
//!   the worker takes handles: a hand-out must never give out the other
//!   socket.

pub(crate) mod scenario {
    use std::time::Duration;

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use supertrees::{start_child, terminate_child, Listen, RestartPolicy, Shutdown, Supertree};

    use crate::scenario::{report, Life};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn stop_tree(root: u32) {
        let _ = kill(Pid::from_raw(root as i32), Signal::SIGTERM);
    }

    /// How many descriptors process `pid` has open.
    fn fds_of(pid: i32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
    }

    /// A child that listens for its stop but takes 20 s to end.
    fn stuck(_: u32) -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                supertrees::stopping().await;
                std::future::pending::<()>().await;
            })
        });
        // Longer than a request waits (5 s): the flood gets `NoReply`.
        life.shutdown = Shutdown::Timeout(Duration::from_secs(6));
        life
    }

    /// Where the children of template `stuck` note their supervisor's pid
    /// (their host's parent), for the tree whose root is `root`.
    fn note_path(root: u32) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("supertrees-abuse-sup-{root}"))
    }

    /// The supervisor's pid a child noted at `note` (0 if none), the note
    /// removed.
    fn noted_supervisor(note: &std::path::Path) -> i32 {
        let sup = std::fs::read_to_string(note)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let _ = std::fs::remove_file(note);
        sup
    }

    /// A flood of 300 `terminate_child` requests for a child whose stop
    /// takes longer than their 5 s, from another supervisor's worker,
    /// against a supervisor limited to 128 open files: if it kept a reply
    /// socket per request, they would use its descriptors up, and a
    /// `start_child` of an unrelated child would no longer be answered.
    pub(crate) fn terminate_flood() {
        let root = std::process::id();
        let note = note_path(root);
        let written = note.clone();
        let leftover = note.clone();
        let stuck_noting = move |n: u32| {
            let _ = std::fs::write(&written, nix::unistd::getppid().as_raw().to_string());
            stuck(n)
        };
        let flooder = Life::new(move || {
            let note = note.clone();
            Box::pin(async move {
                let id = start_child("stuck", 1u32).await.expect("started");
                tokio::time::sleep(ms(300)).await;
                let sup = noted_supervisor(&note);
                println!("target sup fds before {}", fds_of(sup));
                let asks = (0..300).map(|_| terminate_child("stuck", id));
                let results = futures::future::join_all(asks).await;
                let mut kinds = std::collections::BTreeMap::new();
                for r in &results {
                    let kind = format!("{r:?}");
                    let kind: String = kind.split(['(', '{', ' ']).take(2).collect();
                    *kinds.entry(kind).or_insert(0) += 1;
                }
                println!("flood results {kinds:?}");
                println!("target sup fds after {}", fds_of(sup));
                let at = std::time::Instant::now();
                let after = start_child("stuck", 3u32).await;
                println!("start after: {after:?} in {} ms", at.elapsed().as_millis());
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .add_supervisor(|s| {
                    s.with_limits(supertrees::Limits::new().open_files(128))
                        .add_dynamic("stuck", stuck_noting)
                })
                .add_supervisor(|s| s.add_worker(flooder))
                .start(),
        );
        // Written again by each child built after the worker read it.
        let _ = std::fs::remove_file(leftover);
    }

    /// `start_child` and `terminate_child` to a supervisor that the client
    /// SIGSTOPs, then SIGKILLs: each answers within 5 s.
    pub(crate) fn ask_stopped_supervisor() {
        let root = std::process::id();
        let note = note_path(root);
        let written = note.clone();
        let leftover = note.clone();
        let noting = move |n: u32| {
            let _ = std::fs::write(&written, nix::unistd::getppid().as_raw().to_string());
            let mut life = stuck(n);
            life.shutdown = Shutdown::Timeout(ms(100));
            life
        };
        let client = Life::new(move || {
            let note = note.clone();
            Box::pin(async move {
                let id = start_child("stuck", 1u32).await.expect("started");
                tokio::time::sleep(ms(300)).await;
                let sup = noted_supervisor(&note);
                let pid = Pid::from_raw(sup);
                let _ = kill(pid, Signal::SIGSTOP);
                let at = std::time::Instant::now();
                let got = start_child("stuck", 2u32).await;
                println!(
                    "stopped start: {got:?} after {} ms",
                    at.elapsed().as_millis()
                );
                let at = std::time::Instant::now();
                let got = terminate_child("stuck", id).await;
                println!(
                    "stopped terminate: {got:?} after {} ms",
                    at.elapsed().as_millis()
                );
                let _ = kill(pid, Signal::SIGKILL);
                let _ = kill(pid, Signal::SIGCONT);
                let at = std::time::Instant::now();
                let got = start_child("stuck", 3u32).await;
                println!(
                    "killed start: {got:?} after {} ms",
                    at.elapsed().as_millis()
                );
                let at = std::time::Instant::now();
                let got = terminate_child("stuck", id).await;
                println!(
                    "killed terminate: {got:?} after {} ms",
                    at.elapsed().as_millis()
                );
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_dynamic("stuck", noting))
                .add_supervisor(|s| s.add_worker(client))
                .start(),
        );
        // Written again by each child built after the client read it.
        let _ = std::fs::remove_file(leftover);
    }

    /// 5000 concurrent calls with 50 ms timeouts on a full mailbox (its
    /// server sleeps 1 s), on Tokio: the caller's descriptors are sampled
    /// meanwhile; every call ends by its timeout; then a call is answered.
    pub(crate) fn calls_storm() {
        let root = std::process::id();
        let server = Life::new(|| {
            Box::pin(async {
                let mut inbox = supertrees::inbox::<u32>("q").expect("ours");
                tokio::time::sleep(ms(1000)).await;
                while let Some(envelope) = inbox.recv().await {
                    let n = *envelope.message();
                    envelope.reply(n + 1);
                }
            })
        });
        let client = Life::new(move || {
            Box::pin(async move {
                let q = supertrees::mailbox::<u32>("q").expect("declared");
                let mut held = 0;
                while q.try_send(0).is_ok() {
                    held += 1;
                }
                let own = std::process::id() as i32;
                let before = fds_of(own);
                let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let p = peak.clone();
                let sampler = tokio::spawn(async move {
                    loop {
                        p.fetch_max(fds_of(own), std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(ms(2)).await;
                    }
                });
                let at = std::time::Instant::now();
                let calls = (0..5000u32).map(|n| q.call::<u32>(n, ms(50)));
                let results = futures::future::join_all(calls).await;
                let took = at.elapsed().as_millis();
                sampler.abort();
                let timeouts = results
                    .iter()
                    .filter(|r| matches!(r, Err(supertrees::Error::Timeout { .. })))
                    .count();
                println!(
                    "held {held}; 5000 calls: {timeouts} timeouts in {took} ms; fds before {before}, peak {}",
                    peak.load(std::sync::atomic::Ordering::Relaxed)
                );
                let got = q.call::<u32>(41, ms(3000)).await;
                println!("after: {got:?}; fds {}", fds_of(own));
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .add_supervisor(|s| s.with_mailbox("q").add_worker(server))
                .add_supervisor(|s| s.add_worker(client))
                .start(),
        );
    }

    /// The other descriptors of this process on the same socket as `own`.
    fn inherited(own: i32) -> Vec<i32> {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(format!("/proc/self/fd/{own}"))
            .map(|m| m.ino())
            .expect("inode");
        std::fs::read_dir("/proc/self/fd")
            .expect("fds")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&n: &i32| n != own)
            .filter(|n| {
                std::fs::metadata(format!("/proc/self/fd/{n}")).is_ok_and(|m| m.ino() == ino)
            })
            .collect()
    }

    #[allow(unsafe_code)]
    fn dup2_raw(from: i32, to: i32) {
        // SAFETY: a test that breaks a descriptor on purpose; `to` is
        // the number the host inherited, restored at the end.
        unsafe {
            nix::libc::dup2(from, to);
        }
    }

    pub(crate) fn handout_race() {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let root = std::process::id();
        let racer = Life::new(move || {
            Box::pin(async move {
                let first = supertrees::tcp_listener("web").expect("a handle");
                let web = first.local_addr().expect("addr");
                let numbers = inherited(first.as_raw_fd());
                println!("web on {web}, inherited {numbers:?}");
                let Some(&n) = numbers.first() else {
                    println!("no inherited descriptor found");
                    return stop_tree(root);
                };
                // The tree's socket, kept, and a decoy listener.
                let saved = nix::unistd::dup(&first).expect("dup");
                let decoy = std::net::TcpListener::bind("127.0.0.1:0").expect("decoy");
                let decoy_addr = decoy.local_addr().expect("addr");
                println!("decoy on {decoy_addr}");
                let done = Arc::new(AtomicBool::new(false));
                let flag = done.clone();
                let (saved_raw, decoy_raw) = (saved.as_raw_fd(), decoy.as_raw_fd());
                let flipper = std::thread::spawn(move || {
                    while !flag.load(Ordering::Relaxed) {
                        dup2_raw(decoy_raw, n);
                        dup2_raw(saved_raw, n);
                    }
                });
                let (mut ok, mut wrong, mut refused) = (0u32, 0u32, 0u32);
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_secs(3) {
                    match supertrees::tcp_listener("web") {
                        Ok(handle) => match handle.local_addr() {
                            Ok(addr) if addr == web => ok += 1,
                            Ok(addr) => {
                                if wrong == 0 {
                                    println!("handed out a socket on {addr}, not {web}");
                                }
                                wrong += 1;
                            }
                            Err(_) => wrong += 1,
                        },
                        Err(_) => refused += 1,
                    }
                }
                done.store(true, Ordering::Relaxed);
                flipper.join().expect("flipper");
                dup2_raw(saved_raw, n);
                println!("handouts ok={ok} refused={refused} wrong={wrong}");
                drop(decoy);
                stop_tree(root);
            })
        });
        let mut racer = racer;
        racer.restart = RestartPolicy::Never;
        report(
            Supertree::new()
                .with_listener("web", Listen::tcp("127.0.0.1:0".parse().expect("addr")))
                .add_worker(racer)
                .start(),
        );
    }
}

pub(crate) mod drive {
    use crate::drive::{expect_exit_code, expect_prefix_once};
    use crate::runner::Run;

    fn number(line: &str, after: &str) -> Result<usize, String> {
        line.split(after)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no number after {after:?} in {line:?}"))
    }

    pub(crate) fn terminate_flood(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        for prefix in ["target sup fds before ", "flood results "] {
            run.note(expect_prefix_once(run, prefix)?);
        }
        let before = number(
            &expect_prefix_once(run, "target sup fds before ")?,
            "before ",
        )?;
        let line = expect_prefix_once(run, "target sup fds after ")?;
        run.note(line.clone());
        let after = number(&line, "after ")?;
        if after > before + 50 {
            return Err(format!(
                "the supervisor holds {} more descriptors ({before} -> {after}) after 300 \
                 terminate_child calls that all ended (NoReply) on the caller's side",
                after - before
            ));
        }
        let after = expect_prefix_once(run, "start after: ")?;
        run.note(after.clone());
        if !after.contains("Ok(") {
            return Err(format!(
                "after 300 terminate_child calls that had all ended, a start_child of an \
                 unrelated child is {after:?}"
            ));
        }
        Ok(())
    }

    pub(crate) fn ask_stopped_supervisor(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        let mut late = Vec::new();
        for prefix in [
            "stopped start: ",
            "stopped terminate: ",
            "killed start: ",
            "killed terminate: ",
        ] {
            let line = expect_prefix_once(run, prefix)?;
            run.note(line.clone());
            if number(&line, " after ")? > 5_500 {
                late.push(line);
            }
        }
        if !late.is_empty() {
            return Err(format!("answered after more than 5 s: {late:?}"));
        }
        Ok(())
    }

    pub(crate) fn calls_storm(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        let line = expect_prefix_once(run, "held ")?;
        run.note(line.clone());
        let after = expect_prefix_once(run, "after: ")?;
        run.note(after.clone());
        let before = number(&line, "fds before ")?;
        let peak = number(&line, "peak ")?;
        let took = number(&line, " in ")?;
        if peak > before + 50 || took > 1000 || !after.contains("Ok(42)") {
            return Err(format!("{line}; {after}"));
        }
        Ok(())
    }

    pub(crate) fn handout_race(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        let line = expect_prefix_once(run, "handouts ")?;
        run.note(line.clone());
        let wrong = number(&line, "wrong=")?;
        if wrong > 0 {
            let what = run
                .stdout()
                .into_iter()
                .find(|l| l.starts_with("handed out a socket on "))
                .unwrap_or_default();
            return Err(format!(
                "{wrong} hand-outs gave another socket than the tree's: {what} ({line})"
            ));
        }
        Ok(())
    }
}
