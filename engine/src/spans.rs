//! The spans the processes of a tree log in: each process enters one of
//! its own for its life (`supervisor` or `host`, with its `path` and
//! `pid`), and each run of a worker is in a `worker` span within its
//! host's (see `supertrees_core::ready::run_worker`).

/// In a freshly forked process: leaves the spans its parent had entered,
/// which it inherited on the thread that forked, so that what it logs is
/// in its own span only (not in its parent's, with the parent's pid).
pub(crate) fn leave_inherited() {
    // Each turn leaves one; a subscriber that keeps no stack of entered
    // spans never shows one as current for long.
    for _ in 0..64 {
        let current = tracing::Span::current();
        let Some(id) = current.id() else {
            return;
        };
        tracing::dispatcher::get_default(|dispatch| dispatch.exit(&id));
    }
}
