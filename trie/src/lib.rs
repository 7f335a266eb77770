//! Ethereum Merkle Patricia Trie: pure, no I/O.
//!
//! The storage engine keeps each trie as flat tables (leaves by hashed key,
//! stored branch records by nibble path) and reaches this crate through two
//! traits, [`LeafCursor`] and [`BranchStore`]. This crate computes:
//!
//! - roots from scratch with [`RootBuilder`] / [`full_root`],
//! - roots after a set of changes with [`update_root`], rehashing only the
//!   changed paths and returning the record upserts and removals that keep
//!   the branch table in step (or per subtrie, in parallel, with
//!   [`update_subtrie`] and [`combine_subtries`]),
//! - EIP-1186 proofs with [`prove`], checked by [`verify_proof`].
//!
//! Modules, one job each: [`nibbles`] (paths), [`hex_prefix`] (compact path
//! encoding), [`node`] (node RLP and references), [`account`] (the account
//! leaf value), [`builder`] (root builder), [`record`] (stored branch
//! records and which branches are stored), [`incremental`] (updates over
//! stored records), [`proof`] (proof generation), [`verify`] (proof
//! verification), [`mem`] (in-memory stores).
//!
//! ```
//! use metis_trie::mem::{MemBranches, MemLeaves};
//! use metis_trie::{full_root, keccak256, prove, update_root, verify_proof, PrefixSet};
//!
//! let mut leaves: MemLeaves = (0u8..50).map(|i| (keccak256([i]), vec![i + 1])).collect();
//! let mut branches = MemBranches::default();
//!
//! // Commit: change one leaf, delete another, rehash only their paths.
//! let (a, b) = (keccak256([7u8]), keccak256([9u8]));
//! leaves.insert(a, vec![0x42]);
//! leaves.remove(&b);
//! let update = update_root(&PrefixSet::from_keys([a, b]), &mut leaves.cursor(), &mut branches)?;
//! branches.apply(&update);
//! assert_eq!(update.root, full_root(&mut leaves.cursor())?.root);
//!
//! let proof = prove(&a, &mut leaves.cursor(), &mut branches)?;
//! verify_proof(update.root, &a, Some(&[0x42]), &proof)?;
//! verify_proof(update.root, &b, None, &prove(&b, &mut leaves.cursor(), &mut branches)?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
mod bottom;
pub mod builder;
pub mod hex_prefix;
pub mod incremental;
pub mod mem;
pub mod nibbles;
pub mod node;
pub mod proof;
pub mod record;
pub mod verify;

pub use account::{storage_leaf_value, TrieAccount};
pub use alloy_primitives::{keccak256, Bytes, B256, U256};
pub use builder::{
    leaf_depth, leaf_node_into, BuildError, BuildOutput, LeafHash, RootBuilder, SubtrieTop, UnhashedRoot,
};
pub use incremental::{
    combine_subtries, full_root, prefixes_at_depth, update_root, update_subtrie, BranchStore, FullRoot, LeafCursor,
    PrefixSet, RootUpdate, SubtrieUpdate, TrieError,
};
pub use nibbles::Nibbles;
pub use node::NodeRef;
pub use proof::{prove, prove_many};
pub use record::{stores_record, BranchRecord, ChildKind, STORED_BRANCH_CHILDREN};
pub use verify::{verify_proof, ProofError};

/// Root hash of the empty trie: `keccak256(rlp(""))`.
pub const EMPTY_ROOT_HASH: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// Hash of empty code: `keccak256([])`.
pub const KECCAK_EMPTY: B256 =
    alloy_primitives::b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
