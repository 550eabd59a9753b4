//! The one framing for everything on a supervisor's pipes and sockets:
//! `MAGIC`, a little-endian `u32` length, then a [postcard] body.
//!
//! A reader that finds bytes which are not a frame (garbage written into a
//! pipe, a frame cut short) logs them, skips ahead to the next magic, and
//! goes on: a malformed or oversized frame is dropped, never a crash, and
//! the channel is not declared broken for it. Precisely:
//!
//! * bytes before a magic are skipped;
//! * a frame whose length is 0 or over [`MAX_BODY`] is dropped at once, and
//!   so is one whose body is not exactly one message (it does not decode,
//!   or bytes are left over after the message). The reader looks for the
//!   next magic from just past the dropped frame's magic, not past the
//!   length it declared (which may be what is wrong), so the frames after
//!   it come through (a magic inside the dropped body is taken for the
//!   start of a frame, like any other);
//! * a frame is waited for until as many bytes as its length says have
//!   arrived: a frame cut short and followed by others takes that many of
//!   their bytes, and the frames that begin past them come through (and
//!   those it took too, when the bytes are not exactly one message).
//!
//! Frames carry no checksum: changed bytes in a body that still decodes as
//! one message are taken for that message. Whatever it is sent, a reader
//! holds less than `HEADER + MAX_BODY` bytes undecoded. The property tests
//! (`props`) pin all of this.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::port::MAX_MESSAGE;

/// The first bytes of every frame.
const MAGIC: [u8; 2] = [0x5A, 0x17];
/// Magic and length.
pub const HEADER: usize = MAGIC.len() + 4;
/// The largest body a reader accepts; a longer length is taken as garbage.
/// The largest message is a [`Command::Add`](crate::wire::Command::Add):
/// its argument came in a request of at most [`MAX_MESSAGE`] bytes once
/// encoded, and its own fields take at most 14 bytes more (a tag, two
/// `u32`s and the argument's length, as varints).
pub const MAX_BODY: usize = MAX_MESSAGE + 64;

/// Encodes `message` as one frame.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, message);
    out
}

/// Appends `message` as one frame to `out`.
///
/// Every message type of the engine serializes infallibly (no maps with
/// non-string keys, no unsized sequences); a failure would be a bug, and
/// yields an empty body, which the reader drops and logs.
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, message: &T) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 4]);
    if let Err(err) = postcard::to_extend(message, Append(out)) {
        tracing::error!(%err, "a message could not be encoded");
        out.truncate(start + HEADER);
    }
    let body = out.len() - start - HEADER;
    if body > MAX_BODY {
        tracing::error!(
            len = body,
            "a message too large for a frame was written; its reader drops it"
        );
    }
    let len = u32::try_from(body).unwrap_or(u32::MAX);
    out[start + MAGIC.len()..start + HEADER].copy_from_slice(&len.to_le_bytes());
}

/// Appends to a buffer it borrows, for postcard.
struct Append<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Reassembles frames from bytes as they arrive.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Where the bytes not decoded yet start in `buf`: consumed bytes are
    /// dropped once per batch, not once per frame.
    at: usize,
}

