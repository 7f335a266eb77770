//! The transaction pool: validation against the head state, per-sender
//! nonce queues (future nonces are held until the gap closes), replacement
//! with a fee bump, a bounded size with eviction of the cheapest tail
//! transaction, and selection by effective tip for the next block.

mod error;

pub use error::PoolError;

use crate::txs::SignedTx;
use alloy_consensus::Transaction;
use alloy_primitives::map::HashMap;
use alloy_primitives::{Address, TxKind, B256, U256};
use metis_executor::revm::primitives::hardfork::SpecId;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Limits of the pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Transactions held in total.
    pub max_txs: usize,
    /// Transactions held per sender.
    pub max_per_sender: usize,
    /// Largest nonce distance ahead of the account's nonce that is held.
    pub max_nonce_gap: u64,
    /// Largest encoded transaction (go-ethereum: 128 KiB).
    pub max_tx_size: usize,
    /// Fee bump a replacement needs, in percent (go-ethereum: 10).
    pub price_bump_percent: u128,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_txs: 200_000,
            max_per_sender: 50_000,
            max_nonce_gap: 50_000,
            max_tx_size: 128 * 1024,
            price_bump_percent: 10,
        }
    }
}

/// The chain rules validation needs.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Chain id.
    pub chain_id: u64,
    /// Fork.
    pub spec: SpecId,
    /// Block gas limit.
    pub block_gas_limit: u64,
}

/// The sender's account in the head state.
#[derive(Clone, Copy, Debug, Default)]
pub struct SenderState {
    /// Nonce.
    pub nonce: u64,
    /// Balance.
    pub balance: U256,
}

#[derive(Default)]
struct SenderQueue {
    /// Nonce of the account in the newest state the pool has seen.
    state_nonce: u64,
    txs: BTreeMap<u64, Arc<SignedTx>>,
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<B256, Arc<SignedTx>>,
    senders: HashMap<Address, SenderQueue>,
}

/// What became of an added transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Executable now (its nonce continues the account's).
    Pending,
    /// Held until the nonces below it arrive.
    Queued,
    /// Replaced a transaction with the same nonce.
    Replaced,
}

/// The pool.
pub struct Mempool {
    config: PoolConfig,
    inner: Mutex<Inner>,
}

/// EIP-3860 init code limit.
const MAX_INITCODE_SIZE: usize = 2 * 24_576;
/// EIP-7825 transaction gas limit cap (Osaka).
const TX_GAS_LIMIT_CAP: u64 = 1 << 24;

