//! Chain and state methods: web3_*, net_*, eth_chainId, eth_blockNumber, balances, nonces, code, storage, proofs; block references and state at a block.

use super::error::{db_err, invalid_params, server, RpcResult};
use super::json::{self, q};
use super::params::{self, at_most, block_id, positional, required, BlockId};
use crate::chain::store;
use crate::core::Core;
use alloy_primitives::{Bytes, B256, U256};
use jsonrpsee::types::Params;
use metisdb::state::{account_proof, StateRead};
use metisdb::Snapshot;
use serde_json::{json, Value};
/// Tip suggested by eth_maxPriorityFeePerGas (1 gwei).
pub const SUGGESTED_TIP: u64 = 1_000_000_000;

/// The block number a reference names (`pending` is the head: the next block is not built ahead).
pub fn resolve(core: &Core, id: BlockId) -> RpcResult<u64> {
    let head = core.chain.head().number;
    match id {
        BlockId::Latest | BlockId::Pending => Ok(head),
        BlockId::Earliest => Ok(0),
        BlockId::Number(n) if n <= head => Ok(n),
        BlockId::Number(_) => Err(server("header not found")),
        BlockId::Hash(h) => {
            let snap = core.db.snapshot(None).map_err(db_err)?;
            store::number_by_hash(&snap, &h)
                .map_err(db_err)?
                .ok_or_else(|| server(format!("header for hash {h} not found")))
        }
    }
}

/// The state after block `n`, or go-ethereum's error for pruned state.
pub fn state_at(core: &Core, n: u64) -> RpcResult<Snapshot> {
    match core.db.snapshot(Some(n)) {
        Ok(s) => Ok(s),
        Err(metisdb::Error::VersionNotRetained { .. }) => {
            let oldest = core.db.oldest_version();
            let latest = core.db.latest_version().unwrap_or(0);
            Err(server(format!(
                "missing trie node: historical state of block {n} is not available (state is kept for blocks {oldest} to {latest})"
            )))
        }
        Err(e) => Err(db_err(e)),
    }
}

pub(super) fn state_for(core: &Core, p: Option<&Value>) -> RpcResult<(u64, Snapshot)> {
    let n = resolve(core, block_id(p)?)?;
    Ok((n, state_at(core, n)?))
}

pub fn client_version(_: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(format!("metis/v{}/{}-{}/rust", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH)))
}

pub fn net_version(core: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(core.chain.config.chain_id.to_string()))
}

pub fn chain_id(core: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(q(core.chain.config.chain_id)))
}

pub fn block_number(core: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(q(core.chain.head().number)))
}

pub fn syncing(_: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(false))
}

pub fn accounts(_: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!([]))
}

pub fn net_listening(_: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(true))
}

pub fn net_peer_count(_: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!("0x0"))
}

pub fn get_balance(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 2)?;
    let addr = params::address(required(&p, 0, "address")?, "address")?;
    let (_, snap) = state_for(core, p.get(1))?;
    let bal = snap.account(&addr).map_err(db_err)?.map_or(U256::ZERO, |a| a.info.balance);
    Ok(json!(q(bal)))
}

pub fn get_transaction_count(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 2)?;
    let addr = params::address(required(&p, 0, "address")?, "address")?;
    let id = block_id(p.get(1))?;
    let (_, snap) = state_for(core, p.get(1))?;
    let nonce = snap.account(&addr).map_err(db_err)?.map_or(0, |a| a.info.nonce);
    let nonce = if id == BlockId::Pending { core.pool.pending_nonce(&addr, nonce) } else { nonce };
    Ok(json!(q(nonce)))
}

pub fn get_code(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 2)?;
    let addr = params::address(required(&p, 0, "address")?, "address")?;
    let (_, snap) = state_for(core, p.get(1))?;
    let code = match snap.account(&addr).map_err(db_err)? {
        Some(a) if a.info.code_hash != metisdb::state::KECCAK_EMPTY => {
            snap.code(&a.info.code_hash).map_err(db_err)?.map(<[u8]>::to_vec).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    Ok(json!(json::data(&code)))
}

pub fn get_storage_at(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 3)?;
    let addr = params::address(required(&p, 0, "address")?, "address")?;
    let slot = params::slot(required(&p, 1, "storage slot")?, "storage slot")?;
    let (_, snap) = state_for(core, p.get(2))?;
    let v = snap.storage(&addr, &slot).map_err(db_err)?;
    Ok(json!(B256::from(v.to_be_bytes::<32>())))
}

pub fn get_proof(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 3)?;
    let addr = params::address(required(&p, 0, "address")?, "address")?;
    let keys = match p.get(1) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(keys)) => keys.clone(),
        Some(_) => return Err(invalid_params("storage keys must be an array")),
    };
    if keys.len() > 1024 {
        return Err(invalid_params("at most 1024 storage keys per proof"));
    }
    let slots = keys.iter().map(|k| params::slot(k, "storage key")).collect::<RpcResult<Vec<_>>>()?;
    let (_, snap) = state_for(core, p.get(2))?;
    let proof = account_proof(&snap, &addr, &slots).map_err(db_err)?;
    let hexes = |v: &[Bytes]| v.iter().map(|b| json::data(b)).collect::<Vec<_>>();
    Ok(json!({
        "address": proof.address,
        "accountProof": hexes(&proof.account_proof),
        "balance": q(proof.balance),
        "codeHash": proof.code_hash,
        "nonce": q(proof.nonce),
        "storageHash": proof.storage_hash,
        "storageProof": proof.storage_proof.iter().zip(&keys).map(|(s, k)| json!({
            "key": k,
            "value": q(s.value),
            "proof": hexes(&s.proof),
        })).collect::<Vec<_>>(),
    }))
}
