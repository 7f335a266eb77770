//! Full scans that read pages with positioned reads into buffers they own,
//! instead of borrowing them from the memory map.
//!
//! A [`crate::Range`] hands out slices of the map, so every page it passes
//! stays mapped for as long as the snapshot lives, and the kernel maps the
//! cached neighbours of each faulting page too (fault-around, 16 pages).
//! A scan over a large database in key order visits leaves all over the
//! file: through the map it either grows the resident set to the size of
//! the file or, when something unmaps pages to bound it, faults the same
//! neighbourhoods in again and again (12 times as many faults at 10M
//! accounts). A [`Scan`] keeps one page per tree level and one value run,
//! so it reads each page once with one `pread` and holds a few KiB.
//!
//! Where leaves follow each other in the file (a tree written by one large
//! commit: placement is in key order), the scan reads them 16 pages at a
//! time and drops the cached pages behind it, so that a scan of a large
//! file streams through a small page cache.
//!
//! Every page read is checked as the map path checks it: page number inside
//! the file, checksum, node kind and level.

use crate::btree::{self, branch, leaf, leaf::ValueRef, PageSource, TreeRoot, MAX_DEPTH};
use crate::error::{Error, Result};
use crate::page;
use crate::snapshot::{merge_next, Merged, Overlay, Snapshot};

/// One level of a [`PagedCursor`]'s path: a page and the position in it.
struct Level {
    id: u64,
    page: Vec<u8>,
    index: usize,
}

/// Where the current entry's value is.
#[derive(Clone, Copy)]
enum ValueAt {
    /// `len` bytes at `start` in the leaf.
    Leaf { start: usize, len: usize },
    /// `len` bytes at `start` in the run buffer.
    Run { start: usize, len: usize },
}

/// Forward cursor over one tree (the newest version's pages only).
struct PagedCursor<'a> {
    snap: &'a Snapshot,
    root: TreeRoot,
    /// Root first; the last level is the leaf.
    path: Vec<Level>,
    /// Pages of the current entry's value run, when it has one.
    run: Vec<u8>,
    /// The current entry: key (start, len) in the leaf and its value; `None` at the end.
    current: Option<((usize, usize), ValueAt)>,
    ahead: LeavesAhead,
}

/// Leaves read in runs: a tree written in key order (an imported database)
/// keeps its leaves one after the other in the file, and reading them one
/// `pread` per page was a system call per 4 KiB. After two leaves in a row
/// the next [`LEAF_RUN`] pages come in with one read; each is checked when
/// the scan reaches it, as a single read would be.
#[derive(Default)]
struct LeavesAhead {
    /// Unchecked bytes of pages `first..first + count`.
    pages: Vec<u8>,
    first: u64,
    count: u64,
    /// The leaf read last.
    last: Option<u64>,
    /// The first page of the current stream of runs (each run right after
    /// the one before).
    stream_start: u64,
    /// The first page of the stream whose cached copy is not dropped yet.
    drop_from: u64,
    /// The end of the pages of the stream asked for ahead ([`READ_AHEAD_PAGES`]).
    asked_to: u64,
}

/// Pages of a stream of runs asked for ahead of the scan
/// (`POSIX_FADV_WILLNEED`, 4 MiB at 4 KiB pages), topped up in one request
/// whenever half of them are read: the scan's own reads are synchronous,
/// one run at a time, and the kernel reads ahead of them only as far as the
/// device's readahead setting (128 KiB on many machines: a 10M-account
/// export took 4.4-4.9 s with it, 3.0-3.1 s with 8 MiB). The kernel serves
/// a request up to the larger of that setting and the device's largest
/// transfer (`max_sectors_kb`).
const READ_AHEAD_PAGES: u64 = 1024;

/// Pages read at once when leaves follow each other (64 KiB at 4 KiB pages).
const LEAF_RUN: u64 = 16;

/// Bytes of the page cache dropped at once behind a stream of runs, at
/// multiples of this offset: the kernel caches a file in folios of up to 2
/// MiB and drops only those wholly inside the range it is given, so dropping
/// each 64 KiB run as it is read dropped nothing (210 MB of a 340 MB file
/// stayed cached after a scan).
const DROP_ALIGN: u64 = 2 << 20;

