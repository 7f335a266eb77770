//! Copy-on-write edits of a B+tree inside a write transaction.
//!
//! A page touched by a transaction is copied into a dirty buffer with a
//! temporary id (`TEMP_BIT | index`); its parent is made dirty too and now
//! points at the temporary id, so later edits in the same transaction find
//! the dirty copy directly. Real page numbers are chosen only at commit,
//! when the number of dirty pages is known and they can be placed together.

use super::{branch, leaf, node, value_bytes, Malformed, PageSource, TreeRoot, MAX_DEPTH};
use crate::error::Result;
use crate::meta::MAX_TABLES;
use crate::page::{self, put_u64, HEADER_LEN};
use branch::BranchBuf;
use leaf::ValueRef;

/// Marks a temporary (dirty) page id.
pub const TEMP_BIT: u64 = 1 << 63;
/// Marks a temporary run id (together with `TEMP_BIT`).
pub const RUN_BIT: u64 = 1 << 62;

/// True for ids of pages or runs created by the running transaction.
#[inline]
pub fn is_temp(id: u64) -> bool {
    id & TEMP_BIT != 0
}

/// A new run of a transaction: its kind, table id and payload.
pub(crate) type DirtyRun = (page::RunKind, u8, Box<[u8]>);

/// Pages and runs written by one transaction, plus the pages it freed.
pub struct Dirty {
    page_size: usize,
    version: u64,
    /// Dirty pages by temporary index; `None` once dropped again.
    pub(crate) pages: Vec<Option<Box<[u8]>>>,
    /// Per dirty page: likely rewritten by the next commit too (branch
    /// pages, trie records); placed together so they free together.
    pub(crate) hot: Vec<bool>,
    /// Per dirty page: the table it belongs to (stored in the page header).
    pub(crate) table: Vec<u8>,
    /// Dirty runs (kind, table, payload) by temporary index.
    pub(crate) runs: Vec<Option<DirtyRun>>,
    /// Committed pages this transaction no longer references.
    pub(crate) freed: Vec<u64>,
    /// Page buffers to take before allocating (contents arbitrary): the
    /// writer's buffers of the last commit ([`Dirty::with_spare_pages`])
    /// and pages this transaction dropped again.
    spare: Vec<Box<[u8]>>,
    /// Per table: where the last insert went after the last entry of a
    /// leaf, so that the next greater key is appended there without a
    /// descent (a bulk load inserts in key order). Any other change of the
    /// tree clears it.
    append_hints: [Option<AppendHint>; MAX_TABLES],
    /// Per table: the dirty leaf and position of the last new key inserted
    /// inside the tree, and how many inserts in a row each went right after
    /// the one before, so that a split can tell a long ascending run of
    /// inserts from others.
    last_inserts: [Option<LastInsert>; MAX_TABLES],
}

/// A dirty leaf whose last entry was the last insert into its tree: a
/// greater key below the leaf's upper bound belongs at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AppendHint {
    /// The tree's root after that insert (a check: every change of the tree changes it).
    root: TreeRoot,
    leaf: u64,
    /// The leaf's upper bound (the keys it may hold are below it); `None`
    /// for the tree's last leaf. Ascending keys below greater ones (an
    /// import's address preimages below the preimages of a few slots) land
    /// inside the tree, not at its end.
    fence: Option<Vec<u8>>,
}

/// Where the last new key of a table went (see [`Dirty::last_inserts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LastInsert {
    leaf: u64,
    pos: usize,
    /// Inserts in a row, this one included, each right after the one before.
    run: u32,
}

/// Inserts in a row, each right after the one before, from which a split
/// keeps the run's side full (see [`TreeWriter::split_leaf`]). A few slots
/// of one account also come in order; taking them for a long run left
/// half-empty right pages behind (storage pages +20% in the state-root
/// bench's load).
const ASCENDING_RUN: u32 = 32;

impl Dirty {
    /// An empty set of changes for the transaction writing `version`.
    pub fn new(page_size: usize, version: u64) -> Dirty {
        Dirty {
            page_size,
            version,
            pages: Vec::new(),
            hot: Vec::new(),
            table: Vec::new(),
            runs: Vec::new(),
            freed: Vec::new(),
            spare: Vec::new(),
            append_hints: [const { None }; MAX_TABLES],
            last_inserts: [None; MAX_TABLES],
        }
    }

    /// [`Dirty::new`], taking page buffers from `spare` (of this page size)
    /// before allocating: a commit makes tens of thousands of pages, and
    /// the allocator gives 4 KiB buffers back to the system when they are
    /// freed (a page fault each when reused, a `madvise` per extent).
    pub fn with_spare_pages(page_size: usize, version: u64, spare: Vec<Box<[u8]>>) -> Dirty {
        assert!(spare.iter().all(|b| b.len() == page_size), "spare pages of another page size");
        Dirty { spare, ..Dirty::new(page_size, version) }
    }

