//! Prints the live status of a running tree, from another terminal, like
//! `systemctl status`: start `cargo run --example observe`, then run
//! `cargo run --example status` (or `cargo run --example status -- PATH` for
//! a tree that serves its status elsewhere).

#[path = "observe.rs"]
#[allow(dead_code)]
mod observe;

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(observe::socket_path);
    match supertrees::query_status(&path) {
        Ok(text) => print!("{text}"),
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    }
}
