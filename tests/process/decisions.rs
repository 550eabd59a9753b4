//! One decision-maker: restart decisions taken on one state whether a worker
//! host restarts in place or its supervisor does, exits reported as they
//! happened (no meaning read into exit codes, stops read as stops), and the
//! same decisions in simulation and in processes.

/// A run counter kept in a file of the scenario's directory, so it survives
/// the death of the worker host that counts.
fn next_run(name: &str) -> u32 {
    let dir = super::observe::test_dir();
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("runs-{name}"));
    let runs = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    let _ = std::fs::write(&file, runs.to_string());
    runs
}

pub(crate) mod scenario {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use supertrees::testing::{run_simulated, FakeTimer};
    use supertrees::{
        BackoffPolicy, BoxFuture, EventKind, RestartPolicy, Restartable, Strategy, Supertree,
        Timer, Worker,
    };

    use super::next_run;
    use crate::observe::now_ms;
    use crate::scenario::{report, Life};

    /// Panics on its first four runs, then prints `start w <ms>` and runs
    /// until stopped. `Always`, backoff 20 ms ×2, no reset within the test.
    struct FailsFourTimes;

    impl Worker for FailsFourTimes {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                if next_run("w") <= 4 {
                    panic!("failure on purpose");
                }
                println!("start w {}", now_ms());
                std::future::pending::<()>().await;
            })
        }
    }

    impl Restartable for FailsFourTimes {
        fn backoff_policy(&self) -> BackoffPolicy {
            let ms = Duration::from_millis;
            BackoffPolicy::new(ms(20), ms(10_000), Duration::from_secs(600), 2.0)
        }
    }

    /// Four in-place restarts, then the runner SIGKILLs the host: the fifth
    /// consecutive failure waits 320 ms.
    pub(crate) fn lease_backoff() {
        let tree = Supertree::new()
            .add_worker(FailsFourTimes)
            .on_event(|event| println!("event {event} @{}", now_ms()));
        report(tree.start());
    }

    /// Calls `std::process::exit(3)` on its first run (killing its host with
    /// code 3); prints `start x` and returns on its second. `Once`.
    struct ExitsWithThree;

    impl Worker for ExitsWithThree {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                if next_run("x") == 1 {
                    std::process::exit(3);
                }
                println!("start x");
            })
        }
    }

    impl Restartable for ExitsWithThree {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Once
        }
    }

    /// Prints `start root/1/0 <pid>`, runs until stopped; its future takes
    /// 100 ms to drop, then prints `dropped root/1/0 <pid>`.
    struct SlowDrop;

    struct SlowGuard;

    impl Drop for SlowGuard {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(100));
            println!("dropped root/1/0 {}", std::process::id());
        }
    }

    impl Worker for SlowDrop {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                let _guard = SlowGuard;
                println!("start root/1/0 {}", std::process::id());
                std::future::pending::<()>().await;
            })
        }
    }

    impl Restartable for SlowDrop {}

    /// A worker that exits its host with code 3, and a supervisor stopped
    /// by the runner's SIGTERM to the root.
    pub(crate) fn exit_codes() {
        let tree = Supertree::new()
            .add_worker(ExitsWithThree)
            .add_supervisor(|s| s.add_worker(SlowDrop))
            .on_event(|event| println!("event {event}"));
        report(tree.start());
    }

    /// What one run of a scripted worker does.
    #[derive(Clone, Copy)]
    enum Step {
        Panic,
        Return,
        Forever,
    }

    /// A worker that plays its script, one step per run (the last step
    /// repeats), counting runs in memory: its host never dies here.
    struct Scripted {
        script: &'static [Step],
        runs: Arc<AtomicUsize>,
        restart: RestartPolicy,
        backoff_ms: u64,
    }

    impl Scripted {
        fn new(script: &'static [Step], restart: RestartPolicy, backoff_ms: u64) -> Self {
            Self {
                script,
                runs: Arc::default(),
                restart,
                backoff_ms,
            }
        }
    }

    impl Worker for Scripted {
        fn init(&self) -> BoxFuture {
            let run = self.runs.fetch_add(1, Ordering::SeqCst);
            let step = self.script[run.min(self.script.len() - 1)];
            Box::pin(async move {
                match step {
                    Step::Panic => panic!("scripted failure"),
                    Step::Return => {}
                    Step::Forever => std::future::pending::<()>().await,
                }
            })
        }
    }

    impl Restartable for Scripted {
        fn restart_policy(&self) -> RestartPolicy {
            self.restart
        }
        fn backoff_policy(&self) -> BackoffPolicy {
            let ms = Duration::from_millis(self.backoff_ms);
            BackoffPolicy::new(ms, ms * 100, Duration::from_secs(600), 2.0)
        }
    }

    /// OneForOne with backoff (`root/0`), a OneForAll group (`root/1`), an
    /// OnFailure worker (`root/2`); it ends by itself.
    fn scripted_tree() -> Supertree {
        use Step::{Forever, Panic, Return};
        Supertree::new()
            .add_worker(Scripted::new(
                &[Panic, Panic, Panic, Return],
                RestartPolicy::OnFailure,
                10,
            ))
            .add_supervisor(|s| {
                s.with_strategy(Strategy::OneForAll)
                    .add_worker(Scripted::new(&[Forever, Return], RestartPolicy::Once, 5))
                    .add_worker(Scripted::new(
                        &[Panic, Return],
                        RestartPolicy::OnFailure,
                        30,
                    ))
            })
            .add_worker(Scripted::new(
                &[Panic, Return],
                RestartPolicy::OnFailure,
                15,
            ))
    }

    /// Prints each `Exited` event as `<engine> exited <path> <exit>; <restart ns or none>`.
    fn print_exits(engine: &'static str) -> impl FnMut(&supertrees::Event) + Send + 'static {
        move |event| {
            if let EventKind::Exited { exit, restart, .. } = &event.kind {
                let restart = restart.map_or("none".to_owned(), |d| d.as_nanos().to_string());
                println!("{engine} exited {} {exit}; {restart}", event.path);
            }
        }
    }

    /// The scripted tree in simulation, then in processes.
    pub(crate) fn differential() {
        let simulated = run_simulated(
            scripted_tree().on_event(print_exits("sim")),
            FakeTimer::new(),
        );
        println!("simulated {simulated:?}");
        report(scripted_tree().on_event(print_exits("proc")).start());
    }

    /// Time as an engine runs it: virtual in simulation, the wall clock in
    /// processes.
    #[derive(Clone)]
    enum Clock {
        Sim(FakeTimer),
        Real,
    }

    impl Clock {
        fn name(&self) -> &'static str {
            match self {
                Clock::Sim(_) => "sim",
                Clock::Real => "proc",
            }
        }

        fn now_ms(&self) -> u128 {
            match self {
                Clock::Sim(timer) => timer.elapsed().as_millis(),
                Clock::Real => now_ms(),
            }
        }

        fn sleep(&self, ms: u64) -> BoxFuture {
            let d = Duration::from_millis(ms);
            match self {
                Clock::Sim(timer) => timer.sleep(d),
                Clock::Real => Box::pin(tokio::time::sleep(d)),
            }
        }
    }

    /// Waits to be asked to stop, drains for `drain_ms`, then prints
    /// `<engine> stopped <name> <ms>`.
    fn drains(clock: &Clock, name: &'static str, drain_ms: u64) -> Life {
        let clock = clock.clone();
        let mut life = Life::new(move || {
            let clock = clock.clone();
            Box::pin(async move {
                supertrees::stopping().await;
                clock.sleep(drain_ms).await;
                println!("{} stopped {name} {}", clock.name(), clock.now_ms());
            })
        });
        life.shutdown = supertrees::Shutdown::Timeout(Duration::from_secs(5));
        life
    }

    /// The tree whose shutdown order and drain times are compared: the
    /// last worker gives up after 100 ms (intensity 0), and the root stops
    /// the others in reverse: `c` and `b` together, then the supervisor
    /// (its `s/c`, `s/b`, `s/a` together), then `a`, which drains 50 ms.
    fn order_tree(clock: &Clock) -> Supertree {
        let (c, g) = (clock.clone(), clock.clone());
        let mut gives_up = Life::new(move || {
            let g = g.clone();
            Box::pin(async move {
                g.sleep(100).await;
                println!("{} gave up {}", g.name(), g.now_ms());
                panic!("gives up on purpose");
            })
        });
        gives_up.restart = RestartPolicy::Always;
        Supertree::new()
            .with_intensity(supertrees::Intensity::new(0, Duration::from_secs(1)))
            .add_worker(drains(clock, "a", 50))
            .add_supervisor(move |s| {
                s.add_worker(drains(&c, "s/a", 0))
                    .add_worker(drains(&c, "s/b", 0))
                    .add_worker(drains(&c, "s/c", 0))
            })
            .add_worker(drains(clock, "b", 0))
            .add_worker(drains(clock, "c", 0))
            .add_worker(gives_up)
    }

    /// The order tree in simulation, then in processes.
    pub(crate) fn differential_shutdown_order() {
        let timer = FakeTimer::new();
        let simulated = run_simulated(order_tree(&Clock::Sim(timer.clone())), timer);
        println!("simulated {}", simulated.is_err());
        report(order_tree(&Clock::Real).start());
    }
}

