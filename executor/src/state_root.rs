//! Secure Merkle Patricia root of an in-memory state (state tests).

use crate::mv_memory::{InMemoryAccount, InMemoryState};
use crate::trie_root::trie_root;
use alloy_primitives::{keccak256, B256};
use alloy_rlp::{Encodable, Header};

fn storage_root(account: &InMemoryAccount) -> B256 {
    trie_root(account.storage.iter().filter(|(_, v)| !v.is_zero()).map(|(slot, value)| {
        let mut encoded = Vec::new();
        value.encode(&mut encoded);
        (keccak256(slot.to_be_bytes::<32>()).to_vec(), encoded)
    }))
}

/// rlp([nonce, balance, storageRoot, codeHash]).
fn account_rlp(account: &InMemoryAccount) -> Vec<u8> {
    let root = storage_root(account);
    let basic = &account.basic;
    let payload_length = basic.nonce.length() + basic.balance.length() + root.length() + basic.code_hash.length();
    let mut out = Vec::with_capacity(payload_length + 3);
    Header { list: true, payload_length }.encode(&mut out);
    basic.nonce.encode(&mut out);
    basic.balance.encode(&mut out);
    root.encode(&mut out);
    basic.code_hash.encode(&mut out);
    out
}

impl InMemoryState {
    /// The state root as go-ethereum computes it (keys hashed with keccak256).
    pub fn state_root(&self) -> B256 {
        trie_root(self.accounts.iter().map(|(address, account)| (keccak256(address).to_vec(), account_rlp(account))))
    }
}
