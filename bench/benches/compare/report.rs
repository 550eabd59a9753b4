//! The report: the Markdown table of the figures, the `tree_start` scaling
//! table and fit, and the notes.

use std::fmt::Write as _;
use std::time::Duration;

use crate::host_kill::{HOST_KILLS, KILL_PAUSE};
use crate::stats::{least_squares, median_usize, Series};
use crate::{Bench, Crate, HEADLINE_N};

impl Series {
    pub fn cell(&self, v: Option<f64>) -> String {
        match v {
            None if self.failures.is_empty() => "—".to_owned(),
            None if self.failures.iter().all(|f| f.starts_with("timeout")) => "timeout".to_owned(),
            None => "failed".to_owned(),
            Some(v) if self.failures.is_empty() => num(v),
            Some(v) => format!("{} ({} failed)", num(v), self.failures.len()),
        }
    }
}

pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let kernel = read("/proc/sys/kernel/osrelease");
    let pid_max = read("/proc/sys/kernel/pid_max");
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {}, pid_max {}",
        mem_kib / 1024.0 / 1024.0,
        kernel.trim(),
        pid_max.trim()
    )
}

struct Row {
    figure: String,
    unit: &'static str,
    ours: Option<Series>,
    seed: Option<Series>,
    ratio: Option<f64>,
    target: String,
    met: Option<bool>,
}

impl Row {
    fn new(figure: impl Into<String>, unit: &'static str) -> Row {
        Row {
            figure: figure.into(),
            unit,
            ours: None,
            seed: None,
            ratio: None,
            target: "—".to_owned(),
            met: None,
        }
    }

    fn ours(mut self, s: &Series) -> Row {
        self.ours = Some(s.clone());
        self
    }

    fn seed(mut self, s: &Series) -> Row {
        self.seed = Some(s.clone());
        self
    }

    fn ratio(mut self) -> Row {
        if let (Some(o), Some(s)) = (
            self.ours.as_ref().and_then(Series::median),
            self.seed.as_ref().and_then(Series::median),
        ) {
            if s != 0.0 {
                self.ratio = Some(o / s);
            }
        }
        self
    }

    /// A target on a value (the ratio, or ours' median) checked by `ok`.
    fn target(mut self, text: &str, value: Option<f64>, ok: impl Fn(f64) -> bool) -> Row {
        self.target = text.to_owned();
        self.met = value.map(ok);
        self
    }

    fn render(&self, out: &mut String) {
        let cells = |s: &Option<Series>| match s {
            None => ("—".to_owned(), "—".to_owned()),
            Some(s) => (s.cell(s.min()), s.cell(s.median())),
        };
        let (omin, omed) = cells(&self.ours);
        let (smin, smed) = cells(&self.seed);
        let ratio = self
            .ratio
            .map_or("—".to_owned(), |r| format!("{}×", num(r)));
        let met = match self.met {
            None => "—",
            Some(true) => "yes",
            Some(false) => "**no**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {omin} | {omed} | {smin} | {smed} | {ratio} | {} | {met} |",
            self.figure, self.unit, self.target
        );
    }
}

