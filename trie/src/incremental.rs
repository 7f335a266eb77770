//! Incremental state roots over stored branch records.
//!
//! The storage engine keeps, per trie, the leaves (by 32-byte hashed key)
//! and the [`BranchRecord`]s of the stored branch nodes (by nibble path),
//! and exposes them through [`LeafCursor`] and [`BranchStore`]. Given the
//! set of changed keys, [`update_root`] computes the new root and the exact
//! record changes, reading only what the changed paths need:
//!
//! - a stored branch with no changed key below it is taken from its record
//!   (its hash is recomputed from the stored child references, no reads
//!   below it);
//! - a stored branch with changed keys below it is *visited*: its unchanged
//!   children are taken from the record as opaque child references, its
//!   changed children are walked in turn;
//! - a changed child that is a leaf or an unstored branch is rebuilt from
//!   the leaves under it (a few dozen at most for hashed keys: the storage
//!   policy of [`crate::record`] stores every branch of a full level).
//!
//! Deletions can leave a visited branch with a single child, which must then
//! merge with its parent (the branch disappears, the child's path grows). An
//! opaque child reference cannot be merged, so before emitting children the
//! walk checks, with one leaf seek per changed child, whether the branch
//! keeps at least two children. If not, its remaining unchanged child is fed
//! structurally instead: a stored child branch by its own record, a leaf or
//! unstored branch by its leaves.
//!
//! Everything is fed to a [`RootBuilder`] in key order; it rebuilds the
//! branches on the changed paths and reports their records. Records of
//! visited branches that the builder did not produce again are removals,
//! produced records that differ from the visited ones are upserts.
//!
//! # Parallel updates
//!
//! [`update_subtrie`] does the same for the part of the trie under one path
//! prefix and returns its topmost node unhashed ([`SubtrieTop`]).
//! [`combine_subtries`] takes the results for a set of prefixes that
//! partitions the key space (e.g. the 16 one-nibble prefixes from
//! [`prefixes_at_depth`]), builds the branch nodes above them and returns
//! the same [`RootUpdate`] as the sequential [`update_root`]. Each
//! [`update_subtrie`] call only touches records and leaves under its prefix,
//! so the calls can run on separate threads with separate cursors.

use crate::bottom::{bottom_branch, BottomScratch, MAX_BOTTOM_LEAVES};
use crate::builder::{BuildError, RootBuilder, SubtrieTop};
use crate::nibbles::{packed_nibble, Nibbles};
use crate::record::{BranchRecord, ChildKind};
use alloy_primitives::{B256, U256};
use core::fmt;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The leaves of one trie in key order (new contents, after the changes).
pub trait LeafCursor {
    /// Error of the underlying storage.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Positions at the first leaf with key `>= key` and returns it (key and
    /// RLP leaf value), or `None` past the last leaf.
    fn seek(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>, Self::Error>;
    /// Advances to the next leaf and returns it.
    fn next(&mut self) -> Result<Option<(B256, Vec<u8>)>, Self::Error>;
}

/// The stored branch records of one trie (old contents, before the
/// changes), by nibble path.
pub trait BranchStore {
    /// Error of the underlying storage.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The record at exactly `path`.
    fn get(&mut self, path: &Nibbles) -> Result<Option<BranchRecord>, Self::Error>;
    /// The first record whose path is `>= path` in [`Nibbles`] order (a
    /// prefix sorts before the paths it prefixes, so this finds the topmost
    /// stored branch under a prefix). [`Nibbles::to_stored_key`] gives table
    /// keys with this order.
    fn seek(&mut self, path: &Nibbles) -> Result<Option<(Nibbles, BranchRecord)>, Self::Error>;
}

/// Errors of the incremental root, full root and proof functions.
#[derive(Debug)]
pub enum TrieError {
    /// The leaf cursor failed.
    Leaves(Box<dyn std::error::Error + Send + Sync>),
    /// The branch store failed.
    Branches(Box<dyn std::error::Error + Send + Sync>),
    /// The stored data cannot form a trie (e.g. a record says a child branch
    /// is stored but there is no record under it).
    Inconsistent(String),
    /// The inputs could not be assembled into a trie.
    Build(BuildError),
    /// Subtrie prefixes passed to [`combine_subtries`] do not partition the
    /// key space.
    InvalidPartition(String),
}

impl fmt::Display for TrieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leaves(e) => write!(f, "leaf cursor error: {e}"),
            Self::Branches(e) => write!(f, "branch store error: {e}"),
            Self::Inconsistent(m) => write!(f, "inconsistent trie data: {m}"),
            Self::Build(e) => write!(f, "trie build error: {e}"),
            Self::InvalidPartition(m) => write!(f, "invalid subtrie partition: {m}"),
        }
    }
}