impl FrameReader {
    /// Bytes received and not decoded yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.at
    }

    /// Appends bytes read off the wire.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, or `None` until more bytes arrive. Garbled
    /// bytes and frames whose body is not exactly one `T` are logged and
    /// skipped.
    #[allow(clippy::should_implement_trait)] // generic over the message type: not an Iterator
    pub fn next<T: DeserializeOwned>(&mut self) -> Option<T> {
        loop {
            let rest = &self.buf[self.at..];
            let start = rest.windows(MAGIC.len()).position(|w| w == MAGIC);
            let skip = start.unwrap_or(rest.len().saturating_sub(MAGIC.len() - 1));
            if skip > 0 {
                tracing::warn!(
                    bytes = skip,
                    "garbled bytes on a supervisor channel dropped"
                );
                self.at += skip;
            }
            start?;
            let rest = &self.buf[self.at..];
            let header = rest.get(..HEADER)?;
            let mut len = [0u8; 4];
            len.copy_from_slice(&header[MAGIC.len()..]);
            let len = u32::from_le_bytes(len) as usize;
            if len == 0 || len > MAX_BODY {
                tracing::warn!(len, "frame with an impossible length dropped");
                self.at += MAGIC.len();
                continue;
            }
            let body = rest.get(HEADER..HEADER + len)?;
            // The body must be one message to its last byte: bytes left
            // over mean the frame is not one that was written.
            match postcard::take_from_bytes(body) {
                Ok((message, [])) => {
                    self.at += HEADER + len;
                    if self.at == self.buf.len() {
                        self.buf.clear();
                        self.at = 0;
                    }
                    return Some(message);
                }
                Ok((_, left)) => {
                    tracing::warn!(
                        len,
                        left = left.len(),
                        "frame with bytes left over after its message dropped"
                    );
                    self.at += MAGIC.len();
                }
                Err(err) => {
                    tracing::warn!(len, %err, "frame that does not decode dropped");
                    self.at += MAGIC.len();
                }
            }
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub mod check;
#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Msg {
        A(u32),
        B { text: String, n: u64 },
    }

    fn samples() -> Vec<Msg> {
        vec![
            Msg::A(7),
            Msg::B {
                text: "root/1/0".into(),
                n: u64::MAX,
            },
            Msg::A(0),
        ]
    }

    fn decode_all(reader: &mut FrameReader) -> Vec<Msg> {
        std::iter::from_fn(|| reader.next()).collect()
    }

    #[test]
    fn frames_round_trip_whole_and_byte_by_byte() {
        let bytes: Vec<u8> = samples().iter().flat_map(encode).collect();
        let mut r = FrameReader::default();
        r.push(&bytes);
        assert_eq!(decode_all(&mut r), samples());
        let mut out = Vec::new();
        for b in bytes {
            r.push(&[b]);
            out.extend(decode_all(&mut r));
        }
        assert_eq!(out, samples());
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn garbage_truncation_and_bad_lengths_are_skipped() {
        let s = samples();
        let mut bytes = b"junk\x5A".to_vec();
        bytes.extend(encode(&s[0]));
        let cut = encode(&s[1]);
        bytes.extend(&cut[..cut.len() - 3]);
        bytes.extend(encode(&s[2]));
        // An impossible length, then a body that is not a `Msg`.
        bytes.extend([0x5A, 0x17, 0xFF, 0xFF, 0xFF, 0xFF]);
        bytes.extend([0x5A, 0x17, 1, 0, 0, 0, 9]);
        bytes.extend(encode(&s[0]));
        let mut r = FrameReader::default();
        r.push(&bytes);
        let got = decode_all(&mut r);
        assert_eq!(got.first(), Some(&s[0]));
        assert_eq!(got.last(), Some(&s[0]));
        assert!(got.len() >= 2 && got.len() <= 4, "{got:?}");
        assert!(r.pending() < HEADER);
    }

    #[test]
    fn frames_appended_to_a_buffer_decode_in_order() {
        let mut out = b"x".to_vec();
        for m in samples() {
            encode_into(&mut out, &m);
        }
        assert_eq!(
            &out[1..],
            &samples().iter().flat_map(encode).collect::<Vec<u8>>()[..]
        );
    }

    /// A body that holds a message and more is not a frame that was
    /// written: it was taken for the message, and the bytes after it
    /// ignored.
    #[test]
    fn a_body_with_bytes_left_over_is_dropped() {
        let mut bytes = [0x5A, 0x17, 3, 0, 0, 0, 0, 7, 7].to_vec();
        bytes.extend(encode(&samples()[0]));
        let mut r = FrameReader::default();
        r.push(&bytes);
        assert_eq!(decode_all(&mut r), [samples()[0].clone()]);
    }

    #[test]
    fn a_partial_frame_waits_for_the_rest() {
        let bytes = encode(&samples()[1]);
        let mut r = FrameReader::default();
        r.push(&bytes[..5]);
        assert_eq!(r.next::<Msg>(), None);
        r.push(&bytes[5..]);
        assert_eq!(r.next::<Msg>(), Some(samples()[1].clone()));
    }
}
