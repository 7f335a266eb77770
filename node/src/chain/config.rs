//! Chain parameters of the dev chain.

use alloy_primitives::{Address, U256};
use metis_executor::revm::primitives::hardfork::SpecId;

/// Parameters that fix the chain: stored at genesis and checked on restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Fork rules of every block.
    pub spec: SpecId,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Base fee of the genesis block.
    pub initial_base_fee: u64,
    /// Balance of every funded dev account.
    pub dev_balance: U256,
    /// Beneficiary of every block.
    pub coinbase: Address,
}

impl ChainConfig {
    /// The dev chain: chain id 1337, the latest fork revm implements, 1 gwei initial base fee.
    pub fn dev() -> Self {
        ChainConfig {
            chain_id: 1337,
            spec: SpecId::OSAKA,
            gas_limit: 300_000_000,
            initial_base_fee: 1_000_000_000,
            dev_balance: crate::dev::dev_balance(),
            coinbase: Address::ZERO,
        }
    }

    /// The record stored under METADATA `node/chain`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "chainId": self.chain_id,
            "fork": format!("{:?}", self.spec),
            "gasLimit": self.gas_limit,
            "initialBaseFee": self.initial_base_fee,
            "coinbase": format!("{:#x}", self.coinbase),
        })
    }

    /// Whether a stored record describes this chain (what must not change across restarts).
    pub fn check_stored(&self, stored: &serde_json::Value) -> Result<(), String> {
        let chain_id = stored.get("chainId").and_then(|v| v.as_u64());
        if chain_id != Some(self.chain_id) {
            return Err(format!("stored chain id {chain_id:?}, this node runs {}", self.chain_id));
        }
        let fork = stored.get("fork").and_then(|v| v.as_str()).unwrap_or_default();
        if fork != format!("{:?}", self.spec) {
            return Err(format!("stored fork {fork:?}, this node runs {:?}", self.spec));
        }
        Ok(())
    }
}