impl std::error::Error for TrieError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Leaves(e) | Self::Branches(e) => Some(e.as_ref()),
            Self::Build(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BuildError> for TrieError {
    fn from(e: BuildError) -> Self {
        Self::Build(e)
    }
}

/// The sorted set of changed (inserted, updated or deleted) leaf keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    keys: Vec<B256>,
}

impl PrefixSet {
    /// Collects, sorts and deduplicates the keys.
    pub fn from_keys(keys: impl IntoIterator<Item = B256>) -> Self {
        let mut keys: Vec<B256> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        Self { keys }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key changed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys in order.
    pub fn keys(&self) -> &[B256] {
        &self.keys
    }

    /// Whether a changed key lies in `lo..=hi`.
    pub fn any_in(&self, lo: &B256, hi: &B256) -> bool {
        let i = self.keys.partition_point(|k| k < lo);
        self.keys.get(i).is_some_and(|k| k <= hi)
    }

    /// Bit `n` set iff a changed key starts with `prefix` followed by nibble
    /// `n`: one pass over the keys under `prefix` (the sixteen
    /// [`PrefixSet::contains_prefix`] searches it replaces were one in
    /// twenty-five of the account walk's samples).
    pub fn child_mask(&self, prefix: &Nibbles) -> u16 {
        let depth = prefix.len();
        let Some((lo, hi)) = key_range(prefix).filter(|_| depth < 64) else {
            return 0;
        };
        let start = self.keys.partition_point(|k| k < &lo);
        let mut mask = 0u16;
        for key in self.keys[start..].iter().take_while(|k| **k <= hi) {
            mask |= 1 << packed_nibble(key.as_slice(), depth);
        }
        mask
    }

    /// Whether a changed key starts with `prefix`.
    pub fn contains_prefix(&self, prefix: &Nibbles) -> bool {
        match key_range(prefix) {
            Some((lo, hi)) => self.any_in(&lo, &hi),
            None => false,
        }
    }
}

/// The changes to apply to the branch store, and the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootUpdate {
    /// The new root hash.
    pub root: B256,
    /// Records to write (new or changed), sorted by path.
    pub upserts: Vec<(Nibbles, BranchRecord)>,
    /// Paths whose records must be deleted, sorted.
    pub removals: Vec<Nibbles>,
}

/// The update of the part of a trie under one prefix (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtrieUpdate {
    /// The prefix this update covers.
    pub prefix: Nibbles,
    /// The new topmost node under the prefix.
    pub top: SubtrieTop,
    /// Records to write under the prefix, sorted by path.
    pub upserts: Vec<(Nibbles, BranchRecord)>,
    /// Records to delete under the prefix, sorted.
    pub removals: Vec<Nibbles>,
}

/// A trie built from scratch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullRoot {
    /// The root hash.
    pub root: B256,
    /// Every stored branch record, sorted by path.
    pub records: Vec<(Nibbles, BranchRecord)>,
}

impl FullRoot {
    /// The records as a map.
    pub fn records_map(&self) -> BTreeMap<Nibbles, BranchRecord> {
        self.records.iter().cloned().collect()
    }
}

/// The smallest and largest 32-byte keys starting with `prefix`.
fn key_range(prefix: &Nibbles) -> Option<(B256, B256)> {
    Some((prefix.pad_to_b256(0)?, prefix.pad_to_b256(0x0f)?))
}

