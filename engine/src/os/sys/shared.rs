//! Memory shared between processes of the tree: a word a supervisor shares
//! with the one process it forks next ([`SharedWord`], what an
//! [`AbortMark`](super::AbortMark) records in), and the tree's stop mark,
//! which only the root can set and every process reads ([`SharedFlag`]).
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

/// The length of a shared word's mapping (the kernel maps a page).
const LEN: NonZeroUsize = match NonZeroUsize::new(size_of::<AtomicU32>()) {
    Some(len) => len,
    None => NonZeroUsize::MIN,
};

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
        // SAFETY: a new anonymous mapping at an address the kernel picks:
        // it overlaps nothing this process uses.
        let mapped = unsafe {
            mmap_anonymous(
                None,
                LEN,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        Ok(Self {
            word: mapped.cast(),
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
