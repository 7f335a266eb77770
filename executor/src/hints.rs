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

use crate::scheduler::Scheduler;
use alloy_primitives::map::{HashMap, HashSet};
use alloy_primitives::{Address, TxKind};
use metisdb::pending::{StateKey, TxIndex};
use revm::context::TxEnv;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

pub struct DependencyHints {
    previous_same_sender: Vec<Option<TxIndex>>,
    /// The accounts each transaction is predicted to touch: transaction `i`'s
    /// are `predicted[predicted_at[i]..predicted_at[i + 1]]` (flat: no
    /// allocation per transaction).
    predicted: Vec<Address>,
    predicted_at: Vec<usize>,
    /// (account, transaction predicted to touch it), sorted: the touchers of
    /// an account are one run, ascending.
    touchers: Vec<(Address, TxIndex)>,
    hot: RwLock<HashSet<Address>>,
    any_hot: AtomicBool,
}

impl DependencyHints {
    pub fn new(txs: &[TxEnv]) -> Self {
        let mut last_of_sender: HashMap<Address, TxIndex> = HashMap::default();
        last_of_sender.reserve(txs.len());
        let mut previous_same_sender = Vec::with_capacity(txs.len());
        let mut predicted: Vec<Address> = Vec::with_capacity(txs.len());
        let mut predicted_at = Vec::with_capacity(txs.len() + 1);
        predicted_at.push(0);
        for (i, tx) in txs.iter().enumerate() {
            previous_same_sender.push(last_of_sender.insert(tx.caller, i));
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
        let mut touchers: Vec<(Address, TxIndex)> = Vec::with_capacity(predicted.len());
        for i in 0..txs.len() {
            touchers.extend(predicted[predicted_at[i]..predicted_at[i + 1]].iter().map(|a| (*a, i)));
        }
        touchers.sort_unstable();
        Self {
            previous_same_sender,
            predicted,
            predicted_at,
            touchers,
            hot: RwLock::new(HashSet::default()),
            any_hot: AtomicBool::new(false),
        }
    }

    /// The transactions predicted to touch `address`: one run of `touchers`.
    fn touchers_of(&self, address: &Address) -> &[(Address, TxIndex)] {
        let lo = self.touchers.partition_point(|(a, _)| a < address);
        let hi = lo + self.touchers[lo..].partition_point(|(a, _)| a == address);
        &self.touchers[lo..hi]
    }

    /// The closest transaction below `tx` predicted to touch `address`.
    fn toucher_below(&self, address: &Address, tx: TxIndex) -> Option<TxIndex> {
        let run = self.touchers_of(address);
        run.partition_point(|(_, i)| *i < tx).checked_sub(1).map(|k| run[k].1)
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
            .filter(|a| hot.contains(*a))
            .filter_map(|a| self.toucher_below(a, tx))
            .filter(|&i| !scheduler.is_executed(i))
            .max()
    }

    /// Records that a read of `key` failed validation.
    pub fn note_conflict(&self, key: &StateKey) {
        let Some(address) = key.address() else { return };
        if self.touchers_of(&address).is_empty() {
            return;
        }
        self.hot.write().unwrap_or_else(|e| e.into_inner()).insert(address);
        self.any_hot.store(true, Ordering::Relaxed);
    }
}
