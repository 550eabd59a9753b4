//! Mailboxes and children started at run time, on virtual time: exact
//! timelines through the public API (`run_simulated` on a `FakeTimer`).
//!
//! Each worker here is a [`Script`]: a closure run on every start, given
//! the [`Ctx`] (the timer and a shared log stamped with virtual ms).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use supertrees::testing::{run_simulated, FakeTimer};
use supertrees::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What every script gets: the timer, a log, and its start count.
#[derive(Clone)]
struct Ctx {
    timer: FakeTimer,
    log: Arc<Mutex<Vec<String>>>,
}

impl Ctx {
    fn new() -> Self {
        Self {
            timer: FakeTimer::new(),
            log: Arc::default(),
        }
    }

    fn log(&self, line: impl AsRef<str>) {
        let t = self.timer.elapsed().as_millis();
        self.log
            .lock()
            .unwrap()
            .push(format!("{t} {}", line.as_ref()));
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    async fn sleep(&self, n: u64) {
        self.timer.sleep(ms(n)).await;
    }
}

type Body = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A worker that runs `body(ctx, run)` on its `run`-th start (from 0).
struct Script {
    ctx: Ctx,
    runs: Arc<AtomicU32>,
    body: Arc<dyn Fn(Ctx, u32) -> Body + Send + Sync>,
    restart: RestartPolicy,
    backoff: BackoffPolicy,
    shutdown: Shutdown,
}

impl Script {
    fn new<F, Fut>(ctx: &Ctx, body: F) -> Self
    where
        F: Fn(Ctx, u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            ctx: ctx.clone(),
            runs: Arc::default(),
            body: Arc::new(move |ctx, run| Box::pin(body(ctx, run))),
            restart: RestartPolicy::Never,
            backoff: BackoffPolicy::new(ms(100), ms(100), ms(1000), 1.0),
            shutdown: Shutdown::Timeout(ms(500)),
        }
    }

    fn restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }
}

impl Worker for Script {
    fn init(&self) -> BoxFuture {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        (self.body)(self.ctx.clone(), run)
    }
}

impl Restartable for Script {
    fn restart_policy(&self) -> RestartPolicy {
        self.restart
    }
    fn backoff_policy(&self) -> BackoffPolicy {
        self.backoff
    }
    fn shutdown(&self) -> Shutdown {
        self.shutdown
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Kv {
    Put(u64, u64),
    Get(u64),
}

/// A key-value server: serves "kv" until the tree stops, logging each
/// message.
fn kv_server(ctx: &Ctx) -> Script {
    Script::new(ctx, |ctx, _| async move {
        let mut inbox = inbox::<Kv>("kv").expect("kv belongs to this supervisor");
        let mut map = std::collections::HashMap::new();
        while let Some(envelope) = inbox.recv().await {
            ctx.log(format!("server {:?}", envelope.message()));
            match *envelope.message() {
                Kv::Put(k, v) => {
                    map.insert(k, v);
                }
                Kv::Get(k) => envelope.reply(map.get(&k).copied()),
            }
        }
    })
    .restart(RestartPolicy::Always)
}

/// Runs `tree` in simulation, and stops it at `stop_at` ms by a worker
/// that ends the root (the root gives up when that worker panics under an
/// intensity of 0).
fn simulate(tree: Supertree, ctx: &Ctx) -> Result<(), Error> {
    run_simulated(tree, ctx.timer.clone())
}

/// A root whose last worker ends the tree after `at` ms (the root gives up
/// when it fails: intensity 0).
fn ending_at(ctx: &Ctx, at: u64) -> Supertree {
    Supertree::new()
        .with_intensity(Intensity::new(0, ms(1)))
        .add_worker(
            Script::new(ctx, move |ctx, _| async move {
                ctx.sleep(at).await;
                panic!("end of the test");
            })
            .restart(RestartPolicy::Always),
        )
}

#[test]
fn a_client_in_one_supervisor_calls_a_server_in_another() {
    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 1000)
        .add_supervisor(|s| s.with_mailbox("kv").add_worker(kv_server(&ctx)))
        .add_supervisor(|s| {
            s.add_worker(Script::new(&ctx, |ctx, _| async move {
                let kv = mailbox::<Kv>("kv").expect("declared");
                kv.send(Kv::Put(1, 10)).await.expect("queued");
                let got: Option<u64> = kv.call(Kv::Get(1), ms(50)).await.expect("answered");
                ctx.log(format!("client got {got:?}"));
                let none: Option<u64> =
                    kv.clone().call(Kv::Get(2), ms(50)).await.expect("answered");
                ctx.log(format!("client got {none:?}"));
            }))
        });
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        [
            "0 server Put(1, 10)",
            "0 server Get(1)",
            "0 client got Some(10)",
            "0 server Get(2)",
            "0 client got None",
        ]
    );
}

