//! revm glue: the per-transaction database over the multi-version memory, the
//! lazy-beneficiary handler and the conversion of state diffs to writes.

mod code_cache;
mod execute;
mod tx_db;
mod write_set;

pub use code_cache::CodeCache;
pub use execute::{execute_system_call, execute_tx, EvmEnv, ExecFailure, TxExecution, TxExecutor};
pub use tx_db::DbError;
