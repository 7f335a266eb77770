//! Operations against a plain BTreeMap model: random puts and deletes over
//! many commits (with aborts and reopens); every retained version must read
//! back exactly, by point reads and by iteration.

use metisdb::tables::{ACCOUNTS, CODE, STORAGE};
use metisdb::{CommitInfo, Db, Options, Table};
use proptest::prelude::*;
use std::collections::BTreeMap;

type Model = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    /// Table, key, value length and byte, and whether it goes in with
    /// `WriteTxn::replace` (whose returned previous value is checked).
    Put(u8, Vec<u8>, usize, u8, bool),
    Delete(u8, Vec<u8>),
    Commit,
    Abort,
    Reopen,
}

fn table(i: u8) -> Table {
    [ACCOUNTS, STORAGE, CODE][i as usize % 3]
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Small key space: many updates and deletes of the same keys.
        (0u8..40).prop_map(|k| vec![k]),
        // Hash-like keys.
        proptest::collection::vec(any::<u8>(), 32),
        // Variable-length keys sharing prefixes.
        proptest::collection::vec(0u8..3, 0..12),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => (0u8..3, key_strategy(), prop_oneof![0usize..120, 900usize..1100, 3000usize..20000], any::<u8>(), any::<bool>())
            .prop_map(|(t, k, len, b, replace)| Op::Put(t, k, len, b, replace)),
        15 => (0u8..3, key_strategy()).prop_map(|(t, k)| Op::Delete(t, k)),
        6 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

fn value(len: usize, b: u8) -> Vec<u8> {
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

/// The model state visible at a version: versioned tables as of that version,
/// unversioned ones (CODE) as of the newest version.
fn visible(history: &[Model], v: usize) -> Model {
    let latest = history.last().unwrap();
    let mut m: Model =
        history[v].iter().filter(|((t, _), _)| table(*t).versioned()).map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, val) in latest {
        if !table(k.0).versioned() {
            m.insert(k.clone(), val.clone());
        }
    }
    m
}

fn scan_from(snap: &metisdb::Snapshot, t: Table, start: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut got = Vec::new();
    let mut s = snap.scan(t, start).unwrap();
    while let Some((k, val)) = s.current() {
        got.push((k.to_vec(), val.to_vec()));
        s.advance().unwrap();
    }
    got
}

/// Asserts equal entry lists, naming the first difference (not printing values of up to 20 KB).
fn same_entries(got: &[(Vec<u8>, Vec<u8>)], want: &[(Vec<u8>, Vec<u8>)], what: &str) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        let (g, w) = (&got[i], &want[i]);
        panic!(
            "{what}: entry {i} differs: got key {:?} ({} value bytes), want key {:?} ({} value bytes)",
            g.0,
            g.1.len(),
            w.0,
            w.1.len()
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: entry count");
}

fn check_version(db: &Db, history: &[Model], v: usize) {
    let snap = db.snapshot(Some(v as u64)).unwrap();
    let want = visible(history, v);
    for t in 0..3u8 {
        // Iteration.
        let mut got = Vec::new();
        let mut r = snap.range(table(t), &[]).unwrap();
        while let Some((k, val)) = r.next().unwrap() {
            got.push((k.to_vec(), val.to_vec()));
        }
        let exp: Vec<_> =
            want.iter().filter(|((tt, _), _)| *tt == t).map(|((_, k), v)| (k.clone(), v.clone())).collect();
        assert_eq!(got.len(), exp.len(), "version {v} table {t}: entry count");
        assert_eq!(got, exp, "version {v} table {t}: contents");
        // The same through a scan with its own page buffers, from the first
        // key, from a stored key and from just after one.
        same_entries(&scan_from(&snap, table(t), &[]), &exp, &format!("version {v} table {t}: scan"));
        if let Some((k, _)) = exp.get(exp.len() / 2) {
            let at = exp.len() / 2;
            same_entries(
                &scan_from(&snap, table(t), k),
                &exp[at..],
                &format!("version {v} table {t}: scan from {k:?}"),
            );
            let after = [k.as_slice(), &[0]].concat();
            let what = format!("version {v} table {t}: scan after {k:?}");
            same_entries(&scan_from(&snap, table(t), &after), &exp[at + 1..], &what);
        }
        // Point reads, including absent keys, through the map and with positioned reads.
        let mut paged = snap.paged_lookup(table(t));
        for ((_, k), val) in want.iter().filter(|((tt, _), _)| *tt == t) {
            assert_eq!(snap.get(table(t), k).unwrap(), Some(&val[..]), "version {v} table {t} key {k:?}");
            assert_eq!(paged.get(k).unwrap(), Some(&val[..]), "version {v} table {t} key {k:?}, paged");
        }
        for probe in [vec![200u8], vec![0u8; 32], vec![]] {
            let want = want.get(&(t, probe.clone())).cloned();
            assert_eq!(snap.get(table(t), &probe).unwrap().map(|x| x.to_vec()), want);
            assert_eq!(paged.get(&probe).unwrap().map(|x| x.to_vec()), want, "paged probe {probe:?}");
        }
    }
}

fn run(ops: Vec<Op>, retention: u32) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options { retention: Some(retention), ..Options::default() };
    let mut db = Db::open(dir.path(), opts.clone()).unwrap();
    let mut history: Vec<Model> = Vec::new(); // model per committed version
    let mut pending: Model = Model::new();
    let mut txn_ops: Vec<Op> = Vec::new();
    for op in ops {
        match op {
            Op::Put(..) | Op::Delete(..) => txn_ops.push(op),
            Op::Abort => {
                {
                    let mut txn = db.begin_write().unwrap();
                    for o in &txn_ops {
                        apply(&mut txn, o);
                    }
                    // dropped: aborted
                }
                txn_ops.clear();
            }
            Op::Commit => {
                let mut txn = db.begin_write().unwrap();
                for o in &txn_ops {
                    let previous = apply(&mut txn, o);
                    match o {
                        Op::Put(t, k, len, b, replace) => {
                            let old = pending.insert((*t % 3, k.clone()), value(*len, *b));
                            if *replace {
                                assert_eq!(previous, old, "previous value of table {t} key {k:?} from replace");
                            }
                        }
                        Op::Delete(t, k) => {
                            pending.remove(&(*t % 3, k.clone()));
                        }
                        _ => {}
                    }
                }
                // Read-your-writes inside the transaction.
                for ((t, k), v) in pending.iter().take(20) {
                    assert_eq!(txn.get(table(*t), k).unwrap(), Some(&v[..]));
                }
                let v = txn.commit(CommitInfo::default()).unwrap();
                assert_eq!(v as usize, history.len());
                history.push(pending.clone());
                txn_ops.clear();
                let report = db.verify(&mut |_, _| {}).unwrap();
                assert!(report.ok(), "verify after commit {v}: {:?}", report.problems);
                let oldest = history.len().saturating_sub(retention as usize);
                assert_eq!(db.oldest_version() as usize, oldest);
                for v in oldest..history.len() {
                    check_version(&db, &history, v);
                }
                if oldest > 0 {
                    assert!(db.snapshot(Some(oldest as u64 - 1)).is_err(), "pruned version still readable");
                }
            }
            Op::Reopen => {
                drop(db);
                db = Db::open(dir.path(), opts.clone()).unwrap();
                if let Some(l) = history.len().checked_sub(1) {
                    assert_eq!(db.latest_version(), Some(l as u64));
                    check_version(&db, &history, l);
                }
            }
        }
    }
}

