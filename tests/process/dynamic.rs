//! Children started at run time under load: many callers starting children
//! while others end and free their places, and ids across restarts of the
//! supervisor that declared the template. And the status `on_ready` sees
//! when many supervisors become ready at once.

pub(crate) mod scenario {
    use std::sync::Arc;
    use std::time::Duration;

    use supertrees::{start_child, terminate_child, Error, RestartPolicy, Supertree};

    use crate::scenario::{report, Life};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// How many callers start children at once, and how many each starts.
    pub(crate) const CALLERS: u64 = 8;
    pub(crate) const STARTS: u64 = 400;

    /// A job: prints its argument when it runs, and ends after 5-25 ms
    /// (chosen from the argument), not restarted.
    fn job(k: u64) -> Life {
        let mut job = Life::new(move || {
            Box::pin(async move {
                println!("ran {k}");
                tokio::time::sleep(ms(5 + (k * 7919) % 21)).await;
            })
        });
        job.restart = RestartPolicy::Never;
        job
    }

    /// `CALLERS` workers start `STARTS` jobs each with unique arguments
    /// under a supervisor that runs at most 16 at once (a caller turned
    /// away waits a moment and asks again); each prints the id it got.
    /// Every event about a job is printed.
    pub(crate) fn dynamic_race() {
        let root = std::process::id();
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tree = Supertree::new()
            .on_event(|e| {
                if e.path.contains('#') {
                    println!("event {e}");
                }
            })
            .add_supervisor(|s| s.add_dynamic("job", job).with_max_children(16));
        for caller in 0..CALLERS {
            let done = done.clone();
            let mut worker = Life::new(move || {
                let done = done.clone();
                Box::pin(async move {
                    for n in 0..STARTS {
                        let k = caller * STARTS + n;
                        loop {
                            match start_child("job", k).await {
                                Ok(id) => {
                                    println!("ok {k} {id}");
                                    break;
                                }
                                Err(Error::TooManyChildren { .. }) => {
                                    tokio::time::sleep(ms(1)).await;
                                }
                                Err(err) => {
                                    println!("failed {k}: {err}");
                                    break;
                                }
                            }
                        }
                    }
                    if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == CALLERS {
                        // The last jobs end within 25 ms.
                        tokio::time::sleep(ms(300)).await;
                        println!("callers done");
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(root as i32),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                })
            });
            worker.restart = RestartPolicy::Never;
            tree = tree.add_worker(worker);
        }
        report(tree.start());
    }

    /// A supervisor with children started at run time is SIGKILLed
    /// between starts: the ids of its next incarnation are new, an id of
    /// the old one is unknown, and the old children leave the status.
    pub(crate) fn dynamic_ids_restart() {
        let root = std::process::id();
        let idle = |k: u64| {
            let mut idle = Life::new(move || {
                Box::pin(async move {
                    println!(
                        "child {k} in {} under {}",
                        std::process::id(),
                        nix::unistd::getppid()
                    );
                    std::future::pending::<()>().await
                })
            });
            idle.restart = RestartPolicy::Always;
            idle
        };
        let mut client = Life::new(move || {
            Box::pin(async move {
                let mut old = Vec::new();
                for k in 0..3u64 {
                    old.push(start_child("t", k).await.expect("started"));
                }
                let shown: Vec<String> = old.iter().map(ToString::to_string).collect();
                println!("old ids {}", shown.join(" "));
                // The runner SIGKILLs the supervisor now and says so.
                tokio::time::sleep(ms(1500)).await;
                let mut new = Vec::new();
                for k in 10..13u64 {
                    new.push(start_child("t", k).await.expect("started again"));
                }
                let shown: Vec<String> = new.iter().map(ToString::to_string).collect();
                println!("new ids {}", shown.join(" "));
                for id in &old {
                    match terminate_child("t", *id).await {
                        Err(Error::UnknownChild { .. }) => println!("old {id} unknown"),
                        other => println!("old {id} answered {other:?}"),
                    }
                }
                tokio::time::sleep(ms(200)).await;
                match supertrees::query_status(status_socket()) {
                    Ok(text) => {
                        for line in text.lines().filter(|l| l.contains('#')) {
                            println!(
                                "status {}",
                                line.trim_start_matches([' ', '├', '└', '─', '│'])
                            );
                        }
                        println!("status read");
                    }
                    Err(err) => println!("status failed: {err}"),
                }
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(root as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            })
        });
        client.restart = RestartPolicy::Never;
        report(
            Supertree::new()
                .status_socket(status_socket())
                .on_event(move |e| {
                    if e.path.contains('#') {
                        println!("event {e}");
                    }
                })
                .add_supervisor(|s| s.add_dynamic("t", idle))
                .add_worker(client)
                .start(),
        );
    }

    /// Many nested supervisors with many workers start at once; `on_ready`
    /// prints every node its status does not show up (ready, or a running
    /// worker host).
    pub(crate) fn ready_status() {
        ready_status_tree(false);
    }

    /// The same with an `on_event` callback (whose events are queued).
    pub(crate) fn ready_status_events() {
        ready_status_tree(true);
    }

    fn ready_status_tree(events: bool) {
        let worker = || {
            let mut w = Life::new(|| Box::pin(std::future::pending::<()>()));
            w.restart = RestartPolicy::Always;
            w
        };
        let mut tree = Supertree::new().on_ready(|status| {
            let mut nodes = 0;
            for node in status.nodes() {
                nodes += 1;
                let up = match node.kind {
                    supertrees::NodeKind::WorkerHost => {
                        node.state == supertrees::NodeState::Running
                    }
                    _ => node.state == supertrees::NodeState::Ready,
                };
                if !up {
                    println!("not ready at on_ready: {} {:?}", node.path, node.state);
                }
            }
            println!("on_ready saw {nodes} nodes");
        });
        if events {
            tree = tree.on_event(|_| {});
        }
        for _ in 0..12 {
            tree = tree.add_supervisor(|s| {
                let mut s = s.add_supervisor(|s| {
                    let mut s = s;
                    for _ in 0..10 {
                        s = s.add_worker(worker());
                    }
                    s
                });
                for _ in 0..10 {
                    s = s.add_worker(worker());
                }
                s
            });
        }
        let root = std::process::id();
        let mut stop = Life::new(move || {
            Box::pin(async move {
                tokio::time::sleep(ms(1500)).await;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(root as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            })
        });
        stop.restart = RestartPolicy::Never;
        report(tree.add_worker(stop).start());
    }

    /// A start answered `Ok` has run: one job blocks its host for 300 ms,
    /// 20 more are started meanwhile, and the supervisor is SIGKILLed
    /// 30 ms after the first; every start answered `Ok` before that ran.
    pub(crate) fn dynamic_ok_ran() {
        let root = std::process::id();
        let job = |k: u64| {
            let mut job = Life::new(move || {
                Box::pin(async move {
                    println!("ran {k}");
                    if k == 0 {
                        // A blocking call in async code: its host is busy.
                        std::thread::sleep(ms(300));
                    }
                    std::future::pending::<()>().await
                })
            });
            job.restart = RestartPolicy::Always;
            job
        };
        let mut client = Life::new(move || {
            Box::pin(async move {
                let supervisor = supervisor_pid("root/0");
                let first = start_child("job", 0u64).await;
                println!("first {first:?}");
                let starts = (1..=20u64).map(|k| async move {
                    match start_child("job", k).await {
                        Ok(id) => println!("ok {k} {id}"),
                        Err(err) => println!("err {k} {err}"),
                    }
                });
                let kill = async {
                    tokio::time::sleep(ms(30)).await;
                    println!("killing the supervisor");
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(supervisor),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                };
                futures::future::join(futures::future::join_all(starts), kill).await;
                tokio::time::sleep(ms(500)).await;
                println!("callers done");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(root as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            })
        });
        client.restart = RestartPolicy::Never;
        report(
            Supertree::new()
                .status_socket(status_socket())
                .add_supervisor(move |s| s.add_dynamic("job", job))
                .add_worker(client)
                .start(),
        );
    }

    /// A supervisor (not restarted) with a worker and a child supervisor
    /// is SIGKILLed: nothing below it shows up in the status afterwards
    /// (no node keeps a pid), its children started at run time included.
    pub(crate) fn status_no_ghosts() {
        let root = std::process::id();
        let idle = || {
            let mut w = Life::new(|| Box::pin(std::future::pending::<()>()));
            w.restart = RestartPolicy::Always;
            w
        };
        let mut client = Life::new(move || {
            Box::pin(async move {
                start_child("t", 1u64).await.expect("started");
                tokio::time::sleep(ms(300)).await;
                let supervisor = supervisor_pid("root/0");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(supervisor),
                    nix::sys::signal::Signal::SIGKILL,
                );
                tokio::time::sleep(ms(500)).await;
                let text = supertrees::query_status(status_socket()).unwrap_or_default();
                for line in text.lines() {
                    let line = line.trim_start_matches([' ', '├', '└', '─', '│']);
                    if line.starts_with("root/0") && line.contains(" pid ") {
                        println!("ghost {line}");
                    }
                }
                println!("status read");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(root as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            })
        });
        client.restart = RestartPolicy::Never;
        report(
            Supertree::new()
                .status_socket(status_socket())
                .add_supervisor(move |s| {
                    s.with_restart_policy(RestartPolicy::Never)
                        .add_worker(idle())
                        .add_supervisor(|s| s.add_worker(idle()))
                        .add_dynamic("t", move |_: u64| idle())
                })
                .add_worker(client)
                .start(),
        );
    }

    /// The pid of supervisor `path`, from the status socket, once it shows
    /// one (its start event may not have reached the root yet).
    fn supervisor_pid(path: &str) -> i32 {
        for _ in 0..500 {
            let text = supertrees::query_status(status_socket()).unwrap_or_default();
            let pid = text
                .lines()
                .map(|l| l.trim_start_matches([' ', '├', '└', '─', '│']))
                .find(|l| l.starts_with(&format!("{path}  ")))
                .and_then(|l| l.split("pid ").nth(1))
                .and_then(|rest| rest.split(' ').next())
                .and_then(|pid| pid.parse().ok());
            if let Some(pid) = pid.filter(|&pid: &i32| pid > 0) {
                return pid;
            }
            std::thread::sleep(ms(10));
        }
        panic!("no pid of {path} in the status after 5 s");
    }

    fn status_socket() -> std::path::PathBuf {
        crate::observe::test_dir().join("status.sock")
    }
}

pub(crate) mod drive {
    use std::collections::{HashMap, HashSet};

    use nix::sys::signal::Signal;

    use super::scenario::{CALLERS, STARTS};
    use crate::drive::{expect_exit_code, expect_prefix_once, wait_line};
    use crate::runner::Run;

    /// Every argument a start returned `Ok` for ran exactly once, nothing
    /// else ran, every id is new, and every job that ran has one `Exited`
    /// and one `Removed` event.
    pub(crate) fn dynamic_race(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "callers done")?;
        let lines = run.stdout();
        let mut ok: HashMap<u64, String> = HashMap::new();
        let mut ids = HashSet::new();
        let mut ran: HashMap<u64, usize> = HashMap::new();
        let mut exited: HashMap<String, usize> = HashMap::new();
        let mut removed: HashMap<String, usize> = HashMap::new();
        for line in &lines {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["ok", k, id] => {
                    let k: u64 = k.parse().map_err(|_| format!("bad line {line:?}"))?;
                    if !ids.insert(id.to_string()) {
                        return Err(format!("id {id} given twice"));
                    }
                    ok.insert(k, id.to_string());
                }
                ["ran", k] => {
                    let k: u64 = k.parse().map_err(|_| format!("bad line {line:?}"))?;
                    *ran.entry(k).or_default() += 1;
                }
                ["failed", ..] => return Err(format!("a start failed: {line}")),
                ["event", ..] => {
                    let (head, text) = line["event ".len()..].split_once(": ").unwrap_or(("", ""));
                    let path = head.split(' ').next().unwrap_or("").to_owned();
                    if text == "removed" {
                        *removed.entry(path).or_default() += 1;
                    } else if text.starts_with("exited")
                        || text.starts_with("killed")
                        || text.starts_with("stopped")
                    {
                        *exited.entry(path).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        let total = CALLERS * STARTS;
        if ok.len() as u64 != total {
            return Err(format!("{} of {total} starts returned Ok", ok.len()));
        }
        let never: Vec<u64> = ok
            .keys()
            .filter(|k| !ran.contains_key(k))
            .copied()
            .collect();
        let twice: Vec<(u64, usize)> = ran
            .iter()
            .filter(|(_, &n)| n != 1)
            .map(|(k, n)| (*k, *n))
            .collect();
        let stray: Vec<u64> = ran
            .keys()
            .filter(|k| !ok.contains_key(k))
            .copied()
            .collect();
        if !never.is_empty() || !twice.is_empty() || !stray.is_empty() {
            return Err(format!(
                "{} arguments never ran (e.g. {:?}), {} ran more than once (e.g. {:?}), {} ran without a start",
                never.len(),
                never.iter().take(5).collect::<Vec<_>>(),
                twice.len(),
                twice.iter().take(5).collect::<Vec<_>>(),
                stray.len()
            ));
        }
        for id in ok.values() {
            let path = format!("root/0/job#{id}");
            let (e, r) = (
                exited.get(&path).copied().unwrap_or(0),
                removed.get(&path).copied().unwrap_or(0),
            );
            if (e, r) != (1, 1) {
                return Err(format!(
                    "{path}: {e} exited and {r} removed events; expected 1 and 1"
                ));
            }
        }
        Ok(())
    }

    /// `on_ready`'s status shows every node up: 12 supervisors of 10
    /// workers, each with a child supervisor of 10, and their hosts.
    pub(crate) fn ready_status(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        let not_ready: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("not ready at on_ready: "))
            .collect();
        if !not_ready.is_empty() {
            return Err(format!(
                "{} nodes not ready in on_ready's status: {not_ready:#?}",
                not_ready.len()
            ));
        }
        // root, its host and stopper, 12 × (supervisor, host, 10 workers,
        // child supervisor, its host, 10 workers).
        let expected = 3 + 12 * 24;
        expect_prefix_once(run, &format!("on_ready saw {expected} nodes")).map(drop)
    }

    /// Every start answered `Ok` ran, the supervisor SIGKILLed or not.
    pub(crate) fn dynamic_ok_ran(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "callers done")?;
        expect_prefix_once(run, "first Ok(")?;
        let lines = run.stdout();
        let never: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("ok "))
            .filter(|l| {
                let k = l.split(' ').nth(1).unwrap_or("");
                !lines.iter().any(|r| *r == format!("ran {k}"))
            })
            .collect();
        if !never.is_empty() {
            return Err(format!("starts answered Ok that never ran: {never:?}"));
        }
        let refused = lines.iter().filter(|l| l.starts_with("err ")).count();
        run.note(format!(
            "{} starts answered Ok (all ran), {refused} NoReply after the SIGKILL",
            lines.iter().filter(|l| l.starts_with("ok ")).count()
        ));
        Ok(())
    }

    pub(crate) fn status_no_ghosts(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "status read")?;
        let ghosts: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("ghost "))
            .collect();
        if ghosts.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "nodes of a SIGKILLed supervisor still show a pid: {ghosts:#?}"
            ))
        }
    }

    pub(crate) fn dynamic_ids_restart(run: &mut Run) -> Result<(), String> {
        let line = wait_line(run, "old ids ")?;
        let child = wait_line(run, "child 2 in ")?;
        let supervisor: i32 = child
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no supervisor pid in {child:?}"))?;
        run.signal(supervisor, Signal::SIGKILL)?;
        expect_exit_code(run, 0)?;
        let old: Vec<String> = line["old ids ".len()..]
            .split(' ')
            .map(str::to_owned)
            .collect();
        let new_line = expect_prefix_once(run, "new ids ")?;
        let new: Vec<String> = new_line["new ids ".len()..]
            .split(' ')
            .map(str::to_owned)
            .collect();
        if let Some(id) = new.iter().find(|id| old.contains(id)) {
            return Err(format!(
                "id {id} given again after the supervisor's restart: old {old:?}, new {new:?}"
            ));
        }
        expect_prefix_once(run, "status read")?;
        for id in &old {
            let path = format!("root/0/t#{id} ");
            if let Some(line) = run
                .stdout()
                .iter()
                .find(|l| l.starts_with("status ") && l.contains(&path))
            {
                return Err(format!(
                    "the old incarnation's child is still in the status: {line}"
                ));
            }
        }
        for id in &new {
            let path = format!("root/0/t#{id} ");
            if !run
                .stdout()
                .iter()
                .any(|l| l.starts_with("status ") && l.contains(&path))
            {
                return Err(format!(
                    "the new child {id} is not in the status: {:#?}",
                    run.stdout()
                ));
            }
        }
        for id in &old {
            let unknown = format!("old {id} unknown");
            if run.count(|l| l == unknown) != 1 {
                return Err(format!(
                    "terminate_child of old id {id}: {:?}",
                    run.stdout()
                        .iter()
                        .find(|l| l.starts_with(&format!("old {id} ")))
                ));
            }
            let path = format!("root/0/t#{id}");
            let exited = run.count(|l| {
                l.starts_with(&format!("event {path}"))
                    && !l.ends_with(" worker started")
                    && !l.ends_with(": ready")
                    && !l.ends_with(": removed")
            });
            let removed = run.count(|l| *l == format!("event {path}: removed"));
            if exited < 1 || removed != 1 {
                return Err(format!(
                    "{path} of the old incarnation: {exited} exited and {removed} removed events"
                ));
            }
        }
        Ok(())
    }
}
