//! The parent state with the block's known addresses hashed in advance.
//!
//! A MetisDB snapshot keys accounts and storage by keccak(address) and
//! hashes the address on every read, storage reads included. The contracts
//! a block's transactions call are known before it runs and read again and
//! again (a token's balances, a pair's reserves): they are hashed here in
//! one batch (`metis_keccak`), and reads of them pass the hash along. The
//! map is built before the workers start and only read after, so the
//! workers share it without writing to it.

use alloy_primitives::map::HashMap;
use alloy_primitives::{Address, Bytes, B256, U256};
use metisdb::pending::{AccountBasic, StateError, StateView};

pub struct PrehashedParent<'a> {
    inner: &'a dyn StateView,
    hashes: HashMap<Address, B256>,
}

impl<'a> PrehashedParent<'a> {
    /// `inner` with `addresses` (any order, repeats allowed) hashed.
    pub fn new(inner: &'a dyn StateView, addresses: impl IntoIterator<Item = Address>) -> Self {
        let mut keys: Vec<Address> = addresses.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let digests = metis_keccak::keccak256_all(&keys);
        let mut hashes: HashMap<Address, B256> = HashMap::with_capacity_and_hasher(keys.len(), Default::default());
        hashes.extend(keys.into_iter().zip(digests));
        Self { inner, hashes }
    }
}

impl StateView for PrehashedParent<'_> {
    fn account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError> {
        match self.hashes.get(address) {
            Some(hash) => self.inner.account_hashed(address, hash),
            None => self.inner.account(address),
        }
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        match self.hashes.get(address) {
            Some(hash) => self.inner.storage_hashed(address, hash, slot),
            None => self.inner.storage(address, slot),
        }
    }
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        self.inner.code(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        self.inner.block_hash(number)
    }
    fn hashes_keys(&self) -> bool {
        self.inner.hashes_keys()
    }
    fn account_hashed(&self, address: &Address, address_hash: &B256) -> Result<Option<AccountBasic>, StateError> {
        self.inner.account_hashed(address, address_hash)
    }
    fn storage_hashed(&self, address: &Address, address_hash: &B256, slot: &U256) -> Result<U256, StateError> {
        self.inner.storage_hashed(address, address_hash, slot)
    }
}
