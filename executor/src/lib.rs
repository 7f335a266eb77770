//! Block-STM parallel executor over revm 43.
//!
//! - [`mv_memory`]: the multi-version memory and the [`StateView`] of the
//!   parent state (free of revm types).
//! - [`scheduler`]: the collaborative Block-STM scheduler.
//! - [`block`]: block execution (parallel or sequential reference), block
//!   building for the dev node; [`call`]: single calls for RPC.
//! - [`statetest`], [`replay`]: runners over ethereum/tests state tests and
//!   mainnet block fixtures.

pub mod block;
pub mod call;
mod error;
pub mod evm;
mod hints;
pub mod mv_memory;
pub mod receipts;
pub mod replay;
pub mod scheduler;
pub mod spec;
mod state_root;
pub mod statetest;
pub mod synthetic;
mod trie_root;

pub use block::{
    build_block, execute_block, BlockInput, BlockOutput, BuiltBlock, ExecStats, ExecutionMode, Withdrawal,
};
pub use call::{call, DEFAULT_CALL_GAS_CAP};
pub use error::ExecutorError;
pub use evm::EvmEnv;
pub use mv_memory::{InMemoryState, StateError, StateView};
/// revm, re-exported so callers build `TxEnv`, `BlockEnv` and `CfgEnv` with
/// the exact version the executor runs.
pub use revm;
