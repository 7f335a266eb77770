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
    let mut leaves: MemLeaves = (0..size)
        .map(|i| (keccak256(i.to_be_bytes()), vec![1, 2, 3]))
        .collect();
    let full = full_root(&mut leaves.cursor()).unwrap();
    let branches = MemBranches::from_records(full.records);
    let key = change(&mut leaves);
    let mut lc = CountingLeaves {
        inner: leaves.cursor(),
        seeks: 0,
        nexts: 0,
    };
    let mut bc = CountingBranches {
        inner: &branches,
        reads: 0,
    };
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
    Reads {
        leaf_reads: lc.seeks + lc.nexts,
        record_reads: bc.reads,
        upserts: update.upserts.len(),
    }
}

fn check(change: impl Fn(&mut MemLeaves) -> B256 + Copy) {
    let small = measure(2_000, change);
    let large = measure(60_000, change);
    for r in [&small, &large] {
        // One record per stored level (at most ~6 here) plus the root seek;
        // leaves: at most one bottom branch (<= 16 leaves) plus seeks.
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
