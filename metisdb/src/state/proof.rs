//! EIP-1186 account and storage proofs at any retained version.

use super::read::{ReadTables, StateRead};
use super::trie_io::{AccountLeaves, StorageLeaves, TrieBranches};
use super::{hash_slot, keccak256, Address, Bytes, B256, U256};
use crate::error::Result;
use metis_trie::{prove, prove_many, EMPTY_ROOT_HASH, KECCAK_EMPTY};

/// The proof of one storage slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageProof {
    /// The slot.
    pub key: U256,
    /// Its value (zero when unset).
    pub value: U256,
    /// RLP nodes from the storage root down.
    pub proof: Vec<Bytes>,
}

/// The EIP-1186 proof of an account and some of its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountProof {
    /// The account.
    pub address: Address,
    /// RLP nodes from the state root down (an exclusion proof if absent).
    pub account_proof: Vec<Bytes>,
    /// Balance (zero if absent).
    pub balance: U256,
    /// Code hash (keccak of empty if absent).
    pub code_hash: B256,
    /// Nonce (zero if absent).
    pub nonce: u64,
    /// Storage root (empty-trie root if absent).
    pub storage_hash: B256,
    /// One per requested slot.
    pub storage_proof: Vec<StorageProof>,
}

/// Builds the proof of `address` and `slots` in the state `reader` shows.
pub fn account_proof<R: ReadTables>(reader: &R, address: &Address, slots: &[U256]) -> Result<AccountProof> {
    let ah = keccak256(address);
    let account_proof = prove(&ah, &mut AccountLeaves::new(reader), &mut TrieBranches::accounts(reader))?;
    let acct = reader.account_by_hash(&ah)?;
    let (balance, code_hash, nonce, storage_hash) = match acct {
        Some(a) => (a.info.balance, a.info.code_hash, a.info.nonce, a.storage_root),
        None => (U256::ZERO, KECCAK_EMPTY, 0, EMPTY_ROOT_HASH),
    };
    let hashed: Vec<B256> = slots.iter().map(hash_slot).collect();
    let proofs = if acct.is_some() {
        prove_many(&hashed, &mut StorageLeaves::new(reader, ah), &mut TrieBranches::storage(reader, &ah))?
    } else {
        vec![Vec::new(); slots.len()]
    };
    let mut storage_proof = Vec::with_capacity(slots.len());
    for ((slot, sh), proof) in slots.iter().zip(&hashed).zip(proofs) {
        storage_proof.push(StorageProof { key: *slot, value: reader.storage_by_hash(&ah, sh)?, proof });
    }
    Ok(AccountProof { address: *address, account_proof, balance, code_hash, nonce, storage_hash, storage_proof })
}

impl AccountProof {
    /// Checks the proof against a state root with the trie crate's verifier.
    pub fn verify(&self, state_root: B256) -> std::result::Result<(), metis_trie::ProofError> {
        let ah = keccak256(self.address);
        let leaf = metis_trie::TrieAccount {
            nonce: self.nonce,
            balance: self.balance,
            storage_root: self.storage_hash,
            code_hash: self.code_hash,
        }
        .encode_to_vec();
        if let Err(e) = metis_trie::verify_proof(state_root, &ah, Some(&leaf), &self.account_proof) {
            // An absent account is reported with default fields and an exclusion proof.
            let default = self.nonce == 0
                && self.balance.is_zero()
                && self.code_hash == KECCAK_EMPTY
                && self.storage_hash == EMPTY_ROOT_HASH;
            if !default {
                return Err(e);
            }
            metis_trie::verify_proof(state_root, &ah, None, &self.account_proof)?;
        }
        for sp in &self.storage_proof {
            let v = metis_trie::storage_leaf_value(&sp.value);
            metis_trie::verify_proof(self.storage_hash, &hash_slot(&sp.key), v.as_deref(), &sp.proof)?;
        }
        Ok(())
    }
}