pub fn report(b: &Bench, elapsed: Duration) -> String {
    let r = &b.r;
    let mut rows: Vec<Row> = Vec::new();
    if !r.restart_rate[0].is_empty() {
        let row = Row::new("restart_rate (1 worker, returns at once)", "restarts/s")
            .ours(&r.restart_rate[0])
            .seed(&r.restart_rate[1])
            .ratio();
        let ratio = row.ratio;
        rows.push(row.target("ours/seed ≥ 100×", ratio, |x| x >= 100.0));
    }
    if !r.host_kill_p50.is_empty() {
        rows.push(
            Row::new("host_kill p50 (SIGKILL host → 10 workers up)", "ms")
                .ours(&r.host_kill_p50)
                .target("≤ 0.5 ms", r.host_kill_p50.median(), |x| x <= 0.5),
        );
        rows.push(
            Row::new("host_kill p99", "ms")
                .ours(&r.host_kill_p99)
                .target("≤ 2 ms", r.host_kill_p99.median(), |x| x <= 2.0),
        );
    }
    if !r.panic_p50.is_empty() {
        rows.push(
            Row::new("panic_restart p50 (start → next start)", "µs")
                .ours(&r.panic_p50)
                .target("< 50 µs", r.panic_p50.median(), |x| x < 50.0),
        );
        rows.push(Row::new("panic_restart p99", "µs").ours(&r.panic_p99));
    }
    let headline = r.tree_start.get(&HEADLINE_N);
    if let Some([o, s]) = headline {
        let row = Row::new(format!("tree_start N={HEADLINE_N} (×10 workers)"), "ms")
            .ours(o)
            .seed(s)
            .ratio();
        let ratio = row.ratio;
        rows.push(row.target("ours/seed ≤ 0.5", ratio, |x| x <= 0.5));
    }
    if !r.floor.is_empty() {
        rows.push(Row::new(format!("fork floor, P={} forks", r.floor_p), "ms").ours(&r.floor));
        let ours_start = headline.and_then(|[o, _]| o.median());
        let ratio = ours_start.zip(r.floor.median()).map(|(t, f)| t / f);
        let mut row = Row::new(
            format!("tree_start N={HEADLINE_N} / fork floor (ours)"),
            "×",
        );
        row.ratio = ratio;
        rows.push(row.target("≤ 1.5", ratio, |x| x <= 1.5));
    }
    let [mo, ms_] = &r.memory;
    if !mo.sup.is_empty() || !ms_.sup.is_empty() {
        rows.push(
            Row::new(
                format!("memory N={HEADLINE_N}: PSS per supervisor process"),
                "KiB",
            )
            .ours(&mo.sup)
            .seed(&ms_.sup)
            .ratio()
            .target("< 500 KiB", mo.sup.median(), |x| x < 500.0),
        );
        rows.push(
            Row::new("memory: PSS per worker host (seed: watcher)", "KiB")
                .ours(&mo.host)
                .seed(&ms_.host)
                .ratio(),
        );
        rows.push(
            Row::new("memory: PSS per supervisor + host", "KiB")
                .ours(&mo.pair)
                .seed(&ms_.pair)
                .ratio(),
        );
        rows.push(
            Row::new("memory: PSS of the root", "KiB")
                .ours(&mo.root)
                .seed(&ms_.root)
                .ratio(),
        );
    }
    if let Some([o, s]) = r.shutdown.get(&HEADLINE_N) {
        rows.push(
            Row::new(
                format!("shutdown N={HEADLINE_N}: SIGTERM root → root exited (seed: dies at once)"),
                "ms",
            )
            .ours(o)
            .seed(s)
            .target("< 100 ms", o.median(), |x| x < 100.0),
        );
        if let Some([lo, ls]) = r.leftovers.get(&HEADLINE_N) {
            let series = |v: &[usize]| Series {
                values: v.iter().map(|&x| x as f64).collect(),
                failures: Vec::new(),
            };
            let worst = lo.iter().max().copied();
            rows.push(
                Row::new("shutdown: processes left after the root exited", "procs")
                    .ours(&series(lo))
                    .seed(&series(ls))
                    .target("0", worst.map(|w| w as f64), |x| x == 0.0),
            );
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# supertrees (this workspace) vs supertrees 0.1.2 (seed)\n"
    );
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(
        out,
        "- runs per figure: {} (BENCH_RUNS); whole bench: {:.1} s",
        b.runs,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- min and median are over runs; percentiles are per run (min/median of the per-run values); ratio = median ours / median seed\n"
    );
    let _ = writeln!(
        out,
        "| figure | unit | ours min | ours median | seed min | seed median | ours/seed | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        row.render(&mut out);
    }

    if r.tree_start.len() > 1 {
        let _ = writeln!(
            out,
            "\n## tree_start scaling (N supervisors × 10 workers)\n"
        );
        let _ = writeln!(
            out,
            "| N | ours median (ms) | ours ms/sup | seed median (ms) | seed ms/sup | ours/seed | ours shutdown median (ms) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        let mut fits: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for (&n, [o, s]) in &r.tree_start {
            let per = |v: Option<f64>| v.map_or("—".to_owned(), |v| num(v / n as f64));
            let shutdown = r
                .shutdown
                .get(&n)
                .and_then(|[so, _]| so.median())
                .map_or("—".to_owned(), num);
            let ratio = o
                .median()
                .zip(s.median())
                .map_or("—".to_owned(), |(a, b)| format!("{}×", num(a / b)));
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {} | {ratio} | {shutdown} |",
                o.cell(o.median()),
                per(o.median()),
                s.cell(s.median()),
                per(s.median()),
            );
            for (i, series) in [o, s].into_iter().enumerate() {
                if let Some(m) = series.median() {
                    fits[i].push((n as f64, m));
                }
            }
        }
        let _ = writeln!(out);
        for (krate, fit) in Crate::BOTH.iter().zip(&fits) {
            if let Some((slope, intercept, r2)) = least_squares(fit) {
                // Linear growth: the same cost per added supervisor between
                // every pair of sizes.
                let steps: Vec<String> = fit
                    .windows(2)
                    .map(|w| {
                        format!(
                            "{}→{}: {}",
                            w[0].0,
                            w[1].0,
                            num((w[1].1 - w[0].1) / (w[1].0 - w[0].0))
                        )
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "- {}: least-squares slope {} ms per supervisor (intercept {} ms, r² {:.4}); ms per added supervisor {}",
                    krate.name(),
                    num(slope),
                    num(intercept),
                    r2,
                    steps.join(", ")
                );
            }
        }
    }

    let mut details = Vec::new();
    if r.host_kill_samples > 0 {
        details.push(format!(
            "host_kill: {} kills per run, {} ms pause after each recovery",
            HOST_KILLS,
            KILL_PAUSE.as_millis()
        ));
    }
    if !r.panic_samples.is_empty() {
        details.push(format!(
            "panic_restart: restart deltas per run: {:?}",
            r.panic_samples
        ));
    }
    for k in Crate::BOTH {
        if let Some(p) = median_usize(&r.processes[k.idx()]) {
            let counts = median_usize(
                &r.memory[k.idx()]
                    .counts
                    .iter()
                    .map(|c| c.0)
                    .collect::<Vec<_>>(),
            );
            let hosts = median_usize(
                &r.memory[k.idx()]
                    .counts
                    .iter()
                    .map(|c| c.1)
                    .collect::<Vec<_>>(),
            );
            details.push(format!(
                "{}: N={HEADLINE_N} tree has {p} processes below its root ({} supervisor processes, {} leaves)",
                k.name(),
                counts.unwrap_or(0),
                hosts.unwrap_or(0)
            ));
        }
    }
    for (&n, [lo, ls]) in &r.leftovers {
        if n != HEADLINE_N || (lo.is_empty() && ls.is_empty()) {
            continue;
        }
        details.push(format!(
            "shutdown N={n}: processes left after the root exited, per run: ours {lo:?}, seed {ls:?} (all killed and reaped by the bench afterwards)"
        ));
    }
    let failures = |name: &str, s: &Series, out: &mut Vec<String>| {
        for f in &s.failures {
            out.push(format!("{name}: {f}"));
        }
    };
    for k in Crate::BOTH {
        failures(
            &format!("restart_rate {}", k.name()),
            &r.restart_rate[k.idx()],
            &mut details,
        );
        for (n, s) in &r.tree_start {
            failures(
                &format!("tree_start N={n} {}", k.name()),
                &s[k.idx()],
                &mut details,
            );
        }
    }
    failures("host_kill", &r.host_kill_p50, &mut details);
    failures("panic_restart", &r.panic_p50, &mut details);
    failures("fork floor", &r.floor, &mut details);
    details.extend(r.notes.iter().cloned());
    if !details.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for d in details {
            let _ = writeln!(out, "- {d}");
        }
    }
    out
}
