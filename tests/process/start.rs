//! Seed compatibility and the plain ways `start()` ends: the seed program,
//! a `Once` worker, a tree whose workers all return, and `start()` inside a
//! Tokio runtime. The examples' drives are here too.

pub(crate) mod scenario {
    use std::time::Instant;

    use supertrees::{RestartPolicy, Supertree};

    use crate::scenario::{report, Echo};

    /// The seed program of API.md, verbatim but for ignoring the result.
    pub(crate) fn seed() {
        use supertrees::{RestartPolicy, Restartable, Supertree, Worker};

        #[derive(Debug)]
        struct W {
            num: i32,
        }
        impl Worker for W {
            fn init(
                &self,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>
            {
                let num = self.num;
                Box::pin(async move {
                    println!("worker {num}");
                })
            }
        }
        impl Restartable for W {
            fn restart_policy(&self) -> RestartPolicy {
                RestartPolicy::Once
            }
        }

        let root = Supertree::new()
            .add_worker(W { num: 1 })
            .add_supervisor(|s| {
                s.add_worker(W { num: 2 })
                    .add_supervisor(|s| s.add_worker(W { num: 3 }))
            });
        let _ = root.start();
        println!("done");
    }

    pub(crate) fn once_twice() {
        report(
            Supertree::new()
                .add_worker(Echo::new("root/w0", RestartPolicy::Once))
                .start(),
        );
    }

    pub(crate) fn start_returns() {
        let never = |name: &str| Echo::new(name, RestartPolicy::Never);
        let tree = Supertree::new()
            .add_worker(never("root/w0"))
            .add_supervisor(|s| {
                s.add_worker(never("root/s1/w0"))
                    .add_supervisor(|s| s.add_worker(never("root/s1/s1/w0")))
                    .add_worker(never("root/s1/w2"))
            })
            .add_supervisor(|s| s.add_worker(never("root/s2/w0")))
            .add_supervisor(|s| s);
        report(tree.start());
    }

    fn inside_runtime(runtime: tokio::runtime::Runtime) {
        runtime.block_on(async {
            let began = Instant::now();
            let result = Supertree::new()
                .add_worker(Echo::new("root/w0", RestartPolicy::Never))
                .start();
            println!("elapsed-ms {}", began.elapsed().as_millis());
            report(result);
        });
    }

    pub(crate) fn inside_runtime_multi_thread() {
        inside_runtime(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime"),
        );
    }

    pub(crate) fn inside_runtime_current_thread() {
        inside_runtime(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
        );
    }
}

pub(crate) mod drive {
    use crate::drive::{expect_count, expect_exit_code, expect_prefix_once};
    use crate::runner::Run;

    pub(crate) fn seed(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "done", 1)?;
        for n in 1..=3 {
            expect_count(run, &format!("worker {n}"), 2)?;
        }
        Ok(())
    }

    pub(crate) fn example(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "done", 1)
    }

    pub(crate) fn once_twice(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "run root/w0", 2)?;
        expect_count(run, "returned Ok", 1)
    }

    pub(crate) fn start_returns(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)?;
        for w in [
            "root/w0",
            "root/s1/w0",
            "root/s1/s1/w0",
            "root/s1/w2",
            "root/s2/w0",
        ] {
            expect_count(run, &format!("run {w}"), 1)?;
        }
        Ok(())
    }

    pub(crate) fn inside_runtime(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Err InsideRuntime:")?;
        expect_count(run, "run root/w0", 0)?;
        let elapsed = expect_prefix_once(run, "elapsed-ms ")?;
        let ms: u64 = elapsed["elapsed-ms ".len()..]
            .parse()
            .map_err(|e| format!("bad line {elapsed:?}: {e}"))?;
        if ms > 500 {
            return Err(format!(
                "start() took {ms} ms to return InsideRuntime; expected at once"
            ));
        }
        Ok(())
    }
}
