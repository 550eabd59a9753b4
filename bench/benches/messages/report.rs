//! The report: the Markdown table of the figures, and the notes.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cpus;
use crate::floor::{PING_ROUNDS, PING_WARMUP, STREAM_MESSAGES};
use crate::stats::{median_usize, Series};
use crate::trees::{CALLS, CALL_WARMUP, CHILDREN, PANIC_CALLS, PANIC_EVERY, SENDS, SEND_WARMUP};
use crate::Bench;

fn num(v: f64) -> String {
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

fn cell(s: &Series, v: Option<f64>) -> String {
    match v {
        None if s.failures.is_empty() => "—".to_owned(),
        None if s.failures.iter().all(|f| f.starts_with("timeout")) => "timeout".to_owned(),
        None => "failed".to_owned(),
        Some(v) if s.failures.is_empty() => num(v),
        Some(v) => format!("{} ({} failed)", num(v), s.failures.len()),
    }
}

fn max(s: &Series) -> Option<f64> {
    s.values.iter().copied().max_by(f64::total_cmp)
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
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {}",
        mem_kib / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// A target, checked on one value of the series.
struct Target {
    text: &'static str,
    value: fn(&Series) -> Option<f64>,
    ok: fn(f64) -> bool,
}

struct Row<'a> {
    figure: String,
    unit: &'static str,
    series: &'a Series,
    target: Option<Target>,
}

impl Row<'_> {
    fn render(&self, out: &mut String) {
        let (target, met) = match &self.target {
            None => ("—", "—"),
            Some(t) => (
                t.text,
                match (t.value)(self.series).map(t.ok) {
                    None => "—",
                    Some(true) => "yes",
                    Some(false) => "**no**",
                },
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {target} | {met} |",
            self.figure,
            self.unit,
            cell(self.series, self.series.min()),
            cell(self.series, self.series.median()),
        );
    }
}

fn row<'a>(figure: impl Into<String>, unit: &'static str, series: &'a Series) -> Row<'a> {
    Row {
        figure: figure.into(),
        unit,
        series,
        target: None,
    }
}

impl<'a> Row<'a> {
    /// A target on the median over the runs.
    fn median(mut self, text: &'static str, ok: fn(f64) -> bool) -> Row<'a> {
        self.target = Some(Target {
            text,
            value: Series::median,
            ok,
        });
        self
    }

    /// A target on the worst run.
    fn worst(mut self, text: &'static str, ok: fn(f64) -> bool) -> Row<'a> {
        self.target = Some(Target {
            text,
            value: max,
            ok,
        });
        self
    }
}

pub fn report(b: &Bench, elapsed: Duration) -> String {
    let r = &b.r;
    let mut rows: Vec<Row<'_>> = Vec::new();
    if !r.floor_p50.is_empty() {
        rows.push(row(
            "floor: ping-pong round trip p50 (stream socketpair, 64 B)",
            "µs",
            &r.floor_p50,
        ));
        rows.push(row("floor: ping-pong round trip p99", "µs", &r.floor_p99));
        rows.push(row(
            "floor: one-way stream, one 64 B `write` per message",
            "msg/s",
            &r.floor_rate,
        ));
    }
    if !r.call_p50.is_empty() {
        rows.push(row(
            "`call` round trip p50 (64 B, two supervisors)",
            "µs",
            &r.call_p50,
        ));
        rows.push(row("`call` round trip p99", "µs", &r.call_p99));
        rows.push(
            row("`call` p50 / floor p50 (per round)", "×", &r.call_p50_ratio)
                .median("≤ 1.5×", |x| x <= 1.5),
        );
        rows.push(
            row("`call` p99 / floor p99 (per round)", "×", &r.call_p99_ratio)
                .median("≤ 3×", |x| x <= 3.0),
        );
    }
    if !r.send_rate.is_empty() {
        rows.push(
            row("`send` throughput, 1 sender, 64 B", "msg/s", &r.send_rate)
                .median("≥ 200 000/s", |x| x >= 200_000.0),
        );
        rows.push(
            row(
                "`send` / floor one-way rate (per round)",
                "×",
                &r.send_ratio,
            )
            .median("≥ 0.25×", |x| x >= 0.25),
        );
    }
    if !r.panic_failed_max.is_empty() {
        rows.push(
            row(
                "server panics: failed calls per panic, max",
                "calls",
                &r.panic_failed_max,
            )
            .worst("≤ 5 (worst run)", |x| x <= 5.0),
        );
        rows.push(row(
            "server panics: failed calls per panic, median",
            "calls",
            &r.panic_failed_median,
        ));
        rows.push(
            row(
                "server panics: panic → first good reply, max",
                "ms",
                &r.panic_recovery_max,
            )
            .worst("≤ 50 ms (worst run)", |x| x <= 50.0),
        );
        rows.push(row(
            "server panics: panic → first good reply, median",
            "ms",
            &r.panic_recovery_median,
        ));
    }
    if !r.start_rate.is_empty() {
        rows.push(
            row(
                format!("`start_child` rate, {CHILDREN} children one after the other"),
                "starts/s",
                &r.start_rate,
            )
            .median("≥ 1 000/s", |x| x >= 1000.0),
        );
        rows.push(row("`start_child` latency p50", "µs", &r.start_p50));
        rows.push(row("`start_child` latency p99", "µs", &r.start_p99));
        rows.push(row(
            format!("`terminate_child` rate, the {CHILDREN}"),
            "terminations/s",
            &r.terminate_rate,
        ));
    }

    let mut out = String::new();
    let _ = writeln!(out, "# supertrees: messages between processes\n");
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(out, "- CPUs of the two ends (BENCH_CPUS): {}", cpus::name());
    let _ = writeln!(
        out,
        "- runs per figure: {} (BENCH_RUNS), in rounds of one run of each figure; whole bench: {:.1} s",
        b.runs,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- min and median are over runs; percentiles are within a run (min/median of the per-run values); a ratio is taken per round, between figures measured side by side\n"
    );
    let _ = writeln!(out, "| figure | unit | min | median | target | met |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for row in &rows {
        row.render(&mut out);
    }

    let mut details = Vec::new();
    if !r.floor_p50.is_empty() {
        details.push(format!(
            "floor: {PING_ROUNDS} round trips after {PING_WARMUP}; a stream of {STREAM_MESSAGES} messages"
        ));
    }
    if !r.call_p50.is_empty() {
        details.push(format!("call: {CALLS} calls after {CALL_WARMUP}"));
    }
    if !r.send_rate.is_empty() {
        details.push(format!(
            "send: {SENDS} casts after {SEND_WARMUP}, from the first send to the server's receipt of the last (CLOCK_MONOTONIC of both processes)"
        ));
    }
    if !r.panic_failed_max.is_empty() {
        details.push(format!(
            "panics: {PANIC_CALLS} calls per run, the server panicking on every {PANIC_EVERY}th message; recovery is timed from the start of the first failed call"
        ));
    }
    if let Some(p) = median_usize(&r.panic_counts) {
        details.push(format!(
            "panics seen per run: {:?} (median {p})",
            r.panic_counts
        ));
    }
    let all: [(&str, &Series); 13] = [
        ("floor ping-pong", &r.floor_p50),
        ("floor stream", &r.floor_rate),
        ("call", &r.call_p50),
        ("call ratio", &r.call_p50_ratio),
        ("send", &r.send_rate),
        ("send ratio", &r.send_ratio),
        ("panics", &r.panic_failed_max),
        ("panics recovery", &r.panic_recovery_max),
        ("start_child", &r.start_rate),
        ("start_child p50", &r.start_p50),
        ("terminate_child", &r.terminate_rate),
        ("floor p99", &r.floor_p99),
        ("call p99", &r.call_p99),
    ];
    let mut seen: Vec<&str> = Vec::new();
    for (name, s) in all {
        for f in &s.failures {
            // A run that failed fails each of its series: say it once.
            if !seen.contains(&f.as_str()) {
                seen.push(f);
                details.push(format!("{name}: {f}"));
            }
        }
    }
    details.extend(r.notes.iter().cloned());
    let _ = writeln!(out, "\n## Notes\n");
    for d in details {
        let _ = writeln!(out, "- {d}");
    }
    out
}
