//! RLP encoding and decoding of trie nodes, and node references.
//!
//! A parent node refers to a child by its RLP when that is shorter than 32
//! bytes (the child is embedded), otherwise by the keccak hash of its RLP
//! (encoded as a 32-byte RLP string). [`NodeRef`] holds exactly the bytes
//! that appear inside the parent.

use crate::hex_prefix::{self, HexPrefixError};
use crate::nibbles::Nibbles;
use alloy_primitives::{keccak256, B256};
use alloy_rlp::{Encodable, Header, EMPTY_STRING_CODE};
use core::fmt;

/// RLP prefix of a 32-byte string (a hash reference).
const HASH_REF_PREFIX: u8 = EMPTY_STRING_CODE + 32;

/// Maximum length of an embedded (inline) node.
pub const MAX_INLINE_NODE_LEN: usize = 31;

/// How a parent refers to a child node: the child's RLP if shorter than 32
/// bytes, otherwise the RLP string of its keccak hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeRef {
    /// Number of used bytes in `buf`: 33 for a hash, 1..=31 for an inline node.
    len: u8,
    buf: [u8; 33],
}

impl NodeRef {
    /// The reference of a node given its full RLP encoding.
    pub fn from_rlp(rlp: &[u8]) -> Self {
        if rlp.len() <= MAX_INLINE_NODE_LEN {
            let mut buf = [0u8; 33];
            buf[..rlp.len()].copy_from_slice(rlp);
            // len <= 31 fits in u8.
            Self { len: rlp.len() as u8, buf }
        } else {
            Self::from_hash(keccak256(rlp))
        }
    }

    /// A hash reference.
    pub fn from_hash(hash: B256) -> Self {
        let mut buf = [0u8; 33];
        buf[0] = HASH_REF_PREFIX;
        buf[1..].copy_from_slice(hash.as_slice());
        Self { len: 33, buf }
    }

    /// An inline reference from the node's RLP; `None` if it is not shorter
    /// than 32 bytes or is empty.
    pub fn inline(rlp: &[u8]) -> Option<Self> {
        (!rlp.is_empty() && rlp.len() <= MAX_INLINE_NODE_LEN).then(|| Self::from_rlp(rlp))
    }

    /// The bytes as they appear inside the parent node's RLP.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Whether this is a hash reference.
    pub const fn is_hash(&self) -> bool {
        self.len == 33
    }

    /// The hash, for a hash reference.
    pub fn as_hash(&self) -> Option<B256> {
        self.is_hash().then(|| B256::from_slice(&self.buf[1..]))
    }

    /// The embedded node's RLP, for an inline reference.
    pub fn as_inline(&self) -> Option<&[u8]> {
        (!self.is_hash()).then(|| self.as_slice())
    }

    /// The keccak hash of the referenced node (hashing an inline node's RLP).
    /// This is the trie root when the node is the root node.
    pub fn node_hash(&self) -> B256 {
        match self.as_hash() {
            Some(h) => h,
            None => keccak256(self.as_slice()),
        }
    }
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_hash() {
            Some(h) => write!(f, "NodeRef::Hash({h})"),
            None => write!(f, "NodeRef::Inline(0x{})", alloy_primitives::hex::encode(self.as_slice())),
        }
    }
}

fn string_len(bytes: &[u8]) -> usize {
    bytes.length()
}

/// The RLP of a leaf node: `[hex_prefix(path, leaf), value]`.
pub fn encode_leaf(path: &Nibbles, value: &[u8]) -> Vec<u8> {
    let hp = hex_prefix::encode(path, true);
    let payload = string_len(&hp) + string_len(value);
    let mut out = Vec::with_capacity(payload + 9);
    Header { list: true, payload_length: payload }.encode(&mut out);
    hp.as_slice().encode(&mut out);
    value.encode(&mut out);
    out
}