fn key_to_u256(k: &B256) -> U256 {
    U256::from_be_bytes(k.0)
}

fn u256_to_key(v: U256) -> B256 {
    B256::from(v.to_be_bytes::<32>())
}

fn leaf_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> TrieError {
    TrieError::Leaves(Box::new(e))
}

fn branch_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> TrieError {
    TrieError::Branches(Box::new(e))
}

/// The in-order walk over old records and new leaves that feeds a builder.
pub(crate) struct Walk<'a, L, B> {
    changed: &'a PrefixSet,
    leaves: &'a mut L,
    branches: &'a mut B,
    builder: RootBuilder,
    /// Old records of the branches visited (the only ones that can change).
    visited: Vec<(Nibbles, BranchRecord)>,
    /// The leaves of the unstored subtrie being rebuilt, and the buffers
    /// that build it ([`crate::bottom`]), reused between subtries.
    bottom_leaves: Vec<(B256, Vec<u8>)>,
    bottom_scratch: BottomScratch,
}

impl<'a, L: LeafCursor, B: BranchStore> Walk<'a, L, B> {
    pub(crate) fn new(changed: &'a PrefixSet, leaves: &'a mut L, branches: &'a mut B, builder: RootBuilder) -> Self {
        Self {
            changed,
            leaves,
            branches,
            builder,
            visited: Vec::new(),
            bottom_leaves: Vec::new(),
            bottom_scratch: BottomScratch::default(),
        }
    }

    /// The topmost stored branch under `prefix`, if any. Under the storage
    /// policy the topmost branch under a prefix is stored whenever any branch
    /// under it is, and it sorts first among them.
    pub(crate) fn find_top(&mut self, prefix: &Nibbles) -> Result<Option<(Nibbles, BranchRecord)>, TrieError> {
        match self.branches.seek(prefix).map_err(branch_err)? {
            Some((path, record)) if path.starts_with(prefix) => {
                if path.len() >= 64 {
                    return Err(TrieError::Inconsistent(format!("branch record at {path:?} is too deep")));
                }
                Ok(Some((path, record)))
            }
            _ => Ok(None),
        }
    }

    /// Like [`Walk::find_top`] for a slot its parent marks as a stored branch.
    fn require_top(&mut self, slot: &Nibbles) -> Result<(Nibbles, BranchRecord), TrieError> {
        self.find_top(slot)?.ok_or_else(|| {
            TrieError::Inconsistent(format!("parent marks {slot:?} as a stored branch but no record is under it"))
        })
    }

    /// Feeds every leaf with key in `lo..=hi`.
    fn emit_leaves(&mut self, lo: &B256, hi: &B256) -> Result<(), TrieError> {
        let entry = self.leaves.seek(lo).map_err(leaf_err)?;
        self.feed_leaves_from(entry, hi)
    }

    /// Feeds `entry` (the cursor's current leaf) and the leaves after it,
    /// up to key `hi`.
    fn feed_leaves_from(&mut self, mut entry: Option<(B256, Vec<u8>)>, hi: &B256) -> Result<(), TrieError> {
        while let Some((key, value)) = entry {
            if &key > hi {
                break;
            }
            self.builder.add_leaf(Nibbles::from_b256(&key), &value)?;
            entry = self.leaves.next().map_err(leaf_err)?;
        }
        Ok(())
    }

