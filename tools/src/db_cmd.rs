//! `metis db ...`: info, get, verify, stats, prove, synth.

use clap::{Args, Subcommand};
use metis_tools::progress::Progress;
use metisdb::{Db, Options};
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
    /// Check every reachable page and invariant, and recompute the state
    /// root and every stored branch record (account and storage tries) from
    /// the leaves; exit 0 only when all hold.
    Verify {
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// Skip the state-root and branch-record recomputation (pages and invariants only).
        #[arg(long)]
        skip_root: bool,
    },
    /// Keys per table, pages used and free, file size, versions, readers.
    Stats {
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Print the EIP-1186 proof of an account and storage slots (as eth_getProof serves it).
    Prove {
        #[command(flatten)]
        dir: DataDir,
        /// The account.
        #[arg(long)]
        address: String,
        /// Storage slots (repeatable).
        #[arg(long = "slot")]
        slots: Vec<String>,
        /// Version (block) to prove at; default the latest.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Print an account (and storage slots, code) at a version.
    Get {
        #[command(flatten)]
        dir: DataDir,
        /// The account.
        #[arg(long)]
        address: String,
        /// Storage slots to print (repeatable).
        #[arg(long = "slot")]
        slots: Vec<String>,
        /// Also print the bytecode.
        #[arg(long)]
        code: bool,
        /// Version (block) to read; default the latest.
        #[arg(long)]
        version: Option<u64>,
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
pub fn open_existing(dir: &std::path::Path) -> Result<Db> {
    open_with(dir, Options { create: false, ..Options::default() })
}

/// Opens an existing database for commands that only read it (info, stats,
/// get, prove, snapshot export, export-state): a file of an older format
/// version opens too, so that it can be inspected and its state moved to
/// this build (its write transactions are refused). `db verify` does not:
/// it checks the stored records against this build's policy.
pub fn open_for_reading(dir: &std::path::Path) -> Result<Db> {
    open_with(dir, Options { create: false, read_older_format: true, ..Options::default() })
}

fn open_with(dir: &std::path::Path, options: Options) -> Result<Db> {
    if !dir.join(metisdb::DATA_FILE).exists() {
        return Err(format!("no database in {} (missing {})", dir.display(), metisdb::DATA_FILE).into());
    }
    Ok(Db::open(dir, options)?)
}

fn hex32(b: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Runs a db subcommand.
pub fn run(cmd: DbCommand) -> Result<ExitCode> {
    match cmd {
        DbCommand::Info { dir, json } => {
            let db = open_for_reading(&dir.datadir)?;
            let root = hex32(&db.state_root());
            let format = db.format_version();
            match (db.latest_version(), json) {
                (v, false) => {
                    let v = v.map_or("none".to_string(), |v| v.to_string());
                    println!("version {v}\nstate_root {root}");
                    // Only an older file says so: the usual output stays two lines.
                    if format != metisdb::meta::FORMAT_VERSION {
                        println!("format {format} (older: read only; move it with snapshot export and import)");
                    }
                }
                (v, true) => println!(
                    "{}",
                    serde_json::json!({
                        "version": v,
                        "state_root": root,
                        "oldest_version": db.oldest_version(),
                        "format": format
                    })
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Verify { dir, json, skip_root } => {
            let db = open_existing(&dir.datadir)?;
            // Both passes read the whole file with pread (the page pass in
            // tree order, the root pass in key order): read it into the page
            // cache ahead of them, sequentially, once. They are independent
            // and run side by side (the root pass is mostly keccak, the page
            // pass mostly reads); the root pass's findings count only when
            // the pages are sound (on damaged pages it would fail on the
            // same damage).
            let _prefetch = metis_tools::rss::Prefetch::start(db.path());
            let snap = db.snapshot(None)?;
            let (report, root_pass) = std::thread::scope(|s| {
                let root_pass = (!skip_root && snap.version().is_some()).then(|| {
                    s.spawn(|| {
                        let accounts = snap.latest_entries(metisdb::tables::ACCOUNTS);
                        let mut p = Progress::new("verify: state root", "accounts", Some(accounts));
                        let c = metis_tools::stream_root::check_state_root(&snap, &mut |n| p.set(n));
                        p.finish();
                        c
                    })
                });
                let mut p = Progress::new("verify", "pages", None);
                let report = db.verify(&mut |done, _| p.set(done));
                p.finish();
                let root_pass = root_pass.map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                (report, root_pass)
            });
            let mut report = report?;
            let root = if !report.ok() {
                None
            } else if let Some(c) = root_pass {
                match c {
                    Ok(c) => {
                        for m in &c.mismatches {
                            report.problems.push(format!(
                                "account {:#x}: stored storage root {:#x}, its slots hash to {:#x}",
                                m.account, m.stored, m.computed
                            ));
                        }
                        if c.mismatch_count > c.mismatches.len() as u64 {
                            report
                                .problems
                                .push(format!("... {} accounts with a wrong storage root in all", c.mismatch_count));
                        }
                        if c.stored != c.computed {
                            report.problems.push(format!(
                                "state root: stored {:#x}, recomputed from the leaves {:#x}",
                                c.stored, c.computed
                            ));
                        }
                        report.problems.extend(c.record_problems.iter().cloned());
                        if c.record_problem_count > c.record_problems.len() as u64 {
                            report
                                .problems
                                .push(format!("... {} branch record problems in all", c.record_problem_count));
                        }
                        Some(c)
                    }
                    Err(e) => {
                        report.problems.push(format!("state root: {e}"));
                        None
                    }
                }
            } else {
                None
            };
            let root_line = root.as_ref().map(|c| format!("{:#x}", c.computed));
            let records_checked = root.as_ref().map(|c| c.records_checked);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": report.ok(), "version": report.version, "pages_checked": report.pages_checked,
                        "page_count": report.page_count, "free_pages": report.free_pages,
                        "tables": report.tables.iter().map(|t| serde_json::json!({"name": t.name, "entries": t.entries, "pages": t.pages, "depth": t.depth})).collect::<Vec<_>>(),
                        "problems": report.problems,
                        "state_root_recomputed": root_line,
                        "records_checked": records_checked,
                    })
                );
            } else {
                println!("version {}", report.version.map_or("none".into(), |v| v.to_string()));
                if let Some(r) = &root_line {
                    println!("state_root_recomputed {r}");
                }
                if let Some(n) = records_checked {
                    println!("records_checked {n}");
                }
                println!("pages_checked {}", report.pages_checked);
                println!("free_pages {}", report.free_pages);
                for t in &report.tables {
                    if t.entries > 0 {
                        println!("table {} entries {} pages {} depth {}", t.name, t.entries, t.pages, t.depth);
                    }
                }
                for p in &report.problems {
                    println!("problem {p}");
                }
                println!("{}", if report.ok() { "ok" } else { "FAILED" });
            }
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        DbCommand::Stats { dir, json } => {
            let db = open_for_reading(&dir.datadir)?;
            let s = db.stats()?;
            let oldest_reader = s.oldest_reader.map(|r| format!("version {} for {} ms", r.requested, r.age_ms));
            let free_pct = if s.page_count == 0 { 0.0 } else { 100.0 * s.free_pages as f64 / s.page_count as f64 };
            let fragmentation =
                if s.free_pages == 0 { 0.0 } else { 1.0 - s.largest_free_extent as f64 / s.free_pages as f64 };
            // How a full scan of the state (export, export-state) will read the file.
            let leaves_in_order = db
                .snapshot(None)
                .ok()
                .and_then(|snap| snap.leaves_in_key_order(metisdb::tables::ACCOUNTS, 16).ok().flatten());
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file_bytes": s.file_len, "page_size": s.page_size, "page_count": s.page_count,
                        "used_pages": s.used_pages(), "free_pages": s.free_pages, "quarantined_pages": s.quarantined_pages,
                        "free_extents": s.free_extents, "largest_free_extent": s.largest_free_extent,
                        "free_bytes": s.free_pages * s.page_size as u64, "free_percent": free_pct, "fragmentation": fragmentation,
                        "account_leaves_in_key_order": leaves_in_order,
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
                println!("free_extents {} largest {}", s.free_extents, s.largest_free_extent);
                println!("free_bytes {} ({:.1}% of the file)", s.free_pages * s.page_size as u64, free_pct);
                println!(
                    "fragmentation {fragmentation:.3} (1 - largest free extent / free pages; 0 = one contiguous run)"
                );
                println!(
                    "account_leaves_in_key_order {} (neighbouring account leaves adjacent in the file; from {} a \
                     full scan of the state streams through the file, below it reads the state's pages ahead)",
                    leaves_in_order.map_or("none".to_string(), |v| format!("{v:.3}")),
                    metis_tools::rss::IN_ORDER_SHARE
                );
                match s.latest_version {
                    Some(v) => println!("versions {}..={v} (retention {})", s.oldest_version, s.retention),
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
        DbCommand::Prove { dir, address, slots, version } => {
            let address = parse_address(&address)?;
            let slots = slots.iter().map(|s| parse_u256(s)).collect::<Result<Vec<_>>>()?;
            let db = open_for_reading(&dir.datadir)?;
            let snap = db.snapshot(version)?;
            let proof = metisdb::state::account_proof(&snap, &address, &slots)?;
            let root = alloy_primitives::B256::from(snap.state_root()?);
            proof.verify(root).map_err(|e| format!("internal error: the generated proof does not verify: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&proof_json(&proof))?);
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Get { dir, address, slots, code, version, json } => {
            let address = parse_address(&address)?;
            let slots = slots.iter().map(|s| parse_u256(s)).collect::<Result<Vec<_>>>()?;
            let db = open_for_reading(&dir.datadir)?;
            let snap = db.snapshot(version)?;
            let v = snap.version().map_or("none".to_string(), |v| v.to_string());
            use metisdb::state::StateRead;
            let acct = snap.account(&address)?;
            let mut vals = Vec::with_capacity(slots.len());
            for s in &slots {
                vals.push((*s, snap.storage(&address, s)?));
            }
            let bytecode = match (&acct, code) {
                (Some(a), true) if a.info.code_hash != metisdb::state::KECCAK_EMPTY => {
                    Some(snap.code(&a.info.code_hash)?.map(|c| format!("0x{}", hex::encode(c))).ok_or_else(|| {
                        format!("code {:#x} of {address:#x} is missing from the database", a.info.code_hash)
                    })?)
                }
                (_, true) => Some("0x".to_string()),
                _ => None,
            };
            if json {
                let mut o = serde_json::json!({"version": snap.version(), "address": format!("{address:#x}"), "exists": acct.is_some()});
                if let Some(a) = &acct {
                    o["nonce"] = serde_json::json!(a.info.nonce);
                    o["balance"] = serde_json::json!(a.info.balance.to_string());
                    o["code_hash"] = serde_json::json!(format!("{:#x}", a.info.code_hash));
                    o["storage_root"] = serde_json::json!(format!("{:#x}", a.storage_root));
                }
                o["storage"] = serde_json::json!(vals
                    .iter()
                    .map(|(s, v)| (format!("{s:#x}"), serde_json::json!(format!("{v:#x}"))))
                    .collect::<serde_json::Map<_, _>>());
                if let Some(c) = &bytecode {
                    o["code"] = serde_json::json!(c);
                }
                println!("{o}");
            } else {
                println!("version {v}");
                println!("address {address:#x}");
                match &acct {
                    None => println!("account none"),
                    Some(a) => {
                        println!("nonce {}", a.info.nonce);
                        println!("balance {}", a.info.balance);
                        println!("code_hash {:#x}", a.info.code_hash);
                        println!("storage_root {:#x}", a.storage_root);
                    }
                }
                for (s, val) in &vals {
                    println!("slot {s:#x} {val:#x}");
                }
                if let Some(c) = &bytecode {
                    println!("code {c}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Synth(args) => crate::synth::run(args),
    }
}

/// Parses a 20-byte address (0x optional).
pub fn parse_address(s: &str) -> Result<alloy_primitives::Address> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    let b = hex::decode(h).map_err(|_| format!("address {s:?} is not hex"))?;
    if b.len() != 20 {
        return Err(format!("address {s:?} is {} bytes, expected 20", b.len()).into());
    }
    Ok(alloy_primitives::Address::from_slice(&b))
}

/// Parses a storage slot: hex (0x, up to 32 bytes) or decimal.
pub fn parse_u256(s: &str) -> Result<alloy_primitives::U256> {
    let v = match s.strip_prefix("0x") {
        Some(h) if h.len() <= 64 && !h.is_empty() => alloy_primitives::U256::from_str_radix(h, 16),
        Some(_) => return Err(format!("slot {s:?} must be 1 to 32 bytes of hex").into()),
        None => alloy_primitives::U256::from_str_radix(s, 10),
    };
    v.map_err(|_| format!("slot {s:?} is not a number").into())
}

fn quantity(v: impl std::fmt::LowerHex) -> String {
    format!("{v:#x}")
}

/// The eth_getProof JSON of a proof.
pub fn proof_json(p: &metisdb::state::AccountProof) -> serde_json::Value {
    let hexes = |v: &[alloy_primitives::Bytes]| v.iter().map(|b| format!("0x{}", hex::encode(b))).collect::<Vec<_>>();
    serde_json::json!({
        "address": format!("{:#x}", p.address),
        "accountProof": hexes(&p.account_proof),
        "balance": quantity(p.balance),
        "codeHash": format!("{:#x}", p.code_hash),
        "nonce": quantity(p.nonce),
        "storageHash": format!("{:#x}", p.storage_hash),
        "storageProof": p.storage_proof.iter().map(|s| serde_json::json!({
            "key": quantity(s.key),
            "value": quantity(s.value),
            "proof": hexes(&s.proof),
        })).collect::<Vec<_>>(),
    })
}
