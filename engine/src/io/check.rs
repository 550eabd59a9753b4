//! A conformance check for [`Register::register`]: what every
//! [`IoSource`] must do for mailboxes to work on an executor.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

use super::{Interest, IoSource, Register};
use supertrees_core::Spawner;

/// How long the peer makes a source wait in each check.
const DELAY: Duration = Duration::from_millis(50);

/// Checks that `spawner`'s [`register`](Register::register) waits and wakes
/// as it must, inside its own [`block_on`](Spawner::block_on): a read that
/// waits until the peer writes; a write that waits until the peer drains a
/// full socket; a reader and a writer (a task [`spawn`](Spawner::spawn)ed
/// next to it) waiting on one source at once, each woken by its own
/// readiness. Run it in a test of your own executor's `Spawner`.
///
/// # Panics
///
/// When a check fails (or a socket pair can not be made), with what went
/// wrong.
///
/// # Examples
///
/// ```
/// use supertrees_core::{BoxFuture, Spawner};
/// use supertrees_engine::{DefaultReactor, Register};
///
/// /// An executor without a reactor of its own: it gets the default one.
/// #[derive(Clone)]
/// struct Blocking;
/// impl Spawner for Blocking {
///     fn block_on(&self, fut: BoxFuture) {
///         futures::executor::block_on(fut)
///     }
///     fn spawn(&self, fut: BoxFuture) {
///         std::thread::spawn(move || futures::executor::block_on(fut));
///     }
/// }
///
/// supertrees_engine::check_register(&DefaultReactor(Blocking));
/// ```
pub fn check_register<S: Spawner + Register>(spawner: &S) {
    read_waits(spawner);
    write_waits(spawner);
    reader_and_writer_wait_at_once(spawner);
}

/// A connected pair of message sockets.
pub(crate) fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair")
}

/// Receives one message into `buf` through `source`.
pub(crate) async fn recv_from(source: &dyn IoSource, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    std::future::poll_fn(|cx| {
        source.poll_io(cx, Interest::Readable, &mut |fd| {
            len = recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT)?;
            Ok(())
        })
    })
    .await?;
    Ok(len)
}

/// Sends `msg` through `source`.
pub(crate) async fn send_to(source: &dyn IoSource, msg: &[u8]) -> io::Result<usize> {
    let mut len = 0;
    std::future::poll_fn(|cx| {
        source.poll_io(cx, Interest::Writable, &mut |fd| {
            len = send(fd.as_raw_fd(), msg, MsgFlags::MSG_DONTWAIT)?;
            Ok(())
        })
    })
    .await?;
    Ok(len)
}

/// Sends 1 KiB messages on `fd` until it would block; returns how many.
pub(crate) fn fill(fd: &OwnedFd) -> usize {
    let msg = [7; 1024];
    let mut sent = 0;
    loop {
        match send(fd.as_raw_fd(), &msg, MsgFlags::MSG_DONTWAIT) {
            Ok(_) => sent += 1,
            Err(Errno::EAGAIN) => return sent,
            Err(err) => panic!("send: {err}"),
        }
    }
}

/// Receives on `fd` until it would block (or the peer is gone); returns
/// the lengths of the messages.
pub(crate) fn drain_all(fd: &OwnedFd) -> Vec<usize> {
    let mut buf = [0; 2048];
    let mut lengths = Vec::new();
    loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) | Err(Errno::EAGAIN) => return lengths,
            Ok(len) => lengths.push(len),
            Err(err) => panic!("recv: {err}"),
        }
    }
}

fn read_waits<S: Spawner + Register>(spawner: &S) {
    let (ours, theirs) = pair();
    // Before the peer starts its delay: the wait is measured from here.
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(DELAY);
        send(theirs.as_raw_fd(), b"hello", MsgFlags::empty()).expect("send");
        theirs
    });
    let (tx, rx) = mpsc::channel();
    let registrar = spawner.clone();
    spawner.block_on(Box::pin(async move {
        let source = registrar.register(ours).expect("register");
        let mut buf = [0; 16];
        let len = recv_from(&*source, &mut buf).await.expect("recv");
        let _ = tx.send(buf[..len].to_vec());
    }));
    assert_eq!(rx.recv().as_deref(), Ok(&b"hello"[..]), "the read");
    assert!(
        start.elapsed() >= DELAY,
        "the read did not wait for the peer"
    );
    drop(writer.join());
}

fn write_waits<S: Spawner + Register>(spawner: &S) {
    let (ours, theirs) = pair();
    assert!(fill(&ours) > 0);
    // Before the peer starts its delay: the wait is measured from here.
    let start = Instant::now();
    let drainer = std::thread::spawn(move || {
        std::thread::sleep(DELAY);
        (drain_all(&theirs), theirs)
    });
    let (tx, rx) = mpsc::channel();
    let registrar = spawner.clone();
    spawner.block_on(Box::pin(async move {
        let source = registrar.register(ours).expect("register");
        let _ = tx.send(send_to(&*source, b"after").await.expect("send"));
    }));
    assert_eq!(rx.recv(), Ok(5), "the write");
    assert!(start.elapsed() >= DELAY, "the write did not wait for room");
    let (mut lengths, theirs) = drainer.join().expect("drainer");
    // The message sent once there was room comes last, whether the drain
    // above saw it or not.
    lengths.extend(drain_all(&theirs));
    assert_eq!(lengths.last(), Some(&5));
}

fn reader_and_writer_wait_at_once<S: Spawner + Register>(spawner: &S) {
    let (ours, theirs) = pair();
    fill(&ours);
    let peer = std::thread::spawn(move || {
        std::thread::sleep(DELAY);
        send(theirs.as_raw_fd(), b"to-reader", MsgFlags::empty()).expect("send");
        std::thread::sleep(DELAY);
        (drain_all(&theirs), theirs)
    });
    let (tx, rx) = mpsc::channel();
    let inner = spawner.clone();
    spawner.block_on(Box::pin(async move {
        let source: Arc<dyn IoSource> = inner.register(ours).expect("register").into();
        let (reader, writer) = (source.clone(), source);
        let (read_tx, write_tx) = (tx.clone(), tx);
        inner.spawn(Box::pin(async move {
            let mut buf = [0; 16];
            let len = recv_from(&*reader, &mut buf).await.expect("recv");
            let _ = read_tx.send(buf[..len].to_vec());
        }));
        send_to(&*writer, b"from-writer").await.expect("send");
        let _ = write_tx.send(b"written".to_vec());
    }));
    assert_eq!(rx.recv().as_deref(), Ok(&b"to-reader"[..]), "the reader");
    assert_eq!(rx.recv().as_deref(), Ok(&b"written"[..]), "the writer");
    let (mut lengths, theirs) = peer.join().expect("peer");
    lengths.extend(drain_all(&theirs));
    assert_eq!(lengths.last(), Some(&11));
}
