//! Stored branch records: what the branch store keeps for one branch node.
//!
//! # Which branch nodes are stored
//!
//! A branch node is stored if and only if one of its children is a stored
//! branch, or at least [`STORED_BRANCH_CHILDREN`] (8) of its 16 children are
//! branch nodes (directly or behind an extension node): [`stores_record`].
//! So the stored branches form the top of the trie, where it is full, and a
//! branch that is not stored has nothing stored below it.
//!
//! Why: with uniformly distributed hashed keys the trie is full down to
//! some depth and sparse below it. A branch whose children are mostly
//! leaves (below the full part) holds a few dozen leaves at most, adjacent
//! in the leaf table, and one seek and a few `next` calls bring them back.
//! Storing only the full part leaves one record per ~150 leaves at 1M
//! keys (crate README): a commit of random changes rewrites a record per
//! change at the bottom of the stored part instead of one per level of the
//! sparse part, so far fewer record pages and change-set bytes. The price
//! is re-reading and rehashing the leaves under the changed unstored
//! branch, which sit next to the changed leaf in the leaf table.
//!
//! Branch nodes with a value (possible only when keys have different
//! lengths, never in the hashed state tries) are never stored.
//!
//! # What a record holds
//!
//! Everything needed to produce the branch node's RLP without reading
//! anything below it: the reference (hash, or embedded RLP under 32 bytes)
//! of every child, exactly as it appears in the branch node. Two more masks
//! say what kind of node each child is, which the incremental update needs:
//! `branch_mask` (the child is a branch, possibly behind an extension; its
//! own record, if any, is found by seeking the child path) and
//! `stored_mask` (that child branch is stored). A child with neither bit is
//! a leaf.
//!
//! # Byte format (version 1)
//!
//! | offset | size | content |
//! | --- | --- | --- |
//! | 0 | 1 | format version, `0x01` |
//! | 1 | 2 | `state_mask`, big-endian: bit `n` set iff child `n` exists |
//! | 3 | 2 | `branch_mask`, big-endian: subset of `state_mask` |
//! | 5 | 2 | `stored_mask`, big-endian: subset of `branch_mask` |
//! | 7 | … | one entry per set bit of `state_mask`, ascending nibble: a length byte `L` then `L` bytes; `L = 32` is a child hash, `1 <= L <= 31` is the child's embedded RLP node |
//!
//! A valid record has at least two children, masks the policy stores,
//! embedded children that decode as trie nodes of exactly `L` bytes, and no
//! trailing bytes. Records are at most 7 + 16 × 33 = 535 bytes.

use crate::node::{encode_branch, Node, NodeRef, MAX_INLINE_NODE_LEN};
use alloy_primitives::B256;
use core::fmt;

/// A branch with at least this many branch children is stored.
pub const STORED_BRANCH_CHILDREN: u32 = 8;

/// The storage policy (this module's docs): a branch node without a value is
/// stored iff one of its children is a stored branch, or at least
/// [`STORED_BRANCH_CHILDREN`] of its children are branches. So a branch
/// that is not stored has nothing stored below it, and the topmost branch
/// under a path is stored whenever any branch under it is.
pub fn stores_record(branch_mask: u16, stored_mask: u16) -> bool {
    stored_mask != 0 || branch_mask.count_ones() >= STORED_BRANCH_CHILDREN
}

/// Current record format version (first byte).
pub const RECORD_VERSION: u8 = 1;
/// Size of the fixed header (version and three masks).
const HEADER_LEN: usize = 7;
/// Largest possible encoded record.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + 16 * 33;

/// What kind of node occupies a branch slot, as far as storage cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// A leaf node.
    Leaf,
    /// A branch node, possibly behind an extension node.
    Branch {
        /// Whether that branch node has a stored record.
        stored: bool,
    },
}

/// Why a record is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Input ended before the record did.
    Truncated,
    /// Unknown format version byte.
    UnknownVersion(u8),
    /// Fewer than two children.
    TooFewChildren(u32),
    /// `branch_mask` not within `state_mask`, or `stored_mask` not within
    /// `branch_mask`.
    MaskNotSubset,
    /// Masks of a branch the storage policy does not store ([`stores_record`]).
    NotStored,
    /// A child entry length other than 1..=32.
    InvalidRefLength(u8),
    /// An embedded child that is not a trie node of the given length.
    InvalidInlineNode,
    /// The number of child references does not match `state_mask`.
    ChildCountMismatch,
    /// Bytes after the last child entry.
    TrailingBytes,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "branch record is truncated"),
            Self::UnknownVersion(v) => write!(f, "unknown branch record version {v}"),
            Self::TooFewChildren(n) => {
                write!(f, "branch record has {n} children, needs at least 2")
            }
            Self::MaskNotSubset => {
                write!(f, "branch record masks are inconsistent (need stored ⊆ branch ⊆ state)")
            }
            Self::NotStored => write!(
                f,
                "branch record of a branch that is not stored (needs a stored branch child or at least \
                 {STORED_BRANCH_CHILDREN} branch children)"
            ),
            Self::InvalidRefLength(l) => {
                write!(f, "branch record child reference length {l} is not in 1..=32")
            }
            Self::InvalidInlineNode => {
                write!(f, "branch record embedded child is not a valid node")
            }
            Self::ChildCountMismatch => {
                write!(f, "branch record child count does not match its state mask")
            }
            Self::TrailingBytes => write!(f, "bytes after the end of the branch record"),
        }
    }
}