/// Writes the RLP of the leaf holding `value` at `key[from..]` (the leaf
/// of `key` hung below the branch at `key[..from]`) into `out`, replacing
/// its contents: the bytes of [`encode_leaf`] of that slice, without
/// building the slice or allocating (`out` is reused between leaves).
pub fn encode_leaf_suffix_into(out: &mut Vec<u8>, key: &Nibbles, from: usize, value: &[u8]) {
    let hp_len = hex_prefix::encoded_len(key.len() - from.min(key.len()));
    // A one-byte hex prefix is the flag byte (< 0x80), its own RLP.
    let hp_rlp_len = if hp_len == 1 { 1 } else { Header { list: false, payload_length: hp_len }.length() + hp_len };
    out.clear();
    Header { list: true, payload_length: hp_rlp_len + string_len(value) }.encode(out);
    if hp_len > 1 {
        Header { list: false, payload_length: hp_len }.encode(out);
    }
    hex_prefix::encode_suffix_into(key, from, true, out);
    value.encode(out);
}

/// The RLP of an extension node: `[hex_prefix(path, ext), child]`.
pub fn encode_extension(path: &Nibbles, child: &NodeRef) -> Vec<u8> {
    debug_assert!(!path.is_empty(), "extension nodes have a non-empty path");
    let hp = hex_prefix::encode(path, false);
    let payload = string_len(&hp) + child.as_slice().len();
    let mut out = Vec::with_capacity(payload + 9);
    Header { list: true, payload_length: payload }.encode(&mut out);
    hp.as_slice().encode(&mut out);
    out.extend_from_slice(child.as_slice());
    out
}

/// The RLP of a branch node: 16 child slots then the value slot; empty
/// slots are the empty string.
pub fn encode_branch(children: &[Option<NodeRef>; 16], value: Option<&[u8]>) -> Vec<u8> {
    let mut payload = 0;
    for c in children {
        payload += c.as_ref().map_or(1, |r| r.as_slice().len());
    }
    payload += value.map_or(1, string_len);
    let mut out = Vec::with_capacity(payload + 9);
    Header { list: true, payload_length: payload }.encode(&mut out);
    for c in children {
        match c {
            Some(r) => out.extend_from_slice(r.as_slice()),
            None => out.push(EMPTY_STRING_CODE),
        }
    }
    match value {
        Some(v) => v.encode(&mut out),
        None => out.push(EMPTY_STRING_CODE),
    }
    out
}

/// A decoded trie node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A leaf: the rest of the key and the value.
    Leaf {
        /// Remaining key nibbles below the node's position.
        path: Nibbles,
        /// The stored value (non-empty).
        value: Vec<u8>,
    },
    /// An extension: a shared path segment and the single child below it.
    Extension {
        /// The shared nibbles (non-empty).
        path: Nibbles,
        /// Reference to the child (a branch node).
        child: NodeRef,
    },
    /// A branch: up to 16 children and an optional value.
    Branch {
        /// Child references by nibble.
        children: Box<[Option<NodeRef>; 16]>,
        /// Value of a key ending exactly at this node (raw-key tries only).
        value: Option<Vec<u8>>,
    },
}

/// Why bytes are not a valid trie node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDecodeError {
    /// Malformed RLP.
    Rlp(alloy_rlp::Error),
    /// The node is not an RLP list.
    NotAList,
    /// Bytes after the node's RLP.
    TrailingBytes,
    /// A list with a number of items other than 2 or 17.
    WrongItemCount(usize),
    /// Malformed hex-prefix path.
    HexPrefix(HexPrefixError),
    /// An extension with an empty path.
    EmptyExtensionPath,
    /// A leaf with an empty value.
    EmptyLeafValue,
    /// A child reference that is neither a 32-byte hash, an embedded list
    /// shorter than 32 bytes, nor (in a branch) empty.
    InvalidChildRef,
    /// An extension whose child is a string other than a hash.
    InvalidExtensionChild,
}

