//! Write transactions and the commit protocol.
//!
//! Commit order (docs/file-format.md, "Commit protocol"):
//! 1. append the change records and the version record; prune history that
//!    fell out of the retention window;
//! 2. give every dirty page a page number (as few, as contiguous runs as the
//!    free space allows) and patch references, seal checksums;
//! 3. write the pages; at a durable point also the free list, then
//!    `fsync` (if the file grew) or `fdatasync`, then the meta page into the
//!    slot not holding the newest meta, then `fdatasync`;
//! 4. publish the new version to readers.
//!
//! Any I/O failure poisons the handle: the page cache can no longer be
//! trusted (a failed fsync may have dropped dirty pages), so only a reopen,
//! which reads what is really on disk, may continue.

use crate::alloc::{Stream, SEGMENT_PAGES};
use crate::btree::leaf::{self, ValueRef};
use crate::btree::write::{is_temp, patch_refs, Dirty, NewValue, TreeWriter, RUN_BIT, TEMP_BIT};
use crate::btree::{self, branch, Cursor, PageSource, TreeRoot};
use crate::db::{Committed, Db, Durability, Inner, WriterState};
use crate::error::{Error, Result};
use crate::history::{self, VersionRecord};
use crate::meta::{self, Meta, MAX_TABLES};
use crate::mmap::Mapping;
use crate::page::{self, PageKind, RunKind};
use crate::snapshot::Snapshot;
use crate::storage::{GatherOp, WriteOp};
use crate::tables::{self, Table};
use std::collections::btree_map::{Entry, VacantEntry};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 512;
/// Largest value accepted.
pub const MAX_VALUE_LEN: usize = 256 << 20;

/// What a commit records about its version besides the data.
#[derive(Clone, Debug, Default)]
pub struct CommitInfo {
    /// State root of the new version.
    pub state_root: [u8; 32],
    /// Caller-defined bytes stored with the version (block number, hash...).
    pub extra: Vec<u8>,
}

/// The single write transaction of a database. Dropping it without
/// `commit` discards every change (nothing reached the file).
pub struct WriteTxn<'db> {
    db: &'db Db,
    w: MutexGuard<'db, WriterState>,
    base: Snapshot,
    dirty: Dirty,
    tables: [TreeRoot; MAX_TABLES],
    /// Old values of versioned keys, captured at first change, one map per
    /// table (by index): edits made apart bring their table's whole map,
    /// which then takes the place of an empty one instead of being merged
    /// key by key into the others'.
    changes: [ChangeMap; MAX_TABLES],
    /// Runs placed and built outside the trees (the change set): (first page, bytes).
    extra_runs: Vec<(u64, Vec<u8>)>,
    /// Commit as this version and drop every older one (see [`WriteTxn::rebase`]).
    rebase: Option<u64>,
}

impl Db {
    /// Starts the write transaction for the next version. Waits for a
    /// running write transaction of another thread to finish.
    pub fn begin_write(&self) -> Result<WriteTxn<'_>> {
        if let Some(found) = self.inner.older_format {
            let path = self.inner.path.clone();
            return Err(Error::UnsupportedFormat { path, found, supported: crate::meta::FORMAT_VERSION });
        }
        let mut w = self.inner.writer.lock().map_err(|_| Error::Poisoned { cause: "a writer panicked".into() })?;
        if let Some(cause) = &w.poisoned {
            return Err(Error::Poisoned { cause: cause.clone() });
        }
        // Reuse gate: pages freed by the commit that made state `s` are still
        // visible in state `s - 1`; they may be reused once every reader pins
        // state `s` or newer and the meta of a state `>= s` is durable.
        let readers = self.inner.readers.min_pinned().unwrap_or(u64::MAX);
        let gate = w.durable_seq.min(readers);
        w.alloc.release(gate);
        let base = Snapshot::open(&self.inner, None)?;
        let tables = base.state.tables;
        let version = base.state.latest().map_or(0, |v| v + 1);
        let spare_pages = std::mem::take(&mut w.spare_pages);
        Ok(WriteTxn {
            db: self,
            w,
            dirty: Dirty::with_spare_pages(self.inner.page_size, version, spare_pages),
            base,
            tables,
            changes: [const { BTreeMap::new() }; MAX_TABLES],
            extra_runs: Vec::new(),
            rebase: None,
        })
    }

    /// Makes every committed version durable now (async durability).
    pub fn flush(&self) -> Result<()> {
        let mut w = self.inner.writer.lock().map_err(|_| Error::Poisoned { cause: "a writer panicked".into() })?;
        if let Some(cause) = &w.poisoned {
            return Err(Error::Poisoned { cause: cause.clone() });
        }
        let c = self.inner.committed.load_full();
        if w.durable_seq == c.seq {
            return Ok(());
        }
        let res = durable_point(&self.inner, &mut w, &c);
        poison_on_error(&mut w, res)
    }
}

fn check_table(t: Table) -> Result<()> {
    match tables::info(t) {
        Some(_) if t != tables::VERSIONS => Ok(()),
        _ => Err(Error::InvalidOption(format!("table id {} is not a user table", t.0))),
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::TooLarge { what: "key", len: key.len(), limit: MAX_KEY_LEN });
    }
    Ok(())
}

impl<'db> WriteTxn<'db> {
    /// The version this transaction will commit.
    pub fn version(&self) -> u64 {
        self.dirty.version()
    }

