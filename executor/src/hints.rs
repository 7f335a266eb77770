//! Dynamic dependency hints: predictable conflicts make a transaction wait
//! for the lower transaction it will conflict with instead of executing,
//! failing validation and re-executing.
//!
//! - Same sender: a sender's transaction needs its previous transaction's
//!   nonce, so it waits for that transaction to finish executing.
//! - Hot accounts: once a read of an account's state failed validation in
//!   this block, a transaction predicted to touch that account (its `to`, the
//!   addresses of its EIP-2930 access list) waits for the closest lower
//!   transaction predicted to touch it.
//!
//! Hints only delay executions, so they never change results.

use crate::chains::DebitChains;
use crate::scheduler::Scheduler;
use alloy_primitives::map::HashMap;
use alloy_primitives::{Address, TxKind};
use metisdb::pending::{StateKey, TxIndex};
use revm::context::TxEnv;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// Hot accounts kept at most: each costs a scan of the predictions and a
/// list of its touchers; past this many, further conflicts go unhinted (they
/// still re-execute correctly).
const MAX_HOT_ACCOUNTS: usize = 256;

pub struct DependencyHints {
    previous_same_sender: Vec<Option<TxIndex>>,
    /// The accounts each transaction is predicted to touch: transaction `i`'s
    /// are `predicted[predicted_at[i]..predicted_at[i + 1]]` (flat: no
    /// allocation per transaction).
    predicted: Vec<Address>,
    predicted_at: Vec<usize>,
    /// Each hot account with the transactions predicted to touch it,
    /// ascending. Built when the account turns hot, not for every account up
    /// front: most blocks have a handful of hot accounts or none.
    hot: RwLock<HashMap<Address, Vec<TxIndex>>>,
    any_hot: AtomicBool,
}

