//! Checks of the cgroup file parsers on any text, shared by their property
//! tests (`props`) and the fuzz target `cgroup_parsers` (through
//! `crate::fuzzing`): they panic on a defect.

use std::path::Path;

use super::{
    base_name, controller_list, keyed, locate, mountinfo, parse_base_name, pids, proc_cgroup,
    start_time, unescape, Controller,
};

/// What [`unescape`] makes of `field`, by its definition: each backslash
/// followed by three octal digits of a byte becomes that byte; every other
/// byte stays as it is.
pub(crate) fn unescaped(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match digits {
            Some(d) if bytes[i] == b'\\' && d[0] <= b'3' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs every parser on `text`, whatever it is, and checks what they make
/// of it: nothing out of thin air (no more mounts or memberships than
/// lines, controllers and pids that are words of the text, a key's value
/// from a line of that key), [`unescape`] as defined, only canonical base
/// names parsed, and every directory located below a mount point.
pub(crate) fn any_text(text: &str) {
    let lines = text.lines().count();
    let mounts = mountinfo(text);
    assert!(
        mounts.len() <= lines,
        "{} mounts of {lines} lines",
        mounts.len()
    );
    let memberships = proc_cgroup(text);
    assert!(memberships.len() <= lines);
    for membership in &memberships {
        assert!(membership
            .controllers
            .iter()
            .all(|c| !c.is_empty() && !c.contains(',')));
    }
    assert_eq!(unescape(text), unescaped(text), "unescaping {text:?}");
    if let Some((pid, start)) = parse_base_name(text) {
        assert!(pid > 0, "{text:?}");
        assert_eq!(base_name(pid, start), text, "not a base name");
    }
    if let Some(start) = start_time(text) {
        assert!(text.contains(&start.to_string()));
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    for controller in controller_list(text) {
        assert!(words.contains(&controller.name()));
    }
    for pid in pids(text) {
        assert!(
            pid > 0 && words.iter().any(|w| w.parse() == Ok(pid)),
            "{pid}"
        );
    }
    for key in words.iter().take(4) {
        if let Some(value) = keyed(text, key) {
            assert!(text.lines().any(|line| line
                .split_once(' ')
                .is_some_and(|(k, v)| k == *key && v.trim().parse() == Ok(value))));
        }
    }
    let located = locate(&mounts, &memberships);
    let below_a_mount = |dir: &Path| mounts.iter().any(|m| dir.starts_with(&m.mount_point));
    assert!(located.v2.as_deref().is_none_or(below_a_mount));
    for controller in Controller::ALL {
        assert!(located.v1(controller).is_none_or(below_a_mount));
    }
}

/// The fuzz target: [`any_text`] on `data` read as UTF-8 (invalid
/// sequences replaced, as the files are read as text).
pub(crate) fn fuzz(data: &[u8]) {
    any_text(&String::from_utf8_lossy(data));
}
