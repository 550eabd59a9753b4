//! Each subcommand, carried out with a [`Client`]: answers to `out`,
//! errors to `err` ([`say`]), and the [`Exit`] it ends with.

use std::io::{self, Write};
use std::time::Duration;

use supertrees::control::{Client, ClientError, WatchLine};

use crate::args::{Command, Probe};
use crate::doc::StatusDoc;
use crate::exit::{fail, say, Exit};
use crate::{ready, show, top};

/// Carries out `command` on the tree of `client`.
pub fn run(command: &Command, client: &Client, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let result = match command {
        // Each line as printable text: a worker's panic message may hold
        // a terminal's escapes.
        Command::Status { json: false } => client.status_text().map(|text| {
            text.lines()
                .map(|l| show::printable(l) + "\n")
                .collect::<String>()
        }),
        Command::Status { json: true } => client.status_json(),
        Command::Metrics => client.metrics(),
        Command::Restart { path } => client.restart(path).map(line),
        Command::Stop { path } => client.stop(path).map(line),
        Command::Start { path } => client.start(path).map(line),
        Command::Watch { json } => return watch(client, *json, out, err),
        Command::Probe {
            what: Probe::Live,
            timeout,
        } => return live(client, *timeout, err),
        Command::Probe {
            what: Probe::Ready,
            timeout,
        } => return ready(client, *timeout, err),
        Command::Top => return top::run(client, err),
    };
    match result {
        Ok(mut answer) => {
            if !answer.ends_with('\n') {
                answer.push('\n');
            }
            finish(
                out.write_all(answer.as_bytes()).and_then(|()| out.flush()),
                err,
            )
        }
        Err(failure) => fail(&failure, err),
    }
}

/// The tree's answer to a command, `ok <done>`, and its newline.
fn line(done: String) -> String {
    format!("ok {done}\n")
}

/// The end of writing to stdout: a reader that went away (`| head`) is
/// no failure.
fn finish(written: io::Result<()>, err: &mut dyn Write) -> Exit {
    match written {
        Ok(()) => Exit::Done,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Exit::Done,
        Err(e) => {
            say(err, &format!("writing the answer: {e}"));
            Exit::of_io(&e)
        }
    }
}

/// `watch`: each line as it comes, until the tree closes the stream.
fn watch(client: &Client, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let mut events = match client.watch() {
        Ok(events) => events,
        Err(failure) => return fail(&failure, err),
    };
    while let Some(next) = events.next_line() {
        let raw = match next {
            Ok(raw) => raw,
            Err(failure) => return fail(&failure, err),
        };
        let text = if json {
            raw
        } else {
            match serde_json::from_str::<WatchLine>(&raw) {
                Ok(parsed) => show::human(&parsed),
                Err(e) => {
                    say(
                        err,
                        &format!("the tree sent a line that is no event ({e}): {raw}"),
                    );
                    continue;
                }
            }
        };
        let written = writeln!(out, "{text}").and_then(|()| out.flush());
        if written.is_err() {
            return finish(written, err);
        }
    }
    Exit::Done
}

/// `probe live`: the root answers `status` within `timeout`.
fn live(client: &Client, timeout: Duration, err: &mut dyn Write) -> Exit {
    match client.clone().with_timeout(timeout).status_text() {
        Ok(text) if text.starts_with("root ") => Exit::Done,
        Ok(text) => {
            let first = text.lines().next().unwrap_or_default();
            say(
                err,
                &format!("not live: the root answered `{first}`, no status"),
            );
            Exit::Failed
        }
        Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
            say(err, &format!("not live: {e}"));
            Exit::Failed
        }
        Err(failure) => {
            let exit = Exit::of(&failure);
            let why = if exit == Exit::Failed {
                "not live: "
            } else {
                ""
            };
            say(err, &format!("{why}{failure}"));
            exit
        }
    }
}

/// `probe ready`: every node is up (see [`crate::ready`]).
fn ready(client: &Client, timeout: Duration, err: &mut dyn Write) -> Exit {
    let text = match client.clone().with_timeout(timeout).status_json() {
        Ok(text) => text,
        Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
            say(err, &format!("not ready: {e}"));
            return Exit::Failed;
        }
        Err(failure) => {
            let exit = Exit::of(&failure);
            let why = if exit == Exit::Failed {
                "not ready: "
            } else {
                ""
            };
            say(err, &format!("{why}{failure}"));
            return exit;
        }
    };
    let doc = match StatusDoc::parse(&text) {
        Ok(doc) => doc,
        Err(why) => {
            say(err, &why);
            return Exit::System;
        }
    };
    let unready = ready::unready(&doc);
    if unready.is_empty() {
        return Exit::Done;
    }
    const SHOWN: usize = 10;
    let mut why = unready
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if unready.len() > SHOWN {
        why.push_str(&format!(" and {} more", unready.len() - SHOWN));
    }
    say(err, &format!("not ready: {why}"));
    Exit::Failed
}
