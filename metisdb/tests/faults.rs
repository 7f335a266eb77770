//! I/O error sweep: fail the N-th write, sync or set_len of a commit, once
//! or persistently, for every N. The commit must return an error and never
//! be acknowledged, the handle must refuse further writes (a failed sync may
//! have dropped dirty pages from the page cache), reads of committed
//! versions keep working, and a reopen finds the state before or after the
//! commit, intact.

mod common;

use common::{fast_tempdir, random_commit, read_all, Model, Rng};
use metisdb::storage::fault::{crash_image, CrashPolicy, Fault, FaultKind, FaultStorage, Logged, Op};
use metisdb::{Db, Durability, Error, Options};
use std::sync::{Arc, Mutex};

fn setup(dir: &std::path::Path) -> Vec<Model> {
    let db = Db::open(dir, Options::default()).unwrap();
    let mut models = Vec::new();
    let mut m = Model::new();
    let mut rng = Rng(77);
    for _ in 0..3 {
        random_commit(&db, &mut m, &mut rng, 60, 500).unwrap();
        models.push(m.clone());
    }
    models
}

#[test]
fn every_failing_operation_is_reported_and_loses_nothing() {
    sweep(Durability::Sync);
}

/// The same sweep with async durability: the commit writes its pages and
/// the flush after it syncs them and writes the meta; a failure in either
/// is reported by the call that met it.
#[test]
fn every_failing_operation_of_an_async_commit_or_its_flush_is_reported() {
    sweep(Durability::Async);
}

fn sweep(durability: Durability) {
    let mut injections = 0;
    let cases: &[(Op, &[FaultKind])] = &[
        (Op::Write, &[FaultKind::Eio, FaultKind::NoSpace, FaultKind::ShortWrite]),
        (Op::Sync, &[FaultKind::Eio]),
        (Op::SetLen, &[FaultKind::NoSpace, FaultKind::Eio]),
    ];
    for &(op, kinds) in cases {
        for &kind in kinds {
            for persistent in [false, true] {
                for nth in 1.. {
                    // Large enough to grow the file (exercising set_len) and write runs.
                    let commit = CommitShape { ops: 2500, keys: 100_000, seed: nth * 31 + 7 };
                    if !fail_one_commit(durability, Fault { op, nth, persistent, kind }, commit).injected {
                        break;
                    }
                    injections += 1;
                }
            }
        }
    }
    eprintln!("{durability:?}: fault injections checked: {injections}");
    assert!(injections >= 20, "the sweep injected only {injections} faults");
}

/// A commit of more pages than the engine seals and writes in one chunk
/// (the writes then go out from a helper thread while the next chunk is
/// sealed): writes failing at the start, in the middle and at the end of
/// it are reported and lose nothing.
#[test]
fn failing_writes_of_a_commit_written_in_chunks_are_reported() {
    // 80k puts of distinct 8-byte keys, 95% of them with values under 120
    // bytes inline: at least 1,400 leaf pages of new entries.
    let commit = CommitShape { ops: 100_000, keys: 1 << 40, seed: 5 };
    let dry = fail_one_commit(
        Durability::Sync,
        Fault { op: Op::Write, nth: u64::MAX, persistent: false, kind: FaultKind::Eio },
        commit,
    );
    assert!(!dry.injected);
    assert!(dry.pages_written > 1400, "only {} pages written", dry.pages_written);
    let writes = dry.writes;
    for nth in [1, writes / 3, writes / 2, writes * 2 / 3, writes] {
        for (persistent, kind) in [(false, FaultKind::Eio), (true, FaultKind::ShortWrite)] {
            let run = fail_one_commit(Durability::Sync, Fault { op: Op::Write, nth, persistent, kind }, commit);
            assert!(run.injected, "write #{nth} of {writes} was not attempted");
        }
    }
}

/// The commit [`fail_one_commit`] makes after the three of the setup.
#[derive(Clone, Copy)]
struct CommitShape {
    ops: usize,
    keys: u64,
    seed: u64,
}

struct FaultRun {
    injected: bool,
    /// Writes the storage saw during the commit (with the setup's).
    writes: u64,
    pages_written: u64,
}

