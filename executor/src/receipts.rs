//! Receipts: consensus encoding, logs bloom, receipts root, logs hash.

use alloy_primitives::{keccak256, Bloom, Log, B256};
use alloy_rlp::{Encodable, Header};
use metis_trie::{Nibbles, RootBuilder};

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
    ordered_trie_root(receipts.iter().map(Receipt::encoded_2718))
}

/// Root of the trie `rlp(index) -> item` (receipts, transactions).
pub fn ordered_trie_root(items: impl ExactSizeIterator<Item = Vec<u8>>) -> B256 {
    // Keys in trie order: rlp(0) = 0x80 sorts after rlp(1..=127) = 0x01..=0x7f
    // and before rlp(128..) = 0x81...
    let mut keyed: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(items.len());
    for (i, item) in items.enumerate() {
        let mut key = Vec::with_capacity(9);
        i.encode(&mut key);
        keyed.push((key, item));
    }
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut builder = RootBuilder::new();
    for (key, item) in &keyed {
        // Keys are distinct and sorted; encoded receipts are never empty.
        builder.add_leaf(Nibbles::unpack(key), item).expect("sorted distinct keys, non-empty items");
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
}
