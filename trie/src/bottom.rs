//! The node of an unstored subtrie, built in one pass from its leaves.
//!
//! An incremental update rebuilds each changed child of a visited branch
//! that has no record (a bottom branch: about sixteen leaves in a state of
//! a million accounts) from the leaves under it. Fed leaf by leaf, the
//! generic [`crate::builder::RootBuilder`] spends more on its bookkeeping
//! (items, frames, deferred children) than on hashing such a subtrie.
//! Here the subtrie's leaves come as one sorted slice: the depth each leaf
//! hangs at follows from its neighbours, so every leaf node is encoded and
//! hashed in one batch, and the branches are assembled by one recursion
//! over nibble groups. The result is the topmost branch node, unhashed, for
//! the builder to hash with its siblings.

use crate::builder::{common_nibbles, leaf_depth, leaf_node_into, BuildError};
use crate::nibbles::{packed_nibble, Nibbles};
use crate::node::{encode_branch, encode_extension, NodeRef, MAX_INLINE_NODE_LEN};
use crate::record::STORED_BRANCH_CHILDREN;
use alloy_primitives::B256;

/// Most leaves taken at once: a bottom branch holds a few dozen; a larger
/// range goes through the builder, which holds no more than one path.
pub(crate) const MAX_BOTTOM_LEAVES: usize = 256;

/// The topmost branch node of a subtrie of at least two leaves.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BottomBranch {
    /// Path of the branch node: the leaves' common prefix.
    pub path: Nibbles,
    /// Its RLP encoding.
    pub rlp: Vec<u8>,
    /// Branch nodes built, the topmost included.
    pub branch_nodes: usize,
}

/// Buffers reused between subtries.
#[derive(Debug, Default)]
pub(crate) struct BottomScratch {
    /// The leaf nodes, one after the other.
    nodes: Vec<u8>,
    /// End of each leaf's node in `nodes`.
    ends: Vec<usize>,
    leaf: Vec<u8>,
}

/// The topmost branch of the trie of `leaves` (at least two), or `None`
/// when one of its branches would have a stored record under the storage
/// policy ([`STORED_BRANCH_CHILDREN`]): the caller then feeds the leaves to
/// a builder, which produces the record. Keys out of order and empty values
/// are the builder's errors.
pub(crate) fn bottom_branch(
    leaves: &[(B256, Vec<u8>)],
    scratch: &mut BottomScratch,
) -> Result<Option<BottomBranch>, BuildError> {
    assert!(leaves.len() >= 2, "a bottom branch needs two leaves, got {}", leaves.len());
    if let Some(w) = leaves.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(BuildError::OutOfOrder {
            previous: Nibbles::from_b256(&w[0].0),
            next: Nibbles::from_b256(&w[1].0),
        });
    }
    if let Some((key, _)) = leaves.iter().find(|(_, value)| value.is_empty()) {
        return Err(BuildError::EmptyValue(Nibbles::from_b256(key)));
    }
    let BottomScratch { nodes, ends, leaf } = scratch;
    nodes.clear();
    ends.clear();
    for (i, (key, value)) in leaves.iter().enumerate() {
        let (prev, next) = (i.checked_sub(1).map(|p| &leaves[p].0), leaves.get(i + 1).map(|(k, _)| k));
        let depth =
            leaf_depth(prev, key, next).expect("two or more distinct keys: every leaf has a distinct neighbour");
        leaf_node_into(leaf, key, depth, value);
        nodes.extend_from_slice(leaf);
        ends.push(nodes.len());
    }
    let node = |i: usize| &nodes[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
    let refs = node_refs((0..leaves.len()).map(node));
    let depth = common_nibbles(&leaves[0].0, &leaves[leaves.len() - 1].0);
    let mut branch_nodes = 0;
    let Some(rlp) = branch_rlp(leaves, &refs, depth, &mut branch_nodes) else { return Ok(None) };
    Ok(Some(BottomBranch { path: Nibbles::from_b256(&leaves[0].0).prefix(depth), rlp, branch_nodes }))
}

