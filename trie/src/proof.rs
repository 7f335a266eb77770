//! EIP-1186 proofs from the leaves and stored records.
//!
//! A proof is the RLP of every node on the key's path, root first, for
//! nodes referred to by hash (embedded nodes travel inside their parent).
//! For an absent key the path ends where the key leaves the trie: at a
//! branch without the key's next nibble, at an extension whose path the key
//! does not follow, or at a leaf with a different key.
//!
//! The nodes are produced by the same walk as the incremental root, with the
//! proved keys as the "changed" set: every stored branch on a key's path is
//! expanded from its record, everything beside the path stays a hashed
//! reference, and the bottom of the path is rebuilt from the leaves.

use crate::builder::RootBuilder;
use crate::incremental::{BranchStore, LeafCursor, PrefixSet, TrieError, Walk};
use crate::nibbles::Nibbles;
use alloy_primitives::{Bytes, B256};

/// The proof of `key` (inclusion if present, exclusion otherwise): RLP
/// nodes from the root down. Empty for the empty trie.
pub fn prove<L: LeafCursor, B: BranchStore>(
    key: &B256,
    leaves: &mut L,
    branches: &mut B,
) -> Result<Vec<Bytes>, TrieError> {
    let mut proofs = prove_many(core::slice::from_ref(key), leaves, branches)?;
    Ok(proofs.pop().unwrap_or_default())
}

/// Proofs of several keys of one trie in one walk, in the order of `keys`.
pub fn prove_many<L: LeafCursor, B: BranchStore>(
    keys: &[B256],
    leaves: &mut L,
    branches: &mut B,
) -> Result<Vec<Vec<Bytes>>, TrieError> {
    let targets: Vec<Nibbles> = keys.iter().map(Nibbles::from_b256).collect();
    let on_path = PrefixSet::from_keys(keys.iter().copied());
    let builder = RootBuilder::new().with_proof_targets(targets.iter().cloned());
    let mut walk = Walk::new(&on_path, leaves, branches, builder);
    let root = Nibbles::new();
    let top = walk.find_top(&root)?;
    walk.walk_under(&root, top)?;
    let out = walk.into_builder().finish()?;
    Ok(targets.iter().map(|t| out.proof(t)).collect())
}
