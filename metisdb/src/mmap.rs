//! The shared read-only memory map of the data file: the one place where
//! file bytes become Rust slices.
//!
//! Soundness rests on four rules, kept by the rest of the crate:
//! 1. The data dir is locked exclusively (see `lock`), so no other process
//!    of ours writes the file; the file is never truncated.
//! 2. A page is handed out only if it belongs to a committed version that a
//!    live snapshot pins; such pages are never rewritten while pinned (the
//!    allocator's reuse gate), so the bytes under a slice do not change.
//! 3. Slices borrow from the snapshot that holds the `Arc<Mapping>`, so
//!    they cannot outlive the mapping.
//! 4. Bytes are untrusted until the page checksum was checked; the
//!    `verified` bitmap records pages checked once in this process.
//!
//! The mapping reserves more address space than the file needs so that the
//! file can grow without remapping; when it outgrows the reservation, a new,
//! larger mapping is made and old ones stay alive as long as snapshots use them.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

/// Smallest address-space reservation.
pub const MIN_RESERVE: u64 = 1 << 30;

/// A read-only mapping of the data file plus its page-verification bitmap.
pub struct Mapping {
    map: memmap2::Mmap,
    page_size: usize,
    verified: Box<[AtomicU64]>,
}

impl Mapping {
    /// Maps `reserve` bytes of `file` (may exceed the file's length: pages past
    /// the end are never touched, see rule 2).
    pub fn new(file: &File, reserve: u64, page_size: usize) -> std::io::Result<Mapping> {
        debug_assert!(reserve.is_multiple_of(page_size as u64));
        let len =
            usize::try_from(reserve).map_err(|_| std::io::Error::other("reservation exceeds the address space"))?;
        // SAFETY: the file is locked exclusively by this process and never
        // truncated, and pages visible to readers are never rewritten while a
        // reader can see them (module rules 1-2); so the mapped bytes that
        // slices point to do not change underneath them.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        // Random point reads: read-ahead would only pull in pages nobody asked for.
        let _ = map.advise(memmap2::Advice::Random);
        let pages = reserve / page_size as u64;
        let words = pages.div_ceil(64) as usize;
        let verified = (0..words).map(|_| AtomicU64::new(0)).collect();
        Ok(Mapping { map, page_size, verified })
    }

    /// A larger mapping of the same file that keeps this one's verification bits.
    pub fn grown(&self, file: &File, reserve: u64) -> std::io::Result<Mapping> {
        let m = Mapping::new(file, reserve, self.page_size)?;
        for (new, old) in m.verified.iter().zip(self.verified.iter()) {
            new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        Ok(m)
    }

    /// Pages that fit in the reservation.
    pub fn reserved_pages(&self) -> u64 {
        (self.map.len() / self.page_size) as u64
    }

    /// The bytes of pages `[first, first + count)`, or `None` when outside the reservation.
    #[inline]
    pub fn pages(&self, first: u64, count: u64) -> Option<&[u8]> {
        let start = usize::try_from(first).ok()?.checked_mul(self.page_size)?;
        let len = usize::try_from(count).ok()?.checked_mul(self.page_size)?;
        self.map.get(start..start.checked_add(len)?)
    }

    /// True when page `id` passed its checksum earlier in this process.
    #[inline]
    pub fn is_verified(&self, id: u64) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        self.verified.get(w).is_some_and(|x| x.load(Ordering::Relaxed) & (1 << b) != 0)
    }

    /// Records pages `[first, first + count)` as verified.
    pub fn set_verified(&self, first: u64, count: u64) {
        for id in first..first + count {
            let (w, b) = ((id / 64) as usize, id % 64);
            if let Some(x) = self.verified.get(w) {
                x.fetch_or(1 << b, Ordering::Relaxed);
            }
        }
    }
}
