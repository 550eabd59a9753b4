//! Checks of the request parser on any bytes a client may send, shared by
//! its property tests (`props`) and the fuzz target `status_request`
//! (through `crate::fuzzing`): the server's reading and answering is played
//! against a fake connection, and its answer compared with what the
//! protocol (the `status_socket` module docs) says it is. They panic on a
//! defect.

use std::io::{self, Read};

use super::{read_request, reply, Reply, View, MAX_REQUEST};
use supertrees_core::control::NodePath;

/// How a client's side of the connection ends once it sent its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// It shuts down its writing side (or exits): reads find the end.
    Hangup,
    /// It sends nothing more, until the server's deadline.
    Silence,
    /// The connection fails (`ECONNRESET`).
    Reset,
}

/// A client's side of a connection, as the server's non-blocking reads
/// find it: `data` arriving in chunks of the sizes `chunks` gives in turn
/// (each at least 1; all at once if it is empty), each preceded by a read
/// that finds nothing yet, and, with `interrupt`, by one interrupted by a
/// signal; then `end`.
pub(crate) struct Peer<'a> {
    data: &'a [u8],
    chunks: &'a [usize],
    next_chunk: usize,
    interrupt: bool,
    end: End,
    /// How much of `data` the server has read.
    at: usize,
    /// How much of `data` has arrived.
    arrived: usize,
    /// Whether the read before the next chunk found nothing yet, and was
    /// interrupted.
    waited: bool,
    interrupted: bool,
}

impl<'a> Peer<'a> {
    /// See [`Peer`].
    pub(crate) fn new(data: &'a [u8], chunks: &'a [usize], interrupt: bool, end: End) -> Self {
        Self {
            data,
            chunks,
            next_chunk: 0,
            interrupt,
            end,
            at: 0,
            arrived: 0,
            waited: false,
            interrupted: false,
        }
    }
}

