//! The socket engine's mailboxes without forking: one tree's directory, the
//! default reactor, a sleeping thread as timer.

use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures::future::{select, Either};
use nix::sys::socket::{sendmsg, socketpair, ControlMessage, MsgFlags};
use serde::de::DeserializeOwned;

use super::*;
use crate::message::{codec, Declared, Envelope, Inbox, Mailbox, Request, MAX_MESSAGE};
use crate::ChildId;

/// A sleep on async-io's timers (its own thread, for any executor).
fn sleep(d: Duration) -> BoxFuture {
    Box::pin(async move {
        async_io::Timer::after(d).await;
    })
}

/// The effective user of this process.
fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The services of a tree with a mailbox "m" and a template "t" (of
/// `u32`), both owned by `root`.
fn services() -> SocketServices {
    let declared = vec![
        Declared {
            name: "m".into(),
            owner: "root".into(),
            kind: Kind::Mailbox,
            argument: "",
        },
        Declared {
            name: "t".into(),
            owner: "root".into(),
            kind: Kind::Template,
            argument: "u32",
        },
    ];
    SocketServices {
        directory: Arc::new(Directory::open(declared, &[uid()], true).expect("sockets")),
        uid: uid(),
        owner: "root".into(),
        register: Arc::new(crate::io::reactor::register),
        sleep: Arc::new(sleep),
    }
}

fn mailbox<M>(services: &SocketServices) -> Mailbox<M> {
    Mailbox::from_outbox("m", services.outbox("m", Kind::Mailbox).expect("declared"))
}

fn inbox<M>(services: &SocketServices) -> Inbox<M> {
    Inbox::from_port("m", services.inbox("m").expect("ours"))
}

fn ends(services: &SocketServices) -> (Mailbox<u32>, Inbox<u32>) {
    (mailbox(services), inbox(services))
}

fn recv<M: DeserializeOwned + Send + 'static>(inbox: &mut Inbox<M>) -> Envelope<M> {
    block_on(inbox.recv()).expect("open")
}

/// This process's sending socket to mailbox "m".
fn tx(services: &SocketServices) -> Arc<OwnedFd> {
    services
        .directory
        .find("m", Kind::Mailbox)
        .expect("declared")
        .sender(uid())
        .expect("held")
}

fn rx(services: &SocketServices) -> BorrowedFd<'_> {
    services
        .directory
        .find("m", Kind::Mailbox)
        .expect("declared")
        .receivers()
        .next()
        .expect("held here")
}

/// Fills mailbox "m" with casts of 0u32: how many it took.
fn fill(services: &SocketServices) -> usize {
    let zero = codec::encode("m", &0u32).expect("encoded");
    let mut n = 0;
    while send_datagram(tx(services).as_fd(), &zero, None).is_ok() {
        n += 1;
    }
    n
}

/// `fut`'s output if it resolves within `limit`, on this thread.
fn within<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    match block_on(select(std::pin::pin!(fut), sleep(limit))) {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => None,
    }
}

/// Polls `fut` once, with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    std::pin::Pin::new(fut).poll(&mut Context::from_waker(&waker))
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
    // Over the limit: dropped by the reader, whatever it holds.
    send_datagram(tx(&services).as_fd(), &vec![7; MAX_MESSAGE + 100], None).expect("sent");
    // No type name (a length that never ends).
    send_datagram(tx(&services).as_fd(), &[0xff; 12], None).expect("sent");
    // A u32 with a byte left over.
    let mut longer = codec::encode("m", &7u32).expect("encoded");
    longer.push(0);
    send_datagram(tx(&services).as_fd(), &longer, None).expect("sent");
    block_on(mailbox.send(42)).expect("queued");
    assert_eq!(*recv(&mut inbox).message(), 42);
    // A message the sender would make too large is refused there.
    let big: Mailbox<Vec<u8>> = mailbox.retyped();
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
    let started = Instant::now();
    let late = block_on(mailbox.call::<u32>(4, Duration::from_millis(100))).unwrap_err();
    assert!(matches!(late, Error::Timeout { .. }), "{late}");
    assert!(started.elapsed() < Duration::from_millis(290));
    server.join().expect("server");
}

