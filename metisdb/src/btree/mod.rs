//! Copy-on-write B+tree over pages: node formats, reads (any page source)
//! and writes (a transaction's dirty pages).

pub mod branch;
pub mod leaf;
pub mod write;

use crate::error::Result;
use crate::page::{self, PageKind};
use leaf::ValueRef;

/// Trees deeper than this are treated as corrupt (a 4 KiB-page tree of
/// 2^64 keys is shallower), which also stops pointer cycles in bad files.
pub const MAX_DEPTH: usize = 16;

/// A page that decoded to nonsense: turned into [`crate::Error::Corrupt`] with
/// the file and page number by the page source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Where tree reads get their pages from: a snapshot's memory map, or a write
/// transaction's dirty pages over the map.
pub trait PageSource {
    /// Returns page `id`, checksum-verified.
    fn page(&self, id: u64) -> Result<&[u8]>;
    /// Returns the payload of the run starting at `id`, checksum-verified.
    fn run_payload(&self, id: u64) -> Result<&[u8]>;
    /// Builds the corruption error for page `id`.
    fn corrupt(&self, id: u64, reason: &str) -> crate::Error;
}

/// Reads a tree node and checks it is of the kind its parent expects.
pub(crate) fn node<S: PageSource + ?Sized>(src: &S, id: u64, level: u8) -> Result<&[u8]> {
    let p = src.page(id)?;
    check_node(p, level).map_err(|m| src.corrupt(id, m.0))?;
    Ok(p)
}

/// Checks that a (checksum-verified) page is a well-formed node of `level`.
pub(crate) fn check_node(p: &[u8], level: u8) -> std::result::Result<(), Malformed> {
    match page::kind(p) {
        Some(PageKind::Leaf) if level == 0 => leaf::check(p),
        Some(PageKind::Branch) if level > 0 => {
            branch::check(p)?;
            if branch::level(p) != level {
                return Err(Malformed("branch level differs from its depth"));
            }
            Ok(())
        }
        _ => Err(Malformed("unexpected page kind for this tree level")),
    }
}

/// Payload of a value run: the owning key (so that cleaning can find the
/// leaf that points at the run), then the value.
/// `key_len u16 | key | value`.
pub fn value_run_payload(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + key.len() + value.len());
    p.extend_from_slice(&(key.len() as u16).to_le_bytes());
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

/// Splits a value run's payload into (owning key, value).
pub fn split_value_run(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let klen = u16::from_le_bytes([*payload.first()?, *payload.get(1)?]) as usize;
    let key = payload.get(2..2 + klen)?;
    Some((key, &payload[2 + klen..]))
}

/// Resolves a leaf value to its bytes.
pub(crate) fn value_bytes<'a, S: PageSource + ?Sized>(src: &'a S, v: ValueRef<'a>) -> Result<&'a [u8]> {
    match v {
        ValueRef::Inline(b) => Ok(b),
        ValueRef::Run { page, len } => run_value(src.run_payload(page)?, len).map_err(|r| src.corrupt(page, r)),
    }
}

/// The value in a value run's payload, which a leaf says is `len` bytes long.
pub(crate) fn run_value(payload: &[u8], len: u32) -> std::result::Result<&[u8], &'static str> {
    match split_value_run(payload) {
        Some((_, value)) if value.len() == len as usize => Ok(value),
        _ => Err("value run length differs from the leaf's record"),
    }
}

/// Root of one tree: page id (0 = empty tree) and height (levels above the leaves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeRoot {
    /// Root page, or 0 for an empty tree.
    pub page: u64,
    /// Level of the root page (0 when the root is a leaf).
    pub level: u8,
    /// Number of entries in the tree.
    pub entries: u64,
}

impl TreeRoot {
    /// True when the tree holds nothing.
    pub fn is_empty(&self) -> bool {
        self.page == 0
    }
}

