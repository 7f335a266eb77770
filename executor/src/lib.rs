//! Block-STM parallel executor over revm.

pub mod evm;
pub mod mv_memory;
pub mod scheduler;
