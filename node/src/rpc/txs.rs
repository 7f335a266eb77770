//! Transaction methods: eth_sendRawTransaction, eth_getTransactionByHash, eth_getTransactionReceipt.
use super::error::{db_err, internal, server, RpcResult};
use super::json::{self, TxLocation};
use super::params::{self, at_most, positional, required};
use crate::chain::store;
use crate::core::Core;
use crate::mempool::{PoolError, SenderState};
use crate::txs::SignedTx;
use alloy_primitives::B256;
use jsonrpsee::types::Params;
use metisdb::state::StateRead;
use metisdb::Snapshot;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;

pub fn send_raw_transaction(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let raw = params::bytes(required(&p, 0, "data")?, "data")?;
    let result = submit(core, &raw);
    match result {
        Ok(hash) => {
            core.metrics.pool_accepted.fetch_add(1, Relaxed);
            Ok(json!(hash))
        }
        Err(e) => {
            core.metrics.pool_rejected(e.reason());
            Err(server(e.to_string()))
        }
    }
}

/// Decodes, validates and pools a raw transaction.
pub fn submit(core: &Core, raw: &[u8]) -> Result<B256, PoolError> {
    let limit = 128 * 1024;
    if raw.len() > limit {
        return Err(PoolError::Oversized { size: raw.len(), limit });
    }
    let tx = SignedTx::decode(raw).map_err(|e| PoolError::Decode(e.to_string()))?;
    let rules = core.rules();
    core.pool.check_static(&tx, &rules)?;
    let account = match core.db.snapshot(None) {
        Ok(snap) => snap.account(&tx.sender).ok().flatten(),
        Err(_) => None,
    };
    let state =
        account.map_or(SenderState::default(), |a| SenderState { nonce: a.info.nonce, balance: a.info.balance });
    let hash = tx.hash;
    core.pool.add(tx, state, &rules)?;
    Ok(hash)
}

fn location(core: &Core, hash: &B256) -> RpcResult<Option<(store::StoredBlock, usize, Snapshot)>> {
    let snap = core.db.snapshot(None).map_err(db_err)?;
    let Some((n, i)) = store::tx_location(&snap, hash).map_err(db_err)? else { return Ok(None) };
    let block = store::read_block(&snap, n).map_err(db_err)?.ok_or_else(|| internal(format!("block {n} missing")))?;
    if i >= block.txs.len() {
        return Err(internal(format!("transaction index {i} beyond block {n}")));
    }
    Ok(Some((block, i, snap)))
}

pub(super) fn tx_loc(block: &store::StoredBlock, index: usize) -> TxLocation {
    TxLocation {
        block_hash: block.hash,
        block_number: block.header.number,
        index,
        base_fee: block.header.base_fee_per_gas.unwrap_or(0),
        timestamp: block.header.timestamp,
    }
}

pub fn get_transaction_by_hash(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let hash = params::hash(required(&p, 0, "transaction hash")?, "transaction hash")?;
    if let Some((block, i, _)) = location(core, &hash)? {
        return Ok(json::transaction(&block.txs[i], Some(tx_loc(&block, i))));
    }
    Ok(core.pool.get(&hash).map_or(Value::Null, |t| json::transaction(&t, None)))
}

pub fn get_transaction_receipt(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let hash = params::hash(required(&p, 0, "transaction hash")?, "transaction hash")?;
    let Some((block, i, snap)) = location(core, &hash)? else { return Ok(Value::Null) };
    let receipts = store::read_receipts(&snap, block.header.number)
        .map_err(db_err)?
        .ok_or_else(|| internal("receipts missing"))?;
    let r = receipts.get(i).ok_or_else(|| internal("receipt missing"))?;
    let prev = if i == 0 { 0 } else { receipts[i - 1].cumulative_gas_used() };
    let first_log: usize = receipts[..i].iter().map(|r| r.logs().len()).sum();
    Ok(json::receipt(&block.txs[i], r, &tx_loc(&block, i), prev, first_log))
}