    /// Every page buffer of these changes (dirty or spare), at most `max`,
    /// for [`Dirty::with_spare_pages`] of the next transaction.
    pub fn take_page_buffers(&mut self, max: usize) -> Vec<Box<[u8]>> {
        let mut out = std::mem::take(&mut self.spare);
        out.truncate(max);
        let room = max - out.len();
        out.extend(self.pages.iter_mut().filter_map(Option::take).take(room));
        out
    }

    /// Forgets what the last inserts into `table` left behind (the append
    /// hint, the ascending run): any other change of the tree may move them.
    fn forget_inserts(&mut self, table: u8) {
        self.append_hints[usize::from(table)] = None;
        self.last_inserts[usize::from(table)] = None;
    }

    /// Version the transaction writes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Changes the version the transaction writes (before any change).
    pub(crate) fn set_version(&mut self, version: u64) {
        debug_assert!(self.pages.is_empty() && self.runs.is_empty());
        self.version = version;
    }

    /// Page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The dirty pages of the trees under `roots` in key order (depth
    /// first, left to right; the trees in the order given): placement
    /// gives pages ids in this order, so that a commit's leaves lie in the
    /// file as their keys follow each other and a later scan of a bulk-loaded
    /// tree reads the file front to back. Dirty pages form the top of each
    /// tree (a dirty page's parent is dirty), so the walk reads dirty pages
    /// only. Pages no tree reaches come after, in index order.
    pub(crate) fn in_key_order(&self, roots: &[TreeRoot]) -> Vec<usize> {
        let n = self.pages.len();
        let mut seen = vec![false; n];
        let mut order = Vec::with_capacity(n);
        let mut stack: Vec<u64> = Vec::new();
        let is_dirty_page = |id: u64| is_temp(id) && id & RUN_BIT == 0;
        for root in roots {
            if is_dirty_page(root.page) {
                stack.push(root.page);
            }
            while let Some(id) = stack.pop() {
                let idx = (id & !TEMP_BIT) as usize;
                let Some(Some(page)) = self.pages.get(idx) else { continue };
                if std::mem::replace(&mut seen[idx], true) {
                    continue;
                }
                order.push(idx);
                if page::kind(page) == Some(page::PageKind::Branch) {
                    // Right to left onto the stack: the leftmost child comes off first.
                    for i in (0..=branch::count(page)).rev() {
                        let child = branch::child(page, i);
                        if is_dirty_page(child) {
                            stack.push(child);
                        }
                    }
                }
            }
        }
        order.extend((0..n).filter(|&i| !seen[i] && self.pages[i].is_some()));
        order
    }

    /// Number of live dirty pages and runs.
    pub fn live_counts(&self) -> (usize, usize) {
        (self.pages.iter().flatten().count(), self.runs.iter().flatten().count())
    }

    /// A dirty page by temporary id.
    pub fn page(&self, id: u64) -> Option<&[u8]> {
        debug_assert!(is_temp(id) && id & RUN_BIT == 0);
        self.pages.get((id & !TEMP_BIT) as usize).and_then(|p| p.as_deref())
    }

    /// A dirty run's payload by temporary id.
    pub fn run(&self, id: u64) -> Option<&[u8]> {
        debug_assert!(is_temp(id) && id & RUN_BIT != 0);
        self.runs.get((id & !(TEMP_BIT | RUN_BIT)) as usize).and_then(|r| r.as_ref()).map(|(_, _, b)| &b[..])
    }

    fn page_mut(&mut self, id: u64) -> &mut [u8] {
        // Invariant: temp ids handed out by this struct index live pages until dropped,
        // and dropped ids are never referenced again.
        self.pages[(id & !TEMP_BIT) as usize].as_deref_mut().expect("live dirty page")
    }

    /// A new zeroed dirty page.
    fn new_page(&mut self, table: u8, hot: bool) -> u64 {
        let buf = match self.spare.pop() {
            Some(mut buf) => {
                buf.fill(0);
                buf
            }
            None => vec![0u8; self.page_size].into_boxed_slice(),
        };
        self.push_page(buf, table, hot)
    }

    /// A new dirty page holding a copy of `src`.
    fn new_page_from(&mut self, src: &[u8], table: u8, hot: bool) -> u64 {
        let buf = match self.spare.pop() {
            Some(mut buf) => {
                buf.copy_from_slice(src);
                buf
            }
            None => src.into(),
        };
        self.push_page(buf, table, hot)
    }

    fn push_page(&mut self, buf: Box<[u8]>, table: u8, hot: bool) -> u64 {
        assert_eq!(buf.len(), self.page_size, "a dirty page is one page");
        self.pages.push(Some(buf));
        self.hot.push(hot);
        self.table.push(table);
        TEMP_BIT | (self.pages.len() as u64 - 1)
    }

    /// Stores a payload as a new run of `table`; returns its temporary id.
    pub fn new_run(&mut self, kind: page::RunKind, table: u8, payload: &[u8]) -> u64 {
        self.runs.push(Some((kind, table, payload.into())));
        TEMP_BIT | RUN_BIT | (self.runs.len() as u64 - 1)
    }

