//! Receipts: consensus encoding, logs bloom, receipts root, logs hash.

use crate::trie_root::ordered_trie_root;
use alloy_primitives::{keccak256, Bloom, Log, B256};
use alloy_rlp::{Encodable, Header};

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
    let encoded: Vec<Vec<u8>> = receipts.iter().map(Receipt::encoded_2718).collect();
    ordered_trie_root(&encoded)
}

/// keccak256 of the RLP list of logs: the `logs` field of state tests.
pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut out = Vec::new();
    alloy_rlp::encode_list(logs, &mut out);
    keccak256(out)
}
