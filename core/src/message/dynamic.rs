//! What both drivers do with a request about dynamic children: build the
//! worker to learn its policies, and let the machine decide.

use std::time::Instant;

use super::{Answer, Refusal};
use crate::machine::{AddError, ChildIdx, Machine};
use crate::tree::{worker_policy, Template};
use crate::{ChildId, Worker};

/// Builds a worker from `template` and `arg`, and has `machine` add it as a
/// child started at run time: its index and id, and the worker built.
pub fn add(
    machine: &mut Machine,
    template: &Template,
    arg: &[u8],
    now: Instant,
) -> Result<(ChildIdx, ChildId, Box<dyn Worker>), Refusal> {
    let worker = template.worker(arg)?;
    match machine.handle_add(worker_policy(worker.as_ref()), now) {
        Ok((child, id)) => Ok((child, id, worker)),
        Err(AddError::Full { max }) => Err(Refusal::Full { max }),
        Err(AddError::ShuttingDown | AddError::NotDynamic) => Err(Refusal::ShuttingDown),
    }
}

/// Has `machine` stop and remove child `id`; it reports `Removed` once
/// done.
pub fn remove(machine: &mut Machine, id: ChildId, now: Instant) -> Result<ChildIdx, Refusal> {
    machine
        .handle_remove(id, now)
        .map_err(|_| Refusal::UnknownChild(id))
}

/// `answer`, encoded for the requester.
pub fn encode_answer(answer: &Answer) -> Vec<u8> {
    // An `Answer` is a small enum of plain data: encoding it can not fail.
    postcard::to_stdvec(answer).unwrap_or_default()
}
