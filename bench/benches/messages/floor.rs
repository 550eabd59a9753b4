//! The floor: what two processes get from the kernel alone, measured in the
//! same run as the trees. Two processes forked from the driver share a
//! `socketpair(AF_UNIX, SOCK_STREAM)` and nothing else: blocking reads and
//! writes of 64-byte messages, no runtime, no encoding, no supertrees.
//!
//! * `ping_pong`: one process writes 64 bytes and reads 64 back, the other
//!   echoes them; each round trip is timed with `Instant` (p50, p99).
//! * `stream`: one `write` of 64 bytes per message, one way; the reader
//!   reads whatever has arrived (up to 64 KiB per `read`). From the first
//!   write to the reader having read the last byte, in `CLOCK_MONOTONIC`
//!   of both processes: messages/s.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::cpus::{self, End};
use crate::procs::{Child, Failure};
use crate::stats::percentile;

/// 64-byte messages, as in every figure.
pub const MESSAGE: usize = 64;
pub const PING_WARMUP: usize = 1_000;
pub const PING_ROUNDS: usize = 20_000;
pub const STREAM_MESSAGES: usize = 1_000_000;
const TIMEOUT: Duration = Duration::from_secs(30);

/// `CLOCK_MONOTONIC` in ns: the clock of `Instant`, comparable between the
/// processes of one machine.
pub fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always there");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// Percentiles of one run's latencies, in ns.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

/// p50 and p99 of `ns` (sorted here).
pub fn latency(ns: &mut [f64]) -> Option<Latency> {
    ns.sort_by(f64::total_cmp);
    Some(Latency {
        p50: percentile(ns, 0.5)?,
        p99: percentile(ns, 0.99)?,
    })
}

/// Writes one line to the result pipe (in a forked process: a line is one
/// `write`, under `PIPE_BUF`, so the two processes' lines do not mix).
fn tell(mut pipe: &File, line: &str) {
    let _ = pipe.write_all(format!("{line}\n").as_bytes());
}

/// Runs `a` and `b` in two forked processes sharing a stream socket pair
/// (`a` gets one end, `b` the other) and a result pipe; returns the lines
/// they wrote, once there are `lines` of them.
fn pair(
    what: &str,
    lines: usize,
    a: fn(UnixStream, &File),
    b: fn(UnixStream, &File),
) -> Result<Vec<String>, Failure> {
    let (end_a, end_b) = UnixStream::pair()
        .map_err(|e| Failure::Error(format!("{what}: socketpair failed: {e}")))?;
    let (rx, tx): (OwnedFd, OwnedFd) =
        nix::unistd::pipe().map_err(|e| Failure::Error(format!("{what}: pipe failed: {e}")))?;
    let tx = File::from(tx);
    let mut rx = File::from(rx);
    let mut children = Vec::new();
    for (body, end, role) in [(b, &end_b, End::Serving), (a, &end_a, End::Measuring)] {
        let tx = &tx;
        let spawned = Child::spawn(move || {
            cpus::pin_floor(role);
            let end = end.try_clone().expect("dup of a socket end");
            body(end, tx);
            0
        });
        match spawned {
            Ok(child) => children.push(child),
            Err(f) => {
                stop(&mut children);
                return Err(f);
            }
        }
    }
    drop((end_a, end_b, tx));
    let got =
        read_lines(&mut rx, lines, TIMEOUT).map_err(|f| Failure::Error(format!("{what}: {f}")));
    let mut exited = got.is_ok();
    for child in &mut children {
        exited = exited && child.wait_exit(Duration::from_secs(5)).is_ok();
    }
    if !exited {
        stop(&mut children);
    }
    got
}

fn stop(children: &mut [Child]) {
    for child in children.iter_mut() {
        child.signal(Signal::SIGKILL);
        let _ = child.wait_exit(Duration::from_secs(5));
    }
}

/// Reads `rx` until it holds `lines` lines, at most `timeout`.
fn read_lines(rx: &mut File, lines: usize, timeout: Duration) -> Result<Vec<String>, Failure> {
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.lines().count() < lines {
        if let Some(error) = text.lines().find_map(|l| l.strip_prefix("error ")) {
            return Err(Failure::Error(error.to_owned()));
        }
        if Instant::now() >= deadline {
            return Err(Failure::Timeout(format!(
                "{lines} result lines (after {timeout:?})"
            )));
        }
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Failure::Error(format!("poll failed: {e}"))),
        }
        match rx.read(&mut buf) {
            Ok(0) => {
                return Err(Failure::Error(format!(
                    "the floor processes ended with {} of {lines} result lines: {text:?}",
                    text.lines().count()
                )))
            }
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Error(format!("reading the result pipe: {e}"))),
        }
    }
    Ok(text.lines().map(str::to_owned).collect())
}

/// The value after `key` in the line that starts with `key`.
fn field(lines: &[String], key: &str) -> Result<f64, Failure> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Failure::Error(format!("no {key:?} in {lines:?}")))
}

fn pinger(mut sock: UnixStream, out: &File) {
    let mut msg = [7u8; MESSAGE];
    let mut ns = Vec::with_capacity(PING_ROUNDS);
    for round in 0..PING_WARMUP + PING_ROUNDS {
        let t = Instant::now();
        if sock
            .write_all(&msg)
            .and_then(|()| sock.read_exact(&mut msg))
            .is_err()
        {
            tell(out, "error the echo process went away");
            return;
        }
        if round >= PING_WARMUP {
            ns.push(t.elapsed().as_nanos() as f64);
        }
    }
    match latency(&mut ns) {
        Some(l) => tell(out, &format!("p50 {}\np99 {}", l.p50, l.p99)),
        None => tell(out, "error no round trip"),
    }
}

fn echoer(mut sock: UnixStream, _out: &File) {
    let mut msg = [0u8; MESSAGE];
    for _ in 0..PING_WARMUP + PING_ROUNDS {
        if sock
            .read_exact(&mut msg)
            .and_then(|()| sock.write_all(&msg))
            .is_err()
        {
            return;
        }
    }
}

/// Ping-pong of 64-byte messages: round-trip p50 and p99, in ns.
pub fn ping_pong() -> Result<Latency, Failure> {
    let lines = pair("floor ping-pong", 2, pinger, echoer)?;
    Ok(Latency {
        p50: field(&lines, "p50 ")?,
        p99: field(&lines, "p99 ")?,
    })
}

fn writer(mut sock: UnixStream, out: &File) {
    let msg = [7u8; MESSAGE];
    let first = mono_ns();
    for _ in 0..STREAM_MESSAGES {
        if sock.write_all(&msg).is_err() {
            tell(out, "error the reader went away");
            return;
        }
    }
    tell(out, &format!("first {first}"));
}

fn reader(mut sock: UnixStream, out: &File) {
    let mut buf = vec![0u8; 64 * 1024];
    let want = STREAM_MESSAGES * MESSAGE;
    let mut got = 0;
    while got < want {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let last = mono_ns();
    tell(out, &format!("last {last}\nbytes {got}"));
}

/// One-way stream of 64-byte writes: messages/s.
pub fn stream() -> Result<f64, Failure> {
    let lines = pair("floor stream", 3, writer, reader)?;
    let (first, last, bytes) = (
        field(&lines, "first ")?,
        field(&lines, "last ")?,
        field(&lines, "bytes ")?,
    );
    if bytes as usize != STREAM_MESSAGES * MESSAGE || last <= first {
        return Err(Failure::Error(format!("floor stream: {lines:?}")));
    }
    Ok(STREAM_MESSAGES as f64 / ((last - first) / 1e9))
}
