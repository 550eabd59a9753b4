//! The command line: what `supertrees` accepts ([`Cli`], parsed by clap),
//! and what becomes of a command line that is no request ([`Early`]: help
//! and version exit 0, anything wrong exits 100, never clap's 2).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::Exit;

/// The environment variable that names the status socket when
/// `--socket` does not.
pub const SOCKET_VAR: &str = "SUPERTREES_SOCKET";

/// The `supertrees` command line.
#[derive(Debug, Parser)]
#[command(
    name = "supertrees",
    version,
    about = "Status, events, commands and a live view of a running supervision tree, through its status socket",
    after_help = "The socket comes from --socket PATH or $SUPERTREES_SOCKET (the flag wins).\n\
                  Exit codes: 0 done; 1 the tree refused or the command failed (not found, already \
                  stopped or running, timed out, busy; not ready/live for probes); 100 wrong usage \
                  (a path that is no node's path included); 111 system error (no socket, nothing \
                  serving it, permission denied, I/O).",
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    /// The tree's status socket [default: $SUPERTREES_SOCKET]
    #[arg(long, short = 's', global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What `supertrees` does.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print the tree's status: one line per node, as text or as the JSON document
    Status {
        /// Print the JSON document (`status json`) as the tree sent it
        #[arg(long)]
        json: bool,
    },
    /// Print the tree's events as they happen, one per line, until it stops (or Ctrl-C)
    Watch {
        /// Print the JSON lines as the tree sends them
        #[arg(long)]
        json: bool,
    },
    /// Restart the node at PATH (a supervisor: its subtree), in order
    Restart {
        /// The node, e.g. root/1/0
        #[arg(value_name = "PATH", value_parser = node_path)]
        path: String,
    },
    /// Stop the node at PATH in order; it stays down until `start PATH`
    Stop {
        /// The node, e.g. root/1/0
        #[arg(value_name = "PATH", value_parser = node_path)]
        path: String,
    },
    /// Start the node at PATH, which an operator stopped
    Start {
        /// The node, e.g. root/1/0
        #[arg(value_name = "PATH", value_parser = node_path)]
        path: String,
    },
    /// Print the tree's metrics in the Prometheus text format
    Metrics,
    /// Exit 0 when the tree is ready (every node up) or live (the root answers), else 1
    Probe {
        /// What to check
        #[arg(value_enum)]
        what: Probe,
        /// How long to wait for the tree's answer, in seconds
        #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds)]
        timeout: Duration,
    },
    /// A live view of the tree: its nodes, their state, and its latest events (q to quit)
    Top,
}

/// What `probe` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Probe {
    /// Every node is up (workers and supervisors ready, hosts running) or done (ended by design, or stopped by an operator)
    Ready,
    /// The root answers `status`
    Live,
}

/// A node's path, checked as the tree would (`root/1/0`): a path that is
/// none is wrong usage, refused before anything is sent.
fn node_path(text: &str) -> Result<String, String> {
    supertrees::control::NodePath::parse(text)
        .map(String::from)
        .map_err(|why| why.to_string())
}

/// A number of seconds (`2`, `0.5`) as a duration.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is no number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}`: give a number of seconds above 0"))
}

/// A command line that ends before any request: what to print, where, and
/// the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Early {
    /// The exit code: 0 for help and version, 100 for wrong usage.
    pub exit: Exit,
    /// What to print, with its newline.
    pub text: String,
    /// On stdout (help, version), else on stderr.
    pub stdout: bool,
}

/// Parses the command line `args` (the program's name first).
pub fn parse<I, T>(args: I) -> Result<Cli, Early>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|err| {
        use clap::error::ErrorKind;
        let text = err.render().to_string();
        match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Early {
                exit: Exit::Done,
                text,
                stdout: true,
            },
            // No subcommand: the help, as wrong usage.
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Early {
                exit: Exit::Usage,
                text,
                stdout: false,
            },
            _ => Early {
                exit: Exit::Usage,
                text: match text.strip_prefix("error: ") {
                    Some(rest) => format!("supertrees: {rest}"),
                    None => text,
                },
                stdout: false,
            },
        }
    })
}

