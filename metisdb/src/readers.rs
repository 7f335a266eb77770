//! Reader slots: each live snapshot publishes the version whose pages it
//! reads, so the writer knows which freed pages it may reuse. Registering
//! and reading are lock-free; a slow reader delays page reuse, never a commit.
//!
//! Publication protocol (a Dekker-style store/load pair on both sides, with
//! a SeqCst fence between them): the reader stores its pin, then re-reads
//! the latest version and retries if it moved; the writer stores the new
//! latest version, then scans pins. Either the writer sees the pin, or the
//! reader sees the new version. A loom model checks it (tests below; run
//! with `RUSTFLAGS="--cfg loom"`).

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const FREE: u64 = u64::MAX;

/// Maximum number of snapshots alive at once.
#[cfg(not(loom))]
pub const MAX_READERS: usize = 4096;
/// Maximum number of snapshots alive at once (few: loom explores every
/// interleaving of every slot it touches).
#[cfg(loom)]
pub const MAX_READERS: usize = 2;

#[repr(align(64))]
struct Slot {
    pinned: AtomicU64,
    requested: AtomicU64,
    since_ms: AtomicU64,
}

/// The reader table.
pub struct Readers {
    slots: Box<[Slot]>,
}

/// The oldest live reader, for stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Version whose pages it pins.
    pub pinned: u64,
    /// Version it reads.
    pub requested: u64,
    /// Milliseconds since it opened.
    pub age_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Default for Readers {
    fn default() -> Self {
        let slots = (0..MAX_READERS)
            .map(|_| Slot { pinned: AtomicU64::new(FREE), requested: AtomicU64::new(0), since_ms: AtomicU64::new(0) })
            .collect();
        Readers { slots }
    }
}

impl Readers {
    /// Claims a slot pinning a version that `latest()` confirms is current.
    /// Returns the slot and the pinned version.
    pub fn pin(&self, latest: impl Fn() -> u64) -> Option<(usize, u64)> {
        let mut v = latest();
        let start = thread_hint() % MAX_READERS;
        let slot = (0..MAX_READERS)
            .map(|i| (start + i) % MAX_READERS)
            .find(|&i| self.slots[i].pinned.compare_exchange(FREE, v, Ordering::SeqCst, Ordering::Relaxed).is_ok())?;
        loop {
            // The pin is visible before the latest version is read again
            // (the writer fences between its publication and its scan).
            fence(Ordering::SeqCst);
            let now = latest();
            if now == v {
                break;
            }
            v = now;
            self.slots[slot].pinned.store(v, Ordering::SeqCst);
        }
        self.slots[slot].since_ms.store(now_ms(), Ordering::Relaxed);
        Some((slot, v))
    }

    /// Records which version the reader of `slot` reads (for stats).
    pub fn set_requested(&self, slot: usize, version: u64) {
        self.slots[slot].requested.store(version, Ordering::Relaxed);
    }

    /// Releases a slot.
    pub fn unpin(&self, slot: usize) {
        self.slots[slot].pinned.store(FREE, Ordering::SeqCst);
    }

    /// Lowest pinned commit sequence number, if any reader is live.
    pub fn min_pinned(&self) -> Option<u64> {
        fence(Ordering::SeqCst);
        self.slots.iter().map(|s| s.pinned.load(Ordering::SeqCst)).filter(|&p| p != FREE).min()
    }

    /// Number of live readers and the oldest one.
    pub fn summary(&self) -> (usize, Option<ReaderInfo>) {
        let now = now_ms();
        let mut n = 0;
        let mut oldest: Option<ReaderInfo> = None;
        for s in self.slots.iter() {
            let p = s.pinned.load(Ordering::Relaxed);
            if p == FREE {
                continue;
            }
            n += 1;
            let r = ReaderInfo {
                pinned: p,
                requested: s.requested.load(Ordering::Relaxed),
                age_ms: now.saturating_sub(s.since_ms.load(Ordering::Relaxed)),
            };
            if oldest
                .is_none_or(|o| (r.requested, std::cmp::Reverse(r.age_ms)) < (o.requested, std::cmp::Reverse(o.age_ms)))
            {
                oldest = Some(r);
            }
        }
        (n, oldest)
    }
}

fn thread_hint() -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() as usize
}

/// The protocol under every interleaving loom allows: a writer publishes
/// version 2 and then decides from the pins whether the pages of version 1
/// may be reused, while a reader pins a version and reads it. The reader
/// must never be left reading version 1 once the writer reuses its pages.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn a_pinned_version_is_never_reused_under_its_reader() {
        loom::model(|| {
            let latest = Arc::new(AtomicU64::new(1));
            let readers = Arc::new(Readers::default());
            let reader = {
                let (latest, readers) = (latest.clone(), readers.clone());
                loom::thread::spawn(move || {
                    let (_slot, version) = readers.pin(|| latest.load(Ordering::SeqCst)).expect("a free slot");
                    version
                })
            };
            latest.store(2, Ordering::SeqCst);
            let reuses_version_1 = readers.min_pinned().is_none_or(|pinned| pinned > 1);
            let read = reader.join().expect("reader");
            assert!(!(read == 1 && reuses_version_1), "the reader reads version 1 while its pages are reused");
        });
    }
}
