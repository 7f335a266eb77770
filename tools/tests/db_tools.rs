//! `metis db get`, `metis db stats` and the state-root and branch-record part of `metis db verify`.

mod common;

use alloy_primitives::{keccak256, Address, B256, U256};
use common::*;
use metisdb::state::{AccountInfo, StoredAccount, KECCAK_EMPTY};
use metisdb::{CommitInfo, Db, Options};

#[test]
fn db_get_reads_accounts_slots_and_code_at_any_version() {
    let (_t, t) = tmp();
    let d = t.join("d");
    let db = Db::open(&d, Options::default()).unwrap();
    let a = Address::repeat_byte(0x11);
    let code = vec![0x60u8, 0x01, 0x00];
    let mut w = db.begin_state().unwrap();
    let ch = keccak256(&code);
    w.set_code(&ch, &code).unwrap();
    w.set_account(&a, Some(AccountInfo { nonce: 1, balance: U256::from(100u64), code_hash: ch })).unwrap();
    w.set_storage(&a, &U256::from(5u64), &U256::from(0xbeefu64)).unwrap();
    w.commit(Vec::new()).unwrap();
    let mut w = db.begin_state().unwrap();
    w.set_account(&a, Some(AccountInfo { nonce: 2, balance: U256::from(99u64), code_hash: ch })).unwrap();
    w.set_storage(&a, &U256::from(5u64), &U256::ZERO).unwrap();
    w.commit(Vec::new()).unwrap();
    drop(db);
    let addr = format!("{a:#x}");
    let now = metis_ok(&["db", "get", "--datadir", s(&d), "--address", &addr, "--slot", "0x5", "--code"]);
    assert_eq!(field(&now, "version"), "1");
    assert_eq!(field(&now, "nonce"), "2");
    assert_eq!(field(&now, "balance"), "99");
    assert!(now.contains("slot 0x5 0x0"), "{now}");
    assert_eq!(field(&now, "code"), "0x600100");
    let old = metis_ok(&["db", "get", "--datadir", s(&d), "--address", &addr, "--slot", "5", "--version", "0"]);
    assert_eq!(field(&old, "nonce"), "1");
    assert!(old.contains("slot 0x5 0xbeef"), "{old}");
    let none = metis_ok(&["db", "get", "--datadir", s(&d), "--address", "0x0000000000000000000000000000000000000001"]);
    assert!(none.contains("account none"), "{none}");
    let j = metis_ok(&["db", "get", "--datadir", s(&d), "--address", &addr, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["nonce"], 2);
    let o = metis(&["db", "get", "--datadir", s(&d), "--address", &addr, "--version", "9"]);
    assert!(!o.status.success() && stderr(&o).contains("9"), "{}", stderr(&o));
}

#[test]
fn db_stats_shows_free_space_and_fragmentation() {
    let (_t, t) = tmp();
    let d = t.join("d");
    synth(&d, 500, 5, 200);
    let out = metis_ok(&["db", "stats", "--datadir", s(&d)]);
    for k in
        ["free_extents", "free_bytes", "fragmentation", "account_leaves_in_key_order", "oldest_reader", "live_readers"]
    {
        assert!(out.lines().any(|l| l.starts_with(k)), "{k} missing:\n{out}");
    }
    let j: serde_json::Value = serde_json::from_str(&metis_ok(&["db", "stats", "--datadir", s(&d), "--json"])).unwrap();
    let f = j["fragmentation"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f));
    // 500 accounts span several leaves under one branch: a share in 0..=1.
    let in_order = j["account_leaves_in_key_order"].as_f64().expect("a share for a tree with a branch");
    assert!((0.0..=1.0).contains(&in_order), "{in_order}");
}

#[test]
fn db_verify_recomputes_the_state_root_and_names_a_bad_storage_root() {
    let (_t, t) = tmp();
    let d = t.join("d");
    let root = synth(&d, 800, 2, 100);
    let out = metis_ok(&["db", "verify", "--datadir", s(&d)]);
    assert_eq!(field(&out, "state_root_recomputed"), root);
    assert!(out.trim_end().ends_with("ok"));
    // Damage one account record's storage root behind the state writer's back.
    let db = Db::open(&d, Options::default()).unwrap();
    let snap = db.snapshot(None).unwrap();
    let mut it = snap.range(metisdb::tables::ACCOUNTS, &[]).unwrap();
    let (victim, rec) = loop {
        let (k, v) = it.next().unwrap().unwrap();
        let a = StoredAccount::decode(v).unwrap();
        if a.storage_root != metisdb::state::EMPTY_ROOT_HASH {
            break (B256::from_slice(k), a);
        }
    };
    drop(it);
    drop(snap);
    let bad = StoredAccount { storage_root: B256::repeat_byte(0x77), ..rec };
    let out = edit_and_verify_fails(db, &d, |w| {
        w.put(metisdb::tables::ACCOUNTS, victim.as_slice(), &bad.encode()).unwrap();
    });
    assert!(out.contains(&format!("account {victim:#x}: stored storage root 0x7777")), "{out}");
    let _ = (KECCAK_EMPTY, AccountInfo::default());
}

/// Commits `edit` to the tables behind the state writer's back, under the
/// same state root, then runs `metis db verify`, which must fail (exit
/// code and last line); returns its output.
fn edit_and_verify_fails(db: Db, dir: &std::path::Path, edit: impl FnOnce(&mut metisdb::WriteTxn<'_>)) -> String {
    let mut w = db.begin_write().unwrap();
    edit(&mut w);
    let stored = db.state_root();
    w.commit(CommitInfo { state_root: stored, extra: Vec::new() }).unwrap();
    drop(db);
    let o = metis(&["db", "verify", "--datadir", s(dir)]);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("FAILED"), "{out}");
    out
}

#[test]
fn db_verify_checks_the_branch_records_against_the_leaves() {
    use metisdb::tables::ACCOUNT_TRIE;
    let (_t, t) = tmp();
    let d = t.join("d");
    synth(&d, 3000, 2, 100);
    let out = metis_ok(&["db", "verify", "--datadir", s(&d)]);
    let checked: u64 = field(&out, "records_checked").parse().unwrap();
    assert!(checked > 10, "{out}");
    // Damage the account trie's records behind the state writer's back:
    // drop the first, change the second's bytes, add one no branch stands behind.
    let db = Db::open(&d, Options::default()).unwrap();
    let snap = db.snapshot(None).unwrap();
    let mut it = snap.range(ACCOUNT_TRIE, &[]).unwrap();
    let (first, _) = it.next().unwrap().map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap();
    let (second, mut value) = it.next().unwrap().map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap();
    drop(it);
    drop(snap);
    let last = value.len() - 1;
    value[last] ^= 1;
    let out = edit_and_verify_fails(db, &d, |w| {
        w.delete(ACCOUNT_TRIE, &first).unwrap();
        w.put(ACCOUNT_TRIE, &second, &value).unwrap();
        w.put(ACCOUNT_TRIE, &[0xff; 40], &value).unwrap();
    });
    assert!(out.contains(&format!("account_trie record 0x{} is missing", hex::encode(&first))), "{out}");
    assert!(out.contains(&format!("account_trie record 0x{} differs", hex::encode(&second))), "{out}");
    assert!(out.contains("1 branch records are stored without a branch behind them"), "{out}");
}