    /// Feeds the subtrie under `prefix`, which has no stored branch: as one
    /// branch node built from its leaves ([`crate::bottom`]) when it is small
    /// and has no branch the policy stores, otherwise leaf by leaf.
    fn emit_prefix(&mut self, prefix: &Nibbles) -> Result<(), TrieError> {
        let (lo, hi) =
            key_range(prefix).ok_or_else(|| TrieError::Inconsistent(format!("path {prefix:?} longer than a key")))?;
        if self.builder.wants_proofs() {
            return self.emit_leaves(&lo, &hi);
        }
        let mut leaves = std::mem::take(&mut self.bottom_leaves);
        leaves.clear();
        let mut entry = self.leaves.seek(&lo).map_err(leaf_err)?;
        while let Some((key, value)) = entry.take() {
            if key > hi {
                break;
            }
            if leaves.len() == MAX_BOTTOM_LEAVES {
                entry = Some((key, value));
                break;
            }
            leaves.push((key, value));
            entry = self.leaves.next().map_err(leaf_err)?;
        }
        // `entry` is left set only when the range holds more leaves.
        let built =
            if entry.is_none() && leaves.len() >= 2 { bottom_branch(&leaves, &mut self.bottom_scratch)? } else { None };
        match built {
            Some(branch) => self.builder.add_branch_node(branch.path, branch.rlp, branch.branch_nodes)?,
            None => {
                for (key, value) in &leaves {
                    self.builder.add_leaf(Nibbles::from_b256(key), value)?;
                }
                self.feed_leaves_from(entry, &hi)?;
            }
        }
        self.bottom_leaves = leaves;
        Ok(())
    }

    fn leaf_exists(&mut self, prefix: &Nibbles) -> Result<bool, TrieError> {
        let Some((lo, hi)) = key_range(prefix) else {
            return Ok(false);
        };
        Ok(self.leaves.seek(&lo).map_err(leaf_err)?.is_some_and(|(k, _)| k <= hi))
    }

    /// Feeds the new contents under `prefix`, given the old topmost stored
    /// branch under it (`None`: no stored branch, so the old contents are at
    /// most one unstored branch or leaf and the new ones are read as leaves).
    pub(crate) fn walk_under(
        &mut self,
        prefix: &Nibbles,
        top: Option<(Nibbles, BranchRecord)>,
    ) -> Result<(), TrieError> {
        let Some((path, record)) = top else {
            return self.emit_prefix(prefix);
        };
        debug_assert!(path.starts_with(prefix));
        let bad = || TrieError::Inconsistent(format!("path {path:?} longer than a key"));
        let (q_lo, q_hi) = key_range(prefix).ok_or_else(bad)?;
        let (t_lo, t_hi) = key_range(&path).ok_or_else(bad)?;
        // Keys under `prefix` but beside the old top branch can only be new
        // insertions (every old key under `prefix` is under the top branch).
        if t_lo > q_lo {
            let before = u256_to_key(key_to_u256(&t_lo) - U256::from(1));
            if self.changed.any_in(&q_lo, &before) {
                self.emit_leaves(&q_lo, &before)?;
            }
        }
        if self.changed.any_in(&t_lo, &t_hi) {
            self.visit(path, record)?;
        } else {
            self.builder.add_branch(path, record.node_ref(), true)?;
        }
        if t_hi < q_hi {
            let after = u256_to_key(key_to_u256(&t_hi) + U256::from(1));
            if self.changed.any_in(&after, &q_hi) {
                self.emit_leaves(&after, &q_hi)?;
            }
        }
        Ok(())
    }

    /// Feeds the new contents under the old stored branch at `path`, which
    /// has changed keys below it.
    fn visit(&mut self, path: Nibbles, record: BranchRecord) -> Result<(), TrieError> {
        let changed = self.changed.child_mask(&path);
        let unchanged = record.state_mask() & !changed;
        // Opaque child references are only valid if this branch survives,
        // i.e. keeps at least two children.
        let collapses = if unchanged.count_ones() >= 2 {
            false
        } else {
            let mut survivors = unchanged.count_ones();
            for n in (0u8..16).filter(|n| changed & (1 << n) != 0) {
                if survivors >= 2 {
                    break;
                }
                if self.leaf_exists(&path.with_nibble(n))? {
                    survivors += 1;
                }
            }
            survivors < 2
        };
        for n in 0u8..16 {
            let slot = path.with_nibble(n);
            if unchanged & (1 << n) != 0 {
                // has_child(n) holds for unchanged children.
                let (Some(child), Some(kind)) = (record.child(n), record.child_kind(n)) else {
                    continue;
                };
                if !collapses {
                    self.builder.add_slot(slot, *child, kind)?;
                } else if kind == (ChildKind::Branch { stored: true }) {
                    let (below, below_record) = self.require_top(&slot)?;
                    self.builder.add_branch(below, below_record.node_ref(), true)?;
                } else {
                    self.emit_prefix(&slot)?;
                }
            } else if changed & (1 << n) != 0 {
                let top = match record.child_kind(n) {
                    Some(ChildKind::Branch { stored: true }) => Some(self.require_top(&slot)?),
                    _ => None,
                };
                self.walk_under(&slot, top)?;
            }
        }
        self.visited.push((path, record));
        Ok(())
    }

