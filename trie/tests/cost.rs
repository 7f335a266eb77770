//! The incremental update reads only along the changed paths: counts of
//! leaf and record reads for single-key changes stay small and do not grow
//! with the trie (compared at two trie sizes).

mod common;

use common::*;
use metis_trie::{full_root, keccak256, update_root, PrefixSet, B256};

struct Reads {
    leaf_reads: usize,
    record_reads: usize,
    upserts: usize,
}

fn measure(size: u32, change: impl Fn(&mut MemLeaves) -> B256) -> Reads {
    let mut leaves: MemLeaves = (0..size).map(|i| (keccak256(i.to_be_bytes()), vec![1, 2, 3])).collect();
    let full = full_root(&mut leaves.cursor()).unwrap();
    let branches = MemBranches::from_records(full.records);
    let key = change(&mut leaves);
    let mut lc = CountingLeaves { inner: leaves.cursor(), seeks: 0, nexts: 0 };
    let mut bc = CountingBranches { inner: &branches, reads: 0 };
    let update = update_root(&PrefixSet::from_keys([key]), &mut lc, &mut bc).unwrap();
    assert_eq!(update.root, full_root(&mut leaves.cursor()).unwrap().root);
    assert_eq!(update.root, reference_root(leaves.map()));
    eprintln!(
        "{size} leaves: leaf seeks {} nexts {}, record reads {}, upserts {}, removals {}",
        lc.seeks,
        lc.nexts,
        bc.reads,
        update.upserts.len(),
        update.removals.len()
    );
    Reads { leaf_reads: lc.seeks + lc.nexts, record_reads: bc.reads, upserts: update.upserts.len() }
}

fn check(change: impl Fn(&mut MemLeaves) -> B256 + Copy) {
    let small = measure(2_000, change);
    let large = measure(60_000, change);
    for r in [&small, &large] {
        // One record per stored level (at most ~6 here) plus the root seek;
        // leaves: those under one unstored branch (a few dozen) plus seeks.
        assert!(r.record_reads <= 12, "record reads {}", r.record_reads);
        assert!(r.leaf_reads <= 40, "leaf reads {}", r.leaf_reads);
        assert!(r.upserts <= 6, "upserts {}", r.upserts);
    }
    // 30x more leaves adds at most about one trie level of reads.
    assert!(large.record_reads <= small.record_reads + 3);
}

#[test]
fn update_one_leaf() {
    check(|l| {
        let k = keccak256(77u32.to_be_bytes());
        l.insert(k, vec![9]);
        k
    });
}

#[test]
fn insert_one_leaf() {
    check(|l| {
        let k = keccak256(b"new");
        l.insert(k, vec![9]);
        k
    });
}

#[test]
fn delete_one_leaf() {
    check(|l| {
        let k = keccak256(1234u32.to_be_bytes());
        l.remove(&k);
        k
    });
}

/// Prints how many branch nodes the storage policy stores for tries of
/// hashed keys (the numbers quoted in the crate README). Run with
/// `cargo test -p metis-trie --test cost -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check; slow for the largest size"]
fn stored_policy_stats() {
    for size in [10_000u32, 100_000, 1_000_000] {
        let mut keys: Vec<B256> = (0..size).map(|i| keccak256(i.to_be_bytes())).collect();
        keys.sort();
        let mut b = metis_trie::RootBuilder::new().with_records(true);
        for k in &keys {
            b.add_leaf(metis_trie::Nibbles::from_b256(k), &[1]).unwrap();
        }
        let out = b.finish().unwrap();
        let bytes: usize = out.records.iter().map(|(_, r)| r.encode().len()).sum();
        eprintln!(
            "{size} leaves: {} branch nodes, {} stored ({:.1}%), {} record bytes",
            out.branch_nodes,
            out.records.len(),
            100.0 * out.records.len() as f64 / out.branch_nodes as f64,
            bytes
        );
    }
}
