//! Sequential vs Block-STM timings on 1-gigagas synthetic blocks and on the
//! mainnet block fixtures.
//!
//! ```text
//! exec_bench synthetic [--gas 1000000000] [--hot-ratio 0.0] [--workers N] [--pools 8]
//! exec_bench mainnet <dir with block directories> [--workers N]
//! exec_bench machine
//! ```
//!
//! `machine` measures what bounds any parallel speedup on this machine: the
//! round trip of a cache line between two threads, and the keccak work two
//! threads do together against one. `synthetic` and `mainnet` print the
//! same line first: on a virtual machine whose host moves or shares the
//! vCPUs, it tells whether a parallel figure was taken on two real cores.
//!
//! `--no-machine` leaves that line out (under valgrind its two spinning
//! threads take minutes).
//!
//! `synthetic` also takes `--only raw|erc20|uniswap`, `--mode seq|par|both`
//! `--runs N` (rounds of one run per mode, default 7: times are the best
//! run of each mode, the speedup the median over the rounds of the ratio
//! of the two runs of a round) and `--receipts` (also time the
//! receipts root alone, on 1 and N threads). Uniswap swaps go to independent
//! pairs unless `--pools` is given; every transaction has its own sender
//! unless `--senders N` is given (fewer senders: same-sender chains, as in
//! payouts). `--state metisdb [--dir DIR]` runs the
//! blocks on a MetisDB snapshot of the parent state instead of the in-memory
//! one: the state is written into a fresh database under DIR (default: the
//! temp directory), and one unmeasured sequential run warms the pages the
//! block reads.

use metis_executor::pending::{InMemoryState, StateView, WithBlockHashes};
use metis_executor::replay::load_block_dir;
use metis_executor::synthetic::{synthetic_block, SyntheticSpec, Workload};
use metis_executor::{execute_block, BlockOutput, ExecutionMode};
use metisdb::{Db, Options};
use std::path::PathBuf;
use std::time::Instant;

// jemalloc by default (feature `jemalloc`); `--features mimalloc` or
// `--features system-alloc` for comparison.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc"), not(feature = "system-alloc")))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "system-alloc")))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn allocator() -> &'static str {
    if cfg!(feature = "system-alloc") {
        "system"
    } else if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else if cfg!(feature = "jemalloc") {
        "jemalloc"
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
            mainnet(&args, PathBuf::from(dir), workers);
        }
        Some("machine") => machine(),
        _ => {
            eprintln!("usage: exec_bench synthetic|mainnet|machine ...");
            std::process::exit(2);
        }
    }
}

/// The output and time (ms) of the fastest of `runs` runs.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut best: Option<(T, f64)> = None;
    for _ in 0..runs {
        let start = Instant::now();
        let out = f();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if best.as_ref().is_none_or(|(_, best_ms)| ms < *best_ms) {
            best = Some((out, ms));
        }
    }
    best.expect("runs >= 1")
}

/// Runs of several modes in interleaved rounds (see [`interleaved`]).
struct Interleaved<T> {
    /// Per mode: its best run and its time in ms.
    best: Vec<(T, f64)>,
    /// Per round: each mode's time in ms.
    rounds: Vec<Vec<f64>>,
}

impl<T> Interleaved<T> {
    /// The speedup of mode `mode` over mode `base`: the median over rounds
    /// of the ratio of their times in the same round. Two runs of one round
    /// are close in time, so the ratio cancels the host's changes of speed;
    /// and a median ignores the rounds an interruption hit. For two modes
    /// doing the same thing, the ratio of best runs of mainnet blocks
    /// ranged over 0.89-1.09 (three runs of the 22 blocks), this median over 0.96-1.03.
    fn median_speedup(&self, base: usize, mode: usize) -> f64 {
        let mut ratios: Vec<f64> = self.rounds.iter().map(|r| r[base] / r[mode]).collect();
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    }
}

/// Runs each of `modes` `runs` times, in rounds of one run of each, in an
/// order that rotates by round: the host changes speed over seconds, and
/// modes timed one after the other in blocks of runs would compare
/// different machines.
fn interleaved<M: Copy, T>(runs: usize, modes: &[M], mut f: impl FnMut(M) -> T) -> Interleaved<T> {
    assert!(runs >= 1);
    let mut best: Vec<Option<(T, f64)>> = modes.iter().map(|_| None).collect();
    let mut rounds = Vec::with_capacity(runs);
    for round in 0..runs {
        let mut times = vec![0.0; modes.len()];
        for k in 0..modes.len() {
            let i = (round + k) % modes.len();
            let start = Instant::now();
            let out = f(modes[i]);
            let ms = start.elapsed().as_secs_f64() * 1e3;
            times[i] = ms;
            if best[i].as_ref().is_none_or(|(_, best_ms)| ms < *best_ms) {
                best[i] = Some((out, ms));
            }
        }
        rounds.push(times);
    }
    Interleaved { best: best.into_iter().map(|b| b.expect("runs >= 1")).collect(), rounds }
}

