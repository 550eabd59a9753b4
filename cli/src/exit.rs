//! Exit codes, as s6's tools have them, which error gets which, and how
//! an error is said (`supertrees: <message>` on stderr).

use std::io::{self, Write};

use supertrees::control::ClientError;

/// How `supertrees` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (a probe: ready, live).
    Done,
    /// 1: the tree refused, or the command failed (not found, already
    /// stopped or running, timed out, busy); a probe: not ready, not live.
    Failed,
    /// 100: wrong usage (a path that is no node's path included).
    Usage,
    /// 111: a system error: no socket, nothing serving it, permission
    /// denied, I/O, an answer that is none.
    System,
}

impl Exit {
    /// The process's exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Done => 0,
            Exit::Failed => 1,
            Exit::Usage => 100,
            Exit::System => 111,
        }
    }

    /// What `err`, from a request of the client, ends with.
    pub fn of(err: &ClientError) -> Exit {
        match err {
            ClientError::Refused { .. } => Exit::Failed,
            ClientError::BadPath { .. } => Exit::Usage,
            _ => Exit::System,
        }
    }

    /// What `err`, from the system, ends with.
    pub fn of_io(err: &io::Error) -> Exit {
        let _ = err;
        Exit::System
    }
}

/// Says what went wrong on `err`, and the exit it ends with.
pub fn fail(failure: &ClientError, err: &mut dyn Write) -> Exit {
    say(err, &failure.to_string());
    Exit::of(failure)
}

/// Writes `supertrees: <message>` on `err` (which may be gone).
pub fn say(err: &mut dyn Write, message: &str) {
    let _ = writeln!(err, "supertrees: {}", crate::show::printable(message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use supertrees::control::BadPath;

    #[test]
    fn each_kind_of_error_has_its_code() {
        let refused = ClientError::Refused {
            request: "restart root/9".into(),
            answer: "not found: root/9".into(),
        };
        let bad = ClientError::BadPath {
            path: "1/0".into(),
            why: BadPath::NotInTree,
        };
        let io = ClientError::Io(io::Error::new(io::ErrorKind::NotFound, "no socket"));
        assert_eq!(Exit::of(&refused).code(), 1);
        assert_eq!(Exit::of(&bad).code(), 100);
        assert_eq!(Exit::of(&io).code(), 111);
        assert_eq!(Exit::of_io(&io::Error::other("x")).code(), 111);
        assert_eq!(Exit::Done.code(), 0);
    }
}
