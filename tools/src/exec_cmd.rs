//! `metis statetest` and `metis replay`: the executor's runners over
//! ethereum/tests state tests and mainnet block fixtures.

use clap::{Args, ValueEnum};
use metis_executor::replay::{load_block_dir, run_fixture, BlockReport, ReplayMode};
use metis_executor::statetest::run_paths;
use std::path::PathBuf;
use std::process::ExitCode;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[derive(Args)]
pub struct StatetestArgs {
    /// GeneralStateTests-format JSON files, or directories searched recursively.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Only tests whose name contains this string.
    #[arg(long)]
    filter: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Seq,
    Par,
    Both,
}

#[derive(Args)]
pub struct ReplayArgs {
    /// Block directories (block.json, pre_state.json, bytecodes.json, block_hashes.json).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// seq: the sequential reference; par: Block-STM; both: both, and their post-states must agree.
    #[arg(long, value_enum, default_value = "both")]
    mode: Mode,
    /// Block-STM workers (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Timed runs per block after one untimed warm-up run; the fastest is printed, every run is checked.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Loads a block, runs it once to warm caches and thread pools, then
/// `runs` times; keeps the fastest times and every mismatch seen.
fn replay_block(dir: &std::path::Path, mode: ReplayMode, workers: usize, runs: usize) -> BlockReport {
    let fixture = match load_block_dir(dir) {
        Ok(f) => f,
        Err(e) => {
            let number = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).unwrap_or(0);
            let mismatches = vec![e.to_string()];
            return BlockReport { number, txs: 0, seq_ms: None, par_ms: None, speedup: None, ok: false, mismatches };
        }
    };
    let mut best = run_fixture(&fixture, mode, workers);
    for i in 0..runs {
        let r = run_fixture(&fixture, mode, workers);
        let min = |a: Option<f64>, b: Option<f64>| if i == 0 { b } else { a.zip(b).map(|(a, b)| a.min(b)).or(b) };
        best.seq_ms = min(best.seq_ms, r.seq_ms);
        best.par_ms = min(best.par_ms, r.par_ms);
        best.ok &= r.ok;
        for m in r.mismatches {
            if !best.mismatches.contains(&m) {
                best.mismatches.push(m);
            }
        }
    }
    best.speedup = best.seq_ms.zip(best.par_ms).map(|(s, p)| s / p);
    best
}

/// Runs the state tests; prints every failure, then `N passed, N failed, N skipped`.
pub fn run_statetest(a: StatetestArgs) -> Result<ExitCode> {
    for p in &a.paths {
        if !p.exists() {
            return Err(format!("{}: no such file or directory", p.display()).into());
        }
    }
    let summary = run_paths(&a.paths, a.filter.as_deref(), |f| println!("FAIL {f}"));
    println!("{} passed, {} failed, {} skipped", summary.passed, summary.failed, summary.skipped);
    Ok(if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Replays block fixtures; one line per block, then `N passed, N failed`.
pub fn run_replay(a: ReplayArgs) -> Result<ExitCode> {
    let mode = match a.mode {
        Mode::Seq => ReplayMode::Seq,
        Mode::Par => ReplayMode::Par,
        Mode::Both => ReplayMode::Both,
    };
    let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let (mut passed, mut failed) = (0usize, 0usize);
    for dir in &a.dirs {
        let r = replay_block(dir, mode, workers, a.runs.max(1));
        println!(
            "block {} txs {} seq_ms {} par_ms {} speedup {} {}",
            r.number,
            r.txs,
            ms(r.seq_ms),
            ms(r.par_ms),
            r.speedup.map_or("-".to_string(), |x| format!("{x:.2}")),
            if r.ok { "ok" } else { "FAIL" }
        );
        for m in &r.mismatches {
            println!("  {}: {m}", dir.display());
        }
        if r.ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
