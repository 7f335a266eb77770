//! Same-sender chains of plain value transfers, executed without reading the
//! sender.
//!
//! An exchange or a mining pool paying out sends hundreds of transfers from
//! one account in one block. Each reads the nonce and balance the previous
//! one wrote, so Block-STM runs them one after the other. Yet a plain
//! transfer (no calldata, to an account without code) needs the sender's
//! state only for two checks, nonce and balance; its effect on the sender is
//! a debit: nonce + 1, balance - (value + fee).
//!
//! So a chain transaction runs against a stand-in sender (its own nonce, a
//! balance no check can fail) and records a [`WriteOp::Debit`] instead of a
//! write of the account. Two transfers of one sender then conflict no more
//! than two transfers of different senders. When the block is done,
//! [`DebitChains::hold`] replays each sender's history in order and checks
//! the nonce and balance every chain transaction would have seen. If a check
//! fails, or a chain transaction did more than a plain transfer (its
//! recipient turned out to have code), the parallel run is discarded and the
//! block runs on the sequential path.
//!
//! Plain transfers are small (a few microseconds), and a block that is one
//! long chain gains little from a second worker in its transactions: auto
//! mode runs such a block in parallel only when it is large enough for the
//! receipts and final writes built on every thread to pay
//! ([`crate::choose_workers`]). Chains keep a payout inside an otherwise
//! parallel block from serializing it, and keep Block-STM from running a
//! payout one transaction after the other.

use crate::hints::DependencyHints;
use alloy_primitives::map::{HashMap, HashSet};
use alloy_primitives::{Address, U256};
use metisdb::pending::{AccountBasic, MvMemory, StateError, StateKey, StateValue, TxIndex, WriteOp, EMPTY_CODE_HASH};
use revm::context::TxEnv;
use revm::context_interface::Transaction;
use revm::primitives::TxKind;

/// The balance the stand-in sender shows: large enough for any transaction's
/// maximum spending, far enough from the top that nothing overflows.
pub const STAND_IN_BALANCE: U256 = U256::from_limbs([0, 0, 0, 1 << 62]);

/// Plain transfers a sender needs in the block to be run as a chain. Below
/// that, waiting for the sender's previous transaction (the dependency
/// hints) costs little: a few transactions of one sender are usually far
/// apart, and their predecessor has executed by the time they start, while
/// a chain makes every read of its sender more expensive. Payouts send
/// hundreds.
const MIN_CHAIN_TXS: usize = 8;

/// Gas of a plain transfer: the intrinsic gas and nothing else.
const PLAIN_TRANSFER_GAS: u64 = 21_000;

/// Precompiles live at the lowest addresses; a transfer to one runs it.
fn is_precompile_range(address: &Address) -> bool {
    address.0[..18].iter().all(|b| *b == 0)
}

/// The recipient of `tx` if it is a plain transfer by its form: a call with
/// no calldata, no access list, no blobs and no authorizations, to another
/// account outside the precompile range.
pub(crate) fn plain_transfer_to(tx: &TxEnv) -> Option<Address> {
    let TxKind::Call(to) = tx.kind else { return None };
    let plain = tx.data.is_empty()
        && tx.access_list.0.is_empty()
        && tx.blob_hashes.is_empty()
        && tx.authorization_list.is_empty()
        && to != tx.caller
        && !is_precompile_range(&to);
    plain.then_some(to)
}

/// The chains of one block.
#[derive(Default)]
pub struct DebitChains {
    /// Senders of at least [`MIN_CHAIN_TXS`] plain transfers to accounts without code, the
    /// sender itself an account without code. Their other transactions read
    /// and write them in full, as usual.
    pub senders: HashSet<Address>,
    /// Per transaction: a plain transfer by one of `senders`.
    in_chain: Vec<bool>,
}