/// The branch node at `depth` over `leaves` (which share `depth` nibbles
/// and part at the next), `refs` their leaf node references. The nodes
/// below it that are longer than a hash (branches, then the extensions
/// above them) are hashed in batches, like the leaves.
fn branch_rlp(leaves: &[(B256, Vec<u8>)], refs: &[NodeRef], depth: usize, built: &mut usize) -> Option<Vec<u8>> {
    let mut children: [Option<NodeRef>; 16] = [None; 16];
    // Child branches: (nibble, first leaf, depth of the branch, its RLP).
    let mut branches: Vec<(u8, usize, usize, Vec<u8>)> = Vec::new();
    let mut start = 0;
    while start < leaves.len() {
        let nibble = packed_nibble(leaves[start].0.as_slice(), depth);
        let end = start
            + leaves[start..].iter().take_while(|(key, _)| packed_nibble(key.as_slice(), depth) == nibble).count();
        if end - start == 1 {
            children[usize::from(nibble)] = Some(refs[start]);
        } else {
            let below = common_nibbles(&leaves[start].0, &leaves[end - 1].0);
            let rlp = branch_rlp(&leaves[start..end], &refs[start..end], below, built)?;
            branches.push((nibble, start, below, rlp));
        }
        start = end;
    }
    if branches.len() >= STORED_BRANCH_CHILDREN as usize {
        return None;
    }
    let branch_refs = node_refs(branches.iter().map(|(_, _, _, rlp)| rlp.as_slice()));
    // A child branch deeper than the next nibble hangs below an extension.
    let mut extensions: Vec<(u8, Vec<u8>)> = Vec::new();
    for ((nibble, first, below, _), branch) in branches.iter().zip(branch_refs) {
        if *below == depth + 1 {
            children[usize::from(*nibble)] = Some(branch);
        } else {
            let path = Nibbles::from_b256(&leaves[*first].0).slice(depth + 1, *below);
            extensions.push((*nibble, encode_extension(&path, &branch)));
        }
    }
    let extension_refs = node_refs(extensions.iter().map(|(_, rlp)| rlp.as_slice()));
    for ((nibble, _), extension) in extensions.iter().zip(extension_refs) {
        children[usize::from(*nibble)] = Some(extension);
    }
    *built += 1;
    Some(encode_branch(&children, None))
}

