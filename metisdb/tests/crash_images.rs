//! Crash image matrix: a workload runs on a recording storage; for every
//! operation of the log and several media behaviours (unsynced writes
//! dropped, a random subset kept, the last write torn, only the meta write
//! landed), the file a crash could leave is rebuilt and opened. It must open
//! without any repair at a version between the last acknowledged commit and
//! the one in flight, hold exactly that version's data, and verify clean.

mod common;

use common::{digest, random_commit, read_all, Model, Rng};
use metisdb::storage::fault::{crash_image, CrashPolicy, FaultStorage, Logged};
use metisdb::{Db, Durability, Options};
use std::sync::{Arc, Mutex};

#[test]
fn every_crash_point_opens_at_an_acknowledged_or_in_flight_version() {
    crash_matrix(Durability::Sync, 1, 40);
}

/// Async durability (the staging database of an import, a node run with
/// `--durability async`): commits write their pages without a sync and a
/// flush point (here every third commit) makes them durable together. A
/// commit is acknowledged once a flush covers it; pages that non-durable
/// commits freed must not be reused while the durable version still needs
/// them, or a crash would leave that version damaged.
#[test]
fn every_crash_point_of_async_commits_opens_at_a_flushed_or_in_flight_version() {
    // Commits that rewrite most keys free whole segments quickly, so that
    // freed pages come up for reuse within the run.
    crash_matrix(Durability::Async, 3, 600);
}

/// Runs commits of `ops` random operations with `durability`, flushing
/// after every `flush_every`-th commit, and checks a crash image at every
/// logged operation under every media policy.
fn crash_matrix(durability: Durability, flush_every: usize, ops: usize) {
    let commits: usize = std::env::var("METIS_CRASH_COMMITS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seeds_per_point: u64 = std::env::var("METIS_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    // Create the file, then reopen through the recorder.
    drop(Db::open(dir.path(), Options::default()).unwrap());
    let recorder: Arc<Mutex<Option<Arc<FaultStorage>>>> = Arc::new(Mutex::new(None));
    let rec2 = recorder.clone();
    let opts = Options {
        retention: Some(4),
        durability,
        // No flush point by the clock: only the explicit ones below.
        flush_interval: std::time::Duration::from_secs(3600),
        wrap_storage: Some(Arc::new(move |inner| {
            let f = Arc::new(FaultStorage::new(inner, vec![])?);
            *rec2.lock().unwrap() = Some(f.clone());
            Ok(Box::new(SharedStorage(f)) as Box<dyn metisdb::storage::Storage>)
        })),
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let fault = recorder.lock().unwrap().clone().unwrap();
    // models[v] = contents at version v; bounds[i] = (log length before, after)
    // commit i; durable[i] = log length once commit i was durable.
    let mut models: Vec<Model> = Vec::new();
    let mut bounds = Vec::new();
    let mut durable: Vec<Option<usize>> = Vec::new();
    let mut model = Model::new();
    let mut rng = Rng(0x00C0_FFEE);
    for i in 0..commits {
        let before = fault.log().len();
        let keys = 300;
        random_commit(&db, &mut model, &mut rng, ops, keys).unwrap();
        models.push(model.clone());
        bounds.push((before, fault.log().len()));
        durable.push(None);
        if durability == Durability::Sync || (i + 1) % flush_every == 0 {
            db.flush().unwrap();
            let end = fault.log().len();
            for d in durable.iter_mut().filter(|d| d.is_none()) {
                *d = Some(end);
            }
        }
    }
    let log = fault.log();
    let initial = fault.initial().to_vec();
    drop(db);

    let mut images = 0u64;
    let mut by_version = std::collections::BTreeMap::<Option<u64>, u64>::new();
    let policies =
        [CrashPolicy::DropUnsynced, CrashPolicy::RandomSubset, CrashPolicy::TornLast, CrashPolicy::LastWriteOnly];
    // Images are written thousands of times: keep them in memory when /dev/shm exists.
    let img_dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    for upto in 0..=log.len() {
        // Last acknowledged commit: durable at or before `upto`. In flight: started before `upto`.
        let acked = durable.iter().rposition(|d| d.is_some_and(|end| end <= upto)).map(|i| i as u64);
        let attempted = bounds.iter().rposition(|(start, _)| *start < upto).map(|i| i as u64);
        let is_sync = matches!(log.get(upto.wrapping_sub(1)), Some(Logged::SyncData(_) | Logged::SyncAll(_)));
        for policy in policies {
            let seeds = if policy == CrashPolicy::DropUnsynced { 1 } else { seeds_per_point };
            for seed in 0..seeds {
                let mut r = Rng(0x9E37 + seed * 7919 + upto as u64 * 104729);
                let img = crash_image(&initial, &log[..upto], policy, &mut || r.next());
                let sub = img_dir.path().join(format!("{upto}-{policy:?}-{seed}"));
                std::fs::create_dir_all(&sub).unwrap();
                std::fs::write(sub.join(metisdb::DATA_FILE), &img).unwrap();
                let db = Db::open(&sub, Options::default()).unwrap_or_else(|e| {
                    panic!("crash after op {upto} ({policy:?}, seed {seed}, sync point {is_sync}): open failed: {e}")
                });
                let v = db.latest_version();
                let ok_range = match (acked, attempted, v) {
                    (_, _, None) => acked.is_none(),
                    (a, Some(t), Some(v)) => a.is_none_or(|a| v >= a) && v <= t,
                    (_, None, Some(_)) => false,
                };
                assert!(
                    ok_range,
                    "crash after op {upto} ({policy:?}): opened at {v:?}, acked {acked:?}, attempted {attempted:?}"
                );
                let got = read_all(&db).unwrap();
                let want = v.map(|v| models[v as usize].clone()).unwrap_or_default();
                assert!(got == want, "crash after op {upto} ({policy:?}): contents differ from version {v:?}");
                assert_eq!(db.state_root(), if v.is_some() { digest(&want) } else { [0; 32] });
                let report = db.verify(&mut |_, _| {}).unwrap();
                assert!(report.ok(), "crash after op {upto} ({policy:?}): verify: {:?}", report.problems);
                // The database keeps working after the crash.
                if seed == 0 {
                    let mut m = want.clone();
                    random_commit(&db, &mut m, &mut Rng(5), 10, 300).unwrap();
                    assert_eq!(read_all(&db).unwrap(), m);
                }
                drop(db);
                std::fs::remove_dir_all(&sub).unwrap();
                images += 1;
                *by_version.entry(v).or_default() += 1;
            }
        }
    }
    eprintln!(
        "{durability:?}: crash images checked: {images} over {} logged operations; versions reached: {by_version:?}",
        log.len()
    );
    assert!(images >= 1000);
}

/// Lets the test keep a handle on the recorder the database owns.
struct SharedStorage(Arc<FaultStorage>);

impl metisdb::storage::Storage for SharedStorage {
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