fn synthetic(args: &[String], workers: usize) {
    let gas: u64 = flag(args, "--gas").and_then(|g| g.parse().ok()).unwrap_or(1_000_000_000);
    let hot_ratio: f64 = flag(args, "--hot-ratio").and_then(|h| h.parse().ok()).unwrap_or(0.0);
    let pools: Option<usize> = flag(args, "--pools").and_then(|p| p.parse().ok());
    // Fewer senders than transactions: same-sender chains (payouts).
    let senders: Option<usize> = flag(args, "--senders").and_then(|s| s.parse().ok());
    let only = flag(args, "--only");
    let runs: usize = flag(args, "--runs").and_then(|r| r.parse().ok()).unwrap_or(7).max(1);
    let mode = flag(args, "--mode").unwrap_or_else(|| "both".into());
    let on_metisdb = match flag(args, "--state").as_deref() {
        None | Some("memory") => false,
        Some("metisdb") => true,
        Some(other) => {
            eprintln!("--state {other}: expected memory or metisdb");
            std::process::exit(2);
        }
    };
    print_machine_bounds(args);
    let db_root = flag(args, "--dir").map_or_else(|| std::env::temp_dir().join("exec-bench-metisdb"), PathBuf::from);
    println!("workload      txs  Mgas   seq ms   par ms  speedup  seq Mgas/s  par Mgas/s  (workers {workers}, hot ratio {hot_ratio}, allocator {}, state {}; times: best of {runs} interleaved rounds; speedup: median over the rounds of seq ms / par ms in the round; phases: transactions + finish ms)", allocator(), if on_metisdb { "MetisDB (warm)" } else { "in memory" });
    for (name, workload, gas_per_tx) in [
        ("raw", Workload::RawTransfers, 21_000u64),
        ("erc20", Workload::Erc20, 51_000),
        ("uniswap", Workload::Swaps, 97_000),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let txs = (gas / gas_per_tx) as usize;
        // Independent pairs by default (as in pevm's gigagas swaps).
        let pools = pools.unwrap_or(if workload == Workload::Swaps { txs } else { 8 });
        let spec = SyntheticSpec { txs, senders: senders.unwrap_or(txs).clamp(1, txs), hot_ratio, pools, seed: 1 };
        let block = synthetic_block(workload, &spec);
        let db = on_metisdb.then(|| metisdb_parent(&db_root.join(name), &block.state));
        let snapshot = db.as_ref().map(|db| WithBlockHashes {
            state: db.snapshot(None).unwrap_or_else(|e| fail(&format!("{name}: snapshot: {e}"))),
            hashes: block.state.block_hashes.clone(),
        });
        let parent: &dyn StateView = match &snapshot {
            Some(snapshot) => {
                // Warm-up: map every page the block reads.
                if let Err(e) = execute_block(snapshot, &block.input, &block.txs, ExecutionMode::Sequential) {
                    fail(&format!("{name}: warm-up: {e}"));
                }
                snapshot
            }
            None => &block.state,
        };
        let mut modes = Vec::new();
        if mode != "par" {
            modes.push(ExecutionMode::Sequential);
        }
        if mode != "seq" {
            modes.push(ExecutionMode::Parallel { workers });
        }
        let timing = interleaved(runs, &modes, |mode| execute_block(parent, &block.input, &block.txs, mode));
        let speedup = if modes.len() == 2 { timing.median_speedup(0, 1) } else { f64::NAN };
        let mut timed = timing.best.into_iter().map(|(out, ms)| match out {
            Ok(out) => (out, ms),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        });
        let seq = (mode != "par").then(|| timed.next().expect("a sequential run"));
        let par = (mode != "seq").then(|| timed.next().expect("a parallel run"));
        if let (Some((seq, _)), Some((par, _))) = (&seq, &par) {
            assert_eq!(seq.final_writes, par.final_writes, "{name}: parallel post-state differs");
        }
        let Some(gas_used) = seq.as_ref().or(par.as_ref()).map(|(out, _)| out.gas_used) else { continue };
        let mgas = gas_used as f64 / 1e6;
        let seq_ms = seq.as_ref().map_or(f64::NAN, |(_, ms)| *ms);
        let par_ms = par.as_ref().map_or(f64::NAN, |(_, ms)| *ms);
        let stats = par.as_ref().map(|(out, _)| out.stats).unwrap_or_default();
        let phases = |run: &Option<(BlockOutput, f64)>| run.as_ref().map_or_else(String::new, |(out, _)| phases(out));
        if let Some((out, _)) = seq.as_ref().or(par.as_ref()).filter(|_| args.iter().any(|a| a == "--receipts")) {
            let (_, root1) = best_of(runs, || metis_executor::receipts::receipts_root_with_threads(&out.receipts, 1));
            let (_, root2) =
                best_of(runs, || metis_executor::receipts::receipts_root_with_threads(&out.receipts, workers));
            eprintln!("{name}: receipts root {root1:.1} ms on 1 thread, {root2:.1} ms on {workers}");
        }
        println!(
            "{name:<9} {txs:>8} {mgas:>5.0} {seq_ms:>8.1} {par_ms:>8.1} {:>7.2}x {:>11.0} {:>11.0}   aborts {} waits {}   phases seq {} par {}",
            speedup,
            mgas / seq_ms * 1e3,
            mgas / par_ms * 1e3,
            stats.validation_aborts,
            stats.dependency_waits,
            phases(&seq),
            phases(&par),
        );
    }
}

