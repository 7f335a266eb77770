//! The eth_*, net_* and web3_* methods over the node's core.

use super::error::{internal, invalid_params, reverted, server, RpcResult};
use super::json::{self, q, TxLocation};
use super::params::{self, at_most, block_id, positional, required, BlockId, CallRequest};
use super::RpcLimits;
use crate::chain::{base_fee_after, store};
use crate::core::Core;
use crate::mempool::{PoolError, SenderState};
use crate::txs::SignedTx;
use alloy_primitives::{Address, Bytes, B256, U256};
use jsonrpsee::types::Params;
use metis_executor::pending::WithBlockHashes;
use metis_executor::revm::context::TxEnv;
use metis_executor::revm::context_interface::result::{ExecutionResult, HaltReason, OutOfGasError};
use metis_executor::{call, ExecutorError};
use metisdb::state::{account_proof, StateRead};
use metisdb::Snapshot;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;

/// Tip suggested by eth_maxPriorityFeePerGas (1 gwei).
pub const SUGGESTED_TIP: u64 = 1_000_000_000;
/// EIP-7825 cap on a transaction's gas (Osaka).
const TX_GAS_LIMIT_CAP: u64 = 1 << 24;

fn db_err(e: impl std::fmt::Display) -> super::error::RpcError {
    internal(e)
}

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

fn state_for(core: &Core, p: Option<&Value>) -> RpcResult<(u64, Snapshot)> {
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

pub fn gas_price(core: &Core, _: Params) -> RpcResult<Value> {
    let next = base_fee_after(&core.chain.head().header);
    Ok(json!(q(next as u128 + SUGGESTED_TIP as u128)))
}

pub fn max_priority_fee(_: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(q(SUGGESTED_TIP)))
}

pub fn fee_history(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 3)?;
    let count = match required(&p, 0, "blockCount")? {
        Value::Number(n) => n.as_u64().ok_or_else(|| invalid_params("blockCount: not a quantity"))?,
        v => params::u64q(v, "blockCount")?,
    };
    let newest = resolve(core, params::block_number_tag(Some(required(&p, 1, "newestBlock")?))?)?;
    let percentiles: Vec<f64> = match p.get(2) {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| invalid_params(format!("rewardPercentiles: {e}")))?,
    };
    if percentiles.len() > 100 {
        return Err(invalid_params("at most 100 reward percentiles"));
    }
    let mut last = -1.0;
    for &x in &percentiles {
        if !(0.0..=100.0).contains(&x) || x < last {
            return Err(invalid_params(format!("invalid reward percentile {x}: must be ascending within 0..=100")));
        }
        last = x;
    }
    let count = count.min(1024).min(newest + 1);
    if count == 0 {
        return Ok(json!({"oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": [], "reward": []}));
    }
    let oldest = newest + 1 - count;
    let snap = core.db.snapshot(None).map_err(db_err)?;
    let (mut base_fees, mut ratios, mut rewards, mut blob_fees, mut blob_ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last_header = None;
    for n in oldest..=newest {
        let (h, _) = store::read_header(&snap, n).map_err(db_err)?.ok_or_else(|| server("header not found"))?;
        let base_fee = h.base_fee_per_gas.unwrap_or(0);
        base_fees.push(q(base_fee));
        ratios.push(h.gas_used as f64 / h.gas_limit.max(1) as f64);
        blob_fees.push("0x1".to_string());
        blob_ratios.push(0.0);
        if !percentiles.is_empty() {
            let block = store::read_block(&snap, n).map_err(db_err)?.ok_or_else(|| server("block not found"))?;
            let receipts = store::read_receipts(&snap, n).map_err(db_err)?.unwrap_or_default();
            let mut prev = 0;
            let mut tips: Vec<(u128, u64)> = Vec::new();
            for (t, r) in block.txs.iter().zip(&receipts) {
                let used = r.cumulative_gas_used() - prev;
                prev = r.cumulative_gas_used();
                tips.push((t.effective_tip(base_fee).unwrap_or(0), used));
            }
            tips.sort_unstable();
            let total: u64 = tips.iter().map(|t| t.1).sum();
            let row: Vec<String> = percentiles
                .iter()
                .map(|pct| {
                    if tips.is_empty() {
                        return "0x0".to_string();
                    }
                    let threshold = (total as f64 * pct / 100.0) as u64;
                    let mut sum = 0;
                    for (tip, used) in &tips {
                        sum += used;
                        if sum >= threshold {
                            return q(*tip);
                        }
                    }
                    q(tips.last().map_or(0, |t| t.0))
                })
                .collect();
            rewards.push(row);
        }
        last_header = Some(h);
    }
    if let Some(h) = last_header {
        base_fees.push(q(base_fee_after(&h)));
        blob_fees.push("0x1".to_string());
    }
    let mut v = json!({
        "oldestBlock": q(oldest),
        "baseFeePerGas": base_fees,
        "gasUsedRatio": ratios,
        "baseFeePerBlobGas": blob_fees,
        "blobGasUsedRatio": blob_ratios,
    });
    if !percentiles.is_empty() {
        v["reward"] = json!(rewards);
    }
    Ok(v)
}

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

