//! Memory shared between processes of the tree: a word a supervisor shares
//! with the one process it forks next ([`SharedWord`], what an
//! [`AbortMark`](super::AbortMark) records in), the tree's stop mark,
//! which only the root can set and every process reads ([`SharedFlag`]),
//! and the mailboxes' tallies of the processes of one user
//! ([`SharedTallies`]).
//!
//! A shared writable mapping is a channel as much as a descriptor is: a
//! process that holds it can change what another process reads. So:
//!
//! * a [`SharedWord`] is kept from every later fork once the process it is
//!   for has been forked ([`SharedWord::keep_from_forks`], `MADV_DONTFORK`,
//!   called in the parent and in that child): a sibling forked later, or a
//!   process that child forks, never holds it;
//! * a [`SharedFlag`]'s writable view lives only in the process that made
//!   it (`MADV_DONTFORK`). Every process forked from it inherits a
//!   read-only view of the same page, a `memfd` sealed with
//!   `F_SEAL_FUTURE_WRITE` before that view was mapped: the kernel then
//!   refuses to make the view writable (`mprotect` fails with `EACCES`), and
//!   the `memfd` itself is closed once both views are mapped.

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{madvise, mmap, mmap_anonymous, munmap, MapFlags, MmapAdvise, ProtFlags};
use nix::unistd::Pid;
use supertrees_core::figures::MailboxTally;

/// The length of a shared word's mapping (the kernel maps a page).
const LEN: NonZeroUsize = match NonZeroUsize::new(size_of::<AtomicU32>()) {
    Some(len) => len,
    None => NonZeroUsize::MIN,
};

/// `len` bytes of new memory, zero, readable and writable, shared with the
/// processes forked after (an anonymous `MAP_SHARED` mapping).
fn map_shared(len: NonZeroUsize) -> Result<NonNull<std::ffi::c_void>, Errno> {
    // SAFETY: a new anonymous mapping at an address the kernel picks: it
    // overlaps nothing this process uses.
    unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
}

/// A word in memory shared with the processes forked after it is made (an
/// anonymous `MAP_SHARED` mapping): what one process stores, all see, until
/// [`keep_from_forks`](Self::keep_from_forks) stops later forks inheriting
/// it.
pub(crate) struct SharedWord {
    word: NonNull<AtomicU32>,
}

// SAFETY: the mapping is reached only through the atomic, which any thread
// may use, and it lives until the `SharedWord` is dropped.
unsafe impl Send for SharedWord {}
// SAFETY: as for `Send`: `&SharedWord` gives only atomic access.
unsafe impl Sync for SharedWord {}

impl SharedWord {
    /// A new word, zero.
    pub(crate) fn new() -> Result<Self, Errno> {
        Ok(Self {
            word: map_shared(LEN)?.cast(),
        })
    }

    /// Processes this one forks from now on do not inherit the word: called
    /// by a supervisor once it has forked the process the word is shared
    /// with, and by that process for itself.
    pub(crate) fn keep_from_forks(&self) -> Result<(), Errno> {
        // SAFETY: the range is this word's own mapping; MADV_DONTFORK
        // changes only what a later fork copies.
        unsafe { madvise(self.word.cast(), LEN.get(), MmapAdvise::MADV_DONTFORK) }
    }

    /// The shared atomic.
    pub(crate) fn get(&self) -> &AtomicU32 {
        // SAFETY: `word` points to the start of a live mapping (unmapped
        // only when `self` is dropped), which is page-aligned, was
        // zero-filled (a valid 0), and is only ever reached through this
        // atomic, in every process that shares it.
        unsafe { self.word.as_ref() }
    }
}

impl Drop for SharedWord {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length, and no
        // reference to it outlives `self`. Processes forked meanwhile keep
        // their own view of it.
        let _ = unsafe { munmap(self.word.cast(), LEN.get()) };
    }
}

