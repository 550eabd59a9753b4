//! A tree of the bench binary run as a subprocess with a status socket,
//! measured from outside as an operator's tool or a Prometheus server
//! would: started in a process group of its own, asked over its socket,
//! ended (its group killed) when dropped. Shared by the `operator` and
//! `metrics` benches.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A running tree, ended when dropped.
pub struct SocketTree {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl SocketTree {
    /// Runs this binary again with `tree_var` set to `figure` (its `main`
    /// builds that tree and calls `start()`) and `socket_var` to the path
    /// of its status socket in `dir` (which the tree makes); waits until
    /// every node is up, at most `timeout`.
    pub fn start(
        (tree_var, figure): (&str, &str),
        socket_var: &str,
        dir: PathBuf,
        timeout: Duration,
    ) -> Result<Self, String> {
        let socket = dir.join("status.sock");
        let child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .env(tree_var, figure)
            .env(socket_var, &socket)
            .env("RUST_LOG", "error")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let tree = SocketTree { child, socket, dir };
        let began = Instant::now();
        loop {
            if let Ok(status) = tree.ask("status json") {
                if status.contains("\"path\":\"root\"") && !status.contains("\"starting\"") {
                    return Ok(tree);
                }
            }
            if began.elapsed() > timeout {
                return Err(format!("the {figure} tree was not up in {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `request` and reads the answer to its end.
    pub fn ask(&self, request: &str) -> Result<String, String> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| format!("read: {e}"))?;
        Ok(answer)
    }
}

impl Drop for SocketTree {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