impl Mempool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Mempool {
        Mempool { config, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation leaves the maps consistent before it can panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of transactions held.
    pub fn len(&self) -> usize {
        self.lock().by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (executable, queued) transaction counts.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        let mut pending = 0;
        for q in inner.senders.values() {
            let mut n = q.state_nonce;
            while q.txs.contains_key(&n) {
                n += 1;
            }
            pending += (n - q.state_nonce) as usize;
        }
        (pending, inner.by_hash.len() - pending)
    }

    /// A transaction held by the pool.
    pub fn get(&self, hash: &B256) -> Option<Arc<SignedTx>> {
        self.lock().by_hash.get(hash).cloned()
    }

    /// The nonce the sender's next transaction would take: past every
    /// executable transaction in the pool.
    pub fn pending_nonce(&self, sender: &Address, state_nonce: u64) -> u64 {
        let inner = self.lock();
        let Some(q) = inner.senders.get(sender) else { return state_nonce };
        let mut n = state_nonce.max(q.state_nonce);
        while q.txs.contains_key(&n) {
            n += 1;
        }
        n
    }

    /// Checks that do not depend on the state.
    pub fn check_static(&self, tx: &SignedTx, rules: &Rules) -> Result<(), PoolError> {
        let env = &tx.envelope;
        if tx.encoded.len() > self.config.max_tx_size {
            return Err(PoolError::Oversized { size: tx.encoded.len(), limit: self.config.max_tx_size });
        }
        if env.is_eip4844() {
            return Err(PoolError::TypeNotSupported);
        }
        match env.chain_id() {
            None => return Err(PoolError::Unprotected),
            Some(id) if id != rules.chain_id => {
                return Err(PoolError::InvalidChainId { have: id, want: rules.chain_id })
            }
            Some(_) => {}
        }
        if env.is_dynamic_fee() && env.max_priority_fee_per_gas().unwrap_or_default() > env.max_fee_per_gas() {
            return Err(PoolError::TipAboveFeeCap);
        }
        if tx.gas_limit() > rules.block_gas_limit {
            return Err(PoolError::ExceedsBlockGasLimit);
        }
        if rules.spec.is_enabled_in(SpecId::OSAKA) && tx.gas_limit() > TX_GAS_LIMIT_CAP {
            return Err(PoolError::GasLimitTooHigh { cap: TX_GAS_LIMIT_CAP, gas: tx.gas_limit() });
        }
        if env.kind() == TxKind::Create && env.input().len() > MAX_INITCODE_SIZE {
            return Err(PoolError::InitCodeTooLarge { size: env.input().len(), limit: MAX_INITCODE_SIZE });
        }
        let needed = tx.intrinsic_gas(rules.spec);
        if tx.gas_limit() < needed {
            return Err(PoolError::IntrinsicGasTooLow { gas: tx.gas_limit(), needed });
        }
        Ok(())
    }

    /// Validates `tx` against the sender's account in the head state and adds it.
    pub fn add(&self, tx: SignedTx, account: SenderState, rules: &Rules) -> Result<Added, PoolError> {
        self.check_static(&tx, rules)?;
        let cost = U256::from(tx.gas_limit()) * U256::from(tx.max_fee()) + tx.envelope.value();
        if account.balance < cost {
            return Err(PoolError::InsufficientFunds {
                balance: account.balance,
                cost,
                overshot: cost - account.balance,
            });
        }
        let mut inner = self.lock();
        if inner.by_hash.contains_key(&tx.hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let nonce = tx.nonce();
        let sender = tx.sender;
        let state_nonce = account.nonce.max(inner.senders.get(&sender).map_or(0, |q| q.state_nonce));
        if nonce < state_nonce {
            return Err(PoolError::NonceTooLow { next: state_nonce, tx: nonce });
        }
        if nonce - state_nonce > self.config.max_nonce_gap {
            return Err(PoolError::NonceTooHigh { next: state_nonce, tx: nonce, gap: self.config.max_nonce_gap });
        }
        let bump = self.config.price_bump_percent;
        let existing = inner.senders.get(&sender).and_then(|q| q.txs.get(&nonce)).cloned();
        if let Some(old) = &existing {
            let needs = |old: u128| old.saturating_mul(100 + bump) / 100;
            if tx.max_fee() < needs(old.max_fee()) || tx.max_tip() < needs(old.max_tip()) {
                return Err(PoolError::ReplacementUnderpriced);
            }
        } else {
            let held = inner.senders.get(&sender).map_or(0, |q| q.txs.len());
            if held >= self.config.max_per_sender {
                return Err(PoolError::AccountLimit);
            }
            if inner.by_hash.len() >= self.config.max_txs {
                evict_one(&mut inner, tx.max_tip())?;
            }
        }
        let tx = Arc::new(tx);
        let q = inner.senders.entry(sender).or_default();
        q.state_nonce = state_nonce;
        let replaced = q.txs.insert(nonce, tx.clone());
        let mut next = state_nonce;
        while q.txs.contains_key(&next) {
            next += 1;
        }
        let pending = nonce < next;
        if let Some(old) = &replaced {
            inner.by_hash.remove(&old.hash);
        }
        inner.by_hash.insert(tx.hash, tx);
        Ok(match (replaced.is_some(), pending) {
            (true, _) => Added::Replaced,
            (false, true) => Added::Pending,
            (false, false) => Added::Queued,
        })
    }

    /// Executable transactions for a block at `base_fee`: per sender in
    /// nonce order, across senders by effective tip, while the sum of gas
    /// limits fits `gas_limit` and at most `max_txs` are taken.
    pub fn select(&self, base_fee: u64, gas_limit: u64, max_txs: usize) -> Vec<Arc<SignedTx>> {
        let inner = self.lock();
        // (tip, earliest arrival is not tracked: ties broken by hash), sender, nonce
        let mut heap: BinaryHeap<(u128, Reverse<B256>, Address, u64)> = BinaryHeap::new();
        for (sender, q) in &inner.senders {
            if let Some(tx) = q.txs.get(&q.state_nonce) {
                if let Some(tip) = tx.effective_tip(base_fee) {
                    heap.push((tip, Reverse(tx.hash), *sender, q.state_nonce));
                }
            }
        }
        let mut out = Vec::new();
        let mut gas = 0u64;
        while let Some((_, _, sender, nonce)) = heap.pop() {
            if out.len() >= max_txs {
                break;
            }
            let q = &inner.senders[&sender];
            let tx = &q.txs[&nonce];
            if gas + tx.gas_limit() > gas_limit {
                continue; // this sender waits for the next block
            }
            gas += tx.gas_limit();
            out.push(tx.clone());
            if let Some(next) = q.txs.get(&(nonce + 1)) {
                if let Some(tip) = next.effective_tip(base_fee) {
                    heap.push((tip, Reverse(next.hash), sender, nonce + 1));
                }
            }
        }
        out
    }

    /// After a block: drops the dropped transactions and everything below
    /// the senders' new nonces (`nonce_of` reads the new state).
    pub fn on_block(&self, touched: &[Address], dropped: &[B256], nonce_of: impl Fn(&Address) -> Option<u64>) {
        let mut inner = self.lock();
        for hash in dropped {
            if let Some(tx) = inner.by_hash.remove(hash) {
                if let Some(q) = inner.senders.get_mut(&tx.sender) {
                    q.txs.remove(&tx.nonce());
                }
            }
        }
        for sender in touched {
            let Some(nonce) = nonce_of(sender) else { continue };
            let Some(q) = inner.senders.get_mut(sender) else { continue };
            q.state_nonce = q.state_nonce.max(nonce);
            let keep = q.txs.split_off(&q.state_nonce);
            let gone = std::mem::replace(&mut q.txs, keep);
            let empty = q.txs.is_empty();
            for tx in gone.values() {
                inner.by_hash.remove(&tx.hash);
            }
            if empty {
                inner.senders.remove(sender);
            }
        }
        let empty: Vec<Address> = inner.senders.iter().filter(|(_, q)| q.txs.is_empty()).map(|(a, _)| *a).collect();
        for a in empty {
            inner.senders.remove(&a);
        }
    }
}

/// Makes room for a transaction paying `tip`: removes the highest-nonce
/// transaction of the sender whose last transaction pays the least, if that
/// is less than `tip` (so no queue gets a gap).
fn evict_one(inner: &mut Inner, tip: u128) -> Result<(), PoolError> {
    let victim = inner
        .senders
        .iter()
        .filter_map(|(a, q)| q.txs.last_key_value().map(|(n, tx)| (tx.max_tip(), *a, *n)))
        .min_by_key(|(t, _, _)| *t);
    match victim {
        Some((victim_tip, sender, nonce)) if victim_tip < tip => {
            if let Some(q) = inner.senders.get_mut(&sender) {
                if let Some(tx) = q.txs.remove(&nonce) {
                    inner.by_hash.remove(&tx.hash);
                }
            }
            Ok(())
        }
        _ => Err(PoolError::PoolFull),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{dev_accounts, sign_eip1559};
    use alloy_primitives::{Bytes, TxKind};

    const GWEI: u128 = 1_000_000_000;

    fn rules() -> Rules {
        Rules { chain_id: 1337, spec: SpecId::OSAKA, block_gas_limit: 30_000_000 }
    }

    fn tx(i: usize, nonce: u64, fee: u128, tip: u128) -> SignedTx {
        let a = &dev_accounts(3).unwrap()[i];
        let raw = sign_eip1559(
            &a.signer,
            1337,
            nonce,
            TxKind::Call(Address::ZERO),
            U256::from(1),
            Bytes::new(),
            21_000,
            fee,
            tip,
        );
        SignedTx::decode(&raw).unwrap()
    }

    fn rich() -> SenderState {
        SenderState { nonce: 0, balance: U256::from(10u64).pow(U256::from(20u64)) }
    }

    #[test]
    fn nonce_queues_replacement_and_selection() {
        let pool = Mempool::new(PoolConfig::default());
        assert_eq!(pool.add(tx(0, 1, 10 * GWEI, GWEI), rich(), &rules()), Ok(Added::Queued));
        assert_eq!(pool.pending_nonce(&tx(0, 0, GWEI, 0).sender, 0), 0);
        assert_eq!(pool.add(tx(0, 0, 10 * GWEI, GWEI), rich(), &rules()), Ok(Added::Pending));
        assert_eq!(pool.pending_nonce(&tx(0, 0, GWEI, 0).sender, 0), 2);
        assert_eq!(pool.add(tx(0, 0, 10 * GWEI, GWEI), rich(), &rules()), Err(PoolError::AlreadyKnown));
        assert_eq!(
            pool.add(tx(0, 0, 10 * GWEI + 1, GWEI + 1), rich(), &rules()),
            Err(PoolError::ReplacementUnderpriced)
        );
        assert_eq!(pool.add(tx(0, 0, 11 * GWEI, GWEI * 11 / 10), rich(), &rules()), Ok(Added::Replaced));
        assert_eq!(pool.add(tx(1, 0, 10 * GWEI, 3 * GWEI), rich(), &rules()), Ok(Added::Pending));
        assert_eq!(pool.len(), 3);
        // The higher tip goes first; a sender's transactions stay in nonce order.
        let picked: Vec<(Address, u64)> =
            pool.select(GWEI as u64, 30_000_000, 100).iter().map(|t| (t.sender, t.nonce())).collect();
        let (a0, a1) = (tx(0, 0, GWEI, 0).sender, tx(1, 0, GWEI, 0).sender);
        assert_eq!(picked, vec![(a1, 0), (a0, 0), (a0, 1)]);
        // A fee cap below the base fee waits.
        assert!(pool.select(20 * GWEI as u64, 30_000_000, 100).is_empty());
        // The gas budget bounds the block.
        assert_eq!(pool.select(GWEI as u64, 42_000, 100).len(), 2);
        pool.on_block(&[a0, a1], &[], |a| Some(if *a == a0 { 2 } else { 1 }));
        assert!(pool.is_empty());
    }

    #[test]
    fn state_checks_use_geth_messages() {
        let pool = Mempool::new(PoolConfig::default());
        let poor = SenderState { nonce: 0, balance: U256::from(1) };
        assert!(pool
            .add(tx(0, 0, GWEI, 0), poor, &rules())
            .unwrap_err()
            .to_string()
            .starts_with("insufficient funds for gas * price + value"));
        let moved = SenderState { nonce: 5, ..rich() };
        assert!(pool.add(tx(0, 0, GWEI, 0), moved, &rules()).unwrap_err().to_string().starts_with("nonce too low"));
        assert_eq!(pool.add(tx(0, 0, GWEI, 2 * GWEI), rich(), &rules()), Err(PoolError::TipAboveFeeCap));
        let other_chain = Rules { chain_id: 1, ..rules() };
        assert!(matches!(pool.add(tx(0, 0, GWEI, 0), rich(), &other_chain), Err(PoolError::InvalidChainId { .. })));
    }

    #[test]
    fn a_full_pool_evicts_the_cheapest_tail() {
        let pool = Mempool::new(PoolConfig { max_txs: 2, ..PoolConfig::default() });
        pool.add(tx(0, 0, 10 * GWEI, GWEI), rich(), &rules()).unwrap();
        pool.add(tx(1, 0, 10 * GWEI, 2 * GWEI), rich(), &rules()).unwrap();
        assert_eq!(pool.add(tx(2, 0, 10 * GWEI, GWEI), rich(), &rules()), Err(PoolError::PoolFull));
        assert_eq!(pool.add(tx(2, 0, 10 * GWEI, 3 * GWEI), rich(), &rules()), Ok(Added::Pending));
        assert_eq!(pool.len(), 2);
        assert!(pool.get(&tx(0, 0, 10 * GWEI, GWEI).hash).is_none());
    }
}