#[test]
fn a_message_of_another_type_is_not_decoded_and_its_caller_is_told() {
    let services = services();
    let words: Mailbox<String> = mailbox(&services);
    let numbers: Mailbox<u64> = mailbox(&services);
    let mut inbox: Inbox<u64> = inbox(&services);
    // A cast: dropped (postcard alone would read "hello" as 5).
    block_on(words.send("hello".into())).expect("queued");
    block_on(numbers.send(7)).expect("queued");
    assert_eq!(*recv(&mut inbox).message(), 7);
    // A call: refused without being decoded, and the caller told.
    let server = std::thread::spawn(move || {
        let envelope = recv(&mut inbox);
        let n = *envelope.message();
        envelope.reply(n);
    });
    let err = within(
        Duration::from_secs(5),
        words.call::<u64>("hello".into(), Duration::from_secs(3)),
    )
    .expect("answered at once")
    .unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { name, expected, found, .. }
            if name == "m" && expected == "u64" && found == "alloc::string::String"),
        "{err}"
    );
    // The server is still there for the right type.
    let n: u64 = block_on(numbers.call(8, Duration::from_secs(5))).expect("answered");
    assert_eq!(n, 8);
    server.join().expect("server");
}

#[test]
fn a_reply_of_another_type_is_wrong_type() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    // 300 as a u64, which postcard alone reads as the u8 172.
    let server = std::thread::spawn(move || recv(&mut inbox).reply(300u64));
    let err = block_on(mailbox.call::<u8>(1, Duration::from_secs(5))).unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { expected, found, .. } if expected == "u8" && found == "u64"),
        "{err}"
    );
    server.join().expect("server");
}

#[test]
fn a_call_on_a_full_mailbox_times_out_within_its_timeout() {
    let services = services();
    let mailbox: Mailbox<u32> = mailbox(&services);
    fill(&services);
    let started = Instant::now();
    let got = within(
        Duration::from_secs(5),
        mailbox.call::<u32>(1, Duration::from_millis(200)),
    )
    .expect("a call on a full mailbox must end by its timeout");
    assert!(matches!(got, Err(Error::Timeout { .. })), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn try_send_on_a_full_mailbox_is_mailbox_full_at_once() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    mailbox.try_send(1).expect("room");
    assert_eq!(*recv(&mut inbox).message(), 1);
    let held = fill(&services);
    assert!(held > 100, "the mailbox held {held}");
    let err = mailbox.try_send(2).unwrap_err();
    assert!(
        matches!(&err, Error::MailboxFull { name, .. } if name == "m"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "mailbox \"m\" is full: the message was not sent"
    );
    // Room again once the server reads.
    for _ in 0..held {
        recv(&mut inbox);
    }
    mailbox.try_send(3).expect("room");
    assert_eq!(*recv(&mut inbox).message(), 3);
}

#[test]
fn a_call_kept_unpolled_or_dropped_holds_up_no_other_sender() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    let held = fill(&services);
    // Each waits for room, polled once; then one is kept, one dropped.
    let mut kept = Box::pin(mailbox.call::<u32>(1, Duration::from_secs(60)));
    assert!(poll_once(&mut kept).is_pending());
    let mut dropped = Box::pin(mailbox.clone().send(2));
    assert!(poll_once(&mut dropped).is_pending());
    drop(dropped);
    let server = std::thread::spawn(move || {
        for _ in 0..held {
            recv(&mut inbox);
        }
        let envelope = recv(&mut inbox);
        let n = *envelope.message();
        envelope.reply(n * 10);
    });
    let other = mailbox.clone();
    let got = within(
        Duration::from_secs(5),
        other.call::<u32>(3, Duration::from_secs(4)),
    )
    .expect("an unpolled call must not hold up another");
    assert_eq!(got.expect("answered"), 30);
    server.join().expect("server");
    drop(kept);
}

#[test]
fn calls_waiting_for_room_hold_no_descriptors_and_all_complete() {
    const CALLS: u32 = 10_000;
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    fill(&services);
    let before = open_fds().len();
    let mut calls: Vec<_> = (0..CALLS)
        .map(|n| Box::pin(mailbox.call::<u32>(n, Duration::from_secs(120))))
        .collect();
    for call in &mut calls {
        assert!(poll_once(call).is_pending());
    }
    let waiting = open_fds().len().saturating_sub(before);
    // Other tests of this binary open descriptors meanwhile: a few.
    assert!(
        waiting < 200,
        "{CALLS} calls waiting for room hold {waiting} descriptors"
    );
    // Every tenth gives up (dropped mid-wait); the others are answered.
    let mut n = 0;
    calls.retain(|_| {
        n += 1;
        n % 10 != 0
    });
    let expected: Vec<u32> = (0..CALLS).filter(|n| n % 10 != 9).map(|n| n + 1).collect();
    let answered = calls.len();
    let server = std::thread::spawn(move || {
        let mut replies = 0;
        while replies < answered {
            let envelope = recv(&mut inbox);
            if envelope.is_call() {
                let n = *envelope.message();
                envelope.reply(n + 1);
                replies += 1;
            }
        }
    });
    let results = within(Duration::from_secs(100), futures::future::join_all(calls))
        .expect("every call is answered");
    let got: Vec<u32> = results
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every call is answered");
    assert_eq!(got, expected);
    server.join().expect("server");
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
    let body = codec::encode("m", &1u32).expect("encoded");
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
        let got = datagram::recv_datagram(rx(&services), "m").expect("read");
        assert!(
            got.is_none(),
            "a datagram with unexpected descriptors was kept"
        );
    }
    assert_eq!(copies_of(marked), 1, "descriptors were left open");
    // A call's one descriptor is passed on.
    send_with(&body, &[marked.as_raw_fd()]);
    let call = datagram::recv_datagram(rx(&services), "m")
        .expect("read")
        .expect("kept");
    assert!(call.passed.is_some());
    assert_eq!(copies_of(marked), 2);
    drop(call);
    assert_eq!(copies_of(marked), 1);
}

