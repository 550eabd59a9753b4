//! The requests of the status socket, the operator's door: one line each,
//! parsed here into one typed [`Request`], which the process engine's
//! server answers and its client sends. Portable: no socket here.
//!
//! Today the one request is `status` (the text tree). A request that will
//! name a node (an operator's `restart PATH`) is a variant of the same
//! enum, answered by the supervisor that owns the path.

use std::fmt::{self, Write as _};

/// How many bytes of an unknown request its error line echoes.
pub const ECHOED_REQUEST: usize = 32;

/// A request on the status socket.
/// Not `#[non_exhaustive]`: the server matches every request, so a new
/// one does not build until it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `status`: the tree as text, one line per node.
    Status,
}

impl Request {
    /// Every request, for tests and help texts.
    pub const ALL: [Request; 1] = [Request::Status];

    /// Parses one request line (without its `'\n'`; a `'\r'` before it is
    /// ignored, for clients that end lines with CRLF).
    ///
    /// # Errors
    ///
    /// [`Unknown`] for anything else, echoing what was sent.
    pub fn parse(line: &[u8]) -> Result<Self, Unknown> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Self::ALL
            .into_iter()
            .find(|request| request.line().as_bytes() == line)
            .ok_or_else(|| Unknown {
                echoed: sanitize(line),
            })
    }

    /// The request's line, as a client sends it (without its `'\n'`).
    pub fn line(self) -> &'static str {
        match self {
            Request::Status => "status",
        }
    }
}

/// A line that is no request: its error line says what was sent, as
/// [`sanitize`] shows it, and what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    echoed: String,
}

impl Unknown {
    /// The request as its error line shows it.
    pub fn echoed(&self) -> &str {
        &self.echoed
    }
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown request `{}`; send `status`", self.echoed)
    }
}

impl std::error::Error for Unknown {}

/// The first [`ECHOED_REQUEST`] bytes of `request` as printable ASCII
/// without backquotes (other bytes are written `\xNN`), and `...` if there
/// were more: what an error line may echo of what a client sent.
pub fn sanitize(request: &[u8]) -> String {
    let mut out = String::new();
    for &b in request.iter().take(ECHOED_REQUEST) {
        if (b.is_ascii_graphic() || b == b' ') && b != b'`' && b != b'\\' {
            out.push(char::from(b));
        } else {
            // Writing to a String never fails.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if request.len() > ECHOED_REQUEST {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, proptest};

    use super::*;
    use crate::props::config;

    #[test]
    fn the_status_line_is_the_status_request_with_or_without_cr() {
        assert_eq!(Request::parse(b"status"), Ok(Request::Status));
        assert_eq!(Request::parse(b"status\r"), Ok(Request::Status));
        assert!(Request::parse(b"status\r\r").is_err());
        assert!(Request::parse(b" status").is_err());
        assert!(Request::parse(b"").is_err());
    }

    #[test]
    fn an_unknown_request_says_what_was_sent_and_what_to_send() {
        let unknown = Request::parse(b"st`a\x01").expect_err("unknown");
        assert_eq!(
            unknown.to_string(),
            "unknown request `st\\x60a\\x01`; send `status`"
        );
    }

    proptest! {
        #![proptest_config(config())]

        /// Every request's line parses back to it.
        #[test]
        fn every_request_round_trips(crlf in any::<bool>()) {
            for request in Request::ALL {
                let mut line = request.line().as_bytes().to_vec();
                if crlf {
                    line.push(b'\r');
                }
                prop_assert_eq!(Request::parse(&line), Ok(request));
            }
        }

        /// Any bytes parse to a request or to an error line of printable
        /// ASCII, without a newline or backquote that would break the
        /// line.
        #[test]
        fn any_line_parses_or_is_echoed_printably(line in prop::collection::vec(any::<u8>(), 0..100)) {
            match Request::parse(&line) {
                Ok(request) => prop_assert_eq!(
                    line.strip_suffix(b"\r").unwrap_or(&line),
                    request.line().as_bytes()
                ),
                Err(unknown) => {
                    let text = unknown.to_string();
                    prop_assert!(text.bytes().all(|b| matches!(b, b' '..=b'~')), "{:?}", text);
                    prop_assert!(unknown.echoed().len() <= 4 * ECHOED_REQUEST + 3);
                }
            }
        }
    }
}
