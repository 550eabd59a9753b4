//! The page(s) of memory shared by the bench driver and every process of a
//! tree, and the clock the figures are computed with.
//!
//! The mapping is created once, before the first fork, and never unmapped, so
//! every forked process (tree root, supervisors, worker hosts) writes to the
//! same physical memory as the driver reads. CLOCK_MONOTONIC is system-wide,
//! so timestamps taken in different processes compare.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
use nix::time::{clock_gettime, ClockId};

/// Capacity of the ring of restart deltas (`panic_restart`).
pub const RING: usize = 16 * 1024;

/// Nanoseconds on CLOCK_MONOTONIC.
pub fn now_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// What a probe worker does once it has recorded its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Its future returns at once (a normal exit).
    Return,
    /// Its future never completes.
    Pend,
    /// Its future panics at once (an abnormal exit); each start also pushes
    /// the time since the previous start in the same process to the ring.
    Panic,
}

/// Counters in shared memory. All zero is the initial state.
#[repr(C)]
pub struct Shared {
    /// Written by the tree process right before `start()`.
    pub t0: AtomicU64,
    /// Worker starts so far (first polls of the futures init() returned).
    pub count: AtomicU64,
    /// Latest worker start (ns).
    pub last_ns: AtomicU64,
    /// Starts are also counted in `win_count` when they happen in
    /// `[t0 + win_from, t0 + win_to)`.
    pub win_from: AtomicU64,
    pub win_to: AtomicU64,
    pub win_count: AtomicU64,
    /// Number of deltas pushed to `ring` (may exceed `RING`: then the rest
    /// were dropped).
    pub ring_len: AtomicU64,
    /// A result a helper process reports (the fork floor, in ns).
    pub result_ns: AtomicU64,
    /// Set when the tree's `start()` returned an error.
    pub failed: AtomicU64,
    pub ring: [AtomicU64; RING],
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("t0", &self.t0)
            .field("count", &self.count)
            .field("last_ns", &self.last_ns)
            .field("win_count", &self.win_count)
            .field("ring_len", &self.ring_len)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Maps the shared page(s). Call once, before any fork.
    pub fn map() -> nix::Result<&'static Shared> {
        let len =
            NonZeroUsize::new(std::mem::size_of::<Shared>()).expect("Shared is not zero-sized");
        // SAFETY: a fresh anonymous mapping at an address the kernel picks;
        // it aliases no Rust object.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        // SAFETY: the mapping is page-aligned (more than AtomicU64 needs), at
        // least size_of::<Shared>() bytes long and zero-filled, and all-zero
        // bytes are a valid `Shared` (it holds only AtomicU64s). It is never
        // unmapped, so the reference is valid for 'static, and it is only
        // ever accessed through atomics (shared references only).
        Ok(unsafe { ptr.cast::<Shared>().as_ref() })
    }

    /// Back to the initial state. Only call when no process of a previous
    /// run is left.
    pub fn reset(&self) {
        for a in [
            &self.t0,
            &self.count,
            &self.last_ns,
            &self.win_from,
            &self.win_to,
            &self.win_count,
            &self.ring_len,
            &self.result_ns,
            &self.failed,
        ] {
            a.store(0, Ordering::SeqCst);
        }
        for a in &self.ring {
            a.store(0, Ordering::Relaxed);
        }
    }

    /// Worker starts so far (acquire: `last_ns` is at least as new).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// The recorded deltas (call once every writer is gone).
    pub fn deltas(&self) -> Vec<u64> {
        let n = (self.ring_len.load(Ordering::Acquire) as usize).min(RING);
        self.ring[..n]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }
}

/// Time of the previous start of a `Panic` probe in this process.
static PREVIOUS_START: AtomicU64 = AtomicU64::new(0);

/// Records one worker start; called on the first poll of a probe's future.
pub fn record_start(shm: &Shared, behavior: Behavior) {
    let now = now_ns();
    if behavior == Behavior::Panic {
        let previous = PREVIOUS_START.swap(now, Ordering::Relaxed);
        if previous != 0 {
            let i = shm.ring_len.fetch_add(1, Ordering::AcqRel) as usize;
            if let Some(slot) = shm.ring.get(i) {
                slot.store(now.saturating_sub(previous), Ordering::Relaxed);
            }
        }
    }
    let t0 = shm.t0.load(Ordering::Relaxed);
    let rel = now.saturating_sub(t0);
    if rel >= shm.win_from.load(Ordering::Relaxed) && rel < shm.win_to.load(Ordering::Relaxed) {
        shm.win_count.fetch_add(1, Ordering::Relaxed);
    }
    shm.last_ns.fetch_max(now, Ordering::AcqRel);
    shm.count.fetch_add(1, Ordering::AcqRel);
}