    /// Chooses the version number of the first commit of an empty database
    /// (default 0). Must be called before any change.
    pub fn set_first_version(&mut self, version: u64) -> Result<()> {
        if self.base.state.latest().is_some() {
            return Err(Error::InvalidOption("the first version is fixed once a version exists".into()));
        }
        if !self.dirty.pages.is_empty() || !self.dirty.runs.is_empty() {
            return Err(Error::InvalidOption("set the first version before any change".into()));
        }
        self.dirty.set_version(version);
        Ok(())
    }

    /// Makes this commit version `version` and drops every older version:
    /// no history is recorded and older snapshots can no longer be opened
    /// (open ones keep working). Used by imports, whose intermediate commits
    /// are not versions anyone should read.
    pub fn rebase(&mut self, version: u64) {
        self.rebase = Some(version);
        self.changes.iter_mut().for_each(BTreeMap::clear);
    }

    /// The parent version (the newest committed one), as a snapshot.
    pub fn parent(&self) -> &Snapshot {
        &self.base
    }

    /// Entries currently in `table` (including this transaction's changes).
    pub fn entries(&self, table: Table) -> u64 {
        self.tables[table.index()].entries
    }

    /// Old values are recorded for versioned tables, except in the first
    /// version: there is no older version to read them.
    fn tracks_history(&self, table: Table) -> bool {
        table.versioned() && self.base.state.latest().is_some() && self.rebase.is_none()
    }

