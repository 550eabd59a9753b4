//! Checks of the frame reader on any input, shared by its property tests
//! (`props`) and the fuzz target `frame_reader` (through `crate::fuzzing`):
//! they panic on a defect.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{encode, FrameReader, HEADER, MAX_BODY};
use crate::wire::{Command, Note};

/// Feeds `bytes` to a new reader in chunks of the sizes `chunks` gives in
/// turn (each at least 1; all at once when `chunks` is empty), taking every
/// message after each chunk, as a channel does. Checks the reader's bounds
/// all along: once it answers `None` it holds less than the largest frame
/// undecoded (a declared length never makes it hold more), and its buffer
/// no more than that and the last chunk; and it never hands out more than
/// one message per `HEADER + 1` bytes received (so taking messages ends).
/// Returns the messages, and how many bytes the reader holds at the end.
pub fn decode_chunked<T: DeserializeOwned>(bytes: &[u8], chunks: &[usize]) -> (Vec<T>, usize) {
    let mut reader = FrameReader::default();
    let mut messages = Vec::new();
    let mut sizes = chunks.iter().cycle();
    let mut fed = 0;
    while fed < bytes.len() {
        let left = bytes.len() - fed;
        let n = sizes.next().map_or(left, |&n| n.clamp(1, left));
        reader.push(&bytes[fed..fed + n]);
        fed += n;
        while let Some(message) = reader.next::<T>() {
            messages.push(message);
            assert!(
                messages.len() * (HEADER + 1) <= fed,
                "{} messages out of {fed} bytes",
                messages.len()
            );
        }
        assert!(
            reader.pending() < HEADER + MAX_BODY,
            "{} bytes held undecoded",
            reader.pending()
        );
        assert!(
            reader.buf.len() < HEADER + MAX_BODY + n,
            "a buffer of {} bytes after a chunk of {n}",
            reader.buf.len()
        );
    }
    (messages, reader.pending())
}

/// Checks the reader on `bytes`, whatever they are, read as `T`: the
/// messages and what is left over are the same in `chunks` as all at once
/// and byte by byte, and each message decoded encodes to a frame that
/// decodes back to it. Returns the messages.
pub fn any_bytes_as<T>(bytes: &[u8], chunks: &[usize]) -> Vec<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let whole = decode_chunked::<T>(bytes, &[]);
    assert_eq!(
        decode_chunked::<T>(bytes, chunks),
        whole,
        "in chunks {chunks:?}"
    );
    assert_eq!(decode_chunked::<T>(bytes, &[1]), whole, "byte by byte");
    for message in &whole.0 {
        let (again, left) = decode_chunked::<T>(&encode(message), &[]);
        assert_eq!(
            (again.as_slice(), left),
            (std::slice::from_ref(message), 0),
            "a decoded message does not round trip"
        );
    }
    whole.0
}

/// The fuzz target: the first byte of `data` (if any) sets a chunk size,
/// the rest is read as [`Note`]s and as [`Command`]s by [`any_bytes_as`].
pub fn fuzz(data: &[u8]) {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let chunks = [usize::from(chunk) + 1, 1, 3];
    any_bytes_as::<Note>(bytes, &chunks);
    any_bytes_as::<Command>(bytes, &chunks);
}
