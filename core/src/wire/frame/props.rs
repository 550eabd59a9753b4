//! Property tests of the framing, on the engine's real messages ([`Note`],
//! [`Command`]) generated at random, fed to the reader in random chunks.
//!
//! What a reader does with bytes that are not the frames written, as these
//! properties pin it (and the module docs say): it never panics, holds less
//! than one largest frame undecoded, and hands out at most one message per
//! `HEADER + 1` bytes; garbage between frames, a frame with an impossible
//! length, and a frame whose body is not exactly one message are dropped,
//! and every frame around them comes through; the channel is never declared
//! broken. A frame cut short is waited for; followed by others, it takes
//! as many of their bytes as its length says: the frames before it come
//! through, and those that begin past what it took.

use std::time::Duration;

use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
use proptest::sample::Index;
use proptest::strategy::Strategy as Gen;

use super::check::{any_bytes_as, decode_chunked};
use super::{encode, encode_into, HEADER, MAGIC, MAX_BODY};
use crate::machine::{ChildIdx, Grant, Outcome, RecordState};
use crate::policy::BackoffState;
use crate::props::config;
use crate::wire::{Command, Ending, Note};
use crate::ChildExit;

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

fn a_child() -> impl Gen<Value = ChildIdx> {
    prop_oneof![0usize..8, any::<u32>().prop_map(|n| n as usize)]
        .prop_map(|n| ChildIdx::new(n).expect("a u32"))
}

fn a_duration() -> impl Gen<Value = Duration> {
    (any::<u64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Duration::new(secs, nanos))
}

fn a_record() -> impl Gen<Value = RecordState> {
    (any::<u32>(), any::<u32>()).prop_map(|(restarts, consecutive)| {
        // Its one field is private: a `BackoffState` is a `u32` on the wire.
        let bytes = postcard::to_stdvec(&consecutive).expect("a u32 encodes");
        let backoff: BackoffState = postcard::from_bytes(&bytes).expect("and decodes");
        RecordState { restarts, backoff }
    })
}

fn an_exit() -> impl Gen<Value = ChildExit> {
    prop_oneof![
        Just(ChildExit::Normal),
        Just(ChildExit::Stopped),
        Just(ChildExit::Panicked),
        any::<i32>().prop_map(ChildExit::Exited),
        any::<i32>().prop_map(ChildExit::Signaled),
        Just(ChildExit::GaveUp),
        any::<i32>().prop_map(ChildExit::ForkFailed),
        Just(ChildExit::SetupFailed),
        a_duration().prop_map(ChildExit::StartTimeout),
    ]
}

/// A panic's message: up to 256 bytes of any text.
fn a_reason() -> impl Gen<Value = Option<String>> {
    // At most 64 characters of at most 4 bytes.
    prop::option::of(".{0,64}")
}

fn a_note() -> impl Gen<Value = Note> {
    prop_oneof![
        a_child().prop_map(Note::WorkerReady),
        a_child().prop_map(Note::Began),
        (a_child(), an_exit(), a_reason(), a_duration(), a_record()).prop_map(
            |(child, exit, reason, delay, state)| Note::Restarted {
                child,
                exit,
                reason,
                delay,
                state,
            }
        ),
        (a_child(), an_exit(), a_reason()).prop_map(|(child, exit, reason)| Note::Exited {
            child,
            exit,
            reason
        }),
        Just(Note::Ready),
        any::<i32>().prop_map(|thread| Note::Alive { thread }),
        (
            prop_oneof![Just(Outcome::Normal), Just(Outcome::GaveUp)],
            prop::option::of(any::<i32>())
        )
            .prop_map(|(outcome, signal)| Note::Ended(Ending { outcome, signal })),
        Just(Note::SetupFailed),
    ]
}

/// An argument of a dynamic child: any bytes, often with the frame's magic
/// in them, which the reader must not take for a frame.
fn an_arg() -> impl Gen<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![any::<u8>(), Just(MAGIC[0]), Just(MAGIC[1])],
        0..200,
    )
}

fn a_command() -> impl Gen<Value = Command> {
    prop_oneof![
        (a_child(), prop::option::of(a_record()))
            .prop_map(|(child, lease)| Command::Start { child, lease }),
        (a_child(), any::<u32>(), any::<u64>(), an_arg()).prop_map(|(child, template, id, arg)| {
            Command::Add {
                child,
                template,
                id: crate::ChildId::new(id),
                arg,
            }
        }),
        a_child().prop_map(Command::Stop),
        a_child().prop_map(Command::Drop),
        (prop::option::of(any::<u32>()), any::<u64>())
            .prop_map(|(budget, as_of)| Command::Grant(Grant { budget, as_of })),
        Just(Command::Shutdown),
    ]
}

