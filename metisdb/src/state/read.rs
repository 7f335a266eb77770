//! Reading state from a snapshot (any retained version) or from a write
//! transaction (its own changes included), through one trait.

use super::account::StoredAccount;
use super::{hash_slot, keccak256, storage_key, Address, B256, U256};
use crate::btree::{Cursor, PageSource};
use crate::error::{Error, Result};
use crate::snapshot::{Range, Snapshot};
use crate::tables::{self, Table};
use crate::txn::WriteTxn;

/// A forward iterator over a table's entries.
pub trait TableIter<'a> {
    /// The next entry, or `None` at the end.
    fn next_entry(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>>;
}

impl<'a> TableIter<'a> for Range<'a> {
    fn next_entry(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>> {
        self.next()
    }
}

impl<'a, S: PageSource + ?Sized> TableIter<'a> for Cursor<'a, S> {
    fn next_entry(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>> {
        self.next()
    }
}

/// Point reads and ordered iteration over the tables of one version.
pub trait ReadTables: Sync {
    /// The iterator type.
    type Iter<'a>: TableIter<'a>
    where
        Self: 'a;
    /// Value of `key` in `table`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>>;
    /// Entries of `table` from the first key `>= start`.
    fn iter_from(&self, table: Table, start: &[u8]) -> Result<Self::Iter<'_>>;
}

impl ReadTables for Snapshot {
    type Iter<'a> = Range<'a>;
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>> {
        Snapshot::get(self, table, key)
    }
    fn iter_from(&self, table: Table, start: &[u8]) -> Result<Range<'_>> {
        self.range(table, start)
    }
}

impl ReadTables for WriteTxn<'_> {
    type Iter<'a>
        = Cursor<'a, Self>
    where
        Self: 'a;
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>> {
        WriteTxn::get(self, table, key)
    }
    fn iter_from(&self, table: Table, start: &[u8]) -> Result<Cursor<'_, Self>> {
        self.range(table, start)
    }
}

pub(crate) fn bad(table: Table, key: &[u8], reason: &str) -> Error {
    Error::BadRecord { table: table.name(), key: format!("0x{}", hex_str(key)), reason: reason.into() }
}

pub(crate) fn hex_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Ethereum state reads over any [`ReadTables`].
pub trait StateRead: ReadTables {
    /// The account record of keccak(address).
    fn account_by_hash(&self, address_hash: &B256) -> Result<Option<StoredAccount>> {
        match self.get(tables::ACCOUNTS, address_hash.as_slice())? {
            None => Ok(None),
            Some(b) => {
                StoredAccount::decode(b).map(Some).map_err(|r| bad(tables::ACCOUNTS, address_hash.as_slice(), r))
            }
        }
    }

    /// The account at `address`.
    fn account(&self, address: &Address) -> Result<Option<StoredAccount>> {
        self.account_by_hash(&keccak256(address))
    }

    /// A storage slot (zero when unset).
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256> {
        self.storage_by_hash(&keccak256(address), &hash_slot(slot))
    }

    /// A storage slot by hashed keys (zero when unset).
    fn storage_by_hash(&self, address_hash: &B256, slot_hash: &B256) -> Result<U256> {
        let k = storage_key(address_hash, slot_hash);
        match self.get(tables::STORAGE, &k)? {
            None => Ok(U256::ZERO),
            Some(b) if b.len() <= 32 && !b.is_empty() => Ok(U256::from_be_slice(b)),
            Some(_) => Err(bad(tables::STORAGE, &k, "slot value is empty or longer than 32 bytes")),
        }
    }

    /// Bytecode by code hash.
    fn code(&self, code_hash: &B256) -> Result<Option<&[u8]>> {
        self.get(tables::CODE, code_hash.as_slice())
    }

    /// The address whose keccak is `hash`, when its preimage was recorded.
    fn address_preimage(&self, hash: &B256) -> Result<Option<Address>> {
        Ok(self.get(tables::PREIMAGES, hash.as_slice())?.filter(|b| b.len() == 20).map(Address::from_slice))
    }

    /// The slot whose keccak is `hash`, when its preimage was recorded.
    fn slot_preimage(&self, hash: &B256) -> Result<Option<U256>> {
        Ok(self.get(tables::PREIMAGES, hash.as_slice())?.filter(|b| b.len() == 32).map(U256::from_be_slice))
    }
}

impl<T: ReadTables + ?Sized> StateRead for T {}