/// Offset of `inner` within `outer` (a slice of it).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    let off = inner.as_ptr() as usize - outer.as_ptr() as usize;
    debug_assert!(off + inner.len() <= outer.len());
    off
}

/// Refuses a root deeper than any tree can be (damage in a meta or branch
/// page): every walk from a root checks this before its first read.
fn check_depth(snap: &Snapshot, root: TreeRoot) -> Result<()> {
    if root.level as usize >= MAX_DEPTH {
        return Err(snap.corrupt(root.page, "tree deeper than the limit"));
    }
    Ok(())
}

impl<'a> PagedCursor<'a> {
    /// A cursor at the first key `>= start`.
    fn seek(snap: &'a Snapshot, root: TreeRoot, start: &[u8]) -> Result<Self> {
        let mut c =
            PagedCursor { snap, root, path: Vec::new(), run: Vec::new(), current: None, ahead: LeavesAhead::default() };
        if root.is_empty() {
            return Ok(c);
        }
        check_depth(snap, root)?;
        let (mut id, mut level) = (root.page, root.level);
        loop {
            let page = read_node(snap, id, level, Vec::new())?;
            let index = if level == 0 {
                match leaf::search(&page, start).map_err(|m| snap.corrupt(id, m.0))? {
                    Ok(i) | Err(i) => i,
                }
            } else {
                branch::search(&page, start).map_err(|m| snap.corrupt(id, m.0))?
            };
            let child = (level > 0).then(|| branch::child(&page, index));
            c.path.push(Level { id, page, index });
            match child {
                Some(ch) => {
                    id = ch;
                    level -= 1;
                }
                None => break,
            }
        }
        c.settle()?;
        Ok(c)
    }

    /// The current entry.
    fn current(&self) -> Option<(&[u8], &[u8])> {
        let ((ks, kl), v) = self.current?;
        let leaf = &self.path.last()?.page;
        let value = match v {
            ValueAt::Leaf { start, len } => &leaf[start..start + len],
            ValueAt::Run { start, len } => &self.run[start..start + len],
        };
        Some((&leaf[ks..ks + kl], value))
    }

    /// Moves past the current entry.
    fn advance(&mut self) -> Result<()> {
        if self.current.is_some() {
            self.path.last_mut().expect("a current entry has a leaf").index += 1;
            self.settle()?;
        }
        Ok(())
    }

    /// Makes the leaf position an entry: moves to the next leaf when the
    /// leaf is exhausted, loads the entry's value run. `current` is `None`
    /// past the last entry.
    fn settle(&mut self) -> Result<()> {
        self.current = None;
        let Some(last) = self.path.last() else { return Ok(()) };
        if last.index >= leaf::count(&last.page) && !self.next_leaf()? {
            return Ok(());
        }
        let Level { id, page, index } = self.path.last().expect("positioned on a leaf");
        let (key, value) = leaf::entry(page, *index).map_err(|m| self.snap.corrupt(*id, m.0))?;
        let key_at = (offset_in(page, key), key.len());
        let value_at = match value {
            ValueRef::Inline(v) => ValueAt::Leaf { start: offset_in(page, v), len: v.len() },
            ValueRef::Run { page: run, len } => {
                let start = self.snap.read_run_value(run, len, &mut self.run)?;
                ValueAt::Run { start, len: len as usize }
            }
        };
        self.current = Some((key_at, value_at));
        Ok(())
    }