/// Applies `op`; a replacing put returns the previous value it got back.
fn apply(txn: &mut metisdb::WriteTxn<'_>, op: &Op) -> Option<Vec<u8>> {
    match op {
        Op::Put(t, k, len, b, true) => txn.replace(table(*t), k, &value(*len, *b)).unwrap(),
        Op::Put(t, k, len, b, false) => {
            txn.put(table(*t), k, &value(*len, *b)).unwrap();
            None
        }
        Op::Delete(t, k) => {
            txn.delete(table(*t), k).unwrap();
            None
        }
        _ => unreachable!(),
    }
}

fn cases() -> u32 {
    std::env::var("METIS_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_retained_version_reads_back(ops in proptest::collection::vec(op_strategy(), 1..400), retention in 1u32..6) {
        run(ops, retention);
    }
}

/// A deterministic pseudo-random sequence (xorshift64) from `seed`.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Enough keys for trees three levels deep, with splits, merges and root collapses.
#[test]
fn large_random_workload_with_deep_trees() {
    let mut ops = Vec::new();
    let mut next = xorshift(0x1234_5678);
    for round in 0..12 {
        for _ in 0..3000 {
            let r = next();
            let k = (r % 20_000).to_be_bytes().to_vec();
            if round >= 8 && !r.is_multiple_of(3) {
                ops.push(Op::Delete((r >> 20) as u8 % 2, k));
            } else {
                ops.push(Op::Put((r >> 20) as u8 % 2, k, (r >> 32) as usize % 200, r as u8, (r >> 9) & 1 == 1));
            }
        }
        ops.push(Op::Commit);
        if round % 4 == 3 {
            ops.push(Op::Reopen);
        }
    }
    run(ops, 4);
}

/// Sorted appends (as a bulk load or the change log makes them), in long
/// runs that split full leaves at the right edge of three-level trees,
/// with large values, updates and deletes of earlier keys in between.
#[test]
fn sorted_appends_with_updates_and_deletes_in_between() {
    let mut ops = Vec::new();
    let mut next = xorshift(0x9e37_79b9);
    let mut appended = 0u64;
    for round in 0..10 {
        for i in 0..4000u64 {
            let r = next();
            let len = match r % 50 {
                0 => 3000 + (r >> 8) as usize % 9000,
                _ => (r >> 8) as usize % 150,
            };
            let key = |n: u64| [b"k".as_slice(), &n.to_be_bytes()].concat();
            ops.push(Op::Put((round % 2) as u8, key(appended), len, r as u8, round % 3 == 0));
            appended += 1;
            if i % 97 == 0 && appended > 10 {
                let old = key((r >> 16) % appended);
                if r.is_multiple_of(2) {
                    ops.push(Op::Delete((round % 2) as u8, old));
                } else {
                    ops.push(Op::Put((round % 2) as u8, old, (r >> 24) as usize % 300, r as u8, true));
                }
            }
        }
        ops.push(Op::Commit);
        if round % 3 == 2 {
            ops.push(Op::Reopen);
        }
    }
    run(ops, 4);
}
