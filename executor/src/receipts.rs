//! Receipts: consensus encoding, logs bloom, receipts root, logs hash.

use alloy_primitives::{keccak256, Bloom, Log, B256};
use alloy_rlp::{Encodable, Header};
use metis_trie::node::encode_leaf;
use metis_trie::{ChildKind, Nibbles, NodeRef, RootBuilder};

/// The receipt of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// EIP-2718 type (0 legacy).
    pub tx_type: u8,
    pub success: bool,
    pub gas_used: u64,
    pub cumulative_gas_used: u64,
    pub logs: Vec<Log>,
    pub logs_bloom: Bloom,
}

impl Receipt {
    /// EIP-2718 encoding (Byzantium and later: status instead of state root):
    /// `type || rlp([status, cumulativeGas, bloom, logs])`, no type byte for
    /// legacy receipts.
    pub fn encoded_2718(&self) -> Vec<u8> {
        let status: u8 = self.success.into();
        let payload_length =
            status.length() + self.cumulative_gas_used.length() + self.logs_bloom.length() + self.logs.length();
        let mut out = Vec::with_capacity(payload_length + 8);
        if self.tx_type != 0 {
            out.push(self.tx_type);
        }
        Header { list: true, payload_length }.encode(&mut out);
        status.encode(&mut out);
        self.cumulative_gas_used.encode(&mut out);
        self.logs_bloom.encode(&mut out);
        self.logs.encode(&mut out);
        out
    }
}

pub fn logs_bloom<'a>(logs: impl IntoIterator<Item = &'a Log>) -> Bloom {
    let mut bloom = Bloom::ZERO;
    for log in logs {
        bloom.accrue_log(log);
    }
    bloom
}

/// Root of the ordered trie of encoded receipts (Byzantium and later).
pub fn receipts_root(receipts: &[Receipt]) -> B256 {
    receipts_root_with_threads(receipts, 1)
}

/// Below this many receipts the root is built on the calling thread.
const PARALLEL_RECEIPTS: usize = 1024;

/// [`receipts_root`], encoding and hashing the leaves on up to `threads`
/// threads. The leaves are most of the work: a receipt carries a 256-byte
/// bloom, so its leaf node spans three keccak blocks, while the branches
/// above cost a fraction of that.
pub fn receipts_root_with_threads(receipts: &[Receipt], threads: usize) -> B256 {
    if receipts.len() < 2 {
        return ordered_trie_root(receipts.iter().map(Receipt::encoded_2718));
    }
    let threads = if receipts.len() < PARALLEL_RECEIPTS { 1 } else { threads.max(1) };
    let order = trie_order(receipts.len());
    // Where each leaf hangs: below the branch at the longest prefix it shares
    // with a neighbour in key order (no key is a prefix of another).
    let lcp = |a: &Nibbles, b: &Nibbles| a.common_prefix_len(b);
    let depths: Vec<usize> = (0..order.len())
        .map(|i| {
            let key = &order[i].1;
            let before = if i > 0 { lcp(&order[i - 1].1, key) } else { 0 };
            let after = order.get(i + 1).map_or(0, |next| lcp(key, &next.1));
            before.max(after)
        })
        .collect();
    let hash_leaf = |i: usize| {
        let (index, key) = &order[i];
        let depth = depths[i];
        let leaf = encode_leaf(&key.slice(depth + 1, key.len()), &receipts[*index].encoded_2718());
        NodeRef::from_rlp(&leaf)
    };
    let chunk = order.len().div_ceil(threads);
    let mut refs: Vec<NodeRef> = Vec::with_capacity(order.len());
    if threads == 1 {
        refs.extend((0..order.len()).map(hash_leaf));
    } else {
        std::thread::scope(|scope| {
            let parts: Vec<_> = (1..threads)
                .map(|t| {
                    let range = (t * chunk).min(order.len())..((t + 1) * chunk).min(order.len());
                    scope.spawn(move || range.map(hash_leaf).collect::<Vec<_>>())
                })
                .collect();
            refs.extend((0..chunk.min(order.len())).map(hash_leaf));
            for part in parts {
                // A leaf hash cannot panic short of running out of memory.
                refs.extend(part.join().expect("leaf hashing thread"));
            }
        });
    }
    let mut builder = RootBuilder::new();
    for (i, node_ref) in refs.into_iter().enumerate() {
        let key = &order[i].1;
        // Keys are sorted and at least two, so every leaf hangs below a branch.
        builder.add_slot(key.prefix(depths[i] + 1), node_ref, ChildKind::Leaf).expect("slots in key order");
    }
    builder.finish().expect("slots under branches").root
}

