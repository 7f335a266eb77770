//! Prometheus text exposition of the node's figures (`metis_*`): database,
//! executor, block production, mempool, RPC.

use crate::chain::Chain;
use crate::mempool::Mempool;
use metisdb::Db;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the RPC latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 5.0];

#[derive(Default, Clone)]
struct RpcStat {
    requests: u64,
    errors: u64,
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum_seconds: f64,
}

/// Counters the node updates as it runs.
#[derive(Default)]
pub struct Metrics {
    /// Blocks produced.
    pub blocks: AtomicU64,
    /// Transactions included in blocks.
    pub block_txs: AtomicU64,
    /// Gas used by included transactions.
    pub block_gas: AtomicU64,
    /// Transactions the executor left out of a block.
    pub block_rejected: AtomicU64,
    /// Executor incarnations run (re-executions included).
    pub exec_executions: AtomicU64,
    /// Incarnations aborted by validation.
    pub exec_aborts: AtomicU64,
    /// Executions suspended on a dependency.
    pub exec_waits: AtomicU64,
    /// Nanoseconds in block execution.
    pub exec_ns: AtomicU64,
    /// Nanoseconds in state root + commit.
    pub commit_ns: AtomicU64,
    /// Nanoseconds from the start of building to the published head.
    pub block_ns: AtomicU64,
    /// Last measured Block-STM speedup over sequential execution, x1000.
    pub speedup_milli: AtomicU64,
    /// Block production failures.
    pub block_errors: AtomicU64,
    /// Transactions accepted by the pool.
    pub pool_accepted: AtomicU64,
    pool_rejections: Mutex<BTreeMap<&'static str, u64>>,
    rpc: Mutex<BTreeMap<String, RpcStat>>,
}

impl Metrics {
    /// Counts a pool rejection.
    pub fn pool_rejected(&self, reason: &'static str) {
        *self.pool_rejections.lock().unwrap_or_else(|e| e.into_inner()).entry(reason).or_default() += 1;
    }

