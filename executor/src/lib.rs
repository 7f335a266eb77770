//! Block-STM parallel executor over revm 43.
//!
//! - [`pending`] (re-exported from `metisdb::pending`): the multi-version
//!   memory over the parent snapshot and the [`StateView`] of the parent.
//! - [`scheduler`]: the collaborative Block-STM scheduler.
//! - [`block`]: block execution (parallel or sequential reference), block
//!   building for the dev node; [`call`](mod@call): single calls for RPC.
//! - [`statetest`], [`replay`]: runners over ethereum/tests state tests and
//!   mainnet block fixtures.

pub mod block;
pub mod call;
mod chains;
mod error;
pub mod evm;
mod hints;
pub mod receipts;
pub mod replay;
pub mod scheduler;
pub mod spec;
pub mod statetest;
pub mod synthetic;

pub use block::{
    build_block, choose_workers, execute_block, BlockInput, BlockOutput, BuiltBlock, ExecStats, ExecutionMode,
    Withdrawal,
};
pub use call::{call, DEFAULT_CALL_GAS_CAP};
pub use error::ExecutorError;
pub use evm::EvmEnv;
pub use metisdb::pending;
pub use metisdb::pending::{InMemoryState, StateError, StateView};
/// revm, re-exported so callers build `TxEnv`, `BlockEnv` and `CfgEnv` with
/// the exact version the executor runs.
pub use revm;
