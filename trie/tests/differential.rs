//! Differential property tests against alloy-trie (reference oracle only):
//! roots of random leaf sets, incremental updates over random batches, and
//! proofs checked by alloy-trie's verifier and by ours.

mod common;

use common::*;
use metis_trie::incremental::{combine_subtries, full_root, prefixes_at_depth, update_root, update_subtrie, PrefixSet};
use metis_trie::{
    keccak256, leaf_depth, leaf_node_into, prove, prove_many, verify_proof, LeafHash, Nibbles, RootBuilder, B256,
    EMPTY_ROOT_HASH,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A builder with records fed `leaves`.
fn fed(leaves: &BTreeMap<B256, Vec<u8>>) -> RootBuilder {
    let mut b = RootBuilder::new().with_records(true);
    for (k, v) in leaves {
        b.add_leaf(Nibbles::from_b256(k), v).unwrap();
    }
    b
}

/// `finish_unhashed` gives the root `finish` does (and the reference) once
/// hashed, and the same records.
fn check_unhashed(leaves: &BTreeMap<B256, Vec<u8>>) -> Result<(), TestCaseError> {
    let (root, records) = fed(leaves).finish_unhashed().unwrap();
    let full = fed(leaves).finish().unwrap();
    prop_assert_eq!(root.hash(), reference_root(leaves));
    prop_assert_eq!(root.hash(), full.root());
    prop_assert_eq!(records, full.records);
    Ok(())
}

fn builder_root(leaves: &BTreeMap<B256, Vec<u8>>) -> B256 {
    let mut b = RootBuilder::new();
    for (k, v) in leaves {
        b.add_leaf(Nibbles::from_b256(k), v).unwrap();
    }
    b.finish().unwrap().root()
}

/// One change of a batch.
#[derive(Debug, Clone)]
enum Op {
    /// Insert or overwrite a key.
    Set(B256, Vec<u8>),
    /// Overwrite the i-th existing key (modulo the count).
    Update(usize, Vec<u8>),
    /// Delete the i-th existing key (modulo the count).
    Delete(usize),
    /// Delete a key that is probably absent.
    DeleteAbsent(B256),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key_strategy(), value_strategy()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => (any::<usize>(), value_strategy()).prop_map(|(i, v)| Op::Update(i, v)),
        3 => any::<usize>().prop_map(Op::Delete),
        1 => key_strategy().prop_map(Op::DeleteAbsent),
    ]
}

/// Applies a batch to the leaves; returns the touched keys.
fn apply_batch(leaves: &mut MemLeaves, batch: &[Op]) -> Vec<B256> {
    let mut touched = Vec::new();
    for op in batch {
        let existing: Vec<B256> = leaves.map().keys().copied().collect();
        match op {
            Op::Set(k, v) => {
                leaves.insert(*k, v.clone());
                touched.push(*k);
            }
            Op::Update(i, v) if !existing.is_empty() => {
                let k = existing[i % existing.len()];
                leaves.insert(k, v.clone());
                touched.push(k);
            }
            Op::Delete(i) if !existing.is_empty() => {
                let k = existing[i % existing.len()];
                leaves.remove(&k);
                touched.push(k);
            }
            Op::DeleteAbsent(k) => {
                leaves.remove(k);
                touched.push(*k);
            }
            _ => {}
        }
    }
    touched
}

/// Runs one incremental update and checks it against the oracle and a
/// from-scratch build.
fn step(leaves: &MemLeaves, branches: &mut MemBranches, touched: Vec<B256>) -> Result<(), TestCaseError> {
    let update = update_root(&PrefixSet::from_keys(touched), &mut leaves.cursor(), branches).unwrap();
    prop_assert_eq!(update.root, reference_root(leaves.map()));
    // Upserts must be real changes, removals must exist.
    for (p, r) in &update.upserts {
        prop_assert_ne!(branches.records().get(p), Some(r), "no-op upsert at {:?}", p);
    }
    for p in &update.removals {
        prop_assert!(branches.records().contains_key(p), "removal of absent record {:?}", p);
    }
    branches.apply(&update);
    let full = full_root(&mut leaves.cursor()).unwrap();
    prop_assert_eq!(full.root, update.root);
    prop_assert_eq!(branches.records(), &full.records_map(), "store differs from a full build");
    Ok(())
}

