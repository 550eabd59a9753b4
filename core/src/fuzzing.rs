//! Entry points of the fuzz targets in the repository's `fuzz/` directory,
//! behind the feature `fuzzing`: not part of the API, hidden from the docs.
//!
//! Each runs one of the engine's parsers on any bytes, with the checks its
//! property tests make, and panics on a defect: a panic of the parser
//! itself, or an answer the checks refuse.

/// The frame reader of the supervisor channels, reading the bytes as
/// `Note`s and as `Command`s in chunks (the first byte sets their size):
/// bounded, the same however the bytes arrive, every message it hands out
/// round-tripping.
pub fn frame_reader(data: &[u8]) {
    crate::wire::frame::check::fuzz(data);
}

/// The status socket's request parser, serving a fake client that sends
/// the bytes after the first (which sets how they arrive and how the
/// client ends): the protocol's answer, never more than a request line
/// held.
pub fn status_request(data: &[u8]) {
    crate::engine::fuzz::status_request(data);
}

/// The cgroup file parsers (`/proc/self/mountinfo`, `/proc/self/cgroup`,
/// `/proc/<pid>/stat`, keyed files, controller and pid lists, base
/// directory names) on the bytes as text: what each reads is what the text
/// says.
pub fn cgroup_parsers(data: &[u8]) {
    crate::engine::fuzz::cgroup_parsers(data);
}