/// The wall time of a block's transactions and of its finish (receipts,
/// final writes), in ms.
fn phases(out: &BlockOutput) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    format!("{:.2} + {:.2}", ms(out.stats.transactions_time), ms(out.stats.finish_time))
}

/// What bounds a parallel speedup on this machine right now (the host may
/// move or share the vCPUs): cache-line round trip between two threads in
/// ns, keccak of 32 bytes on one thread in ns, and the keccak work two
/// threads do together against one. Best of 3 each.
struct MachineBounds {
    round_trip_ns: f64,
    keccak_ns: f64,
    keccak_two_threads: f64,
}

/// Below this keccak work of two threads against one, the host is sharing
/// or throttling a vCPU (two real cores give 1.8-2.1x here).
const SHARED_CORE_BELOW: f64 = 1.8;

impl std::fmt::Display for MachineBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine: cache-line round trip {:.0} ns; keccak {:.0} ns on one thread, two threads do {:.2}x the work of one",
            self.round_trip_ns, self.keccak_ns, self.keccak_two_threads
        )?;
        if self.keccak_two_threads < SHARED_CORE_BELOW {
            write!(
                f,
                "\nwarning: two threads did less than {SHARED_CORE_BELOW}x one thread's keccak work: the host is sharing a \
                 core, and parallel figures taken now measure the host more than the executor"
            )?;
        }
        Ok(())
    }
}

fn print_machine_bounds(args: &[String]) {
    if !args.iter().any(|a| a == "--no-machine") {
        println!("{}", machine_bounds());
    }
}

fn machine() {
    println!("{}", machine_bounds());
}

fn machine_bounds() -> MachineBounds {
    use std::sync::atomic::{AtomicU64, Ordering};
    const ROUND_TRIPS: u64 = 200_000;
    let (_, round_trip_ms) = best_of(3, || {
        let turn = AtomicU64::new(0);
        std::thread::scope(|scope| {
            // Each side waits for the other's write, then writes: every
            // step moves the line to the other core.
            scope.spawn(|| {
                for i in 0..ROUND_TRIPS {
                    while turn.load(Ordering::Acquire) != 2 * i + 1 {
                        std::hint::spin_loop();
                    }
                    turn.store(2 * i + 2, Ordering::Release);
                }
            });
            for i in 0..ROUND_TRIPS {
                while turn.load(Ordering::Acquire) != 2 * i {
                    std::hint::spin_loop();
                }
                turn.store(2 * i + 1, Ordering::Release);
            }
        })
    });
    const HASHES: usize = 200_000;
    let hash_run = || {
        let mut digest = [0u8; 32];
        for _ in 0..HASHES {
            digest = alloy_primitives::keccak256(digest).0;
        }
        std::hint::black_box(digest);
    };
    let (_, one) = best_of(3, hash_run);
    let (_, two) = best_of(3, || {
        std::thread::scope(|scope| {
            scope.spawn(hash_run);
            hash_run();
        })
    });
    MachineBounds {
        round_trip_ns: round_trip_ms * 1e6 / ROUND_TRIPS as f64,
        keccak_ns: one * 1e6 / HASHES as f64,
        keccak_two_threads: 2.0 * one / two,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(1);
}

/// A fresh database in `dir` whose newest version holds `state`. A
/// database left there by an earlier run is replaced; anything else in
/// `dir` is left alone and the run stops.
fn metisdb_parent(dir: &std::path::Path, state: &InMemoryState) -> Db {
    if let Ok(entries) = std::fs::read_dir(dir) {
        let names: Vec<String> =
            entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into()).collect();
        if let Some(other) = names.iter().find(|n| !matches!(n.as_str(), "metis.db" | "LOCK")) {
            fail(&format!("{}: holds {other}, not only a benchmark database; choose another --dir", dir.display()));
        }
        for name in names {
            if let Err(e) = std::fs::remove_file(dir.join(&name)) {
                fail(&format!("{}: remove the previous run's {name}: {e}", dir.display()));
            }
        }
    }
    let what = |step: &str, e: metisdb::Error| -> ! { fail(&format!("{}: {step}: {e}", dir.display())) };
    let db = Db::open(dir, Options::default()).unwrap_or_else(|e| what("open", e));
    let mut writer = db.begin_state().unwrap_or_else(|e| what("begin", e));
    state.write_to(&mut writer).unwrap_or_else(|e| what("write the parent state", e));
    let (_, root) = writer.commit(Vec::new()).unwrap_or_else(|e| what("commit", e));
    if root != state.state_root() {
        fail(&format!("{}: MetisDB root {root} differs from the in-memory root", dir.display()));
    }
    db
}

