//! Verification of EIP-1186 style proofs against a root hash.
//!
//! The verifier walks the key's nibbles from the root: each proof entry must
//! hash to the reference its parent holds (the root hash for the first),
//! embedded children are followed inside their parent, and the walk must end
//! exactly at the last entry, either at the key's value or at a point that
//! shows the key is absent.

use crate::nibbles::Nibbles;
use crate::node::{Node, NodeDecodeError, NodeRef};
use crate::EMPTY_ROOT_HASH;
use alloy_primitives::{keccak256, Bytes, B256};
use core::fmt;

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// An empty proof, which only proves absence from the empty trie.
    EmptyProofForNonEmptyRoot(B256),
    /// The first node does not hash to the root.
    RootMismatch {
        /// The root the proof was checked against.
        expected: B256,
        /// Hash of the first proof node.
        got: B256,
    },
    /// A node does not hash to the reference its parent holds.
    NodeHashMismatch {
        /// Index of the node in the proof.
        index: usize,
        /// The reference held by the parent.
        expected: B256,
        /// Hash of the node.
        got: B256,
    },
    /// A node is not a valid trie node.
    InvalidNode {
        /// Index of the node in the proof.
        index: usize,
        /// Why it is invalid.
        error: NodeDecodeError,
    },
    /// The proof ends while the key's path continues into a hashed node.
    Truncated {
        /// Number of nodes in the proof.
        len: usize,
    },
    /// Nodes after the one that settles the key.
    TrailingNodes {
        /// Index of the first unneeded node.
        index: usize,
    },
    /// The key is in the trie but a different value was expected.
    ValueMismatch {
        /// The expected value.
        expected: Bytes,
        /// The value in the trie.
        got: Bytes,
    },
    /// The key was expected to be absent but the proof shows a value.
    UnexpectedValue(Bytes),
    /// The key was expected to be present but the proof shows it is absent.
    KeyAbsent,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyProofForNonEmptyRoot(r) => {
                write!(f, "empty proof, but root {r} is not the empty trie root")
            }
            Self::RootMismatch { expected, got } => {
                write!(f, "first proof node hashes to {got}, expected the root {expected}")
            }
            Self::NodeHashMismatch { index, expected, got } => {
                write!(f, "proof node {index} hashes to {got}, but its parent refers to {expected}")
            }
            Self::InvalidNode { index, error } => {
                write!(f, "proof node {index} is invalid: {error}")
            }
            Self::Truncated { len } => {
                write!(f, "proof of {len} nodes ends before the key's path does (node missing)")
            }
            Self::TrailingNodes { index } => {
                write!(f, "proof has unneeded nodes from index {index} on")
            }
            Self::ValueMismatch { expected, got } => {
                write!(f, "proof shows value {got}, expected {expected}")
            }
            Self::UnexpectedValue(v) => write!(f, "key expected absent, proof shows value {v}"),
            Self::KeyAbsent => write!(f, "key expected present, proof shows it is absent"),
        }
    }
}

impl std::error::Error for ProofError {}

/// Where the walk through one proof node ends.
enum Step {
    /// The path continues in the node with this hash (the next entry).
    Next(B256),
    /// The key's value.
    Found(Vec<u8>),
    /// The key is not in the trie.
    Absent,
}

/// Walks `node` (and its embedded descendants) along `key` from `*pos`.
fn walk_node(node: Node, key: &Nibbles, pos: &mut usize, index: usize) -> Result<Step, ProofError> {
    let invalid = |error| ProofError::InvalidNode { index, error };
    let mut node = node;
    loop {
        let child: NodeRef = match node {
            Node::Leaf { path, value } => {
                let rest = key.slice(*pos, key.len());
                return Ok(if rest == path { Step::Found(value) } else { Step::Absent });
            }
            Node::Extension { path, child } => {
                if !key.slice(*pos, key.len()).starts_with(&path) {
                    return Ok(Step::Absent);
                }
                *pos += path.len();
                child
            }
            Node::Branch { children, value } => {
                let Some(nibble) = key.get(*pos) else {
                    return Ok(value.map_or(Step::Absent, Step::Found));
                };
                let Some(child) = children[usize::from(nibble)] else {
                    return Ok(Step::Absent);
                };
                *pos += 1;
                child
            }
        };
        match child.as_hash() {
            Some(h) => return Ok(Step::Next(h)),
            None => node = Node::decode(child.as_slice()).map_err(invalid)?,
        }
    }
}

/// Verifies that `proof` shows `key` has `expected_value` (`None`: absent) in
/// the trie with root `root`. The value is the leaf's RLP value (e.g. an
/// account's RLP).
pub fn verify_proof(root: B256, key: &B256, expected_value: Option<&[u8]>, proof: &[Bytes]) -> Result<(), ProofError> {
    verify_proof_nibbles(root, &Nibbles::from_b256(key), expected_value, proof)
}

/// [`verify_proof`] for a key given as nibbles (tries with raw keys).
pub fn verify_proof_nibbles(
    root: B256,
    key: &Nibbles,
    expected_value: Option<&[u8]>,
    proof: &[Bytes],
) -> Result<(), ProofError> {
    let outcome = if proof.is_empty() {
        if root != EMPTY_ROOT_HASH {
            return Err(ProofError::EmptyProofForNonEmptyRoot(root));
        }
        None
    } else {
        let mut expected = root;
        let mut pos = 0;
        let mut found = None;
        for (index, node_rlp) in proof.iter().enumerate() {
            let got = keccak256(node_rlp);
            if got != expected {
                return Err(if index == 0 {
                    ProofError::RootMismatch { expected, got }
                } else {
                    ProofError::NodeHashMismatch { index, expected, got }
                });
            }
            let node = Node::decode(node_rlp).map_err(|error| ProofError::InvalidNode { index, error })?;
            match walk_node(node, key, &mut pos, index)? {
                Step::Next(h) => expected = h,
                Step::Found(v) => {
                    found = Some(Some(v));
                    if index + 1 < proof.len() {
                        return Err(ProofError::TrailingNodes { index: index + 1 });
                    }
                }
                Step::Absent => {
                    found = Some(None);
                    if index + 1 < proof.len() {
                        return Err(ProofError::TrailingNodes { index: index + 1 });
                    }
                }
            }
        }
        match found {
            Some(v) => v,
            None => return Err(ProofError::Truncated { len: proof.len() }),
        }
    };
    match (outcome, expected_value) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(ProofError::KeyAbsent),
        (Some(got), None) => Err(ProofError::UnexpectedValue(got.into())),
        (Some(got), Some(want)) if got == want => Ok(()),
        (Some(got), Some(want)) => {
            Err(ProofError::ValueMismatch { expected: Bytes::copy_from_slice(want), got: got.into() })
        }
    }
}
