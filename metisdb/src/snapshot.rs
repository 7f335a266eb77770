//! Read views. A snapshot pins the newest committed tree state at the moment
//! it opened (so none of its pages can be reused while it lives) and reads a
//! chosen retained version through it: the newest directly, older versions
//! through the change history (see `history`). No lock is taken by reads.

use crate::btree::{self, Cursor, PageSource, TreeRoot};
use crate::db::{Committed, Db, Inner};
use crate::error::{Error, Result};
use crate::history::{self, ChangeSet, VersionRecord};
use crate::page;
use crate::tables::{self, Table};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A consistent read view of one version.
pub struct Snapshot {
    pub(crate) inner: Arc<Inner>,
    pub(crate) state: Arc<Committed>,
    version: Option<u64>,
    slot: usize,
    /// Change sets (first page, payload length) of the versions after
    /// `version`, oldest first; empty when reading the newest version.
    change_sets: Vec<(u64, u64)>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.inner.readers.unpin(self.slot);
    }
}

impl Db {
    /// A snapshot of `version` (the latest when `None`).
    pub fn snapshot(&self, version: Option<u64>) -> Result<Snapshot> {
        Snapshot::open(&self.inner, version)
    }
}

impl Snapshot {
    pub(crate) fn open(inner: &Arc<Inner>, version: Option<u64>) -> Result<Snapshot> {
        let (slot, pinned) = inner
            .readers
            .pin(|| inner.latest_seq.load(Ordering::SeqCst))
            .ok_or_else(|| Error::Limit(format!("{} snapshots are open", crate::readers::MAX_READERS)))?;
        // `committed` is published before `latest_seq`, so it holds the pinned
        // state or a newer one. A newer one is just as safe: the pin is older,
        // and pages of newer states are freed only by even newer commits.
        let state = inner.committed.load_full();
        debug_assert!(state.seq >= pinned);
        let mut snap = Snapshot { inner: inner.clone(), state, version: None, slot, change_sets: Vec::new() };
        let latest = snap.state.latest();
        let v = match (version, latest) {
            (None, l) => l,
            (Some(v), Some(l)) if v <= l && v >= snap.state.oldest => Some(v),
            (Some(v), _) => {
                return Err(Error::VersionNotRetained {
                    requested: v,
                    retained: match latest {
                        Some(l) => format!("{}..={l}", snap.state.oldest),
                        None => "none, the database is empty".into(),
                    },
                })
            }
        };
        inner.readers.set_requested(slot, v.unwrap_or(0));
        inner.metrics.snapshots.fetch_add(1, Ordering::Relaxed);
        snap.version = v;
        if let (Some(v), Some(l)) = (v, latest) {
            for u in v + 1..=l {
                let rec = snap.version_record(u)?.ok_or_else(|| {
                    snap.corrupt(snap.root(tables::VERSIONS).page, &format!("retained version {u} has no record"))
                })?;
                if rec.changes_page != 0 {
                    snap.change_sets.push((rec.changes_page, rec.changes_len));
                }
            }
        }
        Ok(snap)
    }

    /// The version this snapshot reads (`None` for an empty database).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The newest version when the snapshot opened.
    pub fn latest_version(&self) -> Option<u64> {
        self.state.latest()
    }

    /// True when reading the newest version (no history lookups).
    pub(crate) fn is_latest(&self) -> bool {
        self.version == self.state.latest()
    }

    pub(crate) fn root(&self, table: Table) -> TreeRoot {
        self.state.tables[table.index()]
    }

    /// Entries in `table` at the newest version (exact), as of this snapshot.
    pub fn latest_entries(&self, table: Table) -> u64 {
        self.root(table).entries
    }

    /// The record of a retained version.
    pub fn version_record(&self, version: u64) -> Result<Option<VersionRecord>> {
        let k = history::version_key(version);
        match btree::get(self, &self.root(tables::VERSIONS), &k)? {
            None => Ok(None),
            Some(b) => VersionRecord::decode(b)
                .map(Some)
                .ok_or_else(|| self.corrupt(self.root(tables::VERSIONS).page, "short version record")),
        }
    }

