//! Placement: a commit gives its pages ids in key order, so that a tree
//! written by one large commit has its leaves one after the other in the
//! file and a scan of it reads the file front to back (and drops the cached
//! pages behind it). A scan must return the same entries whatever the
//! layout: checked against a plain map after a bulk commit and after many
//! small commits of scattered changes; the page list a scan of a scattered
//! tree is read ahead from must hold every page of the tree.

mod common;

use common::Rng;
use metisdb::{tables::ACCOUNTS, CommitInfo, Db, Options};
use std::collections::BTreeMap;

fn key(rng: &mut Rng) -> Vec<u8> {
    (0..4).flat_map(|_| rng.next().to_be_bytes()).collect()
}

fn scanned(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let snap = db.snapshot(None).unwrap();
    let mut scan = snap.scan(ACCOUNTS, &[]).unwrap();
    let mut out = BTreeMap::new();
    while let Some((k, v)) = scan.current() {
        out.insert(k.to_vec(), v.to_vec());
        scan.advance().unwrap();
    }
    out
}

/// `tree_pages` lists every page of the tree once, in file order: as many
/// as `verify` counts for the table (whose values here are all inline).
fn check_tree_pages(db: &Db) {
    let pages = db.snapshot(None).unwrap().tree_pages(ACCOUNTS).unwrap();
    assert!(pages.windows(2).all(|w| w[0] < w[1]), "tree pages not sorted and unique");
    let report = db.verify(&mut |_, _| {}).unwrap();
    assert!(report.ok(), "verify: {:?}", report.problems);
    let table = report.tables.iter().find(|t| t.name == "accounts").expect("the accounts table");
    assert_eq!(pages.len() as u64, table.pages, "tree pages against verify's count");
}

fn in_order(db: &Db) -> f64 {
    db.snapshot(None).unwrap().leaves_in_key_order(ACCOUNTS, 16).unwrap().expect("a tree with branches")
}

#[test]
fn one_large_commit_lays_leaves_out_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng(0x9A7E_0F3D);
    // Keys in random order, as hashed state keys come.
    let mut txn = db.begin_write().unwrap();
    for i in 0..40_000u32 {
        let (k, v) = (key(&mut rng), i.to_be_bytes().repeat(10));
        txn.put(ACCOUNTS, &k, &v).unwrap();
        model.insert(k, v);
    }
    txn.commit(CommitInfo { state_root: [1; 32], extra: vec![] }).unwrap();
    let bulk = in_order(&db);
    assert!(bulk >= 0.95, "share of neighbouring leaves in order after one commit: {bulk}");
    assert!(scanned(&db) == model, "the scan of the bulk-loaded tree differs from the map");
    check_tree_pages(&db);

    // Many small commits of scattered changes move leaves out of order; the
    // scan reads them one by one and must see the same entries.
    for round in 0..300u32 {
        let mut txn = db.begin_write().unwrap();
        for _ in 0..20 {
            let k = model.keys().nth(rng.below(model.len() as u64) as usize).unwrap().clone();
            let v = round.to_le_bytes().repeat(9);
            txn.put(ACCOUNTS, &k, &v).unwrap();
            model.insert(k, v);
        }
        txn.commit(CommitInfo { state_root: [2; 32], extra: vec![] }).unwrap();
    }
    let aged = in_order(&db);
    assert!(aged < bulk, "scattered commits left the leaves as ordered as before: {aged} vs {bulk}");
    assert!(scanned(&db) == model, "the scan of the aged tree differs from the map");
    check_tree_pages(&db);
}
