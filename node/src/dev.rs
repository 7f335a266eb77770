//! The dev chain: the standard test mnemonic's accounts and the genesis
//! allocation (funded accounts plus the system contracts the fork calls).

use crate::chain::ChainConfig;
use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner};
use metisdb::state::{AccountInfo, StateWriter, KECCAK_EMPTY};

/// The mnemonic of anvil and hardhat.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Dev accounts funded at genesis.
pub const DEV_ACCOUNTS: u32 = 10;

/// 10,000 ETH in wei.
pub fn dev_balance() -> U256 {
    U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64))
}

/// One dev account.
#[derive(Clone, Debug)]
pub struct DevAccount {
    /// Its address.
    pub address: Address,
    /// Its private key.
    pub key: B256,
    /// The signer.
    pub signer: PrivateKeySigner,
}

/// Derives account `index` (BIP-44 m/44'/60'/0'/0/index) of a mnemonic.
pub fn derive(mnemonic: &str, index: u32) -> Result<DevAccount, String> {
    let signer = MnemonicBuilder::english()
        .phrase(mnemonic)
        .index(index)
        .and_then(|b| b.build())
        .map_err(|e| format!("cannot derive account {index}: {e}"))?;
    Ok(DevAccount { address: signer.address(), key: signer.to_bytes(), signer })
}

/// The first `n` accounts of the dev mnemonic.
pub fn dev_accounts(n: u32) -> Result<Vec<DevAccount>, String> {
    (0..n).map(|i| derive(DEV_MNEMONIC, i)).collect()
}

/// Writes the dev allocation into the genesis version: funded accounts and
/// the EIP-4788 / EIP-2935 system contracts.
pub fn write_genesis_state(w: &mut StateWriter<'_>, config: &ChainConfig, funded: &[Address]) -> metisdb::Result<()> {
    for address in funded {
        w.set_account(address, Some(AccountInfo { nonce: 0, balance: config.dev_balance, code_hash: KECCAK_EMPTY }))?;
    }
    let system = [
        (metis_executor::block::BEACON_ROOTS_ADDRESS, &alloy_eips::eip4788::BEACON_ROOTS_CODE),
        (metis_executor::block::HISTORY_STORAGE_ADDRESS, &alloy_eips::eip2935::HISTORY_STORAGE_CODE),
    ];
    for (address, code) in system {
        let hash = keccak256(code);
        w.set_code(&hash, code)?;
        // Nonce 1 as in the deployments on mainnet (EIP-161: not empty).
        w.set_account(&address, Some(AccountInfo { nonce: 1, balance: U256::ZERO, code_hash: hash }))?;
    }
    Ok(())
}

/// Signs an EIP-1559 transaction with `signer` and returns its EIP-2718 bytes
/// (test and load-generator helper).
#[allow(clippy::too_many_arguments)]
pub fn sign_eip1559(
    signer: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: alloy_primitives::TxKind,
    value: U256,
    input: alloy_primitives::Bytes,
    gas_limit: u64,
    max_fee_per_gas: u128,
    max_priority_fee_per_gas: u128,
) -> alloy_primitives::Bytes {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_signer::SignerSync;
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas,
        max_priority_fee_per_gas,
        to,
        value,
        access_list: Default::default(),
        input,
    };
    // Signing a 32-byte hash with a valid key cannot fail.
    let sig = signer.sign_hash_sync(&tx.signature_hash()).expect("secp256k1 signing");
    TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_match_anvil_and_hardhat() {
        let accounts = dev_accounts(3).unwrap();
        let expected = [
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        ];
        for (a, e) in accounts.iter().zip(expected) {
            assert_eq!(a.address, e.parse::<Address>().unwrap());
        }
        assert_eq!(
            format!("{:x}", accounts[0].key),
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
    }
}
