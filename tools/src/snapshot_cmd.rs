//! `metis snapshot export|import|verify`.

use crate::db_cmd::open_for_reading;
use clap::{Args, Subcommand};
use metis_tools::import::{import_snapshot, staging_dir, ImportOptions};
use metis_tools::progress::Progress;
use metis_tools::snapshot::export::{export, ExportOptions, DEFAULT_LEVEL};
use metis_tools::snapshot::verify_file;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `metis snapshot` subcommands.
#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Write one version of the state to a snapshot file.
    Export(ExportArgs),
    /// Create a database from a snapshot file (staged, root-checked, atomic).
    Import(ImportArgs),
    /// Check a snapshot file (checksums, order, footer, state root) without importing it.
    Verify {
        /// The snapshot file.
        file: PathBuf,
    },
}

/// Arguments of `metis snapshot export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Data directory holding the database.
    #[arg(long, default_value = "./data")]
    datadir: PathBuf,
    /// Version (block) to export; default the latest.
    #[arg(long)]
    version: Option<u64>,
    /// Snapshot file to write.
    #[arg(long)]
    out: PathBuf,
    /// zstd level: negative levels are faster (the default, -5, made the
    /// file 0.5% larger than level 1 and the export a fifth faster), 1 to 22
    /// smaller and slower.
    #[arg(long, default_value_t = DEFAULT_LEVEL, allow_negative_numbers = true)]
    level: i32,
    /// Uncompressed KiB per chunk.
    #[arg(long, default_value_t = 1024)]
    chunk_kib: usize,
    /// Chain id for the header (default: the one in the stored genesis, else 0).
    #[arg(long)]
    chain_id: Option<u64>,
    /// Block hash for the header (default: the one recorded with the version, else zero).
    #[arg(long)]
    block_hash: Option<String>,
}

/// Arguments of `metis snapshot import`.
#[derive(Args)]
pub struct ImportArgs {
    /// Data directory to create the database in (must hold none).
    #[arg(long, default_value = "./data")]
    datadir: PathBuf,
    /// The snapshot file.
    file: PathBuf,
    /// Continue an interrupted import from its last completed batch.
    #[arg(long)]
    resume: bool,
    /// Replace the database the data dir holds (after the new one is fully imported and checked).
    #[arg(long)]
    overwrite: bool,
    /// Entry MiB per committed batch (bounds memory).
    #[arg(long, default_value_t = 32)]
    batch_mib: u64,
    /// Hashing threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn peak_line() {
    if let Some(k) = metis_tools::rss::peak_rss_kib() {
        println!("peak_rss_mib {:.1}", k as f64 / 1024.0);
    }
}

/// Runs a snapshot subcommand.
pub fn run(cmd: SnapshotCommand) -> Result<ExitCode> {
    match cmd {
        SnapshotCommand::Export(a) => {
            let levels = zstd::compression_level_range();
            if !levels.contains(&a.level) {
                return Err(format!(
                    "--level {}: zstd levels run from {} to {}",
                    a.level,
                    levels.start(),
                    levels.end()
                )
                .into());
            }
            let db = open_for_reading(&a.datadir)?;
            let block_hash = match &a.block_hash {
                Some(h) => Some(
                    h.parse::<alloy_primitives::B256>()
                        .map_err(|_| format!("block hash {h:?} is not 32 bytes of hex"))?,
                ),
                None => None,
            };
            let opts = ExportOptions {
                level: a.level,
                chunk_bytes: a.chunk_kib.clamp(4, 64 * 1024) << 10,
                chain_id: a.chain_id,
                block_hash,
                ..ExportOptions::default()
            };
            // Progress and ETA over the accounts (the newest version's count:
            // close enough for an older one).
            let accounts = db.snapshot(None).map(|s| s.latest_entries(metisdb::tables::ACCOUNTS)).ok();
            let mut p = Progress::new("export", "accounts", accounts);
            let t0 = Instant::now();
            let s = export(&db, a.version, &a.out, &opts, &mut |written, accounts| p.set_written(accounts, written))?;
            p.finish();
            let secs = t0.elapsed().as_secs_f64();
            println!("snapshot {}", a.out.display());
            println!("block {}", s.header.block_number);
            println!("state_root {:#x}", s.header.state_root);
            println!("chain_id {}", s.header.chain_id);
            println!("accounts {}", s.footer.accounts);
            println!("slots {}", s.footer.slots);
            println!("codes {}", s.footer.codes);
            println!("chunks {}", s.footer.chunks);
            println!("bytes {}", s.footer.file_len);
            println!("raw_bytes {}", s.footer.raw_bytes);
            println!("seconds {secs:.3}");
            if s.missing_address_preimages + s.missing_slot_preimages > 0 {
                eprintln!(
                    "note: {} accounts and {} slots have no recorded preimage; they are exported by hash only \
                     (enough for snapshot import, not for export-state)",
                    s.missing_address_preimages, s.missing_slot_preimages
                );
            }
            peak_line();
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Import(a) => {
            let opts = ImportOptions {
                batch_bytes: a.batch_mib.max(1) << 20,
                resume: a.resume,
                overwrite: a.overwrite,
                threads: a.threads,
                ..ImportOptions::default()
            };
            // Progress and ETA over the bytes of the snapshot file.
            let mut p = Progress::bytes("import", "entries", std::fs::metadata(&a.file).map(|m| m.len()).ok());
            let t0 = Instant::now();
            let res = import_snapshot(&a.datadir, &a.file, &opts, &mut |done, _total, items| p.set_bytes(done, items));
            p.finish();
            let s = match res {
                Ok(s) => s,
                Err(e) => {
                    if let Ok(st) = staging_dir(&a.datadir) {
                        if st.exists() && !matches!(e, metis_tools::Error::Refused(_)) {
                            eprintln!(
                                "note: {} is unchanged; the batches imported so far are kept in {} \
                                 (rerun with --resume to continue from the last completed chunk)",
                                a.datadir.display(),
                                st.display()
                            );
                        } else if !matches!(e, metis_tools::Error::Refused(_)) {
                            eprintln!("note: {} is unchanged", a.datadir.display());
                        }
                    }
                    return Err(e.into());
                }
            };
            println!("imported {}", a.file.display());
            println!("version {}", s.version);
            println!("state_root {:#x}", s.state_root);
            println!("accounts {}", s.totals.accounts);
            println!("slots {}", s.totals.slots);
            println!("codes {}", s.totals.codes);
            println!("batches {}", s.batches);
            if let Some(c) = s.resumed_at_chunk {
                println!("resumed_at_chunk {c}");
            }
            println!("seconds {:.3}", t0.elapsed().as_secs_f64());
            peak_line();
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Verify { file } => {
            let len = std::fs::metadata(&file).map(|m| m.len()).ok();
            let mut p = Progress::bytes("verify", "entries", len);
            let res = verify_file(&file, &mut |bytes, items| p.set_bytes(bytes, items));
            p.finish();
            let s = res?;
            println!("snapshot {}", file.display());
            println!("format_version {}", metis_tools::snapshot::format::FORMAT_VERSION);
            println!("chain_id {}", s.header.chain_id);
            println!("block {}", s.header.block_number);
            println!("block_hash {:#x}", s.header.block_hash);
            println!("state_root {:#x}", s.header.state_root);
            println!("accounts {}", s.footer.accounts);
            println!("slots {}", s.footer.slots);
            println!("codes {}", s.footer.codes);
            println!("chunks {}", s.footer.chunks);
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
    }
}