#[test]
fn messages_sent_while_the_server_restarts_wait_for_its_next_run() {
    let ctx = Ctx::new();
    let server = Script::new(&ctx, |ctx, run| async move {
        let mut inbox = inbox::<u32>("jobs").expect("ours");
        while let Some(envelope) = inbox.recv().await {
            let n = *envelope.message();
            ctx.log(format!("run {run} got {n}"));
            if n == 1 && run == 0 {
                // Dies holding a call: that call fails at once.
                panic!("boom");
            }
            envelope.reply(n * 2);
        }
    })
    .restart(RestartPolicy::Always);
    let tree = ending_at(&ctx, 1000).add_supervisor(|s| {
        s.with_mailbox("jobs")
            .add_worker(server)
            .add_worker(Script::new(&ctx, |ctx, _| async move {
                let jobs = mailbox::<u32>("jobs").expect("declared");
                let failed = jobs.call::<u32>(1, ms(500)).await;
                ctx.log(format!("call 1: {failed:?}"));
                for n in 2..=4 {
                    jobs.send(n).await.expect("queued while the server is down");
                }
                ctx.log("sent 2..=4");
                let doubled = jobs.call::<u32>(5, ms(500)).await;
                ctx.log(format!("call 5: {doubled:?}"));
            }))
    });
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        [
            "0 run 0 got 1",
            "0 call 1: Err(NoReply { name: \"jobs\" })",
            "0 sent 2..=4",
            "100 run 1 got 2",
            "100 run 1 got 3",
            "100 run 1 got 4",
            "100 run 1 got 5",
            "100 call 5: Ok(10)",
        ]
    );
}

#[test]
fn a_call_without_reply_times_out_on_virtual_time() {
    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 1000)
        .with_mailbox("slow")
        .add_worker(Script::new(&ctx, |_, _| async move {
            let mut inbox = inbox::<()>("slow").expect("ours");
            let mut kept = Vec::new();
            while let Some(envelope) = inbox.recv().await {
                kept.push(envelope);
            }
        }))
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let slow = mailbox::<()>("slow").expect("declared");
            let err = slow.call::<()>((), ms(250)).await.unwrap_err();
            ctx.log(err.to_string());
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        ["250 no reply from mailbox \"slow\" within 250ms"]
    );
}

#[test]
fn a_full_mailbox_makes_send_wait_until_the_server_reads() {
    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 1000)
        .with_mailbox("q")
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            ctx.sleep(50).await;
            let mut inbox = inbox::<u32>("q").expect("ours");
            let mut last = None;
            for _ in 0..300 {
                let n = *inbox.recv().await.expect("open").message();
                // FIFO per sender.
                assert_eq!(last.map_or(0, |l: u32| l + 1), n);
                last = Some(n);
            }
            ctx.log("server read 300");
        }))
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let q = mailbox::<u32>("q").expect("declared");
            for n in 0..300u32 {
                q.send(n).await.expect("queued");
                if n == 255 || n == 256 {
                    ctx.log(format!("sent {n}"));
                }
            }
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        ["0 sent 255", "50 sent 256", "50 server read 300"]
    );
}

#[test]
fn names_are_checked() {
    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 10)
        .add_supervisor(|s| s.with_mailbox("kv").add_worker(kv_server(&ctx)))
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            ctx.log(mailbox::<Kv>("nope").unwrap_err().to_string());
            ctx.log(inbox::<Kv>("kv").unwrap_err().to_string());
            ctx.log(start_child("kv", 1u8).await.unwrap_err().to_string());
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        [
            "0 no mailbox is named \"nope\" in this tree",
            "0 mailbox \"kv\" belongs to supervisor root/1: only its workers can serve it",
            "0 no dynamic-children template is named \"kv\" in this tree",
        ]
    );

    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 10)
        .with_mailbox("x")
        .add_supervisor(|s| s.with_mailbox("x"));
    let err = simulate(tree, &ctx).unwrap_err();
    assert!(
        matches!(err, Error::DuplicateName { ref name, .. } if name == "x"),
        "{err}"
    );
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ConnArgs {
    n: u32,
}