    fn writer(&mut self, table: Table) -> TreeWriter<'_, Snapshot> {
        tree_writer(&self.base, &mut self.dirty, table)
    }

    fn table_write(&mut self, table: Table) -> TableWrite<'_> {
        let history = self.tracks_history(table);
        TableWrite {
            base: &self.base,
            dirty: &mut self.dirty,
            root: &mut self.tables[table.index()],
            changes: &mut self.changes[table.index()],
            table,
            history,
        }
    }

    fn put_raw(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.table_write(table).put(key, value)
    }

    fn delete_raw(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        self.table_write(table).delete(key)
    }

    /// Starts edits of `table` that are built apart from this transaction
    /// (in their own dirty pages) while it stays readable, so that other
    /// threads can read the transaction during the edits. `None` if this
    /// transaction already changed the table: the edits start from the
    /// parent's tree. [`WriteTxn::merge_apart`] takes the edits in.
    pub fn edit_apart(&self, table: Table) -> Result<Option<TableEdit<'_>>> {
        self.edit_apart_with(table, SparePages::default())
    }

    /// Up to `pages` page buffers that this writer kept from its last
    /// commit, for [`WriteTxn::edit_apart_with`]: edits apart then copy
    /// pages into buffers already faulted in, as the transaction does.
    pub fn lend_spare_pages(&mut self, pages: usize) -> SparePages {
        SparePages(self.dirty.lend_spare_pages(pages))
    }

    /// [`WriteTxn::edit_apart`] with page buffers lent by
    /// [`WriteTxn::lend_spare_pages`] (merging the edits gives back what
    /// they did not use).
    pub fn edit_apart_with(&self, table: Table, spare: SparePages) -> Result<Option<TableEdit<'_>>> {
        check_table(table)?;
        if !self.is_untouched(table) {
            return Ok(None);
        }
        Ok(Some(TableEdit {
            base: &self.base,
            history: self.tracks_history(table),
            edits: ApartEdits {
                table,
                root: self.tables[table.index()],
                dirty: Dirty::with_spare_pages(self.dirty.page_size(), self.dirty.version(), spare.0),
                changes: BTreeMap::new(),
            },
        }))
    }

    /// Takes in the edits of [`WriteTxn::edit_apart`]. Fails, changing
    /// nothing, if the table was changed here since the edits started.
    pub fn merge_apart(&mut self, edits: ApartEdits) -> Result<()> {
        let ApartEdits { table, mut root, dirty, changes } = edits;
        if !self.is_untouched(table) || dirty.version() != self.dirty.version() {
            return Err(Error::InvalidOption(format!(
                "table {} changed in the transaction while edited apart",
                table.0
            )));
        }
        root.page = self.dirty.absorb(dirty).id(root.page);
        self.tables[table.index()] = root;
        debug_assert!(self.changes[table.index()].is_empty(), "an untouched table has no changes");
        self.changes[table.index()] = changes;
        Ok(())
    }

    /// Whether this transaction left `table` as the parent has it (so
    /// that [`WriteTxn::edit_apart`] can edit it).
    pub fn is_untouched(&self, table: Table) -> bool {
        self.tables[table.index()] == self.base.state.tables[table.index()] && self.changes[table.index()].is_empty()
    }

    /// Inserts or replaces `key` in `table`.
    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        check_table(table)?;
        check_key(key)?;
        self.put_raw(table, key, value)
    }

    /// Inserts or replaces `key` in `table` and returns its previous value,
    /// with one descent of the tree (a [`WriteTxn::get`] before a
    /// [`WriteTxn::put`] takes two).
    pub fn replace(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        check_table(table)?;
        check_key(key)?;
        self.table_write(table).put_returning(key, value, true)
    }

    /// Deletes `key` from `table`; returns whether it existed.
    pub fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        check_table(table)?;
        check_key(key)?;
        self.delete_raw(table, key)
    }

    /// Reads `key` as this transaction sees it.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>> {
        btree::get(self, &self.tables[table.index()], key)
    }

    /// Iterates `table` from the first key `>= start`, as this transaction sees it.
    pub fn range(&self, table: Table, start: &[u8]) -> Result<Cursor<'_, Self>> {
        Cursor::seek(self, self.tables[table.index()], start)
    }

    /// Deletes every key of `table` in `[start, end)`; returns how many.
    /// Works in bounded batches, so wiping a large range never holds all its keys in memory.
    pub fn delete_range(&mut self, table: Table, start: &[u8], end: &[u8]) -> Result<u64> {
        check_table(table)?;
        const BATCH: usize = 4096;
        let mut total = 0;
        loop {
            let mut keys = Vec::with_capacity(BATCH);
            {
                let mut c = self.range(table, start)?;
                while keys.len() < BATCH {
                    match c.next()? {
                        Some((k, _)) if k < end => keys.push(k.to_vec()),
                        _ => break,
                    }
                }
            }
            if keys.is_empty() {
                return Ok(total);
            }
            for k in &keys {
                self.delete_raw(table, k)?;
            }
            total += keys.len() as u64;
        }
    }

    /// Commits: the changes become version `self.version()`. Returns that version.
    pub fn commit(mut self, info: CommitInfo) -> Result<u64> {
        let t0 = Instant::now();
        let version = self.rebase.unwrap_or(self.version());
        let ps = self.dirty.page_size();
        if self.rebase.is_some() {
            self.drop_versions(None)?;
        }
        // 1. The change set and the version record.
        let changes = std::mem::replace(&mut self.changes, [const { BTreeMap::new() }; MAX_TABLES]);
        let n_changes = changes.iter().map(BTreeMap::len).sum::<usize>() as u64;
        let (changes_page, changes_len) = if n_changes == 0 {
            (0, 0)
        } else {
            // Encoded in place, after room for the run's header.
            let mut run = std::mem::take(&mut self.w.spare_run);
            run.clear();
            run.resize(page::RUN_PAYLOAD_OFFSET, 0);
            history::encode_change_set_into(
                &mut run,
                // Tables in order, so the set is in (table, key) order.
                changes
                    .iter()
                    .enumerate()
                    .flat_map(|(t, map)| map.iter().map(move |(key, old)| (Table(t as u8), &key[..], old.as_deref()))),
            );
            drop(changes);
            let len = run.len() - page::RUN_PAYLOAD_OFFSET;
            let first = self.w.alloc.alloc_run(Stream::Log, page::pages_for_run(len, ps));
            seal_run(&mut run, RunKind::Changes, tables::VERSIONS.0, ps, self.db.inner.salt, first, version);
            self.extra_runs.push((first, run));
            (first, len as u64)
        };
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let rec = VersionRecord {
            state_root: info.state_root,
            timestamp_ms: ts,
            changes: n_changes,
            changes_page,
            changes_len,
            extra: info.extra,
        };
        self.put_raw(tables::VERSIONS, &history::version_key(version), &rec.encode())?;
        let oldest = if self.rebase.is_some() { version } else { self.prune(version)? };
        self.clean()?;
        // 2-4. Placement, I/O, publication.
        let inner = self.db.inner.clone();
        let res = self.finish(&inner, version, oldest, info.state_root, t0);
        poison_on_error(&mut self.w, res)?;
        inner.metrics.commits.fetch_add(1, Ordering::Relaxed);
        Ok(version)
    }

    /// Cleaning: moves the live pages of the emptiest segments into this
    /// commit, so that those segments become whole free segments again and
    /// commits keep writing sequentially without growing the file. A steady
    /// quarter of the commit's own pages, rising to as many as the commit
    /// writes as free segments run short (or when the file is more than
    /// twice its live pages). Every moved page is one more write and the
    /// file is never shortened, so compacting a looser file costs commit
    /// time and returns no space: 2x trades file size for commit time
    /// (docs/benchmarks.md).
    fn clean(&mut self) -> Result<()> {
        let need = self.dirty.live_counts().0 as u64;
        let (live, size) = (self.w.alloc.live_pages(), self.w.alloc.page_count());
        let spare = self.w.alloc.free_segments() as u64 * SEGMENT_PAGES;
        // Between two commits' worth of free segments and one the budget
        // ramps up from a quarter to all of the commit's pages: a step at
        // two made commits alternate between cleaning a lot and a little.
        let budget = if size > 2 * live || spare <= need {
            need.max(4 * SEGMENT_PAGES)
        } else {
            need / 4 + (2 * need).saturating_sub(spare) * 3 / 4
        };
        // Pages at or past the parent's end of file were allocated by this
        // commit (its change set): they hold nothing to move, and reading
        // them through the map would fault past the end of the file.
        let file_pages = self.base.state.page_count;
        for seg in self.w.alloc.victims(budget) {
            let (mut p, end) = (seg * SEGMENT_PAGES, ((seg + 1) * SEGMENT_PAGES).min(file_pages));
            while p < end {
                if self.w.alloc.is_free(p) {
                    p += 1;
                    continue;
                }
                match self.relocate(p)? {
                    Some(pages) => p += pages,
                    None => {
                        self.w.alloc.mark_unmovable(seg);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves the tree page or value run at `p` if it is live. Returns the
    /// pages it spans, or `None` when it cannot be moved (a change set or
    /// free list, or bytes that are not the start of a page of ours).
    fn relocate(&mut self, p: u64) -> Result<Option<u64>> {
        assert!(p < self.base.state.page_count, "relocating page {p} past the end of the file");
        let map = self.base.state.map.clone();
        let Some(first) = map.pages(p, 1) else { return Ok(None) };
        if page::kind(first) == Some(PageKind::Run) {
            return self.relocate_run(p, &map);
        }
        if !page::verify_checksum(first, self.db.inner.salt, p) {
            return Ok(None);
        }
        let table = Table(first[page::TABLE_BYTE]);
        let (level, key) = match page::kind(first) {
            Some(PageKind::Leaf) => match leaf::key(first, 0) {
                Ok(k) if leaf::count(first) > 0 => (0, k.to_vec()),
                _ => return Ok(None),
            },
            Some(PageKind::Branch) if branch::level(first) > 0 => (branch::level(first), self.first_key_below(first)?),
            _ => return Ok(None),
        };
        if tables::info(table).is_none() {
            return Ok(None);
        }
        let mut root = self.tables[table.index()];
        let mut w = self.writer(table);
        // An old copy that a commit already replaced is not live: nothing to move.
        if w.touch_at(&mut root, &key, level, p)? {
            self.tables[table.index()] = root;
            self.db.inner.metrics.pages_relocated.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(1))
    }

    /// [`Self::relocate`] for a run starting at `p`: value runs name their
    /// key, so the leaf pointing at them can be found and repointed.
    fn relocate_run(&mut self, p: u64, map: &crate::mmap::Mapping) -> Result<Option<u64>> {
        let Some(first) = map.pages(p, 1) else { return Ok(None) };
        let n = page::run_pages(first) as u64;
        if n == 0 || p + n > self.base.state.page_count || first[9] != RunKind::Value as u8 {
            return Ok(None);
        }
        let Some(bytes) = map.pages(p, n) else { return Ok(None) };
        if !page::verify_checksum(bytes, self.db.inner.salt, p) {
            return Ok(None);
        }
        let len = page::get_u64(bytes, page::RUN_LEN_OFFSET) as usize;
        let Some(payload) = bytes.get(page::RUN_PAYLOAD_OFFSET..page::RUN_PAYLOAD_OFFSET + len) else {
            return Ok(None);
        };
        let Some((key, _)) = crate::btree::split_value_run(payload) else { return Ok(None) };
        let table = Table(first[page::TABLE_BYTE]);
        if tables::info(table).is_none() {
            return Ok(None);
        }
        let mut root = self.tables[table.index()];
        let view = crate::btree::write::TxnPages { base: &self.base, dirty: &self.dirty };
        let points_here = match view.leaf_value_ref(&root, key)? {
            Some(ValueRef::Run { page, .. }) => page == p,
            _ => false,
        };
        if points_here {
            let mut w = self.writer(table);
            let leaf_id = w.touch(&mut root, key, 0)?.expect("the tree holds the key");
            let moved = self.dirty.move_value_run(leaf_id, key, p, table.0, payload);
            debug_assert!(moved, "the dirty leaf still points at the run");
            self.tables[table.index()] = root;
            self.db.inner.metrics.pages_relocated.fetch_add(n, Ordering::Relaxed);
        }
        Ok(Some(n))
    }

    /// The smallest key under a branch page (its leftmost leaf's first key).
    fn first_key_below(&self, page: &[u8]) -> Result<Vec<u8>> {
        let (mut id, mut level) = (branch::child(page, 0), branch::level(page) - 1);
        for _ in 0..crate::btree::MAX_DEPTH {
            let p = crate::btree::node(self, id, level)?;
            if level == 0 {
                return Ok(leaf::key(p, 0).map_err(|m| self.corrupt(id, m.0))?.to_vec());
            }
            id = branch::child(p, 0);
            level -= 1;
        }
        Err(self.corrupt(id, "tree deeper than the limit"))
    }

    /// Drops versions older than the retention window (their records and
    /// change sets); returns the new oldest version.
    fn prune(&mut self, version: u64) -> Result<u64> {
        // The first version of a database is its oldest.
        let oldest = if self.base.state.latest().is_none() { version } else { self.base.state.oldest };
        let keep = self.w.retention as u64;
        let new_oldest = (version + 1).saturating_sub(keep).max(oldest);
        if new_oldest > oldest {
            self.drop_versions(Some(new_oldest))?;
        }
        Ok(new_oldest)
    }

    /// Deletes the records and frees the change sets of the versions below
    /// `below` (all versions when `None`).
    fn drop_versions(&mut self, below: Option<u64>) -> Result<()> {
        let ps = self.dirty.page_size();
        let end = below.map(history::version_key);
        loop {
            let mut batch: Vec<(Vec<u8>, VersionRecord)> = Vec::new();
            {
                let mut c = self.range(tables::VERSIONS, &[])?;
                while batch.len() < 1024 {
                    match c.next()? {
                        Some((k, v)) if end.is_none_or(|e| k < &e[..]) => {
                            let rec = VersionRecord::decode(v).ok_or_else(|| {
                                self.corrupt(self.tables[tables::VERSIONS.index()].page, "short version record")
                            })?;
                            batch.push((k.to_vec(), rec));
                        }
                        _ => break,
                    }
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
            for (k, rec) in batch {
                if rec.changes_page != 0 {
                    self.dirty.free_committed_run(rec.changes_page, page::pages_for_run(rec.changes_len as usize, ps));
                }
                self.delete_raw(tables::VERSIONS, &k)?;
            }
        }
    }

    fn finish(
        &mut self,
        inner: &Arc<Inner>,
        version: u64,
        oldest: u64,
        state_root: [u8; 32],
        t0: Instant,
    ) -> Result<()> {
        let ps = inner.page_size;
        let salt = inner.salt;
        let w = &mut *self.w;
        // Placement: pages first (lowest free numbers), then runs (contiguous).
        // Hot and cold pages fill segments of their own, sequentially, each
        // in key order.
        let live = self.dirty.in_key_order(&self.tables);
        let (hot, cold): (Vec<usize>, Vec<usize>) = live.iter().partition(|&&i| self.dirty.hot[i]);
        let hot_ids = w.alloc.alloc(Stream::Hot, hot.len());
        let cold_ids = w.alloc.alloc(Stream::Cold, cold.len());
        let mut page_map = vec![0u64; self.dirty.pages.len()];
        for (&idx, id) in hot.iter().zip(hot_ids).chain(cold.iter().zip(cold_ids)) {
            page_map[idx] = id;
        }
        let mut run_map = vec![0u64; self.dirty.runs.len()];
        for (idx, r) in self.dirty.runs.iter().enumerate() {
            if let Some((_, _, payload)) = r {
                run_map[idx] = w.alloc.alloc_run(Stream::Values, page::pages_for_run(payload.len(), ps));
            }
        }
        let map_id = |id: u64| -> u64 {
            if !is_temp(id) {
                id
            } else if id & RUN_BIT != 0 {
                run_map[(id & !(TEMP_BIT | RUN_BIT)) as usize]
            } else {
                page_map[(id & !TEMP_BIT) as usize]
            }
        };
        for t in self.tables.iter_mut() {
            t.page = map_id(t.page);
        }
        // Leaves refer to runs, and only this commit's runs have temporary
        // ids: without any, patching the leaves would scan every cell of
        // every leaf and change nothing.
        let leaves_refer_to_new_runs = self.dirty.runs.iter().any(Option::is_some);
        let mut run_bufs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (idx, r) in self.dirty.runs.iter().enumerate() {
            if let Some((kind, table, payload)) = r {
                run_bufs.push((run_map[idx], build_run(*kind, *table, payload, ps, salt, run_map[idx], version)));
            }
        }
        let runs: Vec<(u64, &[u8])> = run_bufs.iter().chain(&self.extra_runs).map(|(id, b)| (*id, &b[..])).collect();
        let mut written: Vec<(u64, u64)> = runs.iter().map(|(id, b)| (*id, (b.len() / ps) as u64)).collect();
        let pages: Vec<(u64, u8, &mut [u8])> = self
            .dirty
            .pages
            .iter_mut()
            .zip(&self.dirty.table)
            .zip(&page_map)
            .filter_map(|((page, &table), &id)| page.as_deref_mut().map(|buf| (id, table, buf)))
            .collect();
        written.extend(pages.iter().map(|(id, _, _)| (*id, 1)));
        let seq = self.base.state.seq + 1;
        w.alloc.quarantine(seq, std::mem::take(&mut self.dirty.freed));
        let page_count = w.alloc.page_count();
        let t_prep = t0.elapsed();
        // Patch references, seal and write the pages.
        let t1 = Instant::now();
        grow_file(inner, w, page_count)?;
        let seal = |id: u64, table: u8, buf: &mut [u8]| {
            if leaves_refer_to_new_runs || page::kind(buf) != Some(PageKind::Leaf) {
                patch_refs(buf, map_id);
            }
            buf[page::TABLE_BYTE] = table;
            page::seal(buf, salt, id);
        };
        seal_and_write(inner, ps, pages, seal, runs)?;
        let t_write = t1.elapsed();
        // Written: the buffers can take the next commit's pages and change set.
        w.spare_pages = self.dirty.take_page_buffers(SPARE_PAGES_MAX_BYTES / ps);
        if let Some((_, run)) = self.extra_runs.pop().filter(|(_, run)| run.capacity() <= SPARE_RUN_MAX) {
            w.spare_run = run;
        }
        // Publication state (the mapping may need to grow first).
        let cur = inner.committed.load_full();
        let map = if page_count > cur.map.reserved_pages() {
            let reserve = crate::db::reserve_for(page_count, ps);
            Arc::new(cur.map.grown(inner.storage.file(), reserve).map_err(|e| Error::io("mmap", &inner.path, e))?)
        } else {
            cur.map.clone()
        };
        for &(id, pages) in &written {
            map.set_verified(id, pages);
        }
        let committed = Committed {
            seq,
            version: Some(version),
            oldest,
            tables: self.tables,
            page_count,
            state_root,
            map: map.clone(),
        };
        if inner.options.durability == Durability::Sync || w.last_durable.elapsed() >= inner.options.flush_interval {
            durable_point(inner, w, &committed)?;
        }
        let m = &inner.metrics;
        m.commit_prepare_ns.fetch_add(t_prep.as_nanos() as u64, Ordering::Relaxed);
        m.commit_write_ns.fetch_add(t_write.as_nanos() as u64, Ordering::Relaxed);
        // The committed state must account for a free-list run placed by the durable point.
        let committed = Committed { page_count: w.alloc.page_count().max(committed.page_count), ..committed };
        if committed.page_count > committed.map.reserved_pages() {
            unreachable!("free-list runs are placed inside the reservation");
        }
        inner.committed.store(Arc::new(committed));
        inner.latest_seq.store(seq, Ordering::SeqCst);
        Ok(())
    }
}

/// The tree writer of `table`, with the page placement hint of the table.
fn tree_writer<'a>(base: &'a Snapshot, dirty: &'a mut Dirty, table: Table) -> TreeWriter<'a, Snapshot> {
    // Trie records and version records change with nearly every commit.
    let hot_leaves = matches!(table, tables::ACCOUNT_TRIE | tables::STORAGE_TRIE | tables::VERSIONS);
    TreeWriter { base, dirty, hot_leaves, table: table.0 }
}

/// Puts and deletes on one table's tree, recording the old values of a
/// versioned table (at their first change) for the change set.
struct TableWrite<'a> {
    base: &'a Snapshot,
    dirty: &'a mut Dirty,
    root: &'a mut TreeRoot,
    changes: &'a mut ChangeMap,
    table: Table,
    history: bool,
}

impl TableWrite<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_returning(key, value, false).map(drop)
    }

    /// [`TableWrite::put`]; with `return_old`, also the key's previous value
    /// (found by the same descent).
    fn put_returning(&mut self, key: &[u8], value: &[u8], return_old: bool) -> Result<Option<Vec<u8>>> {
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::TooLarge { what: "value", len: value.len(), limit: MAX_VALUE_LEN });
        }
        let ps = self.dirty.page_size();
        let nv = if leaf::entry_size(key.len(), &ValueRef::Inline(value)) <= leaf::max_entry_size(ps) {
            NewValue::Inline(value)
        } else {
            let payload = crate::btree::value_run_payload(key, value);
            NewValue::Run { id: self.dirty.new_run(RunKind::Value, self.table.0, &payload), len: value.len() as u32 }
        };
        // One lookup of the change map: the vacant entry (the key's first
        // change) takes the old value once the tree gives it.
        let first_change = first_change(self.changes, self.history, key);
        let want_old = return_old || first_change.is_some();
        // The root changes only when the whole edit succeeded.
        let mut root = *self.root;
        let prev = tree_writer(self.base, self.dirty, self.table).insert(&mut root, key, nv, want_old)?;
        *self.root = root;
        Ok(match (first_change, return_old) {
            (Some(entry), true) => entry.insert(prev.value).clone(),
            (Some(entry), false) => {
                entry.insert(prev.value);
                None
            }
            (None, _) => prev.value,
        })
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        let first_change = first_change(self.changes, self.history, key);
        let mut root = *self.root;
        let prev = tree_writer(self.base, self.dirty, self.table).delete(&mut root, key, first_change.is_some())?;
        *self.root = root;
        if let (Some(entry), true) = (first_change, prev.existed) {
            entry.insert(prev.value);
        }
        Ok(prev.existed)
    }
}

/// Edits of one table built apart from their write transaction (see
/// [`WriteTxn::edit_apart`]): they read the parent's tree and keep their
/// own dirty pages, so the transaction stays readable meanwhile.
pub struct TableEdit<'t> {
    base: &'t Snapshot,
    history: bool,
    edits: ApartEdits,
}

