//! The README's "A short tour", verbatim below this comment (`.ci/run`
//! checks that the two agree). Three servers that run until the tree is
//! stopped: `cargo run --example tour`, then Ctrl-C (or `kill -9` one of its
//! processes first and watch it come back).

use std::time::Duration;

use supertrees::{
    BackoffPolicy, Intensity, RestartPolicy, Restartable, Strategy, Supertree, Worker,
};

struct Server {
    port: u16,
}

impl Worker for Server {
    // Called for the first start and after every restart: build a fresh future.
    fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let port = self.port;
        Box::pin(async move {
            // A real server binds `port` here and serves until it is stopped.
            // Returning is a normal exit, a panic is a failure.
            println!("serving on port {port} in process {}", std::process::id());
            std::future::pending::<()>().await
        })
    }
}

impl Restartable for Server {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Always // OTP permanent: restarted however it ends
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        // 100 ms before the first restart, doubling up to 5 s; reset after 30 s up.
        BackoffPolicy::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            Duration::from_secs(30),
            2.0,
        )
    }
}

fn main() -> Result<(), supertrees::Error> {
    Supertree::new()
        .with_intensity(Intensity::new(10, Duration::from_secs(60))) // give up past 10 restarts/min
        .add_worker(Server { port: 8080 })
        .add_supervisor(|s| {
            s.with_strategy(Strategy::OneForAll) // one fails → restart both
                .add_worker(Server { port: 9000 })
                .add_worker(Server { port: 9001 })
        })
        .start()?; // this process is the root; SIGTERM/SIGINT/SIGHUP/SIGQUIT stop the tree
    println!("tree stopped"); // printed once, by this process only
    Ok(())
}
