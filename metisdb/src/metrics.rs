//! Engine counters and gauges, read by `Db::metrics` and exported by the node.

use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 16;

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter split over cache lines so that reader threads do not contend.
#[derive(Default)]
pub struct StripedCounter {
    stripes: [Padded; STRIPES],
}

thread_local! {
    static STRIPE: usize = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::thread::current().id().hash(&mut h);
        (h.finish() as usize) % STRIPES
    };
}

impl StripedCounter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        let i = STRIPE.with(|s| *s);
        self.stripes[i].0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current total.
    pub fn get(&self) -> u64 {
        self.stripes.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// Counters kept by a database handle.
#[derive(Default)]
pub struct Metrics {
    /// Point reads and range-iteration starts.
    pub reads: StripedCounter,
    /// Pages whose checksum was verified on first access.
    pub pages_verified: StripedCounter,
    /// Snapshots opened.
    pub snapshots: AtomicU64,
    /// Commits completed.
    pub commits: AtomicU64,
    /// Durable points (meta pages written).
    pub durable_points: AtomicU64,
    /// Pages written.
    pub pages_written: AtomicU64,
    /// Live pages moved by cleaning (to empty whole segments).
    pub pages_relocated: AtomicU64,
    /// Bytes written (pages, runs, free list, metas).
    pub bytes_written: AtomicU64,
    /// Nanoseconds spent preparing commits (history, pruning, cleaning, placement).
    pub commit_prepare_ns: AtomicU64,
    /// Nanoseconds spent sealing (reference patches, checksums) and writing
    /// pages, which overlap for large commits.
    pub commit_write_ns: AtomicU64,
    /// Nanoseconds spent in data syncs.
    pub commit_sync_ns: AtomicU64,
    /// Nanoseconds spent writing and syncing meta pages.
    pub commit_meta_ns: AtomicU64,
}

/// A point-in-time copy of the counters and gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`Metrics::reads`].
    pub reads: u64,
    /// See [`Metrics::pages_verified`].
    pub pages_verified: u64,
    /// See [`Metrics::snapshots`].
    pub snapshots: u64,
    /// See [`Metrics::commits`].
    pub commits: u64,
    /// See [`Metrics::durable_points`].
    pub durable_points: u64,
    /// See [`Metrics::pages_written`].
    pub pages_written: u64,
    /// See [`Metrics::pages_relocated`].
    pub pages_relocated: u64,
    /// See [`Metrics::bytes_written`].
    pub bytes_written: u64,
    /// See [`Metrics::commit_prepare_ns`].
    pub commit_prepare_ns: u64,
    /// See [`Metrics::commit_write_ns`].
    pub commit_write_ns: u64,
    /// See [`Metrics::commit_sync_ns`].
    pub commit_sync_ns: u64,
    /// See [`Metrics::commit_meta_ns`].
    pub commit_meta_ns: u64,
}

impl Metrics {
    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            reads: self.reads.get(),
            pages_verified: self.pages_verified.get(),
            snapshots: l(&self.snapshots),
            commits: l(&self.commits),
            durable_points: l(&self.durable_points),
            pages_written: l(&self.pages_written),
            pages_relocated: l(&self.pages_relocated),
            bytes_written: l(&self.bytes_written),
            commit_prepare_ns: l(&self.commit_prepare_ns),
            commit_write_ns: l(&self.commit_write_ns),
            commit_sync_ns: l(&self.commit_sync_ns),
            commit_meta_ns: l(&self.commit_meta_ns),
        }
    }
}
