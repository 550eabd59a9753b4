//! What `watch` prints of each line the tree sends, and text from the
//! tree made safe for a terminal.

use supertrees::control::WatchLine;

use crate::when;

/// One event as a line for people: `<time> <path> <text>`, the time in
/// UTC with milliseconds; the path is said once (the event's text starts
/// with it).
pub fn human(line: &WatchLine) -> String {
    match line {
        WatchLine::Event(event) => {
            let time = when::utc(event.at);
            let text = printable(&event.text);
            match text.strip_prefix(event.path.as_str()) {
                Some(rest) if !event.path.is_empty() => {
                    format!("{time} {}{rest}", printable(&event.path))
                }
                _ => format!("{time} {} {text}", printable(&event.path)),
            }
        }
        WatchLine::Dropped { dropped } => {
            format!("({dropped} events missed: this watcher read too slowly)")
        }
    }
}

/// `text` without control characters (a worker's panic message may hold
/// any): each is written as its escape, e.g. `\u{1b}`.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str) -> WatchLine {
        serde_json::from_str(json).expect("a watch line")
    }

    #[test]
    fn an_event_is_time_path_text() {
        let event = line(
            r#"{"at": 1765130800123, "path": "root/1/0", "pid": 4242, "kind": "exited", "text": "root/1/0 (pid 4242): panicked: boom; restarting after 10ms"}"#,
        );
        assert_eq!(
            human(&event),
            "2025-12-07T18:06:40.123Z root/1/0 (pid 4242): panicked: boom; restarting after 10ms"
        );
        let other =
            line(r#"{"at": 0, "path": "root/2", "pid": null, "kind": "removed", "text": "gone"}"#);
        assert_eq!(human(&other), "1970-01-01T00:00:00.000Z root/2 gone");
        assert_eq!(
            human(&line(r#"{"dropped": 3}"#)),
            "(3 events missed: this watcher read too slowly)"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\x1b[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        let event = line(
            r#"{"at": 0, "path": "root/0", "pid": 1, "kind": "exited", "text": "root/0 (pid 1): panicked: \u001b[31mred"}"#,
        );
        assert!(!human(&event).contains('\x1b'));
    }
}
