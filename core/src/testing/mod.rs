//! Deterministic testing: run a whole tree in one thread on virtual time.
//!
//! [`run_simulated`] drives every supervisor of a tree as a task in the
//! calling thread, with the same state machine as the process engine, and
//! sends every backoff delay through a [`FakeTimer`]. Whenever every task
//! waits on the timer, the clock jumps to the next deadline: a tree that backs
//! off for hours finishes in microseconds, and every run gives the same
//! timeline.
//!
//! Every deadline of a supervisor is its state machine's, so it is kept
//! here as in processes: a stop's kill, the grace of a dropped worker, the
//! worker host's exit, and with a [watchdog](crate::Tree::with_watchdog)
//! the deadlines of worker hosts and supervisors to show life. A worker
//! that awaits [`hang()`] hangs its simulated worker host (as a worker that
//! blocks its thread hangs a real one), so a `hung` timeline is proven on
//! virtual time like a restart timeline.
//!
//! # Examples
//!
//! A worker that exits at once, restarted `Always` with a 100 ms → 800 ms
//! backoff, starts at t = 0, 100, 300, 700, 1500, 2300 ms:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use supertrees_core::testing::{run_simulated, FakeTimer};
//! use supertrees_core::{BackoffPolicy, Error, Intensity, Restartable, Supertree, Worker};
//!
//! struct Probe {
//!     timer: FakeTimer,
//!     starts: Arc<Mutex<Vec<Duration>>>,
//! }
//! impl Worker for Probe {
//!     fn init(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
//!         self.starts.lock().unwrap().push(self.timer.elapsed());
//!         Box::pin(async {})
//!     }
//! }
//! impl Restartable for Probe {
//!     fn backoff_policy(&self) -> BackoffPolicy {
//!         let ms = Duration::from_millis;
//!         BackoffPolicy::new(ms(100), ms(800), Duration::from_secs(60), 2.0)
//!     }
//! }
//!
//! let timer = FakeTimer::new();
//! let starts = Arc::new(Mutex::new(Vec::new()));
//! let tree = Supertree::new()
//!     // Stop the endless restarts: give up on the 6th restart within 10 s.
//!     .with_intensity(Intensity::new(5, Duration::from_secs(10)))
//!     .add_worker(Probe { timer: timer.clone(), starts: starts.clone() });
//!
//! let result = run_simulated(tree, timer.clone());
//! assert!(matches!(result, Err(Error::IntensityExceeded { .. })));
//! let ms: Vec<u128> = starts.lock().unwrap().iter().map(|d| d.as_millis()).collect();
//! assert_eq!(ms, [0, 100, 300, 700, 1500, 2300]);
//! ```

mod hang;
mod sim;
mod timer;

pub use hang::hang;
pub use sim::run_simulated;
pub use timer::FakeTimer;
