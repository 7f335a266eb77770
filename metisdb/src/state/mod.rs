//! The Ethereum state model on top of the tables: accounts by
//! keccak(address), storage by keccak(address) ++ keccak(slot), bytecode by
//! code hash, stored branch nodes of the account and storage tries, and
//! preimages of the hashed keys. Every committed version carries the state
//! root go-ethereum and reth compute for the same state.

mod account;
pub mod genesis;
mod proof;
mod read;
mod trie_io;
mod writer;

pub use account::{AccountInfo, StoredAccount};
pub use proof::{account_proof, AccountProof, StorageProof};
pub use read::{ReadTables, StateRead, TableIter};
pub use trie_io::{trie_key, AccountLeaves, StorageLeaves, TrieBranches};
pub use writer::{AccountUpdate, RootStats, SlotWrite, StateWriter};

pub use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
pub use metis_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY};

/// Key of a storage slot: keccak(address) ++ keccak(slot).
pub fn storage_key(address_hash: &B256, slot_hash: &B256) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(address_hash.as_slice());
    k[32..].copy_from_slice(slot_hash.as_slice());
    k
}

/// A non-zero slot value as the storage table holds it: its 32-byte
/// big-endian form without leading zeros.
pub fn stored_slot_value(be: &[u8; 32]) -> &[u8] {
    let skip = be.iter().take_while(|&&x| x == 0).count();
    &be[skip..]
}

/// keccak of a slot number as the trie sees it (32-byte big-endian).
pub fn hash_slot(slot: &U256) -> B256 {
    keccak256(slot.to_be_bytes::<32>())
}
