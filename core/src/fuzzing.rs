//! Entry points of the fuzz targets in the repository's `fuzz/` directory,
//! behind the feature `fuzzing`: not part of the API, hidden from the docs.
//!
//! The parsers of the process engine itself (the status socket's, the
//! cgroup files') are `supertrees-engine`'s, behind its own `fuzzing`
//! feature.
//!
//! Each runs one of the parsers on any bytes, with the checks its
//! property tests make, and panics on a defect: a panic of the parser
//! itself, or an answer the checks refuse.

/// The frame reader of the supervisor channels, reading the bytes as
/// `Note`s and as `Command`s in chunks (the first byte sets their size):
/// bounded, the same however the bytes arrive, every message it hands out
/// round-tripping.
pub fn frame_reader(data: &[u8]) {
    crate::wire::frame::check::fuzz(data);
}
