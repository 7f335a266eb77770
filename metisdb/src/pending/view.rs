//! The parent state a block executes on top of.

use super::types::AccountBasic;
use alloy_primitives::{Address, Bytes, B256, U256};

/// A failure of the parent state (I/O, corruption), with what was being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state read failed ({what}): {reason}")]
pub struct StateError {
    /// What was being read (an account, a slot, a code hash, a block hash).
    pub what: String,
    /// Why it failed.
    pub reason: String,
}

/// Parent version of the state: a read-only snapshot shared by all workers.
pub trait StateView: Sync {
    /// Nonce, balance and code hash; `None` if the account does not exist.
    fn account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError>;
    /// Zero for a missing slot.
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError>;
    /// Bytecode by hash; `None` if unknown.
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError>;
    /// Hash of an earlier block (BLOCKHASH); `None` if unknown.
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError>;

    /// Whether reads hash their keys (keccak of the address): a caller that
    /// knows addresses ahead can hash them in a batch and read with
    /// [`StateView::account_hashed`] and [`StateView::storage_hashed`].
    fn hashes_keys(&self) -> bool {
        false
    }
    /// [`StateView::account`] with `address_hash = keccak(address)` given.
    fn account_hashed(&self, address: &Address, address_hash: &B256) -> Result<Option<AccountBasic>, StateError> {
        let _ = address_hash;
        self.account(address)
    }
    /// [`StateView::storage`] with `address_hash = keccak(address)` given.
    fn storage_hashed(&self, address: &Address, address_hash: &B256, slot: &U256) -> Result<U256, StateError> {
        let _ = address_hash;
        self.storage(address, slot)
    }
}

impl<T: StateView + ?Sized> StateView for &T {
    fn account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError> {
        (**self).account(address)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        (**self).storage(address, slot)
    }
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        (**self).code(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        (**self).block_hash(number)
    }
    fn hashes_keys(&self) -> bool {
        (**self).hashes_keys()
    }
    fn account_hashed(&self, address: &Address, address_hash: &B256) -> Result<Option<AccountBasic>, StateError> {
        (**self).account_hashed(address, address_hash)
    }
    fn storage_hashed(&self, address: &Address, address_hash: &B256, slot: &U256) -> Result<U256, StateError> {
        (**self).storage_hashed(address, address_hash, slot)
    }
}