fn tx_loc(block: &store::StoredBlock, index: usize) -> TxLocation {
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

/// The environment and state of a call at a block.
struct CallContext {
    snap: Snapshot,
    input: metis_executor::BlockInput,
}

fn call_context(core: &Core, p: Option<&Value>) -> RpcResult<CallContext> {
    let (n, snap) = state_for(core, p)?;
    let (h, _) = store::read_header(&snap, n).map_err(db_err)?.ok_or_else(|| server("header not found"))?;
    let mut input = core.block_input(n, h.timestamp, h.base_fee_per_gas.unwrap_or(0), h.parent_hash);
    // eth_call is capped by the RPC gas cap, not by EIP-7825.
    input.env.cfg.tx_gas_limit_cap = Some(u64::MAX);
    Ok(CallContext { snap, input })
}

fn call_tx(core: &Core, req: &CallRequest, snap: &Snapshot) -> RpcResult<TxEnv> {
    let from = req.from.unwrap_or(Address::ZERO);
    let nonce = match req.nonce {
        Some(n) => n,
        None => snap.account(&from).map_err(db_err)?.map_or(0, |a| a.info.nonce),
    };
    let dynamic = req.max_fee_per_gas.is_some() || req.max_priority_fee_per_gas.is_some();
    let tx_type = if dynamic {
        2
    } else if req.access_list.is_some() {
        1
    } else {
        0
    };
    Ok(TxEnv {
        tx_type,
        caller: from,
        gas_limit: req.gas.unwrap_or(0),
        gas_price: if dynamic { req.max_fee_per_gas.unwrap_or(0) } else { req.gas_price.unwrap_or(0) },
        kind: req.kind(),
        value: req.value,
        data: req.input.clone(),
        nonce,
        chain_id: Some(core.chain.config.chain_id),
        access_list: req.access_list.clone().unwrap_or_default(),
        gas_priority_fee: if dynamic { Some(req.max_priority_fee_per_gas.unwrap_or(0)) } else { None },
        ..TxEnv::default()
    })
}

/// Solidity's `Error(string)` payload, decoded.
fn revert_reason(out: &[u8]) -> Option<String> {
    if out.len() < 68 || out[..4] != [0x08, 0xc3, 0x79, 0xa0] {
        return None;
    }
    let len = U256::from_be_slice(&out[36..68]);
    let len = usize::try_from(len).ok()?;
    let bytes = out.get(68..68usize.checked_add(len)?)?;
    String::from_utf8(bytes.to_vec()).ok()
}

fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(OutOfGasError::Basic) | HaltReason::OutOfGas(_) => "out of gas".into(),
        HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode => "invalid opcode".into(),
        HaltReason::StackUnderflow => "stack underflow".into(),
        HaltReason::StackOverflow => "stack limit reached 1024".into(),
        HaltReason::InvalidJump => "invalid jump destination".into(),
        HaltReason::CreateContractSizeLimit => "max code size exceeded".into(),
        HaltReason::CallTooDeep => "max call depth exceeded".into(),
        HaltReason::OutOfFunds => "insufficient balance for transfer".into(),
        other => format!("execution halted: {other:?}"),
    }
}

fn exec_error(e: ExecutorError) -> super::error::RpcError {
    match e {
        ExecutorError::InvalidTransaction { reason, .. } => server(reason),
        other => internal(other),
    }
}

fn run_call(core: &Core, ctx: &CallContext, tx: TxEnv, gas_cap: u64) -> RpcResult<ExecutionResult<HaltReason>> {
    let view = WithBlockHashes { state: &ctx.snap, hashes: core.chain.recent_hashes() };
    call(&view, &ctx.input, tx, gas_cap).map_err(exec_error)
}

/// eth_call (runs on a blocking thread).
pub fn eth_call(core: &Core, p: &[Value], limits: &RpcLimits) -> RpcResult<Value> {
    at_most(p, 3)?;
    let req = params::call_request(required(p, 0, "transaction")?)?;
    let ctx = call_context(core, p.get(1))?;
    let tx = call_tx(core, &req, &ctx.snap)?;
    match run_call(core, &ctx, tx, limits.call_gas_cap)? {
        ExecutionResult::Success { output, .. } => Ok(json!(json::data(output.data()))),
        ExecutionResult::Revert { output, .. } => Err(reverted(revert_reason(&output), &output)),
        ExecutionResult::Halt { reason, .. } => Err(server(halt_message(&reason))),
    }
}

