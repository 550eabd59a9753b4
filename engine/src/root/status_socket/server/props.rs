//! Property tests of the status request parser: whatever bytes a client
//! sends (the request among others, `\r\n`, NULs, lines far too long, no
//! newline at all), however they arrive (in any chunks, with interrupted
//! reads) and however the client ends (hanging up, falling silent, the
//! connection failing), the server answers as the protocol says
//! ([`expected`]) without holding or reading more than [`MAX_REQUEST`]
//! bytes.

use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
use proptest::strategy::Strategy as Gen;

use super::check::{check, echoed, expected, End, STATUS};
use super::MAX_REQUEST;
use crate::testing::proptest_config as config;
use supertrees_core::control::sanitize;

/// A piece of what a client may send.
fn a_piece() -> impl Gen<Value = Vec<u8>> {
    prop_oneof![
        Just(b"status".to_vec()),
        Just(b"status json".to_vec()),
        Just(b"watch".to_vec()),
        Just(b"metrics".to_vec()),
        Just(b"restart ".to_vec()),
        Just(b"stop ".to_vec()),
        Just(b"start".to_vec()),
        Just(b"root/".to_vec()),
        Just(b"1/0".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\0".to_vec()),
        Just(b" ".to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
        (0usize..100).prop_map(|n| vec![b'x'; n]),
    ]
}

/// What a client may send: pieces, any bytes, or a line far too long.
fn sent() -> impl Gen<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(a_piece(), 0..8).prop_map(|pieces| pieces.concat()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (MAX_REQUEST..10_000, any::<bool>()).prop_map(|(n, newline)| {
            let mut line = vec![b'y'; n];
            if newline {
                line.push(b'\n');
            }
            line
        }),
    ]
}

fn a_chunking() -> impl Gen<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![1]),
        prop::collection::vec(1usize..80, 1..6),
    ]
}

fn an_end() -> impl Gen<Value = End> {
    prop_oneof![Just(End::Hangup), Just(End::Silence), Just(End::Reset)]
}

/// Undoes [`echoed`]: the bytes it shows (without `...`).
fn unecho(echo: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = echo.bytes();
    while let Some(b) = bytes.next() {
        if b == b'\\' {
            assert_eq!(bytes.next(), Some(b'x'), "in {echo:?}");
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).expect("two hex digits"));
        } else {
            out.push(b);
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes, in any chunks, then any end: the protocol's answer (the
    /// status for a first line `status`, with or without `\r`; else one
    /// `error: ` line of printable ASCII, or none for a client that sent
    /// nothing or whose connection failed), never more than `MAX_REQUEST`
    /// bytes held or read, the status rendered only when answered.
    #[test]
    fn any_request_gets_the_protocols_answer(
        data in sent(),
        chunks in a_chunking(),
        interrupt in any::<bool>(),
        end in an_end(),
    ) {
        check(&data, &chunks, interrupt, end);
    }

    /// The status request is answered with the status, whatever follows its
    /// line, however it arrives.
    #[test]
    fn the_status_request_gets_the_status(
        crlf in any::<bool>(),
        after in sent(),
        chunks in a_chunking(),
        end in an_end(),
    ) {
        let line: &[u8] = if crlf { b"status\r\n" } else { b"status\n" };
        let data = [line, &after].concat();
        prop_assert_eq!(expected(&data, end), Some(STATUS.to_owned()));
        check(&data, &chunks, false, end);
    }

    /// A request echoed in an error line shows its first 32 bytes exactly
    /// (they can be read back), as printable ASCII without backquotes, and
    /// says whether there were more; the server echoes as the protocol says.
    #[test]
    fn echoed_requests_are_printable_and_exact(request in prop::collection::vec(any::<u8>(), 0..80)) {
        let echo = sanitize(&request);
        prop_assert_eq!(&echo, &echoed(&request));
        prop_assert!(echo.bytes().all(|b| matches!(b, b' '..=b'~') && b != b'`'), "{:?}", echo);
        let shown = if request.len() > 32 {
            echo.strip_suffix("...").expect("`...` after a long request")
        } else {
            &echo
        };
        prop_assert_eq!(unecho(shown), &request[..request.len().min(32)]);
    }
}