    /// Moves the path to the first entry of the next non-empty leaf; false
    /// (and an empty path) at the end of the tree.
    fn next_leaf(&mut self) -> Result<bool> {
        loop {
            // Pop exhausted levels; reuse the leaf's buffer for the next leaf.
            let mut spare = self.path.pop().map(|l| l.page).unwrap_or_default();
            loop {
                let Some(top) = self.path.last_mut() else { return Ok(false) };
                if top.index < branch::count(&top.page) {
                    top.index += 1;
                    break;
                }
                spare = self.path.pop().expect("non-empty").page;
            }
            // Descend to the leftmost leaf under the new position.
            loop {
                let depth = self.path.len();
                let level = self.root.level - depth as u8;
                let top = self.path.last().expect("a branch above");
                let id = branch::child(&top.page, top.index);
                let page = if level == 0 {
                    self.read_leaf(id, std::mem::take(&mut spare))?
                } else {
                    read_node(self.snap, id, level, std::mem::take(&mut spare))?
                };
                self.path.push(Level { id, page, index: 0 });
                if level == 0 {
                    break;
                }
            }
            if leaf::count(&self.path.last().expect("a leaf").page) > 0 {
                return Ok(true);
            }
        }
    }

    /// Drops the cached pages of the current stream of runs below page `to`,
    /// once the stream spans a whole [`DROP_ALIGN`]: a few runs in a row
    /// among scattered leaves are no stream, and the pages around them
    /// belong to other parts of the tree, read later.
    fn drop_behind(&mut self, to: u64) {
        let a = &mut self.ahead;
        let ps = self.snap.inner.page_size as u64;
        // False before the first run (count 0): no stream yet.
        let streaming = (a.first + a.count).saturating_sub(a.stream_start) * ps >= DROP_ALIGN;
        if streaming && to > a.drop_from {
            crate::storage::drop_cached_of(self.snap.inner.storage.file(), a.drop_from * ps, (to - a.drop_from) * ps);
            a.drop_from = to;
        }
    }

    /// Asks for the pages of the stream ahead of the run just read, up to
    /// [`READ_AHEAD_PAGES`] past it, once half of that window is used: only
    /// while runs follow each other (`streaming`), and only where the
    /// kernel's own readahead of the file is shorter (or unknown). Where it
    /// is longer, asking too only cost system time (10M-account export, 8
    /// MiB readahead: 2.66-2.69 s without, 2.76-2.90 s with).
    fn read_ahead(&mut self, streaming: bool) {
        let ps = self.snap.inner.page_size as u64;
        if self.snap.inner.device_read_ahead.is_some_and(|bytes| bytes >= READ_AHEAD_PAGES * ps) {
            return;
        }
        let a = &mut self.ahead;
        let end = a.first + a.count;
        if !streaming {
            a.asked_to = end;
            return;
        }
        let to = (end + READ_AHEAD_PAGES).min(self.snap.state.page_count);
        if a.asked_to >= end + READ_AHEAD_PAGES / 2 || to <= a.asked_to.max(end) {
            return;
        }
        let from = a.asked_to.max(end);
        crate::storage::will_need_of(self.snap.inner.storage.file(), from * ps, (to - from) * ps);
        a.asked_to = to;
    }

    /// Leaf `id` into `buf` (reused), checked, from the pages read ahead
    /// when they hold it; a run of pages is read when leaves follow each other.
    fn read_leaf(&mut self, id: u64, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        let a = &mut self.ahead;
        let held = id >= a.first && id < a.first + a.count;
        let follows = a.last.is_some_and(|last| last + 1 == id);
        a.last = Some(id);
        if !held && !follows {
            return read_node(self.snap, id, 0, buf);
        }
        if !held {
            let count = LEAF_RUN.min(self.snap.state.page_count.saturating_sub(id)).max(1);
            self.snap.read_pages_unchecked(id, count, &mut a.pages)?;
            // A scan reads each leaf once: the cached pages behind a stream
            // of runs are done with. Dropping them keeps the page cache small,
            // and a scan of a large file then reuses its pages instead of
            // taking fresh ones (on a virtual machine a fresh page costs the
            // host a fault: reading 3.6 GB through the cache ran at 360 MB/s,
            // 2.3 GB/s dropping behind).
            let (prev_end, ps) = (a.first + a.count, self.snap.inner.page_size as u64);
            let folio_start = id * ps / DROP_ALIGN * DROP_ALIGN / ps;
            if id != prev_end {
                // A new stream takes the folio it starts in: the stream
                // before it in the file (the scan of the preceding key range)
                // leaves the folio they share to it, and if that scan is
                // still reading there, it reads a few pages again.
                self.drop_behind(prev_end);
                (self.ahead.stream_start, self.ahead.drop_from) = (id, folio_start);
            }
            self.drop_behind(folio_start);
            (self.ahead.first, self.ahead.count) = (id, count);
            self.read_ahead(id == prev_end);
        }
        let (a, ps) = (&self.ahead, self.snap.inner.page_size);
        let at = (id - a.first) as usize * ps;
        buf.clear();
        buf.extend_from_slice(&a.pages[at..at + ps]);
        check_node_page(self.snap, id, 0, &buf)?;
        Ok(buf)
    }
}