    /// Records one RPC call.
    pub fn rpc_call(&self, method: &str, elapsed: Duration, error: bool) {
        let mut map = self.rpc.lock().unwrap_or_else(|e| e.into_inner());
        let stat = match map.get_mut(method) {
            Some(s) => s,
            None => map.entry(method.to_string()).or_default(),
        };
        stat.requests += 1;
        stat.errors += error as u64;
        let secs = elapsed.as_secs_f64();
        stat.sum_seconds += secs;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                stat.buckets[i] += 1;
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self, db: &Db, chain: &Chain, pool: &Mempool) -> String {
        let mut out = String::with_capacity(8192);
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        let m = db.metrics();
        metric("metis_db_reads_total", "counter", "Point reads and cursor steps.", m.reads as f64);
        metric(
            "metis_db_pages_verified_total",
            "counter",
            "Pages whose checksum was verified.",
            m.pages_verified as f64,
        );
        metric("metis_db_snapshots_total", "counter", "Snapshots opened.", m.snapshots as f64);
        metric("metis_db_commits_total", "counter", "Committed versions.", m.commits as f64);
        metric("metis_db_durable_points_total", "counter", "Durable points (syncs).", m.durable_points as f64);
        metric("metis_db_pages_written_total", "counter", "Pages written.", m.pages_written as f64);
        metric("metis_db_bytes_written_total", "counter", "Bytes written.", m.bytes_written as f64);
        let secs = |ns: u64| ns as f64 / 1e9;
        metric("metis_db_commit_prepare_seconds_total", "counter", "Commit phase: prepare.", secs(m.commit_prepare_ns));
        metric("metis_db_commit_write_seconds_total", "counter", "Commit phase: page writes.", secs(m.commit_write_ns));
        metric("metis_db_commit_sync_seconds_total", "counter", "Commit phase: data sync.", secs(m.commit_sync_ns));
        metric(
            "metis_db_commit_meta_seconds_total",
            "counter",
            "Commit phase: meta write and sync.",
            secs(m.commit_meta_ns),
        );
        if let Ok(s) = db.stats() {
            metric("metis_db_file_size_bytes", "gauge", "Size of the data file.", s.file_len as f64);
            metric("metis_db_pages", "gauge", "Pages in the file.", s.page_count as f64);
            metric("metis_db_free_pages", "gauge", "Free pages.", s.free_pages as f64);
            metric(
                "metis_db_quarantined_pages",
                "gauge",
                "Pages waiting for readers to release them.",
                s.quarantined_pages as f64,
            );
            metric("metis_db_latest_version", "gauge", "Newest version.", s.latest_version.unwrap_or(0) as f64);
            metric("metis_db_oldest_version", "gauge", "Oldest retained version.", s.oldest_version as f64);
            let retained = s.latest_version.map_or(0, |l| l + 1 - s.oldest_version.min(l + 1));
            metric("metis_db_versions", "gauge", "Retained versions.", retained as f64);
            metric("metis_db_live_readers", "gauge", "Open snapshots.", s.live_readers as f64);
        }
        let head = chain.head();
        metric("metis_chain_head", "gauge", "Number of the newest block.", head.number as f64);
        metric(
            "metis_chain_base_fee_wei",
            "gauge",
            "Base fee of the newest block.",
            head.header.base_fee_per_gas.unwrap_or(0) as f64,
        );
        let get = |a: &AtomicU64| a.load(Relaxed) as f64;
        metric("metis_blocks_produced_total", "counter", "Blocks produced.", get(&self.blocks));
        metric("metis_block_errors_total", "counter", "Failed block productions.", get(&self.block_errors));
        metric(
            "metis_block_seconds_total",
            "counter",
            "Time building, executing and committing blocks.",
            get(&self.block_ns) / 1e9,
        );
        metric("metis_executor_txs_total", "counter", "Transactions included.", get(&self.block_txs));
        metric("metis_executor_gas_total", "counter", "Gas used by included transactions.", get(&self.block_gas));
        metric(
            "metis_executor_rejected_total",
            "counter",
            "Transactions left out by the executor.",
            get(&self.block_rejected),
        );
        metric(
            "metis_executor_executions_total",
            "counter",
            "Incarnations executed (re-executions included).",
            get(&self.exec_executions),
        );
        metric("metis_executor_aborts_total", "counter", "Incarnations aborted by validation.", get(&self.exec_aborts));
        metric(
            "metis_executor_dependency_waits_total",
            "counter",
            "Executions suspended on a dependency.",
            get(&self.exec_waits),
        );
        metric("metis_executor_seconds_total", "counter", "Time in block execution.", get(&self.exec_ns) / 1e9);
        metric(
            "metis_executor_speedup",
            "gauge",
            "Sequential over Block-STM time of the last sampled block.",
            get(&self.speedup_milli) / 1000.0,
        );
        metric(
            "metis_state_commit_seconds_total",
            "counter",
            "Time in state root and commit.",
            get(&self.commit_ns) / 1e9,
        );
        let (pending, queued) = pool.counts();
        metric("metis_mempool_pending", "gauge", "Executable transactions.", pending as f64);
        metric("metis_mempool_queued", "gauge", "Transactions waiting for lower nonces.", queued as f64);
        metric("metis_mempool_accepted_total", "counter", "Transactions accepted.", get(&self.pool_accepted));
        let _ = writeln!(out, "# HELP metis_mempool_rejections_total Rejected transactions by reason.");
        let _ = writeln!(out, "# TYPE metis_mempool_rejections_total counter");
        for (reason, n) in self.pool_rejections.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "metis_mempool_rejections_total{{reason=\"{reason}\"}} {n}");
        }
        let rpc = self.rpc.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = writeln!(
            out,
            "# HELP metis_rpc_requests_total JSON-RPC calls by method.\n# TYPE metis_rpc_requests_total counter"
        );
        for (method, s) in &rpc {
            let _ = writeln!(out, "metis_rpc_requests_total{{method=\"{method}\"}} {}", s.requests);
        }
        let _ = writeln!(out, "# HELP metis_rpc_errors_total JSON-RPC calls answered with an error.\n# TYPE metis_rpc_errors_total counter");
        for (method, s) in &rpc {
            let _ = writeln!(out, "metis_rpc_errors_total{{method=\"{method}\"}} {}", s.errors);
        }
        let _ = writeln!(
            out,
            "# HELP metis_rpc_latency_seconds JSON-RPC call latency.\n# TYPE metis_rpc_latency_seconds histogram"
        );
        for (method, s) in &rpc {
            for (bound, n) in LATENCY_BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(out, "metis_rpc_latency_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "metis_rpc_latency_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}", s.requests);
            let _ = writeln!(out, "metis_rpc_latency_seconds_sum{{method=\"{method}\"}} {}", s.sum_seconds);
            let _ = writeln!(out, "metis_rpc_latency_seconds_count{{method=\"{method}\"}} {}", s.requests);
        }
        out
    }
}
