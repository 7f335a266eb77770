//! Inserts in key order take a shortcut: the next greater key goes straight
//! into the tree's last leaf, which the previous insert left dirty. Mixed
//! with everything that can change the last leaf or the tree's shape under
//! it (overwrites, deletes, inserts in the middle, large values in runs,
//! splits, a second transaction), the contents must equal a plain map's.

mod common;

use common::{read_all, Model, Rng, TABLES};
use metisdb::{CommitInfo, Db, Options};

#[test]
fn appends_mixed_with_other_edits_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut model = Model::new();
    let mut rng = Rng(0x0A99_E4D5);
    let key = |n: u64| (n * 2).to_be_bytes().to_vec();
    let mut next = 0u64;
    for round in 0..3 {
        let mut txn = db.begin_write().unwrap();
        for _ in 0..6000 {
            let t = 0usize;
            let (k, delete) = match rng.below(40) {
                // Overwrite or delete an existing key, or insert between two.
                0 if next > 0 => (key(rng.below(next)), false),
                1 if next > 0 => (key(rng.below(next)), true),
                2 if next > 0 => ((rng.below(next) * 2 + 1).to_be_bytes().to_vec(), false),
                // The current last key again.
                3 if next > 0 => (key(next - 1), false),
                _ => {
                    next += 1;
                    (key(next - 1), false)
                }
            };
            if delete {
                txn.delete(TABLES[t], &k).unwrap();
                model.remove(&(t as u8, k));
            } else {
                let len = if rng.below(50) == 0 { 3000 + rng.below(6000) as usize } else { rng.below(90) as usize };
                let v: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(round)).collect();
                txn.put(TABLES[t], &k, &v).unwrap();
                model.insert((t as u8, k), v);
            }
        }
        // The transaction reads its own appends.
        let last = key(next - 1);
        assert_eq!(txn.get(TABLES[0], &last).unwrap(), model.get(&(0, last.clone())).map(Vec::as_slice));
        txn.commit(CommitInfo { state_root: [round; 32], extra: vec![] }).unwrap();
        assert!(read_all(&db).unwrap() == model, "round {round}: contents differ from the model");
        let report = db.verify(&mut |_, _| {}).unwrap();
        assert!(report.ok(), "round {round}: verify: {:?}", report.problems);
    }
    assert!(next > 15_000, "mostly appends: {next}");
}

/// Keys in ascending order below a few greater keys already in the table,
/// as an import writes address preimages in key order beside the preimages
/// of a few storage slots: each insert lands just before the leaf's last
/// entries, not after them, and the leaves must still fill up instead of
/// being split in halves at every split.
#[test]
fn ascending_inserts_below_a_few_greater_keys_fill_their_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let (n, value) = (60_000u64, [7u8; 20]);
    let step = u64::MAX / (n + 1);
    let mut txn = db.begin_write().unwrap();
    for greater in [u64::MAX / 4 + 1, u64::MAX / 2 + 1, u64::MAX / 4 * 3 + 1] {
        txn.put(TABLES[0], &greater.to_be_bytes(), &value).unwrap();
    }
    for i in 0..n {
        txn.put(TABLES[0], &(i * step).to_be_bytes(), &value).unwrap();
    }
    txn.commit(CommitInfo::default()).unwrap();
    let report = db.verify(&mut |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let table = report.tables.iter().find(|t| t.name == "accounts").expect("the table is reported");
    assert_eq!(table.entries, n + 3);
    // An entry takes 44 bytes (10 slot, 6 cell header, 8 key, 20 value):
    // 92 fit in a 4 KiB leaf, 46 in a half.
    let per_page = table.entries as f64 / table.pages as f64;
    assert!(per_page > 80.0, "{per_page:.1} entries per page ({} pages)", table.pages);
}