impl std::fmt::Debug for SharedWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedWord")
            .field(&self.get().load(Ordering::SeqCst))
            .finish()
    }
}

/// A flag that the process that made it sets, and that every process
/// forked from it reads but can not set (see the module docs).
pub(crate) struct SharedFlag {
    /// The read-only view, which forked processes inherit.
    view: NonNull<AtomicU32>,
    /// The writable view, mapped only in `maker`.
    writer: NonNull<AtomicU32>,
    /// The process that made the flag.
    maker: Pid,
}

// SAFETY: both views are reached only through atomics, which any thread
// may use, and live until the flag is dropped.
unsafe impl Send for SharedFlag {}
// SAFETY: as for `Send`: `&SharedFlag` gives only atomic access.
unsafe impl Sync for SharedFlag {}

impl SharedFlag {
    /// A new flag, not set.
    pub(crate) fn new() -> Result<Self, Errno> {
        let file = memfd_create(
            "supertrees-stop",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        nix::unistd::ftruncate(&file, LEN.get() as i64)?;
        // SAFETY: a new shared mapping of a file this process just made, at
        // an address the kernel picks.
        let writer = unsafe {
            mmap(
                None,
                LEN,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }?;
        let unmap_writer = |err: Errno| {
            // SAFETY: the mapping made just above, referenced nowhere.
            let _ = unsafe { munmap(writer, LEN.get()) };
            err
        };
        // SAFETY: the writable mapping made above.
        unsafe { madvise(writer, LEN.get(), MmapAdvise::MADV_DONTFORK) }.map_err(unmap_writer)?;
        let seals = SealFlag::F_SEAL_FUTURE_WRITE
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_SEAL;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).map_err(unmap_writer)?;
        // SAFETY: as for the writable view; sealed, the kernel maps this one
        // without the right to become writable.
        let view = unsafe {
            mmap(
                None,
                LEN,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }
        .map_err(unmap_writer)?;
        Ok(Self {
            view: view.cast(),
            writer: writer.cast(),
            maker: nix::unistd::getpid(),
        })
    }

    /// Sets the flag, for every process that shares it; only in the process
    /// that made it (elsewhere the writable view is not mapped, and this
    /// does nothing).
    pub(crate) fn set(&self) {
        if nix::unistd::getpid() == self.maker {
            // SAFETY: in the maker the writable view is mapped until the
            // flag is dropped; it is reached only through this atomic.
            unsafe { self.writer.as_ref() }.store(1, Ordering::SeqCst);
        }
    }

    /// Whether the process that made the flag has set it.
    pub(crate) fn is_set(&self) -> bool {
        // SAFETY: the read-only view is mapped in every process that has
        // the flag (inherited on fork) until it is dropped; page-aligned and
        // zero-filled when made, reached only through this atomic.
        unsafe { self.view.as_ref() }.load(Ordering::SeqCst) != 0
    }
}

impl Drop for SharedFlag {
    fn drop(&mut self) {
        // SAFETY: the views were made by `new` with this length, and no
        // reference to them outlives `self`; the writable one is mapped
        // only in the maker (elsewhere its range may hold something else).
        unsafe {
            let _ = munmap(self.view.cast(), LEN.get());
            if nix::unistd::getpid() == self.maker {
                let _ = munmap(self.writer.cast(), LEN.get());
            }
        }
    }
}

impl std::fmt::Debug for SharedFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedFlag").field(&self.is_set()).finish()
    }
}

/// The tallies of a tree's mailboxes for the processes of one user
/// ([`MailboxTally`], one per mailbox): an anonymous `MAP_SHARED` mapping
/// the root makes before it forks anything, into which every process of
/// that user counts what it sends, and from which the root reads.
///
/// Writable by whoever holds it: so each user the tree runs as has its own
/// (see `Directory::for_child`), and a process keeps only those of the
/// users of its subtree; the others are unmapped in it right after its
/// fork ([`unmap_in_child`](Self::unmap_in_child)). A process can then
/// miscount only its own user's traffic.
pub(crate) struct SharedTallies {
    first: NonNull<MailboxTally>,
    count: NonZeroUsize,
}

