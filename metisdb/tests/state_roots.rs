//! Differential test of the state root and proofs against alloy-trie as the
//! reference MPT: random accounts and storage, many versions of inserts,
//! updates, deletes, emptied accounts and wiped storage. After every commit
//! the incremental root equals the reference root; proofs at the newest and
//! at older versions verify with the reference verifier against that
//! version's root, and tampered proofs are rejected.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::Encodable;
use metisdb::state::{account_proof, AccountInfo, StateRead, KECCAK_EMPTY};
use metisdb::{Db, Options};
use std::collections::BTreeMap;

type Model = BTreeMap<Address, (AccountInfo, BTreeMap<U256, U256>)>;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rlp_account(nonce: u64, balance: U256, storage_root: B256, code_hash: B256) -> Vec<u8> {
    let payload = nonce.length() + balance.length() + storage_root.length() + code_hash.length();
    let mut out = Vec::new();
    alloy_rlp::Header { list: true, payload_length: payload }.encode(&mut out);
    nonce.encode(&mut out);
    balance.encode(&mut out);
    storage_root.encode(&mut out);
    code_hash.encode(&mut out);
    out
}

fn reference_trie(leaves: BTreeMap<B256, Vec<u8>>) -> B256 {
    let mut hb = alloy_trie::HashBuilder::default();
    for (k, v) in &leaves {
        hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
    }
    hb.root()
}

fn reference_storage_root(slots: &BTreeMap<U256, U256>) -> B256 {
    reference_trie(
        slots
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, v)| (keccak256(k.to_be_bytes::<32>()), alloy_rlp::encode(v)))
            .collect(),
    )
}

fn reference_root(m: &Model) -> B256 {
    reference_trie(
        m.iter()
            .map(|(a, (info, slots))| {
                (keccak256(a), rlp_account(info.nonce, info.balance, reference_storage_root(slots), info.code_hash))
            })
            .collect(),
    )
}

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn check_proofs(db: &Db, version: u64, m: &Model, root: B256, rng: &mut Rng) {
    let snap = db.snapshot(Some(version)).unwrap();
    assert_eq!(B256::from(snap.state_root().unwrap()), root, "state root recorded for version {version}");
    let addrs: Vec<Address> = m.keys().copied().collect();
    for _ in 0..6 {
        let (addr, present) = if !addrs.is_empty() && rng.below(3) != 0 {
            (addrs[rng.below(addrs.len() as u64) as usize], true)
        } else {
            (address(1_000_000 + rng.below(1000)), false)
        };
        let slots: Vec<U256> = match m.get(&addr) {
            Some((_, s)) if !s.is_empty() => {
                let ks: Vec<U256> = s.keys().copied().collect();
                vec![ks[rng.below(ks.len() as u64) as usize], U256::from(999_999u64)]
            }
            _ => vec![U256::from(1u64)],
        };
        let p = account_proof(&snap, &addr, &slots).unwrap();
        p.verify(root).unwrap_or_else(|e| panic!("version {version}: our verifier rejects {addr}: {e}"));
        // The reference verifier.
        let leaf = present.then(|| {
            let (info, s) = &m[&addr];
            rlp_account(info.nonce, info.balance, reference_storage_root(s), info.code_hash)
        });
        alloy_trie::proof::verify_proof(
            root,
            alloy_trie::Nibbles::unpack(keccak256(addr)),
            leaf.clone(),
            &p.account_proof,
        )
        .unwrap_or_else(|e| panic!("version {version}: alloy rejects the proof of {addr}: {e}"));
        for sp in &p.storage_proof {
            let want = m.get(&addr).and_then(|(_, s)| s.get(&sp.key)).copied().unwrap_or_default();
            assert_eq!(sp.value, want);
            let v = (!want.is_zero()).then(|| alloy_rlp::encode(want));
            alloy_trie::proof::verify_proof(
                p.storage_hash,
                alloy_trie::Nibbles::unpack(keccak256(sp.key.to_be_bytes::<32>())),
                v,
                &sp.proof,
            )
            .unwrap_or_else(|e| panic!("version {version}: alloy rejects the storage proof: {e}"));
        }
        // Tampering: a changed byte or a wrong balance must be rejected.
        if let Some(first) = p.account_proof.first() {
            let mut bad = p.clone();
            let mut b = first.to_vec();
            let i = rng.below(b.len() as u64) as usize;
            b[i] ^= 1 << rng.below(8);
            bad.account_proof[0] = Bytes::from(b);
            assert!(bad.verify(root).is_err(), "tampered node accepted");
            if present {
                let mut bad = p.clone();
                bad.balance += U256::from(1u64);
                assert!(bad.verify(root).is_err(), "wrong balance accepted");
            }
        }
    }
}

