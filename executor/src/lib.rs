//! Block-STM executor
