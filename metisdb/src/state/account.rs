//! The account record stored in the accounts table.
//!
//! ```text
//! flags u8   bit 0: code hash follows (absent = empty code), bit 1: storage root follows (absent = empty)
//! nonce      LEB128
//! balance    u8 length (0..=32) ++ big-endian bytes without leading zeros
//! [code hash 32] [storage root 32]
//! ```
//! An externally owned account takes 3-15 bytes instead of the 70+ of its RLP.

use super::{B256, U256};
use metis_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};

/// What the executor knows of an account (no storage root: the database keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AccountInfo {
    /// Nonce.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak of the code (`KECCAK_EMPTY` for none).
    pub code_hash: B256,
}

/// An account as stored: its info and the root of its storage trie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredAccount {
    /// Nonce, balance, code hash.
    pub info: AccountInfo,
    /// Root of the account's storage trie.
    pub storage_root: B256,
}

impl StoredAccount {
    /// The account's trie leaf.
    pub fn trie_account(&self) -> TrieAccount {
        TrieAccount {
            nonce: self.info.nonce,
            balance: self.info.balance,
            storage_root: self.storage_root,
            code_hash: self.info.code_hash,
        }
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(80);
        let has_code = self.info.code_hash != KECCAK_EMPTY;
        let has_storage = self.storage_root != EMPTY_ROOT_HASH;
        b.push(has_code as u8 | (has_storage as u8) << 1);
        let mut n = self.info.nonce;
        while n >= 0x80 {
            b.push(n as u8 | 0x80);
            n >>= 7;
        }
        b.push(n as u8);
        let bal = self.info.balance.to_be_bytes::<32>();
        let skip = bal.iter().take_while(|&&x| x == 0).count();
        b.push((32 - skip) as u8);
        b.extend_from_slice(&bal[skip..]);
        if has_code {
            b.extend_from_slice(self.info.code_hash.as_slice());
        }
        if has_storage {
            b.extend_from_slice(self.storage_root.as_slice());
        }
        b
    }

    /// Decodes a record; `Err` names the problem.
    pub fn decode(b: &[u8]) -> Result<StoredAccount, &'static str> {
        let (&flags, mut rest) = b.split_first().ok_or("empty account record")?;
        if flags & !3 != 0 {
            return Err("unknown account flags");
        }
        let mut nonce = 0u64;
        let mut shift = 0;
        loop {
            let (&x, r) = rest.split_first().ok_or("truncated nonce")?;
            rest = r;
            if shift == 63 && x > 1 {
                return Err("nonce overflows 64 bits");
            }
            nonce |= ((x & 0x7f) as u64) << shift;
            if x & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err("nonce overflows 64 bits");
            }
        }
        let (&blen, r) = rest.split_first().ok_or("truncated balance")?;
        let blen = blen as usize;
        if blen > 32 || r.len() < blen {
            return Err("bad balance length");
        }
        let balance = U256::from_be_slice(&r[..blen]);
        rest = &r[blen..];
        let mut take32 = |present: bool, default: B256| -> Result<B256, &'static str> {
            if !present {
                return Ok(default);
            }
            if rest.len() < 32 {
                return Err("truncated hash");
            }
            let h = B256::from_slice(&rest[..32]);
            rest = &rest[32..];
            Ok(h)
        };
        let code_hash = take32(flags & 1 != 0, KECCAK_EMPTY)?;
        let storage_root = take32(flags & 2 != 0, EMPTY_ROOT_HASH)?;
        if !rest.is_empty() {
            return Err("trailing bytes in account record");
        }
        Ok(StoredAccount { info: AccountInfo { nonce, balance, code_hash }, storage_root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (nonce, bal, code, root) in [
            (0u64, U256::ZERO, KECCAK_EMPTY, EMPTY_ROOT_HASH),
            (u64::MAX, U256::MAX, B256::repeat_byte(1), B256::repeat_byte(2)),
            (300, U256::from(10u64).pow(U256::from(21u64)), KECCAK_EMPTY, B256::repeat_byte(9)),
        ] {
            let a = StoredAccount { info: AccountInfo { nonce, balance: bal, code_hash: code }, storage_root: root };
            let b = a.encode();
            assert_eq!(StoredAccount::decode(&b).unwrap(), a);
            for cut in 0..b.len() {
                assert!(StoredAccount::decode(&b[..cut]).is_err());
            }
        }
        assert_eq!(StoredAccount::decode(&[0, 0, 0]).unwrap().info.nonce, 0);
        assert!(StoredAccount::decode(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]).is_err());
    }
}
