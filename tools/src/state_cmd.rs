//! `metis init-state` and `metis export-state`: reth's JSONL state dump.

use crate::db_cmd::open_for_reading;
use clap::Args;
use metis_tools::jsonl::{export_state, init_state, InitStateOptions};
use metis_tools::progress::Progress;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Arguments of `metis init-state`.
#[derive(Args)]
pub struct InitStateArgs {
    /// Data directory to create the database in (must hold none).
    #[arg(long, default_value = "./data")]
    datadir: PathBuf,
    /// JSONL dump: `{"root": ...}`, then one account per line.
    file: PathBuf,
    /// Version (block number) the state becomes.
    #[arg(long, default_value_t = 0)]
    version: u64,
    /// Entry MiB per committed batch (bounds memory).
    #[arg(long, default_value_t = 32)]
    batch_mib: u64,
    /// MiB of records sorted in memory per run.
    #[arg(long, default_value_t = 128)]
    sort_mib: usize,
}

/// Arguments of `metis export-state`.
#[derive(Args)]
pub struct ExportStateArgs {
    /// Data directory holding the database.
    #[arg(long, default_value = "./data")]
    datadir: PathBuf,
    /// Version (block) to export; default the latest.
    #[arg(long)]
    version: Option<u64>,
    /// JSONL file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `metis init-state`.
pub fn run_init(a: InitStateArgs) -> Result<ExitCode> {
    let opts = InitStateOptions {
        version: a.version,
        batch_bytes: a.batch_mib.max(1) << 20,
        sort_bytes: a.sort_mib.max(1) << 20,
        ..InitStateOptions::default()
    };
    let len = std::fs::metadata(&a.file).map(|m| m.len()).ok();
    let mut p = Progress::bytes("init-state", "accounts", len);
    let t0 = Instant::now();
    let res = init_state(&a.datadir, &a.file, &opts, &mut |done, _, accounts| p.set_bytes(done, accounts));
    p.finish();
    let s = res.inspect_err(|e| {
        if !matches!(e, metis_tools::Error::Refused(_)) {
            eprintln!("note: {} is unchanged", a.datadir.display());
        }
    })?;
    println!("version {}", s.version);
    println!("state_root {:#x}", s.state_root);
    println!("accounts {}", s.accounts);
    println!("slots {}", s.slots);
    println!("codes {}", s.codes);
    println!("seconds {:.3}", t0.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Runs `metis export-state`.
pub fn run_export(a: ExportStateArgs) -> Result<ExitCode> {
    let db = open_for_reading(&a.datadir)?;
    let total = db.snapshot(a.version).map(|s| s.latest_entries(metisdb::tables::ACCOUNTS)).ok();
    let mut p = Progress::new("export-state", "accounts", total);
    let t0 = Instant::now();
    let res = export_state(&db, a.version, &a.out, &mut |t, written| p.set_written(t.accounts, written));
    p.finish();
    let s = res?;
    println!("version {}", s.version);
    println!("state_root {:#x}", s.state_root);
    println!("accounts {}", s.accounts);
    println!("slots {}", s.slots);
    println!("seconds {:.3}", t0.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