/// eth_estimateGas (runs on a blocking thread): binary search like go-ethereum.
pub fn estimate_gas(core: &Core, p: &[Value], limits: &RpcLimits) -> RpcResult<Value> {
    at_most(p, 3)?;
    let req = params::call_request(required(p, 0, "transaction")?)?;
    let ctx = call_context(core, p.get(1))?;
    let mut tx = call_tx(core, &req, &ctx.snap)?;
    let cfg = &core.chain.config;
    let mut hi = cfg.gas_limit.min(limits.call_gas_cap);
    if cfg.spec.is_enabled_in(metis_executor::revm::primitives::hardfork::SpecId::OSAKA) {
        hi = hi.min(TX_GAS_LIMIT_CAP);
    }
    if let Some(g) = req.gas {
        hi = hi.min(g.max(21_000));
    }
    // With a fee, the sender's balance bounds the gas it can buy.
    let fee_cap = req.max_fee_per_gas.or(req.gas_price).unwrap_or(0);
    if fee_cap > 0 {
        let balance = ctx.snap.account(&tx.caller).map_err(db_err)?.map_or(U256::ZERO, |a| a.info.balance);
        if balance < req.value {
            return Err(server("insufficient funds for transfer"));
        }
        let allowance = (balance - req.value) / U256::from(fee_cap);
        if allowance < U256::from(hi) {
            hi = allowance.to::<u64>();
        }
    }
    let mut attempt = |gas: u64| -> RpcResult<ExecutionResult<HaltReason>> {
        tx.gas_limit = gas;
        run_call(core, &ctx, tx.clone(), u64::MAX)
    };
    let first = match attempt(hi) {
        Ok(r) => r,
        Err(e) if e.message().contains("intrinsic gas") || e.message().contains("floor") => {
            return Err(server(format!("gas required exceeds allowance ({hi})")))
        }
        Err(e) => return Err(e),
    };
    let used = match first {
        ExecutionResult::Success { gas, .. } => gas.total_gas_spent(),
        ExecutionResult::Revert { output, .. } => return Err(reverted(revert_reason(&output), &output)),
        ExecutionResult::Halt { reason, .. } => {
            return Err(match reason {
                HaltReason::OutOfGas(_) => server(format!("gas required exceeds allowance ({hi})")),
                other => server(halt_message(&other)),
            })
        }
    };
    let ok = |r: RpcResult<ExecutionResult<HaltReason>>| matches!(r, Ok(ExecutionResult::Success { .. }));
    // Calls without refunds or gas-dependent paths need exactly what they used.
    if used < hi && ok(attempt(used)) {
        return Ok(json!(q(used)));
    }
    let mut lo = used.saturating_sub(1);
    // Most calls need just what they used plus the 1/64 that CALL withholds.
    let optimistic = (used + 2300) * 64 / 63;
    if optimistic < hi && ok(attempt(optimistic)) {
        hi = optimistic;
    }
    while lo + 1 < hi {
        if (hi - lo) as f64 / hi as f64 <= 0.015 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if ok(attempt(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(json!(q(hi)))
}

/// eth_getLogs (runs on a blocking thread).
pub fn get_logs(core: &Core, p: &[Value], limits: &RpcLimits) -> RpcResult<Value> {
    at_most(p, 1)?;
    let f = super::filter::LogFilter::parse(required(p, 0, "filter")?)?;
    let snap = core.db.snapshot(None).map_err(db_err)?;
    let (from, to) = match f.block_hash {
        Some(h) => {
            let n = store::number_by_hash(&snap, &h).map_err(db_err)?.ok_or_else(|| server("unknown block"))?;
            (n, n)
        }
        None => {
            let head = core.chain.head().number;
            let from = match f.from {
                Some(id) => resolve_range_end(core, id, head)?,
                None => head,
            };
            let to = match f.to {
                Some(id) => resolve_range_end(core, id, head)?,
                None => head,
            };
            (from, to.min(head))
        }
    };
    if from > to {
        if f.block_hash.is_none() && from > core.chain.head().number {
            return Ok(json!([]));
        }
        return Err(invalid_params("invalid block range params"));
    }
    if to - from >= limits.logs_max_range {
        return Err(server(format!("query exceeds max block range {}", limits.logs_max_range)));
    }
    let mut out = Vec::new();
    for n in from..=to {
        let Some((h, _)) = store::read_header(&snap, n).map_err(db_err)? else { continue };
        if !f.may_match(&h.logs_bloom) {
            continue;
        }
        let block = store::read_block(&snap, n).map_err(db_err)?.ok_or_else(|| internal("block missing"))?;
        let receipts = store::read_receipts(&snap, n).map_err(db_err)?.unwrap_or_default();
        let mut log_index = 0;
        for (i, (t, r)) in block.txs.iter().zip(&receipts).enumerate() {
            let loc = tx_loc(&block, i);
            for l in r.logs() {
                if f.matches(l) {
                    if out.len() >= limits.logs_max_results {
                        return Err(server(format!("query returned more than {} results", limits.logs_max_results)));
                    }
                    out.push(json::log(l, &loc, &t.hash, log_index));
                }
                log_index += 1;
            }
        }
    }
    Ok(Value::Array(out))
}

fn resolve_range_end(core: &Core, id: BlockId, head: u64) -> RpcResult<u64> {
    match id {
        BlockId::Number(n) => Ok(n),
        BlockId::Latest | BlockId::Pending => Ok(head),
        other => resolve(core, other),
    }
}
