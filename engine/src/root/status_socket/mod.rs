//! The live-status Unix socket: the root supervisor answers `status`
//! requests from processes of the same user with a rendering of the tree,
//! carries out operators' requests, and streams the tree's events to
//! watchers.
//!
//! The server is driven by the root's single-threaded poll loop: it hands out
//! the fds to poll ([`StatusServer::poll_fds`]) and the next time it must
//! wake up ([`StatusServer::next_deadline`]), and [`StatusServer::handle`]
//! does whatever non-blocking work is possible. Nothing blocks.
//!
//! Only the owner may talk to it: the socket lives in a directory that only
//! the owner can enter, below none that others can write to without the
//! sticky bit, the socket file has mode 0600, and every peer's `SO_PEERCRED`
//! uid is checked against ours.
//!
//! Protocol: one request line per connection, at most [`MAX_REQUEST`] bytes
//! including its `'\n'`. `status` is answered with the status text;
//! `status json` with the status's JSON document (`TreeStatus`'s
//! `Serialize`) and a `'\n'`; `restart PATH`, `stop PATH` and `start PATH`
//! (see `supertrees_core::control`) with one line, `ok ...` or `error:
//! ...`, once the supervisor that owns PATH answered; `metrics` (not served
//! yet), anything else, an overlong line, a line cut short by the end of
//! the connection or silence with one line starting with `error: `. The
//! server closes the connection after its answer. Clients beyond the limit
//! wait in the backlog, and idle ones are cut off to make room for them
//! (see `server`). `watch` is a stream: one JSON line per event the root
//! records from then on (`control::WatchLine`), or `{"dropped": n}` for
//! those a slow reader missed, until the client closes the connection or
//! the tree ends; watchers have a bound of their own (see `server`).

mod client;
mod control_client;
mod dir;
mod server;
#[cfg(test)]
mod testing;

use std::io;
use std::time::{Duration, Instant};

pub(crate) use client::query;
pub use control_client::{Client, ClientError, Watch, COMMAND_TIMEOUT, STATUS_TIMEOUT};
#[cfg(feature = "fuzzing")]
pub(crate) use server::check::fuzz as fuzz_request;
pub(super) use server::{StatusServer, View};

/// The longest request line, including its `'\n'`: room for a long path.
const MAX_REQUEST: usize = 1024;

/// The line a server refuses a peer of another uid with, before any
/// request: the server's refusal of the client, not the tree's answer.
const PERMISSION_DENIED: &str = "error: permission denied";

/// `now + duration`, saturating far in the future instead of overflowing.
fn after(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// `err` with `context` prepended to its message, keeping its kind.
fn with_context(err: io::Error, context: String) -> io::Error {
    io::Error::new(err.kind(), format!("{context}: {err}"))
}
