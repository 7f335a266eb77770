//! `Db::stats`: cheap figures for operators and metrics (no page walk).

use crate::db::{Db, Durability};
use crate::error::{Error, Result};
use crate::readers::ReaderInfo;
use crate::tables;

/// Entries and height of one table.
#[derive(Clone, Debug)]
pub struct TableStats {
    /// Table name.
    pub name: &'static str,
    /// Entries.
    pub entries: u64,
    /// Levels (0 = empty).
    pub depth: u8,
}

/// A summary of a database's state.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Page size.
    pub page_size: usize,
    /// Bytes in the data file.
    pub file_len: u64,
    /// Pages in use by the file (high-water mark).
    pub page_count: u64,
    /// Pages ready for reuse.
    pub free_pages: u64,
    /// Pages freed but still visible to a reader or to the durable meta.
    pub quarantined_pages: u64,
    /// Runs of consecutive free pages.
    pub free_extents: u64,
    /// Longest run of free pages.
    pub largest_free_extent: u64,
    /// Newest version.
    pub latest_version: Option<u64>,
    /// Newest version on stable storage.
    pub durable_version: Option<u64>,
    /// Oldest retained version.
    pub oldest_version: u64,
    /// Retention window (versions).
    pub retention: u32,
    /// Per table.
    pub tables: Vec<TableStats>,
    /// Snapshots open in this process.
    pub live_readers: usize,
    /// The oldest of them.
    pub oldest_reader: Option<ReaderInfo>,
    /// Storage backend.
    pub backend: &'static str,
    /// Durability mode.
    pub durability: Durability,
}

impl Stats {
    /// Pages holding live data (including the meta pages and the free list itself).
    pub fn used_pages(&self) -> u64 {
        self.page_count - self.free_pages - self.quarantined_pages
    }
}

impl Db {
    /// Current figures.
    pub fn stats(&self) -> Result<Stats> {
        let w = self.inner.writer.lock().map_err(|_| Error::Poisoned { cause: "a writer panicked".into() })?;
        let c = self.inner.committed.load_full();
        let (free_extents, largest) = w.alloc.extents();
        let (live_readers, oldest_reader) = self.inner.readers.summary();
        Ok(Stats {
            page_size: self.inner.page_size,
            file_len: w.file_len,
            page_count: w.alloc.page_count(),
            free_pages: w.alloc.free_len() as u64,
            quarantined_pages: w.alloc.quarantined_len() as u64,
            free_extents: free_extents as u64,
            largest_free_extent: largest,
            latest_version: c.latest(),
            durable_version: w.durable_version,
            oldest_version: c.oldest,
            retention: w.retention,
            tables: tables::ALL
                .iter()
                .map(|i| {
                    let r = c.tables[i.table.index()];
                    TableStats { name: i.name, entries: r.entries, depth: if r.is_empty() { 0 } else { r.level + 1 } }
                })
                .collect(),
            live_readers,
            oldest_reader,
            backend: self.inner.storage.name(),
            durability: self.inner.options.durability,
        })
    }
}