impl std::error::Error for RecordError {}

/// The stored form of one branch node (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BranchRecord {
    state_mask: u16,
    branch_mask: u16,
    stored_mask: u16,
    /// One reference per set bit of `state_mask`, in nibble order.
    children: Vec<NodeRef>,
}

const fn bit(nibble: u8) -> u16 {
    1 << (nibble & 0x0f)
}

impl BranchRecord {
    /// Builds a record, checking the invariants listed in the module docs.
    pub fn new(
        state_mask: u16,
        branch_mask: u16,
        stored_mask: u16,
        children: Vec<NodeRef>,
    ) -> Result<Self, RecordError> {
        if state_mask.count_ones() < 2 {
            return Err(RecordError::TooFewChildren(state_mask.count_ones()));
        }
        if branch_mask & !state_mask != 0 || stored_mask & !branch_mask != 0 {
            return Err(RecordError::MaskNotSubset);
        }
        if !stores_record(branch_mask, stored_mask) {
            return Err(RecordError::NotStored);
        }
        if children.len() != state_mask.count_ones() as usize {
            return Err(RecordError::ChildCountMismatch);
        }
        Ok(Self { state_mask, branch_mask, stored_mask, children })
    }

    /// Bit `n` set iff child `n` exists.
    pub const fn state_mask(&self) -> u16 {
        self.state_mask
    }

    /// Bit `n` set iff child `n` is a branch node (possibly behind an
    /// extension).
    pub const fn branch_mask(&self) -> u16 {
        self.branch_mask
    }

    /// Bit `n` set iff child `n` is a stored branch node.
    pub const fn stored_mask(&self) -> u16 {
        self.stored_mask
    }

    /// Whether child `nibble` exists.
    pub const fn has_child(&self, nibble: u8) -> bool {
        self.state_mask & bit(nibble) != 0
    }

    /// Reference of child `nibble`, as it appears in the branch node.
    pub fn child(&self, nibble: u8) -> Option<&NodeRef> {
        if !self.has_child(nibble) {
            return None;
        }
        let index = (self.state_mask & (bit(nibble) - 1)).count_ones() as usize;
        self.children.get(index)
    }

    /// Kind of child `nibble`.
    pub const fn child_kind(&self, nibble: u8) -> Option<ChildKind> {
        if !self.has_child(nibble) {
            None
        } else if self.branch_mask & bit(nibble) != 0 {
            Some(ChildKind::Branch { stored: self.stored_mask & bit(nibble) != 0 })
        } else {
            Some(ChildKind::Leaf)
        }
    }

