//! Single-call execution for RPC (`eth_call`, `eth_estimateGas`): runs one
//! transaction on top of a state without committing anything.

use crate::block::BlockInput;
use crate::error::ExecutorError;
use crate::evm::{execute_tx, CodeCache, ExecFailure};
use metisdb::pending::{MvMemory, StateView};
use revm::context::TxEnv;
use revm::context_interface::result::{ExecutionResult, HaltReason};

/// go-ethereum's default `eth_call` gas cap.
pub const DEFAULT_CALL_GAS_CAP: u64 = 50_000_000;

/// Executes `tx` on top of `parent` as the first transaction of `block`.
///
/// As go-ethereum's `eth_call`: the nonce is not checked, the caller is not
/// charged for gas (so neither balance nor base fee limit the call), and the
/// gas limit is capped at `gas_cap` (a zero limit means the cap).
pub fn call(
    parent: &dyn StateView,
    block: &BlockInput,
    mut tx: TxEnv,
    gas_cap: u64,
) -> Result<ExecutionResult<HaltReason>, ExecutorError> {
    let number = block.number();
    tx.gas_limit = if tx.gas_limit == 0 { gas_cap } else { tx.gas_limit.min(gas_cap) };
    let mut env = block.env.clone();
    env.cfg.disable_nonce_check = true;
    env.cfg.disable_fee_charge = true;
    env.cfg.disable_base_fee = true;
    env.cfg.disable_balance_check = true;
    env.cfg.disable_block_gas_limit = true;
    let mv = MvMemory::new(parent, 1, env.state_clear());
    let codes = CodeCache::default();
    match execute_tx(&env, &mv, &codes, 0, &tx, false) {
        Ok(execution) => execution.result.map_err(|invalid| ExecutorError::InvalidTransaction {
            block: number,
            index: 0,
            reason: invalid.to_string(),
        }),
        Err(ExecFailure::Blocked(_) | ExecFailure::NotPlainTransfer) => unreachable_blocked(number),
        Err(ExecFailure::Failed { reason, .. }) => {
            Err(ExecutorError::TransactionFailed { block: number, index: 0, reason })
        }
    }
}

/// Transaction 0 has no lower transaction to wait for (and a call is never
/// run as a chain transaction).
fn unreachable_blocked(block: u64) -> Result<ExecutionResult<HaltReason>, ExecutorError> {
    Err(ExecutorError::TransactionFailed {
        block,
        index: 0,
        reason: "a call cannot depend on another transaction".into(),
    })
}
