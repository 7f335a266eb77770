//! A hash-map-backed state: the parent of test blocks, state tests, replays
//! and benchmarks.

use super::types::{AccountBasic, StateKey, StateValue, EMPTY_CODE_HASH};
use super::view::{StateError, StateView};
use alloy_primitives::map::HashMap;
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use metis_trie::{storage_leaf_value, Nibbles, RootBuilder, TrieAccount};
use std::collections::BTreeMap;

/// One account with its storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InMemoryAccount {
    /// Nonce, balance, code hash.
    pub basic: AccountBasic,
    /// Only non-zero slots are kept.
    pub storage: HashMap<U256, U256>,
}

/// How `block_hash` answers for numbers it has no entry for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingBlockHash {
    /// `None`: the executor reports the missing hash as an error.
    #[default]
    Missing,
    /// keccak256 of the decimal number, the convention of the ethereum/tests
    /// state tests (and of revm's empty database).
    KeccakOfNumber,
}

/// A complete world state in ordered maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InMemoryState {
    /// Accounts by address.
    pub accounts: HashMap<Address, InMemoryAccount>,
    /// Bytecode by code hash.
    pub codes: HashMap<B256, Bytes>,
    /// Block hashes by number (BLOCKHASH).
    pub block_hashes: BTreeMap<u64, B256>,
    /// What `block_hash` answers for numbers missing from `block_hashes`.
    pub missing_block_hash: MissingBlockHash,
}

impl InMemoryState {
    /// Inserts an account with its code and storage (zero slots are dropped).
    pub fn insert_account(
        &mut self,
        address: Address,
        nonce: u64,
        balance: U256,
        code: Bytes,
        storage: impl IntoIterator<Item = (U256, U256)>,
    ) {
        let code_hash = if code.is_empty() { EMPTY_CODE_HASH } else { keccak256(&code) };
        if !code.is_empty() {
            self.codes.insert(code_hash, code);
        }
        let storage = storage.into_iter().filter(|(_, v)| !v.is_zero()).collect();
        let basic = AccountBasic { nonce, balance, code_hash };
        self.accounts.insert(address, InMemoryAccount { basic, storage });
    }

    /// Writes every code, account and slot into `writer`: committed on top
    /// of an empty database, the new version holds exactly this state.
    pub fn write_to(&self, writer: &mut crate::state::StateWriter<'_>) -> crate::Result<()> {
        for (hash, code) in &self.codes {
            writer.set_code(hash, code)?;
        }
        for (address, account) in &self.accounts {
            writer.set_account(address, Some(account.basic.into()))?;
            for (slot, value) in &account.storage {
                writer.set_storage(address, slot, value)?;
            }
        }
        Ok(())
    }

    /// Folds the final writes of a block into this state. `writes` must be in
    /// key order (as `MvMemory::final_writes` returns them) so that storage
    /// wipes come before the slot writes of the same block.
    pub fn apply(&mut self, writes: &[(StateKey, StateValue)]) {
        debug_assert!(writes.windows(2).all(|w| w[0].0 < w[1].0), "writes not in key order");
        for (key, value) in writes {
            match (key, value) {
                (StateKey::Account(address), StateValue::Account(None)) => {
                    self.accounts.remove(address);
                }
                (StateKey::Account(address), StateValue::Account(Some(basic))) => {
                    self.accounts.entry(*address).or_default().basic = *basic;
                }
                (StateKey::StorageWipe(address), StateValue::StorageWipe) => {
                    if let Some(account) = self.accounts.get_mut(address) {
                        account.storage.clear();
                    }
                }
                (StateKey::Storage(address, slot), StateValue::Storage(v)) => {
                    // A slot of a deleted account is dropped with it.
                    if let Some(account) = self.accounts.get_mut(address) {
                        if v.is_zero() {
                            account.storage.remove(slot);
                        } else {
                            account.storage.insert(*slot, *v);
                        }
                    }
                }
                (StateKey::Code(hash), StateValue::Code(code)) => {
                    self.codes.insert(*hash, code.clone());
                }
                (key, value) => {
                    debug_assert!(false, "value {value:?} does not fit key {key:?}");
                }
            }
        }
    }
}

/// Root of a trie of 32-byte hashed keys; `leaves` in any order.
fn secure_root(mut leaves: Vec<(B256, Vec<u8>)>) -> B256 {
    leaves.sort_unstable_by_key(|(key, _)| *key);
    let mut builder = RootBuilder::new();
    for (key, value) in &leaves {
        // Keys are distinct hashes in increasing order and values are
        // non-empty RLP, the two conditions under which the builder errs.
        builder.add_leaf(Nibbles::from_b256(key), value).expect("sorted distinct keys, non-empty values");
    }
    builder.finish().expect("a trie of leaves only").root()
}

impl InMemoryAccount {
    /// Root of the account's storage trie.
    pub fn storage_root(&self) -> B256 {
        secure_root(
            self.storage
                .iter()
                .filter_map(|(slot, value)| storage_leaf_value(value).map(|v| (keccak256(slot.to_be_bytes::<32>()), v)))
                .collect(),
        )
    }
}

impl InMemoryState {
    /// The state root as go-ethereum computes it (secure trie: keys hashed
    /// with keccak256), the same root a MetisDB version of this state carries.
    pub fn state_root(&self) -> B256 {
        secure_root(
            self.accounts
                .iter()
                .map(|(address, account)| {
                    let leaf = TrieAccount {
                        nonce: account.basic.nonce,
                        balance: account.basic.balance,
                        storage_root: account.storage_root(),
                        code_hash: account.basic.code_hash,
                    };
                    (keccak256(address), leaf.encode_to_vec())
                })
                .collect(),
        )
    }
}

impl StateView for InMemoryState {
    fn account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError> {
        Ok(self.accounts.get(address).map(|a| a.basic))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        Ok(self.accounts.get(address).and_then(|a| a.storage.get(slot).copied()).unwrap_or_default())
    }

    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        if *code_hash == EMPTY_CODE_HASH {
            return Ok(Some(Bytes::new()));
        }
        Ok(self.codes.get(code_hash).cloned())
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        match (self.block_hashes.get(&number), self.missing_block_hash) {
            (Some(hash), _) => Ok(Some(*hash)),
            (None, MissingBlockHash::Missing) => Ok(None),
            (None, MissingBlockHash::KeccakOfNumber) => Ok(Some(keccak256(number.to_string().as_bytes()))),
        }
    }
}
