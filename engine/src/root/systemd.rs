//! systemd's readiness and watchdog protocol (`sd_notify(3)`), spoken
//! directly over the `NOTIFY_SOCKET` datagram socket instead of through
//! libsystemd.
//!
//! Only the root supervisor talks to systemd: with `Type=notify` it sends
//! `READY=1` once the tree has started, `STOPPING=1` when it begins to shut
//! down, and, when the unit has `WatchdogSec=`, `WATCHDOG=1` every
//! [`Notifier::watchdog_interval`] (half the timeout, never more often than
//! every [`MIN_WATCHDOG_INTERVAL`]). Every send is a single non-blocking
//! datagram, so it fits in the root's poll loop; a failing send is logged
//! once until one succeeds again.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The shortest interval between two `WATCHDOG=1` pings, whatever
/// `WATCHDOG_USEC` says: a tiny value (`WATCHDOG_USEC=1`) would make the
/// root ping in a busy loop.
pub(crate) const MIN_WATCHDOG_INTERVAL: Duration = Duration::from_millis(10);

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub(crate) struct Notifier {
    /// An unbound, non-blocking datagram socket the messages are sent from.
    socket: UnixDatagram,
    /// Where the messages go: `NOTIFY_SOCKET`, a path or an abstract name.
    addr: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for log messages.
    name: String,
    /// The watchdog timeout (`WATCHDOG_USEC`) when the watchdog is enabled
    /// for this process.
    watchdog: Option<Duration>,
    /// Whether the last send failed: further failures are not logged
    /// until one succeeds.
    failing: bool,
}

impl Notifier {
    /// From the environment: `None` unless `NOTIFY_SOCKET` is set (to a
    /// filesystem path, or to an abstract name written `@name`).
    ///
    /// `WATCHDOG_USEC` enables the watchdog unless `WATCHDOG_PID` is set to
    /// another process's pid, or it is `0` or unparsable (which is logged).
    /// A `NOTIFY_SOCKET` that can't be used is logged and gives `None`.
    pub(crate) fn from_env() -> Option<Self> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// [`Notifier::from_env`] with the environment variables read by `var`.
    fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Option<Self> {
        let text = |name: &str| match var(name) {
            Some(value) => match value.into_string() {
                Ok(value) => Some(value),
                Err(value) => {
                    tracing::warn!(
                        name,
                        ?value,
                        "ignoring a systemd variable that is not UTF-8"
                    );
                    None
                }
            },
            None => None,
        };
        let socket = text("NOTIFY_SOCKET").filter(|socket| !socket.is_empty())?;
        let watchdog_usec = text("WATCHDOG_USEC");
        let watchdog_pid = text("WATCHDOG_PID");
        match Self::new(&socket, watchdog_usec.as_deref(), watchdog_pid.as_deref()) {
            Ok(notifier) => Some(notifier),
            Err(err) => {
                tracing::warn!(%socket, %err, "can't use NOTIFY_SOCKET; not notifying systemd");
                None
            }
        }
    }

    /// A notifier sending to `socket` (`/path` or `@abstract-name`), with the
    /// watchdog settings given as the values of `WATCHDOG_USEC` and
    /// `WATCHDOG_PID`; see [`Notifier::from_env`].
    ///
    /// Fails when `socket` is neither an absolute path nor `@name`, when it is
    /// too long for a Unix socket address, or when no socket can be created.
    pub(crate) fn new(
        socket: &str,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
    ) -> Result<Self, io::Error> {
        let addr = if let Some(name) = socket.strip_prefix('@') {
            if name.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "NOTIFY_SOCKET `@` names no abstract socket",
                ));
            }
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if socket.starts_with('/') {
            SocketAddr::from_pathname(socket)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "NOTIFY_SOCKET `{socket}` is neither an absolute path nor an abstract \
                     name (`@name`)"
                ),
            ));
        };
        let sender = UnixDatagram::unbound()?;
        sender.set_nonblocking(true)?;
        Ok(Self {
            socket: sender,
            addr,
            name: socket.to_owned(),
            watchdog: watchdog_timeout(watchdog_usec, watchdog_pid),
            failing: false,
        })
    }

    /// Sends `state` (e.g. `READY=1`, `STOPPING=1`, `WATCHDOG=1`,
    /// `STATUS=...`; several may be joined with newlines) as one datagram,
    /// without blocking. Failures are logged, never returned: the first of
    /// a run of them as a warning, the rest at debug level until a send
    /// succeeds again (a full or missing socket would otherwise log at the
    /// rate of the watchdog pings).
    pub(crate) fn notify(&mut self, state: &str) {
        let failure = match self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            Ok(sent) if sent == state.len() => None,
            Ok(sent) => Some(format!("truncated to {sent} bytes")),
            Err(err) => Some(err.to_string()),
        };
        match failure {
            None => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!(socket = %self.name, state, "notifying systemd works again");
                }
                tracing::trace!(socket = %self.name, state, "notified systemd");
            }
            Some(err) if !self.failing => {
                self.failing = true;
                tracing::warn!(
                    socket = %self.name,
                    state,
                    %err,
                    "notifying systemd failed (further failures are logged at debug level until \
                     a notification gets through)"
                );
            }
            Some(err) => {
                tracing::debug!(socket = %self.name, state, %err, "notifying systemd failed")
            }
        }
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, as systemd
    /// recommends, but never more often than [`MIN_WATCHDOG_INTERVAL`];
    /// `None` without a watchdog.
    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
            .map(|timeout| (timeout / 2).max(MIN_WATCHDOG_INTERVAL))
    }
}