/// Short ascending runs at random places (the few slots of one account,
/// in order, account after account) are not a long run: their splits stay
/// halves. Taking each for an ascending run kept left pages full and left
/// a half-empty right page behind at every split.
#[test]
fn short_ascending_runs_at_random_places_split_in_halves() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut rng = common::Rng(0x5107_5EED);
    let value = [9u8; 8];
    let mut txn = db.begin_write().unwrap();
    let groups = 10_000u64;
    for _ in 0..groups {
        let account = rng.below(u64::MAX).to_be_bytes();
        for slot in 0..4u8 {
            let mut key = account.to_vec();
            key.extend_from_slice(&[slot; 24]);
            txn.put(TABLES[1], &key, &value).unwrap();
        }
    }
    txn.commit(CommitInfo::default()).unwrap();
    let report = db.verify(&mut |_, _| {}).unwrap();
    let table = report.tables.iter().find(|t| t.name == "storage").expect("the table is reported");
    assert_eq!(table.entries, groups * 4);
    // 56 bytes an entry (10 slot, 6 cell header, 32 key, 8 value): 72 fit
    // in a leaf. Halves fill random inserts to about 69%.
    let per_page = table.entries as f64 / table.pages as f64;
    assert!(per_page > 0.62 * 72.0, "{per_page:.1} entries per page ({} pages)", table.pages);
}

/// Ascending runs inside the tree: several runs of increasing keys, each
/// below the keys of the next (the upper bound of the leaf a run appends
/// to), interleaved with each other and with overwrites, deletes, large
/// values and inserts of keys that are prefixes of existing ones (which may
/// equal a separator exactly). An append past a leaf's upper bound would
/// put a key where no search finds it; the contents must equal the map's.
#[test]
fn ascending_runs_below_greater_keys_mixed_with_other_edits_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut model = Model::new();
    let mut rng = Rng(0xFE4C_E5E7);
    const RUNS: usize = 5;
    let key = |run: usize, n: u64| [&[run as u8 * 50], n.to_be_bytes().as_slice()].concat();
    let mut next = [0u64; RUNS];
    let existing = |model: &Model, rng: &mut Rng| -> Option<Vec<u8>> {
        let start = key(rng.below(RUNS as u64) as usize, 0);
        model.range((1u8, start)..).next().filter(|((t, _), _)| *t == 1).map(|((_, k), _)| k.clone())
    };
    for round in 0..4u8 {
        let mut txn = db.begin_write().unwrap();
        for _ in 0..12_000 {
            let (k, delete) = match rng.below(30) {
                0 => match existing(&model, &mut rng) {
                    Some(k) => (k, rng.below(2) == 0),
                    None => continue,
                },
                1 => match existing(&model, &mut rng) {
                    Some(k) => (k[..1 + rng.below(k.len() as u64 - 1) as usize].to_vec(), false),
                    None => continue,
                },
                _ => {
                    // Mostly one run at a time, sometimes another in between.
                    let run =
                        if rng.below(8) == 0 { rng.below(RUNS as u64) as usize } else { usize::from(round) % RUNS };
                    next[run] += 1 + rng.below(3);
                    (key(run, next[run]), false)
                }
            };
            if delete {
                txn.delete(TABLES[1], &k).unwrap();
                model.remove(&(1, k));
            } else {
                let len = if rng.below(60) == 0 { 3000 + rng.below(6000) as usize } else { rng.below(60) as usize };
                let v: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(round)).collect();
                txn.put(TABLES[1], &k, &v).unwrap();
                model.insert((1, k), v);
            }
        }
        for (run, &n) in next.iter().enumerate() {
            let last = key(run, n);
            assert_eq!(txn.get(TABLES[1], &last).unwrap(), model.get(&(1, last.clone())).map(Vec::as_slice));
        }
        txn.commit(CommitInfo { state_root: [round; 32], extra: vec![] }).unwrap();
        assert!(read_all(&db).unwrap() == model, "round {round}: contents differ from the model");
        let report = db.verify(&mut |_, _| {}).unwrap();
        assert!(report.ok(), "round {round}: verify: {:?}", report.problems);
    }
}