#[test]
fn a_request_no_supervisor_answers_is_no_reply_within_5_s() {
    let services = services();
    let outbox = services.outbox("t", Kind::Template).expect("declared");
    let started = Instant::now();
    let asked = crate::message::ask(outbox, "t".into(), Request::Terminate(ChildId::new(1)));
    let got = within(Duration::from_secs(10), asked).expect("answered within 5 s");
    assert!(
        matches!(&got, Err(Error::NoReply { name, .. }) if name == "t"),
        "{got:?}"
    );
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(7)).contains(&took),
        "{took:?}"
    );
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
fn senders_on_many_threads_dropping_futures_mid_wait_all_get_through_in_order() {
    const THREADS: u32 = 8;
    const EACH: u32 = 600;
    let services = services();
    let mailbox: Mailbox<(u32, u32)> = mailbox(&services);
    let mut inbox: Inbox<(u32, u32)> = inbox(&services);
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let mailbox = mailbox.clone();
            std::thread::spawn(move || {
                let mut sent = 0;
                for n in 0..EACH {
                    if n % 5 == 4 {
                        // Gives up on waiting: sent only if there was room.
                        let mut given_up = Box::pin(mailbox.send((t, n)));
                        match poll_once(&mut given_up) {
                            Poll::Ready(result) => result.map(|()| sent += 1).expect("sent"),
                            Poll::Pending => drop(given_up),
                        }
                    } else if n % 7 == 6 {
                        // A call with a short timeout: answered, or not
                        // sent at all, or sent and not answered in time.
                        match block_on(mailbox.call::<u32>((t, n), Duration::from_millis(2))) {
                            Ok(_) | Err(Error::Timeout { .. }) => {}
                            Err(err) => panic!("{err}"),
                        }
                    } else {
                        block_on(mailbox.send((t, n))).expect("sent");
                        sent += 1;
                    }
                }
                sent
            })
        })
        .collect();
    // The server starts late, so that the mailbox fills.
    std::thread::sleep(Duration::from_millis(50));
    let server = std::thread::spawn(move || {
        let mut last = vec![None; THREADS as usize];
        let mut casts = 0;
        while let Some(Some(envelope)) = within(Duration::from_secs(2), inbox.recv()) {
            let (t, n) = *envelope.message();
            let previous = last[t as usize].replace(n);
            assert!(previous < Some(n), "{t}: {n} after {previous:?}");
            if envelope.is_call() {
                envelope.reply(n);
            } else {
                casts += 1;
            }
        }
        casts
    });
    let sent: u32 = senders.into_iter().map(|s| s.join().expect("sender")).sum();
    let received = server.join().expect("server");
    assert_eq!(received, sent);
    assert!(sent > THREADS * EACH / 2, "{sent}");
}

