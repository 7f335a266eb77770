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
    /// Per transaction: the accounts it is predicted to touch.
    predicted: Vec<Vec<Address>>,
    /// Per account: the transactions predicted to touch it, ascending.
    touchers: HashMap<Address, Vec<TxIndex>>,
    hot: RwLock<HashSet<Address>>,
    any_hot: AtomicBool,
}

impl DependencyHints {
    pub fn new(txs: &[TxEnv]) -> Self {
        let mut last_of_sender: HashMap<Address, TxIndex> = HashMap::default();
        let mut previous_same_sender = Vec::with_capacity(txs.len());
        let mut predicted = Vec::with_capacity(txs.len());
        let mut touchers: HashMap<Address, Vec<TxIndex>> = HashMap::default();
        for (i, tx) in txs.iter().enumerate() {
            previous_same_sender.push(last_of_sender.insert(tx.caller, i));
            let mut addresses: Vec<Address> = Vec::new();
            if let TxKind::Call(to) = tx.kind {
                addresses.push(to);
            }
            addresses.extend(tx.access_list.0.iter().map(|item| item.address));
            addresses.sort_unstable();
            addresses.dedup();
            for a in &addresses {
                touchers.entry(*a).or_default().push(i);
            }
            predicted.push(addresses);
        }
        Self {
            previous_same_sender,
            predicted,
            touchers,
            hot: RwLock::new(HashSet::default()),
            any_hot: AtomicBool::new(false),
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
        self.predicted[tx]
            .iter()
            .filter(|a| hot.contains(*a))
            .filter_map(|a| {
                let list = &self.touchers[a];
                let below = list.partition_point(|&i| i < tx);
                below.checked_sub(1).map(|k| list[k])
            })
            .filter(|&i| !scheduler.is_executed(i))
            .max()
    }

    /// Records that a read of `key` failed validation.
    pub fn note_conflict(&self, key: &StateKey) {
        let Some(address) = key.address() else { return };
        if !self.touchers.contains_key(&address) {
            return;
        }
        self.hot.write().unwrap_or_else(|e| e.into_inner()).insert(address);
        self.any_hot.store(true, Ordering::Relaxed);
    }
}
