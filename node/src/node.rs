//! Starting and stopping a node: database, producer thread, RPC server,
//! metrics endpoint.

use crate::chain::ChainConfig;
use crate::core::Core;
use crate::error::Result;
use crate::mempool::PoolConfig;
use crate::producer::{self, ProducerConfig};
use crate::rpc::{self, RpcConfig, RpcLimits};
use jsonrpsee::server::ServerHandle;
use metisdb::Options;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything `metis node --dev` can set.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Data directory of the database.
    pub datadir: PathBuf,
    /// Time between blocks.
    pub block_time: Duration,
    /// JSON-RPC listen address.
    pub http_addr: SocketAddr,
    /// Serve WebSocket on the RPC port too.
    pub ws: bool,
    /// Prometheus endpoint, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// RPC limits.
    pub limits: RpcLimits,
    /// Pool limits.
    pub pool: PoolConfig,
    /// Block-STM workers (1: sequential).
    pub workers: usize,
    /// Versions of state kept for historical queries (`None`: the database's setting).
    pub retention: Option<u32>,
    /// Chain parameters.
    pub chain: ChainConfig,
    /// Measure the executor speedup every this many blocks with transactions (0: never).
    pub speedup_sample_every: u64,
    /// When a block's commit reaches stable storage: `Sync` (before the block
    /// is published) or `Async` (flushed every second and at shutdown; a
    /// power loss may lose the last second of blocks, never corrupts).
    pub durability: metisdb::Durability,
}

impl NodeConfig {
    /// The dev defaults: ./data, 1 s blocks, 127.0.0.1:8545, no WebSocket, no metrics.
    pub fn dev() -> NodeConfig {
        NodeConfig {
            datadir: PathBuf::from("./data"),
            block_time: Duration::from_secs(1),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            ws: false,
            metrics_addr: None,
            limits: RpcLimits::default(),
            pool: PoolConfig::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            retention: None,
            chain: ChainConfig::dev(),
            speedup_sample_every: 64,
            durability: metisdb::Durability::Sync,
        }
    }
}

/// A running node.
pub struct Node {
    /// Shared state (database, chain, pool, metrics).
    pub core: Arc<Core>,
    /// Bound JSON-RPC address.
    pub rpc_addr: SocketAddr,
    /// Bound metrics address.
    pub metrics_addr: Option<SocketAddr>,
    rpc: ServerHandle,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
    producer: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Node {
    /// Opens the data dir (creating the dev chain if it is empty) and starts
    /// block production, the RPC server and the metrics endpoint.
    pub async fn start(config: NodeConfig) -> Result<Node> {
        if config.block_time < Duration::from_millis(50) {
            return Err(crate::error::NodeError::Config(format!(
                "block time {:?} is below the minimum of 50ms",
                config.block_time
            )));
        }
        let options = Options { retention: config.retention, durability: config.durability, ..Options::default() };
        let core = Arc::new(Core::open(&config.datadir, config.chain.clone(), options, config.pool.clone())?);
        let (rpc, rpc_addr) = rpc::start(
            core.clone(),
            RpcConfig { addr: config.http_addr, ws: config.ws, limits: config.limits.clone() },
        )
        .await?;
        let (metrics_task, metrics_addr) = match config.metrics_addr {
            Some(addr) => {
                let (task, bound) = crate::metrics_http::start(core.clone(), addr).await?;
                (Some(task), Some(bound))
            }
            None => (None, None),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (core, stop) = (core.clone(), stop.clone());
            let pc = ProducerConfig {
                block_time: config.block_time,
                workers: config.workers,
                speedup_sample_every: config.speedup_sample_every,
            };
            std::thread::Builder::new()
                .name("block-producer".into())
                .spawn(move || producer::run(core, pc, stop))
                .map_err(|e| crate::error::NodeError::Io { what: "starting the producer thread".into(), source: e })?
        };
        Ok(Node { core, rpc_addr, metrics_addr, rpc, metrics_task, producer: Some(producer), stop })
    }

    /// Stops serving, finishes the block in progress and closes the database.
    pub async fn stop(mut self) {
        let _ = self.rpc.stop();
        self.rpc.clone().stopped().await;
        if let Some(t) = self.metrics_task.take() {
            t.abort();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || p.join()).await;
        }
        if let Err(e) = self.core.db.flush() {
            eprintln!("flushing the database at shutdown failed: {e}");
        }
    }
}
