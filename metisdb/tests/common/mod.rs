//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use metisdb::tables::{ACCOUNTS, CODE, STORAGE};
use metisdb::{CommitInfo, Db, Table};
use std::collections::BTreeMap;

/// Contents of the test tables: (table id, key) -> value.
pub type Model = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

pub const TABLES: [Table; 3] = [ACCOUNTS, STORAGE, CODE];

/// Deterministic xorshift generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Applies a random batch to `db` and `model` and commits it. Values are
/// sometimes large (runs of several pages). Returns the committed version.
/// `model` holds the batch's result even when the commit fails.
pub fn random_commit(db: &Db, model: &mut Model, rng: &mut Rng, ops: usize, keys: u64) -> metisdb::Result<u64> {
    let mut txn = db.begin_write()?;
    let mut next = model.clone();
    for _ in 0..ops {
        let t = rng.below(3) as u8;
        let k = (rng.below(keys)).to_be_bytes().to_vec();
        if rng.below(5) == 0 {
            txn.delete(TABLES[t as usize], &k)?;
            next.remove(&(t, k));
        } else {
            let len = if rng.below(20) == 0 { 2000 + rng.below(9000) as usize } else { rng.below(120) as usize };
            let b = rng.next() as u8;
            let v: Vec<u8> = (0..len).map(|i| b.wrapping_add(i as u8)).collect();
            txn.put(TABLES[t as usize], &k, &v)?;
            next.insert((t, k), v);
        }
    }
    let root = digest(&next);
    *model = next;
    txn.commit(CommitInfo { state_root: root, extra: vec![] })
}

/// A digest of a model, stored as the "state root" so that a reopened
/// database can be matched to the model of its version.
pub fn digest(m: &Model) -> [u8; 32] {
    let mut h = [0u8; 32];
    let mut acc = 0xcbf2_9ce4_8422_2325u64;
    for ((t, k), v) in m {
        for b in
            std::iter::once(*t).chain(k.iter().copied()).chain((v.len() as u32).to_le_bytes()).chain(v.iter().copied())
        {
            acc ^= b as u64;
            acc = acc.wrapping_mul(0x100_0000_01b3);
        }
    }
    for i in 0..4 {
        acc = acc.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h[i * 8..i * 8 + 8].copy_from_slice(&acc.to_le_bytes());
    }
    h
}

/// Reads the newest version of the test tables.
pub fn read_all(db: &Db) -> metisdb::Result<Model> {
    let snap = db.snapshot(None)?;
    let mut m = Model::new();
    for (i, t) in TABLES.iter().enumerate() {
        let mut r = snap.range(*t, &[])?;
        while let Some((k, v)) = r.next()? {
            m.insert((i as u8, k.to_vec()), v.to_vec());
        }
    }
    Ok(m)
}

/// A temporary directory, in memory when /dev/shm exists (tests that write many files).
pub fn fast_tempdir() -> tempfile::TempDir {
    if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}