    /// Forgets a page: dropped if dirty, recorded as freed if committed.
    fn free_page(&mut self, id: u64) {
        if is_temp(id) {
            let buf = self.pages[(id & !TEMP_BIT) as usize].take();
            self.spare.extend(buf);
        } else {
            self.freed.push(id);
        }
    }

    /// Moves the value run that the leaf entry of `key` points at (at the
    /// node path the caller made dirty) to a new dirty run; frees the old one.
    pub(crate) fn move_value_run(&mut self, leaf_id: u64, key: &[u8], old: u64, table: u8, payload: &[u8]) -> bool {
        let new = self.new_run(page::RunKind::Value, table, payload);
        let page = self.page_mut(leaf_id);
        let Ok(Ok(i)) = leaf::search(page, key) else { return false };
        let Ok((_, ValueRef::Run { page: p, len })) = leaf::entry(page, i) else { return false };
        if p != old {
            return false;
        }
        leaf::patch_run_refs(page, |r| if r == old { new } else { r });
        let _ = len;
        self.free_run(old, payload.len());
        true
    }

    /// Frees a committed run of `pages` pages starting at `first`.
    pub fn free_committed_run(&mut self, first: u64, pages: u64) {
        debug_assert!(!is_temp(first));
        self.freed.extend(first..first + pages);
    }

    /// Forgets a value run whose payload is `payload_len` bytes.
    fn free_run(&mut self, id: u64, payload_len: usize) {
        if is_temp(id) {
            self.runs[(id & !(TEMP_BIT | RUN_BIT)) as usize] = None;
        } else {
            let n = page::pages_for_run(payload_len, self.page_size);
            self.freed.extend(id..id + n);
        }
    }
}

/// Rewrites the page and run references of a dirty tree page (children of
/// a branch, value runs of a leaf) through `map`.
pub(crate) fn patch_refs(buf: &mut [u8], map: impl Fn(u64) -> u64) {
    match page::kind(buf) {
        Some(page::PageKind::Branch) => {
            for i in 0..=branch::count(buf) {
                let c = branch::child(buf, i);
                branch::set_child(buf, i, map(c));
            }
        }
        Some(page::PageKind::Leaf) => leaf::patch_run_refs(buf, map),
        _ => unreachable!("dirty pages are tree nodes"),
    }
}

/// How the temporary ids of an absorbed [`Dirty`] moved (see [`Dirty::absorb`]).
#[derive(Clone, Copy, Debug)]
pub struct TempShift {
    pages: u64,
    runs: u64,
}

impl TempShift {
    /// The id an absorbed page or run has now; committed ids stay.
    pub fn id(self, id: u64) -> u64 {
        if !is_temp(id) {
            id
        } else if id & RUN_BIT != 0 {
            TEMP_BIT | RUN_BIT | ((id & !(TEMP_BIT | RUN_BIT)) + self.runs)
        } else {
            TEMP_BIT | ((id & !TEMP_BIT) + self.pages)
        }
    }
}

impl Dirty {
    /// Takes in the pages, runs and freed pages of `other` (changes of the
    /// same version made apart, on trees this one has not changed): its
    /// temporary ids move past this one's, and the references inside its
    /// pages move with them. Returns the move, for the roots of `other`.
    pub fn absorb(&mut self, other: Dirty) -> TempShift {
        assert_eq!(self.page_size, other.page_size, "absorbed changes of another database");
        assert_eq!(self.version, other.version, "absorbed changes of another version");
        let shift = TempShift { pages: self.pages.len() as u64, runs: self.runs.len() as u64 };
        self.append_hints = [const { None }; MAX_TABLES];
        self.last_inserts = [None; MAX_TABLES];
        // Nothing to patch if no id moves; leaves refer only to runs, so
        // without runs of `other` they hold no temporary id (scanning every
        // cell of every leaf was most of the absorb).
        let moved = shift.pages != 0 || shift.runs != 0;
        let leaves_refer_to_runs = !other.runs.is_empty();
        for mut page in other.pages {
            if let Some(buf) = page.as_deref_mut().filter(|_| moved) {
                if leaves_refer_to_runs || page::kind(buf) != Some(page::PageKind::Leaf) {
                    patch_refs(buf, |id| shift.id(id));
                }
            }
            self.pages.push(page);
        }
        self.hot.extend(other.hot);
        self.table.extend(other.table);
        self.runs.extend(other.runs);
        self.freed.extend(other.freed);
        self.spare.extend(other.spare);
        shift
    }

    /// Up to `max` of the spare page buffers, for the dirty pages of edits
    /// made apart ([`Dirty::with_spare_pages`]; [`Dirty::absorb`] takes back
    /// what they leave).
    pub fn lend_spare_pages(&mut self, max: usize) -> Vec<Box<[u8]>> {
        let keep = self.spare.len().saturating_sub(max);
        self.spare.split_off(keep)
    }
}

