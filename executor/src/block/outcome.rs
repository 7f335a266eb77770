//! What the execution of one transaction left for receipt assembly.

use revm::context_interface::result::{ExecutionResult, HaltReason, InvalidTransaction};

#[derive(Debug, Clone)]
pub enum TxOutcome {
    Executed(ExecutionResult<HaltReason>),
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
}
