//! The tree's figures for Prometheus: a worker serves `GET /metrics` over
//! HTTP (hyper), answering with what the tree's status socket gives for its
//! `metrics` request, in the Prometheus text format.
//!
//! The root stays single-threaded (it forks), so it runs no HTTP server of
//! its own: it keeps the figures and renders them when asked on its status
//! socket. The server is a worker like any other, in a supervisor of its
//! own; its TCP listener belongs to the tree (`with_listener`: bound by the
//! root before anything is forked), so scrapes that arrive while the worker
//! restarts wait in the backlog. Each scrape asks the status socket with
//! the blocking `Client::metrics`, on Tokio's blocking pool.
//!
//! To give the figures something to count, the tree also runs a key-value
//! server (mailbox `kv`), a client that casts to it and calls it ten times
//! a second, from another process, and a worker that panics every five
//! seconds and is restarted.
//!
//! ```sh
//! cargo run --example metrics_http             # serves http://127.0.0.1:9464/metrics
//! METRICS_ADDR=127.0.0.1:9000 cargo run --example metrics_http
//! curl -s http://127.0.0.1:9464/metrics        # in another terminal
//! ```
//!
//! It prints the status socket's path: the `supertrees` command reads the
//! same figures there (`cargo run -p supertrees-cli -- --socket PATH
//! metrics`), and its status (`... status`). Stop it with Ctrl-C or
//! SIGTERM: the tree stops, and the example removes the socket's
//! directory. `RUST_LOG=debug` logs more; every line a worker logs is in
//! its `worker` span (`worker{path=root/telemetry/http pid=...}`).
//!
//! A Prometheus server scrapes it with this `prometheus.yml`:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: supertrees
//!     scrape_interval: 5s
//!     static_configs:
//!       - targets: ["127.0.0.1:9464"]
//! ```
//!
//! then, e.g., `rate(supertrees_child_restarts_total[1m])` shows
//! `root/flaky` restarting, and `supertrees_mailbox_calls_total` the
//! client's calls.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use supertrees::control::Client;
use supertrees::{
    BackoffPolicy, BoxFuture, Listen, Readiness, Restartable, Shutdown, Supertree, Worker,
};
use tracing_subscriber::EnvFilter;

/// Where the server listens unless `METRICS_ADDR` says otherwise (9464:
/// the port of OpenTelemetry's Prometheus exporters).
const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

/// The content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` on the tree's listener `metrics`, with the
/// figures of the tree whose status socket is `socket`.
struct MetricsHttp {
    socket: Arc<Path>,
}

impl Worker for MetricsHttp {
    fn readiness(&self) -> Readiness {
        Readiness::Notify
    }

    fn init(&self) -> BoxFuture {
        let socket = self.socket.clone();
        Box::pin(async move {
            let listener = supertrees::tcp_listener("metrics")
                .and_then(tokio::net::TcpListener::from_std)
                // A panic: the event shows it, and the worker is restarted.
                .unwrap_or_else(|err| panic!("the tree's listener: {err}"));
            match listener.local_addr() {
                Ok(addr) => println!("serving http://{addr}/metrics"),
                Err(err) => tracing::info!("serving /metrics on an unknown address: {err}"),
            }
            supertrees::ready();
            // Every connection holds a sender: once the last is dropped,
            // every connection has ended.
            let (open, mut closed) = futures::channel::mpsc::channel::<()>(0);
            let stop = supertrees::stopping();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        // Owned by this run: dropped if it ends.
                        Ok((stream, _)) => {
                            supertrees::spawn(connection(stream, socket.clone(), open.clone()));
                        }
                        // Out of descriptors, or the tree is stopping (its
                        // listener is shut down): not at once again.
                        Err(err) => {
                            tracing::warn!("accept: {err}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    () = &mut stop => break,
                }
            }
            // Each connection answers what it is serving, then closes.
            drop((listener, open));
            while closed.next().await.is_some() {}
        })
    }
}

impl Restartable for MetricsHttp {
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            Duration::from_secs(30),
            2.0,
        )
    }

    fn shutdown(&self) -> Shutdown {
        Shutdown::Timeout(Duration::from_secs(2))
    }
}

/// Serves one HTTP/1 connection (Prometheus keeps it open between
/// scrapes) until the peer closes it or the worker is asked to stop; `open`
/// is dropped when it ends.
async fn connection(
    stream: tokio::net::TcpStream,
    socket: Arc<Path>,
    open: futures::channel::mpsc::Sender<()>,
) {
    let stop = supertrees::stopping();
    let service = service_fn(move |request| answer(request, socket.clone()));
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn, stop);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = &mut stop => {
            // Finishes the request under way, if any, then closes.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = ended {
        tracing::debug!("connection: {err}");
    }
    drop(open);
}