pub(crate) mod drive {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use crate::drive::{number_after, pid_in, wait_line};
    use crate::runner::Run;

    fn lines_with(run: &Run, what: &str) -> Vec<String> {
        run.stdout()
            .into_iter()
            .filter(|l| l.contains(what))
            .collect()
    }

    fn stop_cleanly(run: &mut Run) -> Result<(), String> {
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) || !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        Ok(())
    }

    pub(crate) fn lease_backoff(run: &mut Run) -> Result<(), String> {
        let started = wait_line(run, "start w ")?;
        let restarts: Vec<String> = lines_with(run, "event root/0 (")
            .into_iter()
            .filter(|l| l.contains("panicked: failure on purpose; restarting after"))
            .collect();
        for (line, delay) in restarts.iter().zip(["20ms", "40ms", "80ms", "160ms"]) {
            if !line.contains(&format!("restarting after {delay} ")) {
                return Err(format!("expected a restart after {delay}: {line}"));
            }
        }
        if restarts.len() != 4 {
            return Err(format!("expected 4 in-place restarts, saw {restarts:?}"));
        }
        let host = run
            .stdout()
            .into_iter()
            .find(|l| l.starts_with("event root/host ") && l.contains("worker host started"))
            .ok_or("no host start event")?;
        let killed_at = number_after(&started, ' ')?;
        run.signal(pid_in(&host)?, Signal::SIGKILL)?;
        let back = run.wait_for("the worker to run again", |run| {
            let starts = lines_with(run, "start w ");
            starts.get(1).cloned().ok_or_else(|| "not yet".to_owned())
        })?;
        let host_down = run
            .stdout()
            .into_iter()
            .find(|l| l.starts_with("event root/host ") && l.contains("took down"))
            .ok_or("no event of the host's death")?;
        if !host_down.contains("killed by signal SIGKILL; took down 1 worker, back after 320ms") {
            return Err(format!("the host's death reads {host_down:?}"));
        }
        let fifth = lines_with(run, "event root/0:")
            .into_iter()
            .find(|l| l.contains("killed by signal SIGKILL"))
            .ok_or("no exit event for the worker killed with its host")?;
        if !fifth.contains("restarting after 320ms") {
            return Err(format!("the fifth failure must wait 320 ms: {fifth}"));
        }
        let waited = number_after(&back, ' ')?.saturating_sub(killed_at);
        if waited < 320 {
            return Err(format!(
                "restarted {waited} ms after the kill, before 320 ms"
            ));
        }
        stop_cleanly(run)?;
        run.note(format!(
            "in place after 20/40/80/160 ms, then the host's SIGKILL: back after {waited} ms (320 ms backoff)"
        ));
        Ok(())
    }

    pub(crate) fn exit_codes(run: &mut Run) -> Result<(), String> {
        wait_line(run, "start x")?;
        run.wait_for("root/1/0 to run", |run| {
            lines_with(run, "start root/1/0 ")
                .first()
                .cloned()
                .ok_or_else(|| "not yet".to_owned())
        })?;
        std::thread::sleep(Duration::from_millis(50));
        stop_cleanly(run)?;
        let events = lines_with(run, "event ");
        let expect = |path: &str, what: &str| -> Result<(), String> {
            let (spaced, bare) = (format!("event {path} "), format!("event {path}:"));
            if events
                .iter()
                .any(|l| (l.starts_with(&spaced) || l.starts_with(&bare)) && l.ends_with(what))
            {
                Ok(())
            } else {
                Err(format!(
                    "no event for {path} ending with {what:?}: {events:#?}"
                ))
            }
        };
        expect("root/0", "exited with code 3; restarting after 50ms")?;
        expect(
            "root/host",
            "exited with code 3; took down 1 worker, back after 50ms",
        )?;
        expect("root/1/0", "stopped; not restarted")?;
        expect("root/1/host", "stopped")?;
        expect("root/1", "stopped; not restarted")?;
        let misread: Vec<&String> = events
            .iter()
            .filter(|l| l.contains("gave up") || l.contains("SIGTERM") || l.contains("code 143"))
            .collect();
        if !misread.is_empty() {
            return Err(format!("exits misread: {misread:?}"));
        }
        // A worker's exit is reported once its future is gone.
        let out = run.stdout();
        let dropped = out.iter().position(|l| l.starts_with("dropped root/1/0 "));
        let stopped = out
            .iter()
            .position(|l| l == "event root/1/0: stopped; not restarted");
        match (dropped, stopped) {
            (Some(d), Some(s)) if d < s => {}
            _ => {
                return Err(format!(
                    "the stop was reported before the future was dropped: {out:#?}"
                ))
            }
        }
        run.note("exit(3) reads as code 3; stops read as stopped, after the drop".to_owned());
        Ok(())
    }

    /// `(path, exit, restart ns)` of every `Exited` event of one engine.
    fn exits(run: &Run, engine: &str) -> Vec<(String, String, Option<u128>)> {
        let prefix = format!("{engine} exited ");
        run.stdout()
            .into_iter()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (path, rest) = rest.split_once(' ')?;
                let (exit, restart) = rest.rsplit_once("; ")?;
                Some((path.to_owned(), exit.to_owned(), restart.parse().ok()))
            })
            .collect()
    }

    pub(crate) fn differential(run: &mut Run) -> Result<(), String> {
        let status = run.wait_exit()?;
        let out = run.stdout();
        if status.code() != Some(0)
            || !out.iter().any(|l| l == "simulated Ok(())")
            || !out.iter().any(|l| l == "returned Ok")
        {
            return Err(format!("both runs must end Ok: {status:?}"));
        }
        let (sim, procs) = (exits(run, "sim"), exits(run, "proc"));
        let mut paths: Vec<&String> = sim.iter().map(|(p, _, _)| p).collect();
        paths.sort();
        paths.dedup();
        if paths.len() < 5 {
            return Err(format!("too few paths exited in simulation: {paths:?}"));
        }
        let mut compared = 0;
        for path in &paths {
            let of = |all: &[(String, String, Option<u128>)]| -> Vec<(String, Option<u128>)> {
                all.iter()
                    .filter(|(p, _, _)| p == *path)
                    .map(|(_, e, r)| (e.clone(), *r))
                    .collect()
            };
            let (s, p) = (of(&sim), of(&procs));
            let same = s.len() == p.len()
                && s.iter().zip(&p).all(|((se, sr), (pe, pr))| {
                    // A sibling stopped for a group restart waits out what is
                    // left of the group's backoff: exact in simulation, a
                    // little less in processes, where stopping takes time.
                    let close = match (sr, pr) {
                        (Some(a), Some(b)) if se == "stopped" => a.abs_diff(*b) < 10_000_000,
                        (a, b) => a == b,
                    };
                    se == pe && close
                });
            if !same {
                return Err(format!("{path}: simulation {s:?} but processes {p:?}"));
            }
            compared += s.len();
        }
        run.note(format!(
            "{compared} exits on {} paths: same exits and restart delays in simulation and processes",
            paths.len()
        ));
        Ok(())
    }
    /// `(name, ms after the engine's give-up)` of each stopped worker, in
    /// the order printed.
    fn stops(run: &Run, engine: &str) -> Result<Vec<(String, u128)>, String> {
        let out = run.stdout();
        let gave_up = out
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{engine} gave up ")))
            .ok_or_else(|| format!("{engine}: no give-up"))?
            .parse::<u128>()
            .map_err(|e| e.to_string())?;
        out.iter()
            .filter_map(|l| l.strip_prefix(&format!("{engine} stopped ")))
            .map(|rest| {
                let (name, at) = rest.split_once(' ').ok_or("bad line")?;
                let at: u128 = at.parse().map_err(|_| "bad time")?;
                Ok((name.to_owned(), at.saturating_sub(gave_up)))
            })
            .collect()
    }

    pub(crate) fn differential_shutdown_order(run: &mut Run) -> Result<(), String> {
        let status = run.wait_exit()?;
        if status.code() != Some(0)
            || !run.stdout().iter().any(|l| l == "simulated true")
            || !run
                .stdout()
                .iter()
                .any(|l| l.starts_with("returned Err IntensityExceeded path=root"))
        {
            return Err(format!("both runs must give up at the root: {status:?}"));
        }
        let (sim, procs) = (stops(run, "sim")?, stops(run, "proc")?);
        let order = |all: &[(String, u128)]| all.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let expected = ["c", "b", "s/c", "s/b", "s/a", "a"];
        if order(&sim) != expected || order(&procs) != expected {
            return Err(format!(
                "shutdown order: simulation {:?}, processes {:?}, expected {expected:?}",
                order(&sim),
                order(&procs)
            ));
        }
        // Drains: exact in simulation; in processes no sooner, and at most
        // 100 ms later (stopping processes takes time).
        for ((name, s), (_, p)) in sim.iter().zip(&procs) {
            if p < s || *p > s + 100 {
                return Err(format!(
                    "{name} stopped {p} ms after the give-up in processes, {s} ms in simulation"
                ));
            }
        }
        run.note(format!(
            "stops after the give-up: simulation {sim:?}, processes {procs:?}"
        ));
        Ok(())
    }
}
