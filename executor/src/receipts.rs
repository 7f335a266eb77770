//! Receipts: consensus encoding, logs bloom, receipts root, logs hash.

use alloy_primitives::map::{Entry, HashMap};
use alloy_primitives::{keccak256, Address, Bloom, Log, B256};
use alloy_rlp::{Encodable, Header};
use metis_trie::node::{encode_branch, encode_leaf, MAX_INLINE_NODE_LEN};
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
    /// The bloom of `logs`, `None` without logs ([`LogsBloom`]).
    pub logs_bloom: LogsBloom,
}

impl Receipt {
    /// The bloom of the receipt's logs (zero without logs).
    pub fn bloom(&self) -> &Bloom {
        self.logs_bloom.as_deref().unwrap_or(&Bloom::ZERO)
    }

    /// EIP-2718 encoding (Byzantium and later: status instead of state root):
    /// `type || rlp([status, cumulativeGas, bloom, logs])`, no type byte for
    /// legacy receipts.
    pub fn encoded_2718(&self) -> Vec<u8> {
        let status: u8 = self.success.into();
        let payload_length =
            status.length() + self.cumulative_gas_used.length() + self.bloom().length() + self.logs.length();
        let mut out = Vec::with_capacity(payload_length + 8);
        if self.tx_type != 0 {
            out.push(self.tx_type);
        }
        Header { list: true, payload_length }.encode(&mut out);
        status.encode(&mut out);
        self.cumulative_gas_used.encode(&mut out);
        self.bloom().encode(&mut out);
        self.logs.encode(&mut out);
        out
    }
}

/// The bloom of a transaction's logs, `None` when it has none. Boxed: a large
/// block is mostly transfers without logs, and an inline 256-byte bloom would
/// make each outcome three times the size of its result (every outcome is
/// written once by a worker and moved once into the receipts) and each
/// receipt five times its size (47,619 transfers: 14.5 MB of receipts, whose
/// fresh pages took the kernel ~9 ms to fault in on every block).
pub type LogsBloom = Option<Box<Bloom>>;

/// The bloom of `logs` ([`LogsBloomer`] without inputs seen before).
pub fn logs_bloom<'a>(logs: impl IntoIterator<Item = &'a Log>) -> Bloom {
    LogsBloomer::default().bloom(logs)
}

/// Computes logs blooms, remembering the keccak of every address and topic
/// it has hashed (up to [`BLOOM_CACHE_ENTRIES`] of each; then it starts
/// over). One per worker: the logs of a block repeat their inputs a lot,
/// within a transaction (an event's signature, the emitting contract, the
/// parties of a swap or an airdrop's sender: the 10,041 Transfer logs of
/// mainnet block 15537394 repeat all but their recipients) and across
/// transactions (the signatures of Transfer, Swap and Sync, the contracts of
/// popular tokens and pools). On a block of swaps, hashing each distinct
/// input of a transaction, in sets built per transaction, was 8% of the
/// sequential transaction phase.
///
/// The inputs not seen before are hashed in one batch (`metis_keccak`).
#[derive(Default)]
pub struct LogsBloomer {
    // Addresses and topics apart: a topic holding an address (12 zero
    // bytes, then the address) hashes differently from the address itself.
    // `None`: being hashed by the current call.
    addresses: HashMap<Address, Option<B256>>,
    topics: HashMap<B256, Option<B256>>,
}

/// Inputs of each kind a [`LogsBloomer`] remembers before it starts over.
pub const BLOOM_CACHE_ENTRIES: usize = 4096;

impl LogsBloomer {
    /// The bloom of `logs`.
    pub fn bloom<'a>(&mut self, logs: impl IntoIterator<Item = &'a Log>) -> Bloom {
        if self.addresses.len() > BLOOM_CACHE_ENTRIES {
            self.addresses.clear();
        }
        if self.topics.len() > BLOOM_CACHE_ENTRIES {
            self.topics.clear();
        }
        let mut bloom = Bloom::ZERO;
        let mut new_addresses: Vec<Address> = Vec::new();
        let mut new_topics: Vec<B256> = Vec::new();
        for log in logs {
            match self.addresses.entry(log.address) {
                Entry::Occupied(known) => known.get().iter().for_each(|hash| bloom.m3_2048_hashed(hash)),
                Entry::Vacant(new) => {
                    new.insert(None);
                    new_addresses.push(log.address);
                }
            }
            for topic in log.topics() {
                match self.topics.entry(*topic) {
                    Entry::Occupied(known) => known.get().iter().for_each(|hash| bloom.m3_2048_hashed(hash)),
                    Entry::Vacant(new) => {
                        new.insert(None);
                        new_topics.push(*topic);
                    }
                }
            }
        }
        let inputs: Vec<&[u8]> =
            new_addresses.iter().map(|a| a.as_slice()).chain(new_topics.iter().map(|t| t.as_slice())).collect();
        let hashes = metis_keccak::keccak256_all(&inputs);
        for (hash, address) in hashes.iter().zip(&new_addresses) {
            bloom.m3_2048_hashed(hash);
            self.addresses.insert(*address, Some(*hash));
        }
        for (hash, topic) in hashes[new_addresses.len()..].iter().zip(&new_topics) {
            bloom.m3_2048_hashed(hash);
            self.topics.insert(*topic, Some(*hash));
        }
        bloom
    }
}