    /// The children as `(nibble, reference)` in nibble order.
    pub fn children(&self) -> impl Iterator<Item = (u8, &NodeRef)> + '_ {
        (0u8..16).filter(|&n| self.has_child(n)).zip(self.children.iter())
    }

    /// The branch node's RLP.
    pub fn node_rlp(&self) -> Vec<u8> {
        let mut slots = [None; 16];
        for (n, r) in self.children() {
            slots[usize::from(n)] = Some(*r);
        }
        encode_branch(&slots, None)
    }

    /// The branch node's reference (hash of its RLP, or the RLP if short).
    pub fn node_ref(&self) -> NodeRef {
        NodeRef::from_rlp(&self.node_rlp())
    }

    /// Encodes the record in the format described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.children.len() * 33);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.state_mask.to_be_bytes());
        out.extend_from_slice(&self.branch_mask.to_be_bytes());
        out.extend_from_slice(&self.stored_mask.to_be_bytes());
        for r in &self.children {
            match r.as_hash() {
                Some(h) => {
                    out.push(32);
                    out.extend_from_slice(h.as_slice());
                }
                None => {
                    // Inline references are at most 31 bytes.
                    out.push(r.as_slice().len() as u8);
                    out.extend_from_slice(r.as_slice());
                }
            }
        }
        out
    }

    /// Decodes a record; rejects anything [`BranchRecord::encode`] would
    /// not produce. Never panics and allocates at most 16 references.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let header = bytes.get(..HEADER_LEN).ok_or(RecordError::Truncated)?;
        if header[0] != RECORD_VERSION {
            return Err(RecordError::UnknownVersion(header[0]));
        }
        let mask = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
        let (state_mask, branch_mask, stored_mask) = (mask(1), mask(3), mask(5));
        let mut rest = &bytes[HEADER_LEN..];
        let count = state_mask.count_ones() as usize;
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            let (&len, tail) = rest.split_first().ok_or(RecordError::Truncated)?;
            let len_usize = usize::from(len);
            let body = tail.get(..len_usize).ok_or(RecordError::Truncated)?;
            let r = match len_usize {
                32 => NodeRef::from_hash(B256::from_slice(body)),
                1..=MAX_INLINE_NODE_LEN => {
                    Node::decode(body).map_err(|_| RecordError::InvalidInlineNode)?;
                    NodeRef::inline(body).ok_or(RecordError::InvalidInlineNode)?
                }
                _ => return Err(RecordError::InvalidRefLength(len)),
            };
            children.push(r);
            rest = &tail[len_usize..];
        }
        if !rest.is_empty() {
            return Err(RecordError::TrailingBytes);
        }
        Self::new(state_mask, branch_mask, stored_mask, children)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nibbles::Nibbles;
    use crate::node::encode_leaf;

    fn sample() -> BranchRecord {
        let inline = NodeRef::from_rlp(&encode_leaf(&Nibbles::from_nibbles(&[1]).unwrap(), b"v"));
        let h = NodeRef::from_hash(B256::repeat_byte(0xab));
        BranchRecord::new(0b1000_0000_0001_0010, 0b0000_0000_0001_0000, 0b1_0000, vec![inline, h, h]).unwrap()
    }

    #[test]
    fn round_trip_and_accessors() {
        let r = sample();
        let enc = r.encode();
        assert_eq!(enc[0], RECORD_VERSION);
        assert_eq!(BranchRecord::decode(&enc).unwrap(), r);
        assert_eq!(r.child_kind(1), Some(ChildKind::Leaf));
        assert_eq!(r.child_kind(4), Some(ChildKind::Branch { stored: true }));
        assert_eq!(r.child_kind(15), Some(ChildKind::Leaf));
        assert_eq!(r.child_kind(2), None);
        assert_eq!(r.child(15).unwrap().as_hash(), Some(B256::repeat_byte(0xab)));
        let node = Node::decode(&r.node_rlp()).unwrap();
        assert!(matches!(node, Node::Branch { .. }));
    }

    #[test]
    fn rejects_malformed() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert!(BranchRecord::decode(&enc[..cut]).is_err(), "prefix {cut} accepted");
        }
        let mut bad = enc.clone();
        bad.push(0);
        assert_eq!(BranchRecord::decode(&bad), Err(RecordError::TrailingBytes));
        let mut bad = enc.clone();
        bad[0] = 2;
        assert_eq!(BranchRecord::decode(&bad), Err(RecordError::UnknownVersion(2)));
        let mut bad = enc.clone();
        bad[6] = 0x12; // stored bit outside branch mask
        assert_eq!(BranchRecord::decode(&bad), Err(RecordError::MaskNotSubset));
        let mut bad = enc;
        bad[7] = 0; // zero-length reference
        assert_eq!(BranchRecord::decode(&bad), Err(RecordError::InvalidRefLength(0)));
    }

    /// Only masks the policy stores make a record: a stored branch child,
    /// or at least `STORED_BRANCH_CHILDREN` branch children.
    #[test]
    fn records_follow_the_storage_policy() {
        let h = NodeRef::from_hash(B256::repeat_byte(0xcd));
        let full = u16::MAX;
        let with_branches = |n: u32| (1u16 << n).wrapping_sub(1);
        for n in 0..=16u32 {
            let branch_mask = if n == 16 { full } else { with_branches(n) };
            let expect_ok = n >= STORED_BRANCH_CHILDREN;
            let r = BranchRecord::new(full, branch_mask, 0, vec![h; 16]);
            assert_eq!(r.is_ok(), expect_ok, "{n} branch children, none stored: {r:?}");
            if let Ok(r) = r {
                assert_eq!(BranchRecord::decode(&r.encode()), Ok(r));
            } else {
                assert_eq!(r, Err(RecordError::NotStored));
            }
        }
        // One stored branch child is enough, whatever the rest are.
        assert!(BranchRecord::new(0b11, 0b01, 0b01, vec![h; 2]).is_ok());
        assert_eq!(BranchRecord::new(0b11, 0b01, 0, vec![h; 2]), Err(RecordError::NotStored));
        // Decoding applies the same rule: masks patched to one unstored branch child.
        let mut enc = BranchRecord::new(0b11, 0b01, 0b01, vec![h; 2]).unwrap().encode();
        enc[5..7].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(BranchRecord::decode(&enc), Err(RecordError::NotStored));
    }
}
