//! Helpers shared by the status socket's unit tests.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::poll::PollTimeout;

use super::{StatusServer, View};

/// A fresh mode-0700 directory under the temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "supertrees-status-{}-{tag}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .expect("create the test dir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .expect("chmod the test dir");
        Self(path)
    }

    pub(super) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One round of the poll loop: waits up to 5 ms for the server's fds,
/// then lets it work.
pub(super) fn turn(server: &mut StatusServer, render: &mut dyn FnMut(View) -> String) {
    {
        let mut fds = server.poll_fds();
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(5u8));
    }
    server.handle(Instant::now(), render);
}

/// Connects, sends `request`, and drives the server on this thread until
/// the server closes the connection; returns what the client received.
pub(super) fn exchange(
    server: &mut StatusServer,
    request: &[u8],
    render: &mut dyn FnMut(View) -> String,
) -> String {
    let mut client = UnixStream::connect(server.path()).expect("connect");
    client.write_all(request).expect("send the request");
    client.set_nonblocking(true).expect("non-blocking client");
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < give_up, "no answer; got {received:?}");
        turn(server, render);
        loop {
            match client.read(&mut buf) {
                Ok(0) => return String::from_utf8(received).expect("UTF-8"),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => panic!("client read failed: {err}"),
            }
        }
    }
}
