//! The account record stored as the value of an account-trie leaf.

use crate::{EMPTY_ROOT_HASH, KECCAK_EMPTY};
use alloy_primitives::{B256, U256};
use alloy_rlp::{Decodable, Encodable, Header};
use core::fmt;

/// An account as it appears in the state trie: `rlp([nonce, balance,
/// storage_root, code_hash])`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrieAccount {
    /// Transaction count (or contract creation count for contracts).
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// Root of the account's storage trie.
    pub storage_root: B256,
    /// Keccak hash of the account's code.
    pub code_hash: B256,
}

impl Default for TrieAccount {
    /// An account with no nonce, balance, storage or code.
    fn default() -> Self {
        Self { nonce: 0, balance: U256::ZERO, storage_root: EMPTY_ROOT_HASH, code_hash: KECCAK_EMPTY }
    }
}

/// Why bytes are not a valid account RLP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountDecodeError {
    /// Malformed RLP or a field of the wrong shape.
    Rlp(alloy_rlp::Error),
    /// The encoding is not a list.
    NotAList,
    /// The list holds more than the four account fields.
    ExtraFields,
    /// Bytes after the account list.
    TrailingBytes,
}

impl fmt::Display for AccountDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rlp(e) => write!(f, "malformed account RLP: {e}"),
            Self::NotAList => write!(f, "account RLP is not a list"),
            Self::ExtraFields => write!(f, "account RLP list has more than 4 fields"),
            Self::TrailingBytes => write!(f, "bytes after the account RLP"),
        }
    }
}

impl std::error::Error for AccountDecodeError {}

impl From<alloy_rlp::Error> for AccountDecodeError {
    fn from(e: alloy_rlp::Error) -> Self {
        Self::Rlp(e)
    }
}

impl TrieAccount {
    fn payload_len(&self) -> usize {
        self.nonce.length() + self.balance.length() + self.storage_root.length() + self.code_hash.length()
    }

    /// Appends the RLP encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        Header { list: true, payload_length: self.payload_len() }.encode(out);
        self.nonce.encode(out);
        self.balance.encode(out);
        self.storage_root.encode(out);
        self.code_hash.encode(out);
    }

    /// The RLP encoding (the account-trie leaf value).
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload_len() + 3);
        self.encode_into(&mut out);
        out
    }

    /// Decodes an account from exactly `bytes`; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, AccountDecodeError> {
        let mut buf = bytes;
        let header = Header::decode(&mut buf)?;
        if !header.list {
            return Err(AccountDecodeError::NotAList);
        }
        // Header::decode guarantees the payload fits in the remaining input.
        let (mut body, rest) = buf.split_at(header.payload_length.min(buf.len()));
        if !rest.is_empty() {
            return Err(AccountDecodeError::TrailingBytes);
        }
        let account = Self {
            nonce: u64::decode(&mut body)?,
            balance: U256::decode(&mut body)?,
            storage_root: B256::decode(&mut body)?,
            code_hash: B256::decode(&mut body)?,
        };
        if !body.is_empty() {
            return Err(AccountDecodeError::ExtraFields);
        }
        Ok(account)
    }
}

/// The storage-trie leaf value of a slot value: `rlp(value)`, or `None` for
/// zero (a zero slot is absent from the trie).
pub fn storage_leaf_value(value: &U256) -> Option<Vec<u8>> {
    if value.is_zero() {
        return None;
    }
    let mut out = Vec::with_capacity(33);
    value.encode(&mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_values() {
        assert_eq!(storage_leaf_value(&U256::ZERO), None);
        assert_eq!(storage_leaf_value(&U256::from(1u8)), Some(vec![0x01]));
        assert_eq!(storage_leaf_value(&U256::from(0x80u8)), Some(vec![0x81, 0x80]));
        assert_eq!(storage_leaf_value(&U256::MAX).map(|v| v.len()), Some(33));
    }

    #[test]
    fn empty_account_encoding() {
        // rlp([0, 0, EMPTY_ROOT, KECCAK_EMPTY]) = f8 44 80 80 a0.. a0..
        let enc = TrieAccount::default().encode_to_vec();
        assert_eq!(enc.len(), 70);
        assert_eq!(&enc[..4], &[0xf8, 0x44, 0x80, 0x80]);
        assert_eq!(TrieAccount::decode(&enc).unwrap(), TrieAccount::default());
    }

    #[test]
    fn rejects_malformed() {
        let mut enc = TrieAccount { nonce: 5, balance: U256::from(1000u64), ..Default::default() }.encode_to_vec();
        assert!(TrieAccount::decode(&enc[..enc.len() - 1]).is_err());
        enc.push(0);
        assert_eq!(TrieAccount::decode(&enc), Err(AccountDecodeError::TrailingBytes));
        assert_eq!(TrieAccount::decode(&[0x80]), Err(AccountDecodeError::NotAList));
        // nonce with a leading zero byte
        assert!(TrieAccount::decode(&[0xc4, 0x82, 0x00, 0x01, 0x80]).is_err());
    }
}