/// Root of the ordered trie of encoded receipts (Byzantium and later).
pub fn receipts_root(receipts: &[Receipt]) -> B256 {
    receipts_root_with_threads(receipts, 1)
}

/// Below this many receipts the root is built on the calling thread.
pub const PARALLEL_RECEIPTS: usize = 1024;

/// [`receipts_root`], encoding and hashing on up to `threads` threads.
///
/// A receipt carries a 256-byte bloom, so its leaf node spans three keccak
/// blocks: hashing the leaves is most of the work, and the bottom branches
/// (whose children are all leaves: nearly every branch of an `rlp(index)`
/// trie) are cheap to hash next to them. Both happen in parallel; the trie
/// builder then only sees the bottom branches (about one item per sixteen
/// receipts) and the few leaves hanging elsewhere.
pub fn receipts_root_with_threads(receipts: &[Receipt], threads: usize) -> B256 {
    if receipts.len() < 2 {
        return ordered_trie_root(receipts.iter().map(Receipt::encoded_2718));
    }
    let threads = if receipts.len() < PARALLEL_RECEIPTS { 1 } else { threads.max(1) };
    let order = trie_order(receipts.len());
    let n = order.len();
    // lcp[i]: common prefix of keys i and i + 1.
    let lcp: Vec<usize> = (0..n - 1).map(|i| order[i].1.common_prefix_len(&order[i + 1].1)).collect();
    let lcp_before = |i: usize| if i > 0 { lcp[i - 1] } else { 0 };
    let lcp_after = |i: usize| lcp.get(i).copied().unwrap_or(0);
    // A leaf hangs below the branch at the longest prefix it shares with a
    // neighbour in key order (no key is a prefix of another).
    let depth = |i: usize| lcp_before(i).max(lcp_after(i));
    // Runs of leaves hanging from the same branch; a run is a whole bottom
    // branch when no key outside it shares the branch's path.
    let mut groups: Vec<(usize, usize, bool)> = Vec::new();
    let mut i = 0;
    while i < n {
        let d = depth(i);
        let mut j = i + 1;
        while j < n && depth(j) == d && lcp[j - 1] >= d {
            j += 1;
        }
        let whole = j - i >= 2 && lcp_before(i) < d && (j == n || lcp[j - 1] < d);
        groups.push((i, j, whole));
        i = j;
    }
    let leaf_rlp = |i: usize| {
        let (index, key) = &order[i];
        encode_leaf(&key.slice(depth(i) + 1, key.len()), &receipts[*index].encoded_2718())
    };
    // (path, reference, is a branch) in key order. Leaves, then the bottom
    // branches made of them, are hashed in batches (`metis_keccak`: eight
    // at a time where the CPU can) of up to `BATCH_GROUPS` groups, so the
    // encoded leaves held at once stay small.
    const BATCH_GROUPS: usize = 64;
    let hash_batch = |groups: &[(usize, usize, bool)]| {
        let (first, last) = match (groups.first(), groups.last()) {
            (Some(first), Some(last)) => (first.0, last.1),
            _ => return Vec::new(),
        };
        let leaves: Vec<Vec<u8>> = (first..last).map(leaf_rlp).collect();
        let leaf_refs = node_refs(&leaves);
        let mut branches: Vec<Vec<u8>> = Vec::new();
        for &(start, end, _) in groups.iter().filter(|(_, _, whole)| *whole) {
            let d = depth(start);
            let mut children: [Option<NodeRef>; 16] = Default::default();
            for (i, (_, key)) in order.iter().enumerate().take(end).skip(start) {
                // d < key length: the key continues below the branch.
                let nibble = key.get(d).unwrap_or(0) as usize;
                children[nibble] = Some(leaf_refs[i - first]);
            }
            branches.push(encode_branch(&children, None));
        }
        let mut branch_refs = node_refs(&branches).into_iter();
        let mut items: Vec<(Nibbles, NodeRef, bool)> = Vec::with_capacity(groups.len());
        for &(start, end, whole) in groups {
            if whole {
                let branch = branch_refs.next().expect("one reference per whole group");
                items.push((order[start].1.prefix(depth(start)), branch, true));
            } else {
                items.extend((start..end).map(|i| (order[i].1.prefix(depth(i) + 1), leaf_refs[i - first], false)));
            }
        }
        items
    };
    let hash_groups = |groups: &[(usize, usize, bool)]| -> Vec<(Nibbles, NodeRef, bool)> {
        groups.chunks(BATCH_GROUPS).flat_map(hash_batch).collect()
    };
    let items: Vec<(Nibbles, NodeRef, bool)> = if threads == 1 {
        hash_groups(&groups)
    } else {
        let per_thread = groups.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = groups.chunks(per_thread).skip(1).map(|c| scope.spawn(|| hash_groups(c))).collect();
            let mut items = hash_groups(&groups[..per_thread.min(groups.len())]);
            for part in parts {
                // Hashing cannot panic short of running out of memory.
                items.extend(part.join().expect("receipt hashing thread"));
            }
            items
        })
    };
    let mut builder = RootBuilder::new();
    for (path, node_ref, is_branch) in items {
        // Items are in key order; every leaf slot hangs below a branch
        // (at least two keys), bottom branches cover whole subtrees.
        if is_branch {
            builder.add_branch(path, node_ref, false).expect("branches in key order");
        } else {
            builder.add_slot(path, node_ref, ChildKind::Leaf).expect("slots in key order");
        }
    }
    builder.finish().expect("slots under branches").root()
}