    /// The builder, once everything is fed.
    pub(crate) fn into_builder(self) -> RootBuilder {
        self.builder
    }

    /// Finishes the builder and diffs its records against the visited ones.
    fn finish(self, prefix: Nibbles) -> Result<SubtrieUpdate, TrieError> {
        let out = self.builder.finish()?;
        let (upserts, removals) = diff_records(self.visited, out.records);
        Ok(SubtrieUpdate { prefix, top: out.top, upserts, removals })
    }
}

/// Upserts (new or changed records) and removals (old records not rebuilt).
fn diff_records(
    old: Vec<(Nibbles, BranchRecord)>,
    new: Vec<(Nibbles, BranchRecord)>,
) -> (Vec<(Nibbles, BranchRecord)>, Vec<Nibbles>) {
    let old: HashMap<Nibbles, BranchRecord> = old.into_iter().collect();
    let new_paths: BTreeSet<Nibbles> = new.iter().map(|(p, _)| p.clone()).collect();
    let upserts: Vec<_> = new.into_iter().filter(|(p, r)| old.get(p) != Some(r)).collect();
    let mut removals: Vec<Nibbles> = old.into_keys().filter(|p| !new_paths.contains(p)).collect();
    removals.sort();
    (upserts, removals)
}

/// Computes the new contents of the part of the trie under `prefix` (see
/// the module docs). `leaves` must show the new leaves, `branches` the old
/// records; only entries under `prefix` are read.
pub fn update_subtrie<L: LeafCursor, B: BranchStore>(
    prefix: &Nibbles,
    changed: &PrefixSet,
    leaves: &mut L,
    branches: &mut B,
) -> Result<SubtrieUpdate, TrieError> {
    if prefix.len() > 64 {
        return Err(TrieError::InvalidPartition(format!("prefix {prefix:?} is longer than a key")));
    }
    let mut walk = Walk::new(changed, leaves, branches, RootBuilder::new().with_records(true));
    let top = walk.find_top(prefix)?;
    walk.walk_under(prefix, top)?;
    walk.finish(prefix.clone())
}

/// All `16^depth` prefixes of `depth` nibbles, in order: a partition of the
/// key space for [`combine_subtries`]. `depth` is capped at 4.
pub fn prefixes_at_depth(depth: usize) -> Vec<Nibbles> {
    let depth = depth.min(4);
    let mut out = vec![Nibbles::new()];
    for _ in 0..depth {
        out = out.iter().flat_map(|p| (0u8..16).map(move |n| p.with_nibble(n))).collect();
    }
    out
}

/// Checks that sorted `prefixes` cover the key space without overlap.
fn check_partition(prefixes: &[&Nibbles]) -> Result<(), TrieError> {
    let mut next = Some(U256::ZERO);
    for p in prefixes {
        let (lo, hi) =
            key_range(p).ok_or_else(|| TrieError::InvalidPartition(format!("prefix {p:?} is longer than a key")))?;
        if next != Some(key_to_u256(&lo)) {
            return Err(TrieError::InvalidPartition(format!("prefix {p:?} overlaps or leaves a gap before it")));
        }
        next = key_to_u256(&hi).checked_add(U256::from(1));
    }
    if next.is_some() {
        return Err(TrieError::InvalidPartition("prefixes do not reach the end of the key space".into()));
    }
    Ok(())
}