impl Drop for PagedCursor<'_> {
    fn drop(&mut self) {
        self.drop_behind(self.ahead.first + self.ahead.count);
    }
}

/// Where a [`Scan`]'s current entry comes from.
enum Head<'a> {
    End,
    /// The tree cursor's current entry.
    Tree,
    /// An older value recorded by a newer version's change set.
    Old(&'a [u8], &'a [u8]),
}

/// Ordered scan of a table at a snapshot's version, reading the tree with
/// positioned reads: the tree merged with the change records of the
/// versions after it, as [`crate::Range`] does. Cursor style: [`Scan::current`]
/// is the entry under the cursor (borrowed until the next move),
/// [`Scan::advance`] moves to the next one.
pub struct Scan<'a> {
    snap: &'a Snapshot,
    tree: PagedCursor<'a>,
    /// One per newer version, oldest first: the first with a key wins.
    overlays: Vec<Overlay<'a>>,
    head: Head<'a>,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(snap: &'a Snapshot, root: TreeRoot, start: &[u8], overlays: Vec<Overlay<'a>>) -> Result<Self> {
        let tree = PagedCursor::seek(snap, root, start)?;
        let mut s = Scan { snap, tree, overlays, head: Head::End };
        s.settle()?;
        Ok(s)
    }

    /// The entry under the cursor, `None` past the last.
    pub fn current(&self) -> Option<(&[u8], &[u8])> {
        match self.head {
            Head::End => None,
            Head::Tree => self.tree.current(),
            Head::Old(k, v) => Some((k, v)),
        }
    }

    /// Moves to the next entry.
    pub fn advance(&mut self) -> Result<()> {
        if let Head::Tree = self.head {
            self.tree.advance()?;
        }
        self.settle()
    }

    /// Moves to the next key of the merge (see [`merge_next`]), skipping
    /// keys that did not exist at this version.
    fn settle(&mut self) -> Result<()> {
        loop {
            match merge_next(self.snap, &mut self.overlays, self.tree.current().map(|(k, _)| k))? {
                Merged::End => self.head = Head::End,
                Merged::Tree => self.head = Head::Tree,
                Merged::Changed { key, old, in_tree } => {
                    if in_tree {
                        self.tree.advance()?;
                    }
                    match old {
                        Some(v) => self.head = Head::Old(key, v),
                        None => continue,
                    }
                }
            }
            return Ok(());
        }
    }
}

/// Branch pages a [`PagedLookup`] keeps (16 MiB at 4 KiB pages); it
/// starts over when full.
const MAX_CACHED_BRANCHES: usize = 4096;

/// Point reads of one table that read pages with `pread` (branch pages
/// cached, the leaf and value run into buffers of its own) instead of
/// through the map: for many lookups beside a full scan, where map reads
/// would fault pages (and their neighbours) in all over the file. The
/// value returned by [`PagedLookup::get`] lives until the next call.
pub struct PagedLookup<'a> {
    snap: &'a Snapshot,
    table: crate::Table,
    branches: std::collections::HashMap<u64, Vec<u8>>,
    leaf: Vec<u8>,
    run: Vec<u8>,
}