// SAFETY: the mapping is reached only through the tallies' atomics, which
// any thread may use, and it lives until the `SharedTallies` is dropped.
unsafe impl Send for SharedTallies {}
// SAFETY: as for `Send`: `&SharedTallies` gives only atomic access.
unsafe impl Sync for SharedTallies {}

impl SharedTallies {
    /// `count` tallies, all zero.
    pub(crate) fn new(count: NonZeroUsize) -> Result<Self, Errno> {
        let len = NonZeroUsize::new(size_of::<MailboxTally>().saturating_mul(count.get()))
            .ok_or(Errno::EINVAL)?;
        Ok(Self {
            first: map_shared(len)?.cast(),
            count,
        })
    }

    /// Tally `n`, if there is one.
    pub(crate) fn get(&self, n: usize) -> Option<&MailboxTally> {
        (n < self.count.get()).then(|| {
            // SAFETY: `n` is within the mapping, which is live while `self`
            // is, page-aligned (so every `MailboxTally`, a `repr(C)` array
            // of `AtomicU64`s, is aligned), zero-filled (valid zero
            // counts), and only ever reached through those atomics, in
            // every process that shares it.
            unsafe { self.first.add(n).as_ref() }
        })
    }

    /// Another handle on the same mapping, for a freshly forked child's
    /// own directory. The parent's handle must never be dropped in the
    /// child (its state is forgotten there), so the mapping is unmapped
    /// once, by whichever handle the child drops.
    pub(crate) fn for_child(&self) -> Self {
        Self {
            first: self.first,
            count: self.count,
        }
    }

    /// Unmaps the tallies in a freshly forked child that must not hold
    /// them. The parent's handle is forgotten there, never used again.
    pub(crate) fn unmap_in_child(&self) {
        // SAFETY: the mapping made by `new`, with its length; in this child
        // no reference to it was handed out (a process hands out tallies
        // only for its own user's mailboxes, and only in worker hosts,
        // after this), and the parent's handle is never used or dropped
        // here again.
        let _ = unsafe { munmap(self.first.cast(), self.len()) };
    }

    fn len(&self) -> usize {
        size_of::<MailboxTally>() * self.count.get()
    }
}

impl Drop for SharedTallies {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length, and no
        // reference to it outlives `self` (tallies are reached through an
        // `Arc` of it). Processes forked meanwhile keep their own view.
        let _ = unsafe { munmap(self.first.cast(), self.len()) };
    }
}

impl std::fmt::Debug for SharedTallies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTallies")
            .field("count", &self.count)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_flag_starts_unset_and_stays_set() {
        let flag = SharedFlag::new().expect("a mapping");
        assert!(!flag.is_set());
        flag.set();
        flag.set();
        assert!(flag.is_set());
        assert_eq!(format!("{flag:?}"), "SharedFlag(true)");
    }

    #[test]
    fn the_view_forked_processes_inherit_can_not_be_made_writable() {
        let flag = SharedFlag::new().expect("a mapping");
        // SAFETY: the flag's own read-only view; on success (the defect
        // this test looks for) it is left writable until the flag drops.
        let made = unsafe {
            nix::sys::mman::mprotect(
                flag.view.cast(),
                LEN.get(),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            )
        };
        assert_eq!(made, Err(Errno::EACCES));
        assert!(!flag.is_set());
    }

    #[test]
    fn a_word_kept_from_forks_is_still_shared_here() {
        let word = SharedWord::new().expect("a mapping");
        word.keep_from_forks().expect("madvise");
        word.get().store(7, Ordering::SeqCst);
        assert_eq!(format!("{word:?}"), "SharedWord(7)");
    }
}