/// 32 bits of `address` (a multiplicative hash of its bytes): senders that
/// share one are told apart by [`previous_same_sender`].
fn sender_fingerprint(address: &Address) -> u32 {
    let b = address.as_slice();
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let tail = u64::from(u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")));
    let mixed = word(0) ^ word(8).rotate_left(21) ^ tail.rotate_left(42);
    (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

/// For each transaction, the closest lower one with the same sender. The
/// transactions are sorted by the fingerprint of their sender with their
/// index below it (so a sender's transactions come out in order): on the
/// 47,619 transfers of a gigagas block a hash map of the senders took
/// 3.4-5.3 ms, its inserts missing the cache. A run of one fingerprint
/// with more than one sender in it (a collision) is sorted again by the
/// full address: no input makes this quadratic.
fn previous_same_sender(callers: &[Address], fingerprint: impl Fn(&Address) -> u32) -> Vec<Option<TxIndex>> {
    assert!(u32::try_from(callers.len()).is_ok(), "{} transactions in one block", callers.len());
    let tx_of = |entry: u64| (entry & u64::from(u32::MAX)) as TxIndex;
    let mut order: Vec<u64> =
        callers.iter().enumerate().map(|(i, a)| (u64::from(fingerprint(a)) << 32) | i as u64).collect();
    order.sort_unstable();
    let mut previous = vec![None; callers.len()];
    let mut start = 0;
    while start < order.len() {
        let key = order[start] >> 32;
        let len = order[start..].iter().take_while(|&&e| e >> 32 == key).count();
        let run = &mut order[start..start + len];
        let first = callers[tx_of(run[0])];
        if run.iter().any(|&e| callers[tx_of(e)] != first) {
            run.sort_unstable_by_key(|&e| (callers[tx_of(e)], tx_of(e)));
        }
        for pair in run.windows(2) {
            let (before, tx) = (tx_of(pair[0]), tx_of(pair[1]));
            if callers[before] == callers[tx] {
                previous[tx] = Some(before);
            }
        }
        start += len;
    }
    previous
}

impl DependencyHints {
    pub fn new(txs: &[TxEnv]) -> Self {
        let mut predicted: Vec<Address> = Vec::with_capacity(txs.len());
        let mut predicted_at = Vec::with_capacity(txs.len() + 1);
        predicted_at.push(0);
        // One pass over the transactions that only copies: a large block's
        // transactions are not in the cache, and with nothing but loads in
        // the loop many of their misses overlap. The same-sender links are
        // then found in the compact copy.
        let callers: Vec<Address> = txs.iter().map(|tx| tx.caller).collect();
        for tx in txs {
            let start = predicted.len();
            if let TxKind::Call(to) = tx.kind {
                predicted.push(to);
            }
            predicted.extend(tx.access_list.0.iter().map(|item| item.address));
            if predicted.len() - start > 1 {
                predicted[start..].sort_unstable();
                let mut kept = start;
                for j in start..predicted.len() {
                    if j == start || predicted[j] != predicted[kept - 1] {
                        predicted[kept] = predicted[j];
                        kept += 1;
                    }
                }
                predicted.truncate(kept);
            }
            predicted_at.push(predicted.len());
        }
        let previous_same_sender = previous_same_sender(&callers, sender_fingerprint);
        Self {
            previous_same_sender,
            predicted,
            predicted_at,
            hot: RwLock::new(HashMap::default()),
            any_hot: AtomicBool::new(false),
        }
    }

    /// The transactions predicted to touch `address`, ascending: one pass
    /// over the predictions.
    fn touchers_of(&self, address: &Address) -> Vec<TxIndex> {
        (0..self.predicted_at.len() - 1)
            .filter(|&i| self.predicted[self.predicted_at[i]..self.predicted_at[i + 1]].contains(address))
            .collect()
    }

    /// The closest lower transaction of `tx`'s sender, if any.
    pub fn previous_same_sender(&self, tx: TxIndex) -> Option<TxIndex> {
        self.previous_same_sender[tx]
    }

    /// Transactions of `chains` wait for no lower transaction of their
    /// sender: they do not read it.
    pub fn release_chains(&mut self, chains: &DebitChains) {
        for (tx, previous) in self.previous_same_sender.iter_mut().enumerate() {
            if chains.contains(tx) {
                *previous = None;
            }
        }
    }

    /// A lower transaction `tx` should wait for before executing, if any.
    pub fn dependency(&self, tx: TxIndex, scheduler: &Scheduler) -> Option<TxIndex> {
        if let Some(previous) = self.previous_same_sender[tx] {
            if !scheduler.is_executed(previous) {
                return Some(previous);
            }
        }
        if !self.any_hot.load(Ordering::Relaxed) {
            return None;
        }
        let hot = self.hot.read().unwrap_or_else(|e| e.into_inner());
        self.predicted[self.predicted_at[tx]..self.predicted_at[tx + 1]]
            .iter()
            .filter_map(|a| hot.get(a))
            // The closest transaction below `tx` predicted to touch the account.
            .filter_map(|touchers| touchers.partition_point(|&i| i < tx).checked_sub(1).map(|k| touchers[k]))
            .filter(|&i| !scheduler.is_executed(i))
            .max()
    }

    /// Records that a read of `key` failed validation.
    pub fn note_conflict(&self, key: &StateKey) {
        let Some(address) = key.address() else { return };
        {
            let hot = self.hot.read().unwrap_or_else(|e| e.into_inner());
            if hot.contains_key(&address) || hot.len() >= MAX_HOT_ACCOUNTS {
                return;
            }
        }
        let touchers = self.touchers_of(&address);
        if touchers.is_empty() {
            return;
        }
        let mut hot = self.hot.write().unwrap_or_else(|e| e.into_inner());
        if hot.len() < MAX_HOT_ACCOUNTS {
            hot.insert(address, touchers);
            self.any_hot.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;
    use revm::context_interface::transaction::{AccessList, AccessListItem};

    fn call(caller: u8, to: u8, listed: &[u8]) -> TxEnv {
        let items = listed.iter().map(|&a| AccessListItem { address: Address::repeat_byte(a), storage_keys: vec![] });
        TxEnv {
            caller: Address::repeat_byte(caller),
            kind: TxKind::Call(Address::repeat_byte(to)),
            access_list: AccessList(items.collect()),
            ..TxEnv::default()
        }
    }

    /// The links a map of each sender's last transaction gives.
    fn links_by_map(callers: &[Address]) -> Vec<Option<TxIndex>> {
        let mut last: HashMap<Address, TxIndex> = HashMap::default();
        callers.iter().enumerate().map(|(i, caller)| last.insert(*caller, i)).collect()
    }

    #[test]
    fn same_sender_links_equal_a_map_of_last_transactions() {
        let mut rng = crate::synthetic::Rng(1);
        for (txs, senders) in [(0, 1), (1, 1), (2, 1), (50, 1), (500, 7), (2000, 300), (5000, 5000)] {
            let callers: Vec<Address> = (0..txs)
                .map(|_| {
                    let mut a = [0u8; 20];
                    a[12..20].copy_from_slice(&(rng.next() % senders).to_be_bytes());
                    Address::from(a)
                })
                .collect();
            let want = links_by_map(&callers);
            assert_eq!(previous_same_sender(&callers, sender_fingerprint), want, "{txs} txs, {senders} senders");
            // Every sender colliding with every other: the runs are sorted again.
            assert_eq!(previous_same_sender(&callers, |_| 7), want, "{txs} txs, one fingerprint");
            assert_eq!(previous_same_sender(&callers, |a| u32::from(a[19] & 1)), want, "{txs} txs, two fingerprints");
        }
    }

    #[test]
    fn hot_accounts_make_the_closest_lower_toucher_a_dependency() {
        let (a, b, c) = (0xaa, 0xbb, 0xcc);
        let txs = [
            call(1, a, &[]),
            call(2, b, &[]),
            call(3, a, &[a]),
            call(4, b, &[a, c]),
            call(5, c, &[]),
            call(6, c, &[a]),
            call(2, b, &[]),
        ];
        let hints = DependencyHints::new(&txs);
        let scheduler = Scheduler::new(txs.len());
        // Before any conflict only the same sender (tx 1 and tx 6) waits.
        let deps: Vec<_> = (0..txs.len()).map(|tx| hints.dependency(tx, &scheduler)).collect();
        assert_eq!(deps, [None, None, None, None, None, None, Some(1)]);

        // An account nobody is predicted to touch does not turn hot.
        hints.note_conflict(&StateKey::Account(Address::repeat_byte(0xdd)));
        assert!(!hints.any_hot.load(Ordering::Relaxed));

        hints.note_conflict(&StateKey::Storage(Address::repeat_byte(a), U256::ZERO));
        let deps: Vec<_> = (0..txs.len()).map(|tx| hints.dependency(tx, &scheduler)).collect();
        assert_eq!(deps, [None, None, Some(0), Some(2), None, Some(3), Some(1)]);

        // Two hot accounts: the closest lower toucher of either.
        hints.note_conflict(&StateKey::Account(Address::repeat_byte(c)));
        hints.note_conflict(&StateKey::Account(Address::repeat_byte(c)));
        assert_eq!(hints.hot.read().unwrap().len(), 2);
        let deps: Vec<_> = (0..txs.len()).map(|tx| hints.dependency(tx, &scheduler)).collect();
        assert_eq!(deps, [None, None, Some(0), Some(2), Some(3), Some(4), Some(1)]);
    }
}