impl<'a> PagedLookup<'a> {
    /// The value of `key` at the snapshot's version, as [`Snapshot::get`] gives it.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<&[u8]>> {
        let snap = self.snap;
        snap.inner.metrics.reads.add(1);
        if !snap.is_latest() && self.table.versioned() {
            if let Some(old) = snap.changed_after(self.table, key)? {
                return Ok(old);
            }
        }
        let root = snap.root(self.table);
        if root.is_empty() {
            return Ok(None);
        }
        check_depth(snap, root)?;
        let (mut id, mut level) = (root.page, root.level);
        while level > 0 {
            if !self.branches.contains_key(&id) {
                if self.branches.len() >= MAX_CACHED_BRANCHES {
                    self.branches.clear();
                }
                let page = read_node(snap, id, level, Vec::new())?;
                self.branches.insert(id, page);
            }
            let page = &self.branches[&id];
            let i = branch::search(page, key).map_err(|m| snap.corrupt(id, m.0))?;
            id = branch::child(page, i);
            level -= 1;
        }
        self.leaf = read_node(snap, id, 0, std::mem::take(&mut self.leaf))?;
        let Ok(i) = leaf::search(&self.leaf, key).map_err(|m| snap.corrupt(id, m.0))? else { return Ok(None) };
        match leaf::entry(&self.leaf, i).map_err(|m| snap.corrupt(id, m.0))?.1 {
            ValueRef::Inline(v) => Ok(Some(v)),
            ValueRef::Run { page, len } => {
                let start = snap.read_run_value(page, len, &mut self.run)?;
                Ok(Some(&self.run[start..start + len as usize]))
            }
        }
    }
}

/// Reads node `id` of `level` into `buf` (reused) and checks it.
fn read_node(snap: &Snapshot, id: u64, level: u8, mut buf: Vec<u8>) -> Result<Vec<u8>> {
    snap.read_pages_unchecked(id, 1, &mut buf)?;
    check_node_page(snap, id, level, &buf)?;
    Ok(buf)
}

/// Checks node page `id`, read from the file, as the map path checks it:
/// checksum, then kind and level.
fn check_node_page(snap: &Snapshot, id: u64, level: u8, page: &[u8]) -> Result<()> {
    if !page::verify_checksum(page, snap.inner.salt, id) {
        return Err(snap.corrupt(id, "checksum mismatch"));
    }
    btree::check_node(page, level).map_err(|m| snap.corrupt(id, m.0))
}

impl Snapshot {
    /// How much of `table`'s leaf level lies in the file in key order: the
    /// share of neighbouring leaves whose pages follow each other, among the
    /// children of up to `samples` branches just above the leaves, found by
    /// descending at first key bytes spread over `0..=255`. Near 1 for a
    /// tree written by one large commit (placement follows key order), near
    /// 0 for one rewritten by many commits of scattered changes. A scan of
    /// the first reads the file front to back; of the second, at random.
    /// `None` when the tree has no branch above its leaves.
    pub fn leaves_in_key_order(&self, table: crate::Table, samples: usize) -> Result<Option<f64>> {
        let root = self.root(table);
        if root.is_empty() || root.level == 0 {
            return Ok(None);
        }
        check_depth(self, root)?;
        let (mut seen, mut pairs, mut in_order) = (std::collections::HashSet::new(), 0u64, 0u64);
        let samples = samples.clamp(1, 256);
        for i in 0..samples {
            let key = [(i * 256 / samples) as u8];
            let (mut id, mut level) = (root.page, root.level);
            let mut page = read_node(self, id, level, Vec::new())?;
            while level > 1 {
                id = branch::child(&page, branch::search(&page, &key).map_err(|m| self.corrupt(id, m.0))?);
                level -= 1;
                page = read_node(self, id, level, page)?;
            }
            if !seen.insert(id) {
                continue;
            }
            let children: Vec<u64> = (0..=branch::count(&page)).map(|c| branch::child(&page, c)).collect();
            pairs += children.len() as u64 - 1;
            in_order += children.windows(2).filter(|w| w[1] == w[0] + 1).count() as u64;
        }
        Ok((pairs > 0).then(|| in_order as f64 / pairs as f64))
    }