/// The status socket: `--socket` if given, else `$SUPERTREES_SOCKET`
/// (`env`, its value); an empty one counts as none.
pub fn socket(flag: Option<PathBuf>, env: Option<OsString>) -> Result<PathBuf, Early> {
    flag.filter(|p| !p.as_os_str().is_empty())
        .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .ok_or_else(|| Early {
            exit: Exit::Usage,
            text: format!("supertrees: no status socket: give --socket PATH or set {SOCKET_VAR}\n"),
            stdout: false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> Cli {
        parse(std::iter::once("supertrees").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {}", e.text))
    }

    fn early(args: &[&str]) -> Early {
        match parse(std::iter::once("supertrees").chain(args.iter().copied())) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(early) => early,
        }
    }

    #[test]
    fn every_subcommand_parses() {
        assert_eq!(ok(&["status"]).command, Command::Status { json: false });
        assert_eq!(
            ok(&["status", "--json"]).command,
            Command::Status { json: true }
        );
        assert_eq!(ok(&["watch"]).command, Command::Watch { json: false });
        assert_eq!(
            ok(&["watch", "--json"]).command,
            Command::Watch { json: true }
        );
        assert_eq!(
            ok(&["restart", "root/1/0"]).command,
            Command::Restart {
                path: "root/1/0".into()
            }
        );
        assert_eq!(
            ok(&["stop", "root/1"]).command,
            Command::Stop {
                path: "root/1".into()
            }
        );
        assert_eq!(
            ok(&["start", "root/1"]).command,
            Command::Start {
                path: "root/1".into()
            }
        );
        assert_eq!(ok(&["metrics"]).command, Command::Metrics);
        assert_eq!(ok(&["top"]).command, Command::Top);
        assert_eq!(
            ok(&["probe", "ready"]).command,
            Command::Probe {
                what: Probe::Ready,
                timeout: Duration::from_secs(2)
            }
        );
        assert_eq!(
            ok(&["probe", "live", "--timeout", "0.5"]).command,
            Command::Probe {
                what: Probe::Live,
                timeout: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn the_socket_flag_goes_anywhere_and_wins_over_the_environment() {
        let before = ok(&["--socket", "/a.sock", "status"]);
        let after = ok(&["status", "-s", "/a.sock"]);
        assert_eq!(before.socket, Some(PathBuf::from("/a.sock")));
        assert_eq!(after.socket, before.socket);
        assert_eq!(
            socket(before.socket, Some("/b.sock".into())),
            Ok(PathBuf::from("/a.sock"))
        );
        assert_eq!(
            socket(None, Some("/b.sock".into())),
            Ok(PathBuf::from("/b.sock"))
        );
        let none = socket(None, Some("".into())).expect_err("an empty variable is none");
        assert_eq!(none.exit, Exit::Usage);
        assert_eq!(
            none.text,
            "supertrees: no status socket: give --socket PATH or set SUPERTREES_SOCKET\n"
        );
        assert!(socket(Some(PathBuf::new()), None).is_err());
    }

    #[test]
    fn wrong_usage_exits_100_and_help_exits_0() {
        for args in [
            &[][..],
            &["frobnicate"],
            &["restart"],
            &["restart", "root/1", "root/2"],
            &["status", "--yaml"],
            &["probe"],
            &["probe", "dead"],
            &["probe", "live", "--timeout", "soon"],
            &["probe", "live", "--timeout", "0"],
            &["probe", "live", "--timeout", "-1"],
            &["--socket"],
            &["restart", "root"],
            &["stop", "1/0"],
            &["start", "root//1"],
            &["restart", "root/a b"],
        ] {
            let e = early(args);
            assert_eq!(e.exit, Exit::Usage, "{args:?}");
            assert!(!e.stdout, "{args:?}");
        }
        let bad = early(&["restart", "1/0"]);
        assert!(
            bad.text.starts_with(
                "supertrees: invalid value '1/0' for '<PATH>': a path starts with `root/`"
            ),
            "{}",
            bad.text
        );
        let unknown = early(&["frobnicate"]);
        assert!(
            unknown
                .text
                .starts_with("supertrees: unrecognized subcommand 'frobnicate'"),
            "{}",
            unknown.text
        );
        for args in [
            &["--help"][..],
            &["-h"],
            &["help"],
            &["status", "--help"],
            &["--version"],
        ] {
            let e = early(args);
            assert_eq!((e.exit, e.stdout), (Exit::Done, true), "{args:?}");
        }
        assert!(early(&["--version"]).text.starts_with("supertrees 0."));
        let help = early(&["--help"]).text;
        for word in [
            "status",
            "watch",
            "restart",
            "stop",
            "start",
            "metrics",
            "probe",
            "top",
            "SUPERTREES_SOCKET",
            "111",
        ] {
            assert!(help.contains(word), "{word} not in the help:\n{help}");
        }
    }
}