/// The answer to `request`: the figures for `GET /metrics` (or `HEAD`),
/// 405 for another method there, 404 anywhere else.
async fn answer(
    request: Request<Incoming>,
    socket: Arc<Path>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/metrics" {
        return Ok(text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics\n".into(),
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    // The client blocks (std's UnixStream): not on the runtime's thread.
    let scraped = tokio::task::spawn_blocking(move || {
        Client::connect(&socket)
            .map_err(|err| err.to_string())
            .and_then(|tree| tree.metrics().map_err(|err| err.to_string()))
    })
    .await;
    Ok(match scraped {
        Ok(Ok(figures)) => {
            let mut response = text(StatusCode::OK, figures);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
            response
        }
        // The tree is stopping, or busy past the client's timeout.
        Ok(Err(err)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the tree did not answer: {err}\n"),
        ),
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the scrape failed: {err}\n"),
        ),
    })
}

/// A response of `status` with `body` as plain text.
fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The key-value server's protocol.
#[derive(Debug, Serialize, Deserialize)]
enum Kv {
    /// Sets a key (a cast: no answer).
    Put(String, u64),
    /// Asks for a key's value (a call: answered with an `Option<u64>`).
    Get(String),
}

/// Serves the mailbox `kv`: its state lives in its run.
struct KvServer;

impl Worker for KvServer {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            let mut inbox =
                supertrees::inbox::<Kv>("kv").expect("kv is declared by our supervisor");
            let mut map: HashMap<String, u64> = HashMap::new();
            while let Some(envelope) = inbox.recv().await {
                match envelope.message() {
                    Kv::Put(key, value) => {
                        map.insert(key.clone(), *value);
                    }
                    Kv::Get(key) => {
                        let value = map.get(key).copied();
                        envelope.reply(value);
                    }
                }
            }
        })
    }
}

impl Restartable for KvServer {}

/// Casts a `Put` to `kv` and calls it with a `Get`, ten times a second: the
/// traffic of `supertrees_mailbox_sent_total` and
/// `supertrees_mailbox_calls_total`.
struct KvClient;

impl Worker for KvClient {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            let kv = supertrees::mailbox::<Kv>("kv").expect("kv is declared in the tree");
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for visits in 1u64.. {
                tick.tick().await;
                if let Err(err) = kv.send(Kv::Put("visits".into(), visits)).await {
                    tracing::warn!("put: {err}");
                }
                match kv
                    .call::<Option<u64>>(Kv::Get("visits".into()), Duration::from_secs(1))
                    .await
                {
                    Ok(value) => tracing::debug!("visits = {value:?}"),
                    Err(err) => tracing::warn!("get: {err}"),
                }
            }
        })
    }
}

impl Restartable for KvClient {}

/// Panics five seconds after each start: exits by `panicked` and restarts.
struct Flaky;

impl Worker for Flaky {
    fn init(&self) -> BoxFuture {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            panic!("flaky worker gave out");
        })
    }
}

impl Restartable for Flaky {
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
            Duration::from_secs(10),
            2.0,
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let addr = match std::env::var("METRICS_ADDR") {
        Ok(addr) => addr
            .parse()
            .map_err(|err| format!("METRICS_ADDR={addr:?}: {err}"))?,
        Err(_) => DEFAULT_ADDR,
    };
    // The status socket, in a directory only this user may enter.
    let dir = std::env::temp_dir().join(format!("supertrees-metrics-http-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|err| format!("creating {}: {err}", dir.display()))?;
    let socket: Arc<Path> = Arc::from(dir.join("status.sock"));
    println!("status socket: {}", socket.display());
    let ran = Supertree::new()
        .status_socket(PathBuf::from(&*socket))
        // root/store/server serves kv; root/load/client uses it.
        .add_supervisor(|s| {
            s.with_name("store")
                .with_mailbox("kv")
                .add_named_worker("server", KvServer)
        })
        .add_supervisor(|s| s.with_name("load").add_named_worker("client", KvClient))
        .add_named_worker("flaky", Flaky)
        // root/telemetry/http: the listener is bound now, by the root.
        .add_supervisor(|s| {
            s.with_name("telemetry")
                .with_listener("metrics", Listen::tcp(addr))
                .add_named_worker("http", MetricsHttp { socket })
        })
        .start();
    if let Err(err) = std::fs::remove_dir_all(&dir) {
        eprintln!("removing {}: {err}", dir.display());
    }
    ran?;
    println!("stopped");
    Ok(())
}