/// The references of `nodes`, those longer than a hash hashed in one batch.
fn node_refs<'a>(nodes: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<NodeRef> {
    let long: Vec<&[u8]> = nodes.clone().filter(|rlp| rlp.len() > MAX_INLINE_NODE_LEN).collect();
    let mut hashes = metis_keccak::keccak256_all(&long).into_iter();
    nodes
        .map(|rlp| match NodeRef::inline(rlp) {
            Some(inline) => inline,
            None => NodeRef::from_hash(hashes.next().expect("one hash per long node")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{RootBuilder, SubtrieTop};
    use alloy_primitives::keccak256;

    /// The top node the generic builder makes of the same leaves.
    fn reference(leaves: &[(B256, Vec<u8>)]) -> (SubtrieTop, usize) {
        let mut builder = RootBuilder::new().with_records(true);
        for (key, value) in leaves {
            builder.add_leaf(Nibbles::from_b256(key), value).unwrap();
        }
        let out = builder.finish().unwrap();
        (out.top, out.records.len())
    }

    fn check(leaves: &[(B256, Vec<u8>)]) {
        let mut scratch = BottomScratch::default();
        let (top, records) = reference(leaves);
        match bottom_branch(leaves, &mut scratch).unwrap() {
            Some(branch) => {
                assert_eq!(records, 0, "a subtrie with stored branches must be left to the builder");
                let SubtrieTop::Branch { path, node_ref, stored: false } = top else {
                    panic!("the builder made {top:?}")
                };
                assert_eq!(branch.path, path);
                assert_eq!(NodeRef::from_rlp(&branch.rlp), node_ref);
            }
            None => assert!(records > 0, "fell back although no branch is stored"),
        }
    }

    fn key(seed: u64) -> B256 {
        keccak256(seed.to_be_bytes())
    }

    /// Keys under one prefix: `count` random ones with the first `shared`
    /// nibbles of `key(prefix)`, every third with a neighbour that differs
    /// from it in one nibble past the 40th.
    fn subtrie(prefix: u64, shared: usize, count: u64, value_len: usize) -> Vec<(B256, Vec<u8>)> {
        let base = key(prefix);
        let mut keys: Vec<B256> = (0..count)
            .flat_map(|i| {
                let mut k = key(prefix * 1_000 + i);
                for n in 0..shared {
                    let nibble = packed_nibble(base.as_slice(), n);
                    k.0[n / 2] =
                        if n % 2 == 0 { (k.0[n / 2] & 0x0f) | nibble << 4 } else { (k.0[n / 2] & 0xf0) | nibble };
                }
                // Every third key has a close neighbour (a sub-branch or an
                // extension below the bottom branch).
                if i % 3 == 0 {
                    let mut close = k;
                    close.0[20 + (i as usize % 12)] ^= 0x10;
                    return vec![k, close];
                }
                vec![k]
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().enumerate().map(|(i, k)| (k, vec![0x80 + (i % 50) as u8; value_len])).collect()
    }

    #[test]
    fn matches_the_builder_on_bottom_branches() {
        for seed in 0..200 {
            for (shared, count) in [(5, 2), (5, 3), (5, 16), (4, 40), (6, 9), (0, 30), (60, 5)] {
                // Long values (hashed leaf nodes) and one-byte values (inline
                // leaf nodes deep in the trie).
                for value_len in [1, 70] {
                    let leaves = subtrie(seed, shared, count, value_len);
                    if leaves.len() >= 2 {
                        check(&leaves);
                    }
                }
            }
        }
    }

    #[test]
    fn a_branch_the_policy_stores_falls_back_to_the_builder() {
        // Sixteen pairs, one under each nibble: the branch has sixteen
        // branch children and is stored.
        let mut leaves: Vec<(B256, Vec<u8>)> = Vec::new();
        for nibble in 0u8..16 {
            for last in [1u8, 2] {
                let mut k = B256::ZERO;
                k.0[0] = nibble << 4;
                k.0[31] = last;
                leaves.push((k, vec![0x42; 40]));
            }
        }
        let mut scratch = BottomScratch::default();
        assert_eq!(bottom_branch(&leaves, &mut scratch).unwrap(), None);
        check(&leaves);
        // Seven branch children: built here.
        let seven: Vec<_> = leaves.iter().filter(|(k, _)| k.0[0] >> 4 < 7 || k.0[31] == 1).cloned().collect();
        assert!(bottom_branch(&seven, &mut scratch).unwrap().is_some());
        check(&seven);
    }

    #[test]
    fn keys_out_of_order_and_empty_values_are_errors() {
        let mut scratch = BottomScratch::default();
        let leaves = subtrie(7, 5, 16, 40);
        let mut swapped = leaves.clone();
        swapped.swap(3, 4);
        assert!(matches!(bottom_branch(&swapped, &mut scratch), Err(BuildError::OutOfOrder { .. })));
        let mut repeated = leaves.clone();
        repeated[4].0 = repeated[3].0;
        assert!(matches!(bottom_branch(&repeated, &mut scratch), Err(BuildError::OutOfOrder { .. })));
        let mut empty = leaves;
        empty[5].1.clear();
        assert!(matches!(bottom_branch(&empty, &mut scratch), Err(BuildError::EmptyValue(_))));
    }
}
