//! Multi-version memory (Block-STM) and the parent-state interface it reads
//! through. Free of revm types: it is meant to become the storage engine's
//! pending layer on top of a parent snapshot.

mod in_memory;
mod memory;
mod state_view;
mod types;

pub use in_memory::{InMemoryAccount, InMemoryState, MissingBlockHash};
pub use memory::{MvMemory, ReadError};
pub use state_view::{StateError, StateView};
pub use types::{
    AccountBasic, Incarnation, ReadOrigin, ReadRecord, StateKey, StateValue, TxIndex, Version, WriteOp, EMPTY_CODE_HASH,
};
