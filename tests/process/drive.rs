//! The runner side: what each scenario expects.
//!
//! Here: the checks the drives of several topics share.

use super::runner::{Proc, Run};

pub(crate) fn expect_exit_code(run: &mut Run, code: i32) -> Result<(), String> {
    let status = run.wait_exit()?;
    if status.code() == Some(code) {
        Ok(())
    } else {
        Err(format!(
            "expected exit code {code}, got {}",
            super::runner::describe(status)
        ))
    }
}

pub(crate) fn expect_count(run: &Run, line: &str, count: usize) -> Result<(), String> {
    let seen = run.count(|l| l == line);
    if seen == count {
        Ok(())
    } else {
        Err(format!(
            "expected the line {line:?} {count} time(s) in stdout, saw it {seen} time(s)"
        ))
    }
}

pub(crate) fn expect_prefix_once(run: &Run, prefix: &str) -> Result<String, String> {
    let lines: Vec<String> = run
        .stdout()
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect();
    match lines.as_slice() {
        [line] => Ok(line.clone()),
        _ => Err(format!(
            "expected one stdout line starting with {prefix:?}, saw {}: {lines:?}",
            lines.len()
        )),
    }
}

/// A worker's `start`/`dropped` lines, in order: `(is_start, pid)`.
pub(crate) fn events(lines: &[String], worker: &str) -> Vec<(bool, i32)> {
    lines
        .iter()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let kind = words.next()?;
            let name = words.next()?;
            let pid = words.next()?.parse().ok()?;
            if name != worker || words.next().is_some() {
                return None;
            }
            match kind {
                "start" => Some((true, pid)),
                "dropped" => Some((false, pid)),
                _ => None,
            }
        })
        .collect()
}

/// What the runner sees of a running tree.
pub(crate) struct TreeState {
    pub(crate) live: Vec<Proc>,
    zombies: Vec<Proc>,
    /// Workers whose last line is not a `start` in a live process.
    not_running: Vec<String>,
    pub(crate) starts: usize,
}

impl TreeState {
    pub(crate) fn observe(run: &mut Run, workers: &[impl AsRef<str>]) -> Self {
        let group = run.group();
        let lines = run.stdout();
        let (zombies, live): (Vec<Proc>, Vec<Proc>) =
            group.into_iter().partition(|p| p.state == 'Z');
        let not_running = workers
            .iter()
            .map(AsRef::as_ref)
            .filter(|w| match events(&lines, w).last() {
                Some(&(true, pid)) => !live.iter().any(|p| p.pid == pid),
                _ => true,
            })
            .map(str::to_owned)
            .collect();
        let starts = lines.iter().filter(|l| l.starts_with("start ")).count();
        Self {
            live,
            zombies,
            not_running,
            starts,
        }
    }

    pub(crate) fn healthy(&self, processes: usize) -> bool {
        self.live.len() == processes && self.zombies.is_empty() && self.not_running.is_empty()
    }

    pub(crate) fn describe(&self) -> String {
        let mut not_running = self.not_running.clone();
        if not_running.len() > 8 {
            let more = not_running.len() - 8;
            not_running.truncate(8);
            not_running.push(format!("... {more} more"));
        }
        format!(
            "{} live processes, zombies {:?}, {} start lines, workers not running: {:?}",
            self.live.len(),
            self.zombies.iter().map(Proc::short).collect::<Vec<_>>(),
            self.starts,
            not_running,
        )
    }
}

/// Waits until the tree has `processes` live processes, no zombie, and
/// every worker of `workers` runs.
pub(crate) fn wait_up(
    run: &mut Run,
    processes: usize,
    workers: &[impl AsRef<str>],
) -> Result<(), String> {
    let what = format!(
        "the tree to be up ({processes} processes, {} workers)",
        workers.len()
    );
    run.wait_for(&what, |run| {
        let state = TreeState::observe(run, workers);
        if state.healthy(processes) {
            Ok(())
        } else {
            Err(state.describe())
        }
    })
}

/// After an orderly stop: every worker's future was dropped, in the
/// host that started it.
pub(crate) fn expect_all_dropped(
    lines: &[String],
    workers: &[impl AsRef<str>],
) -> Result<(), String> {
    let bad: Vec<String> = workers
        .iter()
        .map(AsRef::as_ref)
        .filter(|w| {
            let ev = events(lines, w);
            match ev.as_slice() {
                [.., (true, started), (false, dropped)] => started != dropped,
                _ => true,
            }
        })
        .map(str::to_owned)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "after the stop, these workers' futures were not dropped (last line not a matching 'dropped'): {bad:?}"
        ))
    }
}

/// The first stdout line starting with `prefix`.
pub(crate) fn line_with(run: &Run, prefix: &str) -> Option<String> {
    run.stdout().into_iter().find(|l| l.starts_with(prefix))
}

/// Waits for a stdout line starting with `prefix`.
pub(crate) fn wait_line(run: &mut Run, prefix: &str) -> Result<String, String> {
    run.wait_for(&format!("a line starting with {prefix:?}"), |run| {
        line_with(run, prefix).ok_or_else(|| "not yet".to_owned())
    })
}

/// Waits for the first stdout line that starts with one of `prefixes`
/// (`what`: what it waits for, named when it times out).
pub(crate) fn wait_any(run: &mut Run, what: &str, prefixes: &[&str]) -> Result<String, String> {
    run.wait_for(what, |run| {
        run.stdout()
            .into_iter()
            .find(|l| prefixes.iter().any(|p| l.starts_with(p)))
            .ok_or_else(|| "not yet".to_owned())
    })
}

/// The pid in an event line: `... (pid <pid>) ...`.
pub(crate) fn pid_in(line: &str) -> Result<i32, String> {
    line.split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no pid in {line:?}"))
}

/// The number after the last `marker` in `line`, e.g. the time at the end
/// of `ready root/0 <ms>`.
pub(crate) fn number_after(line: &str, marker: char) -> Result<u128, String> {
    line.rsplit(marker)
        .next()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no number after {marker:?} in {line:?}"))
}

/// Binds the systemd notify socket a scenario sends to, in `dir`, receiving
/// with `timeout`.
pub(crate) fn bind_notify_socket(
    dir: &std::path::Path,
    timeout: std::time::Duration,
) -> Result<std::os::unix::net::UnixDatagram, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let socket = std::os::unix::net::UnixDatagram::bind(dir.join("notify.sock"))
        .map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(socket)
}
