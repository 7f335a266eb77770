//! Block production: every tick, take the best executable transactions
//! from the pool, run them on the Block-STM executor over the head
//! snapshot, fold the final writes into the next MetisDB version together
//! with the block, its receipts and lookups, and publish the new head.

use crate::chain::{base_fee_after, build_header, store, Head, HeaderFields};
use crate::core::{now_secs, Core};
use crate::error::{NodeError, Result};
use crate::txs::SignedTx;
use alloy_primitives::{Address, B256};
use metis_executor::pending::{fold, WithBlockHashes};
use metis_executor::receipts::ordered_trie_root;
use metis_executor::{build_block, execute_block, ExecutionMode};
use metisdb::state::StateRead;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most transactions taken into one block.
pub const MAX_BLOCK_TXS: usize = 20_000;

/// What one produced block did.
#[derive(Clone, Debug)]
pub struct Produced {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Transactions included.
    pub txs: usize,
    /// Transactions the executor left out (dropped from the pool).
    pub rejected: usize,
    /// Gas used.
    pub gas_used: u64,
}

/// Production settings.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Time between blocks.
    pub block_time: Duration,
    /// Block-STM workers.
    pub workers: usize,
    /// Every this many blocks with transactions, re-run one sequentially to
    /// measure the speedup (0: never).
    pub speedup_sample_every: u64,
}

/// Runs the production loop on the calling thread until `stop` is set.
pub fn run(core: Arc<Core>, config: ProducerConfig, stop: Arc<AtomicBool>) {
    let mut next = Instant::now() + config.block_time;
    let mut with_txs = 0u64;
    while !stop.load(Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(5)));
            continue;
        }
        match produce_block(&core, &config) {
            Ok(p) => {
                if p.txs > 0 {
                    with_txs += 1;
                    if config.speedup_sample_every > 0 && with_txs.is_multiple_of(config.speedup_sample_every) {
                        sample_speedup(&core, p.number, config.workers);
                    }
                }
            }
            Err(e) => {
                core.metrics.block_errors.fetch_add(1, Relaxed);
                eprintln!("block production failed: {e}");
            }
        }
        next += config.block_time;
        let now = Instant::now();
        if next < now {
            // Running late: the next block starts right away, without a burst to catch up.
            next = now;
        }
    }
}

