//! Minimal Merkle Patricia root computation (ordered receipt tries and the
//! secure state trie of state tests).
//!
//! TODO: swap for `metis_trie::RootBuilder` once its API is committed; this
//! module only exists so the executor can check roots before that.

use alloy_primitives::{keccak256, B256};
use alloy_rlp::{BufMut, Encodable, Header};

/// keccak256(rlp("")): the root of an empty trie.
pub const EMPTY_ROOT: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

fn to_nibbles(key: &[u8]) -> Vec<u8> {
    key.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect()
}

/// Hex-prefix encoding of a nibble path (yellow paper, appendix C).
fn hex_prefix(nibbles: &[u8], leaf: bool) -> Vec<u8> {
    let flag = if leaf { 2 } else { 0 };
    let mut out = Vec::with_capacity(nibbles.len() / 2 + 1);
    let rest = if nibbles.len() % 2 == 1 {
        out.push(((flag + 1) << 4) | nibbles[0]);
        &nibbles[1..]
    } else {
        out.push(flag << 4);
        nibbles
    };
    out.extend(rest.chunks(2).map(|pair| (pair[0] << 4) | pair[1]));
    out
}

fn rlp_list(items: &[Vec<u8>]) -> Vec<u8> {
    let payload_length = items.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(payload_length + 4);
    Header { list: true, payload_length }.encode(&mut out);
    for item in items {
        out.put_slice(item);
    }
    out
}

fn rlp_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    bytes.encode(&mut out);
    out
}

/// How a parent refers to a child node: inline below 32 bytes, else by hash.
fn child_reference(node: Vec<u8>) -> Vec<u8> {
    if node.len() < 32 {
        node
    } else {
        rlp_bytes(keccak256(&node).as_slice())
    }
}

/// RLP of the node holding `entries` (sorted, distinct paths) below `depth`.
fn encode_node(entries: &[(Vec<u8>, Vec<u8>)], depth: usize) -> Vec<u8> {
    debug_assert!(!entries.is_empty());
    if let [(path, value)] = entries {
        return rlp_list(&[rlp_bytes(&hex_prefix(&path[depth..], true)), rlp_bytes(value)]);
    }
    // Sorted: the common prefix of all is that of the first and last.
    let (first, last) = (&entries[0].0, &entries[entries.len() - 1].0);
    let common = first[depth..].iter().zip(&last[depth..]).take_while(|(a, b)| a == b).count();
    if common > 0 {
        let child = encode_node(entries, depth + common);
        return rlp_list(&[rlp_bytes(&hex_prefix(&first[depth..depth + common], false)), child_reference(child)]);
    }
    let mut items = Vec::with_capacity(17);
    let mut rest = entries;
    let mut value = Vec::new();
    if rest[0].0.len() == depth {
        value = rest[0].1.clone();
        rest = &rest[1..];
    }
    for nibble in 0..16u8 {
        let n = rest.iter().take_while(|(p, _)| p[depth] == nibble).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        items.push(if group.is_empty() { rlp_bytes(&[]) } else { child_reference(encode_node(group, depth + 1)) });
    }
    items.push(rlp_bytes(&value));
    rlp_list(&items)
}

/// Root of the trie mapping each key to its value. Keys must be distinct.
pub fn trie_root(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> B256 {
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = entries.into_iter().map(|(k, v)| (to_nibbles(&k), v)).collect();
    if entries.is_empty() {
        return EMPTY_ROOT;
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    debug_assert!(entries.windows(2).all(|w| w[0].0 != w[1].0), "duplicate trie key");
    keccak256(encode_node(&entries, 0))
}

/// Root of the trie of `rlp(index) -> item` (receipts, transactions).
pub fn ordered_trie_root(items: &[Vec<u8>]) -> B256 {
    trie_root(items.iter().enumerate().map(|(i, item)| {
        let mut key = Vec::new();
        i.encode(&mut key);
        (key, item.clone())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::{HashBuilder, Nibbles};
    use proptest::prelude::*;

    fn reference_root(entries: &[(Vec<u8>, Vec<u8>)]) -> B256 {
        let mut sorted: Vec<_> = entries.to_vec();
        sorted.sort();
        sorted.dedup_by(|a, b| a.0 == b.0);
        let mut hb = HashBuilder::default();
        for (k, v) in &sorted {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        hb.root()
    }

    #[test]
    fn empty_trie_has_the_empty_root() {
        assert_eq!(trie_root(Vec::new()), EMPTY_ROOT);
        assert_eq!(reference_root(&[]), EMPTY_ROOT);
    }

    proptest! {
        // Fixed-length keys (as in secure and receipt tries with few items):
        // no key is a prefix of another.
        #[test]
        fn matches_alloy_trie(
            entries in proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 3),
                proptest::collection::vec(any::<u8>(), 1..80),
                0..60,
            )
        ) {
            let entries: Vec<_> = entries.into_iter().collect();
            prop_assert_eq!(trie_root(entries.clone()), reference_root(&entries));
        }

        #[test]
        fn ordered_root_matches_alloy_trie(
            items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..120), 0..300)
        ) {
            let keyed: Vec<_> = items.iter().enumerate().map(|(i, item)| {
                let mut key = Vec::new();
                i.encode(&mut key);
                (key, item.clone())
            }).collect();
            prop_assert_eq!(ordered_trie_root(&items), reference_root(&keyed));
        }
    }
}