#[test]
fn calls_timing_out_while_waiting_for_room_leave_nothing_behind() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    let held = fill(&services);
    let before = open_fds().len();
    let calls = (0..1000).map(|n| mailbox.call::<u32>(n, Duration::from_millis(20)));
    let results = within(Duration::from_secs(10), futures::future::join_all(calls))
        .expect("every call ends by its timeout");
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::Timeout { .. }))));
    let left = open_fds().len().saturating_sub(before);
    assert!(left < 50, "{left} descriptors left");
    // None of them was sent: the server finds the casts, then this call.
    let server = std::thread::spawn(move || {
        for _ in 0..held {
            assert!(!recv(&mut inbox).is_call());
        }
        let envelope = recv(&mut inbox);
        let n = *envelope.message();
        envelope.reply(n);
    });
    let n: u32 = block_on(mailbox.call(77, Duration::from_secs(5))).expect("answered");
    assert_eq!(n, 77);
    server.join().expect("server");
}

// Abuse by an adversarial review (issue 19).

/// A TCP connection whose send queue is full (its peer never reads) and
/// which lingers `secs` on close: its last close blocks that long.
fn lingering_socket(secs: i32) -> (std::net::TcpListener, std::net::TcpStream) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut stream =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    stream.set_nonblocking(true).expect("non-blocking");
    let chunk = [0u8; 65536];
    let mut stalled = 0;
    while stalled < 20 {
        // Fills the send queue: how much each write takes does not matter.
        match stream.write(&chunk) {
            Ok(n) if n > 0 => stalled = 0,
            _ => {
                stalled += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    nix::sys::socket::setsockopt(
        &stream,
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: secs,
        },
    )
    .expect("SO_LINGER");
    (listener, stream)
}

/// A peer passes a lingering TCP socket with a message the reader drops
/// (two descriptors): closing it, the reader (a worker host's inbox, or
/// a supervisor reading its templates' requests with the same
/// `recv_datagram`) is blocked for the linger time the peer chose.
#[test]
fn a_lingering_descriptor_a_peer_passes_blocks_the_reader() {
    let services = services();
    let (_listener, stream) = lingering_socket(3);
    let body = codec::encode("m", &1u32).expect("encoded");
    let fd = stream.as_raw_fd();
    sendmsg::<()>(
        tx(&services).as_raw_fd(),
        &[IoSlice::new(&body)],
        &[ControlMessage::ScmRights(&[fd, fd])],
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .expect("sent");
    // The peer lets go of its own copy: the reader's is the last.
    drop(stream);
    let started = Instant::now();
    let got = datagram::recv_datagram(rx(&services), "m").expect("read");
    let took = started.elapsed();
    assert!(got.is_none());
    assert!(
        took < Duration::from_millis(500),
        "reading (and dropping) one datagram blocked the reader for {took:?}"
    );
}

/// The same through a call: the server's envelope dropped (or replied
/// to) closes the "reply socket", and blocks the server's thread.
#[test]
fn a_lingering_reply_socket_blocks_the_server_that_drops_the_call() {
    let services = services();
    let mut inbox: Inbox<u32> = inbox(&services);
    let (_listener, stream) = lingering_socket(3);
    let body = codec::encode("m", &1u32).expect("encoded");
    sendmsg::<()>(
        tx(&services).as_raw_fd(),
        &[IoSlice::new(&body)],
        &[ControlMessage::ScmRights(&[stream.as_raw_fd()])],
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .expect("sent");
    drop(stream);
    let envelope = recv(&mut inbox);
    assert!(envelope.is_call());
    let started = Instant::now();
    envelope.reply(2u32);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "replying to one call blocked the server for {took:?}"
    );
}

/// Any process of the tree holds a mailbox's receiving end; one that
/// turns on `SO_PASSCRED` on it (it is one socket for all) makes every
/// call's control message too large for the reader's room: every call to
/// that mailbox is dropped, and its caller gets `NoReply`.
#[test]
fn so_passcred_on_the_shared_receiving_end_drops_every_call() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    nix::sys::socket::setsockopt(&rx(&services), nix::sys::socket::sockopt::PassCred, &true)
        .expect("SO_PASSCRED");
    let server = std::thread::spawn(move || {
        let envelope = recv(&mut inbox);
        let n = *envelope.message();
        envelope.reply(n + 1);
    });
    let got = within(
        Duration::from_secs(3),
        mailbox.call::<u32>(1, Duration::from_secs(2)),
    );
    // Unblocks the server if the call never reached it.
    let _ = block_on(mailbox.send(0));
    server.join().expect("server");
    assert!(
        matches!(got, Some(Ok(2))),
        "a call to a mailbox whose receiving end has SO_PASSCRED: {got:?}"
    );
}

/// A server that answers with descriptors along (200 of them, or one):
/// the caller keeps none of them.
#[test]
fn descriptors_sent_with_a_reply_are_not_kept() {
    let services = services();
    let mailbox: Mailbox<u32> = mailbox(&services);
    let (marker, _peer) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socket pair");
    let marked = marker.as_raw_fd();
    assert_eq!(copies_of(marker.as_fd()), 1);
    for count in [200usize, 1] {
        let rx_fd = rx(&services).as_raw_fd();
        let server = std::thread::spawn(move || {
            // SAFETY: the mailbox's receiving end outlives this thread
            // (joined below); read raw, as a hostile server would.
            let rx = unsafe { BorrowedFd::borrow_raw(rx_fd) };
            let call = loop {
                if let Ok(Some(got)) = datagram::recv_datagram(rx, "m") {
                    break got;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let reply = call.passed.expect("a call");
            let body = codec::encode_reply("m", &5u32).expect("encoded");
            let fds = vec![marked; count];
            sendmsg::<()>(
                reply.as_raw_fd(),
                &[IoSlice::new(&[REPLY_TAG]), IoSlice::new(&body)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .expect("replied");
        });
        let got = block_on(mailbox.call::<u32>(1, Duration::from_secs(3)));
        server.join().expect("server");
        assert!(matches!(got, Ok(5)), "{got:?}");
        assert_eq!(
            copies_of(marker.as_fd()),
            1,
            "{count} passed with a reply were kept"
        );
    }
}

/// Futures of calls and sends polled once on a full mailbox, then leaked
/// (`mem::forget`), and a zero-length datagram: other senders get
/// through, and the leaked ones hold no descriptor.
#[test]
fn leaked_futures_hold_up_nobody_and_hold_no_descriptor() {
    let services = services();
    let (mailbox, mut inbox) = ends(&services);
    send_datagram(tx(&services).as_fd(), &[], None).expect("an empty datagram");
    let held = fill(&services);
    let before = open_fds().len();
    for n in 0..500 {
        let mut call = Box::pin(mailbox.call::<u32>(n, Duration::from_secs(60)));
        assert!(poll_once(&mut call).is_pending());
        std::mem::forget(call);
        let mut send = Box::pin(mailbox.send(n));
        assert!(poll_once(&mut send).is_pending());
        std::mem::forget(send);
    }
    let grown = open_fds().len().saturating_sub(before);
    assert!(grown < 20, "500 leaked calls hold {grown} descriptors");
    let server = std::thread::spawn(move || {
        for _ in 0..held {
            recv(&mut inbox);
        }
        let envelope = recv(&mut inbox);
        let n = *envelope.message();
        envelope.reply(n + 1);
    });
    let got = within(
        Duration::from_secs(5),
        mailbox.call::<u32>(7, Duration::from_secs(4)),
    )
    .expect("a leaked future must not hold up another");
    assert_eq!(got.expect("answered"), 8);
    server.join().expect("server");
}
