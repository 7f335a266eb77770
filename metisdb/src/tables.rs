//! The named tables of a database. Each has a fixed id (its slot in the
//! meta page) and says whether its history is kept: reads of older
//! versions see the old values of versioned tables; unversioned tables
//! (content-addressed code, append-only block data) always read the newest.

/// A table id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table(pub u8);

/// Static description of a table.
#[derive(Clone, Copy, Debug)]
pub struct TableInfo {
    /// Slot in the meta page.
    pub table: Table,
    /// Name shown by tools.
    pub name: &'static str,
    /// Whether old versions keep the old values.
    pub versioned: bool,
}

/// Accounts by keccak(address).
pub const ACCOUNTS: Table = Table(1);
/// Storage slots by keccak(address) ++ keccak(slot).
pub const STORAGE: Table = Table(2);
/// Contract bytecode by code hash.
pub const CODE: Table = Table(3);
/// Database-wide settings and chain configuration.
pub const METADATA: Table = Table(4);
/// Stored branch nodes of the account trie, by nibble path.
pub const ACCOUNT_TRIE: Table = Table(5);
/// Stored branch nodes of storage tries, by keccak(address) ++ nibble path.
pub const STORAGE_TRIE: Table = Table(6);
/// Preimages: keccak(address) -> address, keccak(slot) -> slot.
pub const PREIMAGES: Table = Table(7);
/// Block headers and bodies by number.
pub const BLOCKS: Table = Table(8);
/// Block number by block hash.
pub const BLOCK_NUMBERS: Table = Table(9);
/// Transaction location by transaction hash.
pub const TX_LOOKUP: Table = Table(10);
/// Receipts by block number.
pub const RECEIPTS: Table = Table(11);
/// Internal: one record per retained version.
pub const VERSIONS: Table = Table(31);

/// Every table, in id order.
pub const ALL: &[TableInfo] = &[
    TableInfo { table: ACCOUNTS, name: "accounts", versioned: true },
    TableInfo { table: STORAGE, name: "storage", versioned: true },
    TableInfo { table: CODE, name: "code", versioned: false },
    TableInfo { table: METADATA, name: "metadata", versioned: false },
    TableInfo { table: ACCOUNT_TRIE, name: "account_trie", versioned: true },
    TableInfo { table: STORAGE_TRIE, name: "storage_trie", versioned: true },
    TableInfo { table: PREIMAGES, name: "preimages", versioned: false },
    TableInfo { table: BLOCKS, name: "blocks", versioned: false },
    TableInfo { table: BLOCK_NUMBERS, name: "block_numbers", versioned: false },
    TableInfo { table: TX_LOOKUP, name: "tx_lookup", versioned: false },
    TableInfo { table: RECEIPTS, name: "receipts", versioned: false },
    TableInfo { table: VERSIONS, name: "versions", versioned: false },
];

/// Description of a table id, if it is defined.
pub fn info(t: Table) -> Option<&'static TableInfo> {
    ALL.iter().find(|i| i.table == t)
}

impl Table {
    /// Slot index in the meta page.
    pub fn index(self) -> usize {
        self.0 as usize
    }
    /// Name of the table (`table<N>` if undefined).
    pub fn name(self) -> &'static str {
        info(self).map_or("unknown", |i| i.name)
    }
    /// Whether old versions keep old values.
    pub fn versioned(self) -> bool {
        info(self).is_some_and(|i| i.versioned)
    }
}
