//! Block methods: eth_getBlockByNumber, eth_getBlockByHash, eth_getBlockTransactionCountByNumber.
use super::error::{db_err, invalid_params, RpcResult};
use super::eth::resolve;
use super::json::{self, q};
use super::params::{self, at_most, positional, required, BlockId};
use crate::chain::store;
use crate::core::Core;
use jsonrpsee::types::Params;
use serde_json::{json, Value};

fn full_flag(p: &[Value]) -> RpcResult<bool> {
    match p.get(1) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(invalid_params(format!("full transactions flag must be a boolean, got {v}"))),
    }
}

pub fn get_block_by_number(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 2)?;
    let full = full_flag(&p)?;
    let n = match params::block_number_tag(Some(required(&p, 0, "block number")?))? {
        BlockId::Number(n) if n > core.chain.head().number => return Ok(Value::Null),
        id => resolve(core, id)?,
    };
    let snap = core.db.snapshot(None).map_err(db_err)?;
    Ok(store::read_block(&snap, n).map_err(db_err)?.map_or(Value::Null, |b| json::block(&b, full)))
}

pub fn get_block_by_hash(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 2)?;
    let hash = params::hash(required(&p, 0, "block hash")?, "block hash")?;
    let full = full_flag(&p)?;
    let snap = core.db.snapshot(None).map_err(db_err)?;
    let Some(n) = store::number_by_hash(&snap, &hash).map_err(db_err)? else { return Ok(Value::Null) };
    Ok(store::read_block(&snap, n).map_err(db_err)?.map_or(Value::Null, |b| json::block(&b, full)))
}

pub fn get_block_tx_count_by_number(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let n = match params::block_number_tag(Some(required(&p, 0, "block number")?))? {
        BlockId::Number(n) if n > core.chain.head().number => return Ok(Value::Null),
        id => resolve(core, id)?,
    };
    let snap = core.db.snapshot(None).map_err(db_err)?;
    Ok(store::read_block(&snap, n).map_err(db_err)?.map_or(Value::Null, |b| json!(q(b.txs.len()))))
}
