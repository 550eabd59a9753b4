//! `supertrees`: the operator's command for a running supervision tree,
//! through its status socket (see the `supertrees` crate's
//! `control::Client`, which it is made of).
//!
//! ```text
//! supertrees [--socket PATH] status [--json] | watch [--json] | restart PATH | stop PATH
//!            | start PATH | metrics | probe ready|live [--timeout SECS] | top
//! ```
//!
//! The socket comes from `--socket PATH` or `$SUPERTREES_SOCKET` (the flag
//! wins). Answers go to stdout, errors to stderr as `supertrees:
//! <message>`. Exit codes, as s6's tools: 0 done; 1 the tree refused or
//! the command failed (not found, already stopped or running, timed out,
//! busy; a probe: not ready or not live); 100 wrong usage, a path that is
//! no node's path included (refused before anything is sent); 111 system
//! error (no socket, nothing serving it, permission denied, I/O).
//!
//! | file | what it holds |
//! |---|---|
//! | `args.rs` | the command line (clap), help/version and usage errors |
//! | `exit.rs` | the exit codes, which error gets which, and how errors are said |
//! | `commands.rs` | each subcommand but `top` |
//! | `doc.rs` | the `status json` document as read here |
//! | `ready.rs` | what `probe ready` calls ready |
//! | `show.rs`, `when.rs` | the text of events, times, durations and sizes |
//! | `top/` | the live view |

#[cfg(target_os = "linux")]
mod args;
#[cfg(target_os = "linux")]
mod commands;
#[cfg(target_os = "linux")]
mod doc;
#[cfg(target_os = "linux")]
mod exit;
#[cfg(target_os = "linux")]
mod ready;
#[cfg(target_os = "linux")]
mod show;
#[cfg(target_os = "linux")]
mod top;
#[cfg(target_os = "linux")]
mod when;

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(run().code());
}

/// The command, on this process's arguments and streams.
#[cfg(target_os = "linux")]
fn run() -> exit::Exit {
    use std::io::Write;

    let cli = match args::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(early) => {
            let _ = if early.stdout {
                std::io::stdout().write_all(early.text.as_bytes())
            } else {
                std::io::stderr().write_all(early.text.as_bytes())
            };
            return early.exit;
        }
    };
    let socket = match args::socket(cli.socket, std::env::var_os(args::SOCKET_VAR)) {
        Ok(socket) => socket,
        Err(early) => {
            let _ = std::io::stderr().write_all(early.text.as_bytes());
            return early.exit;
        }
    };
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let mut err = stderr.lock();
    let client = match supertrees::control::Client::connect(&socket) {
        Ok(client) => client,
        Err(e) => {
            exit::say(&mut err, &e.to_string());
            return exit::Exit::of_io(&e);
        }
    };
    commands::run(&cli.command, &client, &mut stdout.lock(), &mut err)
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("supertrees: the process engine, and so this command, runs on Linux only");
    std::process::exit(111);
}