/// Reads through a transaction: dirty pages first, then the committed base.
pub struct TxnPages<'a, S: PageSource + ?Sized> {
    /// Committed pages.
    pub base: &'a S,
    /// The transaction's pages.
    pub dirty: &'a Dirty,
}

impl<S: PageSource + ?Sized> TxnPages<'_, S> {
    /// How the leaf entry of `key` stores its value, if the key exists.
    pub fn leaf_value_ref(&self, root: &TreeRoot, key: &[u8]) -> Result<Option<ValueRef<'_>>> {
        if root.is_empty() {
            return Ok(None);
        }
        let (mut id, mut level) = (root.page, root.level);
        loop {
            let p = node(self, id, level)?;
            if level == 0 {
                return match leaf::search(p, key).map_err(|m| self.corrupt(id, m.0))? {
                    Ok(i) => Ok(Some(leaf::entry(p, i).map_err(|m| self.corrupt(id, m.0))?.1)),
                    Err(_) => Ok(None),
                };
            }
            id = branch::child(p, branch::search(p, key).map_err(|m| self.corrupt(id, m.0))?);
            level -= 1;
        }
    }
}

impl<S: PageSource + ?Sized> PageSource for TxnPages<'_, S> {
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

    fn corrupt(&self, id: u64, reason: &str) -> crate::Error {
        self.base.corrupt(id, reason)
    }
}

/// What an edit did to the key's previous entry.
#[derive(Debug, Default)]
pub struct Previous {
    /// The key existed before the edit.
    pub existed: bool,
    /// Its old value, when the caller asked for it.
    pub value: Option<Vec<u8>>,
}

/// An owned copy of a new value (inline bytes or a temporary run id).
#[derive(Clone, Copy)]
pub enum NewValue<'v> {
    /// Inline in the leaf.
    Inline(&'v [u8]),
    /// In a dirty run.
    Run {
        /// Temporary run id.
        id: u64,
        /// Value length.
        len: u32,
    },
}

impl<'v> NewValue<'v> {
    fn as_ref(&self) -> ValueRef<'v> {
        match *self {
            NewValue::Inline(b) => ValueRef::Inline(b),
            NewValue::Run { id, len } => ValueRef::Run { page: id, len },
        }
    }
}

/// Mutable access to one tree during a transaction.
pub struct TreeWriter<'a, S: PageSource + ?Sized> {
    /// Committed pages.
    pub base: &'a S,
    /// The transaction's pages.
    pub dirty: &'a mut Dirty,
    /// Whether this tree's leaves are rewritten often (branch pages always are).
    pub hot_leaves: bool,
    /// The table of this tree.
    pub table: u8,
}

enum Ins {
    Same(u64),
    Split { left: u64, sep: Vec<u8>, right: u64 },
}

/// Where a node of items of these sizes splits in two halves by bytes:
/// the items before the returned index take at most half of the bytes
/// (and at least one item stays on the right).
fn half_by_bytes(sizes: &[usize]) -> usize {
    let total: usize = sizes.iter().sum();
    let mut acc = 0;
    let mut m = 0;
    while m < sizes.len() - 1 && acc + sizes[m] <= total / 2 {
        acc += sizes[m];
        m += 1;
    }
    m
}

/// Where an insert went, for the next [`AppendHint`].
#[derive(Default)]
struct Landing {
    /// The leaf, when the entry went after its last entry and fit (a split
    /// leaves it `None`: the next insert finds the new page).
    leaf: Option<u64>,
    /// The leaf's upper bound: the separator right of the path at the
    /// deepest level where the path does not take the last child (set on
    /// the way back up, only once `leaf` is known).
    fence: Option<Vec<u8>>,
}

enum Del {
    Missing,
    Changed(u64),
    Emptied,
}

/// A value captured before the page holding it changes.
enum OldValue {
    Inline(Vec<u8>),
    Run(u64, u32),
}

