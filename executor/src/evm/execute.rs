//! Runs one transaction (or system call) on revm against the multi-version
//! memory, without paying the beneficiary: the fee becomes a lazy balance
//! addition so that transactions do not all conflict on the coinbase.

use super::code_cache::CodeCache;
use super::tx_db::{DbError, TxDb};
use super::write_set::collect_writes;
use crate::chains::DebitChains;
use crate::receipts::{LogsBloom, LogsBloomer};
use alloy_primitives::{Address, Bytes, U256};
use metisdb::pending::{MvMemory, ReadRecord, StateKey, TxIndex, WriteOp};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
use revm::context_interface::{Block, Cfg, ContextSetters, ContextTr, Transaction};
use revm::handler::{EvmTr, FrameResult, Handler, MainnetContext, SystemCallEvm};
use revm::primitives::hardfork::SpecId;
use revm::{Context, ExecuteEvm, MainBuilder, MainContext, MainnetEvm};
use std::cell::Cell;

/// Everything about the block that every transaction needs.
#[derive(Clone, Debug)]
pub struct EvmEnv {
    pub cfg: CfgEnv,
    pub block: BlockEnv,
}

impl EvmEnv {
    pub fn spec(&self) -> SpecId {
        self.cfg.spec
    }

    /// EIP-161 (Spurious Dragon) state clearing is active.
    pub fn state_clear(&self) -> bool {
        self.cfg.spec.is_enabled_in(SpecId::SPURIOUS_DRAGON)
    }
}

pub type TxEvm<'a, 'p> = MainnetEvm<MainnetContext<TxDb<'a, 'p>>>;

/// The mainnet handler with the beneficiary reward computed but not applied.
struct LazyRewardHandler<'a, 'p> {
    reward: Cell<U256>,
    _evm: std::marker::PhantomData<TxEvm<'a, 'p>>,
}

impl<'a, 'p> Handler for LazyRewardHandler<'a, 'p> {
    type Evm = TxEvm<'a, 'p>;
    type Error = EVMError<DbError, InvalidTransaction>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(&self, evm: &mut Self::Evm, exec_result: &mut FrameResult) -> Result<(), Self::Error> {
        // Same amount as revm's `post_execution::reward_beneficiary`.
        let ctx = evm.ctx();
        if ctx.cfg().is_fee_charge_disabled() {
            return Ok(());
        }
        let basefee = ctx.block().basefee() as u128;
        let effective_gas_price = ctx.tx().effective_gas_price(basefee);
        let coinbase_gas_price = if ctx.cfg().spec().is_enabled_in(SpecId::LONDON) {
            effective_gas_price.saturating_sub(basefee)
        } else {
            effective_gas_price
        };
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        self.reward.set(U256::from(coinbase_gas_price) * U256::from(used));
        Ok(())
    }
}

/// The outcome of one execution of one transaction.
#[derive(Debug)]
pub struct TxExecution {
    /// `Err`: revm rejected the transaction (nonce, balance, fee caps, ...)
    /// against the state it read. It writes nothing.
    pub result: Result<ExecutionResult<HaltReason>, InvalidTransaction>,
    /// Bloom of the logs (computed here, on the worker, rather than in the
    /// serial receipt assembly); `None` without logs.
    pub bloom: LogsBloom,
    pub writes: Vec<(StateKey, WriteOp)>,
    pub reads: Vec<ReadRecord>,
}

/// Why an execution produced no outcome.
#[derive(Debug)]
pub enum ExecFailure {
    Blocked(TxIndex),
    /// The state failed (missing code or block hash, I/O) or the block
    /// environment is invalid. Kept with its reads: a speculative execution
    /// may fail on a read that the final incarnation does not make.
    Failed {
        reason: String,
        reads: Vec<ReadRecord>,
    },
    /// A chain transaction (`crate::chains`) was not a plain transfer
    /// after all: the parallel run cannot stand.
    NotPlainTransfer,
}

fn build_evm<'a, 'p>(env: &EvmEnv, db: TxDb<'a, 'p>) -> TxEvm<'a, 'p> {
    Context::mainnet().with_db(db).with_block(env.block.clone()).with_cfg(env.cfg.clone()).build_mainnet()
}

/// Executes transactions of one block, one after the other, on one revm
/// instance: the instruction table, precompiles, journal, frame stack and
/// memory buffer are built once per worker, not once per execution.
pub struct TxExecutor<'a, 'p> {
    evm: TxEvm<'a, 'p>,
    handler: LazyRewardHandler<'a, 'p>,
    beneficiary: Address,
    bloomer: LogsBloomer,
}

