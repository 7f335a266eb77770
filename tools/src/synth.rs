//! `metis db synth`: a deterministic synthetic state for tests and benchmarks.
//!
//! Version 0 holds `accounts` accounts (and four storage slots for every
//! eighth account). Block `i` applies `changes` operations that depend only
//! on `(seed, i)`: account updates and inserts (the key space grows with the
//! block number), storage writes, and deletions. Running the command again
//! continues from the database's latest version, so an interrupted run ends
//! in exactly the state of an uninterrupted one.

use crate::db_cmd::DataDir;
use crate::progress::Progress;
use clap::Args;
use metisdb::tables::{ACCOUNTS, METADATA, STORAGE};
use metisdb::{CommitInfo, Db, Durability, Options, WriteTxn};
use std::io::Write;
use std::process::ExitCode;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Arguments of `metis db synth`.
#[derive(Args)]
pub struct SynthArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Accounts created at version 0.
    #[arg(long)]
    accounts: u64,
    /// Last block (version) to reach.
    #[arg(long)]
    blocks: u64,
    /// Operations per block.
    #[arg(long)]
    changes: u64,
    /// Seed of the pseudo-random generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// sync: every commit is durable when printed; async: flushed by the OS.
    #[arg(long, default_value = "sync")]
    durability: Durability,
}

/// splitmix64: small, fast, good enough for synthetic keys.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(xxh3_64_with_seed(&stream.to_le_bytes(), seed))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// 32-byte hashed key of account `j`.
fn account_key(seed: u64, j: u64) -> [u8; 32] {
    let a = xxh3_128_with_seed(&j.to_le_bytes(), seed).to_be_bytes();
    let b = xxh3_128_with_seed(&j.to_le_bytes(), seed ^ 0x5555).to_be_bytes();
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(&a);
    k[16..].copy_from_slice(&b);
    k
}

fn slot_key(seed: u64, j: u64, s: u64) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&account_key(seed, j));
    k[32..48].copy_from_slice(&xxh3_128_with_seed(&s.to_le_bytes(), seed ^ j).to_be_bytes());
    k[48..].copy_from_slice(&xxh3_128_with_seed(&s.to_le_bytes(), seed ^ j ^ 0xAAAA).to_be_bytes());
    k
}

fn account_value(rng: &mut Rng) -> Vec<u8> {
    let len = 40 + (rng.next() % 71) as usize;
    rng.bytes(len)
}

/// Order-independent content hash of all entries (4 lanes of wrapping sums),
/// maintained incrementally: the state root of the synthetic state.
#[derive(Clone, Copy, Default)]
struct ContentHash([u64; 4]);

impl ContentHash {
    fn lanes(table: u8, key: &[u8], value: &[u8]) -> [u64; 4] {
        let mut buf = Vec::with_capacity(1 + key.len() + value.len() + 4);
        buf.push(table);
        buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(value);
        let a = xxh3_128_with_seed(&buf, 1);
        let b = xxh3_128_with_seed(&buf, 2);
        [a as u64, (a >> 64) as u64, b as u64, (b >> 64) as u64]
    }
    fn add(&mut self, table: u8, key: &[u8], value: &[u8]) {
        for (x, y) in self.0.iter_mut().zip(Self::lanes(table, key, value)) {
            *x = x.wrapping_add(y);
        }
    }
    fn sub(&mut self, table: u8, key: &[u8], value: &[u8]) {
        for (x, y) in self.0.iter_mut().zip(Self::lanes(table, key, value)) {
            *x = x.wrapping_sub(y);
        }
    }
    fn bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, l) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&l.to_le_bytes());
        }
        b
    }
    fn from_bytes(b: &[u8; 32]) -> ContentHash {
        let mut l = [0u64; 4];
        for (i, x) in l.iter_mut().enumerate() {
            *x = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        ContentHash(l)
    }
}

/// A write that keeps the content hash in step.
fn put(
    txn: &mut WriteTxn<'_>,
    h: &mut ContentHash,
    table: metisdb::Table,
    key: &[u8],
    value: &[u8],
) -> Result<()> {
    if let Some(old) = txn.get(table, key)? {
        h.sub(table.0, key, old);
    }
    txn.put(table, key, value)?;
    h.add(table.0, key, value);
    Ok(())
}

