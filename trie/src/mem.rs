//! In-memory [`LeafCursor`] and [`BranchStore`] implementations over
//! `BTreeMap`s: reference behaviour for storage engines, and test fixtures.

use crate::incremental::{BranchStore, LeafCursor, RootUpdate};
use crate::nibbles::Nibbles;
use crate::record::BranchRecord;
use alloy_primitives::B256;
use core::convert::Infallible;
use core::ops::Bound;
use std::collections::BTreeMap;

/// Leaves of one trie: hashed key to RLP leaf value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemLeaves {
    map: BTreeMap<B256, Vec<u8>>,
}

impl MemLeaves {
    /// Sets a leaf (an empty value removes it, as in the trie).
    pub fn insert(&mut self, key: B256, value: Vec<u8>) {
        if value.is_empty() {
            self.map.remove(&key);
        } else {
            self.map.insert(key, value);
        }
    }

    /// Removes a leaf.
    pub fn remove(&mut self, key: &B256) {
        self.map.remove(key);
    }

    /// The leaves.
    pub fn map(&self) -> &BTreeMap<B256, Vec<u8>> {
        &self.map
    }

    /// A cursor over the leaves.
    pub fn cursor(&self) -> MemLeafCursor<'_> {
        MemLeafCursor { map: &self.map, last: None }
    }
}

impl FromIterator<(B256, Vec<u8>)> for MemLeaves {
    fn from_iter<I: IntoIterator<Item = (B256, Vec<u8>)>>(iter: I) -> Self {
        let mut leaves = Self::default();
        for (k, v) in iter {
            leaves.insert(k, v);
        }
        leaves
    }
}

/// Cursor over [`MemLeaves`].
#[derive(Debug, Clone)]
pub struct MemLeafCursor<'a> {
    map: &'a BTreeMap<B256, Vec<u8>>,
    /// Key of the current position; `None` before the first seek.
    last: Option<B256>,
}

impl MemLeafCursor<'_> {
    fn step(&mut self, from: Bound<B256>) -> Option<(B256, Vec<u8>)> {
        let found = self.map.range((from, Bound::Unbounded)).next().map(|(k, v)| (*k, v.clone()));
        self.last = found.as_ref().map(|(k, _)| *k).or(Some(B256::repeat_byte(0xff)));
        found
    }
}

impl LeafCursor for MemLeafCursor<'_> {
    type Error = Infallible;

    fn seek(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>, Infallible> {
        Ok(self.step(Bound::Included(*key)))
    }

    fn next(&mut self) -> Result<Option<(B256, Vec<u8>)>, Infallible> {
        Ok(match self.last {
            None => self.step(Bound::Unbounded),
            Some(last) => self.step(Bound::Excluded(last)),
        })
    }
}

/// Stored branch records of one trie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemBranches {
    map: BTreeMap<Nibbles, BranchRecord>,
}

impl MemBranches {
    /// A store holding `records`.
    pub fn from_records(records: impl IntoIterator<Item = (Nibbles, BranchRecord)>) -> Self {
        Self { map: records.into_iter().collect() }
    }

    /// Applies the record changes of an update.
    pub fn apply(&mut self, update: &RootUpdate) {
        for path in &update.removals {
            self.map.remove(path);
        }
        for (path, record) in &update.upserts {
            self.map.insert(path.clone(), record.clone());
        }
    }

    /// The records.
    pub fn records(&self) -> &BTreeMap<Nibbles, BranchRecord> {
        &self.map
    }
}

impl BranchStore for MemBranches {
    type Error = Infallible;

    fn get(&mut self, path: &Nibbles) -> Result<Option<BranchRecord>, Infallible> {
        Ok(self.map.get(path).cloned())
    }

    fn seek(&mut self, path: &Nibbles) -> Result<Option<(Nibbles, BranchRecord)>, Infallible> {
        Ok(self.map.range(path.clone()..).next().map(|(p, r)| (p.clone(), r.clone())))
    }
}

impl BranchStore for &MemBranches {
    type Error = Infallible;

    fn get(&mut self, path: &Nibbles) -> Result<Option<BranchRecord>, Infallible> {
        Ok(self.map.get(path).cloned())
    }

    fn seek(&mut self, path: &Nibbles) -> Result<Option<(Nibbles, BranchRecord)>, Infallible> {
        Ok(self.map.range(path.clone()..).next().map(|(p, r)| (p.clone(), r.clone())))
    }
}
