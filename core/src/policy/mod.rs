//! The rules of supervision, as plain values with pure functions.
//!
//! Each file holds one rule. None of them reads a clock or touches a process:
//! time comes in as an argument, so the simulation and the process engine
//! share one implementation and every rule is unit-tested on its own.

mod backoff;
mod intensity;
mod restart;
mod shutdown;
mod strategy;

pub use backoff::BackoffPolicy;
pub use backoff::BackoffState;
pub use intensity::Intensity;
pub use intensity::RestartHistory;
pub use restart::RestartPolicy;
pub use shutdown::Shutdown;
pub use strategy::Strategy;