impl TableEdit<'_> {
    fn write(&mut self) -> TableWrite<'_> {
        let e = &mut self.edits;
        TableWrite {
            base: self.base,
            dirty: &mut e.dirty,
            root: &mut e.root,
            changes: &mut e.changes,
            table: e.table,
            history: self.history,
        }
    }

    /// Inserts or replaces `key`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        self.write().put(key, value)
    }

    /// Deletes `key`; returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool> {
        check_key(key)?;
        self.write().delete(key)
    }

    /// Inserts or replaces `key` and returns its previous value, with one
    /// descent (as [`WriteTxn::replace`]).
    pub fn replace(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        self.write().put_returning(key, value, true)
    }

    /// Ends the edits, for [`WriteTxn::merge_apart`].
    pub fn finish(self) -> ApartEdits {
        self.edits
    }
}

/// Page buffers lent to edits apart ([`WriteTxn::lend_spare_pages`]).
#[derive(Default)]
pub struct SparePages(Vec<Box<[u8]>>);

/// The changes of a [`TableEdit`]: its table's new root, its dirty pages and
/// the old values it recorded; once finished, no longer tied to the
/// transaction.
pub struct ApartEdits {
    table: Table,
    root: TreeRoot,
    dirty: Dirty,
    changes: ChangeMap,
}

