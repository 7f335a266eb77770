//! The pending layer: a block in progress as a multi-version layer over the
//! snapshot of its parent.
//!
//! While a block executes, every transaction reads through [`MvMemory`] to
//! the parent version (any [`StateView`]: a [`crate::Snapshot`], or an
//! [`InMemoryState`] in tests) and writes its own per-(transaction,
//! incarnation) entries into it. This layer is the multi-version memory of
//! Block-STM: there is no copy of state into a separate executor cache. When
//! the block is done, [`MvMemory::final_writes`] gives the last write of
//! every location and [`fold`] applies them to a [`crate::state::StateWriter`],
//! whose commit produces the next version and its state root.
//!
//! Free of EVM types: keys are accounts, storage slots, storage wipes and
//! code; values are plain account fields, words and bytes.

mod changes;
mod fold;
mod in_memory;
mod memory;
mod snapshot;
mod types;
mod view;

pub use fold::{fold, FoldStats};
pub use in_memory::{InMemoryAccount, InMemoryState, MissingBlockHash};
pub use memory::{ChangeMark, MvMemory, ReadError};
pub use snapshot::{snapshot_block_hash, WithBlockHashes};
pub use types::{
    AccountBasic, AdditionChain, Incarnation, ReadOrigin, ReadRecord, StateKey, StateValue, TxIndex, Version, WriteOp,
    EMPTY_CODE_HASH,
};
pub use view::{StateError, StateView};