fn delete(
    txn: &mut WriteTxn<'_>,
    h: &mut ContentHash,
    table: metisdb::Table,
    key: &[u8],
) -> Result<()> {
    if let Some(old) = txn.get(table, key)? {
        h.sub(table.0, key, old);
        txn.delete(table, key)?;
    }
    Ok(())
}

const PARAMS_KEY: &[u8] = b"synth/params";

fn emit(version: u64, root: &[u8; 32]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "block {version} root 0x{}", hex::encode(root))?;
    out.flush()?;
    Ok(())
}

/// Runs `metis db synth`.
pub fn run(a: SynthArgs) -> Result<ExitCode> {
    let db = Db::open(
        &a.dir.datadir,
        Options {
            durability: a.durability,
            ..Options::default()
        },
    )?;
    let params = format!("accounts={} seed={}", a.accounts, a.seed);
    let mut root = match db.latest_version() {
        None => create_genesis(&db, &a, &params)?,
        Some(_) => {
            let snap = db.snapshot(None)?;
            let stored = snap
                .get(METADATA, PARAMS_KEY)?
                .map(|b| String::from_utf8_lossy(b).into_owned());
            if stored.as_deref() != Some(params.as_str()) {
                return Err(format!(
                    "{} holds a synthetic state made with {}; this run asks for {params}",
                    a.dir.datadir.display(),
                    stored.unwrap_or_else(|| "other data".into())
                )
                .into());
            }
            ContentHash::from_bytes(&db.state_root())
        }
    };
    let from = db.latest_version().expect("version 0 exists") + 1;
    for i in from..=a.blocks {
        let mut txn = db.begin_write()?;
        debug_assert_eq!(txn.version(), i);
        apply_block(&mut txn, &mut root, a.seed, a.accounts, a.changes, i)?;
        let v = txn.commit(CommitInfo {
            state_root: root.bytes(),
            extra: Vec::new(),
        })?;
        emit(v, &root.bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn create_genesis(db: &Db, a: &SynthArgs, params: &str) -> Result<ContentHash> {
    let mut h = ContentHash::default();
    let mut txn = db.begin_write()?;
    let mut p = Progress::new("synth: version 0", "accounts", Some(a.accounts));
    txn.put(METADATA, PARAMS_KEY, params.as_bytes())?;
    for j in 0..a.accounts {
        let mut rng = Rng::new(a.seed, j);
        let key = account_key(a.seed, j);
        let value = account_value(&mut rng);
        put(&mut txn, &mut h, ACCOUNTS, &key, &value)?;
        if j % 8 == 0 {
            for s in 0..4 {
                put(
                    &mut txn,
                    &mut h,
                    STORAGE,
                    &slot_key(a.seed, j, s),
                    &rng.bytes(32),
                )?;
            }
        }
        if j % 10_000 == 0 {
            p.set(j);
        }
    }
    p.finish();
    let v = txn.commit(CommitInfo {
        state_root: h.bytes(),
        extra: Vec::new(),
    })?;
    emit(v, &h.bytes())?;
    Ok(h)
}

fn apply_block(
    txn: &mut WriteTxn<'_>,
    h: &mut ContentHash,
    seed: u64,
    accounts: u64,
    changes: u64,
    i: u64,
) -> Result<()> {
    let mut rng = Rng::new(seed ^ 0xB10C, i);
    // The key space grows by an eighth of the changes per block: some puts insert.
    let space = accounts + i * changes.div_ceil(8);
    for _ in 0..changes {
        let j = rng.next() % space.max(1);
        match rng.next() % 10 {
            0 => delete(txn, h, ACCOUNTS, &account_key(seed, j))?,
            1 => {
                let s = rng.next() % 16;
                let v = rng.bytes(32);
                put(txn, h, STORAGE, &slot_key(seed, j, s), &v)?;
            }
            _ => {
                let v = account_value(&mut rng);
                put(txn, h, ACCOUNTS, &account_key(seed, j), &v)?;
            }
        }
    }
    Ok(())
}