/// Old values of one table's versioned keys, captured at first change.
type ChangeMap = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The table's change map's vacant entry for `key` if the table keeps
/// history (`history`) and this is the key's first change in the transaction.
fn first_change<'m>(
    changes: &'m mut ChangeMap,
    history: bool,
    key: &[u8],
) -> Option<VacantEntry<'m, Vec<u8>, Option<Vec<u8>>>> {
    if !history {
        return None;
    }
    match changes.entry(key.to_vec()) {
        Entry::Vacant(entry) => Some(entry),
        Entry::Occupied(_) => None,
    }
}

fn build_run(kind: RunKind, table: u8, payload: &[u8], ps: usize, salt: u64, first: u64, version: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(page::pages_for_run(payload.len(), ps) as usize * ps);
    b.resize(page::RUN_PAYLOAD_OFFSET, 0);
    b.extend_from_slice(payload);
    seal_run(&mut b, kind, table, ps, salt, first, version);
    b
}

/// Makes `b` (zeroed header room, then the payload) the pages of a run at
/// page `first`: pads it to whole pages, writes the header and seals it.
fn seal_run(b: &mut Vec<u8>, kind: RunKind, table: u8, ps: usize, salt: u64, first: u64, version: u64) {
    assert!(b.len() >= page::RUN_PAYLOAD_OFFSET, "a run buffer starts with room for its header");
    debug_assert!(b[..page::RUN_PAYLOAD_OFFSET].iter().all(|&x| x == 0), "the header room is zeroed");
    let len = b.len() - page::RUN_PAYLOAD_OFFSET;
    let n = page::pages_for_run(len, ps) as usize;
    b.resize(n * ps, 0);
    page::init_header(b, PageKind::Run, kind as u8, version);
    b[page::TABLE_BYTE] = table;
    page::set_run_pages(b, n as u32);
    page::put_u64(b, page::RUN_LEN_OFFSET, len as u64);
    page::seal(b, salt, first);
}