impl<S: PageSource + ?Sized> TreeWriter<'_, S> {
    fn corrupt(&self, id: u64, m: Malformed) -> crate::Error {
        self.base.corrupt(id, m.0)
    }

    /// Reads a node of this tree, dirty or committed.
    fn read(&self, id: u64, level: u8) -> Result<&[u8]> {
        if is_temp(id) {
            return self.dirty.page(id).ok_or_else(|| self.base.corrupt(id, "dangling dirty page id"));
        }
        node(self.base, id, level)
    }

    fn view(&self) -> TxnPages<'_, S> {
        TxnPages { base: self.base, dirty: self.dirty }
    }

    /// Returns a dirty copy of node `id` (copying it if it is committed).
    fn make_dirty(&mut self, id: u64, level: u8) -> Result<u64> {
        if is_temp(id) {
            return Ok(id);
        }
        let src = node(self.base, id, level)?;
        let new = self.dirty.new_page_from(src, self.table, level > 0 || self.hot_leaves);
        let version = self.dirty.version;
        put_u64(self.dirty.page_mut(new), 16, version);
        self.dirty.freed.push(id);
        Ok(new)
    }

    fn capture(&self, v: ValueRef<'_>, want: bool) -> (Option<OldValue>, Option<(u64, u32)>) {
        match v {
            ValueRef::Inline(b) => (want.then(|| OldValue::Inline(b.to_vec())), None),
            ValueRef::Run { page, len } => (want.then_some(OldValue::Run(page, len)), Some((page, len))),
        }
    }

    fn resolve(&self, old: Option<OldValue>) -> Result<Option<Vec<u8>>> {
        Ok(match old {
            None => None,
            Some(OldValue::Inline(v)) => Some(v),
            Some(OldValue::Run(page, len)) => Some(value_bytes(&self.view(), ValueRef::Run { page, len })?.to_vec()),
        })
    }

    /// Copies the nodes from the root down to the node at `level` holding
    /// `key` into dirty pages (their content unchanged), so that they are
    /// written elsewhere at commit: how cleaning moves a live page. Returns
    /// the dirty node's id (`None` if the tree has no such level).
    pub fn touch(&mut self, root: &mut TreeRoot, key: &[u8], level: u8) -> Result<Option<u64>> {
        self.touch_if(root, key, level, None)
    }

    /// [`TreeWriter::touch`] if the node at `level` holding `key` is page
    /// `page` (one descent, where cleaning used to locate the node first and
    /// then descend again to touch it); false, changing nothing, if it is not.
    pub fn touch_at(&mut self, root: &mut TreeRoot, key: &[u8], level: u8, page: u64) -> Result<bool> {
        self.touch_if(root, key, level, Some(page)).map(|touched| touched.is_some())
    }

    /// The dirty id of the node touched, if any.
    fn touch_if(&mut self, root: &mut TreeRoot, key: &[u8], level: u8, only: Option<u64>) -> Result<Option<u64>> {
        if root.is_empty() || level > root.level {
            return Ok(None);
        }
        let mut touched = None;
        let page = self.touch_rec(root.page, root.level, key, level, only, &mut touched)?;
        if touched.is_some() {
            self.dirty.forget_inserts(self.table);
            root.page = page;
        }
        Ok(touched)
    }

    fn touch_rec(
        &mut self,
        id: u64,
        level: u8,
        key: &[u8],
        target: u8,
        only: Option<u64>,
        touched: &mut Option<u64>,
    ) -> Result<u64> {
        if level == target {
            if only.is_some_and(|page| page != id) {
                return Ok(id);
            }
            let dirty = self.make_dirty(id, level)?;
            *touched = Some(dirty);
            return Ok(dirty);
        }
        let p = self.read(id, level)?;
        let i = branch::search(p, key).map_err(|m| self.corrupt(id, m))?;
        let child = branch::child(p, i);
        let c = self.touch_rec(child, level - 1, key, target, only, touched)?;
        if c == child {
            return Ok(id);
        }
        let id = self.make_dirty(id, level)?;
        branch::set_child(self.dirty.page_mut(id), i, c);
        Ok(id)
    }

    /// Inserts or replaces `key`.
    pub fn insert(&mut self, root: &mut TreeRoot, key: &[u8], value: NewValue<'_>, want_old: bool) -> Result<Previous> {
        let mut prev = Previous::default();
        let table = usize::from(self.table);
        if let Some(hint) = self.dirty.append_hints[table].take() {
            if hint.root == *root && self.append_at_hint(&hint, key, value) {
                root.entries += 1;
                self.dirty.append_hints[table] = Some(AppendHint { root: *root, ..hint });
                return Ok(prev);
            }
        }
        if root.is_empty() {
            let id = self.dirty.new_page(self.table, self.hot_leaves);
            let version = self.dirty.version;
            let buf = self.dirty.page_mut(id);
            leaf::init(buf, version);
            let ok = leaf::insert(buf, 0, key, value.as_ref());
            debug_assert!(ok, "one entry always fits an empty leaf");
            *root = TreeRoot { page: id, level: 0, entries: 1 };
            return Ok(prev);
        }
        if root.level as usize >= MAX_DEPTH {
            return Err(self.base.corrupt(root.page, "tree deeper than the limit"));
        }
        let mut old = None;
        let mut run_to_free = None;
        let mut landing = Landing::default();
        let res = self.insert_rec(
            root.page,
            root.level,
            key,
            value,
            want_old,
            &mut prev,
            &mut old,
            &mut run_to_free,
            &mut landing,
        )?;
        prev.value = self.resolve(old)?;
        if let Some((page, len)) = run_to_free {
            self.dirty.free_run(page, 2 + key.len() + len as usize);
        }
        match res {
            Ins::Same(id) => root.page = id,
            Ins::Split { left, sep, right } => {
                let id = self.dirty.new_page(self.table, true);
                let version = self.dirty.version;
                let b = BranchBuf { level: root.level + 1, seps: vec![sep], children: vec![left, right] };
                b.encode(self.dirty.page_mut(id), version);
                root.page = id;
                root.level += 1;
            }
        }
        if !prev.existed {
            root.entries += 1;
        }
        if let Some(leaf) = landing.leaf {
            self.dirty.append_hints[table] = Some(AppendHint { root: *root, leaf, fence: landing.fence });
        }
        Ok(prev)
    }

    /// Appends `key` to the hint's leaf if it is a dirty leaf, `key` lies
    /// between its last key and its upper bound, and the entry fits; the
    /// caller vouches that the hint is current. Leaves the page as it was
    /// otherwise.
    fn append_at_hint(&mut self, hint: &AppendHint, key: &[u8], value: NewValue<'_>) -> bool {
        let Some(page) = self.dirty.page(hint.leaf) else { return false };
        let n = leaf::count(page);
        let after_last = n > 0 && leaf::key(page, n - 1).is_ok_and(|last| key > last);
        let below_fence = hint.fence.as_deref().is_none_or(|fence| key < fence);
        after_last && below_fence && leaf::insert(self.dirty.page_mut(hint.leaf), n, key, value.as_ref())
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_rec(
        &mut self,
        id: u64,
        level: u8,
        key: &[u8],
        value: NewValue<'_>,
        want_old: bool,
        prev: &mut Previous,
        old: &mut Option<OldValue>,
        run_to_free: &mut Option<(u64, u32)>,
        landing: &mut Landing,
    ) -> Result<Ins> {
        if level == 0 {
            let id = self.make_dirty(id, 0)?;
            let page = self.dirty.page(id).expect("dirty");
            let found = leaf::search(page, key).map_err(|m| self.corrupt(id, m))?;
            let after_last = found == Err(leaf::count(page));
            let pos = match found {
                Ok(i) => {
                    let page = self.dirty.page(id).expect("dirty");
                    let (_, v) = leaf::entry(page, i).map_err(|m| self.corrupt(id, m))?;
                    let (o, r) = self.capture(v, want_old);
                    *old = o;
                    *run_to_free = r;
                    prev.existed = true;
                    leaf::remove(self.dirty.page_mut(id), i);
                    i
                }
                Err(i) => i,
            };
            if leaf::insert(self.dirty.page_mut(id), pos, key, value.as_ref()) {
                if after_last {
                    landing.leaf = Some(id);
                }
                if found.is_err() {
                    self.note_insert(id, pos);
                }
                return Ok(Ins::Same(id));
            }
            return Ok(self.split_leaf(id, pos, key, value));
        }
        let p = self.read(id, level)?;
        let i = branch::search(p, key).map_err(|m| self.corrupt(id, m))?;
        let last_child = i == branch::count(p);
        let child = branch::child(p, i);
        match self.insert_rec(child, level - 1, key, value, want_old, prev, old, run_to_free, landing)? {
            Ins::Same(c) => {
                let id = if c == child {
                    id
                } else {
                    let id = self.make_dirty(id, level)?;
                    branch::set_child(self.dirty.page_mut(id), i, c);
                    id
                };
                if landing.leaf.is_some() && landing.fence.is_none() && !last_child {
                    let p = self.read(id, level)?;
                    let sep = branch::separator(p, i).map_err(|m| self.corrupt(id, m))?;
                    landing.fence = Some(sep.to_vec());
                }
                Ok(Ins::Same(id))
            }
            Ins::Split { left, sep, right } => {
                let id = self.make_dirty(id, level)?;
                let page = self.dirty.page_mut(id);
                if i == branch::count(page) && branch::try_append(page, &sep, left, right) {
                    return Ok(Ins::Same(id));
                }
                let mut b = BranchBuf::decode(self.dirty.page(id).expect("dirty")).map_err(|m| self.corrupt(id, m))?;
                b.children[i] = left;
                b.seps.insert(i, sep);
                b.children.insert(i + 1, right);
                Ok(self.store_branch(id, b))
            }
        }
    }

    /// Writes a changed branch back, splitting it when it no longer fits.
    fn store_branch(&mut self, id: u64, b: BranchBuf) -> Ins {
        let ps = self.dirty.page_size;
        let version = self.dirty.version;
        if b.encoded_size() <= ps {
            b.encode(self.dirty.page_mut(id), version);
            return Ins::Same(id);
        }
        // Split by bytes so that long separators cannot overload one half.
        let sizes: Vec<usize> = b.seps.iter().map(|s| s.len() + 20).collect();
        let m = half_by_bytes(&sizes).max(1).min(b.seps.len() - 1);
        let left = BranchBuf { level: b.level, seps: b.seps[..m].to_vec(), children: b.children[..=m].to_vec() };
        let right =
            BranchBuf { level: b.level, seps: b.seps[m + 1..].to_vec(), children: b.children[m + 1..].to_vec() };
        debug_assert!(left.encoded_size() <= ps && right.encoded_size() <= ps);
        left.encode(self.dirty.page_mut(id), version);
        let rid = self.dirty.new_page(self.table, true);
        right.encode(self.dirty.page_mut(rid), version);
        Ins::Split { left: id, sep: b.seps[m].clone(), right: rid }
    }

    fn split_leaf(&mut self, id: u64, pos: usize, key: &[u8], value: NewValue<'_>) -> Ins {
        let version = self.dirty.version;
        let n = leaf::count(self.dirty.page(id).expect("dirty"));
        if pos == n && n > 0 {
            // Appending past the last entry (sequential loads: the change
            // log, sorted imports): the full leaf stays as it is and the new
            // entry starts the right page, so sequential loads fill pages
            // completely and the left page is not rebuilt.
            let sep = {
                let page = self.dirty.page(id).expect("dirty");
                // Invariant: the page was checked when it was made dirty and edited only by this module.
                let (last, _) = leaf::entry(page, n - 1).expect("dirty leaf entries decode");
                branch::shortest_separator(last, key)
            };
            let rid = self.dirty.new_page(self.table, self.hot_leaves);
            let right = self.dirty.page_mut(rid);
            leaf::init(right, version);
            let ok = leaf::insert(right, 0, key, value.as_ref());
            debug_assert!(ok, "one entry always fits an empty leaf");
            self.note_insert(rid, 0);
            return Ins::Split { left: id, sep, right: rid };
        }
        let copy = self.dirty.page(id).expect("dirty").to_vec();
        let mut entries: Vec<(&[u8], ValueRef<'_>)> = Vec::with_capacity(n + 1);
        for i in 0..n {
            // Invariant: the page was checked when it was made dirty and edited only by this module.
            entries.push(leaf::entry(&copy, i).expect("dirty leaf entries decode"));
        }
        entries.insert(pos, (key, value.as_ref()));
        debug_assert!(pos < n, "an append to a full leaf is handled above");
        let sizes: Vec<usize> = entries.iter().map(|(k, v)| leaf::entry_size(k.len(), v)).collect();
        let ascending = self.dirty.last_inserts[usize::from(self.table)]
            .is_some_and(|last| last.leaf == id && last.pos + 1 == pos && last.run + 1 >= ASCENDING_RUN);
        let m = if ascending {
            // The key right after the last one inserted: an ascending run
            // inside the tree (an import writes address preimages in key
            // order below the preimages of a few slots). Everything up to
            // the new key stays on the left, which is full; halves would
            // leave every page of the run half empty. The new key goes
            // right if the left has no room for it.
            let head: usize = sizes[..=pos].iter().sum();
            if head <= self.dirty.page_size - HEADER_LEN {
                pos + 1
            } else {
                pos
            }
        } else {
            // Any other insert inside the leaf splits it in two halves by bytes.
            half_by_bytes(&sizes)
        };
        let m = m.max(1);
        debug_assert!(m < entries.len(), "both pages of a split hold entries");
        let sep = branch::shortest_separator(entries[m - 1].0, entries[m].0);
        leaf::build(self.dirty.page_mut(id), version, entries[..m].iter().copied());
        let rid = self.dirty.new_page(self.table, self.hot_leaves);
        leaf::build(self.dirty.page_mut(rid), version, entries[m..].iter().copied());
        let (leaf, pos) = if pos < m { (id, pos) } else { (rid, pos - m) };
        self.note_insert(leaf, pos);
        Ins::Split { left: id, sep, right: rid }
    }

    /// Records that a new key went to `pos` of `leaf`; a split may have
    /// moved the previous one, which counts as a break of the run unless
    /// the key went right after it in the same leaf.
    fn note_insert(&mut self, leaf: u64, pos: usize) {
        let last = &mut self.dirty.last_inserts[usize::from(self.table)];
        let run = match *last {
            Some(prev) if prev.leaf == leaf && prev.pos + 1 == pos => prev.run.saturating_add(1),
            _ => 1,
        };
        *last = Some(LastInsert { leaf, pos, run });
    }

    /// Deletes `key`; returns whether it existed (and its value when asked).
    pub fn delete(&mut self, root: &mut TreeRoot, key: &[u8], want_old: bool) -> Result<Previous> {
        self.dirty.forget_inserts(self.table);
        let mut prev = Previous::default();
        if root.is_empty() {
            return Ok(prev);
        }
        if root.level as usize >= MAX_DEPTH {
            return Err(self.base.corrupt(root.page, "tree deeper than the limit"));
        }
        let mut old = None;
        let mut run_to_free = None;
        let res = self.delete_rec(root.page, root.level, key, want_old, &mut old, &mut run_to_free)?;
        prev.value = self.resolve(old)?;
        if let Some((page, len)) = run_to_free {
            self.dirty.free_run(page, 2 + key.len() + len as usize);
        }
        let remaining = root.entries.saturating_sub(1);
        match res {
            Del::Missing => return Ok(prev),
            Del::Emptied => {
                debug_assert_eq!(remaining, 0, "an emptied tree held one entry");
                *root = TreeRoot::default();
            }
            Del::Changed(id) => {
                root.page = id;
                // Collapse roots with a single child.
                while root.level > 0 {
                    let p = self.read(root.page, root.level)?;
                    if branch::count(p) > 0 {
                        break;
                    }
                    let only = branch::child(p, 0);
                    self.dirty.free_page(root.page);
                    root.page = only;
                    root.level -= 1;
                }
            }
        }
        prev.existed = true;
        root.entries = if root.is_empty() { 0 } else { remaining };
        Ok(prev)
    }

    fn delete_rec(
        &mut self,
        id: u64,
        level: u8,
        key: &[u8],
        want_old: bool,
        old: &mut Option<OldValue>,
        run_to_free: &mut Option<(u64, u32)>,
    ) -> Result<Del> {
        if level == 0 {
            let p = self.read(id, 0)?;
            let Ok(i) = leaf::search(p, key).map_err(|m| self.corrupt(id, m))? else {
                return Ok(Del::Missing);
            };
            let (_, v) = leaf::entry(p, i).map_err(|m| self.corrupt(id, m))?;
            let (o, r) = self.capture(v, want_old);
            *old = o;
            *run_to_free = r;
            if leaf::count(p) == 1 {
                self.dirty.free_page(id);
                return Ok(Del::Emptied);
            }
            let id = self.make_dirty(id, 0)?;
            leaf::remove(self.dirty.page_mut(id), i);
            return Ok(Del::Changed(id));
        }
        let p = self.read(id, level)?;
        let i = branch::search(p, key).map_err(|m| self.corrupt(id, m))?;
        let child = branch::child(p, i);
        let res = self.delete_rec(child, level - 1, key, want_old, old, run_to_free)?;
        if let Del::Missing = res {
            return Ok(Del::Missing);
        }
        let id = self.make_dirty(id, level)?;
        let mut b = BranchBuf::decode(self.dirty.page(id).expect("dirty")).map_err(|m| self.corrupt(id, m))?;
        match res {
            Del::Missing => unreachable!("handled above"),
            Del::Emptied => {
                b.children.remove(i);
                if !b.seps.is_empty() {
                    b.seps.remove(i.saturating_sub(1));
                }
                if b.children.is_empty() {
                    self.dirty.free_page(id);
                    return Ok(Del::Emptied);
                }
            }
            Del::Changed(c) => {
                b.children[i] = c;
                if self.underfull(c, level - 1) && b.children.len() > 1 {
                    let j = if i + 1 < b.children.len() { i } else { i - 1 };
                    self.try_merge(&mut b, j, level - 1)?;
                }
            }
        }
        let ps = self.dirty.page_size;
        let version = self.dirty.version;
        debug_assert!(b.encoded_size() <= ps, "removing entries never grows a branch past a page");
        b.encode(self.dirty.page_mut(id), version);
        Ok(Del::Changed(id))
    }

    fn underfull(&self, id: u64, level: u8) -> bool {
        let quarter = (self.dirty.page_size - HEADER_LEN) / 4;
        let p = self.dirty.page(id).expect("changed child is dirty");
        if level == 0 {
            leaf::used_space(p) < quarter
        } else {
            BranchBuf::decode(p).map(|b| b.encoded_size() - HEADER_LEN < quarter).unwrap_or(false)
        }
    }

    /// Merges children `j` and `j + 1` of `b` when they fit in one page.
    fn try_merge(&mut self, b: &mut BranchBuf, j: usize, child_level: u8) -> Result<()> {
        let ps = self.dirty.page_size;
        let version = self.dirty.version;
        let (l, r) = (b.children[j], b.children[j + 1]);
        let lp = self.read(l, child_level)?;
        let rp = self.read(r, child_level)?;
        if child_level == 0 {
            if leaf::used_space(lp) + leaf::used_space(rp) > ps - HEADER_LEN {
                return Ok(());
            }
            let mut merged = vec![0u8; ps];
            {
                let mut entries = Vec::with_capacity(leaf::count(lp) + leaf::count(rp));
                for (p, pid) in [(lp, l), (rp, r)] {
                    for i in 0..leaf::count(p) {
                        entries.push(leaf::entry(p, i).map_err(|m| self.corrupt(pid, m))?);
                    }
                }
                leaf::build(&mut merged, version, entries.into_iter());
            }
            let l = self.make_dirty(l, 0)?;
            self.dirty.page_mut(l).copy_from_slice(&merged);
            self.dirty.free_page(r);
            b.children[j] = l;
        } else {
            let lb = BranchBuf::decode(lp).map_err(|m| self.corrupt(l, m))?;
            let rb = BranchBuf::decode(rp).map_err(|m| self.corrupt(r, m))?;
            let mut seps = lb.seps;
            seps.push(b.seps[j].clone());
            seps.extend(rb.seps);
            let mut children = lb.children;
            children.extend(rb.children);
            let m = BranchBuf { level: child_level, seps, children };
            if m.encoded_size() > ps {
                return Ok(());
            }
            let l = self.make_dirty(l, child_level)?;
            m.encode(self.dirty.page_mut(l), version);
            self.dirty.free_page(r);
            b.children[j] = l;
        }
        b.children.remove(j + 1);
        b.seps.remove(j);
        Ok(())
    }
}
