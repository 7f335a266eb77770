//! `metis db ...`: info, verify, stats, synth.

use crate::progress::Progress;
use clap::{Args, Subcommand};
use metisdb::{Db, Durability, Options};
use std::path::PathBuf;
use std::process::ExitCode;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `metis db` subcommands.
#[derive(Subcommand)]
pub enum DbCommand {
    /// Print the latest version and its state root.
    Info {
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Check every reachable page and invariant; exit 0 only when all hold.
    Verify {
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Keys per table, pages used and free, file size, versions, readers.
    Stats {
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Build or extend a deterministic synthetic state.
    Synth(crate::synth::SynthArgs),
}

/// The data dir argument shared by db commands.
#[derive(Args, Clone)]
pub struct DataDir {
    /// Data directory holding the database.
    #[arg(long, default_value = "./data")]
    pub datadir: PathBuf,
}

/// Opens an existing database (never creates one).
pub fn open_existing(dir: &std::path::Path, durability: Durability) -> Result<Db> {
    if !dir.join(metisdb::DATA_FILE).exists() {
        return Err(format!(
            "no database in {} (missing {})",
            dir.display(),
            metisdb::DATA_FILE
        )
        .into());
    }
    Ok(Db::open(
        dir,
        Options {
            create: false,
            durability,
            ..Options::default()
        },
    )?)
}

fn hex32(b: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Runs a db subcommand.
pub fn run(cmd: DbCommand) -> Result<ExitCode> {
    match cmd {
        DbCommand::Info { dir, json } => {
            let db = open_existing(&dir.datadir, Durability::Sync)?;
            let root = hex32(&db.state_root());
            match (db.latest_version(), json) {
                (Some(v), false) => println!("version {v}\nstate_root {root}"),
                (None, false) => println!("version none\nstate_root {root}"),
                (v, true) => println!(
                    "{}",
                    serde_json::json!({"version": v, "state_root": root, "oldest_version": db.oldest_version()})
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Verify { dir, json } => {
            let db = open_existing(&dir.datadir, Durability::Sync)?;
            let mut p = Progress::new("verify", "pages", None);
            let report = db.verify(&mut |done, _| p.set(done))?;
            p.finish();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": report.ok(), "version": report.version, "pages_checked": report.pages_checked,
                        "page_count": report.page_count, "free_pages": report.free_pages,
                        "tables": report.tables.iter().map(|t| serde_json::json!({"name": t.name, "entries": t.entries, "pages": t.pages, "depth": t.depth})).collect::<Vec<_>>(),
                        "problems": report.problems,
                    })
                );
            } else {
                println!(
                    "version {}",
                    report.version.map_or("none".into(), |v| v.to_string())
                );
                println!("pages_checked {}", report.pages_checked);
                println!("free_pages {}", report.free_pages);
                for t in &report.tables {
                    if t.entries > 0 {
                        println!(
                            "table {} entries {} pages {} depth {}",
                            t.name, t.entries, t.pages, t.depth
                        );
                    }
                }
                for p in &report.problems {
                    println!("problem {p}");
                }
                println!("{}", if report.ok() { "ok" } else { "FAILED" });
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DbCommand::Stats { dir, json } => {
            let db = open_existing(&dir.datadir, Durability::Sync)?;
            let s = db.stats()?;
            let oldest_reader = s
                .oldest_reader
                .map(|r| format!("version {} for {} ms", r.requested, r.age_ms));
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file_bytes": s.file_len, "page_size": s.page_size, "page_count": s.page_count,
                        "used_pages": s.used_pages(), "free_pages": s.free_pages, "quarantined_pages": s.quarantined_pages,
                        "free_extents": s.free_extents, "largest_free_extent": s.largest_free_extent,
                        "latest_version": s.latest_version, "durable_version": s.durable_version,
                        "oldest_version": s.oldest_version, "retention": s.retention,
                        "live_readers": s.live_readers, "oldest_reader": oldest_reader, "backend": s.backend,
                        "tables": s.tables.iter().map(|t| serde_json::json!({"name": t.name, "entries": t.entries, "depth": t.depth})).collect::<Vec<_>>(),
                    })
                );
            } else {
                println!("file_bytes {}", s.file_len);
                println!("page_size {}", s.page_size);
                println!(
                    "pages {} used {} free {} quarantined {}",
                    s.page_count,
                    s.used_pages(),
                    s.free_pages,
                    s.quarantined_pages
                );
                println!(
                    "free_extents {} largest {}",
                    s.free_extents, s.largest_free_extent
                );
                match s.latest_version {
                    Some(v) => println!(
                        "versions {}..={v} (retention {})",
                        s.oldest_version, s.retention
                    ),
                    None => println!("versions none (retention {})", s.retention),
                }
                for t in &s.tables {
                    println!("table {} entries {} depth {}", t.name, t.entries, t.depth);
                }
                println!("live_readers {}", s.live_readers);
                println!(
                    "oldest_reader {}",
                    oldest_reader.unwrap_or_else(|| "none (this command holds the data dir lock; in-process readers of a running node show in its metrics)".into())
                );
                println!("backend {}", s.backend);
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Synth(args) => crate::synth::run(args),
    }
}