/// Largest change-set buffer the writer keeps for the next commit
/// ([`WriterState::spare_run`]): a bulk load's commits can make change sets
/// of hundreds of megabytes, which should not stay resident after it.
const SPARE_RUN_MAX: usize = 32 << 20;

/// Bytes of page buffers the writer keeps for the next commit
/// ([`WriterState::spare_pages`]): the pages of a commit of 10k changes
/// to a state of 10M accounts (32k pages); larger commits allocate the rest.
const SPARE_PAGES_MAX_BYTES: usize = 128 << 20;

fn poison_on_error<T>(w: &mut WriterState, res: Result<T>) -> Result<T> {
    if let Err(e) = &res {
        if matches!(e, Error::Io { .. }) {
            w.poisoned = Some(e.to_string());
        }
    }
    res
}

/// Grows the file to hold `page_count` pages (in steps of 1/8 of its size, at least 1 MiB).
fn grow_file(inner: &Inner, w: &mut WriterState, page_count: u64) -> Result<()> {
    let ps = inner.page_size as u64;
    let need = page_count * ps;
    if need <= w.file_len {
        return Ok(());
    }
    if page_count > crate::MAX_PAGES {
        return Err(Error::Limit(format!("the file would exceed {} pages", crate::MAX_PAGES)));
    }
    let step = (w.file_len / 8).max(1 << 20);
    let new_len = need.max(w.file_len + step).div_ceil(ps) * ps;
    let new_len = new_len.min(crate::db::reserve_for(page_count, inner.page_size).max(need));
    inner.storage.set_len(new_len).map_err(|e| Error::io("set_len", &inner.path, e))?;
    w.file_len = new_len;
    w.grew = true;
    Ok(())
}

