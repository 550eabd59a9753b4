//! The socket engine's mailboxes without forking: one tree's directory, the
//! default reactor, a sleeping thread as timer.

use std::io::IoSlice;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use futures::executor::block_on;
use nix::sys::socket::{sendmsg, ControlMessage};

use super::*;
use crate::message::{Declared, Envelope, Inbox, Mailbox, MAX_MESSAGE};

/// The services of a tree with one mailbox "m" owned by `root`, on the
/// default reactor and a sleeping thread as timer.
fn services() -> SocketServices {
    let declared = vec![Declared {
        name: "m".into(),
        owner: "root".into(),
        kind: Kind::Mailbox,
        argument: "",
    }];
    SocketServices {
        directory: Arc::new(Directory::open(declared).expect("sockets")),
        owner: "root".into(),
        register: Arc::new(crate::reactor::register),
        sleep: Arc::new(|d| {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            std::thread::spawn(move || {
                std::thread::sleep(d);
                let _ = tx.send(());
            });
            Box::pin(async move {
                let _ = rx.await;
            })
        }),
    }
}

fn ends(services: &SocketServices) -> (Mailbox<u32>, Inbox<u32>) {
    let outbox = services.outbox("m", Kind::Mailbox).expect("declared");
    let port = services.inbox("m").expect("ours");
    (
        Mailbox {
            name: "m".into(),
            outbox,
            message: std::marker::PhantomData,
        },
        Inbox {
            name: "m".into(),
            port,
            message: std::marker::PhantomData,
        },
    )
}

fn recv(inbox: &mut Inbox<u32>) -> Envelope<u32> {
    block_on(inbox.recv()).expect("open")
}

fn tx(services: &SocketServices) -> BorrowedFd<'_> {
    services
        .directory
        .find("m", Kind::Mailbox)
        .expect("declared")
        .tx()
}

fn rx(services: &SocketServices) -> BorrowedFd<'_> {
    services
        .directory
        .find("m", Kind::Mailbox)
        .expect("declared")
        .rx()
}

/// The open file descriptors of this process.
fn open_fds() -> Vec<PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .collect()
}

/// How many open descriptors of this process are `fd`'s file.
fn copies_of(fd: BorrowedFd<'_>) -> usize {
    let file = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("open");
    open_fds().iter().filter(|link| **link == file).count()
}

#[test]
fn oversized_and_malformed_messages_are_dropped_and_the_next_one_delivered() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    let tx = services
        .directory
        .find("m", Kind::Mailbox)
        .expect("declared")
        .tx();
    // Over the limit: dropped by the reader, whatever it holds.
    send_datagram(tx, &vec![7; MAX_MESSAGE + 100], None).expect("sent");
    // Not a u32 in postcard (a varint that never ends).
    send_datagram(tx, &[0xff; 12], None).expect("sent");
    block_on(mailbox.send(42)).expect("queued");
    assert_eq!(*recv(&mut inbox).message(), 42);
    // A message the sender would make too large is refused there.
    let big: Mailbox<Vec<u8>> = Mailbox {
        name: "m".into(),
        outbox: mailbox.outbox.clone(),
        message: std::marker::PhantomData,
    };
    let err = block_on(big.send(vec![0; MAX_MESSAGE])).unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { .. }), "{err}");
}

#[test]
fn a_call_is_answered_fails_at_once_when_dropped_and_times_out() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    let server = std::thread::spawn(move || {
        // Answered, with `()` too (an empty reply).
        let first = recv(&mut inbox);
        assert!(first.is_call());
        let n = *first.message();
        first.reply(n + 1);
        recv(&mut inbox).reply(());
        // Dropped without a reply: the caller learns at once.
        drop(recv(&mut inbox));
        // Kept past the caller's timeout.
        let kept = recv(&mut inbox);
        std::thread::sleep(Duration::from_millis(300));
        drop(kept);
    });
    assert_eq!(
        block_on(mailbox.call::<u32>(1, Duration::from_secs(5))).expect("answered"),
        2
    );
    block_on(mailbox.call::<()>(2, Duration::from_secs(5))).expect("answered with ()");
    let dropped = block_on(mailbox.call::<u32>(3, Duration::from_secs(5))).unwrap_err();
    assert!(matches!(dropped, Error::NoReply { .. }), "{dropped}");
    let started = std::time::Instant::now();
    let late = block_on(mailbox.call::<u32>(4, Duration::from_millis(100))).unwrap_err();
    assert!(matches!(late, Error::Timeout { .. }), "{late}");
    assert!(started.elapsed() < Duration::from_millis(290));
    server.join().expect("server");
}

#[test]
fn a_reply_of_the_wrong_type_is_an_encoding_error() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    // A u64 this large does not fit the u32 the caller expects.
    let server = std::thread::spawn(move || recv(&mut inbox).reply(u64::MAX));
    let err = block_on(mailbox.call::<u32>(1, Duration::from_secs(5))).unwrap_err();
    assert!(matches!(err, Error::Encoding { .. }), "{err}");
    server.join().expect("server");
}

#[test]
fn only_the_owners_workers_serve_a_mailbox() {
    let mut services = services();
    services.owner = "root/1".into();
    let err = services.inbox("m").map(drop).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mailbox \"m\" belongs to supervisor root: only its workers can serve it"
    );
    let err = services.outbox("x", Kind::Mailbox).map(drop).unwrap_err();
    assert_eq!(err.to_string(), "no mailbox is named \"x\" in this tree");
}

#[test]
fn every_descriptor_a_dropped_datagram_carried_is_closed() {
    let services = services();
    let (marker, _peer) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socket pair");
    let marked = marker.as_fd();
    assert_eq!(copies_of(marked), 1);
    let send_with = |body: &[u8], fds: &[RawFd]| {
        sendmsg::<()>(
            tx(&services).as_raw_fd(),
            &[IoSlice::new(body)],
            &[ControlMessage::ScmRights(fds)],
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .expect("sent");
    };
    let body = postcard::to_stdvec(&1u32).expect("encoded");
    // 60 datagrams of 200 descriptors each: their control messages are
    // cut short (room for 4), and the 4 the kernel installed closed.
    for _ in 0..60 {
        send_with(&body, &[marked.as_raw_fd(); 200]);
    }
    // Two descriptors: not a call.
    send_with(&body, &[marked.as_raw_fd(); 2]);
    // Oversized, with one descriptor.
    send_with(&vec![0; MAX_MESSAGE + 1], &[marked.as_raw_fd()]);
    for _ in 0..62 {
        let got = recv_datagram(rx(&services), "m").expect("read");
        assert!(
            got.is_none(),
            "a datagram with unexpected descriptors was kept"
        );
    }
    assert_eq!(copies_of(marked), 1, "descriptors were left open");
    // A call's one descriptor is passed on.
    send_with(&body, &[marked.as_raw_fd()]);
    let call = recv_datagram(rx(&services), "m")
        .expect("read")
        .expect("kept");
    assert!(call.passed.is_some());
    assert_eq!(copies_of(marked), 2);
    drop(call);
    assert_eq!(copies_of(marked), 1);
}
