//! How `top` draws its [`Model`]: a header (the socket, whether the tree
//! is reachable and its events come live), the table of nodes (indented by
//! depth, coloured by state), the latest events, and a line of keys. A
//! terminal too small for that gets one line that says so.

use std::path::Path;
use std::time::Instant;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row as TableRow, Table, TableState};
use ratatui::Frame;

use super::model::{Link, Model, Row, Shown};
use crate::show::printable;
use crate::when;

/// The smallest terminal drawn in full.
pub const MIN_WIDTH: u16 = 40;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 10;

/// Below this width, the table shows path, state and pid only.
const NARROW: u16 = 80;

/// Draws `model` at `now` on `frame`; `table` holds the selected row.
pub fn draw(frame: &mut Frame, model: &Model, table: &mut TableState, socket: &Path, now: Instant) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small ({}x{}; {MIN_WIDTH}x{MIN_HEIGHT} at least): q quits",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let events_height = (area.height / 3).clamp(4, 12);
    let [head, nodes, events, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(events_height),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header(model, socket, now)), head);
    draw_nodes(frame, model, table, nodes, now);
    draw_events(frame, model, events);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" q", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" quit  "),
            Span::styled(
                "↑↓ PgUp PgDn Home End",
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(" move"),
        ]))
        .style(Style::new().fg(Color::Gray)),
        keys,
    );
}

/// The header: the socket, whether the tree is reachable and its events
/// come live, its generation and size.
fn header(model: &Model, socket: &Path, now: Instant) -> Line<'static> {
    let (link, colour) = match model.link() {
        Link::Connecting => ("connecting".to_owned(), Color::Yellow),
        Link::Up if model.is_watching() => ("live".to_owned(), Color::Green),
        Link::Up => match model.no_watch() {
            Some(why) => (format!("polling ({})", printable(why)), Color::Yellow),
            None => ("polling".to_owned(), Color::Yellow),
        },
        Link::Down {
            since,
            why,
            refused,
        } => (
            format!(
                "{} for {}, trying again: {}",
                if *refused {
                    "no status"
                } else {
                    "disconnected"
                },
                when::uptime(now.saturating_duration_since(*since)),
                printable(why)
            ),
            Color::Red,
        ),
    };
    let mut spans = vec![
        Span::styled("supertrees top ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(printable(&socket.display().to_string())),
        Span::raw("  "),
        Span::styled(link, Style::new().fg(colour).add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "  generation {}  {} nodes",
            model.generation(),
            model.rows().len()
        )),
    ];
    if model.missed() > 0 {
        spans.push(Span::styled(
            format!("  {} events missed", model.missed()),
            Style::new().fg(Color::Magenta),
        ));
    }
    Line::from(spans)
}

/// The colour of a node in `state`.
pub fn colour(state: &str, held: bool) -> Color {
    if held {
        return Color::Blue;
    }
    match state {
        "ready" | "running" => Color::Green,
        "starting" | "stopping" => Color::Yellow,
        "restarting" => Color::Magenta,
        "failed" => Color::Red,
        "stopped" => Color::DarkGray,
        _ => Color::White,
    }
}

/// A node's cells: path (indented by depth), kind, state, pid, restarts,
/// uptime, memory; on a narrow terminal, path, state and pid.
fn cells(row: &Row, now: Instant, narrow: bool) -> Vec<Cell<'static>> {
    let path = format!("{}{}", "  ".repeat(row.depth), printable(&row.path));
    let state = if row.held {
        format!("{} (held)", row.state)
    } else {
        row.state.clone()
    };
    let pid = row.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
    if narrow {
        return vec![path.into(), state.into(), pid.into()];
    }
    let up = row.uptime(now).map_or_else(|| "-".to_owned(), when::uptime);
    let memory = row.memory().unwrap_or_default();
    vec![
        path.into(),
        row.kind.clone().into(),
        state.into(),
        pid.into(),
        row.restarts.to_string().into(),
        up.into(),
        memory.into(),
    ]
}

