//! Execution methods: eth_call and eth_estimateGas (on blocking threads, under the gas cap).
use super::error::{db_err, internal, reverted, server, RpcResult};
use super::eth::state_for;
use super::json::{self, q};
use super::params::{self, at_most, required, CallRequest};
use super::RpcLimits;
use crate::chain::store;
use crate::core::Core;
use alloy_primitives::{Address, U256};
use metis_executor::pending::WithBlockHashes;
use metis_executor::revm::context::TxEnv;
use metis_executor::revm::context_interface::result::{ExecutionResult, HaltReason, OutOfGasError};
use metis_executor::{call, ExecutorError};
use metisdb::state::StateRead;
use metisdb::Snapshot;
use serde_json::{json, Value};

/// EIP-7825 cap on a transaction's gas (Osaka).
const TX_GAS_LIMIT_CAP: u64 = 1 << 24;

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