/// Whether `frame` holds the magic only where it starts.
fn clean(frame: &[u8]) -> bool {
    !frame[1..].windows(MAGIC.len()).any(|w| w == MAGIC)
}

/// A note whose frame has the magic only at its start: around a corrupt
/// frame, where the reader looks for the magic again, one inside a body
/// would be taken for the start of a frame.
fn a_clean_note() -> impl Gen<Value = Note> {
    a_note().prop_filter("the magic inside its frame", |note| clean(&encode(note)))
}

/// How bytes are cut into reads: random sizes, or one byte at a time.
fn a_chunking() -> impl Gen<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1]),
        prop::collection::vec(1usize..64, 1..8),
        prop::collection::vec(1usize..4096, 1..4),
    ]
}

/// The frames of `messages`, back to back.
fn frames<T: serde::Serialize>(messages: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        encode_into(&mut out, message);
    }
    out
}

// ---------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------

/// A piece of a stream of garbage, made to reach every branch of the
/// reader: the magic, declared lengths of every kind, frames whole, cut
/// short or with a byte changed.
fn a_piece() -> impl Gen<Value = Vec<u8>> {
    let length = prop_oneof![
        Just(0u32),
        1u32..16,
        Just(MAX_BODY as u32),
        Just(MAX_BODY as u32 + 1),
        Just(u32::MAX),
        any::<u32>(),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(MAGIC.to_vec()),
        Just(vec![MAGIC[0]]),
        length.prop_map(|len| [&MAGIC[..], &len.to_le_bytes()].concat()),
        a_note().prop_map(|note| encode(&note)),
        a_command().prop_map(|command| encode(&command)),
        (a_note(), any::<Index>()).prop_map(|(note, at)| {
            let frame = encode(&note);
            frame[..at.index(frame.len())].to_vec()
        }),
        (a_note(), any::<Index>(), any::<u8>()).prop_map(|(note, at, byte)| {
            let mut frame = encode(&note);
            let at = at.index(frame.len());
            frame[at] = byte;
            frame
        }),
    ]
}

fn garbage() -> impl Gen<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::collection::vec(a_piece(), 0..24).prop_map(|pieces| pieces.concat()),
    ]
}

/// Bytes with no magic in them, whatever comes before or after.
fn no_magic(len: std::ops::Range<usize>) -> impl Gen<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("the magic", |&b| b != MAGIC[0]),
        len,
    )
}