/// Writes a slot (zero deletes it) to the database and the model.
fn set_slot(w: &mut metisdb::state::StateWriter<'_>, m: &mut Model, a: &Address, slot: U256, value: U256) {
    w.set_storage(a, &slot, &value).unwrap();
    let s = &mut m.get_mut(a).unwrap().1;
    if value.is_zero() {
        s.remove(&slot);
    } else {
        s.insert(slot, value);
    }
}

#[test]
fn incremental_roots_and_proofs_match_the_reference() {
    let versions: u64 = std::env::var("METIS_STATE_VERSIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options { retention: Some(16), ..Options::default() }).unwrap();
    let mut rng = Rng(0xA11CE);
    let mut m: Model = BTreeMap::new();
    let mut roots: Vec<(Model, B256)> = Vec::new();
    let code = vec![0x60u8, 0x00, 0x60, 0x00, 0xf3];
    let code_hash = keccak256(&code);
    let (mut removed, mut written) = (0, 0);
    for v in 0..versions {
        let mut w = db.begin_state().unwrap();
        w.set_threads(1 + (v % 2) as usize);
        let ops = if v == 0 { 3000 } else { 10 + rng.below(400) };
        // Mass deletions collapse branches, so stored records must go away.
        if v % 10 == 7 {
            let victims: Vec<Address> = m.keys().copied().filter(|_| rng.below(10) != 0).collect();
            for a in victims {
                w.set_account(&a, None).unwrap();
                m.remove(&a);
            }
        }
        if v % 10 == 3 {
            for (a, (_, slots)) in m.iter_mut() {
                let gone: Vec<U256> = slots.keys().copied().filter(|_| rng.below(4) != 0).collect();
                for k in gone {
                    w.set_storage(a, &k, &U256::ZERO).unwrap();
                    slots.remove(&k);
                }
            }
        }
        for _ in 0..ops {
            let i = rng.below(if v == 0 { 3000 } else { 3500 });
            let a = address(i);
            match rng.below(12) {
                0 if m.contains_key(&a) => {
                    w.set_account(&a, None).unwrap();
                    m.remove(&a);
                }
                7 if m.contains_key(&address(i % 8)) => {
                    // One of a few rich accounts: storage tries large enough
                    // to keep stored branch records, changed in bursts.
                    let a = address(i % 8);
                    for _ in 0..20 {
                        let slot = U256::from(rng.below(3000));
                        let value = if rng.below(5) == 0 { U256::ZERO } else { U256::from(rng.next()) };
                        set_slot(&mut w, &mut m, &a, slot, value);
                    }
                }
                1 if m.contains_key(&a) => {
                    // Self-destruct and re-create: storage wiped.
                    w.wipe_storage(&a).unwrap();
                    m.get_mut(&a).unwrap().1.clear();
                }
                2..=6 if m.contains_key(&a) => {
                    let range = if rng.below(4) == 0 { 3 } else { 300 };
                    let slot = U256::from(rng.below(range));
                    let value = if rng.below(4) == 0 {
                        U256::ZERO
                    } else {
                        U256::from(rng.next()) << (rng.below(200) as usize)
                    };
                    set_slot(&mut w, &mut m, &a, slot, value);
                }
                _ => {
                    let with_code = rng.below(5) == 0;
                    if with_code {
                        w.set_code(&code_hash, &code).unwrap();
                    }
                    let info = AccountInfo {
                        nonce: rng.below(100),
                        balance: U256::from(rng.next()) * U256::from(rng.next()),
                        code_hash: if with_code { code_hash } else { KECCAK_EMPTY },
                    };
                    // Sometimes an empty account (nonce 0, balance 0): still a leaf.
                    let info = if rng.below(20) == 0 {
                        AccountInfo { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY }
                    } else {
                        info
                    };
                    w.set_account(&a, Some(info)).unwrap();
                    m.entry(a).or_default().0 = info;
                }
            }
        }
        let root_now = w.compute_root().unwrap();
        removed += w.last_root_stats().records_removed;
        written += w.last_root_stats().records_written;
        let (version, root) = w.commit(vec![]).unwrap();
        assert_eq!(root, root_now);
        assert_eq!(version, v);
        let want = reference_root(&m);
        assert_eq!(root, want, "version {v}: incremental root differs from the reference");
        assert_eq!(B256::from(db.state_root()), root);
        roots.push((m.clone(), root));
        // Reads of the model at the newest version.
        let snap = db.snapshot(None).unwrap();
        for (a, (info, slots)) in m.iter().take(50) {
            assert_eq!(snap.account(a).unwrap().map(|x| x.info), Some(*info));
            for (k, val) in slots.iter().take(5) {
                assert_eq!(snap.storage(a, k).unwrap(), *val);
            }
        }
        drop(snap);
        if v % 4 == 0 || v + 1 == versions {
            check_proofs(&db, v, &m, root, &mut rng);
            // An older retained version.
            let k = rng.below(v.min(15) + 1);
            let (old_m, old_root) = &roots[(v - k) as usize];
            check_proofs(&db, v - k, old_m, *old_root, &mut rng);
        }
    }
    eprintln!("branch records written {written}, removed {removed}");
    // The stored records are exactly those a rebuild from the leaves makes.
    let snap = db.snapshot(None).unwrap();
    let full = metis_trie::full_root(&mut metisdb::state::AccountLeaves::new(&snap)).unwrap();
    assert_eq!(full.root, roots.last().unwrap().1);
    let stored = table_contents(&snap, metisdb::tables::ACCOUNT_TRIE);
    let rebuilt: Vec<(Vec<u8>, Vec<u8>)> =
        full.records.iter().map(|(p, r)| (metisdb::state::trie_key(&[], p), r.encode())).collect();
    assert!(
        stored == rebuilt,
        "account trie records differ from a rebuild ({} stored, {} rebuilt)",
        stored.len(),
        rebuilt.len()
    );
    let mut rebuilt_storage = Vec::new();
    for a in m.keys() {
        let ah = keccak256(a);
        let full = metis_trie::full_root(&mut metisdb::state::StorageLeaves::new(&snap, ah)).unwrap();
        rebuilt_storage
            .extend(full.records.iter().map(|(p, r)| (metisdb::state::trie_key(ah.as_slice(), p), r.encode())));
    }
    rebuilt_storage.sort();
    let stored = table_contents(&snap, metisdb::tables::STORAGE_TRIE);
    assert!(
        stored == rebuilt_storage,
        "storage trie records differ from a rebuild ({} stored, {} rebuilt)",
        stored.len(),
        rebuilt_storage.len()
    );
    drop(snap);
    // About 20 records per trie of 3,000 keys are stored (its full top
    // levels); the mass deletions collapse some of them in every trie.
    assert!(removed >= 20, "the workload must make branches disappear");
    let report = db.verify(&mut |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

fn table_contents(snap: &metisdb::Snapshot, t: metisdb::Table) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = snap.range(t, &[]).unwrap();
    while let Some((k, v)) = r.next().unwrap() {
        out.push((k.to_vec(), v.to_vec()));
    }
    out
}

#[test]
fn empty_state_has_the_empty_root() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let (_, root) = db.begin_state().unwrap().commit(vec![]).unwrap();
    assert_eq!(format!("{root:x}"), "56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");
    // Create and delete everything again: back to the empty root.
    let mut w = db.begin_state().unwrap();
    let a = address(1);
    w.set_account(&a, Some(AccountInfo { nonce: 1, balance: U256::from(5u64), code_hash: KECCAK_EMPTY })).unwrap();
    w.set_storage(&a, &U256::from(1u64), &U256::from(2u64)).unwrap();
    let (_, r1) = w.commit(vec![]).unwrap();
    assert_ne!(r1, root);
    let mut w = db.begin_state().unwrap();
    w.set_account(&a, None).unwrap();
    let (_, r2) = w.commit(vec![]).unwrap();
    assert_eq!(r2, root);
    let snap = db.snapshot(None).unwrap();
    assert_eq!(snap.latest_entries(metisdb::tables::STORAGE), 0);
    assert_eq!(snap.latest_entries(metisdb::tables::STORAGE_TRIE), 0);
    assert_eq!(snap.latest_entries(metisdb::tables::ACCOUNT_TRIE), 0);
}

/// `StateWriter::apply_batch` (the changes sorted by key) against the
/// reference root after every commit, and against the same changes set one
/// by one in the given order: every table equal. Batches repeat keys (the
/// later change wins), clear slots, create accounts and update accounts
/// that hold storage; some follow a wipe.
#[test]
fn batched_changes_match_one_by_one_changes_and_the_reference() {
    use metisdb::state::{hash_slot, AccountUpdate, SlotWrite};
    let (dir_batch, dir_single) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let batch_db = Db::open(dir_batch.path(), Options::default()).unwrap();
    let single_db = Db::open(dir_single.path(), Options::default()).unwrap();
    let mut rng = Rng(0xBA7C4);
    let mut m: Model = BTreeMap::new();
    let mut next_address = 0u64;
    for v in 0..12u64 {
        let (mut batch, mut single) = (batch_db.begin_state().unwrap(), single_db.begin_state().unwrap());
        batch.set_threads(if v % 3 == 2 { 1 } else { 2 });
        let wiped = (v % 4 == 3).then(|| *m.keys().nth(rng.below(m.len() as u64) as usize).unwrap());
        if let Some(a) = wiped {
            batch.wipe_storage(&a).unwrap();
            single.wipe_storage(&a).unwrap();
            m.get_mut(&a).unwrap().1.clear();
        }
        let (mut accounts, mut slots): (Vec<AccountUpdate>, Vec<SlotWrite>) = (Vec::new(), Vec::new());
        // Large batches take the two-thread path (both tables edited apart
        // at once) where the writer has two threads and nothing was wiped.
        let changes = match v {
            0 => 3000,
            _ if v % 3 == 1 => 1500 + rng.below(1000),
            _ => 300 + rng.below(700),
        };
        for _ in 0..changes {
            let existing = !m.is_empty() && rng.below(4) != 0;
            let a = if existing {
                *m.keys().nth(rng.below(m.len() as u64) as usize).unwrap()
            } else {
                next_address += 1;
                address(next_address)
            };
            if rng.below(3) == 0 && m.contains_key(&a) {
                let slot = U256::from(rng.below(40));
                let value = if rng.below(5) == 0 { U256::ZERO } else { U256::from(rng.next()) };
                slots.push((keccak256(a), hash_slot(&slot), value));
                single.set_storage(&a, &slot, &value).unwrap();
                let s = &mut m.get_mut(&a).unwrap().1;
                if value.is_zero() {
                    s.remove(&slot);
                } else {
                    s.insert(slot, value);
                }
            } else {
                let info =
                    AccountInfo { nonce: rng.below(1000), balance: U256::from(rng.next()), code_hash: KECCAK_EMPTY };
                accounts.push((keccak256(a), info));
                single.set_account(&a, Some(info)).unwrap();
                m.entry(a).or_insert_with(|| (info, BTreeMap::new())).0 = info;
            }
        }
        batch.apply_batch(&mut accounts, &mut slots).unwrap();
        let (version, batch_root) = batch.commit(Vec::new()).unwrap();
        let (_, single_root) = single.commit(Vec::new()).unwrap();
        assert_eq!(batch_root, reference_root(&m), "version {v}: batched root against the reference");
        assert_eq!(batch_root, single_root, "version {v}");
        // The latest tables, and the version before as history gives it back.
        for at in [Some(version), version.checked_sub(1)].into_iter().flatten() {
            let (a, b) = (batch_db.snapshot(Some(at)).unwrap(), single_db.snapshot(Some(at)).unwrap());
            for t in [
                metisdb::tables::ACCOUNTS,
                metisdb::tables::STORAGE,
                metisdb::tables::ACCOUNT_TRIE,
                metisdb::tables::STORAGE_TRIE,
            ] {
                assert!(table_contents(&a, t) == table_contents(&b, t), "version {v} at {at}: table {t:?} differs");
            }
        }
    }
    let report = batch_db.verify(&mut |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
