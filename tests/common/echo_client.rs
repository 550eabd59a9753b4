//! The client side of a kill storm, shared by the process tests and the
//! `listeners` bench: one line echoed over a fresh connection after
//! another, each attempt classified and timed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an attempt waits for a connection and for its echo.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause after a failed attempt.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Echoed,
    Refused,
    TimedOut,
    /// Reset, closed early, a wrong echo.
    Failed,
}

pub(crate) fn is_timeout(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// One echo over a fresh TCP connection to `addr`.
pub(crate) fn echo_tcp(addr: SocketAddr, n: u64) -> Outcome {
    let stream = match TcpStream::connect_timeout(&addr, READ_TIMEOUT) {
        Ok(stream) => stream,
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => return Outcome::Refused,
        Err(err) if is_timeout(&err) => return Outcome::TimedOut,
        Err(_) => return Outcome::Failed,
    };
    // Closed with a reset: no TIME_WAIT left by tens of thousands of short
    // connections.
    let _ = nix::sys::socket::setsockopt(
        &stream,
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
    if stream.set_read_timeout(Some(READ_TIMEOUT)).is_err() {
        return Outcome::Failed;
    }
    echo_on(stream, n)
}

/// Echo number `n` over `stream`.
pub(crate) fn echo_on<S: Read + Write>(stream: S, n: u64) -> Outcome {
    let mut reader = BufReader::new(stream);
    let line = format!("echo {n}\n");
    if reader.get_mut().write_all(line.as_bytes()).is_err() {
        return Outcome::Failed;
    }
    let mut got = String::new();
    match reader.read_line(&mut got) {
        Ok(_) if got == line => Outcome::Echoed,
        Ok(_) => Outcome::Failed,
        Err(err) if is_timeout(&err) => Outcome::TimedOut,
        Err(_) => Outcome::Failed,
    }
}

/// Echoes to `addr` on a thread of its own, one attempt after another,
/// until `stop`; returns every attempt's outcome and time.
pub(crate) fn storm_client(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<(Outcome, Duration)>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let began = Instant::now();
            let outcome = echo_tcp(addr, n);
            samples.push((outcome, began.elapsed()));
            n += 1;
            if outcome != Outcome::Echoed {
                std::thread::sleep(RETRY_PAUSE);
            }
        }
        samples
    })
}
