//! What the execution of one transaction left for receipt assembly.

use crate::receipts::LogsBloom;
use revm::context_interface::result::{ExecutionResult, HaltReason, InvalidTransaction};
use std::time::Duration;

// One per transaction, stored in place: boxing the common variant would add an
// allocation per transaction to save memory on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TxOutcome {
    /// Executed, with the bloom of its logs.
    Executed(ExecutionResult<HaltReason>, LogsBloom),
    /// revm rejected the transaction against the state it read; it wrote
    /// nothing.
    Invalid(InvalidTransaction),
    /// The state failed under the transaction (missing code or block hash, I/O).
    Failed(String),
}

/// Counters of one block execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// Incarnations run, including re-executions.
    pub executions: usize,
    /// Incarnations aborted because a validation found a changed read.
    pub validation_aborts: usize,
    /// Executions suspended on an ESTIMATE or a dependency hint.
    pub dependency_waits: usize,
    /// Workers the block ran on (1: sequential, including the fallback of
    /// [`crate::ExecutionMode::Auto`]).
    pub workers: usize,
    /// Wall time of the transactions (workers started to workers done).
    pub transactions_time: Duration,
    /// Wall time after the transactions: receipts, final writes, receipts
    /// root.
    pub finish_time: Duration,
}