/// The references of encoded nodes: inline below 32 bytes, else their
/// hashes, taken in one batch.
fn node_refs(nodes: &[Vec<u8>]) -> Vec<NodeRef> {
    let long: Vec<&[u8]> = nodes.iter().filter(|n| n.len() > MAX_INLINE_NODE_LEN).map(Vec::as_slice).collect();
    let mut hashes = metis_keccak::keccak256_all(&long).into_iter();
    nodes
        .iter()
        .map(|n| {
            if n.len() > MAX_INLINE_NODE_LEN {
                NodeRef::from_hash(hashes.next().expect("one hash per long node"))
            } else {
                NodeRef::from_rlp(n)
            }
        })
        .collect()
}

/// Indices with their trie keys `rlp(index)` as nibbles, in key order:
/// `rlp(1..=127)` are the single bytes 0x01..=0x7f, `rlp(0)` is 0x80, and
/// from 128 on the keys are a length byte (0x81, 0x82, ...) then the
/// big-endian number, so numeric order within each length.
fn trie_order(n: usize) -> Vec<(usize, Nibbles)> {
    let key = |i: usize| {
        let mut key = Vec::with_capacity(9);
        i.encode(&mut key);
        (i, Nibbles::unpack(&key))
    };
    (1..n.min(128)).chain((n > 0).then_some(0)).chain(128..n).map(key).collect()
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
    builder.finish().expect("a trie of leaves only").root()
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

    fn arb_log() -> impl Strategy<Value = Log> {
        // Few distinct values, so that addresses and topics repeat within a
        // transaction's logs, and topics that hold one of the addresses.
        let address = (0u8..4).prop_map(Address::with_last_byte);
        let topic = prop_oneof![
            (0u8..6).prop_map(B256::with_last_byte),
            (0u8..4).prop_map(|a| Address::with_last_byte(a).into_word())
        ];
        (address, proptest::collection::vec(topic, 0..=4))
            .prop_map(|(address, topics)| Log::new_unchecked(address, topics, Default::default()))
    }

    proptest! {
        #[test]
        fn logs_bloom_matches_alloy(logs in proptest::collection::vec(arb_log(), 0..40)) {
            let mut reference = Bloom::ZERO;
            reference.accrue_logs(&logs);
            prop_assert_eq!(logs_bloom(&logs), reference);
        }

        #[test]
        fn a_bloomer_that_remembers_inputs_matches_alloy(
            txs in proptest::collection::vec(proptest::collection::vec(arb_log(), 0..12), 1..30)
        ) {
            let mut bloomer = LogsBloomer::default();
            for logs in &txs {
                let mut reference = Bloom::ZERO;
                reference.accrue_logs(logs);
                prop_assert_eq!(bloomer.bloom(logs), reference);
            }
        }
    }

    #[test]
    fn a_bloomer_starts_over_when_full_and_stays_exact() {
        let mut bloomer = LogsBloomer::default();
        // Each transaction: a repeated contract and signature, a new party.
        for i in 0..3 * BLOOM_CACHE_ENTRIES as u64 {
            let party = B256::left_padding_from(&i.to_be_bytes());
            let logs = [Log::new_unchecked(
                Address::with_last_byte(7),
                vec![B256::with_last_byte(1), party],
                Default::default(),
            )];
            let mut reference = Bloom::ZERO;
            reference.accrue_logs(&logs);
            assert_eq!(bloomer.bloom(&logs), reference, "transaction {i}");
            assert!(bloomer.topics.len() <= BLOOM_CACHE_ENTRIES + 2, "{} topics remembered", bloomer.topics.len());
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
            logs_bloom: (!logs.is_empty()).then(|| Box::new(logs_bloom(&logs))),
            logs,
        }
    }

    #[test]
    fn parallel_receipts_root_equals_sequential() {
        for n in [2, 3, 17, 127, 128, 129, 200, 255, 256, 257, 1024, 1025, 1500, 4099, 70_000] {
            let receipts: Vec<Receipt> = (0..n).map(receipt).collect();
            let sequential = ordered_trie_root(receipts.iter().map(Receipt::encoded_2718));
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
