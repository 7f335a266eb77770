//! The trie crate's cursor traits over the tables: leaves come from the
//! accounts and storage tables, stored branch records from the trie tables.
//! Record keys are the nibble path one nibble per byte (so byte order is
//! the trie's path order and short paths take few bytes), prefixed with
//! keccak(address) for storage tries.

use super::account::StoredAccount;
use super::read::{bad, ReadTables, TableIter};
use super::B256;
use crate::error::{Error, Result};
use crate::tables::{self, Table};
use alloy_primitives::U256;
use metis_trie::nibbles::Nibbles;
use metis_trie::record::BranchRecord;
use metis_trie::{BranchStore, LeafCursor};

/// Table key of a record at `path` under `prefix`.
pub fn trie_key(prefix: &[u8], path: &Nibbles) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + path.len());
    k.extend_from_slice(prefix);
    k.extend(path.iter());
    k
}

/// Leaves of the account trie: TrieAccount RLP by keccak(address).
pub struct AccountLeaves<'a, R: ReadTables + 'a> {
    reader: &'a R,
    iter: Option<R::Iter<'a>>,
}

impl<'a, R: ReadTables> AccountLeaves<'a, R> {
    /// Leaves read from `reader`.
    pub fn new(reader: &'a R) -> Self {
        AccountLeaves { reader, iter: None }
    }

    fn step(&mut self) -> Result<Option<(B256, Vec<u8>)>> {
        let Some(it) = self.iter.as_mut() else { return Ok(None) };
        match it.next_entry()? {
            None => Ok(None),
            Some((k, v)) => {
                if k.len() != 32 {
                    return Err(bad(tables::ACCOUNTS, k, "account key is not 32 bytes"));
                }
                let a = StoredAccount::decode(v).map_err(|r| bad(tables::ACCOUNTS, k, r))?;
                Ok(Some((B256::from_slice(k), a.trie_account().encode_to_vec())))
            }
        }
    }
}

impl<'a, R: ReadTables> LeafCursor for AccountLeaves<'a, R> {
    type Error = Error;
    fn seek(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>> {
        self.iter = Some(self.reader.iter_from(tables::ACCOUNTS, key.as_slice())?);
        self.step()
    }
    fn next(&mut self) -> Result<Option<(B256, Vec<u8>)>> {
        self.step()
    }
}

/// Leaves of one account's storage trie: RLP of the value by keccak(slot).
pub struct StorageLeaves<'a, R: ReadTables + 'a> {
    reader: &'a R,
    address_hash: B256,
    iter: Option<R::Iter<'a>>,
}

impl<'a, R: ReadTables> StorageLeaves<'a, R> {
    /// Leaves of the storage of keccak(address) = `address_hash`.
    pub fn new(reader: &'a R, address_hash: B256) -> Self {
        StorageLeaves { reader, address_hash, iter: None }
    }

    fn step(&mut self) -> Result<Option<(B256, Vec<u8>)>> {
        let Some(it) = self.iter.as_mut() else { return Ok(None) };
        match it.next_entry()? {
            Some((k, v)) if k.len() == 64 && k[..32] == self.address_hash[..] => {
                if v.is_empty() || v.len() > 32 || v[0] == 0 {
                    return Err(bad(tables::STORAGE, k, "slot value is not a minimal non-zero big-endian integer"));
                }
                let leaf = metis_trie::storage_leaf_value(&U256::from_be_slice(v)).expect("non-zero value");
                Ok(Some((B256::from_slice(&k[32..]), leaf)))
            }
            Some((k, _)) if k.starts_with(self.address_hash.as_slice()) => {
                Err(bad(tables::STORAGE, k, "storage key is not 64 bytes"))
            }
            _ => {
                self.iter = None;
                Ok(None)
            }
        }
    }
}

impl<'a, R: ReadTables> LeafCursor for StorageLeaves<'a, R> {
    type Error = Error;
    fn seek(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>> {
        self.iter = Some(self.reader.iter_from(tables::STORAGE, &super::storage_key(&self.address_hash, key))?);
        self.step()
    }
    fn next(&mut self) -> Result<Option<(B256, Vec<u8>)>> {
        self.step()
    }
}

/// Stored branch records of the account trie (empty prefix) or of one
/// storage trie (prefix keccak(address)).
pub struct TrieBranches<'a, R: ReadTables> {
    reader: &'a R,
    table: Table,
    prefix: Vec<u8>,
}

impl<'a, R: ReadTables> TrieBranches<'a, R> {
    /// Records of the account trie.
    pub fn accounts(reader: &'a R) -> Self {
        TrieBranches { reader, table: tables::ACCOUNT_TRIE, prefix: Vec::new() }
    }

    /// Records of the storage trie of keccak(address) = `address_hash`.
    pub fn storage(reader: &'a R, address_hash: &B256) -> Self {
        TrieBranches { reader, table: tables::STORAGE_TRIE, prefix: address_hash.to_vec() }
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<BranchRecord> {
        BranchRecord::decode(value).map_err(|e| bad(self.table, key, &e.to_string()))
    }
}

impl<R: ReadTables> BranchStore for TrieBranches<'_, R> {
    type Error = Error;
    fn get(&mut self, path: &Nibbles) -> Result<Option<BranchRecord>> {
        let k = trie_key(&self.prefix, path);
        match self.reader.get(self.table, &k)? {
            None => Ok(None),
            Some(v) => self.decode(&k, v).map(Some),
        }
    }
    fn seek(&mut self, path: &Nibbles) -> Result<Option<(Nibbles, BranchRecord)>> {
        let mut it = self.reader.iter_from(self.table, &trie_key(&self.prefix, path))?;
        match it.next_entry()? {
            Some((k, v)) if k.starts_with(&self.prefix) => {
                let p =
                    Nibbles::from_nibbles(&k[self.prefix.len()..]).map_err(|e| bad(self.table, k, &e.to_string()))?;
                Ok(Some((p, self.decode(k, v)?)))
            }
            _ => Ok(None),
        }
    }
}
