//! Shared helpers for the integration tests.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use metis_trie::mem::{MemBranches, MemLeaves};
use metis_trie::{BranchRecord, BranchStore, LeafCursor, Nibbles, B256};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Proptest case count: `METIS_PROPTEST_CASES` or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("METIS_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Root by the reference implementation (alloy-trie's HashBuilder).
pub fn reference_root(leaves: &BTreeMap<B256, Vec<u8>>) -> B256 {
    let mut hb = alloy_trie::HashBuilder::default();
    for (k, v) in leaves {
        hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
    }
    hb.root()
}

/// Keys: uniformly random, or near one of a few base keys (sharing long
/// prefixes, so extensions, deep branches and embedded nodes appear).
pub fn key_strategy() -> impl Strategy<Value = B256> {
    let bases = [B256::repeat_byte(0x00), B256::repeat_byte(0x5a), B256::repeat_byte(0xff)];
    prop_oneof![
        3 => any::<[u8; 32]>().prop_map(B256::from),
        2 => (0..3usize, 1..4usize, any::<[u8; 4]>()).prop_map(move |(b, n, tail)| {
            let mut k = bases[b];
            k.0[32 - n..].copy_from_slice(&tail[..n]);
            k
        }),
        1 => (0..3usize, 0..64usize, 0u8..16).prop_map(move |(b, i, nib)| {
            // One nibble off a base key: a leaf that diverges at depth i.
            let mut k = bases[b];
            let byte = &mut k.0[i / 2];
            *byte = if i % 2 == 0 { (*byte & 0x0f) | nib << 4 } else { (*byte & 0xf0) | nib };
            k
        }),
    ]
}

/// Leaf values: short (so deep leaves embed in their parent) to longer.
pub fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 1..4),
        1 => proptest::collection::vec(any::<u8>(), 4..40),
    ]
}

pub fn leaves_strategy(max: usize) -> impl Strategy<Value = BTreeMap<B256, Vec<u8>>> {
    proptest::collection::btree_map(key_strategy(), value_strategy(), 0..max)
}

/// A leaf cursor that counts reads.
pub struct CountingLeaves<C> {
    pub inner: C,
    pub seeks: usize,
    pub nexts: usize,
}

impl<C: LeafCursor> LeafCursor for CountingLeaves<C> {
    type Error = C::Error;
    fn seek(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>, C::Error> {
        self.seeks += 1;
        self.inner.seek(key)
    }
    fn next(&mut self) -> Result<Option<(B256, Vec<u8>)>, C::Error> {
        self.nexts += 1;
        self.inner.next()
    }
}

/// A branch store that counts reads.
pub struct CountingBranches<S> {
    pub inner: S,
    pub reads: usize,
}

impl<S: BranchStore> BranchStore for CountingBranches<S> {
    type Error = S::Error;
    fn get(&mut self, path: &Nibbles) -> Result<Option<BranchRecord>, S::Error> {
        self.reads += 1;
        self.inner.get(path)
    }
    fn seek(&mut self, path: &Nibbles) -> Result<Option<(Nibbles, BranchRecord)>, S::Error> {
        self.reads += 1;
        self.inner.seek(path)
    }
}