fn mainnet(args: &[String], dir: PathBuf, workers: usize) {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("block.json").exists());
    if dirs.is_empty() {
        eprintln!("{}: no block directories (subdirectories with a block.json)", dir.display());
        std::process::exit(2);
    }
    dirs.sort_by_key(|d| d.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok()));
    let (mut auto_speedups, mut stm_speedups) = (Vec::new(), Vec::new());
    print_machine_bounds(args);
    println!(
        "block       txs   seq ms   stm ms   auto ms  stm x   auto x  workers  ok  (workers {workers}; times: best of 5 or more interleaved rounds; speedups: median over the rounds of seq ms / mode ms in the round; allocator {}; Block-STM aborts, waits; phases: transactions + finish ms)",
        allocator()
    );
    for d in dirs {
        let fixture = match load_block_dir(&d) {
            Ok(f) => f,
            Err(e) => {
                println!("{}: {e}", d.display());
                continue;
            }
        };
        // Warm-up (first use of the KZG setup, page faults), then at least 5
        // rounds and about a second of runs: a block of a few transactions
        // takes a fraction of a millisecond, where five runs are at the mercy
        // of one interruption, and the median of 20 round ratios of a 4 ms
        // block still moved by 4% from one invocation to the next.
        let modes = [ExecutionMode::Sequential, ExecutionMode::Parallel { workers }, ExecutionMode::Auto { workers }];
        let started = Instant::now();
        for mode in modes {
            let _ = execute_block(&fixture.state, &fixture.input, &fixture.txs, mode);
        }
        let runs = (1.0 / started.elapsed().as_secs_f64().max(1e-6)).clamp(5.0, 2000.0) as usize;
        let timing =
            interleaved(runs, &modes, |mode| execute_block(&fixture.state, &fixture.input, &fixture.txs, mode));
        let (stm_x, auto_x) = (timing.median_speedup(0, 1), timing.median_speedup(0, 2));
        let mut timed = timing.best.into_iter();
        let mut next = || timed.next().expect("one result per mode");
        let ((seq, seq_ms), (stm, stm_ms), (auto, auto_ms)) = (next(), next(), next());
        let ok = match (&seq, &stm, &auto) {
            (Ok(s), Ok(p), Ok(a)) => {
                s.receipts == p.receipts
                    && s.final_writes == p.final_writes
                    && s.receipts == a.receipts
                    && s.final_writes == a.final_writes
            }
            _ => false,
        };
        let used = auto.as_ref().map_or(0, |a| a.stats.workers);
        let detail = match (&seq, &stm) {
            (Ok(seq), Ok(stm)) => format!(
                "   aborts {} waits {}   phases seq {} stm {}",
                stm.stats.validation_aborts,
                stm.stats.dependency_waits,
                phases(seq),
                phases(stm)
            ),
            _ => String::new(),
        };
        auto_speedups.push(auto_x);
        stm_speedups.push(stm_x);
        println!(
            "{:<10} {:>4} {seq_ms:>8.2} {stm_ms:>8.2} {auto_ms:>9.2} {stm_x:>5.2}x {auto_x:>6.2}x {used:>8}  {ok}{detail}",
            fixture.number,
            fixture.txs.len(),
        );
    }
    for (name, speedups) in [("auto", &auto_speedups), ("block-stm", &stm_speedups)] {
        let n = speedups.len().max(1) as f64;
        let mean = speedups.iter().sum::<f64>() / n;
        let worst = speedups.iter().copied().fold(f64::MAX, f64::min);
        println!("{name}: mean speedup {mean:.2}x, worst {worst:.2}x");
    }
}
