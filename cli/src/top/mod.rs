//! `supertrees top`: a live view of the tree in the terminal.
//!
//! | file | what it holds |
//! |---|---|
//! | `model.rs` | what is shown, apart from any terminal: the nodes from the status, changed by each event; the latest events; whether the tree is reachable |
//! | `feed.rs` | the threads that ask the tree: the status every few seconds, the event stream |
//! | `view.rs` | how the model is drawn |
//! | `mod.rs` | the terminal and the loop: keys, what the threads heard, drawing |
//!
//! It starts only if the tree answers `status json` (else it exits as any
//! command: 1 refused, 111 unreachable); from then on it keeps going
//! whatever the tree does, and says "disconnected" while it is gone.

mod feed;
pub mod model;
pub mod view;

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::widgets::TableState;
use ratatui::DefaultTerminal;
use supertrees::control::Client;

use crate::doc::StatusDoc;
use crate::exit::{fail, say, Exit};
use feed::{Feed, Feeds};
use model::Model;

/// How long the loop waits for a key before it looks at what the threads
/// heard and draws again.
const TICK: Duration = Duration::from_millis(200);

/// Runs `top` on the tree of `client` until `q`, Esc or Ctrl-C.
pub fn run(client: &Client, err: &mut dyn Write) -> Exit {
    if !io::stdout().is_terminal() {
        say(err, "top needs a terminal on its standard output");
        return Exit::Usage;
    }
    let doc = match client.status_json().map(|text| StatusDoc::parse(&text)) {
        Ok(Ok(doc)) => doc,
        Ok(Err(why)) => {
            say(err, &why);
            return Exit::System;
        }
        Err(failure) => return fail(&failure, err),
    };
    let mut model = Model::new();
    model.apply_status(&doc, Instant::now());
    model.read_memory(rss);
    let feeds = feed::start(client);
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(e) => {
            let _ = ratatui::try_restore();
            say(err, &format!("can't set up the terminal: {e}"));
            return Exit::System;
        }
    };
    let looped = run_loop(&mut terminal, &mut model, &feeds, client);
    let restored = ratatui::try_restore();
    match looped.and(restored) {
        Ok(()) => Exit::Done,
        Err(e) => {
            say(err, &format!("the terminal: {e}"));
            Exit::System
        }
    }
}

/// Draws, reads keys and applies what the threads heard, until a key
/// quits.
fn run_loop(
    terminal: &mut DefaultTerminal,
    model: &mut Model,
    feeds: &Feeds,
    client: &Client,
) -> io::Result<()> {
    let mut table = TableState::default().with_selected(Some(0));
    loop {
        terminal
            .draw(|frame| view::draw(frame, model, &mut table, client.socket(), Instant::now()))?;
        if event::poll(TICK)? {
            if let Event::Key(key) = event::read()? {
                if key.kind != KeyEventKind::Release
                    && !on_key(key.code, key.modifiers, &mut table, model)
                {
                    return Ok(());
                }
            }
        }
        while let Ok((feed, at)) = feeds.heard.try_recv() {
            apply(model, feed, at);
        }
        if model.take_stale() {
            feeds.refresh();
        }
    }
}

/// What a key does; `false` to quit.
fn on_key(code: KeyCode, modifiers: KeyModifiers, table: &mut TableState, model: &Model) -> bool {
    let last = model.rows().len().saturating_sub(1);
    let at = table.selected().unwrap_or(0);
    let page = 10;
    let to = match code {
        KeyCode::Char('q') | KeyCode::Esc => return false,
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => return false,
        KeyCode::Up | KeyCode::Char('k') => at.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => at.saturating_add(1).min(last),
        KeyCode::PageUp => at.saturating_sub(page),
        KeyCode::PageDown => at.saturating_add(page).min(last),
        KeyCode::Home => 0,
        KeyCode::End => last,
        _ => return true,
    };
    table.select(Some(to));
    true
}

/// The resident memory of process `pid`, from `/proc` (`top` runs on the
/// tree's machine; `None` where that process is not ours to see).
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kib.checked_mul(1024)
}

/// Applies one thing the threads heard at `at`.
fn apply(model: &mut Model, feed: Feed, at: Instant) {
    match feed {
        Feed::Status(doc) => {
            model.apply_status(&doc, at);
            model.read_memory(rss);
        }
        Feed::NoStatus { why, refused: true } => model.status_refused(why, at),
        Feed::NoStatus {
            why,
            refused: false,
        } => model.disconnected(why, at),
        Feed::Watching => model.watching(true),
        Feed::Line(line) => model.apply_watch(&line, at),
        Feed::WatchEnded => model.watching(false),
        Feed::WatchRefused(why) => model.watch_refused(why),
    }
}
