//! The node's shared state: database, chain head, pool, metrics, the feed
//! of new heads; opening a data dir (creating the dev genesis or resuming).

use crate::chain::{self, build_header, store, Chain, ChainConfig, Head, HeaderFields};
use crate::error::{NodeError, Result};
use crate::mempool::{Mempool, PoolConfig, Rules};
use crate::metrics::Metrics;
use alloy_primitives::{Bloom, B256};
use metis_executor::revm::context::{BlockEnv, CfgEnv};
use metis_executor::revm::context_interface::block::BlobExcessGasAndPrice;
use metis_executor::{BlockInput, EvmEnv};
use metis_trie::EMPTY_ROOT_HASH;
use metisdb::tables::METADATA;
use metisdb::{Db, Options};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Everything the producer and the RPC server share.
pub struct Core {
    /// The database.
    pub db: Db,
    /// Head and configuration.
    pub chain: Chain,
    /// Transaction pool.
    pub pool: Mempool,
    /// Counters.
    pub metrics: Metrics,
    /// New heads, as they are committed.
    pub heads: broadcast::Sender<Arc<Head>>,
}

impl Core {
    /// Opens (or creates) the dev chain in `datadir`.
    pub fn open(datadir: &Path, config: ChainConfig, options: Options, pool: PoolConfig) -> Result<Core> {
        let db = Db::open(datadir, options)?;
        let accounts = crate::dev::dev_accounts(crate::dev::DEV_ACCOUNTS).map_err(NodeError::Config)?;
        let funded: Vec<_> = accounts.iter().map(|a| a.address).collect();
        if db.latest_version().is_none() {
            write_genesis(&db, &config, &funded)?;
        }
        let snap = db.snapshot(None)?;
        match store::read_chain_config(&snap)? {
            Some(stored) => config.check_stored(&stored).map_err(NodeError::ChainMismatch)?,
            None => {
                return Err(NodeError::ChainMismatch(
                    "the database has state but no node/chain record: it was not created by `metis node --dev`".into(),
                ))
            }
        }
        let latest = snap.version().unwrap_or(0);
        let (header, hash) =
            store::read_header(&snap, latest)?.ok_or_else(|| NodeError::MissingBlock(latest.to_string()))?;
        let stored_root = snap.state_root()?;
        if header.state_root.0 != stored_root {
            return Err(NodeError::ChainMismatch(format!(
                "block {latest} has state root {:#x}, the database version {latest} {:#x}",
                header.state_root,
                B256::from(stored_root)
            )));
        }
        let mut recent = Vec::new();
        for n in latest.saturating_sub(255)..latest {
            if let Some((_, h)) = store::read_header(&snap, n)? {
                recent.push((n, h));
            }
        }
        drop(snap);
        let head = Head { number: latest, hash, header };
        let (heads, _) = broadcast::channel(1024);
        Ok(Core {
            db,
            chain: Chain::new(config, head, recent),
            pool: Mempool::new(pool),
            metrics: Metrics::default(),
            heads,
        })
    }

    /// The rules the pool validates against.
    pub fn rules(&self) -> Rules {
        let c = &self.chain.config;
        Rules { chain_id: c.chain_id, spec: c.spec, block_gas_limit: c.gas_limit }
    }

    /// The execution environment of block `number` with these header fields.
    pub fn block_input(&self, number: u64, timestamp: u64, base_fee: u64, parent_hash: B256) -> BlockInput {
        block_input(&self.chain.config, number, timestamp, base_fee, parent_hash)
    }
}

/// The execution environment of a block of the dev chain.
pub fn block_input(config: &ChainConfig, number: u64, timestamp: u64, base_fee: u64, parent_hash: B256) -> BlockInput {
    let mut cfg = CfgEnv::default();
    cfg.chain_id = config.chain_id;
    cfg.set_spec_and_mainnet_gas_params(config.spec);
    let block = BlockEnv {
        number: alloy_primitives::U256::from(number),
        beneficiary: config.coinbase,
        timestamp: alloy_primitives::U256::from(timestamp),
        gas_limit: config.gas_limit,
        basefee: base_fee,
        prevrandao: Some(parent_hash),
        blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new_with_spec(0, config.spec)),
        ..BlockEnv::default()
    };
    BlockInput {
        env: EvmEnv { cfg, block },
        parent_beacon_block_root: Some(B256::ZERO),
        parent_hash: Some(parent_hash),
        withdrawals: Vec::new(),
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn write_genesis(db: &Db, config: &ChainConfig, funded: &[alloy_primitives::Address]) -> Result<()> {
    let mut w = db.begin_state()?;
    crate::dev::write_genesis_state(&mut w, config, funded)?;
    let state_root = w.compute_root()?;
    let header = build_header(
        config,
        &HeaderFields {
            number: 0,
            parent_hash: B256::ZERO,
            timestamp: now_secs(),
            base_fee: config.initial_base_fee,
            state_root,
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Bloom::ZERO,
            gas_used: 0,
        },
    );
    let hash = header.hash_slow();
    let txn = w.txn_mut();
    chain::store::write_block(txn, &header, &hash, &[], &[])?;
    txn.put(METADATA, store::CHAIN_KEY, config.to_json().to_string().as_bytes())?;
    let (version, root) = w.commit(hash.to_vec())?;
    if version != 0 || root != state_root {
        return Err(NodeError::ChainMismatch(format!("genesis committed as version {version} with root {root:#x}")));
    }
    Ok(())
}