impl Read for Peer<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.at == self.arrived {
            let left = self.data.len() - self.at;
            if left == 0 {
                return match self.end {
                    End::Hangup => Ok(0),
                    End::Silence => Err(io::ErrorKind::WouldBlock.into()),
                    End::Reset => Err(io::ErrorKind::ConnectionReset.into()),
                };
            }
            if !self.waited {
                self.waited = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.interrupt && !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.waited = false;
            self.interrupted = false;
            let chunk = self.chunks.get(self.next_chunk % self.chunks.len().max(1));
            self.next_chunk += 1;
            self.arrived += chunk.map_or(left, |&n| n.clamp(1, left));
        }
        let n = out.len().min(self.arrived - self.at);
        out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What a status request's rendering is, in these checks.
pub(crate) const STATUS: &str = "root: running\n";
/// What a `status json` request's rendering is, in these checks.
pub(crate) const STATUS_JSON: &str = "{\"schema\": 1}\n";
/// What a `metrics` request's rendering is, in these checks.
pub(crate) const METRICS: &str = "supertrees_generation 1\n";
/// What [`serve`] shows of a client that becomes a watcher.
pub(crate) const WATCHING: &str = "watching\n";

/// Serves `peer` as the server does a client, from accept to its answer
/// (`None`: closed without one): reads what has arrived each time the
/// client is readable, and sees the deadline pass once everything it sent
/// has arrived. Checks that the server never holds more than
/// [`MAX_REQUEST`] bytes of a request, nor reads more than that, that it
/// renders the status at most once, and that it is done within one turn
/// per byte.
pub(crate) fn serve(mut peer: Peer<'_>) -> Option<String> {
    let mut buf = Vec::new();
    let mut renders = 0;
    let mut render = |view| {
        renders += 1;
        match view {
            View::Text => STATUS.to_owned(),
            View::Json => STATUS_JSON.to_owned(),
            View::Metrics => METRICS.to_owned(),
        }
    };
    for _ in 0..peer.data.len() + 2 {
        let request = read_request(&mut peer, &mut buf);
        assert!(buf.len() <= MAX_REQUEST, "{} bytes held", buf.len());
        assert!(peer.at <= MAX_REQUEST, "{} bytes read", peer.at);
        let timed_out = peer.arrived == peer.data.len();
        match reply(request, timed_out, &mut render) {
            Reply::Wait => {}
            Reply::Answer(answer) => {
                assert!(
                    renders
                        == usize::from(
                            answer == STATUS || answer == STATUS_JSON || answer == METRICS
                        ),
                    "{renders} renders"
                );
                return Some(answer);
            }
            Reply::Watch => {
                assert_eq!(renders, 0);
                return Some(WATCHING.to_owned());
            }
            Reply::Order(op, path) => {
                assert_eq!(renders, 0);
                return Some(format!("order {} {path}\n", op.verb()));
            }
            Reply::Drop => {
                assert_eq!(renders, 0);
                return None;
            }
        }
    }
    panic!("no answer after {} turns", peer.data.len() + 2);
}

/// How the protocol echoes a request in an error line: its first 32
/// bytes, printable ASCII as it is but for `` ` `` and `\`, every other
/// byte as `\xNN`; `...` after them if there are more.
pub(crate) fn echoed(request: &[u8]) -> String {
    let mut out: String = request
        .iter()
        .take(32)
        .map(|&b| match b {
            b' '..=b'~' if b != b'`' && b != b'\\' => char::from(b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect();
    if request.len() > 32 {
        out.push_str("...");
    }
    out
}

/// The answer the protocol gives a client that sends `data`, then `end`
/// (`None`: no answer). Only the first line counts, if it ends, newline
/// included, within [`MAX_REQUEST`] bytes; a `'\r'` before its newline is
/// ignored.
pub(crate) fn expected(data: &[u8], end: End) -> Option<String> {
    let head = &data[..data.len().min(MAX_REQUEST)];
    if let Some(newline) = head.iter().position(|&b| b == b'\n') {
        let line = &head[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return Some(match line {
            b"status" => STATUS.to_owned(),
            b"status json" => STATUS_JSON.to_owned(),
            b"watch" => WATCHING.to_owned(),
            b"metrics" => METRICS.to_owned(),
            _ => order(line),
        });
    }
    if head.len() == MAX_REQUEST {
        return Some("error: request too long\n".to_owned());
    }
    match end {
        End::Hangup if data.is_empty() => None,
        End::Hangup => Some(format!(
            "error: incomplete request `{}`: the connection ended before its newline; \
             send `status` and a newline\n",
            echoed(data)
        )),
        End::Silence => Some("error: timed out waiting for a request\n".to_owned()),
        End::Reset => None,
    }
}

/// What the protocol makes of any other line: `restart PATH`, `stop PATH`
/// or `start PATH` (see [`path_order`]), one of those words alone (an
/// error line asking for the path), or an unknown request.
fn order(line: &[u8]) -> String {
    for verb in ["restart", "stop", "start"] {
        if line == verb.as_bytes() {
            return format!("error: `{verb}` needs the path of a node: `{verb} root/1/0`\n");
        }
        let mut prefix = verb.as_bytes().to_vec();
        prefix.push(b' ');
        if let Some(path) = line.strip_prefix(&prefix[..]) {
            return path_order(verb, path);
        }
    }
    format!(
        "error: unknown request `{}`; send `status`, `status json`, `watch`, `restart PATH`, \
         `stop PATH`, `start PATH` or `metrics`\n",
        echoed(line)
    )
}

/// What the protocol makes of `VERB PATH`: an order (shown as `order VERB
/// PATH` by [`serve`]) when PATH is `root/` and segments of 1 to 128 ASCII
/// letters, digits, `_`, `-` and `#`, at most 900 bytes in all; else an
/// error line naming it (why in the parser's words, which must agree that
/// it is bad).
fn path_order(verb: &str, path: &[u8]) -> String {
    let segment_ok = |segment: &[u8]| {
        (1..=128).contains(&segment.len())
            && segment
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"_-#".contains(&b))
    };
    let good = path.len() <= 900
        && path
            .strip_prefix(b"root/")
            .is_some_and(|rest| rest.split(|&b| b == b'/').all(segment_ok));
    let parsed = std::str::from_utf8(path).map(NodePath::parse);
    match parsed {
        Ok(Ok(node)) => {
            assert!(good, "the parser took {path:?}");
            format!("order {verb} {node}\n")
        }
        Ok(Err(why)) => {
            assert!(!good, "the parser refused {path:?}: {why}");
            format!("error: bad path `{}`: {why}\n", echoed(path))
        }
        Err(_) => {
            assert!(!good, "{path:?} is not text");
            format!(
                "error: bad path `{}`: a segment holds ASCII letters, digits, `_`, `-` and `#` only\n",
                echoed(path)
            )
        }
    }
}

/// Checks the server's answer to a client that sends `data` in `chunks`
/// (interrupted reads with `interrupt`), then `end`: it is the protocol's,
/// and, unless the status, one line of printable ASCII starting with
/// `error: `.
pub(crate) fn check(data: &[u8], chunks: &[usize], interrupt: bool, end: End) {
    let got = serve(Peer::new(data, chunks, interrupt, end));
    let ordered = |a: &str| a.starts_with("order ") && a.contains(" root/");
    let given = |a: &str| [STATUS, STATUS_JSON, METRICS, WATCHING].contains(&a);
    if let Some(answer) = got.as_deref().filter(|&a| !given(a) && !ordered(a)) {
        assert!(answer.starts_with("error: "), "{answer:?}");
        assert!(answer.ends_with('\n'), "{answer:?}");
        assert!(
            answer[..answer.len() - 1]
                .bytes()
                .all(|b| matches!(b, b' '..=b'~')),
            "{answer:?}"
        );
    }
    assert_eq!(
        got,
        expected(data, end),
        "{data:?} in chunks {chunks:?}, then {end:?}"
    );
}

/// The fuzz target: the first byte of `data` (if any) sets how the client
/// ends, whether reads are interrupted and a chunk size; the rest is what
/// it sends, checked by [`check`].
pub(crate) fn fuzz(data: &[u8]) {
    let Some((&how, sent)) = data.split_first() else {
        return;
    };
    let end = [End::Hangup, End::Silence, End::Reset][usize::from(how % 3)];
    let interrupt = how & 4 != 0;
    let chunks = [usize::from(how >> 3) + 1, 1];
    check(sent, &chunks, interrupt, end);
    check(sent, &[], interrupt, end);
}