/// Combines the updates of subtries whose prefixes partition the key space
/// into the update of the whole trie: builds the branches above the
/// prefixes, diffs them against the old records there (read from
/// `branches`) and merges the record changes.
pub fn combine_subtries<B: BranchStore>(
    mut parts: Vec<SubtrieUpdate>,
    branches: &mut B,
) -> Result<RootUpdate, TrieError> {
    parts.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    check_partition(&parts.iter().map(|p| &p.prefix).collect::<Vec<_>>())?;
    let mut builder = RootBuilder::new().with_records(true);
    let mut above = BTreeSet::new();
    for part in &parts {
        for len in 0..part.prefix.len() {
            above.insert(part.prefix.prefix(len));
        }
        match &part.top {
            SubtrieTop::Empty => {}
            SubtrieTop::Leaf { key, value } => builder.add_leaf(key.clone(), value)?,
            SubtrieTop::Branch { path, node_ref, stored } => builder.add_branch(path.clone(), *node_ref, *stored)?,
        }
    }
    let out = builder.finish()?;
    // Branches the combining builder creates lie strictly above the prefixes
    // (items from different parts diverge inside the prefixes), so the old
    // records to compare with are those at strict prefixes of the parts.
    let mut old = Vec::new();
    for path in above {
        if let Some(record) = branches.get(&path).map_err(branch_err)? {
            old.push((path, record));
        }
    }
    let (mut upserts, mut removals) = diff_records(old, out.records);
    for part in parts {
        upserts.extend(part.upserts);
        removals.extend(part.removals);
    }
    upserts.sort_by(|a, b| a.0.cmp(&b.0));
    removals.sort();
    Ok(RootUpdate { root: out.top.root_hash(), upserts, removals })
}

/// Computes the new root and record changes of a whole trie after the
/// changes in `changed` (see the module docs).
pub fn update_root<L: LeafCursor, B: BranchStore>(
    changed: &PrefixSet,
    leaves: &mut L,
    branches: &mut B,
) -> Result<RootUpdate, TrieError> {
    let part = update_subtrie(&Nibbles::new(), changed, leaves, branches)?;
    combine_subtries(vec![part], branches)
}

/// Builds a trie from all of its leaves: the root and every stored record.
pub fn full_root<L: LeafCursor>(leaves: &mut L) -> Result<FullRoot, TrieError> {
    let mut builder = RootBuilder::new().with_records(true);
    let mut entry = leaves.seek(&B256::ZERO).map_err(leaf_err)?;
    while let Some((key, value)) = entry {
        builder.add_leaf(Nibbles::from_b256(&key), &value)?;
        entry = leaves.next().map_err(leaf_err)?;
    }
    let out = builder.finish()?;
    Ok(FullRoot { root: out.root(), records: out.records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_mask_equals_a_prefix_search_per_nibble() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Keys sharing long prefixes (only the first and last bytes vary) and random ones.
        let mut keys: Vec<B256> = (0..300)
            .map(|i| {
                let mut k = [0x5au8; 32];
                k[0] = (next() % 3) as u8;
                k[31] = (next() % 40) as u8;
                if i % 2 == 0 {
                    k.iter_mut().for_each(|b| *b = next() as u8);
                }
                B256::from(k)
            })
            .collect();
        keys.push(B256::ZERO);
        keys.push(B256::repeat_byte(0xff));
        let set = PrefixSet::from_keys(keys.iter().copied());
        for key in &keys {
            for depth in [0, 1, 2, 3, 5, 31, 62, 63, 64] {
                let prefix = Nibbles::from_b256(key).prefix(depth);
                let want = (0u8..16)
                    .filter(|&n| depth < 64 && set.contains_prefix(&prefix.with_nibble(n)))
                    .fold(0u16, |mask, n| mask | 1 << n);
                assert_eq!(set.child_mask(&prefix), want, "prefix {prefix:?}");
                assert_eq!(want == 0, depth == 64, "a key continues below its own shorter prefix");
            }
        }
        assert_eq!(PrefixSet::default().child_mask(&Nibbles::default()), 0);
    }
}
