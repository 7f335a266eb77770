//! The reference path: one transaction after the other on the same
//! multi-version memory, no validation needed.

use super::outcome::{ExecStats, TxOutcome};
use crate::evm::{CodeCache, EvmEnv, ExecFailure, TxExecutor};
use metisdb::pending::{MvMemory, Version};
use revm::context::TxEnv;

/// Executes every transaction in order. With `stop_at_invalid`, returns the
/// outcomes up to and including the first invalid or failed transaction.
pub fn run_sequential(
    env: &EvmEnv,
    mv: &MvMemory<'_>,
    codes: &CodeCache,
    txs: &[TxEnv],
    stop_at_invalid: bool,
) -> (Vec<TxOutcome>, ExecStats) {
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut executor = TxExecutor::new(env, mv, codes, false);
    for (index, tx) in txs.iter().enumerate() {
        mv.prefetch_keys(&super::first_reads(tx));
        let (outcome, writes) = match executor.execute(index, tx) {
            Ok(execution) => match execution.result {
                Ok(result) => (TxOutcome::Executed(result, execution.bloom), execution.writes),
                Err(invalid) => (TxOutcome::Invalid(invalid), Vec::new()),
            },
            // Every lower transaction has its final writes in place.
            Err(ExecFailure::Blocked(blocking)) => {
                (TxOutcome::Failed(format!("sequential read blocked by transaction {blocking}")), Vec::new())
            }
            Err(ExecFailure::Failed { reason, .. }) => (TxOutcome::Failed(reason), Vec::new()),
            // Only the parallel path runs chain transactions.
            Err(ExecFailure::NotPlainTransfer) => {
                (TxOutcome::Failed("chain transaction on the sequential path".into()), Vec::new())
            }
        };
        mv.record(Version { tx: index, incarnation: 0 }, writes);
        let stop = !matches!(outcome, TxOutcome::Executed(..)) && stop_at_invalid;
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    let stats = ExecStats { executions: outcomes.len(), ..ExecStats::default() };
    (outcomes, stats)
}
