//! Ethereum Merkle Patricia Trie: pure, no I/O.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod builder;
pub mod hex_prefix;
pub mod incremental;
pub mod mem;
pub mod nibbles;
pub mod node;
pub mod proof;
pub mod record;
pub mod verify;

pub use account::TrieAccount;
pub use alloy_primitives::{keccak256, Bytes, B256, U256};
pub use builder::{BuildError, BuildOutput, RootBuilder, SubtrieTop};
pub use incremental::{
    combine_subtries, full_root, update_root, update_subtrie, BranchStore, LeafCursor, PrefixSet,
    RootUpdate, TrieError,
};
pub use nibbles::Nibbles;
pub use node::NodeRef;
pub use proof::{prove, prove_many};
pub use record::{BranchRecord, ChildKind};
pub use verify::{verify_proof, ProofError};

/// Root hash of the empty trie: `keccak256(rlp(""))`.
pub const EMPTY_ROOT_HASH: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// Hash of empty code: `keccak256([])`.
pub const KECCAK_EMPTY: B256 =
    alloy_primitives::b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