impl DebitChains {
    /// The chains of `txs` over the state before the first transaction. An
    /// EIP-7702 authorization anywhere in the block can give an account code:
    /// no chains then.
    pub fn detect(txs: &[TxEnv], mv: &MvMemory<'_>, hints: &DependencyHints) -> Self {
        // Senders of at least MIN_CHAIN_TXS transactions, from the hints'
        // same-sender links: no map over every transaction of a large block.
        let mut sent_before: Vec<u32> = Vec::with_capacity(txs.len());
        for tx in 0..txs.len() {
            let count = hints.previous_same_sender(tx).map_or(0, |previous| sent_before[previous] + 1);
            sent_before.push(count);
        }
        let repeated: HashSet<Address> = (0..txs.len())
            .filter(|&tx| sent_before[tx] as usize + 1 == MIN_CHAIN_TXS)
            .map(|tx| txs[tx].caller)
            .collect();
        if repeated.is_empty() || txs.iter().any(|tx| !tx.authorization_list.is_empty()) {
            return Self::default();
        }
        let without_code = |address: &Address| match mv.read_account(address, 0) {
            Ok((account, _)) => account.is_none_or(|a| a.code_hash == EMPTY_CODE_HASH),
            Err(_) => false,
        };
        let mut in_chain: Vec<bool> = txs
            .iter()
            .map(|tx| repeated.contains(&tx.caller) && plain_transfer_to(tx).is_some_and(|to| without_code(&to)))
            .collect();
        let mut chain_txs: HashMap<Address, usize> = HashMap::default();
        for (tx, _) in txs.iter().zip(&in_chain).filter(|(_, chain)| **chain) {
            *chain_txs.entry(tx.caller).or_default() += 1;
        }
        let senders: HashSet<Address> = chain_txs
            .into_iter()
            .filter(|(sender, count)| {
                *count >= MIN_CHAIN_TXS
                    && matches!(mv.read_account(sender, 0), Ok((Some(a), _)) if a.code_hash == EMPTY_CODE_HASH)
            })
            .map(|(sender, _)| sender)
            .collect();
        for (tx, chain) in txs.iter().zip(in_chain.iter_mut()) {
            *chain &= senders.contains(&tx.caller);
        }
        Self { senders, in_chain }
    }

    /// `tx` is a chain transaction.
    pub fn contains(&self, tx: TxIndex) -> bool {
        self.in_chain.get(tx).copied().unwrap_or(false)
    }

    /// Turns the writes of chain transaction `tx`, run against the stand-in
    /// sender, into a debit of the sender. `None` if the transaction was not
    /// a plain transfer after all (it used more than the intrinsic gas: its
    /// recipient has code) or did not leave the sender as a transfer does.
    pub fn debit(tx: &TxEnv, gas_used: u64, mut writes: Vec<(StateKey, WriteOp)>) -> Option<Vec<(StateKey, WriteOp)>> {
        if gas_used != PLAIN_TRANSFER_GAS {
            return None;
        }
        let sender = StateKey::Account(tx.caller);
        let (_, op) = writes.iter_mut().find(|(key, _)| *key == sender)?;
        let WriteOp::Set(StateValue::Account(Some(after))) = op else { return None };
        let left_as_a_transfer = after.nonce == tx.nonce.checked_add(1)?
            && after.code_hash == EMPTY_CODE_HASH
            && after.balance <= STAND_IN_BALANCE;
        if !left_as_a_transfer {
            return None;
        }
        *op = WriteOp::Debit(STAND_IN_BALANCE - after.balance);
        Some(writes)
    }

    /// Once the block is done: every chain transaction would have passed
    /// revm's nonce and balance checks against the sender it really had.
    pub fn hold(&self, txs: &[TxEnv], mv: &MvMemory<'_>) -> Result<bool, StateError> {
        mv.check_debits(|tx, _, sender: &AccountBasic| {
            let tx = &txs[tx];
            sender.nonce == tx.nonce && tx.max_balance_spending().is_ok_and(|max| sender.balance >= max)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Bytes;
    use revm::context_interface::transaction::{AccessList, AccessListItem};

    fn transfer(caller: u8, to: u8) -> TxEnv {
        TxEnv { caller: Address::repeat_byte(caller), kind: TxKind::Call(Address::repeat_byte(to)), ..TxEnv::default() }
    }

    #[test]
    fn only_plain_transfers_by_their_form_are_chain_candidates() {
        assert_eq!(plain_transfer_to(&transfer(1, 9)), Some(Address::repeat_byte(9)));
        let mut call = transfer(1, 9);
        call.data = Bytes::from_static(&[1]);
        assert_eq!(plain_transfer_to(&call), None, "calldata");
        let mut listed = transfer(1, 9);
        listed.access_list = AccessList(vec![AccessListItem { address: Address::ZERO, storage_keys: vec![] }]);
        assert_eq!(plain_transfer_to(&listed), None, "an access list");
        let mut to_precompile = transfer(1, 0);
        to_precompile.kind = TxKind::Call(Address::with_last_byte(2));
        assert_eq!(plain_transfer_to(&to_precompile), None, "a precompile");
        assert_eq!(plain_transfer_to(&transfer(1, 1)), None, "a transfer to oneself");
        let mut create = transfer(1, 9);
        create.kind = TxKind::Create;
        assert_eq!(plain_transfer_to(&create), None, "a creation");
    }
}
