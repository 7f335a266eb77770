//! A MetisDB snapshot as the parent state of a block.

use super::types::AccountBasic;
use super::view::{StateError, StateView};
use crate::snapshot::Snapshot;
use crate::state::{AccountInfo, StateRead};
use alloy_primitives::{Address, Bytes, B256, U256};
use std::collections::BTreeMap;

impl From<AccountInfo> for AccountBasic {
    fn from(info: AccountInfo) -> Self {
        AccountBasic { nonce: info.nonce, balance: info.balance, code_hash: info.code_hash }
    }
}

impl From<AccountBasic> for AccountInfo {
    fn from(basic: AccountBasic) -> Self {
        AccountInfo { nonce: basic.nonce, balance: basic.balance, code_hash: basic.code_hash }
    }
}

fn read_error(snap: &Snapshot, what: String, e: crate::Error) -> StateError {
    let version = snap.version().map_or_else(|| "empty database".to_string(), |v| format!("version {v}"));
    StateError { what: format!("{what} at {version}"), reason: e.to_string() }
}

impl StateView for Snapshot {
    fn account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError> {
        StateRead::account(self, address)
            .map(|a| a.map(|a| a.info.into()))
            .map_err(|e| read_error(self, format!("account {address}"), e))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        StateRead::storage(self, address, slot).map_err(|e| read_error(self, format!("slot {slot:#x} of {address}"), e))
    }

    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        if *code_hash == super::EMPTY_CODE_HASH {
            return Ok(Some(Bytes::new()));
        }
        StateRead::code(self, code_hash)
            .map(|c| c.map(Bytes::copy_from_slice))
            .map_err(|e| read_error(self, format!("code {code_hash}"), e))
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        snapshot_block_hash(self, number)
    }

    fn hashes_keys(&self) -> bool {
        true
    }

    fn account_hashed(&self, address: &Address, address_hash: &B256) -> Result<Option<AccountBasic>, StateError> {
        debug_assert_eq!(*address_hash, alloy_primitives::keccak256(address));
        StateRead::account_by_hash(self, address_hash)
            .map(|a| a.map(|a| a.info.into()))
            .map_err(|e| read_error(self, format!("account {address}"), e))
    }

    fn storage_hashed(&self, address: &Address, address_hash: &B256, slot: &U256) -> Result<U256, StateError> {
        debug_assert_eq!(*address_hash, alloy_primitives::keccak256(address));
        StateRead::storage_by_hash(self, address_hash, &crate::state::hash_slot(slot))
            .map_err(|e| read_error(self, format!("slot {slot:#x} of {address}"), e))
    }
}

/// Hook for BLOCKHASH on a snapshot: the hash of block `number`.
///
/// The engine has block tables (`BLOCKS`, `BLOCK_NUMBERS`) but the node does
/// not fill them yet, so this answers `None` (the executor then reports the
/// missing hash). Once blocks are stored, look the hash up here. Until then,
/// wrap the snapshot in [`WithBlockHashes`] to supply the hashes.
pub fn snapshot_block_hash(snap: &Snapshot, number: u64) -> Result<Option<B256>, StateError> {
    let _ = (snap, number);
    Ok(None)
}

/// A parent state with block hashes supplied from outside (the 256 hashes
/// before the block), falling back to the state's own answer.
#[derive(Debug, Clone)]
pub struct WithBlockHashes<S> {
    /// The state read for accounts, storage and code.
    pub state: S,
    /// Block hashes by number.
    pub hashes: BTreeMap<u64, B256>,
}

impl<S: StateView> StateView for WithBlockHashes<S> {
    fn account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError> {
        self.state.account(address)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        self.state.storage(address, slot)
    }
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        self.state.code(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        match self.hashes.get(&number) {
            Some(hash) => Ok(Some(*hash)),
            None => self.state.block_hash(number),
        }
    }
    fn hashes_keys(&self) -> bool {
        self.state.hashes_keys()
    }
    fn account_hashed(&self, address: &Address, address_hash: &B256) -> Result<Option<AccountBasic>, StateError> {
        self.state.account_hashed(address, address_hash)
    }
    fn storage_hashed(&self, address: &Address, address_hash: &B256, slot: &U256) -> Result<U256, StateError> {
        self.state.storage_hashed(address, address_hash, slot)
    }
}