/// Indices with their trie keys `rlp(index)` as nibbles, in key order.
fn trie_order(n: usize) -> Vec<(usize, Nibbles)> {
    let mut keyed: Vec<(Vec<u8>, usize)> = (0..n)
        .map(|i| {
            let mut key = Vec::with_capacity(9);
            i.encode(&mut key);
            (key, i)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(key, i)| (i, Nibbles::unpack(&key))).collect()
}

/// Root of the trie `rlp(index) -> item` (receipts, transactions).
pub fn ordered_trie_root(items: impl ExactSizeIterator<Item = Vec<u8>>) -> B256 {
    // Keys in trie order: rlp(0) = 0x80 sorts after rlp(1..=127) = 0x01..=0x7f
    // and before rlp(128..) = 0x81...
    let items: Vec<Vec<u8>> = items.collect();
    let mut builder = RootBuilder::new();
    for (index, key) in trie_order(items.len()) {
        // Keys are distinct and sorted; encoded receipts are never empty.
        builder.add_leaf(key, &items[index]).expect("sorted distinct keys, non-empty items");
    }
    builder.finish().expect("a trie of leaves only").root
}

/// keccak256 of the RLP list of logs: the `logs` field of state tests.
pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut out = Vec::new();
    alloy_rlp::encode_list(logs, &mut out);
    keccak256(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use alloy_trie::{HashBuilder, Nibbles as AlloyNibbles};
    use proptest::prelude::*;

    fn reference_root(items: &[Vec<u8>]) -> B256 {
        let mut keyed: Vec<(Vec<u8>, Vec<u8>)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut key = Vec::new();
                i.encode(&mut key);
                (key, item.clone())
            })
            .collect();
        keyed.sort();
        let mut hb = HashBuilder::default();
        for (k, v) in &keyed {
            hb.add_leaf(AlloyNibbles::unpack(k), v);
        }
        hb.root()
    }

    proptest! {
        #[test]
        fn ordered_root_matches_alloy_trie(
            items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..120), 0..300)
        ) {
            prop_assert_eq!(ordered_trie_root(items.clone().into_iter()), reference_root(&items));
        }
    }

    fn receipt(i: usize) -> Receipt {
        let logs = (0..i % 3)
            .map(|k| {
                Log::new_unchecked(
                    Address::with_last_byte(k as u8),
                    vec![B256::with_last_byte(i as u8)],
                    vec![i as u8; i % 70].into(),
                )
            })
            .collect::<Vec<_>>();
        Receipt {
            tx_type: (i % 3) as u8,
            success: !i.is_multiple_of(5),
            gas_used: 21_000,
            cumulative_gas_used: 21_000 * (i as u64 + 1),
            logs_bloom: logs_bloom(&logs),
            logs,
        }
    }

    #[test]
    fn parallel_receipts_root_equals_sequential() {
        for n in [2, 3, 17, 200, 1024, 1025, 1500, 4099, 70_000] {
            let receipts: Vec<Receipt> = (0..n).map(receipt).collect();
            let sequential = receipts_root(&receipts);
            for threads in [1, 2, 3, 8] {
                assert_eq!(
                    receipts_root_with_threads(&receipts, threads),
                    sequential,
                    "{n} receipts, {threads} threads"
                );
            }
        }
    }
}