impl<'a, 'p> TxExecutor<'a, 'p> {
    /// `record_reads`: keep the read set for validation (Block-STM); the
    /// sequential path reads only final values and skips it.
    pub fn new(env: &EvmEnv, mv: &'a MvMemory<'p>, codes: &'a CodeCache, record_reads: bool) -> Self {
        Self {
            evm: build_evm(env, TxDb::new(mv, codes, 0, record_reads)),
            handler: LazyRewardHandler { reward: Cell::new(U256::ZERO), _evm: Default::default() },
            beneficiary: env.block.beneficiary,
            bloomer: LogsBloomer::default(),
        }
    }

    /// Executes chain transaction `tx` (`crate::chains`) as transaction
    /// `index` against a stand-in sender; its write of the sender becomes a
    /// debit.
    pub fn execute_chain(&mut self, index: TxIndex, tx: &TxEnv) -> Result<TxExecution, ExecFailure> {
        self.evm.ctx.journaled_state.database.stand_in_sender = Some((tx.caller, tx.nonce));
        let execution = self.execute(index, tx);
        self.evm.ctx.journaled_state.database.stand_in_sender = None;
        let mut execution = execution?;
        let Ok(result) = &execution.result else { return Err(ExecFailure::NotPlainTransfer) };
        let writes = std::mem::take(&mut execution.writes);
        execution.writes = DebitChains::debit(tx, result.tx_gas_used(), writes).ok_or(ExecFailure::NotPlainTransfer)?;
        Ok(execution)
    }

    /// Executes `tx` as transaction `index` of the block.
    pub fn execute(&mut self, index: TxIndex, tx: &TxEnv) -> Result<TxExecution, ExecFailure> {
        let db = &mut self.evm.ctx.journaled_state.database;
        db.tx = index;
        db.reads.clear();
        self.evm.ctx.set_tx(tx.clone());
        self.handler.reward.set(U256::ZERO);
        let outcome = self.handler.run(&mut self.evm);
        // Leaves the journal empty for the next transaction.
        let state = self.evm.finalize();
        // An exact-size copy: the buffer keeps its capacity for the next
        // transaction, so a read set is one allocation, not one per doubling.
        let reads = self.evm.ctx.journaled_state.database.reads.drain(..).collect();
        match outcome {
            Ok(result) => {
                let writes = collect_writes(&state, self.beneficiary, self.handler.reward.get());
                let bloom = (!result.logs().is_empty()).then(|| Box::new(self.bloomer.bloom(result.logs())));
                Ok(TxExecution { result: Ok(result), bloom, writes, reads })
            }
            Err(EVMError::Transaction(invalid)) => {
                Ok(TxExecution { result: Err(invalid), bloom: None, writes: Vec::new(), reads })
            }
            Err(EVMError::Database(DbError::Blocked(blocking))) => Err(ExecFailure::Blocked(blocking)),
            Err(other) => Err(ExecFailure::Failed { reason: other.to_string(), reads }),
        }
    }
}

/// Executes `tx` as transaction `index` of the block on a fresh revm
/// instance (single calls; blocks use [`TxExecutor`]).
pub fn execute_tx(
    env: &EvmEnv,
    mv: &MvMemory<'_>,
    codes: &CodeCache,
    index: TxIndex,
    tx: &TxEnv,
    record_reads: bool,
) -> Result<TxExecution, ExecFailure> {
    TxExecutor::new(env, mv, codes, record_reads).execute(index, tx)
}

/// Runs a system call (EIP-4788, EIP-2935) before the block's transactions and
/// returns its writes. Reads see the parent state only.
pub fn execute_system_call(
    env: &EvmEnv,
    mv: &MvMemory<'_>,
    codes: &CodeCache,
    contract: Address,
    data: Bytes,
) -> Result<Vec<(StateKey, WriteOp)>, String> {
    let mut evm = build_evm(env, TxDb::new(mv, codes, 0, false));
    let outcome = evm.system_call(contract, data).map_err(|e| e.to_string())?;
    // System calls touch neither the caller's balance nor the beneficiary; a
    // zero addition to it would wrongly touch it, so drop it.
    let mut writes = collect_writes(&outcome.state, env.block.beneficiary, U256::ZERO);
    writes.retain(|(_, op)| !matches!(op, WriteOp::AddBalance(_)));
    // The system address is loaded as caller but must not appear in state.
    writes.retain(|(key, _)| key.address() != Some(revm::handler::SYSTEM_ADDRESS));
    Ok(writes)
}
