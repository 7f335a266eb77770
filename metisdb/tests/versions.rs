//! Version numbering: choosing the first version of an empty database, and
//! rebasing (a commit that becomes a chosen version and drops all history).

mod common;

use common::{fast_tempdir, random_commit, read_all, Model, Rng};
use metisdb::tables::ACCOUNTS;
use metisdb::{CommitInfo, Db, Error, Options};

#[test]
fn the_first_version_can_be_chosen_and_numbers_continue_from_it() {
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut t = db.begin_write().unwrap();
    t.set_first_version(1000).unwrap();
    t.put(ACCOUNTS, b"a", b"1").unwrap();
    assert!(t.set_first_version(7).is_err(), "only before any change");
    assert_eq!(t.commit(CommitInfo::default()).unwrap(), 1000);
    let mut t = db.begin_write().unwrap();
    assert!(t.set_first_version(5).is_err(), "only on an empty database");
    t.put(ACCOUNTS, b"a", b"2").unwrap();
    assert_eq!(t.commit(CommitInfo::default()).unwrap(), 1001);
    assert_eq!(db.snapshot(Some(1000)).unwrap().get(ACCOUNTS, b"a").unwrap(), Some(&b"1"[..]));
    assert!(matches!(db.snapshot(Some(999)), Err(Error::VersionNotRetained { .. })));
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!((db.oldest_version(), db.latest_version()), (1000, Some(1001)));
    assert!(db.verify(&mut |_, _| {}).unwrap().ok());
}

#[test]
fn rebase_drops_history_but_keeps_open_snapshots_working() {
    let dir = fast_tempdir();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut m = Model::new();
    let mut rng = Rng(3);
    let mut models = Vec::new();
    for _ in 0..8 {
        random_commit(&db, &mut m, &mut rng, 80, 400).unwrap();
        models.push(m.clone());
    }
    let old = db.snapshot(Some(3)).unwrap();
    let before_old = format!("{:?}", old.range(ACCOUNTS, &[]).map(|_| ()).is_ok());
    let mut t = db.begin_write().unwrap();
    t.rebase(2);
    t.put(ACCOUNTS, b"rebased", b"yes").unwrap();
    assert_eq!(t.commit(CommitInfo::default()).unwrap(), 2);
    m.insert((0, b"rebased".to_vec()), b"yes".to_vec());
    assert_eq!((db.oldest_version(), db.latest_version()), (2, Some(2)));
    assert!(matches!(db.snapshot(Some(1)), Err(Error::VersionNotRetained { .. })));
    assert_eq!(read_all(&db).unwrap(), m);
    // The snapshot opened before the rebase still reads version 3.
    let mut got = Vec::new();
    let mut r = old.range(ACCOUNTS, &[]).unwrap();
    while let Some((k, v)) = r.next().unwrap() {
        got.push((k.to_vec(), v.to_vec()));
    }
    let want: Vec<_> =
        models[3].iter().filter(|((t, _), _)| *t == 0).map(|((_, k), v)| (k.clone(), v.clone())).collect();
    assert_eq!(got, want, "{before_old}");
    drop(old);
    // Numbering continues after the rebased version, with history again.
    random_commit(&db, &mut m, &mut rng, 50, 400).unwrap();
    assert_eq!(db.latest_version(), Some(3));
    assert!(db.snapshot(Some(2)).unwrap().get(ACCOUNTS, b"rebased").unwrap().is_some());
    let r = db.verify(&mut |_, _| {}).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
}