impl fmt::Display for NodeDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rlp(e) => write!(f, "malformed node RLP: {e}"),
            Self::NotAList => write!(f, "trie node is not an RLP list"),
            Self::TrailingBytes => write!(f, "bytes after the trie node's RLP"),
            Self::WrongItemCount(n) => write!(f, "trie node list has {n} items (need 2 or 17)"),
            Self::HexPrefix(e) => write!(f, "bad node path: {e}"),
            Self::EmptyExtensionPath => write!(f, "extension node with an empty path"),
            Self::EmptyLeafValue => write!(f, "leaf node with an empty value"),
            Self::InvalidChildRef => {
                write!(f, "child reference is neither a 32-byte hash nor an embedded node under 32 bytes")
            }
            Self::InvalidExtensionChild => write!(f, "extension child is not a node reference"),
        }
    }
}

impl std::error::Error for NodeDecodeError {}

impl From<alloy_rlp::Error> for NodeDecodeError {
    fn from(e: alloy_rlp::Error) -> Self {
        Self::Rlp(e)
    }
}

/// One raw item of a list: its full encoding and its header.
struct RawItem<'a> {
    full: &'a [u8],
    header: Header,
    payload: &'a [u8],
}

fn next_item<'a>(buf: &mut &'a [u8]) -> Result<RawItem<'a>, NodeDecodeError> {
    let start = *buf;
    let header = Header::decode(buf)?;
    // Header::decode checked that the payload fits in `buf`.
    let payload = buf.get(..header.payload_length).ok_or(alloy_rlp::Error::InputTooShort)?;
    *buf = &buf[header.payload_length..];
    let full_len = start.len() - buf.len();
    Ok(RawItem { full: &start[..full_len], header, payload })
}

/// Decodes a child reference: a 32-byte hash string, an embedded list
/// under 32 bytes, or (when `allow_empty`) the empty string.
fn decode_child(item: &RawItem<'_>, allow_empty: bool) -> Result<Option<NodeRef>, NodeDecodeError> {
    if item.header.list {
        return NodeRef::inline(item.full).map(Some).ok_or(NodeDecodeError::InvalidChildRef);
    }
    match item.payload.len() {
        0 if allow_empty => Ok(None),
        32 => Ok(Some(NodeRef::from_hash(B256::from_slice(item.payload)))),
        _ => Err(NodeDecodeError::InvalidChildRef),
    }
}

impl Node {
    /// Decodes a node from its complete RLP encoding.
    pub fn decode(rlp: &[u8]) -> Result<Self, NodeDecodeError> {
        let mut buf = rlp;
        let outer = next_item(&mut buf)?;
        if !buf.is_empty() {
            return Err(NodeDecodeError::TrailingBytes);
        }
        if !outer.header.list {
            return Err(NodeDecodeError::NotAList);
        }
        let mut body = outer.payload;
        // At most 17 items are accepted; stop early on longer lists so hostile
        // input cannot make us collect an unbounded item vector.
        let mut items = Vec::with_capacity(17);
        while !body.is_empty() {
            if items.len() == 17 {
                return Err(NodeDecodeError::WrongItemCount(18));
            }
            items.push(next_item(&mut body)?);
        }
        match items.len() {
            2 => {
                if items[0].header.list {
                    return Err(NodeDecodeError::Rlp(alloy_rlp::Error::UnexpectedList));
                }
                let (path, is_leaf) = hex_prefix::decode(items[0].payload).map_err(NodeDecodeError::HexPrefix)?;
                if is_leaf {
                    if items[1].header.list {
                        return Err(NodeDecodeError::Rlp(alloy_rlp::Error::UnexpectedList));
                    }
                    if items[1].payload.is_empty() {
                        return Err(NodeDecodeError::EmptyLeafValue);
                    }
                    Ok(Self::Leaf { path, value: items[1].payload.to_vec() })
                } else {
                    if path.is_empty() {
                        return Err(NodeDecodeError::EmptyExtensionPath);
                    }
                    let child = decode_child(&items[1], false)
                        .map_err(|_| NodeDecodeError::InvalidExtensionChild)?
                        .ok_or(NodeDecodeError::InvalidExtensionChild)?;
                    Ok(Self::Extension { path, child })
                }
            }
            17 => {
                let mut children: Box<[Option<NodeRef>; 16]> = Box::new([None; 16]);
                for (slot, item) in children.iter_mut().zip(&items[..16]) {
                    *slot = decode_child(item, true)?;
                }
                let v = &items[16];
                if v.header.list {
                    return Err(NodeDecodeError::Rlp(alloy_rlp::Error::UnexpectedList));
                }
                let value = (!v.payload.is_empty()).then(|| v.payload.to_vec());
                Ok(Self::Branch { children, value })
            }
            n => Err(NodeDecodeError::WrongItemCount(n)),
        }
    }

