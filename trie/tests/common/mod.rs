//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub use metis_trie::mem::{MemBranches, MemLeaves};
