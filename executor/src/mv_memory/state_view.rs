//! The parent state a block executes on top of.

use super::types::AccountBasic;
use alloy_primitives::{Address, Bytes, B256, U256};

/// A failure of the parent state (I/O, corruption), with what was being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state read failed ({what}): {reason}")]
pub struct StateError {
    pub what: String,
    pub reason: String,
}

/// Parent version of the state: a read-only snapshot shared by all workers.
pub trait StateView: Sync {
    /// Nonce, balance and code hash; `None` if the account does not exist.
    fn account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError>;
    /// Zero for a missing slot.
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError>;
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError>;
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError>;
}