    /// Re-encodes the node.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Leaf { path, value } => encode_leaf(path, value),
            Self::Extension { path, child } => encode_extension(path, child),
            Self::Branch { children, value } => encode_branch(children, value.as_deref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[u8]) -> Nibbles {
        Nibbles::from_nibbles(v).unwrap()
    }

    #[test]
    fn small_nodes_are_inline_large_ones_hashed() {
        let leaf = encode_leaf(&n(&[1, 2]), b"x");
        assert!(leaf.len() < 32);
        let r = NodeRef::from_rlp(&leaf);
        assert_eq!(r.as_inline(), Some(&leaf[..]));
        let big = encode_leaf(&n(&[1; 64]), &[7u8; 40]);
        let r = NodeRef::from_rlp(&big);
        assert_eq!(r.as_hash(), Some(keccak256(&big)));
        assert_eq!(r.as_slice()[0], 0xa0);
    }

    #[test]
    fn round_trips() {
        let leaf = Node::Leaf { path: n(&[1, 2, 3]), value: b"value".to_vec() };
        let ext = Node::Extension { path: n(&[4]), child: NodeRef::from_hash(keccak256(b"x")) };
        let mut children = Box::new([None; 16]);
        children[3] = Some(NodeRef::from_rlp(&leaf.encode()));
        children[9] = Some(NodeRef::from_hash(B256::repeat_byte(9)));
        let branch = Node::Branch { children, value: Some(b"v".to_vec()) };
        for node in [leaf, ext, branch] {
            assert_eq!(Node::decode(&node.encode()).unwrap(), node);
        }
    }

    #[test]
    fn rejects_malformed() {
        assert!(Node::decode(&[]).is_err());
        assert_eq!(Node::decode(&[0x80]), Err(NodeDecodeError::NotAList));
        assert_eq!(Node::decode(&[0xc0]), Err(NodeDecodeError::WrongItemCount(0)));
        let leaf = encode_leaf(&n(&[1]), b"v");
        let mut trailing = leaf.clone();
        trailing.push(0);
        assert_eq!(Node::decode(&trailing), Err(NodeDecodeError::TrailingBytes));
        // extension whose child is a 3-byte string
        let bad = [0xc5, 0x11, 0x83, 1, 2, 3];
        assert_eq!(Node::decode(&bad[..]), Err(NodeDecodeError::InvalidExtensionChild));
    }

    #[test]
    fn leaf_from_a_key_suffix_equals_the_leaf_of_the_slice() {
        let mut out = vec![0xff; 3];
        for key_len in [0usize, 1, 2, 7, 8, 63, 64, 65, 120, 130] {
            let nibbles: Vec<u8> = (0..key_len).map(|i| (i * 7 % 16) as u8).collect();
            let key = n(&nibbles);
            for from in 0..=key_len {
                for value_len in [1usize, 31, 55, 56, 200] {
                    let value = vec![0x81u8; value_len];
                    encode_leaf_suffix_into(&mut out, &key, from, &value);
                    assert_eq!(out, encode_leaf(&key.slice(from, key_len), &value), "len {key_len} from {from}");
                }
            }
        }
    }
}
