//! Entry points of the fuzz targets in the repository's `fuzz/` directory,
//! behind the feature `fuzzing`: not part of the API, hidden from the docs.
//! (The frame reader's is `supertrees_core::fuzzing::frame_reader`.)
//!
//! Each runs one of the engine's parsers on any bytes, with the checks its
//! property tests make, and panics on a defect: a panic of the parser
//! itself, or an answer the checks refuse.

/// The status socket's request parser, serving a fake client that sends
/// the bytes after the first (which sets how they arrive and how the
/// client ends): the protocol's answer, never more than a request line
/// held.
pub fn status_request(data: &[u8]) {
    crate::fuzz::status_request(data);
}

/// The cgroup file parsers (`/proc/self/mountinfo`, `/proc/self/cgroup`,
/// `/proc/<pid>/stat`, keyed files, controller and pid lists, base
/// directory names) on the bytes as text: what each reads is what the text
/// says.
pub fn cgroup_parsers(data: &[u8]) {
    crate::fuzz::cgroup_parsers(data);
}
