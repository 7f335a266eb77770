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