    /// State root of the snapshot's version (zero for an empty database).
    pub fn state_root(&self) -> Result<[u8; 32]> {
        if self.is_latest() {
            return Ok(self.state.state_root);
        }
        let v = self.version.expect("older versions exist only when a version exists");
        Ok(self.version_record(v)?.map(|r| r.state_root).unwrap_or_default())
    }

    /// Point read of `key` in `table` at the snapshot's version.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>> {
        self.inner.metrics.reads.add(1);
        if !self.is_latest() && table.versioned() {
            if let Some(old) = self.changed_after(table, key)? {
                return Ok(old);
            }
        }
        btree::get(self, &self.root(table), key)
    }

    /// A change set of a newer version, validated.
    fn change_set(&self, (page, len): (u64, u64)) -> Result<ChangeSet<'_>> {
        let payload = self.run_payload(page)?;
        if payload.len() as u64 != len {
            return Err(self.corrupt(page, "change set length differs from its version record"));
        }
        ChangeSet::parse(payload).map_err(|r| self.corrupt(page, r))
    }

    /// The old value recorded by the first commit after this version that
    /// changed `key`, if any did.
    pub(crate) fn changed_after(&self, table: Table, key: &[u8]) -> Result<Option<Option<&[u8]>>> {
        for &cs in &self.change_sets {
            let set = self.change_set(cs)?;
            if let Some(old) = set.get(table, key).map_err(|r| self.corrupt(cs.0, r))? {
                return Ok(Some(old));
            }
        }
        Ok(None)
    }

    /// Iterates `table` from the first key `>= start`, in key order.
    pub fn range(&self, table: Table, start: &[u8]) -> Result<Range<'_>> {
        self.inner.metrics.reads.add(1);
        let main = Cursor::seek(self, self.root(table), start)?;
        let overlays = self.overlays(table, start)?;
        Ok(Range { snap: self, main, main_head: None, overlays })
    }

    /// The change records of `table` from `start` on, one per version after
    /// this snapshot's, oldest first (none when reading the newest version).
    pub(crate) fn overlays(&self, table: Table, start: &[u8]) -> Result<Vec<Overlay<'_>>> {
        let mut overlays = Vec::new();
        if table.versioned() {
            for &cs in &self.change_sets {
                let set = self.change_set(cs)?;
                let next = set.lower_bound(table, start).map_err(|r| self.corrupt(cs.0, r))?;
                overlays.push(Overlay { set, page: cs.0, table, next, head: None });
            }
        }
        Ok(overlays)
    }
}

impl PageSource for Snapshot {
    #[inline]
    fn page(&self, id: u64) -> Result<&[u8]> {
        if id < self.inner.first_page || id >= self.state.page_count {
            return Err(self.corrupt(id, "page number outside the file"));
        }
        let map = &self.state.map;
        let p = map.pages(id, 1).ok_or_else(|| self.corrupt(id, "page outside the mapping"))?;
        if !map.is_verified(id) {
            if !page::verify_checksum(p, self.inner.salt, id) {
                return Err(self.corrupt(id, "checksum mismatch"));
            }
            map.set_verified(id, 1);
            self.inner.metrics.pages_verified.add(1);
        }
        Ok(p)
    }

    fn run_payload(&self, id: u64) -> Result<&[u8]> {
        if id < self.inner.first_page || id >= self.state.page_count {
            return Err(self.corrupt(id, "run starts outside the file"));
        }
        let map = &self.state.map;
        let first = map.pages(id, 1).ok_or_else(|| self.corrupt(id, "page outside the mapping"))?;
        let n = page::run_pages(first) as u64;
        if n == 0 || id + n > self.state.page_count {
            return Err(self.corrupt(id, "run extends past the file"));
        }
        let bytes = map.pages(id, n).ok_or_else(|| self.corrupt(id, "run outside the mapping"))?;
        if !map.is_verified(id) {
            if !page::verify_checksum(bytes, self.inner.salt, id) {
                return Err(self.corrupt(id, "checksum mismatch"));
            }
            map.set_verified(id, n);
            self.inner.metrics.pages_verified.add(n);
        }
        page::run_payload(bytes).map_err(|r| self.corrupt(id, r))
    }