/// Point lookup.
pub fn get<'a, S: PageSource + ?Sized>(src: &'a S, root: &TreeRoot, key: &[u8]) -> Result<Option<&'a [u8]>> {
    if root.is_empty() {
        return Ok(None);
    }
    if root.level as usize >= MAX_DEPTH {
        return Err(src.corrupt(root.page, "tree deeper than the limit"));
    }
    let mut id = root.page;
    let mut level = root.level;
    loop {
        let p = node(src, id, level)?;
        if level == 0 {
            return match leaf::search(p, key).map_err(|m| src.corrupt(id, m.0))? {
                Ok(i) => {
                    let (_, v) = leaf::entry(p, i).map_err(|m| src.corrupt(id, m.0))?;
                    Ok(Some(value_bytes(src, v)?))
                }
                Err(_) => Ok(None),
            };
        }
        let i = branch::search(p, key).map_err(|m| src.corrupt(id, m.0))?;
        id = branch::child(p, i);
        level -= 1;
    }
}

/// Forward iterator over a tree from a start key.
pub struct Cursor<'a, S: PageSource + ?Sized> {
    src: &'a S,
    /// (page id, index) per level, root first; the last entry is the leaf.
    stack: Vec<(u64, usize)>,
    /// The leaf the stack ends at, read and checked once.
    leaf: &'a [u8],
    root: TreeRoot,
    done: bool,
}

impl<'a, S: PageSource + ?Sized> Cursor<'a, S> {
    /// A cursor positioned at the first key `>= start`.
    pub fn seek(src: &'a S, root: TreeRoot, start: &[u8]) -> Result<Self> {
        let mut c =
            Cursor { src, stack: Vec::with_capacity(root.level as usize + 1), leaf: &[], root, done: root.is_empty() };
        if c.done {
            return Ok(c);
        }
        if root.level as usize >= MAX_DEPTH {
            return Err(src.corrupt(root.page, "tree deeper than the limit"));
        }
        let mut id = root.page;
        let mut level = root.level;
        loop {
            let p = node(src, id, level)?;
            if level == 0 {
                // Its entries are read next.
                crate::prefetch::prefetch(p);
                let i = match leaf::search(p, start).map_err(|m| src.corrupt(id, m.0))? {
                    Ok(i) | Err(i) => i,
                };
                c.stack.push((id, i));
                c.leaf = p;
                break;
            }
            let i = branch::search(p, start).map_err(|m| src.corrupt(id, m.0))?;
            c.stack.push((id, i));
            id = branch::child(p, i);
            level -= 1;
        }
        Ok(c)
    }

    /// Moves to the next leaf when the current one is exhausted. Returns false at the end.
    fn advance_leaf(&mut self) -> Result<bool> {
        // Pop exhausted levels.
        loop {
            self.stack.pop();
            let Some(&(id, i)) = self.stack.last() else {
                return Ok(false);
            };
            let level = self.root.level - (self.stack.len() as u8 - 1);
            let p = node(self.src, id, level)?;
            if i < branch::count(p) {
                self.stack.last_mut().expect("non-empty").1 += 1;
                break;
            }
        }
        // Descend to the leftmost leaf under the new position.
        loop {
            let depth = self.stack.len();
            let level = self.root.level - (depth as u8 - 1);
            let (id, i) = *self.stack.last().expect("stack is non-empty while descending");
            if level == 0 {
                self.leaf = node(self.src, id, 0)?;
                crate::prefetch::prefetch(self.leaf);
                return Ok(true);
            }
            let p = node(self.src, id, level)?;
            self.stack.push((branch::child(p, i), 0));
        }
    }

    /// Next entry, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>> {
        if self.done {
            return Ok(None);
        }
        loop {
            let &(id, i) = self.stack.last().expect("cursor stack holds the leaf");
            let p = self.leaf;
            if i < leaf::count(p) {
                let (k, v) = leaf::entry(p, i).map_err(|m| self.src.corrupt(id, m.0))?;
                let v = value_bytes(self.src, v)?;
                self.stack.last_mut().expect("non-empty").1 += 1;
                return Ok(Some((k, v)));
            }
            if !self.advance_leaf()? {
                self.done = true;
                return Ok(None);
            }
        }
    }
}
