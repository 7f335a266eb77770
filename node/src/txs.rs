//! Signed transactions: decoding from the wire, sender recovery, the
//! executor's `TxEnv`, intrinsic gas.

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, Bytes, TxKind, B256};
use metis_executor::revm::context::TxEnv;
use metis_executor::revm::context_interface::cfg::gas::calculate_initial_tx_gas;
use metis_executor::revm::context_interface::either::Either;
use metis_executor::revm::primitives::hardfork::SpecId;

/// A decoded transaction with its sender and hash.
#[derive(Clone, Debug)]
pub struct SignedTx {
    /// The transaction.
    pub envelope: TxEnvelope,
    /// Recovered sender.
    pub sender: Address,
    /// Transaction hash.
    pub hash: B256,
    /// EIP-2718 encoding (what eth_sendRawTransaction received).
    pub encoded: Bytes,
}

/// Why raw bytes are not a usable transaction (go-ethereum's wording where it has one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not RLP / EIP-2718.
    #[error("rlp: {0}")]
    Rlp(String),
    /// Trailing bytes after the transaction.
    #[error("rlp: input contains more than one value")]
    Trailing,
    /// The signature does not recover.
    #[error("invalid sender")]
    InvalidSender,
}

impl SignedTx {
    /// Decodes EIP-2718 bytes (a legacy RLP list or `type || payload`) and recovers the sender.
    pub fn decode(raw: &[u8]) -> Result<SignedTx, DecodeError> {
        let mut buf = raw;
        let envelope = TxEnvelope::decode_2718(&mut buf).map_err(|e| DecodeError::Rlp(e.to_string()))?;
        if !buf.is_empty() {
            return Err(DecodeError::Trailing);
        }
        let sender = envelope.recover_signer().map_err(|_| DecodeError::InvalidSender)?;
        let hash = *envelope.tx_hash();
        Ok(SignedTx { envelope, sender, hash, encoded: Bytes::copy_from_slice(raw) })
    }

    /// Wraps an envelope whose sender is known (read back from the block tables).
    pub fn with_sender(envelope: TxEnvelope, sender: Address) -> SignedTx {
        let hash = *envelope.tx_hash();
        let encoded = Bytes::from(envelope.encoded_2718());
        SignedTx { envelope, sender, hash, encoded }
    }

    /// Nonce.
    pub fn nonce(&self) -> u64 {
        self.envelope.nonce()
    }

    /// Gas limit.
    pub fn gas_limit(&self) -> u64 {
        self.envelope.gas_limit()
    }

    /// Fee cap (gas price of legacy transactions).
    pub fn max_fee(&self) -> u128 {
        self.envelope.max_fee_per_gas()
    }

    /// Priority fee cap (gas price of legacy transactions).
    pub fn max_tip(&self) -> u128 {
        self.envelope.priority_fee_or_price()
    }

    /// Tip per gas paid at `base_fee`; `None` if the fee cap is below it.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        self.envelope.effective_tip_per_gas(base_fee)
    }

    /// Price per gas paid at `base_fee`.
    pub fn effective_gas_price(&self, base_fee: u64) -> u128 {
        self.envelope.effective_gas_price(Some(base_fee))
    }

    /// The executor's view of the transaction.
    pub fn tx_env(&self) -> TxEnv {
        let tx = &self.envelope;
        let is_legacy_like = !tx.is_dynamic_fee();
        TxEnv {
            tx_type: tx.tx_type() as u8,
            caller: self.sender,
            gas_limit: tx.gas_limit(),
            gas_price: if is_legacy_like { tx.gas_price().unwrap_or_default() } else { tx.max_fee_per_gas() },
            kind: tx.kind(),
            value: tx.value(),
            data: tx.input().clone(),
            nonce: tx.nonce(),
            chain_id: tx.chain_id(),
            access_list: tx.access_list().cloned().unwrap_or_default(),
            gas_priority_fee: tx.max_priority_fee_per_gas(),
            blob_hashes: tx.blob_versioned_hashes().map(<[B256]>::to_vec).unwrap_or_default(),
            max_fee_per_blob_gas: tx.max_fee_per_blob_gas().unwrap_or_default(),
            authorization_list: tx
                .authorization_list()
                .map(|list| list.iter().cloned().map(Either::Left).collect())
                .unwrap_or_default(),
        }
    }

    /// Intrinsic gas under `spec` (with the EIP-7623 calldata floor).
    pub fn intrinsic_gas(&self, spec: SpecId) -> u64 {
        let tx = &self.envelope;
        let (accounts, slots) = tx
            .access_list()
            .map_or((0, 0), |l| (l.0.len() as u64, l.0.iter().map(|i| i.storage_keys.len() as u64).sum::<u64>()));
        let auths = tx.authorization_list().map_or(0, |l| l.len() as u64);
        let g = calculate_initial_tx_gas(spec, tx.input(), tx.kind() == TxKind::Create, accounts, slots, auths, None);
        (g.initial_regular_gas + g.initial_state_gas).max(g.floor_gas)
    }
}
