//! Turns revm's per-transaction state diff into multi-version writes, with the
//! beneficiary fee as a lazy balance addition.

use alloy_primitives::{Address, U256};
use metisdb::pending::{AccountBasic, StateKey, StateValue, WriteOp};
use revm::primitives::KECCAK_EMPTY;
use revm::state::{Account, EvmState};

fn basic_of(account: &Account) -> AccountBasic {
    AccountBasic { nonce: account.info.nonce, balance: account.info.balance, code_hash: account.info.code_hash }
}

fn destroy(address: Address, writes: &mut Vec<(StateKey, WriteOp)>) {
    writes.push((StateKey::Account(address), WriteOp::Set(StateValue::Account(None))));
    writes.push((StateKey::StorageWipe(address), WriteOp::Set(StateValue::StorageWipe)));
}

/// Writes of one touched account, following the commit rules of revm's
/// database (`CacheState::apply_account_state`); the journal has already
/// normalised pre-EIP-161 empty accounts in `finalize`.
fn account_writes(address: Address, account: &Account, writes: &mut Vec<(StateKey, WriteOp)>) {
    if account.is_selfdestructed() {
        // An account that did not exist when the transaction started (created
        // and destroyed within it) leaves nothing behind.
        if !account.is_loaded_as_not_existing() {
            destroy(address, writes);
        }
        return;
    }
    let created = account.is_created();
    if !created && account.is_empty() {
        // EIP-161: a touched empty account is removed; one that did not exist
        // stays absent and needs no write.
        if !account.is_loaded_as_not_existing() {
            destroy(address, writes);
        }
        return;
    }
    let basic = basic_of(account);
    let original = account.original_info();
    let info_changed = created
        || account.is_loaded_as_not_existing()
        || basic.nonce != original.nonce
        || basic.balance != original.balance
        || basic.code_hash != original.code_hash;
    if created {
        // A created account starts with empty storage whatever was there.
        writes.push((StateKey::StorageWipe(address), WriteOp::Set(StateValue::StorageWipe)));
    }
    if info_changed {
        writes.push((StateKey::Account(address), WriteOp::Set(StateValue::Account(Some(basic)))));
    }
    if basic.code_hash != KECCAK_EMPTY && (created || basic.code_hash != original.code_hash) {
        if let Some(code) = &account.info.code {
            writes.push((StateKey::Code(basic.code_hash), WriteOp::Set(StateValue::Code(code.original_bytes()))));
        }
    }
    for (slot, value) in account.storage.iter() {
        // A created account keeps even slots set back to zero-original out;
        // only changed slots differ from what the block saw before.
        if value.is_changed() {
            writes.push((StateKey::Storage(address, *slot), WriteOp::Set(StateValue::Storage(value.present_value()))));
        }
    }
}

/// The beneficiary's write when the transaction itself touched it: revm adds
/// the fee before committing, so the fee goes into the full value.
fn beneficiary_writes(address: Address, account: &Account, reward: U256, writes: &mut Vec<(StateKey, WriteOp)>) {
    if account.is_selfdestructed() {
        // The fee lands on an account that is deleted at the end of the
        // transaction: it is burnt, as in revm and go-ethereum.
        account_writes(address, account, writes);
        return;
    }
    // Pre-EIP-161 empty accounts were already normalised by the journal's
    // `finalize` (materialised or untouched), so the commit rules apply as is.
    let mut account = account.clone();
    account.info.balance = account.info.balance.saturating_add(reward);
    account_writes(address, &account, writes);
}

/// All writes of one transaction. `reward` is the fee revm would have paid
/// the beneficiary.
pub fn collect_writes(state: &EvmState, beneficiary: Address, reward: U256) -> Vec<(StateKey, WriteOp)> {
    let mut writes = Vec::with_capacity(state.len() * 2);
    let mut beneficiary_done = false;
    for (address, account) in state.iter() {
        if *address == beneficiary && account.is_touched() {
            beneficiary_writes(*address, account, reward, &mut writes);
            beneficiary_done = true;
        } else if account.is_touched() {
            account_writes(*address, account, &mut writes);
        }
    }
    if !beneficiary_done {
        writes.push((StateKey::Account(beneficiary), WriteOp::AddBalance(reward)));
    }
    // Two contracts created with the same code write the same content-addressed
    // code key; every other key belongs to exactly one account.
    writes.sort_unstable_by_key(|a| a.0);
    writes.dedup_by(|a, b| a.0 == b.0);
    writes
}