/// A connection: logs its start, panics if `n` is 13 (once), and drains for
/// 30 ms when asked to stop.
fn conn(ctx: &Ctx, arg: ConnArgs) -> Script {
    let n = arg.n;
    let mut script = Script::new(ctx, move |ctx, run| async move {
        ctx.log(format!("conn {n} run {run}"));
        let stop = stopping();
        if n == 13 && run == 0 {
            ctx.sleep(10).await;
            panic!("unlucky");
        }
        stop.await;
        ctx.sleep(30).await;
        ctx.log(format!("conn {n} drained"));
    })
    .restart(RestartPolicy::OnFailure);
    script.backoff = BackoffPolicy::new(ms(20), ms(20), ms(1000), 1.0);
    script
}

#[test]
fn children_started_at_run_time_run_restart_alone_and_are_terminated_gracefully() {
    let ctx = Ctx::new();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = events.clone();
    let timer = ctx.timer.clone();
    let c = ctx.clone();
    let tree = ending_at(&ctx, 500)
        .on_event(move |e| {
            if e.path.contains('#') || e.path == "root/1/0" {
                seen.lock()
                    .unwrap()
                    .push(format!("{} {e}", timer.elapsed().as_millis()));
            }
        })
        .add_supervisor(move |s| {
            s.with_strategy(Strategy::OneForAll)
                .with_max_children(2)
                .add_worker(Script::new(&c, |ctx, run| async move {
                    ctx.log(format!("static run {run}"));
                    std::future::pending::<()>().await;
                }))
                .add_dynamic("conn", {
                    let c = c.clone();
                    move |arg: ConnArgs| conn(&c, arg)
                })
        })
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let a = start_child("conn", ConnArgs { n: 1 })
                .await
                .expect("started");
            let b = start_child("conn", ConnArgs { n: 13 })
                .await
                .expect("started");
            ctx.log(format!("ids {a} {b}"));
            let full = start_child("conn", ConnArgs { n: 3 }).await.unwrap_err();
            ctx.log(full.to_string());
            let wrong = start_child("conn", 3u32).await.unwrap_err();
            ctx.log(wrong.to_string());
            ctx.sleep(100).await;
            terminate_child("conn", a).await.expect("terminated");
            ctx.log(format!("terminated {a}"));
            let again = terminate_child("conn", a).await.unwrap_err();
            ctx.log(again.to_string());
            let c = start_child("conn", ConnArgs { n: 3 })
                .await
                .expect("room again");
            ctx.log(format!("id {c}"));
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    let arg = std::any::type_name::<ConnArgs>();
    assert_eq!(
        ctx.lines(),
        [
            "0 static run 0".to_owned(),
            "0 conn 1 run 0".to_owned(),
            "0 conn 13 run 0".to_owned(),
            "0 ids 1 2".to_owned(),
            "0 the supervisor of template \"conn\" already runs its maximum of 2 children"
                .to_owned(),
            format!("0 \"conn\" was sent a u32 where its receiving side takes a {arg}: it was not decoded"),
            // Restarted alone after its 20 ms backoff: the static sibling
            // of this OneForAll supervisor runs on.
            "30 conn 13 run 1".to_owned(),
            "130 conn 1 drained".to_owned(),
            "130 terminated 1".to_owned(),
            "130 no child 1 runs under template \"conn\"".to_owned(),
            "130 conn 3 run 0".to_owned(),
            "130 id 3".to_owned(),
            // The tree stops: the workers of the host are asked to stop
            // together, in reverse order of position, and drain side by
            // side, ending in the order asked: conn 3 took conn 1's place,
            // below conn 13's.
            "530 conn 13 drained".to_owned(),
            "530 conn 3 drained".to_owned(),
        ]
    );
    assert_eq!(
        events.lock().unwrap().clone(),
        [
            "0 root/1/0: worker started",
            "0 root/1/0: ready",
            "0 root/1/conn#1: worker started",
            "0 root/1/conn#1: ready",
            "0 root/1/conn#2: worker started",
            "0 root/1/conn#2: ready",
            "10 root/1/conn#2: panicked: unlucky; restarting after 20ms",
            "30 root/1/conn#2: ready",
            "130 root/1/conn#1: stopped; not restarted",
            "130 root/1/conn#1: removed",
            "130 root/1/conn#3: worker started",
            "130 root/1/conn#3: ready",
            // The static worker never listens for its stop: dropped at once.
            "500 root/1/0: stopped; not restarted",
            "530 root/1/conn#2: stopped; not restarted",
            "530 root/1/conn#3: stopped; not restarted",
            // Its supervisor ends: so do the children it started at run
            // time, which leave the status.
            "530 root/1/conn#2: removed",
            "530 root/1/conn#3: removed",
        ]
    );
}