fn check_proofs(leaves: &MemLeaves, branches: &MemBranches, root: B256, absent: &[B256]) -> Result<(), TestCaseError> {
    let present: Vec<B256> = leaves.map().keys().copied().take(40).collect();
    let keys: Vec<B256> = present.iter().chain(absent).copied().collect();
    let many = prove_many(&keys, &mut leaves.cursor(), &mut &*branches).unwrap();
    for (key, multi) in keys.iter().zip(many) {
        let proof = prove(key, &mut leaves.cursor(), &mut &*branches).unwrap();
        prop_assert_eq!(&proof, &multi);
        let value = leaves.map().get(key).cloned();
        alloy_trie::proof::verify_proof(root, alloy_trie::Nibbles::unpack(key), value.clone(), &proof)
            .map_err(|e| TestCaseError::fail(format!("alloy rejects proof of {key}: {e}")))?;
        verify_proof(root, key, value.as_deref(), &proof)
            .map_err(|e| TestCaseError::fail(format!("our verifier rejects proof of {key}: {e}")))?;
        check_tampering(root, key, value.as_deref(), &proof)?;
    }
    Ok(())
}

/// Every tampered variant of a valid proof must be rejected.
fn check_tampering(
    root: B256,
    key: &B256,
    value: Option<&[u8]>,
    proof: &[alloy_primitives::Bytes],
) -> Result<(), TestCaseError> {
    use alloy_primitives::Bytes;
    // wrong root
    prop_assert!(verify_proof(keccak256(root), key, value, proof).is_err());
    // wrong value
    let wrong_value = match value {
        Some(v) => {
            let mut w = v.to_vec();
            w.push(1);
            Some(w)
        }
        None => Some(vec![1]),
    };
    prop_assert!(verify_proof(root, key, wrong_value.as_deref(), proof).is_err());
    if let Some(v) = value {
        // a present key claimed absent
        prop_assert!(verify_proof(root, key, None, proof).is_err());
        // the same value under a different key
        let mut other = *key;
        other.0[31] ^= 1;
        prop_assert!(verify_proof(root, &other, Some(v), proof).is_err());
    }
    for i in 0..proof.len() {
        // dropped node
        let mut dropped = proof.to_vec();
        dropped.remove(i);
        prop_assert!(verify_proof(root, key, value, &dropped).is_err(), "dropping node {} accepted", i);
        // changed byte
        let mut changed: Vec<Bytes> = proof.to_vec();
        let mut node = changed[i].to_vec();
        let at = node.len() / 2;
        node[at] ^= 0x01;
        changed[i] = node.into();
        prop_assert!(verify_proof(root, key, value, &changed).is_err(), "changed node {} accepted", i);
    }
    // appended node
    if let Some(first) = proof.first() {
        let mut longer = proof.to_vec();
        longer.push(first.clone());
        prop_assert!(verify_proof(root, key, value, &longer).is_err());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// Builder root == alloy-trie root on random leaf sets (0..200 leaves).
    #[test]
    fn builder_matches_reference(leaves in leaves_strategy(200)) {
        prop_assert_eq!(builder_root(&leaves), reference_root(&leaves));
        check_unhashed(&leaves)?;
    }

    /// Leaves hashed ahead at the depth their neighbours give
    /// (`leaf_depth`, `leaf_node_into`) build the same root and records as
    /// leaves hashed by the builder, also when every fourth hash is offered
    /// for a wrong depth (the builder hashes those itself).
    #[test]
    fn leaves_hashed_ahead_give_the_same_trie(leaves in leaves_strategy(200), shared in 0usize..24) {
        // Half the keys share their first `shared / 2` bytes, for deep leaves.
        let leaves: BTreeMap<B256, Vec<u8>> = leaves
            .into_iter()
            .enumerate()
            .map(|(i, (mut k, v))| {
                if i % 2 == 0 {
                    k.0[..shared / 2].fill(0x77);
                }
                (k, v)
            })
            .collect();
        let keys: Vec<B256> = leaves.keys().copied().collect();
        let mut hashed = RootBuilder::new().with_records(true);
        let mut node = Vec::new();
        let mut offered = 0;
        for (i, (k, v)) in leaves.iter().enumerate() {
            let depth = leaf_depth(i.checked_sub(1).map(|p| &keys[p]), k, keys.get(i + 1));
            let hash = depth.filter(|&d| leaf_node_into(&mut node, k, d, v)).map(|d| {
                offered += 1;
                // Every fourth: the hash of the node one nibble deeper, offered
                // for that depth, where the leaf does not hang.
                let d = if offered % 4 == 0 && d < 62 { d + 1 } else { d };
                leaf_node_into(&mut node, k, d, v);
                LeafHash { depth: d, hash: keccak256(&node) }
            });
            hashed.add_leaf_hashed(Nibbles::from_b256(k), v, hash).unwrap();
        }
        let hashed = hashed.finish().unwrap();
        let plain = fed(&leaves).finish().unwrap();
        prop_assert_eq!(hashed.root(), reference_root(&leaves));
        prop_assert_eq!(hashed.records, plain.records);
    }

    /// Two leaves sharing a long prefix (deep branches, long extensions,
    /// embedded leaves).
    #[test]
    fn two_leaves_long_shared_prefix(base in any::<[u8; 32]>(), split in 0usize..64, a in 0u8..16, b in 0u8..16,
                                     va in value_strategy(), vb in value_strategy()) {
        prop_assume!(a != b);
        let mut path_a = Nibbles::from_b256(&B256::from(base));
        let mut path_b = path_a.clone();
        path_a.truncate(split);
        path_b.truncate(split);
        path_a.push(a);
        path_b.push(b);
        let ka = path_a.pad_to_b256(3).unwrap();
        let kb = path_b.pad_to_b256(3).unwrap();
        let leaves: BTreeMap<_, _> = [(ka, va), (kb, vb)].into_iter().collect();
        prop_assert_eq!(builder_root(&leaves), reference_root(&leaves));
        let mem: MemLeaves = leaves.clone().into_iter().collect();
        let full = full_root(&mut mem.cursor()).unwrap();
        prop_assert!(full.records.is_empty(), "a two-leaf trie has only a bottom branch");
        check_proofs(&mem, &MemBranches::default(), full.root, &[B256::from(base)])?;
    }

    /// Incremental updates over a sequence of random batches.
    #[test]
    fn incremental_matches_reference(initial in leaves_strategy(300),
                                     batches in proptest::collection::vec(proptest::collection::vec(op_strategy(), 1..40), 1..6)) {
        let mut leaves: MemLeaves = initial.into_iter().collect();
        let mut branches = MemBranches::default();
        let all: Vec<B256> = leaves.map().keys().copied().collect();
        step(&leaves, &mut branches, all)?;
        for batch in &batches {
            let touched = apply_batch(&mut leaves, batch);
            step(&leaves, &mut branches, touched)?;
        }
        // Delete everything.
        let all: Vec<B256> = leaves.map().keys().copied().collect();
        for k in &all {
            leaves.remove(k);
        }
        let update = update_root(&PrefixSet::from_keys(all), &mut leaves.cursor(), &mut branches).unwrap();
        prop_assert_eq!(update.root, EMPTY_ROOT_HASH);
        prop_assert!(update.upserts.is_empty());
        branches.apply(&update);
        prop_assert!(branches.records().is_empty(), "records left after deleting everything");
    }

    /// Proofs of present and absent keys verify with both verifiers and
    /// tampered proofs are rejected.
    #[test]
    fn proofs_verify(initial in leaves_strategy(300), absent in proptest::collection::vec(key_strategy(), 1..12)) {
        let leaves: MemLeaves = initial.into_iter().collect();
        let full = full_root(&mut leaves.cursor()).unwrap();
        let branches = MemBranches::from_records(full.records.clone());
        check_proofs(&leaves, &branches, full.root, &absent)?;
    }

    /// Subtries updated separately and combined give the sequential result,
    /// for one- and two-nibble partitions.
    #[test]
    fn parallel_equals_sequential(initial in leaves_strategy(300), batch in proptest::collection::vec(op_strategy(), 1..60)) {
        let mut leaves: MemLeaves = initial.into_iter().collect();
        let full = full_root(&mut leaves.cursor()).unwrap();
        let branches = MemBranches::from_records(full.records);
        let touched = PrefixSet::from_keys(apply_batch(&mut leaves, &batch));
        let sequential = update_root(&touched, &mut leaves.cursor(), &mut branches.clone()).unwrap();
        for depth in [1, 2] {
            let parts = prefixes_at_depth(depth)
                .iter()
                .map(|p| update_subtrie(p, &touched, &mut leaves.cursor(), &mut &branches).unwrap())
                .collect();
            let combined = combine_subtries(parts, &mut &branches).unwrap();
            prop_assert_eq!(&combined, &sequential);
        }
    }
}

/// Keys that all share a prefix of `shared` nibbles with `base` (so the
/// root is an extension and deletions collapse branches into extensions),
/// `shared` drawn per key. With `dense_at = Some(d)` every key shares `d`
/// nibbles and the next nibble takes all 16 values, so the branch at depth
/// `d` has many branch children and is stored (under the storage policy a
/// cluster of only 3-way branches stores nothing).
fn clustered_key(base: B256, dense_at: Option<usize>) -> impl Strategy<Value = B256> {
    (8usize..62, any::<[u8; 32]>()).prop_map(move |(shared, tail)| {
        let shared = dense_at.unwrap_or(shared);
        let mut path = Nibbles::from_b256(&base);
        path.truncate(shared);
        for (i, n) in Nibbles::unpack(&tail).iter().enumerate().skip(shared) {
            path.push(if i == shared && dense_at.is_some() { n } else { n % 3 });
        }
        path.pad_to_b256(0).expect("64 nibbles")
    })
}

/// A starting leaf set and batches of changes, all keys clustered around
/// one random base key.
fn clustered_case() -> impl Strategy<Value = (BTreeMap<B256, Vec<u8>>, Vec<Vec<Op>>)> {
    (any::<[u8; 32]>(), proptest::option::of(8usize..58)).prop_flat_map(|(b, dense)| {
        let base = B256::from(b);
        let op = prop_oneof![
            2 => (clustered_key(base, dense), value_strategy()).prop_map(|(k, v)| Op::Set(k, v)),
            3 => any::<usize>().prop_map(Op::Delete),
            1 => (any::<usize>(), value_strategy()).prop_map(|(i, v)| Op::Update(i, v)),
        ];
        (
            proptest::collection::btree_map(clustered_key(base, dense), value_strategy(), 1..80),
            proptest::collection::vec(proptest::collection::vec(op, 1..20), 1..8),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(32), ..ProptestConfig::default() })]

    /// Incremental updates where every key shares a long prefix: root
    /// extensions, extension splits and merges.
    #[test]
    fn incremental_clustered((initial, batches) in clustered_case()) {
        // Clustered keys give root extensions: the root node is an extension, not the branch.
        check_unhashed(&initial)?;
        let mut leaves: MemLeaves = initial.into_iter().collect();
        let mut branches = MemBranches::default();
        let all: Vec<B256> = leaves.map().keys().copied().collect();
        step(&leaves, &mut branches, all)?;
        for batch in &batches {
            let touched = apply_batch(&mut leaves, batch);
            step(&leaves, &mut branches, touched)?;
            let absent: Vec<B256> = leaves.map().keys().map(|k| { let mut a = *k; a.0[20] ^= 0x10; a }).take(3).collect();
            let root = reference_root(leaves.map());
            check_proofs(&leaves, &branches, root, &absent)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(4), ..ProptestConfig::default() })]

    /// Thousands of leaves, then a batch of changes.
    #[test]
    fn thousands_of_leaves(initial in proptest::collection::btree_map(any::<[u8; 32]>().prop_map(B256::from), value_strategy(), 2000..4000),
                           batch in proptest::collection::vec(op_strategy(), 1..200)) {
        let mut leaves: MemLeaves = initial.into_iter().collect();
        prop_assert_eq!(builder_root(leaves.map()), reference_root(leaves.map()));
        let mut branches = MemBranches::default();
        let all: Vec<B256> = leaves.map().keys().copied().collect();
        step(&leaves, &mut branches, all)?;
        let touched = apply_batch(&mut leaves, &batch);
        step(&leaves, &mut branches, touched)?;
    }
}