    fn corrupt(&self, id: u64, reason: &str) -> Error {
        Error::Corrupt { path: self.inner.path.clone(), page: id, reason: reason.into() }
    }
}

/// The change records of one table in one newer version's change set, in key order.
pub(crate) struct Overlay<'a> {
    set: ChangeSet<'a>,
    page: u64,
    table: Table,
    next: usize,
    /// The next unconsumed (key, value before that version), once filled.
    head: Option<(&'a [u8], Option<&'a [u8]>)>,
}

impl<'a> Overlay<'a> {
    /// Moves to the next change of this table, if the head was consumed.
    fn fill(&mut self, snap: &Snapshot) -> Result<()> {
        if self.head.is_none() && self.next < self.set.len() {
            let e = self.set.entry(self.next).map_err(|r| snap.corrupt(self.page, r))?;
            if e.table == self.table {
                self.head = Some((e.key, e.old));
                self.next += 1;
            } else {
                self.next = self.set.len();
            }
        }
        Ok(())
    }
}

/// Iterator over a table at a snapshot's version: the tree merged with the
/// change records of the versions after it.
pub struct Range<'a> {
    snap: &'a Snapshot,
    main: Cursor<'a, Snapshot>,
    main_head: Option<(&'a [u8], &'a [u8])>,
    /// One per newer version, oldest first: the first with a key wins.
    overlays: Vec<Overlay<'a>>,
}

/// The next step of merging a tree with newer versions' change records.
pub(crate) enum Merged<'a> {
    /// Nothing is left.
    End,
    /// The tree's current key comes next, unchanged after this version.
    Tree,
    /// A newer version changed `key`: `old` is its value at this version
    /// (`None`: it did not exist then); `in_tree` says the tree's current
    /// entry is this key (superseded, to be skipped).
    Changed { key: &'a [u8], old: Option<&'a [u8]>, in_tree: bool },
}

/// Picks the smallest key among the tree's current one (`tree_key`) and the
/// overlays' heads (filled first), and consumes the overlay heads holding
/// it; the oldest overlay holding it has the value at this version.
pub(crate) fn merge_next<'a>(
    snap: &Snapshot,
    overlays: &mut [Overlay<'a>],
    tree_key: Option<&[u8]>,
) -> Result<Merged<'a>> {
    for o in overlays.iter_mut() {
        o.fill(snap)?;
    }
    let mut oldest: Option<(&'a [u8], Option<&'a [u8]>)> = None;
    for o in overlays.iter() {
        if let Some((k, old)) = o.head {
            if oldest.is_none_or(|(m, _)| k < m) {
                oldest = Some((k, old));
            }
        }
    }
    match (oldest, tree_key) {
        (None, None) => Ok(Merged::End),
        (Some((k, _)), Some(t)) if t < k => Ok(Merged::Tree),
        (None, Some(_)) => Ok(Merged::Tree),
        (Some((key, old)), t) => {
            for o in overlays.iter_mut() {
                if o.head.is_some_and(|(k, _)| k == key) {
                    o.head = None;
                }
            }
            Ok(Merged::Changed { key, old, in_tree: t == Some(key) })
        }
    }
}

impl<'a> Range<'a> {
    /// Next (key, value), or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>> {
        if self.overlays.is_empty() {
            return self.main.next();
        }
        loop {
            if self.main_head.is_none() {
                self.main_head = self.main.next()?;
            }
            match merge_next(self.snap, &mut self.overlays, self.main_head.map(|(k, _)| k))? {
                Merged::End => return Ok(None),
                Merged::Tree => return Ok(self.main_head.take()),
                Merged::Changed { key, old, in_tree } => {
                    if in_tree {
                        self.main_head = None;
                    }
                    if let Some(v) = old {
                        return Ok(Some((key, v)));
                    }
                }
            }
        }
    }
}
