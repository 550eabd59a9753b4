//! The OS pieces every role builds on: fork, signals, the self-pipe and
//! shared memory words ([`sys`]); limited subtrees, their cgroups and
//! rlimits ([`containment`], [`cgroup`]); the checks of a socket's
//! directory ([`trusted_dir`]); one log line per period for repeated
//! failures ([`ratelimit`]).

pub(crate) mod cgroup;
pub(crate) mod containment;
pub(crate) mod ratelimit;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub(crate) mod trusted_dir;