/// Pages per chunk of [`seal_and_write`]: 4 MiB.
const SEAL_CHUNK_PAGES: usize = 1024;

/// Seals `pages` (`seal(id, table, page)`) and writes them and `runs`. In
/// chunks of [`SEAL_CHUNK_PAGES`] in file order: a pooled helper writes
/// each sealed chunk while this thread seals the next. Sealing checksums
/// pages that are no longer cached and writing copies them into the page
/// cache: each was about half of a commit's I/O phase, one after the other.
fn seal_and_write<'p>(
    inner: &Inner,
    ps: usize,
    mut pages: Vec<(u64, u8, &'p mut [u8])>,
    seal: impl Fn(u64, u8, &mut [u8]),
    runs: Vec<(u64, &'p [u8])>,
) -> Result<()> {
    pages.sort_unstable_by_key(|(id, _, _)| *id);
    if pages.len() <= SEAL_CHUNK_PAGES {
        let mut writes = seal_chunk(&mut pages, &seal);
        writes.extend(runs);
        return write_coalesced(inner, &mut writes, ps);
    }
    // Unbounded: a pooled helper may start only after the sealing side has
    // returned (`pool::with_helpers`), which therefore must never wait for
    // it. The chunks are lists of references, a few bytes per page.
    let (chunks, received) = std::sync::mpsc::channel::<Vec<(u64, &[u8])>>();
    let received = Mutex::new(Some(received));
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let pages = &mut pages;
    crate::pool::with_helpers(
        1,
        |_| {
            let Some(received) = received.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
            // After a failed write the rest is received and dropped.
            for mut chunk in received {
                let mut failure = failure.lock().unwrap_or_else(|e| e.into_inner());
                if failure.is_some() {
                    continue;
                }
                *failure = write_coalesced(inner, &mut chunk, ps).err();
                // The device writes this chunk while the next ones are sealed
                // and copied, instead of all of them in the commit's sync.
                let start = chunk.iter().map(|(id, _)| id * ps as u64).min().unwrap_or(0);
                let end = chunk.iter().map(|(id, b)| id * ps as u64 + b.len() as u64).max().unwrap_or(0);
                if failure.is_none() && end > start {
                    inner.storage.start_writeback(start, end - start);
                }
            }
        },
        move || {
            for chunk in pages.chunks_mut(SEAL_CHUNK_PAGES) {
                if chunks.send(seal_chunk(chunk, &seal)).is_err() {
                    return;
                }
            }
            let _ = chunks.send(runs);
        },
    );
    failure.into_inner().unwrap_or_else(|e| e.into_inner()).map_or(Ok(()), Err)
}

/// Seals every page of `chunk` and returns the writes of the sealed pages.
fn seal_chunk<'c>(chunk: &'c mut [(u64, u8, &mut [u8])], seal: &impl Fn(u64, u8, &mut [u8])) -> Vec<(u64, &'c [u8])> {
    for (id, table, buf) in chunk.iter_mut() {
        seal(*id, *table, buf);
    }
    let chunk: &'c [(u64, u8, &mut [u8])] = chunk;
    chunk.iter().map(|(id, _, buf)| (*id, &**buf)).collect()
}