#[test]
fn a_message_or_reply_of_another_type_is_never_decoded_as_another() {
    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 1000)
        .with_mailbox("n")
        .add_worker(
            Script::new(&ctx, |ctx, _| async move {
                let mut inbox = inbox::<u64>("n").expect("ours");
                while let Some(envelope) = inbox.recv().await {
                    let n = *envelope.message();
                    ctx.log(format!("server got {n}"));
                    envelope.reply(n * 100);
                }
            })
            .restart(RestartPolicy::Always),
        )
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let words = mailbox::<String>("n").expect("declared");
            let numbers = mailbox::<u64>("n").expect("declared");
            // Postcard alone would read "hello" as 5.
            words.send("hello".into()).await.expect("queued");
            let err = words
                .call::<u64>("hello".into(), ms(500))
                .await
                .unwrap_err();
            ctx.log(err.to_string());
            // 300 as a u64, which postcard alone reads as the u8 172.
            let err = numbers.call::<u8>(3, ms(500)).await.unwrap_err();
            ctx.log(err.to_string());
            let n: u64 = numbers.call(4, ms(500)).await.expect("answered");
            ctx.log(format!("client got {n}"));
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        [
            "0 \"n\" was sent a alloc::string::String where its receiving side takes a u64: it \
             was not decoded",
            "0 server got 3",
            "0 \"n\" was sent a u64 where its receiving side takes a u8: it was not decoded",
            "0 server got 4",
            "0 client got 400",
        ]
    );
}

#[test]
fn a_call_on_a_full_mailbox_times_out_on_virtual_time_and_try_send_does_not_wait() {
    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 1000)
        .with_mailbox("q")
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            // Takes its inbox and never reads it.
            let _inbox = inbox::<u32>("q").expect("ours");
            ctx.sleep(2000).await;
        }))
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let q = mailbox::<u32>("q").expect("declared");
            let mut queued = 0;
            while q.try_send(queued).is_ok() {
                queued += 1;
            }
            ctx.log(format!(
                "{queued} queued; then {}",
                q.try_send(0).unwrap_err()
            ));
            let err = q.call::<u32>(1, ms(200)).await.unwrap_err();
            ctx.log(err.to_string());
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        [
            "0 256 queued; then mailbox \"q\" is full: the message was not sent",
            "200 no reply from mailbox \"q\" within 200ms",
        ]
    );
}

#[test]
fn a_call_waiting_for_room_times_out_at_its_timeout() {
    let ctx = Ctx::new();
    let tree = ending_at(&ctx, 1000)
        .with_mailbox("q")
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let _inbox = inbox::<u32>("q").expect("ours");
            ctx.sleep(2000).await;
        }))
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let q = mailbox::<u32>("q").expect("declared");
            for n in 0..256 {
                q.send(n).await.expect("room");
            }
            let err = q.call::<u32>(1, ms(200)).await.unwrap_err();
            ctx.log(err.to_string());
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    assert_eq!(
        ctx.lines(),
        ["200 no reply from mailbox \"q\" within 200ms"]
    );
}

#[test]
fn a_supervisor_gone_for_good_is_no_reply_after_5_s() {
    let ctx = Ctx::new();
    let c = ctx.clone();
    let tree = ending_at(&ctx, 20_000)
        .add_supervisor(move |s| {
            // Gives up at 100 ms (its worker fails, intensity 0), and is
            // not restarted.
            s.with_intensity(Intensity::new(0, ms(1)))
                .with_restart_policy(RestartPolicy::Never)
                .add_worker(
                    Script::new(&c, |ctx, _| async move {
                        ctx.sleep(100).await;
                        panic!("gone");
                    })
                    .restart(RestartPolicy::Always),
                )
                .add_dynamic("conn", {
                    let c = c.clone();
                    move |arg: ConnArgs| conn(&c, arg)
                })
        })
        .add_worker(Script::new(&ctx, |ctx, _| async move {
            let id = start_child("conn", ConnArgs { n: 1 })
                .await
                .expect("started");
            ctx.sleep(200).await;
            let err = terminate_child("conn", id).await.unwrap_err();
            ctx.log(format!("terminate: {err}"));
            let err = start_child("conn", ConnArgs { n: 2 }).await.unwrap_err();
            ctx.log(format!("start: {err}"));
        }));
    assert!(matches!(
        simulate(tree, &ctx),
        Err(Error::IntensityExceeded { .. })
    ));
    let no_reply = "\"conn\" let go of the request without a reply";
    assert_eq!(
        ctx.lines()
            .iter()
            .filter(|l| !l.contains(" conn 1 "))
            .map(|l| l.split(" (").next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>(),
        [
            format!("5200 terminate: {no_reply}"),
            format!("10200 start: {no_reply}")
        ]
    );
}