    /// The pages of `table`'s tree at this snapshot's version, branches and
    /// leaves (not value runs), in file order: what a full scan of the table
    /// reads, for reading them ahead of it. Reads the branch pages only (a
    /// few per thousand leaves).
    pub fn tree_pages(&self, table: crate::Table) -> Result<Vec<u64>> {
        let root = self.root(table);
        if root.is_empty() {
            return Ok(Vec::new());
        }
        check_depth(self, root)?;
        let mut pages = vec![root.page];
        let mut stack = if root.level > 0 { vec![(root.page, root.level)] } else { Vec::new() };
        let mut buf = Vec::new();
        while let Some((id, level)) = stack.pop() {
            buf = read_node(self, id, level, buf)?;
            for i in 0..=branch::count(&buf) {
                let child = branch::child(&buf, i);
                pages.push(child);
                if level > 1 {
                    stack.push((child, level - 1));
                }
            }
            // A tree holds each page once: more pages than the file has is damage.
            if pages.len() as u64 > self.state.page_count {
                return Err(self.corrupt(id, "tree holds more pages than the file"));
            }
        }
        pages.sort_unstable();
        Ok(pages)
    }

    /// Point reads of `table` with positioned reads (see [`PagedLookup`]).
    pub fn paged_lookup(&self, table: crate::Table) -> PagedLookup<'_> {
        PagedLookup { snap: self, table, branches: std::collections::HashMap::new(), leaf: Vec::new(), run: Vec::new() }
    }

    /// Like [`Snapshot::range`], but reads the tree's pages with positioned
    /// reads into the scan's own buffers (see the module documentation):
    /// for full scans of large tables.
    pub fn scan(&self, table: crate::Table, start: &[u8]) -> Result<Scan<'_>> {
        self.inner.metrics.reads.add(1);
        let overlays = self.overlays(table, start)?;
        Scan::new(self, self.root(table), start, overlays)
    }

    /// Reads pages `[id, id + count)`, inside the file, into `buf`, without
    /// checking them (the caller checks each page it uses).
    fn read_pages_unchecked(&self, id: u64, count: u64, buf: &mut Vec<u8>) -> Result<()> {
        if id < self.inner.first_page || id.checked_add(count).is_none_or(|end| end > self.state.page_count) {
            return Err(self.corrupt(id, "page number outside the file"));
        }
        self.read_raw_pages(id, count, buf)
    }

    /// Reads pages `[id, id + count)` into `buf`, unchecked (for `verify`,
    /// which reports what is wrong with them).
    pub(crate) fn read_raw_pages(&self, id: u64, count: u64, buf: &mut Vec<u8>) -> Result<()> {
        let ps = self.inner.page_size;
        buf.resize(count as usize * ps, 0);
        self.read_exact_at(buf, id * ps as u64)
    }

    /// Reads the run at `id` holding a value of `len` bytes into `buf`;
    /// returns the offset of the value in it. Checked as
    /// [`PageSource::run_payload`] checks a run in the map.
    fn read_run_value(&self, id: u64, len: u32, buf: &mut Vec<u8>) -> Result<usize> {
        if id < self.inner.first_page || id >= self.state.page_count {
            return Err(self.corrupt(id, "run starts outside the file"));
        }
        // The first page says how many pages the run has; the checksum covers them all.
        let ps = self.inner.page_size;
        self.read_raw_pages(id, 1, buf)?;
        let n = page::run_pages(buf) as u64;
        if n == 0 || id + n > self.state.page_count {
            return Err(self.corrupt(id, "run extends past the file"));
        }
        buf.resize(n as usize * ps, 0);
        self.read_exact_at(&mut buf[ps..], (id + 1) * ps as u64)?;
        if !page::verify_checksum(buf, self.inner.salt, id) {
            return Err(self.corrupt(id, "checksum mismatch"));
        }
        let payload = page::run_payload(buf).map_err(|r| self.corrupt(id, r))?;
        let value = btree::run_value(payload, len).map_err(|r| self.corrupt(id, r))?;
        Ok(offset_in(buf, value))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.storage.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => return Err(self.corrupt(offset / self.inner.page_size as u64, "file ends inside the page")),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read pages", &self.inner.path, e)),
            }
        }
        Ok(())
    }
}
