//! `metis db synth`: a deterministic synthetic Ethereum state for tests and benchmarks.
//!
//! Version 0 holds `accounts` accounts (every sixteenth with code, every
//! eighth with four storage slots). Block `i` applies `changes` operations
//! that depend only on `(seed, i)`: account updates and inserts (the key
//! space grows with the block number), storage writes and clears, and
//! account deletions. Running the command again continues from the
//! database's latest version, so an interrupted run ends in exactly the
//! state of an uninterrupted one. Every printed root is the Ethereum state
//! root of that version.

use crate::db_cmd::DataDir;
use alloy_primitives::{keccak256, Address, B256, U256};
use clap::Args;
use metis_tools::progress::Progress;
use metisdb::state::{AccountInfo, StateWriter, KECCAK_EMPTY};
use metisdb::tables::METADATA;
use metisdb::{Db, Durability, Options};
use std::io::Write;
use std::process::ExitCode;
use xxhash_rust::xxh3::xxh3_64_with_seed;

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
    /// sync: every commit is durable when printed; async: flushed in the background.
    #[arg(long, default_value = "sync")]
    durability: Durability,
    /// Record keccak preimages of addresses and slots (needed to export addresses).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    preimages: bool,
    /// Hashing threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// splitmix64: small, fast, good enough for synthetic state.
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
    fn u256(&mut self, bits: u32) -> U256 {
        let v = U256::from_limbs([self.next(), self.next(), self.next(), self.next()]);
        v >> (256 - bits as usize)
    }
}

fn address(seed: u64, j: u64) -> Address {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..].copy_from_slice(&j.to_le_bytes());
    Address::from_slice(&keccak256(b)[12..])
}

fn code_of(j: u64) -> Vec<u8> {
    let mut r = Rng(j);
    let len = 64 + (r.next() % 512) as usize;
    (0..len).map(|_| r.next() as u8).collect()
}

fn account(rng: &mut Rng, w: &mut StateWriter<'_>, j: u64) -> Result<AccountInfo> {
    let code_hash = if j % 16 == 5 {
        let code = code_of(j);
        let h = keccak256(&code);
        w.set_code(&h, &code)?;
        h
    } else {
        KECCAK_EMPTY
    };
    Ok(AccountInfo { nonce: rng.next() % 1000, balance: rng.u256(80), code_hash })
}

const PARAMS_KEY: &[u8] = b"synth/params";

fn emit(version: u64, root: &B256) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "block {version} root {root:#x}")?;
    out.flush()?;
    Ok(())
}

fn writer<'a>(db: &'a Db, a: &SynthArgs) -> Result<StateWriter<'a>> {
    let mut w = db.begin_state()?;
    w.set_record_preimages(a.preimages);
    if let Some(t) = a.threads {
        w.set_threads(t);
    }
    Ok(w)
}

/// Runs `metis db synth`.
pub fn run(a: SynthArgs) -> Result<ExitCode> {
    let db = Db::open(&a.dir.datadir, Options { durability: a.durability, ..Options::default() })?;
    let params = format!("accounts={} seed={}", a.accounts, a.seed);
    match db.latest_version() {
        None => create_genesis(&db, &a, &params)?,
        Some(_) => {
            let snap = db.snapshot(None)?;
            let stored = snap.get(METADATA, PARAMS_KEY)?.map(|b| String::from_utf8_lossy(b).into_owned());
            if stored.as_deref() != Some(params.as_str()) {
                return Err(format!(
                    "{} holds a synthetic state made with {}; this run asks for {params}",
                    a.dir.datadir.display(),
                    stored.unwrap_or_else(|| "other data".into())
                )
                .into());
            }
        }
    }
    let from = db.latest_version().expect("version 0 exists") + 1;
    for i in from..=a.blocks {
        let mut w = writer(&db, &a)?;
        apply_block(&mut w, a.seed, a.accounts, a.changes, i)?;
        let (v, root) = w.commit(Vec::new())?;
        debug_assert_eq!(v, i);
        emit(v, &root)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn create_genesis(db: &Db, a: &SynthArgs, params: &str) -> Result<()> {
    let mut w = writer(db, a)?;
    let mut p = Progress::new("synth: version 0", "accounts", Some(a.accounts));
    w.txn_mut().put(METADATA, PARAMS_KEY, params.as_bytes())?;
    for j in 0..a.accounts {
        let mut rng = Rng::new(a.seed, j);
        let addr = address(a.seed, j);
        let info = account(&mut rng, &mut w, j)?;
        w.set_account(&addr, Some(info))?;
        if j % 8 == 0 {
            for s in 0..4u64 {
                w.set_storage(&addr, &U256::from(s), &rng.u256(128).max(U256::from(1)))?;
            }
        }
        if j % 10_000 == 0 {
            p.set(j);
        }
    }
    p.finish();
    let (v, root) = w.commit(Vec::new())?;
    emit(v, &root)
}

fn apply_block(w: &mut StateWriter<'_>, seed: u64, accounts: u64, changes: u64, i: u64) -> Result<()> {
    let mut rng = Rng::new(seed ^ 0xB10C, i);
    // The key space grows by an eighth of the changes per block: some updates insert.
    let space = (accounts + i * changes.div_ceil(8)).max(1);
    for _ in 0..changes {
        let j = rng.next() % space;
        let addr = address(seed, j);
        match rng.next() % 10 {
            0 => w.set_account(&addr, None)?,
            1 => {
                // Storage only on existing accounts (Ethereum has no storage without an account).
                if w.txn().get(metisdb::tables::ACCOUNTS, keccak256(addr).as_slice())?.is_some() {
                    let slot = U256::from(rng.next() % 16);
                    let value = if rng.next().is_multiple_of(4) { U256::ZERO } else { rng.u256(128) };
                    w.set_storage(&addr, &slot, &value)?;
                }
            }
            _ => {
                let info = account(&mut rng, w, j)?;
                w.set_account(&addr, Some(info))?;
            }
        }
    }
    Ok(())
}
