//! What `top` hears from the tree, on two threads of its own, so that the
//! screen never waits for the tree: the status, fetched at start and every
//! few seconds (and when the model asks: [`Feeds::refresh`]), and the
//! events of `watch`, reopened whenever the stream ends. Both keep trying
//! while the tree is gone, and end when `top` does.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use supertrees::control::{Client, ClientError, WatchLine};

use crate::doc::StatusDoc;

/// How often the status is fetched.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How long the event stream waits before it is opened again after it
/// ended; after the tree refused it, [`REFUSED_RETRY`].
const REOPEN: Duration = Duration::from_secs(1);

/// How long after the tree refused `watch` it is asked again.
const REFUSED_RETRY: Duration = Duration::from_secs(10);

/// One thing heard from the tree.
#[derive(Debug)]
pub enum Feed {
    /// Its status.
    Status(StatusDoc),
    /// No status: why, and whether the tree answered (refused it).
    NoStatus {
        /// Why.
        why: String,
        /// The tree answered with an error line.
        refused: bool,
    },
    /// Its event stream is open.
    Watching,
    /// One line of it.
    Line(WatchLine),
    /// Its event stream ended (the tree stopped or went away), or could
    /// not be opened.
    WatchEnded,
    /// The tree refuses `watch`.
    WatchRefused(String),
}

/// The receiving end of the threads, and a way to ask for a fresh status.
#[derive(Debug)]
pub struct Feeds {
    /// What the threads heard, and when.
    pub heard: Receiver<(Feed, Instant)>,
    refresh: Sender<()>,
}

impl Feeds {
    /// Asks for a fresh status now.
    pub fn refresh(&self) {
        let _ = self.refresh.send(());
    }
}

/// Starts the threads that ask the tree of `client`.
pub fn start(client: &Client) -> Feeds {
    let (tell, heard) = mpsc::channel();
    let (refresh, asked) = mpsc::channel();
    let status_client = client.clone();
    let status_tell = tell.clone();
    std::thread::spawn(move || poll_status(&status_client, &status_tell, &asked));
    let watch_client = client.clone();
    std::thread::spawn(move || watch(&watch_client, &tell));
    Feeds { heard, refresh }
}

/// Fetches the status every [`REFRESH`], or when asked, until `top` ends.
fn poll_status(client: &Client, tell: &Sender<(Feed, Instant)>, asked: &Receiver<()>) {
    loop {
        let feed = match client.status_json() {
            Ok(text) => match StatusDoc::parse(&text) {
                Ok(doc) => Feed::Status(doc),
                Err(why) => Feed::NoStatus {
                    why,
                    refused: false,
                },
            },
            Err(err) => Feed::NoStatus {
                why: without_socket(&err.to_string(), client),
                refused: err.is_refused(),
            },
        };
        if tell.send((feed, Instant::now())).is_err() {
            return;
        }
        match asked.recv_timeout(REFRESH) {
            Ok(()) => while asked.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `why` without the socket's path, which the header shows already:
/// `can't connect to the status socket: no such socket ...`.
fn without_socket(why: &str, client: &Client) -> String {
    why.replace(&format!(" {}", client.socket().display()), "")
}

/// Follows the event stream, opening it again whenever it ends, until
/// `top` ends.
fn watch(client: &Client, tell: &Sender<(Feed, Instant)>) {
    let send = |feed| tell.send((feed, Instant::now())).is_ok();
    loop {
        let mut wait = REOPEN;
        match client.watch() {
            Ok(events) => {
                if !send(Feed::Watching) {
                    return;
                }
                for line in events {
                    let feed = match line {
                        Ok(line) => Feed::Line(line),
                        Err(ClientError::Refused { answer, .. }) => {
                            wait = REFUSED_RETRY;
                            Feed::WatchRefused(answer)
                        }
                        // A line that is no event: skipped.
                        Err(ClientError::Io(err))
                            if err.kind() == std::io::ErrorKind::InvalidData =>
                        {
                            continue
                        }
                        Err(_) => break,
                    };
                    if !send(feed) {
                        return;
                    }
                }
                if wait == REOPEN && !send(Feed::WatchEnded) {
                    return;
                }
            }
            Err(_) => {
                if !send(Feed::WatchEnded) {
                    return;
                }
            }
        }
        std::thread::sleep(wait);
    }
}
