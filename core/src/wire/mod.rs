//! What travels between the processes of a tree, and how.
//!
//! Every child process has one channel to its supervisor (pipes: one each
//! way for a worker host, one up for a child supervisor): a worker host
//! receives [`Command`]s on it and sends [`Note`]s; a
//! child supervisor sends [`Note`]s. Lifecycle events go to the root on a
//! pipe of their own. Everything is framed the same way ([`frame`]): typed,
//! serialized with postcard, length-prefixed, resynchronising on garbage.
//! No meaning travels in exit codes.

pub mod frame;
mod message;

pub use message::{Command, Ending, Note};