fn draw_nodes(frame: &mut Frame, model: &Model, table: &mut TableState, area: Rect, now: Instant) {
    let narrow = area.width < NARROW;
    let stale = !matches!(model.link(), Link::Up);
    let rows = model.rows().iter().map(|row| {
        let colour = if stale {
            Color::DarkGray
        } else {
            colour(&row.state, row.held)
        };
        TableRow::new(cells(row, now, narrow)).style(Style::new().fg(colour))
    });
    let (titles, widths): (Vec<&str>, Vec<Constraint>) = if narrow {
        (
            vec!["PATH", "STATE", "PID"],
            vec![
                Constraint::Fill(1),
                Constraint::Length(18),
                Constraint::Length(8),
            ],
        )
    } else {
        (
            vec!["PATH", "KIND", "STATE", "PID", "RESTARTS", "UP", "MEMORY"],
            vec![
                Constraint::Fill(1),
                Constraint::Length(10),
                Constraint::Length(18),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
        )
    };
    let header = TableRow::new(titles).style(
        Style::new()
            .add_modifier(Modifier::BOLD)
            .add_modifier(Modifier::REVERSED),
    );
    if let Some(selected) = table.selected() {
        if selected >= model.rows().len() {
            table.select(model.rows().len().checked_sub(1));
        }
    }
    let widget = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(widget, area, table);
}

/// The colour of an event of `kind`.
fn event_colour(kind: &str) -> Color {
    match kind {
        "exited" | "host_exited" => Color::Red,
        "started" => Color::Cyan,
        "ready" => Color::Green,
        "stopping" | "held" | "removed" => Color::Yellow,
        _ => Color::Magenta,
    }
}

fn event_line(shown: &Shown) -> Line<'static> {
    let time = if shown.at == 0 {
        "            ".to_owned()
    } else {
        when::time_of_day(shown.at)
    };
    Line::from(vec![
        Span::styled(time, Style::new().fg(Color::Gray)),
        Span::raw(" "),
        Span::styled(
            printable(&shown.text),
            Style::new().fg(event_colour(&shown.kind)),
        ),
    ])
}

fn draw_events(frame: &mut Frame, model: &Model, area: Rect) {
    let block = Block::bordered().title(" events (UTC) ");
    let room = usize::from(block.inner(area).height);
    let newest: Vec<Line> = model.events().rev().take(room).map(event_line).collect();
    let lines: Vec<Line> = newest.into_iter().rev().collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::tests::SAMPLE;
    use crate::doc::StatusDoc;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(model: &Model, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        let mut table = TableState::default().with_selected(Some(0));
        terminal
            .draw(|f| {
                draw(
                    f,
                    model,
                    &mut table,
                    Path::new("/run/t/status.sock"),
                    Instant::now(),
                )
            })
            .expect("draw");
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn loaded() -> Model {
        let mut model = Model::new();
        model.apply_status(&StatusDoc::parse(SAMPLE).expect("doc"), Instant::now());
        model
    }

    #[test]
    fn a_wide_terminal_shows_every_column() {
        let mut model = loaded();
        model.watching(true);
        let text = screen(&model, 120, 30);
        assert!(text.contains("live"), "{text}");
        for want in [
            "PATH",
            "KIND",
            "RESTARTS",
            "MEMORY",
            "  root/1/0",
            "12.0 MiB",
            "stopped (held)",
            "generation 2",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn a_narrow_or_tiny_terminal_still_draws() {
        let model = loaded();
        let narrow = screen(&model, 50, 20);
        assert!(
            narrow.contains("root/1/host") && !narrow.contains("MEMORY"),
            "{narrow}"
        );
        let tiny = screen(&model, 20, 5);
        assert!(tiny.contains("terminal too"), "{tiny}");
        for (w, h) in [(1, 1), (40, 10), (39, 40), (200, 9)] {
            screen(&model, w, h);
        }
    }

    #[test]
    fn a_gone_tree_says_so_and_its_events_show() {
        let mut model = loaded();
        model.apply_watch(
            &serde_json::from_str(
                r#"{"at": 1765130800123, "path": "root/0", "pid": 101, "kind": "exited", "text": "root/0 (pid 101): panicked: \u001b[2Jboom; restarting after 10ms"}"#,
            )
            .expect("line"),
            Instant::now(),
        );
        model.disconnected("can't connect: no such socket".into(), Instant::now());
        let text = screen(&model, 120, 30);
        assert!(text.contains("disconnected"), "{text}");
        assert!(
            text.contains("18:06:40.123 root/0 (pid 101): panicked: \\u{1b}[2Jboom"),
            "{text}"
        );
    }
}
