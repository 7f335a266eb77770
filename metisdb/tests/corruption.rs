//! Malformed files: bit flips in both meta pages and in data pages, zeroed
//! and swapped pages, truncation, foreign and future-format files. Opening
//! and reading must never panic, and never return wrong data: every damage
//! is either detected (a typed error) or harmless (the answers equal the
//! model of the version opened).

mod common;

use common::{fast_tempdir, random_commit, read_all, Model, Rng, TABLES};
use metisdb::{Db, Error, Options};
use std::path::Path;

struct Fixture {
    bytes: Vec<u8>,
    models: Vec<Model>,
}

fn fixture() -> Fixture {
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options { retention: Some(8), ..Options::default() }).unwrap();
    let mut models = Vec::new();
    let mut m = Model::new();
    let mut rng = Rng(4242);
    for _ in 0..6 {
        random_commit(&db, &mut m, &mut rng, 150, 600).unwrap();
        models.push(m.clone());
    }
    drop(db);
    Fixture { bytes: std::fs::read(dir.path().join(metisdb::DATA_FILE)).unwrap(), models }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Detected,
    Harmless,
}

/// Reads every retained version completely and verifies; compares with the models.
fn judge(dir: &Path, f: &Fixture, full: bool) -> Outcome {
    let db = match Db::open(dir, Options::default()) {
        Ok(db) => db,
        Err(e) => {
            assert!(e.is_corruption() || matches!(e, Error::UnsupportedFormat { .. }), "untyped open error: {e}");
            return Outcome::Detected;
        }
    };
    let Some(latest) = db.latest_version() else { panic!("a damaged file opened as an empty database") };
    let oldest = if full { db.oldest_version() } else { latest };
    for v in oldest..=latest {
        let snap = match db.snapshot(Some(v)) {
            Ok(s) => s,
            Err(e) if e.is_corruption() => return Outcome::Detected,
            Err(e) => panic!("unexpected error: {e}"),
        };
        // Unversioned tables (CODE) read their newest contents at every version.
        let mut want = f.models[v as usize].clone();
        want.retain(|(t, _), _| TABLES[*t as usize].versioned());
        want.extend(
            f.models[latest as usize]
                .iter()
                .filter(|((t, _), _)| !TABLES[*t as usize].versioned())
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let want = &want;
        let mut got = Model::new();
        for (i, t) in TABLES.iter().enumerate() {
            let mut r = match snap.range(*t, &[]) {
                Ok(r) => r,
                Err(e) if e.is_corruption() => return Outcome::Detected,
                Err(e) => panic!("unexpected error: {e}"),
            };
            loop {
                match r.next() {
                    Ok(Some((k, val))) => {
                        got.insert((i as u8, k.to_vec()), val.to_vec());
                    }
                    Ok(None) => break,
                    Err(e) if e.is_corruption() => return Outcome::Detected,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }
        assert!(&got == want, "WRONG ANSWER: version {v} reads differently from what was committed");
        // Scans read the file with their own reads (not through the map's
        // verified pages): the same must hold for them.
        let mut scanned = Model::new();
        for (i, t) in TABLES.iter().enumerate() {
            let mut s = match snap.scan(*t, &[]) {
                Ok(s) => s,
                Err(e) if e.is_corruption() => return Outcome::Detected,
                Err(e) => panic!("unexpected error: {e}"),
            };
            while let Some((k, val)) = s.current() {
                scanned.insert((i as u8, k.to_vec()), val.to_vec());
                match s.advance() {
                    Ok(()) => {}
                    Err(e) if e.is_corruption() => return Outcome::Detected,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }
        assert!(&scanned == want, "WRONG ANSWER: a scan of version {v} reads differently from what was committed");
        // Point reads go through the same pages, but check a few, through
        // the map and with positioned reads.
        for ((t, k), val) in want.iter().take(16) {
            match snap.get(TABLES[*t as usize], k) {
                Ok(x) => assert_eq!(x, Some(&val[..]), "WRONG ANSWER on a point read"),
                Err(e) if e.is_corruption() => return Outcome::Detected,
                Err(e) => panic!("unexpected error: {e}"),
            }
            match snap.paged_lookup(TABLES[*t as usize]).get(k) {
                Ok(x) => assert_eq!(x, Some(&val[..]), "WRONG ANSWER on a paged point read"),
                Err(e) if e.is_corruption() => return Outcome::Detected,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
    }
    if full {
        let report = db.verify(&mut |_, _| {}).unwrap();
        if !report.ok() {
            return Outcome::Detected;
        }
    }
    Outcome::Harmless
}

fn with_file(bytes: &[u8], check: impl FnOnce(&Path) -> Outcome) -> Outcome {
    let dir = fast_tempdir();
    std::fs::write(dir.path().join(metisdb::DATA_FILE), bytes).unwrap();
    check(dir.path())
}

#[test]
fn every_meta_bit_flip_is_detected_or_harmless() {
    let f = fixture();
    let (mut detected, mut harmless) = (0, 0);
    for slot_off in [0usize, 4096] {
        for bit in 0..(4096 * 8) {
            // Bytes past the checksummed record are unused: sample them.
            if bit / 8 >= metisdb::meta::META_LEN && bit % 61 != 0 {
                continue;
            }
            let mut b = f.bytes.clone();
            b[slot_off + bit / 8] ^= 1 << (bit % 8);
            match with_file(&b, |d| judge(d, &f, bit % 97 == 0)) {
                Outcome::Detected => detected += 1,
                Outcome::Harmless => harmless += 1,
            }
        }
    }
    eprintln!(
        "meta flips: {detected} detected, {harmless} harmless (fell back to the other meta or unused bytes), 0 wrong"
    );
    assert!(detected + harmless > 16_000);
}

#[test]
fn data_page_damage_is_detected_or_harmless() {
    let f = fixture();
    let ps = 4096;
    // Damage only pages the newest meta counts as part of the file (the
    // file's preallocated tail is never read).
    let m0 = metisdb::meta::Meta::decode(&f.bytes[..1024], 0).ok();
    let m1 = metisdb::meta::Meta::decode(&f.bytes[4096..4096 + 1024], 1).ok();
    let pages = [m0, m1].into_iter().flatten().map(|m| m.page_count).max().unwrap() as usize;
    let end = pages * ps;
    let mut rng = Rng(99);
    let (mut detected, mut harmless) = (0u32, 0u32);
    let mut tally = |o: Outcome| match o {
        Outcome::Detected => detected += 1,
        Outcome::Harmless => harmless += 1,
    };
    let flips: u64 = std::env::var("METIS_CORRUPTION_FLIPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
    for _ in 0..flips {
        let at = 8192 + rng.below((end - 8192) as u64) as usize;
        let mut b = f.bytes.clone();
        b[at] ^= 1 << rng.below(8);
        tally(with_file(&b, |d| judge(d, &f, true)));
    }
    // Zeroed and swapped pages.
    for _ in 0..200 {
        let p = 2 + rng.below(pages as u64 - 2) as usize;
        let mut b = f.bytes.clone();
        b[p * ps..(p + 1) * ps].fill(0);
        tally(with_file(&b, |d| judge(d, &f, true)));
        let q = 2 + rng.below(pages as u64 - 2) as usize;
        if p != q {
            let mut b = f.bytes.clone();
            let (pp, qq) = (f.bytes[p * ps..(p + 1) * ps].to_vec(), f.bytes[q * ps..(q + 1) * ps].to_vec());
            b[p * ps..(p + 1) * ps].copy_from_slice(&qq);
            b[q * ps..(q + 1) * ps].copy_from_slice(&pp);
            tally(with_file(&b, |d| judge(d, &f, true)));
        }
    }
    eprintln!("data damage: {detected} detected, {harmless} harmless (free or unused pages), 0 wrong");
    assert!(detected > 0 && harmless > 0, "the fixture should have both used and free pages");
}

#[test]
fn truncated_empty_foreign_and_future_files_give_typed_errors() {
    let f = fixture();
    for len in [0usize, 1, 100, 4095, 4096, 5000, 8191, 8192, 8193, 12288, f.bytes.len() / 2, f.bytes.len() - 1] {
        let o = with_file(&f.bytes[..len], |d| judge(d, &f, true));
        if len < 8192 {
            assert_eq!(o, Outcome::Detected, "truncated to {len} bytes");
        }
    }
    // Empty file: typed error naming the problem.
    let dir = fast_tempdir();
    std::fs::write(dir.path().join(metisdb::DATA_FILE), b"").unwrap();
    match Db::open(dir.path(), Options::default()) {
        Err(Error::BadFile { reason, .. }) => assert!(reason.contains("empty"), "{reason}"),
        other => panic!("empty file: {:?}", other.err()),
    }
    // Foreign files.
    for content in [b"SQLite format 3\0".repeat(1000), vec![0xAB; 20000], vec![0u8; 20000]] {
        let dir = fast_tempdir();
        std::fs::write(dir.path().join(metisdb::DATA_FILE), &content).unwrap();
        match Db::open(dir.path(), Options::default()) {
            Err(Error::NotMetisDb { path }) => assert!(path.ends_with(metisdb::DATA_FILE)),
            other => panic!("foreign file: {:?}", other.err()),
        }
    }
    // Another format version (newer, or the older record policy) with valid checksums.
    for version in [metisdb::meta::FORMAT_VERSION + 1, metisdb::meta::FORMAT_VERSION - 1] {
        let mut b = f.bytes.clone();
        for (slot, off) in [0usize, 4096].into_iter().enumerate() {
            let rec = &mut b[off..off + metisdb::meta::META_LEN];
            rec[16..20].copy_from_slice(&version.to_le_bytes());
            let sum = xxhash_rust::xxh3::xxh3_64_with_seed(&rec[8..], 0x4d45_5441_0000_0000 | slot as u64);
            rec[..8].copy_from_slice(&sum.to_le_bytes());
        }
        let dir = fast_tempdir();
        std::fs::write(dir.path().join(metisdb::DATA_FILE), &b).unwrap();
        match Db::open(dir.path(), Options::default()) {
            Err(e @ Error::UnsupportedFormat { found, .. }) => {
                assert_eq!(found, version);
                assert!(e.to_string().contains("snapshot export"), "{e}");
            }
            other => panic!("format {version}: {:?}", other.err()),
        }
        // Opened for reading (to export its state): an older file reads
        // back its latest version; any write is refused and leaves the
        // file as it was. A newer one stays refused.
        let read_only = Options { read_older_format: true, ..Options::default() };
        match Db::open(dir.path(), read_only) {
            Ok(db) if version < metisdb::meta::FORMAT_VERSION => {
                assert!(read_all(&db).unwrap() == *f.models.last().unwrap(), "contents of the older file");
                match db.begin_write() {
                    Err(Error::UnsupportedFormat { found, .. }) => assert_eq!(found, version),
                    other => panic!("a write on an older file: {:?}", other.err()),
                }
                drop(db);
                assert!(std::fs::read(dir.path().join(metisdb::DATA_FILE)).unwrap() == b, "the file changed");
            }
            Err(Error::UnsupportedFormat { found, .. }) if version > metisdb::meta::FORMAT_VERSION => {
                assert_eq!(found, version)
            }
            other => panic!("format {version} opened for reading: {:?}", other.err()),
        }
    }
}

#[test]
fn a_second_open_of_the_same_dir_is_refused() {
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    match Db::open(dir.path(), Options::default()) {
        Err(Error::Locked { holder, .. }) => {
            assert!(holder.contains(&std::process::id().to_string()))
        }
        other => panic!("second open: {:?}", other.err()),
    }
    drop(db);
    Db::open(dir.path(), Options::default()).unwrap();
}

/// A child process that another thread is starting holds a copy of every
/// open descriptor until it runs its program, the lock file's included: a
/// handle dropped at that moment leaves the lock held for an instant.
/// Reopening right after a drop must not be refused for it.
#[test]
fn reopening_while_another_thread_starts_processes_is_not_refused() {
    let dir = fast_tempdir();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
            }
        });
        for i in 0..300 {
            let db = Db::open(dir.path(), Options::default()).unwrap_or_else(|e| {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                panic!("open {i}: {e}")
            });
            drop(db);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}