/// The watchdog timeout from the values of `WATCHDOG_USEC` and
/// `WATCHDOG_PID`, when the watchdog is enabled for this process.
fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    let usec = usec?.trim();
    if let Some(pid) = pid {
        match pid.trim().parse::<u32>() {
            Ok(pid) if pid == std::process::id() => {}
            Ok(pid) => {
                tracing::debug!(
                    watchdog_pid = pid,
                    "the systemd watchdog is for another process"
                );
                return None;
            }
            Err(err) => {
                tracing::warn!(watchdog_pid = pid, %err, "unparsable WATCHDOG_PID; no watchdog");
                return None;
            }
        }
    }
    match usec.parse::<u64>() {
        Ok(0) => None,
        Ok(usec) => {
            let timeout = Duration::from_micros(usec);
            if timeout / 2 < MIN_WATCHDOG_INTERVAL {
                tracing::warn!(
                    watchdog_usec = usec,
                    "WATCHDOG_USEC asks for a ping every {:?}; pinging every {MIN_WATCHDOG_INTERVAL:?} \
                     instead (systemd will likely kill this service: raise WatchdogSec=)",
                    timeout / 2
                );
            }
            Some(timeout)
        }
        Err(err) => {
            tracing::warn!(watchdog_usec = usec, %err, "unparsable WATCHDOG_USEC; no watchdog");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A unique name for this test process and call.
    fn unique(tag: &str) -> String {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        format!(
            "supertrees-notify-{}-{tag}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A datagram socket bound at a fresh temporary path, removed on drop.
    struct Listening {
        socket: UnixDatagram,
        path: PathBuf,
    }

    impl Listening {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(unique(tag));
            let socket = UnixDatagram::bind(&path).expect("bind the test socket");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("set a read timeout");
            Self { socket, path }
        }

        fn path(&self) -> &str {
            self.path.to_str().expect("a UTF-8 temp dir")
        }
    }

    impl Drop for Listening {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
    }

    #[test]
    fn sends_datagrams_to_a_path() {
        let listening = Listening::new("path");
        let mut notifier = Notifier::new(listening.path(), None, None).expect("a notifier");
        for state in ["READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=all good"] {
            notifier.notify(state);
            assert_eq!(receive(&listening.socket), state);
        }
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn sends_datagrams_to_an_abstract_name() {
        let name = unique("abstract");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        let mut notifier = Notifier::new(&format!("@{name}"), None, None).expect("a notifier");
        notifier.notify("READY=1");
        assert_eq!(receive(&socket), "READY=1");
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout() {
        let listening = Listening::new("watchdog");
        let notifier = Notifier::new(listening.path(), Some("2000000"), None).expect("a notifier");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(1)));
        let own_pid = std::process::id().to_string();
        let notifier =
            Notifier::new(listening.path(), Some("2000000"), Some(&own_pid)).expect("a notifier");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn watchdog_interval_has_a_floor() {
        let listening = Listening::new("floor");
        for (usec, interval) in [
            ("1", MIN_WATCHDOG_INTERVAL),
            ("19999", MIN_WATCHDOG_INTERVAL),
            ("20000", MIN_WATCHDOG_INTERVAL),
            ("30000", Duration::from_millis(15)),
        ] {
            let notifier = Notifier::new(listening.path(), Some(usec), None).expect("a notifier");
            assert_eq!(notifier.watchdog_interval(), Some(interval), "{usec}");
        }
    }

    #[test]
    fn a_failing_socket_is_logged_once_until_it_works() {
        let path = std::env::temp_dir().join(unique("late"));
        let mut notifier =
            Notifier::new(path.to_str().expect("UTF-8"), None, None).expect("a notifier");
        notifier.notify("WATCHDOG=1");
        assert!(notifier.failing);
        let socket = UnixDatagram::bind(&path).expect("bind the test socket");
        notifier.notify("WATCHDOG=1");
        assert!(!notifier.failing);
        let mut buf = [0u8; 32];
        let n = socket.recv(&mut buf).expect("the ping");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn watchdog_for_another_pid_is_ignored() {
        let listening = Listening::new("other-pid");
        let other_pid = (std::process::id() + 1).to_string();
        let notifier =
            Notifier::new(listening.path(), Some("2000000"), Some(&other_pid)).expect("a notifier");
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn unusable_watchdog_settings_are_ignored() {
        let listening = Listening::new("garbage");
        for (usec, pid) in [
            (Some("two seconds"), None),
            (Some("0"), None),
            (Some(""), None),
            (None, None),
            (Some("2000000"), Some("me")),
        ] {
            let notifier = Notifier::new(listening.path(), usec, pid).expect("a notifier");
            assert_eq!(notifier.watchdog_interval(), None, "{usec:?} {pid:?}");
        }
    }

    #[test]
    fn nobody_listening_is_logged_not_fatal() {
        // Never bound.
        let missing = std::env::temp_dir().join(unique("missing"));
        let mut notifier =
            Notifier::new(missing.to_str().expect("UTF-8"), None, None).expect("a notifier");
        notifier.notify("READY=1");
        assert!(notifier.failing);
        notifier.notify("WATCHDOG=1");
        assert!(notifier.failing);
        // Bound once, then closed: the file stays but nobody receives.
        let path = std::env::temp_dir().join(unique("closed"));
        drop(UnixDatagram::bind(&path).expect("bind the test socket"));
        let mut notifier =
            Notifier::new(path.to_str().expect("UTF-8"), None, None).expect("a notifier");
        notifier.notify("STOPPING=1");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn reads_the_environment() {
        use std::os::unix::ffi::OsStringExt;
        let listening = Listening::new("env");
        let own_pid = std::process::id().to_string();
        let env = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, OsString)> = vars
                .iter()
                .map(|(name, value)| ((*name).to_owned(), OsString::from(*value)))
                .collect();
            move |name: &str| {
                vars.iter()
                    .find(|(var, _)| var == name)
                    .map(|(_, value)| value.clone())
            }
        };
        assert!(Notifier::from_vars(env(&[])).is_none());
        assert!(Notifier::from_vars(env(&[("NOTIFY_SOCKET", "")])).is_none());
        assert!(Notifier::from_vars(env(&[("NOTIFY_SOCKET", "nowhere")])).is_none());
        assert!(Notifier::from_vars(|_| Some(OsString::from_vec(vec![b'/', 0xff]))).is_none());

        let mut notifier = Notifier::from_vars(env(&[
            ("NOTIFY_SOCKET", listening.path()),
            ("WATCHDOG_USEC", "3000000"),
            ("WATCHDOG_PID", &own_pid),
        ]))
        .expect("a notifier");
        assert_eq!(
            notifier.watchdog_interval(),
            Some(Duration::from_millis(1500))
        );
        notifier.notify("READY=1");
        assert_eq!(receive(&listening.socket), "READY=1");

        let notifier =
            Notifier::from_vars(env(&[("NOTIFY_SOCKET", listening.path())])).expect("a notifier");
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn from_env_reads_the_process_environment() {
        // Whatever the test runner's environment holds (systemd may have set
        // NOTIFY_SOCKET), both readings agree; nothing is sent.
        assert_eq!(
            Notifier::from_env().is_some(),
            Notifier::from_vars(|name| std::env::var_os(name)).is_some()
        );
    }

    #[test]
    fn invalid_socket_addresses_are_errors() {
        for socket in ["relative/path", "@", "vsock:2:1234"] {
            let err = Notifier::new(socket, None, None).expect_err(socket);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{socket}: {err}");
        }
        let long = format!("/{}", "x".repeat(200));
        assert!(Notifier::new(&long, None, None).is_err());
    }
}