/// The 16 one-nibble subtries computed on 16 threads, each with its own
/// cursors, combine to the sequential update.
#[test]
fn parallel_threads_equal_sequential() {
    let mut leaves = MemLeaves::default();
    for i in 0u32..5000 {
        leaves.insert(keccak256(i.to_be_bytes()), keccak256(i.to_le_bytes()).to_vec());
    }
    let full = full_root(&mut leaves.cursor()).unwrap();
    let branches = MemBranches::from_records(full.records);
    let mut touched = Vec::new();
    for i in (0u32..5000).step_by(7) {
        let k = keccak256(i.to_be_bytes());
        if i % 2 == 0 {
            leaves.remove(&k);
        } else {
            leaves.insert(k, vec![i as u8 | 1]);
        }
        touched.push(k);
    }
    for i in 5000u32..5300 {
        let k = keccak256(i.to_be_bytes());
        leaves.insert(k, vec![7]);
        touched.push(k);
    }
    let touched = PrefixSet::from_keys(touched);
    let sequential = update_root(&touched, &mut leaves.cursor(), &mut branches.clone()).unwrap();
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = prefixes_at_depth(1)
            .into_iter()
            .map(|prefix| {
                let (leaves, branches, touched) = (&leaves, &branches, &touched);
                s.spawn(move || update_subtrie(&prefix, touched, &mut leaves.cursor(), &mut &*branches).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    let combined = combine_subtries(parts, &mut &branches).unwrap();
    assert_eq!(combined, sequential);
    assert_eq!(combined.root, reference_root(leaves.map()));
    assert!(!combined.upserts.is_empty() && !combined.removals.is_empty());
}

/// A 32-byte key that starts with the nibbles `path`, the rest from `seed`.
fn key_under(path: &[u8], seed: u32) -> B256 {
    let mut key = keccak256(seed.to_be_bytes());
    for (i, &nibble) in path.iter().enumerate() {
        let byte = &mut key.0[i / 2];
        *byte = if i % 2 == 0 { (*byte & 0x0f) | nibble << 4 } else { (*byte & 0xf0) | nibble };
    }
    key
}

/// A trie whose branches all have fewer than eight branch children has no
/// stored branch however many leaves it holds: here 856 leaves under one
/// unstored top branch, more than the walk builds a subtrie from in one
/// pass, so it feeds them to the builder leaf by leaf. Then changes in it,
/// and an insertion that gives the top branch an eighth branch child (it
/// gets a record).
#[test]
fn a_large_trie_without_stored_branches() {
    let mut paths: Vec<Vec<u8>> = Vec::new();
    for a in 0u8..16 {
        if a < 9 {
            paths.push(vec![a]);
            continue;
        }
        for b in 0u8..16 {
            if b < 9 {
                paths.push(vec![a, b]);
                continue;
            }
            paths.extend((0u8..16).map(|c| vec![a, b, c]));
        }
    }
    let mut leaves = MemLeaves::default();
    for (seed, path) in (1u32..).zip(&paths) {
        leaves.insert(key_under(path, seed), vec![0x80 | (seed % 100) as u8; 40]);
    }
    assert_eq!(leaves.map().len(), 9 + 7 * 9 + 49 * 16);
    let mut branches = MemBranches::default();
    let all: Vec<B256> = leaves.map().keys().copied().collect();
    step(&leaves, &mut branches, all.clone()).unwrap();
    assert!(branches.records().is_empty(), "no branch has eight branch children");

    let mut touched = Vec::new();
    for (i, key) in all.iter().enumerate().step_by(37) {
        if i % 2 == 0 {
            leaves.remove(key);
        } else {
            leaves.insert(*key, vec![0x42; 33]);
        }
        touched.push(*key);
    }
    step(&leaves, &mut branches, touched).unwrap();
    assert!(branches.records().is_empty());

    let added = [key_under(&[0], 1_000_001), key_under(&[0], 1_000_002)];
    for key in added {
        leaves.insert(key, vec![0x17; 40]);
    }
    step(&leaves, &mut branches, added.to_vec()).unwrap();
    assert!(branches.records().contains_key(&Nibbles::new()), "the top branch has eight branch children");
}