/// Bytes that are not one of the messages written, and hold no magic but
/// at their start: garbage, a magic alone, or a frame that is not a note.
fn a_corrupt_frame() -> impl Gen<Value = Vec<u8>> {
    let impossible = prop_oneof![Just(0u32), (MAX_BODY as u32 + 1)..=u32::MAX]
        .prop_filter("the magic in the length", |len| {
            !len.to_le_bytes().contains(&MAGIC[0])
        });
    prop_oneof![
        // Garbage between frames.
        no_magic(1..64),
        // A magic and nothing more: the next frame's magic and length make
        // an impossible length.
        Just(MAGIC.to_vec()),
        // An impossible length, and what follows it.
        (impossible, no_magic(0..64)).prop_map(|(len, body)| [
            &MAGIC[..],
            &len.to_le_bytes(),
            &body
        ]
        .concat()),
        // A body that is no `Note`: a variant that does not exist.
        (8u8..0x80, no_magic(0..64)).prop_map(|(tag, rest)| {
            let body = [&[tag][..], &rest].concat();
            let len = body.len() as u32;
            [&MAGIC[..], &len.to_le_bytes(), &body].concat()
        }),
        // A `Note` and bytes left over in one frame.
        (a_clean_note(), no_magic(1..16)).prop_map(|(note, extra)| {
            let body = [&encode(&note)[HEADER..], &extra].concat();
            let len = body.len() as u32;
            [&MAGIC[..], &len.to_le_bytes(), &body].concat()
        }),
    ]
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

/// A declared length, impossible or not, followed by much more than the
/// largest frame of bytes that are no frame: the reader never holds more
/// than one largest frame of them.
#[test]
fn a_long_declared_length_holds_at_most_one_frame() {
    for len in [MAX_BODY as u32, MAX_BODY as u32 + 1, u32::MAX] {
        let mut bytes = [&MAGIC[..], &len.to_le_bytes()].concat();
        bytes.resize(3 * MAX_BODY, 0);
        for chunks in [&[4096][..], &[1]] {
            let (got, pending) = decode_chunked::<Note>(&bytes, chunks);
            assert!(
                got.is_empty() && pending < MAGIC.len(),
                "{got:?}, {pending}"
            );
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any sequence of notes, and of commands, framed back to back and read
    /// in any chunks (one byte at a time included), decodes to exactly the
    /// same sequence, leaving nothing behind; `encode_into` writes the same
    /// bytes as `encode` one by one.
    #[test]
    fn messages_come_through_any_chunking(
        notes in prop::collection::vec(a_note(), 0..16),
        commands in prop::collection::vec(a_command(), 0..16),
        chunks in a_chunking(),
    ) {
        let bytes = frames(&notes);
        prop_assert_eq!(&bytes, &notes.iter().flat_map(encode).collect::<Vec<u8>>());
        prop_assert_eq!(decode_chunked::<Note>(&bytes, &chunks), (notes, 0));
        let bytes = frames(&commands);
        prop_assert_eq!(decode_chunked::<Command>(&bytes, &chunks), (commands, 0));
    }

    /// Garbage never crashes the reader, nor makes it hold more than one
    /// largest frame, nor hand out more messages than the bytes can hold,
    /// and what it makes of garbage does not depend on how it arrived;
    /// whatever it hands out is a message that round trips.
    #[test]
    fn garbage_is_survived(bytes in garbage(), chunks in a_chunking()) {
        any_bytes_as::<Note>(&bytes, &chunks);
        any_bytes_as::<Command>(&bytes, &chunks);
    }

    /// Input cut anywhere yields exactly the frames that are whole, and the
    /// reader holds the bytes of the one cut short, to complete it with
    /// what comes next.
    #[test]
    fn a_cut_stream_yields_its_whole_frames(
        notes in prop::collection::vec(a_note(), 1..12),
        cut in any::<Index>(),
        chunks in a_chunking(),
    ) {
        let bytes = frames(&notes);
        let cut = cut.index(bytes.len() + 1);
        let mut whole = 0;
        let mut end = 0;
        for note in &notes {
            let next = end + encode(note).len();
            if next > cut {
                break;
            }
            whole += 1;
            end = next;
        }
        let (got, pending) = decode_chunked::<Note>(&bytes[..cut], &chunks);
        prop_assert_eq!(&got[..], &notes[..whole]);
        prop_assert_eq!(pending, cut - end);
    }

    /// A corrupt frame between others (garbage, a magic alone, an
    /// impossible length, a body that is no message, a body with bytes left
    /// over) is dropped, and every frame before and after it comes through.
    #[test]
    fn a_corrupt_frame_is_dropped_and_the_others_come_through(
        before in prop::collection::vec(a_clean_note(), 0..6),
        corrupt in a_corrupt_frame(),
        after in prop::collection::vec(a_clean_note(), 0..6),
        chunks in a_chunking(),
    ) {
        let bytes = [frames(&before), corrupt, frames(&after)].concat();
        let (got, pending) = decode_chunked::<Note>(&bytes, &chunks);
        prop_assert_eq!(got, [before, after].concat());
        prop_assert!(pending < HEADER, "{} bytes left", pending);
    }

    /// A frame cut short between others takes as many bytes of what
    /// follows as its length says: with too few bytes after it, it is
    /// waited for; if the bytes it took are exactly one message, that
    /// message is handed out, and the frames that begin past them come
    /// through; else it is dropped, and all the frames after it come
    /// through. The frames before it come through whatever happens.
    #[test]
    fn a_frame_cut_short_costs_at_most_the_bytes_it_claims(
        before in prop::collection::vec(a_clean_note(), 0..6),
        cut_short in a_clean_note(),
        cut in any::<Index>(),
        after in prop::collection::vec(a_clean_note(), 0..6),
        chunks in a_chunking(),
    ) {
        let head = frames(&before);
        let frame = encode(&cut_short);
        // At least one byte of its body missing, its header whole.
        let kept = HEADER + cut.index(frame.len() - HEADER);
        let claimed_end = head.len() + frame.len();
        let mut bytes = [&head[..], &frame[..kept]].concat();
        let mut past = Vec::new();
        for note in &after {
            if bytes.len() >= claimed_end {
                past.push(note.clone());
            }
            encode_into(&mut bytes, note);
        }
        let (got, pending) = decode_chunked::<Note>(&bytes, &chunks);
        let expected = match bytes.get(head.len() + HEADER..claimed_end) {
            None => {
                prop_assert_eq!(pending, bytes.len() - head.len());
                before
            }
            Some(claimed) => match postcard::take_from_bytes::<Note>(claimed) {
                Ok((taken, [])) => [before, vec![taken], past].concat(),
                _ => [before, after].concat(),
            },
        };
        prop_assert_eq!(got, expected);
    }
}
