//! Headers of the dev chain: every field the fork requires, so that the
//! block hash is the real Ethereum header hash.

use super::ChainConfig;
use alloy_consensus::{Header, EMPTY_OMMER_ROOT_HASH};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_primitives::{Bloom, Bytes, B256, B64, U256};
use metis_executor::revm::primitives::hardfork::SpecId;
use metis_trie::EMPTY_ROOT_HASH;

/// What the block contributes to its header.
#[derive(Clone, Debug)]
pub struct HeaderFields {
    /// Block number.
    pub number: u64,
    /// Parent hash (zero at genesis).
    pub parent_hash: B256,
    /// Seconds since the epoch.
    pub timestamp: u64,
    /// EIP-1559 base fee.
    pub base_fee: u64,
    /// State root after the block.
    pub state_root: B256,
    /// Root of the transactions trie.
    pub transactions_root: B256,
    /// Root of the receipts trie.
    pub receipts_root: B256,
    /// Bloom of all logs.
    pub logs_bloom: Bloom,
    /// Gas used by the transactions.
    pub gas_used: u64,
}

/// The header of a block under the chain's fork rules.
pub fn build_header(config: &ChainConfig, f: &HeaderFields) -> Header {
    let spec = config.spec;
    let at = |s: SpecId| spec.is_enabled_in(s);
    Header {
        parent_hash: f.parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: config.coinbase,
        state_root: f.state_root,
        transactions_root: f.transactions_root,
        receipts_root: f.receipts_root,
        logs_bloom: f.logs_bloom,
        difficulty: U256::ZERO,
        number: f.number,
        gas_limit: config.gas_limit,
        gas_used: f.gas_used,
        timestamp: f.timestamp,
        extra_data: Bytes::new(),
        // The dev chain has no beacon chain: prevrandao is the parent hash.
        mix_hash: f.parent_hash,
        nonce: B64::ZERO,
        base_fee_per_gas: at(SpecId::LONDON).then_some(f.base_fee),
        withdrawals_root: at(SpecId::SHANGHAI).then_some(EMPTY_ROOT_HASH),
        blob_gas_used: at(SpecId::CANCUN).then_some(0),
        excess_blob_gas: at(SpecId::CANCUN).then_some(0),
        parent_beacon_block_root: at(SpecId::CANCUN).then_some(B256::ZERO),
        requests_hash: at(SpecId::PRAGUE).then_some(EMPTY_REQUESTS_HASH),
        ..Default::default()
    }
}

/// EIP-1559 base fee of the block after `parent`.
pub fn base_fee_after(parent: &Header) -> u64 {
    match parent.base_fee_per_gas {
        Some(fee) => BaseFeeParams::ethereum().next_block_base_fee(parent.gas_used, parent.gas_limit, fee),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_fee_follows_eip1559() {
        let config = ChainConfig::dev();
        let mut f = HeaderFields {
            number: 1,
            parent_hash: B256::ZERO,
            timestamp: 1,
            base_fee: 1_000_000_000,
            state_root: B256::ZERO,
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Bloom::ZERO,
            gas_used: config.gas_limit / 2,
        };
        assert_eq!(base_fee_after(&build_header(&config, &f)), 1_000_000_000);
        f.gas_used = config.gas_limit;
        assert_eq!(base_fee_after(&build_header(&config, &f)), 1_125_000_000);
        f.gas_used = 0;
        assert_eq!(base_fee_after(&build_header(&config, &f)), 875_000_000);
    }

    #[test]
    fn osaka_header_has_every_field() {
        let h = build_header(
            &ChainConfig::dev(),
            &HeaderFields {
                number: 0,
                parent_hash: B256::ZERO,
                timestamp: 0,
                base_fee: 7,
                state_root: B256::ZERO,
                transactions_root: EMPTY_ROOT_HASH,
                receipts_root: EMPTY_ROOT_HASH,
                logs_bloom: Bloom::ZERO,
                gas_used: 0,
            },
        );
        assert!(h.requests_hash.is_some() && h.parent_beacon_block_root.is_some() && h.withdrawals_root.is_some());
        // The hash is keccak of the RLP.
        assert_eq!(h.hash_slow(), alloy_primitives::keccak256(alloy_rlp::encode(&h)));
    }
}