/// Opens a database with three commits behind the fault-injecting storage,
/// makes one more commit with `fault` armed and, if it was injected, checks
/// that the commit failed, the handle is poisoned, committed data stays
/// readable, and both a reopen and a crash image hold the state before or
/// after the commit, which verifies.
fn fail_one_commit(durability: Durability, fault: Fault, commit: CommitShape) -> FaultRun {
    let dir = fast_tempdir();
    let mut models = setup(dir.path());
    let holder: Arc<Mutex<Option<Arc<FaultStorage>>>> = Arc::default();
    let h2 = holder.clone();
    let opts = Options {
        wrap_storage: Some(Arc::new(move |inner| {
            let f = Arc::new(FaultStorage::new(inner, vec![fault])?);
            *h2.lock().unwrap() = Some(f.clone());
            Ok(Box::new(Shared(f)) as Box<dyn metisdb::storage::Storage>)
        })),
        durability,
        // The explicit flush below is the only one.
        flush_interval: std::time::Duration::from_secs(3600),
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let fs = holder.lock().unwrap().clone().unwrap();
    let pre = models.last().unwrap().clone();
    let mut m = pre.clone();
    let pages_before = db.metrics().pages_written;
    let res =
        random_commit(&db, &mut m, &mut Rng(commit.seed), commit.ops, commit.keys).and_then(|v| db.flush().map(|()| v));
    let writes = fs.log().iter().filter(|l| matches!(l, Logged::Write(..))).count() as u64;
    let pages_written = db.metrics().pages_written - pages_before;
    let Fault { op, nth, persistent, kind } = fault;
    let what = format!("{op:?} #{nth} {kind:?} persistent={persistent}");
    if fs.injected() == 0 {
        assert!(res.is_ok(), "{what}: no fault injected but commit failed: {res:?}");
        return FaultRun { injected: false, writes, pages_written };
    }
    let err = res.expect_err(&format!("{what}: commit acknowledged despite a failed operation"));
    assert!(matches!(err, Error::Io { .. }), "{what}: {err}");
    assert!(
        matches!(db.begin_write(), Err(Error::Poisoned { .. })),
        "{what}: handle still accepts writes after an I/O failure"
    );
    // An async commit that returned is readable even if its flush failed.
    let now = read_all(&db).unwrap();
    assert!(
        now == pre || (durability == Durability::Async && now == m),
        "{what}: committed data unreadable after the failure"
    );
    // What a crash right now would leave on disk.
    let img = crash_image(fs.initial(), &fs.log(), CrashPolicy::DropUnsynced, &mut || 0);
    drop(db);
    models.push(m);
    let check = |path: &std::path::Path, label: &str| {
        let db = Db::open(path, Options::default()).unwrap_or_else(|e| panic!("{what} ({label}): reopen: {e}"));
        let v = db.latest_version().unwrap() as usize;
        assert!(v == 2 || v == 3, "{what} ({label}): reopened at version {v}");
        let got = read_all(&db).unwrap();
        if got != models[v] {
            let missing: Vec<_> =
                models[v].iter().filter(|(k, val)| got.get(*k) != Some(*val)).map(|(k, _)| k.clone()).take(5).collect();
            let extra: Vec<_> =
                got.iter().filter(|(k, val)| models[v].get(*k) != Some(*val)).map(|(k, _)| k.clone()).take(5).collect();
            panic!("{what} ({label}): contents differ from version {v}: {} vs {} entries; wrong/missing {missing:?}; unexpected {extra:?}", got.len(), models[v].len());
        }
        let r = db.verify(&mut |_, _| {}).unwrap();
        assert!(r.ok(), "{what} ({label}): verify: {:?}", r.problems);
    };
    check(dir.path(), "reopen");
    let crash_dir = fast_tempdir();
    std::fs::write(crash_dir.path().join(metisdb::DATA_FILE), img).unwrap();
    check(crash_dir.path(), "crash image");
    FaultRun { injected: true, writes, pages_written }
}

struct Shared(Arc<FaultStorage>);

impl metisdb::storage::Storage for Shared {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn file(&self) -> &std::fs::File {
        self.0.file()
    }
    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all(&self, ops: &[metisdb::storage::WriteOp<'_>]) -> std::io::Result<()> {
        self.0.write_all(ops)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn sync_dir(&self) -> std::io::Result<()> {
        self.0.sync_dir()
    }
}
