//! Edits of one table built apart from their write transaction
//! (`WriteTxn::edit_apart` / `merge_apart`), checked against a BTreeMap
//! model: the merged edits read back, commit, reopen and verify like edits
//! made in the transaction, and older versions still read the old values
//! (the change set recorded them).

mod common;

use common::{fast_tempdir, Rng};
use metisdb::tables::{ACCOUNTS, ACCOUNT_TRIE};
use metisdb::{CommitInfo, Db, Options, Snapshot, Table};
use std::collections::BTreeMap;

type Contents = BTreeMap<Vec<u8>, Vec<u8>>;

fn contents(snap: &Snapshot, table: Table) -> Contents {
    let mut out = Contents::new();
    let mut r = snap.range(table, &[]).unwrap();
    while let Some((k, v)) = r.next().unwrap() {
        out.insert(k.to_vec(), v.to_vec());
    }
    out
}

fn random_value(rng: &mut Rng) -> Vec<u8> {
    // Now and then a value too large for a leaf (stored as a run of pages).
    let len = if rng.below(25) == 0 { 3000 + rng.below(6000) as usize } else { rng.below(200) as usize };
    let b = rng.next() as u8;
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

#[test]
fn apart_edits_equal_edits_in_the_transaction() {
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut rng = Rng(11);
    // (accounts, account_trie) after each version.
    let mut models: Vec<(Contents, Contents)> = Vec::new();
    let (mut accounts, mut trie) = (Contents::new(), Contents::new());
    for round in 0..40 {
        let mut txn = db.begin_write().unwrap();
        // Changes in the transaction itself, on another table.
        for _ in 0..50 {
            let k = rng.below(3000).to_be_bytes().to_vec();
            let v = random_value(&mut rng);
            txn.put(ACCOUNTS, &k, &v).unwrap();
            accounts.insert(k, v);
        }
        // The apart edits, while another thread reads the transaction.
        let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..if round == 0 { 3000 } else { 300 })
            .map(|_| {
                let k = rng.below(5000).to_be_bytes().to_vec();
                let v = (rng.below(4) != 0).then(|| random_value(&mut rng));
                (k, v)
            })
            .collect();
        let finished = std::thread::scope(|s| {
            let t = &txn;
            let reader = s.spawn(move || {
                let mut seen = 0;
                for i in 0..3000u64 {
                    seen += usize::from(t.get(ACCOUNTS, &i.to_be_bytes()).unwrap().is_some());
                }
                seen
            });
            let mut edit = txn.edit_apart(ACCOUNT_TRIE).unwrap().expect("table untouched");
            for (k, v) in &ops {
                match v {
                    Some(v) => edit.put(k, v).unwrap(),
                    None => {
                        let existed = edit.delete(k).unwrap();
                        assert_eq!(existed, trie.contains_key(k), "delete reports what existed");
                    }
                }
                match v {
                    Some(v) => trie.insert(k.clone(), v.clone()),
                    None => trie.remove(k),
                };
            }
            assert_eq!(reader.join().unwrap(), accounts.keys().filter(|k| k.len() == 8).count());
            edit.finish()
        });
        // The transaction changed ACCOUNTS: it cannot be edited apart.
        assert!(txn.edit_apart(ACCOUNTS).unwrap().is_none());
        txn.merge_apart(finished).unwrap();
        assert_eq!(txn.entries(ACCOUNT_TRIE), trie.len() as u64);
        // After the merge the table is changed in the transaction.
        assert!(txn.edit_apart(ACCOUNT_TRIE).unwrap().is_none());
        txn.commit(CommitInfo::default()).unwrap();
        models.push((accounts.clone(), trie.clone()));

        let snap = db.snapshot(None).unwrap();
        assert_eq!(contents(&snap, ACCOUNT_TRIE), trie, "round {round}");
        assert_eq!(contents(&snap, ACCOUNTS), accounts, "round {round}");
        // Older versions read the values from before the apart edits.
        for back in [1usize, 5, 17] {
            if let Some(v) = models.len().checked_sub(back + 1) {
                let old = db.snapshot(Some(v as u64)).unwrap();
                assert_eq!(contents(&old, ACCOUNT_TRIE), models[v].1, "round {round}, version {v}");
            }
        }
    }
    assert!(db.verify(&mut |_, _| {}).unwrap().ok());
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(contents(&db.snapshot(None).unwrap(), ACCOUNT_TRIE), trie);
    assert!(db.verify(&mut |_, _| {}).unwrap().ok());
}

#[test]
fn a_table_changed_after_the_edits_started_refuses_the_merge() {
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut txn = db.begin_write().unwrap();
    txn.put(ACCOUNT_TRIE, b"k", b"old").unwrap();
    txn.commit(CommitInfo::default()).unwrap();

    let mut txn = db.begin_write().unwrap();
    let mut edit = txn.edit_apart(ACCOUNT_TRIE).unwrap().expect("untouched");
    edit.put(b"k", b"apart").unwrap();
    let finished = edit.finish();
    txn.put(ACCOUNT_TRIE, b"other", b"direct").unwrap();
    assert!(txn.merge_apart(finished).is_err());
    // Nothing of the refused edits is in the transaction.
    assert_eq!(txn.get(ACCOUNT_TRIE, b"k").unwrap(), Some(&b"old"[..]));
    txn.commit(CommitInfo::default()).unwrap();
    assert!(db.verify(&mut |_, _| {}).unwrap().ok());
}
