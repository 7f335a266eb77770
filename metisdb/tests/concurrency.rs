//! Readers vs writer: one writer commits a stream of versions while eight
//! reader threads open snapshots of random retained versions, hold them
//! across many commits and re-read them. A snapshot's contents must never
//! change under its reader (no page it can see is reused), and must equal
//! what the writer committed for that version.

mod common;

use common::{digest, fast_tempdir, random_commit, Model, Rng, TABLES};
use metisdb::{Db, Options};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

fn snapshot_digest(snap: &metisdb::Snapshot) -> [u8; 32] {
    let mut m = Model::new();
    for (i, t) in TABLES.iter().enumerate() {
        if !t.versioned() {
            continue;
        }
        let mut r = snap.range(*t, &[]).unwrap();
        while let Some((k, v)) = r.next().unwrap() {
            m.insert((i as u8, k.to_vec()), v.to_vec());
        }
    }
    digest(&m)
}

#[test]
fn snapshots_never_change_under_readers() {
    let commits: u64 = std::env::var("METIS_STRESS_COMMITS").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options { retention: Some(16), ..Options::default() }).unwrap();
    // Digest of the versioned tables per committed version.
    let expected: Arc<RwLock<HashMap<u64, [u8; 32]>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let longest_hold = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for r in 0..8u64 {
            let (db, expected, done, reads, longest) = (&db, &expected, &done, &reads, &longest_hold);
            s.spawn(move || {
                let mut rng = Rng(1 + r * 7919);
                while !done.load(Ordering::Relaxed) {
                    let Some(latest) = db.latest_version() else {
                        continue;
                    };
                    let oldest = db.oldest_version();
                    let v = oldest + rng.below(latest - oldest + 1);
                    let snap = match db.snapshot(Some(v)) {
                        Ok(s) => s,
                        Err(metisdb::Error::VersionNotRetained { .. }) => continue, // pruned meanwhile
                        Err(e) => panic!("{e}"),
                    };
                    let first = snapshot_digest(&snap);
                    let want = expected.read().unwrap().get(&v).copied().expect("committed version has a digest");
                    assert_eq!(first, want, "reader {r}: version {v} differs from what was committed");
                    // Hold the snapshot across several commits, re-reading it.
                    let start = db.latest_version().unwrap();
                    for _ in 0..3 + rng.below(5) {
                        std::thread::sleep(std::time::Duration::from_millis(rng.below(15)));
                        assert_eq!(snapshot_digest(&snap), first, "reader {r}: version {v} changed under its snapshot");
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    let held = db.latest_version().unwrap() - start;
                    longest.fetch_max(held, Ordering::Relaxed);
                }
            });
        }
        let mut m = Model::new();
        let mut rng = Rng(31337);
        for _ in 0..commits {
            // Publish the digest before committing so readers can always look it up.
            let v = db.latest_version().map_or(0, |v| v + 1);
            let mut preview = m.clone();
            random_commit_dry(&mut preview, &mut Rng(rng.0));
            expected.write().unwrap().insert(v, versioned_digest(&preview));
            random_commit(&db, &mut m, &mut rng, 120, 2000).unwrap();
            assert!(m == preview, "the preview must predict the commit");
        }
        done.store(true, Ordering::Relaxed);
    });
    let stats = db.stats().unwrap();
    eprintln!(
        "{commits} commits, {} snapshot re-reads, longest hold {} commits; file {} pages, {} free",
        reads.load(Ordering::Relaxed),
        longest_hold.load(Ordering::Relaxed),
        stats.page_count,
        stats.free_pages
    );
    assert!(longest_hold.load(Ordering::Relaxed) >= 3, "readers should hold snapshots across commits");
    let report = db.verify(&mut |_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// The model `random_commit` would produce with the same generator state.
fn random_commit_dry(model: &mut Model, rng: &mut Rng) {
    for _ in 0..120 {
        let t = rng.below(3) as u8;
        let k = (rng.below(2000)).to_be_bytes().to_vec();
        if rng.below(5) == 0 {
            model.remove(&(t, k));
        } else {
            let len = if rng.below(20) == 0 { 2000 + rng.below(9000) as usize } else { rng.below(120) as usize };
            let b = rng.next() as u8;
            model.insert((t, k), (0..len).map(|i| b.wrapping_add(i as u8)).collect());
        }
    }
}

fn versioned_digest(m: &Model) -> [u8; 32] {
    let mut v = m.clone();
    v.retain(|(t, _), _| TABLES[*t as usize].versioned());
    digest(&v)
}

/// A commit large enough to be sealed and written in chunks, made on a
/// pooled thread: the helper that writes the chunks then starts only after
/// the sealing side returns (nested pool work runs late), so sealing must
/// never wait for it. Completes, and the data reads back.
#[test]
fn a_chunked_commit_made_on_a_pooled_thread_completes() {
    let dir = fast_tempdir();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let (done, finished) = std::sync::mpsc::channel();
    let db2 = db.clone();
    // On its own thread, so that a deadlock fails the test instead of hanging it.
    std::thread::spawn(move || {
        let model = std::sync::Mutex::new(Model::new());
        metisdb::pool::with_helpers(
            1,
            |_| {
                let mut m = model.lock().unwrap();
                // 80k puts of distinct keys: well over one chunk of pages.
                random_commit(&db2, &mut m, &mut Rng(9), 100_000, 1 << 40).unwrap();
            },
            || (),
        );
        let _ = done.send(model.into_inner().unwrap());
    });
    let m = finished
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("the commit on a pooled thread did not complete: sealing waits for its writer");
    assert!(m.len() > 70_000, "{} entries", m.len());
    assert_eq!(common::read_all(&db).unwrap(), m);
}
