//! Cleaning: under steady random updates, commits move the live pages of
//! the emptiest segments so that whole segments free up again. The file
//! must stay bounded and every version must still read back exactly.

mod common;

use common::{fast_tempdir, random_commit, read_all, Model, Rng};
use metisdb::{Db, Options};

/// Commits of each test's update phase (`METIS_CLEANING_COMMITS`, default 150).
fn commits() -> usize {
    std::env::var("METIS_CLEANING_COMMITS").ok().and_then(|s| s.parse().ok()).unwrap_or(150)
}

#[test]
fn steady_updates_keep_the_file_bounded_through_cleaning() {
    let commits = commits();
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options { retention: Some(2), ..Options::default() }).unwrap();
    let mut m = Model::new();
    let mut rng = Rng(0xC1EA);
    // A state of ~12k keys, then many commits updating 3% of it at random.
    for _ in 0..6 {
        random_commit(&db, &mut m, &mut rng, 2000, 12_000).unwrap();
    }
    let mut peak = 0;
    for i in 0..commits {
        random_commit(&db, &mut m, &mut rng, 400, 12_000).unwrap();
        let s = db.stats().unwrap();
        peak = peak.max(s.page_count);
        if i % 25 == 0 {
            assert!(read_all(&db).unwrap() == m, "commit {i}: contents differ from the model");
            let r = db.verify(&mut |_, _| {}).unwrap();
            assert!(r.ok(), "commit {i}: {:?}", r.problems);
        }
    }
    let s = db.stats().unwrap();
    let moved = db.metrics().pages_relocated;
    eprintln!(
        "file {} pages (peak {peak}), used {}, free {}, free segments' worth {}, relocated {moved}",
        s.page_count,
        s.used_pages(),
        s.free_pages,
        s.free_pages / metisdb::alloc::SEGMENT_PAGES
    );
    assert!(moved > 0, "the workload must make cleaning move pages");
    assert!(
        s.page_count <= 3 * s.used_pages(),
        "the file grew without bound: {} pages for {} used",
        s.page_count,
        s.used_pages()
    );
    assert!(read_all(&db).unwrap() == m);
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(read_all(&db).unwrap() == m, "after reopen");
    assert!(db.verify(&mut |_, _| {}).unwrap().ok());
}

/// Every commit's durable meta, reopened, must account for every page of
/// the file (reachable or free): a free list long enough to span several
/// pages, updated by every commit, and a reopen plus verify after each.
#[test]
fn every_durable_point_reopens_with_every_page_accounted_for() {
    let commits = commits();
    let dir = fast_tempdir();
    let opts = || Options { retention: Some(2), ..Options::default() };
    let mut db = Db::open(dir.path(), opts()).unwrap();
    let mut m = Model::new();
    let mut rng = Rng(0x1EA4);
    for _ in 0..8 {
        random_commit(&db, &mut m, &mut rng, 12_000, 100_000).unwrap();
    }
    let mut most_extents = 0;
    for i in 0..commits {
        random_commit(&db, &mut m, &mut rng, 600, 100_000).unwrap();
        most_extents = most_extents.max(db.stats().unwrap().free_extents);
        drop(db);
        db = Db::open(dir.path(), opts()).unwrap();
        let r = db.verify(&mut |_, _| {}).unwrap();
        assert!(r.ok(), "commit {i}, reopened: {:?}", r.problems);
    }
    assert!(read_all(&db).unwrap() == m, "contents differ from the model");
    eprintln!("most free extents {most_extents}");
    // A page of free list holds about a thousand extents.
    assert!(most_extents > 2_000, "the free list stayed within a page ({most_extents} extents)");
}
