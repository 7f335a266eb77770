//! Sequential vs Block-STM timings on 1-gigagas synthetic blocks and on the
//! mainnet block fixtures.
//!
//! ```text
//! exec_bench synthetic [--gas 1000000000] [--hot-ratio 0.0] [--workers N] [--pools 8]
//! exec_bench mainnet <dir with block directories> [--workers N]
//! ```

use metis_executor::replay::{run_block_dir, ReplayMode};
use metis_executor::synthetic::{synthetic_block, SyntheticSpec, Workload};
use metis_executor::{execute_block, ExecutionMode};
use std::path::PathBuf;
use std::time::Instant;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn allocator() -> &'static str {
    if cfg!(feature = "jemalloc") {
        "jemalloc"
    } else if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else {
        "system"
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workers: usize = flag(&args, "--workers")
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match args.first().map(String::as_str) {
        Some("synthetic") => synthetic(&args, workers),
        Some("mainnet") => {
            let Some(dir) = args.get(1) else {
                eprintln!("usage: exec_bench mainnet <dir> [--workers N]");
                std::process::exit(2);
            };
            mainnet(PathBuf::from(dir), workers);
        }
        _ => {
            eprintln!("usage: exec_bench synthetic|mainnet ...");
            std::process::exit(2);
        }
    }
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let out = f();
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
        last = Some(out);
    }
    // runs >= 1, so `last` is set.
    (last.expect("at least one run"), best)
}

fn synthetic(args: &[String], workers: usize) {
    let gas: u64 = flag(args, "--gas").and_then(|g| g.parse().ok()).unwrap_or(1_000_000_000);
    let hot_ratio: f64 = flag(args, "--hot-ratio").and_then(|h| h.parse().ok()).unwrap_or(0.0);
    let pools: usize = flag(args, "--pools").and_then(|p| p.parse().ok()).unwrap_or(8);
    let only = flag(args, "--only");
    let runs: usize = flag(args, "--runs").and_then(|r| r.parse().ok()).unwrap_or(3).max(1);
    let mode = flag(args, "--mode").unwrap_or_else(|| "both".into());
    println!("workload      txs  Mgas   seq ms   par ms  speedup  seq Mgas/s  par Mgas/s  (workers {workers}, hot ratio {hot_ratio}, allocator {})", allocator());
    for (name, workload, gas_per_tx) in [
        ("raw", Workload::RawTransfers, 21_000u64),
        ("erc20", Workload::Erc20, 51_000),
        ("uniswap", Workload::Swaps, 100_000),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let txs = (gas / gas_per_tx) as usize;
        let spec = SyntheticSpec { txs, senders: txs, hot_ratio, pools, seed: 1 };
        let block = synthetic_block(workload, &spec);
        let run = |mode: ExecutionMode| {
            let (out, ms) = best_of(runs, || execute_block(&block.state, &block.input, &block.txs, mode));
            match out {
                Ok(out) => (out, ms),
                Err(e) => {
                    eprintln!("{name}: {e}");
                    std::process::exit(1);
                }
            }
        };
        let seq = (mode != "par").then(|| run(ExecutionMode::Sequential));
        let par = (mode != "seq").then(|| run(ExecutionMode::Parallel { workers }));
        if let (Some((seq, _)), Some((par, _))) = (&seq, &par) {
            assert_eq!(seq.final_writes, par.final_writes, "{name}: parallel post-state differs");
        }
        let Some(gas_used) = seq.as_ref().or(par.as_ref()).map(|(out, _)| out.gas_used) else { continue };
        let mgas = gas_used as f64 / 1e6;
        let seq_ms = seq.as_ref().map_or(f64::NAN, |(_, ms)| *ms);
        let par_ms = par.as_ref().map_or(f64::NAN, |(_, ms)| *ms);
        let stats = par.as_ref().map(|(out, _)| out.stats).unwrap_or_default();
        println!(
            "{name:<9} {txs:>8} {mgas:>5.0} {seq_ms:>8.1} {par_ms:>8.1} {:>7.2}x {:>11.0} {:>11.0}   aborts {} waits {}",
            seq_ms / par_ms,
            mgas / seq_ms * 1e3,
            mgas / par_ms * 1e3,
            stats.validation_aborts,
            stats.dependency_waits,
        );
    }
}

fn mainnet(dir: PathBuf, workers: usize) {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("block.json").exists());
    dirs.sort_by_key(|d| d.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok()));
    let mut speedups = Vec::new();
    println!("block       txs   seq ms   par ms  speedup  ok  (workers {workers}, best of 3)");
    for d in dirs {
        // Warm-up run (first use of the KZG setup and code caches), then best of 3.
        let _ = run_block_dir(&d, ReplayMode::Both, workers);
        let reports: Vec<_> = (0..3).map(|_| run_block_dir(&d, ReplayMode::Both, workers)).collect();
        let seq = reports.iter().filter_map(|r| r.seq_ms).fold(f64::MAX, f64::min);
        let par = reports.iter().filter_map(|r| r.par_ms).fold(f64::MAX, f64::min);
        let r = &reports[0];
        let speedup = seq / par;
        speedups.push(speedup);
        println!("{:<10} {:>4} {seq:>8.2} {par:>8.2} {speedup:>7.2}x  {}", r.number, r.txs, r.ok);
    }
    let n = speedups.len().max(1) as f64;
    let mean = speedups.iter().sum::<f64>() / n;
    let worst = speedups.iter().copied().fold(f64::MAX, f64::min);
    println!("mean speedup {mean:.2}x, worst {worst:.2}x");
}
