//! What travels between the processes of a tree, and how.
//!
//! Every child process has one channel to its supervisor (a worker host:
//! pipes, one each way; a child supervisor: one socket): a worker host
//! receives [`Command`]s on it and sends [`Note`]s; a child supervisor
//! receives [`Down`]s (operators' orders) and sends [`Note`]s. Lifecycle events go to the root on a
//! pipe of their own. Everything is framed the same way ([`frame`]): typed,
//! serialized with postcard, length-prefixed, resynchronising on garbage.
//! No meaning travels in exit codes.

pub mod frame;
mod message;

pub use message::{Command, Down, Ending, Note};