/// Writes pages sorted by number, neighbours as one write (a gathered one:
/// the pages are not copied into one buffer first).
fn write_coalesced(inner: &Inner, writes: &mut [(u64, &[u8])], ps: usize) -> Result<()> {
    writes.sort_unstable_by_key(|(id, _)| *id);
    let bufs: Vec<&[u8]> = writes.iter().map(|(_, b)| *b).collect();
    // Runs of adjacent pages: (first page, first write, writes).
    let mut runs: Vec<(u64, usize, usize)> = Vec::new();
    let mut next_id = None;
    for (i, (id, b)) in writes.iter().enumerate() {
        match runs.last_mut() {
            Some((_, _, n)) if next_id == Some(*id) => *n += 1,
            _ => runs.push((*id, i, 1)),
        }
        next_id = Some(id + (b.len() / ps) as u64);
    }
    let ops: Vec<GatherOp<'_>> =
        runs.iter().map(|&(id, first, n)| GatherOp { offset: id * ps as u64, bufs: &bufs[first..first + n] }).collect();
    let bytes: usize = bufs.iter().map(|b| b.len()).sum();
    inner.storage.write_gathered(&ops).map_err(|e| Error::io("write", &inner.path, e))?;
    inner.metrics.pages_written.fetch_add((bytes / ps) as u64, Ordering::Relaxed);
    inner.metrics.bytes_written.fetch_add(bytes as u64, Ordering::Relaxed);
    Ok(())
}

/// Makes `c` durable: free list, data sync, meta page, meta sync.
pub(crate) fn durable_point(inner: &Inner, w: &mut WriterState, c: &Committed) -> Result<()> {
    let ps = inner.page_size;
    let t0 = Instant::now();
    let latest = c.latest().expect("a durable point follows a commit");
    // The previous free-list run is referenced only by the previous meta.
    if let Some((first, n)) = w.blob.take() {
        w.alloc.quarantine(c.seq, (first..first + n).collect());
    }
    // Place the new run, then encode the free space that remains.
    let (first, n, payload) = w.alloc.place_free_list(ps);
    let run = build_run(RunKind::FreeList, 0, &payload, ps, inner.salt, first, latest);
    let page_count = w.alloc.page_count();
    grow_file(inner, w, page_count)?;
    let mut writes = vec![(first, &run[..])];
    write_coalesced(inner, &mut writes, ps)?;
    c.map.set_verified(first, n);
    let t1 = Instant::now();
    let sync = if w.grew { inner.storage.sync_all() } else { inner.storage.sync_data() };
    sync.map_err(|e| Error::io(if w.grew { "fsync" } else { "fdatasync" }, &inner.path, e))?;
    w.grew = false;
    let t2 = Instant::now();
    w.sequence += 1;
    let m = Meta {
        format: meta::FORMAT_VERSION,
        page_size: ps as u32,
        salt: inner.salt,
        sequence: w.sequence,
        version: Some(latest),
        oldest_version: c.oldest,
        page_count,
        freelist_page: first,
        freelist_len: payload.len() as u64,
        retention: w.retention,
        state_root: c.state_root,
        tables: c.tables,
    };
    let slot = w.next_slot;
    let bytes = m.encode(slot);
    inner
        .storage
        .write_all(&[WriteOp { offset: meta::META_OFFSETS[slot], data: &bytes }])
        .map_err(|e| Error::io("write meta", &inner.path, e))?;
    inner.storage.sync_data().map_err(|e| Error::io("fdatasync meta", &inner.path, e))?;
    w.next_slot = 1 - slot;
    w.durable_seq = c.seq;
    w.durable_version = c.version;
    w.blob = Some((first, n));
    w.last_durable = Instant::now();
    let mt = &inner.metrics;
    mt.durable_points.fetch_add(1, Ordering::Relaxed);
    mt.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    mt.commit_prepare_ns.fetch_add((t1 - t0).as_nanos() as u64, Ordering::Relaxed);
    mt.commit_sync_ns.fetch_add((t2 - t1).as_nanos() as u64, Ordering::Relaxed);
    mt.commit_meta_ns.fetch_add(t2.elapsed().as_nanos() as u64, Ordering::Relaxed);
    Ok(())
}

impl PageSource for WriteTxn<'_> {
    fn page(&self, id: u64) -> Result<&[u8]> {
        if is_temp(id) {
            if id & RUN_BIT != 0 {
                return Err(self.corrupt(id, "run id used as a page"));
            }
            return self.dirty.page(id).ok_or_else(|| self.corrupt(id, "dangling dirty page id"));
        }
        self.base.page(id)
    }
    fn run_payload(&self, id: u64) -> Result<&[u8]> {
        if is_temp(id) {
            return self.dirty.run(id).ok_or_else(|| self.corrupt(id, "dangling dirty run id"));
        }
        self.base.run_payload(id)
    }
    fn corrupt(&self, id: u64, reason: &str) -> Error {
        self.base.corrupt(id, reason)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Async durability: make the last commits durable on close.
        if let Ok(mut w) = self.writer.lock() {
            let c = self.committed.load_full();
            if w.poisoned.is_none() && w.durable_seq < c.seq {
                let _ = durable_point(self, &mut w, &c);
            }
        }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Db>();
    is::<Snapshot>();
    is::<Mapping>();
}