/// Builds, executes and commits the next block.
pub fn produce_block(core: &Core, config: &ProducerConfig) -> Result<Produced> {
    let t0 = Instant::now();
    let head = core.chain.head();
    let cfg = &core.chain.config;
    let number = head.number + 1;
    let base_fee = base_fee_after(&head.header);
    let timestamp = now_secs().max(head.header.timestamp);
    let candidates = core.pool.select(base_fee, cfg.gas_limit, MAX_BLOCK_TXS);
    let input = core.block_input(number, timestamp, base_fee, head.hash);
    let tx_envs: Vec<_> = candidates.iter().map(|t| t.tx_env()).collect();

    let snap = core.db.snapshot(Some(head.number))?;
    let view = WithBlockHashes { state: &snap, hashes: core.chain.recent_hashes() };
    let mode = if config.workers <= 1 {
        ExecutionMode::Sequential
    } else {
        ExecutionMode::Parallel { workers: config.workers }
    };
    let built = build_block(&view, &input, &tx_envs, mode)?;
    drop(view);
    drop(snap);
    let t_exec = t0.elapsed();

    let included: Vec<&SignedTx> = built.included.iter().map(|&i| &*candidates[i]).collect();
    let out = &built.output;
    let mut writer = core.db.begin_state()?;
    fold(&mut writer, &out.final_writes)?;
    let state_root = writer.compute_root()?;
    let transactions_root =
        ordered_trie_root(included.iter().map(|t| t.encoded.to_vec()).collect::<Vec<_>>().into_iter());
    let header = build_header(
        cfg,
        &HeaderFields {
            number,
            parent_hash: head.hash,
            timestamp,
            base_fee,
            state_root,
            transactions_root,
            receipts_root: out.receipts_root.unwrap_or(metis_trie::EMPTY_ROOT_HASH),
            logs_bloom: out.logs_bloom,
            gas_used: out.gas_used,
        },
    );
    let hash = header.hash_slow();
    let owned: Vec<SignedTx> = included.iter().map(|t| (*t).clone()).collect();
    store::write_block(writer.txn_mut(), &header, &hash, &owned, &out.receipts)?;
    let (version, root) = writer.commit(hash.to_vec())?;
    if version != number || root != state_root {
        return Err(NodeError::ChainMismatch(format!(
            "block {number} committed as version {version} with root {root:#x}, expected {state_root:#x}"
        )));
    }
    let t_commit = t0.elapsed() - t_exec;

    let new_head = Arc::new(Head { number, hash, header: header.clone() });
    core.chain.set_head(Head { number, hash, header });
    // Senders whose nonces moved, and transactions that can never execute as they are.
    let touched: BTreeSet<Address> =
        included.iter().map(|t| t.sender).chain(built.rejected.iter().map(|(i, _)| candidates[*i].sender)).collect();
    let dropped: Vec<B256> = built.rejected.iter().map(|(i, _)| candidates[*i].hash).collect();
    let touched: Vec<Address> = touched.into_iter().collect();
    match core.db.snapshot(Some(number)) {
        Ok(snap) => {
            core.pool.on_block(&touched, &dropped, |a| snap.account(a).ok().map(|acc| acc.map_or(0, |x| x.info.nonce)))
        }
        Err(_) => core.pool.on_block(&[], &dropped, |_| None),
    }
    let _ = core.heads.send(new_head);

    if log_blocks() && !included.is_empty() {
        eprintln!(
            "block {number}: {} txs, {} rejected, select+execute {:.1} ms, root+commit {:.1} ms, total {:.1} ms",
            included.len(),
            built.rejected.len(),
            t_exec.as_secs_f64() * 1e3,
            t_commit.as_secs_f64() * 1e3,
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    let m = &core.metrics;
    m.blocks.fetch_add(1, Relaxed);
    m.block_txs.fetch_add(included.len() as u64, Relaxed);
    m.block_gas.fetch_add(out.gas_used, Relaxed);
    m.block_rejected.fetch_add(built.rejected.len() as u64, Relaxed);
    m.exec_executions.fetch_add(out.stats.executions as u64, Relaxed);
    m.exec_aborts.fetch_add(out.stats.validation_aborts as u64, Relaxed);
    m.exec_waits.fetch_add(out.stats.dependency_waits as u64, Relaxed);
    m.exec_ns.fetch_add(t_exec.as_nanos() as u64, Relaxed);
    m.commit_ns.fetch_add(t_commit.as_nanos() as u64, Relaxed);
    m.block_ns.fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
    Ok(Produced { number, hash, txs: included.len(), rejected: built.rejected.len(), gas_used: out.gas_used })
}

/// Whether METIS_LOG_BLOCKS is set: one line of timings per non-empty block on stderr.
fn log_blocks() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("METIS_LOG_BLOCKS").is_some())
}

/// Re-executes block `number` sequentially and with Block-STM on its parent
/// state and records the ratio of the two times.
fn sample_speedup(core: &Core, number: u64, workers: usize) {
    let run = || -> Result<f64> {
        let snap = core.db.snapshot(Some(number - 1))?;
        let block = store::read_block(&snap, number)?.ok_or_else(|| NodeError::MissingBlock(number.to_string()))?;
        let h = &block.header;
        let input = core.block_input(number, h.timestamp, h.base_fee_per_gas.unwrap_or(0), h.parent_hash);
        let txs: Vec<_> = block.txs.iter().map(|t| t.tx_env()).collect();
        let view = WithBlockHashes { state: &snap, hashes: core.chain.recent_hashes() };
        let t = Instant::now();
        execute_block(&view, &input, &txs, ExecutionMode::Sequential)?;
        let seq = t.elapsed().as_secs_f64();
        let t = Instant::now();
        execute_block(&view, &input, &txs, ExecutionMode::Parallel { workers: workers.max(1) })?;
        let par = t.elapsed().as_secs_f64();
        Ok(seq / par.max(1e-9))
    };
    if let Ok(speedup) = run() {
        core.metrics.speedup_milli.store((speedup * 1000.0) as u64, Relaxed);
    }
}
