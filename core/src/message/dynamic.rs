//! What both drivers do with a request about dynamic children: build the
//! worker to learn its policies, and let the machine decide.

use std::time::Instant;

use super::codec::Undecoded;
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
    let worker = build(template, arg)?;
    match machine.handle_add(worker_policy(worker.as_ref()), now) {
        Ok((child, id)) => Ok((child, id, worker)),
        Err(AddError::Full { max }) => Err(Refusal::Full { max }),
        Err(AddError::ShuttingDown | AddError::NotDynamic) => Err(Refusal::ShuttingDown),
    }
}

/// A worker built from `template` and the encoded argument `arg`; why
/// not, if the argument is of another type than the template's, is
/// malformed (bytes left over included), or the template panics.
pub fn build(template: &Template, arg: &[u8]) -> Result<Box<dyn Worker>, Refusal> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (template.build)(arg))) {
        Ok(Ok(worker)) => Ok(worker),
        Ok(Err(Undecoded::WrongType(found))) => Err(Refusal::WrongType {
            expected: template.argument.to_owned(),
            found,
        }),
        Ok(Err(Undecoded::Malformed(reason))) => Err(Refusal::BadArgument(reason)),
        Err(_) => Err(Refusal::BadArgument("the template panicked".to_owned())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::tree::TreeParts;
    use crate::worker::Noop;
    use crate::Supertree;

    #[test]
    fn a_template_decodes_only_its_argument_type_to_the_last_byte() {
        let tree = TreeParts::from(Supertree::new().add_dynamic("t", |_: u32| Noop));
        let template = &tree.root.templates[0];
        let seven = codec::encode("t", &7u32).expect("encoded");
        assert!(build(template, &seven).is_ok());
        // A u64, which postcard alone would read as a u32.
        let wide = codec::encode("t", &7u64).expect("encoded");
        assert!(matches!(
            build(template, &wide).map(drop),
            Err(Refusal::WrongType { expected, found }) if expected == "u32" && found == "u64"
        ));
        // A byte left over.
        let mut longer = seven;
        longer.push(0);
        assert!(matches!(
            build(template, &longer).map(drop),
            Err(Refusal::BadArgument(reason)) if reason == "1 trailing byte(s) after a u32"
        ));
        // Plain postcard, without a type name: malformed.
        assert!(matches!(
            build(template, &[7, 0]).map(drop),
            Err(Refusal::BadArgument(_))
        ));
    }

    /// The largest `Add` a supervisor sends (the argument of the largest
    /// request to start a child, the largest indexes) fits a frame: the
    /// reader once took it for garbage, and the child never began.
    #[test]
    fn the_largest_add_fits_a_frame() {
        use crate::machine::ChildIdx;
        use crate::message::Request;
        use crate::wire::frame::{encode, FrameReader};
        use crate::wire::Command;
        let mut arg = vec![0x5A; crate::port::MAX_MESSAGE];
        while codec::encode_plain("t", &Request::Start(arg.clone())).is_err() {
            arg.pop();
        }
        let add = Command::Add {
            child: ChildIdx::new(u32::MAX as usize).unwrap(),
            template: u32::MAX,
            id: crate::ChildId::new(u64::MAX),
            arg,
        };
        let mut r = FrameReader::default();
        r.push(&encode(&add));
        // Not `assert_eq`: it would print 64 KiB.
        assert!(r.next::<Command>() == Some(add), "the largest Add dropped");
        assert_eq!(r.pending(), 0);
    }
}
