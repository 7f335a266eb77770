//! The executor's single error type; every variant names the block and, where
//! there is one, the transaction.

use metisdb::pending::StateError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("block {block}: transaction {index} is invalid: {reason}")]
    InvalidTransaction { block: u64, index: usize, reason: String },
    #[error("block {block}: transaction {index} failed: {reason}")]
    TransactionFailed { block: u64, index: usize, reason: String },
    #[error("block {block}: system call to {contract} failed: {reason}")]
    SystemCall { block: u64, contract: alloy_primitives::Address, reason: String },
    #[error("block {block}: {source}")]
    State { block: u64, source: StateError },
    #[error("block {block}: invalid block: {reason}")]
    InvalidBlock { block: u64, reason: String },
    #[error("{path}: {reason}")]
    Fixture { path: PathBuf, reason: String },
}
