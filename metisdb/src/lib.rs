//! MetisDB: an embedded, memory-mapped, copy-on-write, versioned key-value
//! engine built for Ethereum state.
//!
//! - One data file of fixed-size pages, read through a shared memory map.
//! - Copy-on-write B+trees, one per named table, sharing one allocator.
//! - Every commit makes a new version; snapshots read any retained version
//!   without locks while the single writer commits.
//! - Crash safety without a write-ahead log: pages are never overwritten
//!   while a durable meta or a reader can see them, and the meta page is
//!   written (to the older of two slots) only after the data is durable.
//!
//! See docs/ARCHITECTURE.md and docs/file-format.md in the repository.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod alloc;
pub mod btree;
mod db;
mod error;
pub mod history;
pub mod meta;
pub mod metrics;
mod mmap;
pub mod page;
mod page_set;
pub mod pending;
pub mod pool;
mod prefetch;
pub mod readers;
mod scan;
mod snapshot;
pub mod state;
mod stats;
pub mod storage;
pub mod tables;
mod txn;
pub mod verify;

pub use db::{Db, Durability, Options, StorageWrapper, DATA_FILE, DEFAULT_RETENTION, LOCK_FILE};
pub use error::{Error, Result};
pub use history::VersionRecord;
pub use scan::{PagedLookup, Scan};
pub use snapshot::{Range, Snapshot};
pub use stats::{Stats, TableStats};
pub use tables::Table;
pub use txn::{ApartEdits, CommitInfo, SparePages, TableEdit, WriteTxn, MAX_KEY_LEN, MAX_VALUE_LEN};
pub use verify::{TableCheck, VerifyReport};

/// Largest number of pages in a file (16 TiB at 4 KiB pages).
pub const MAX_PAGES: u64 = 1 << 32;
