//! The multi-version memory of Block-STM: for every location, the writes of
//! each transaction's latest incarnation, ordered by transaction index.
//!
//! Layout: 256 shards, each a `RwLock`ed map from key to a small vector of
//! entries sorted by transaction index (most keys have one or two writers,
//! so a vector beats a tree: binary search, no node chasing, and the first
//! entry inline in the map), its entries appended in the order of first
//! writes behind a hash table of indices (`KeyMap`). The high bits of the
//! key's hash pick the shard.
//!
//! In front of the shards sits a filter of the keys written in the block:
//! per hash slot, the lowest transaction that wrote a key of that slot
//! (only ever lowered). A read by transaction `j` whose slot holds no
//! writer below `j` goes to the parent without touching a shard: most reads
//! are of keys no transaction writes (contracts, untouched balances) or
//! that only the reader itself and later transactions write (the sender and
//! recipient of an independent transfer, when its reads are validated).
//! Taking a shard's lock, even to read, writes its cache line, so on two
//! cores every such read moved that line between them.

use super::changes::{ChangeLog, LowerChanges, SLOT_KEYS};
use super::types::{
    sort_by_state_key, AccountBasic, AdditionChain, Incarnation, ReadOrigin, ReadRecord, StateKey, StateValue, TxIndex,
    Version, WriteOp,
};
use super::view::{StateError, StateView};
use alloy_primitives::map::{DefaultHashBuilder, HashMap, HashSet};
use alloy_primitives::{Address, Bytes, B256, U256};
use indexmap::IndexMap;
use smallvec::SmallVec;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};

/// Shards keep workers that touch different keys off each other's locks.
const SHARD_COUNT: usize = 256;
/// Keys a transaction writes, for sizing the shards' maps up front (more
/// keys only grow them).
const EXPECTED_KEYS_PER_SLOT: usize = 2;

/// Entries of the written-key filter per transaction slot, and its bounds in
/// entries (4 bytes each). Sixteen per slot (a 4 MB filter for the
/// 47,619-transfer block) used no less CPU than four: the filter's own cache
/// misses cost what the fewer collisions saved, and a colliding entry sends
/// a read to a shard only when its lowest writer is below the reader.
const FILTER_ENTRIES_PER_SLOT: usize = 4;
const FILTER_MIN_ENTRIES: usize = 1 << 12;
const FILTER_MAX_ENTRIES: usize = 1 << 22;

/// Below this many written keys [`MvMemory::into_final_writes`] stays on the
/// calling thread.
const PARALLEL_FINAL_KEYS: usize = 4096;

/// Why a read could not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// A lower transaction that is being re-executed will write this location:
    /// the reader must wait for it.
    Blocked(TxIndex),
    /// The parent state failed.
    State(StateError),
}

impl From<StateError> for ReadError {
    fn from(e: StateError) -> Self {
        ReadError::State(e)
    }
}

#[derive(Clone, Debug)]
enum EntryData {
    Write(StateValue),
    AddBalance(U256),
    /// The incarnation that wrote here was aborted; its next one probably
    /// writes here again.
    Estimate,
}

#[derive(Clone, Debug)]
struct Entry {
    tx: TxIndex,
    incarnation: Incarnation,
    data: EntryData,
}

impl Entry {
    fn version(&self) -> Version {
        Version { tx: self.tx, incarnation: self.incarnation }
    }
}

/// The entries of one key, sorted by transaction index, one per transaction.
/// Most keys have one writer: its entry lives in the map, not in an
/// allocation of its own (one malloc, free and cache miss less per key).
type Versions = SmallVec<[Entry; 1]>;

/// The versions of every key of a shard, in the order the keys were first
/// written: the entries (key and versions, 168 bytes) are appended one after
/// the other and only a table of indices is placed by hash. In a map placing
/// the entries themselves by hash, every first write of a key wrote three
/// cold cache lines at a random place (`record` was a third of the
/// raw-transfer block's sequential transaction phase); in order, the block
/// runs 3-6% faster on one thread, and the final writes read the entries
/// one after the other.
type KeyMap = IndexMap<StateKey, Versions, DefaultHashBuilder>;

/// Final writes, one per key.
type Writes = Vec<(StateKey, StateValue)>;

/// A change of an account on top of its last full write.
#[derive(Clone, Copy, Debug)]
enum Delta {
    /// A balance addition.
    Add(U256),
    /// A debit: nonce + 1, balance - amount.
    Debit(U256),
}

/// The result of walking down the versions of one key below a reader.
enum Walk {
    Blocked(TxIndex),
    /// A full write (or none: parent) and the balance additions and debits
    /// above it, newest first.
    Found {
        base: Option<(Version, StateValue)>,
        additions: Vec<(Version, Delta)>,
    },
}

impl Walk {
    const NOTHING: Walk = Walk::Found { base: None, additions: Vec::new() };

    fn origin(&self) -> Option<ReadOrigin> {
        match self {
            Walk::Blocked(_) => None,
            Walk::Found { base, additions } if additions.is_empty() => {
                Some(base.as_ref().map_or(ReadOrigin::Parent, |(v, _)| ReadOrigin::Version(*v)))
            }
            Walk::Found { base, additions } => Some(ReadOrigin::Additions(Box::new(AdditionChain {
                base: base.as_ref().map(|(v, _)| *v),
                additions: additions.iter().map(|(v, _)| *v).collect(),
            }))),
        }
    }
}

/// Walks `versions` down from the highest transaction below `tx`.
fn walk_versions(versions: &[Entry], tx: TxIndex) -> Walk {
    let below = versions.partition_point(|e| e.tx < tx);
    let mut additions = Vec::new();
    for entry in versions[..below].iter().rev() {
        match &entry.data {
            EntryData::Estimate => return Walk::Blocked(entry.tx),
            EntryData::Write(value) => {
                return Walk::Found { base: Some((entry.version(), value.clone())), additions };
            }
            EntryData::AddBalance(amount) => additions.push((entry.version(), Delta::Add(*amount))),
        }
    }
    Walk::Found { base: None, additions }
}

/// A transaction index as the written-key filter compares it. Writers are
/// below `u32::MAX` ([`MvMemory::new`] asserts it); a reader at or above it
/// sees every writer.
fn filter_tx(tx: TxIndex) -> u32 {
    u32::try_from(tx).unwrap_or(u32::MAX)
}

/// The newest full write of a key once the block is done (estimates and
/// balance additions are not full writes).
fn last_write(versions: &[Entry]) -> Option<(TxIndex, &StateValue)> {
    versions.iter().rev().find_map(|e| match &e.data {
        EntryData::Write(value) => Some((e.tx, value)),
        _ => None,
    })
}

/// One shard per pair of cache lines (the unit x86 cores fetch together):
/// packed, neighbouring shards shared lines, and a write to one made the
/// other core miss on its neighbour.
#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<KeyMap>);

impl std::ops::Deref for Shard {
    type Target = RwLock<KeyMap>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Shard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

fn leftover(key: &StateKey, tx: TxIndex) -> StateError {
    StateError { what: format!("final write of {key:?}"), reason: format!("transaction {tx} left an estimate") }
}

/// A transaction's balance addition to the lazy account, or its debit of its
/// sender.
#[derive(Clone, Copy, Debug, Default)]
enum LazyAmount {
    #[default]
    None,
    Write(Incarnation, U256),
    /// The incarnation that wrote it was aborted.
    Estimate,
}

/// A transaction's debit of a debit account.
#[derive(Debug)]
struct Debit {
    account: Address,
    amount: LazyAmount,
}

#[derive(Debug, Default)]
struct TxWrites {
    keys: Vec<StateKey>,
    /// Addition to the lazy account (the beneficiary).
    lazy: LazyAmount,
    /// Boxed: one transaction slot per transaction of the block, and only
    /// chain transactions debit.
    debit: Option<Box<Debit>>,
}

/// Multi-version memory over a parent snapshot.
pub struct MvMemory<'p> {
    parent: &'p dyn StateView,
    /// Writes made before the first transaction (system calls): immutable while
    /// transactions run, read like the parent.
    pre_block: HashMap<StateKey, StateValue>,
    shards: Box<[Shard]>,
    hasher: DefaultHashBuilder,
    /// Per key hash slot, `!tx` of the lowest transaction that wrote a key
    /// of the slot (0: none), raised before the key enters its shard. A
    /// power of two of entries.
    written_filter: Box<[AtomicU32]>,
    /// Per transaction: the keys its latest incarnation wrote (sorted) and
    /// its balance addition to the lazy account.
    last_writes: Box<[Mutex<TxWrites>]>,
    /// The account whose balance additions (the beneficiary's fees) live in
    /// `last_writes` instead of the shards: every transaction adds to it, so
    /// one shared version vector would serialize the workers on its lock.
    lazy: Option<Address>,
    /// Accounts whose transactions debit them without reading them (senders
    /// of same-sender chains of plain transfers); their debits live in
    /// `last_writes` like the beneficiary's additions.
    debit_accounts: HashSet<Address>,
    /// Set once any storage wipe was written: until then slot reads skip the
    /// wipe lookup. Validation re-resolves with the flag set, so a read made
    /// before a wipe appeared is still caught.
    has_wipes: AtomicBool,
    /// Set once a transaction wrote the lazy account in full (its entries
    /// then live in the shards); until then balance additions to it skip the
    /// shard.
    lazy_full_write: AtomicBool,
    /// EIP-161: an account left empty by a balance addition is deleted.
    state_clear: bool,
    /// The latest changes, for validations that skip walking reads no
    /// lower transaction changed ([`MvMemory::track_changes`]).
    changes: Option<ChangeLog>,
}

/// The count of changes to an [`MvMemory`] before a transaction started
/// reading ([`MvMemory::change_mark`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeMark(u64);

/// The hash of a key in the change log: both halves of its map hash.
fn change_hash(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

/// The keys a recorded write set changed, as the change log takes them.
#[derive(Default)]
struct ChangedKeys {
    hashes: SmallVec<[u32; SLOT_KEYS]>,
    /// More keys than a log slot holds, or a wipe (which changes what reads
    /// of every slot of its account see).
    wide: bool,
}

impl ChangedKeys {
    fn note(&mut self, key: &StateKey, hash: u64) {
        if self.wide {
            return;
        }
        if self.hashes.len() == SLOT_KEYS || matches!(key, StateKey::StorageWipe(_)) {
            self.wide = true;
            return;
        }
        self.hashes.push(change_hash(hash));
    }
}

// A poisoned lock only means a worker panicked between two plain map
// operations; the data itself is consistent.
macro_rules! read {
    ($l:expr) => {
        $l.read().unwrap_or_else(|e| e.into_inner())
    };
}
macro_rules! write {
    ($l:expr) => {
        $l.write().unwrap_or_else(|e| e.into_inner())
    };
}
macro_rules! lock {
    ($l:expr) => {
        $l.lock().unwrap_or_else(|e| e.into_inner())
    };
}

impl<'p> MvMemory<'p> {
    /// `slots`: number of transaction indices (transactions plus any
    /// post-block pseudo-transaction). `state_clear`: EIP-161 is active.
    pub fn new(parent: &'p dyn StateView, slots: usize, state_clear: bool) -> Self {
        assert!(slots < u32::MAX as usize, "{slots} transaction slots: the written-key filter holds u32 indices");
        Self {
            parent,
            pre_block: HashMap::default(),
            shards: {
                // Room for the keys a block of `slots` transactions writes
                // (two each: a transfer's sender and recipient): a 47,619-transfer
                // block grew every shard's map seven times, and the rehashing was
                // 12% of its sequential transaction phase.
                let per_shard = slots.saturating_mul(EXPECTED_KEYS_PER_SLOT) / SHARD_COUNT;
                (0..SHARD_COUNT)
                    .map(|_| Shard(RwLock::new(KeyMap::with_capacity_and_hasher(per_shard, Default::default()))))
                    .collect()
            },
            hasher: DefaultHashBuilder::default(),
            written_filter: {
                let entries = (slots.saturating_mul(FILTER_ENTRIES_PER_SLOT))
                    .clamp(FILTER_MIN_ENTRIES, FILTER_MAX_ENTRIES)
                    .next_power_of_two();
                (0..entries).map(|_| AtomicU32::new(0)).collect()
            },
            last_writes: (0..slots).map(|_| Mutex::new(TxWrites::default())).collect(),
            lazy: None,
            debit_accounts: HashSet::default(),
            has_wipes: AtomicBool::new(false),
            lazy_full_write: AtomicBool::new(false),
            state_clear,
            changes: None,
        }
    }

    /// Keeps a log of the latest changes (`pending/changes.rs`), so that
    /// [`MvMemory::validate_reads_since`] can pass a transaction whose reads
    /// no lower transaction changed since its [`MvMemory::change_mark`]
    /// without walking them. For parallel runs: every change then costs a
    /// shared counter and a cache line of the log.
    pub fn track_changes(&mut self) {
        self.changes = Some(ChangeLog::default());
    }

    /// Asks the CPU for the written-key filter entries of `keys`, which a
    /// transaction about to run reads first (its sender and recipient): a
    /// block's filter is larger than the caches (and in a parallel run last
    /// written by the other core), and the transaction's setup runs while
    /// the entries come.
    pub fn prefetch_keys(&self, keys: &[StateKey]) {
        for key in keys {
            crate::prefetch::prefetch_line(self.filter_entry(self.hasher.hash_one(key)));
        }
    }

    /// The count of changes so far (0 without [`MvMemory::track_changes`]):
    /// take it before a transaction's first read.
    pub fn change_mark(&self) -> ChangeMark {
        ChangeMark(self.changes.as_ref().map_or(0, ChangeLog::mark))
    }

    /// The parent state.
    pub fn parent(&self) -> &'p dyn StateView {
        self.parent
    }

    /// Number of transaction indices.
    pub fn slots(&self) -> usize {
        self.last_writes.len()
    }

    /// Keeps the balance additions to `address` (the block's beneficiary) per
    /// transaction instead of in the shared maps. Must run before any
    /// transaction records.
    pub fn set_lazy_account(&mut self, address: Address) {
        self.lazy = Some(address);
    }

    /// Accounts that transactions debit with [`WriteOp::Debit`] instead of
    /// reading and writing them. Must run before any transaction records.
    pub fn set_debit_accounts(&mut self, accounts: HashSet<Address>) {
        self.debit_accounts = accounts;
    }

    /// Replays the histories of the debit accounts once the block is done,
    /// in one pass over the transactions: full writes, balance additions and
    /// debits. Before each debit, `precondition(tx, account, state)` must
    /// accept the account's state as the debiting transaction would have
    /// read it (nonce, balance). Returns the final states, or `None` if a
    /// precondition fails, a debit finds no account or more than its
    /// balance, or an estimate is left.
    fn replay_debits(
        &self,
        mut precondition: impl FnMut(TxIndex, &Address, &AccountBasic) -> bool,
    ) -> Result<Option<HashMap<Address, Option<AccountBasic>>>, StateError> {
        let mut accounts: HashMap<Address, Option<AccountBasic>> = HashMap::default();
        if self.debit_accounts.is_empty() {
            return Ok(Some(accounts));
        }
        // Full writes and shard additions by transactions that read the
        // account in full, by transaction.
        let mut events: Vec<(TxIndex, Address, EntryData)> = Vec::new();
        for address in &self.debit_accounts {
            accounts.insert(*address, self.parent_account(address)?);
            let key = StateKey::Account(*address);
            if let Some(versions) = read!(self.shard(&key)).get(&key) {
                events.extend(versions.iter().map(|e| (e.tx, *address, e.data.clone())));
            }
        }
        events.sort_by_key(|e| e.0);
        let mut events = events.into_iter().peekable();
        let beneficiary = self.lazy.filter(|b| self.debit_accounts.contains(b));
        let add = |account: Option<AccountBasic>, amount: U256| {
            self.add_balances(account, &[(Version { tx: 0, incarnation: 0 }, Delta::Add(amount))])
        };
        for idx in 0..self.slots() {
            let last = lock!(self.last_writes[idx]);
            if let Some(Debit { account: address, amount }) = last.debit.as_deref() {
                let (address, LazyAmount::Write(_, amount)) = (*address, *amount) else { return Ok(None) };
                let account = accounts.get_mut(&address).expect("debits only of debit accounts");
                let Some(before) = *account else { return Ok(None) };
                if !precondition(idx, &address, &before) || before.balance < amount {
                    return Ok(None);
                }
                *account = Some(AccountBasic { nonce: before.nonce + 1, balance: before.balance - amount, ..before });
            }
            while let Some((_, address, data)) = events.next_if(|e| e.0 == idx) {
                let account = accounts.get_mut(&address).expect("events only of debit accounts");
                *account = match data {
                    EntryData::Write(StateValue::Account(value)) => value,
                    EntryData::AddBalance(amount) => add(*account, amount),
                    _ => return Ok(None),
                };
            }
            if let Some(beneficiary) = beneficiary {
                match last.lazy {
                    LazyAmount::None => {}
                    LazyAmount::Write(_, amount) => {
                        let account = accounts.get_mut(&beneficiary).expect("the beneficiary is a debit account");
                        *account = add(*account, amount);
                    }
                    LazyAmount::Estimate => return Ok(None),
                }
            }
        }
        Ok(Some(accounts))
    }

    /// Once the block is done: before each debit, `precondition(tx, account,
    /// state)` accepts the debited account's state as the debiting
    /// transaction would have read it, and no debit exceeds its balance.
    pub fn check_debits(
        &self,
        precondition: impl FnMut(TxIndex, &Address, &AccountBasic) -> bool,
    ) -> Result<bool, StateError> {
        Ok(self.replay_debits(precondition)?.is_some())
    }

    fn is_lazy(&self, key: &StateKey) -> bool {
        let StateKey::Account(address) = key else { return false };
        self.lazy.as_ref() == Some(address)
            || (!self.debit_accounts.is_empty() && self.debit_accounts.contains(address))
    }

    /// The walk of a lazy account (the beneficiary or a debit account): full
    /// writes in its shard, additions and debits per transaction, merged from
    /// `tx - 1` down.
    fn walk_lazy(&self, key: &StateKey, tx: TxIndex) -> Walk {
        let StateKey::Account(address) = key else { unreachable!("lazy keys are accounts") };
        let beneficiary = self.lazy.as_ref() == Some(address);
        // Copied out: the per-transaction locks below are never taken while
        // a shard lock is held (`record` takes them in the other order).
        let versions: Vec<Entry> = {
            let shard = read!(self.shard(key));
            shard.get(key).map_or_else(Vec::new, |v| {
                let below = v.partition_point(|e| e.tx < tx);
                // The walk stops at the newest full write below `tx`: the
                // entries under it are never reached, and copying them made
                // every full read of the beneficiary cost as much as all its
                // writes so far (quadratic in a block of coinbase payouts).
                let from = v[..below].iter().rposition(|e| matches!(e.data, EntryData::Write(_))).unwrap_or(0);
                v[from..below].to_vec()
            })
        };
        let mut next = versions.len();
        let mut additions = Vec::new();
        for idx in (0..tx.min(self.slots())).rev() {
            if next > 0 && versions[next - 1].tx == idx {
                next -= 1;
                let entry = &versions[next];
                match &entry.data {
                    EntryData::Estimate => return Walk::Blocked(idx),
                    EntryData::Write(value) => {
                        return Walk::Found { base: Some((entry.version(), value.clone())), additions };
                    }
                    EntryData::AddBalance(amount) => additions.push((entry.version(), Delta::Add(*amount))),
                }
            }
            let last = lock!(self.last_writes[idx]);
            let mut lazy = |amount: LazyAmount, delta: fn(U256) -> Delta| match amount {
                LazyAmount::None => true,
                LazyAmount::Write(incarnation, amount) => {
                    additions.push((Version { tx: idx, incarnation }, delta(amount)));
                    true
                }
                LazyAmount::Estimate => false,
            };
            if beneficiary && !lazy(last.lazy, Delta::Add) {
                return Walk::Blocked(idx);
            }
            if let Some(debit) = last.debit.as_deref().filter(|d| d.account == *address) {
                if !lazy(debit.amount, Delta::Debit) {
                    return Walk::Blocked(idx);
                }
            }
        }
        Walk::Found { base: None, additions }
    }

    /// Installs the writes of the pre-block system calls. Must run before any
    /// transaction reads.
    pub fn set_pre_block_writes(&mut self, writes: impl IntoIterator<Item = (StateKey, StateValue)>) {
        for (key, value) in writes {
            if matches!(key, StateKey::StorageWipe(_)) {
                *self.has_wipes.get_mut() = true;
            }
            self.pre_block.insert(key, value);
        }
    }

    fn shard(&self, key: &StateKey) -> &Shard {
        self.shard_of_hash(self.hasher.hash_one(key))
    }

    fn shard_of_hash(&self, hash: u64) -> &Shard {
        // The high bits: the map inside the shard uses the low ones.
        &self.shards[(hash >> 56) as usize % SHARD_COUNT]
    }

    /// The filter entry of a key hash. The bits below the shard's: keys of
    /// one shard spread over the whole filter.
    fn filter_entry(&self, hash: u64) -> &AtomicU32 {
        &self.written_filter[(hash >> 8) as usize & (self.written_filter.len() - 1)]
    }

    /// False only if no transaction below `tx` wrote the key so far. A read
    /// that races with the first write of its key may miss it, as a read
    /// just before the write would: the writer reports a new location
    /// ([`MvMemory::record`]), so the reader is validated after the write.
    fn maybe_written_below(&self, hash: u64, tx: TxIndex) -> bool {
        // Entries hold `!writer`: the lowest writer is below `tx` iff the
        // entry is above `!tx` (and 0, no writer, is above nothing).
        self.filter_entry(hash).load(Ordering::Acquire) > !filter_tx(tx)
    }

    fn note_written(&self, hash: u64, tx: TxIndex) {
        let entry = self.filter_entry(hash);
        // A plain load first: most writes find a lower writer noted, and the
        // filter's lines then stay shared between the cores.
        if entry.load(Ordering::Relaxed) < !filter_tx(tx) {
            entry.fetch_max(!filter_tx(tx), Ordering::Release);
        }
    }

    /// Walks the versions of `key` written by transactions below `tx`.
    fn walk(&self, key: &StateKey, tx: TxIndex) -> Walk {
        if self.is_lazy(key) {
            return self.walk_lazy(key, tx);
        }
        let hash = self.hasher.hash_one(key);
        if !self.maybe_written_below(hash, tx) {
            return Walk::NOTHING;
        }
        match read!(self.shard_of_hash(hash)).get(key) {
            Some(versions) => walk_versions(versions, tx),
            None => Walk::NOTHING,
        }
    }
    fn parent_account(&self, address: &Address) -> Result<Option<AccountBasic>, StateError> {
        if self.pre_block.is_empty() {
            return self.parent.account(address);
        }
        match self.pre_block.get(&StateKey::Account(*address)) {
            Some(StateValue::Account(account)) => Ok(*account),
            _ => self.parent.account(address),
        }
    }

    fn parent_storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        if self.pre_block.is_empty() {
            return self.parent.storage(address, slot);
        }
        match self.pre_block.get(&StateKey::Storage(*address, *slot)) {
            Some(StateValue::Storage(v)) => Ok(*v),
            _ if self.pre_block.contains_key(&StateKey::StorageWipe(*address)) => Ok(U256::ZERO),
            _ => self.parent.storage(address, slot),
        }
    }

    /// Applies balance additions (oldest first) the way a sequence of
    /// transactions touching the account would.
    fn add_balances(
        &self,
        mut account: Option<AccountBasic>,
        additions_newest_first: &[(Version, Delta)],
    ) -> Option<AccountBasic> {
        for (_, delta) in additions_newest_first.iter().rev() {
            let mut a = account.unwrap_or_default();
            match delta {
                Delta::Add(amount) => a.balance = a.balance.saturating_add(*amount),
                // Saturates only on a speculative read of a state that
                // validation or `check_debits` then rejects.
                Delta::Debit(amount) => {
                    a.nonce = a.nonce.saturating_add(1);
                    a.balance = a.balance.saturating_sub(*amount);
                }
            }
            account = if self.state_clear && a.is_empty() { None } else { Some(a) };
        }
        account
    }

    /// The account as transaction `tx` must see it.
    pub fn read_account(
        &self,
        address: &Address,
        tx: TxIndex,
    ) -> Result<(Option<AccountBasic>, ReadOrigin), ReadError> {
        let key = StateKey::Account(*address);
        let walk = self.walk(&key, tx);
        let origin = walk.origin();
        let Walk::Found { base, additions } = walk else {
            let Walk::Blocked(blocking) = walk else { unreachable!("walk is either variant") };
            return Err(ReadError::Blocked(blocking));
        };
        let base_value = match base {
            Some((_, StateValue::Account(account))) => account,
            Some((version, other)) => {
                debug_assert!(false, "{key:?} holds {other:?} from {version:?}");
                None
            }
            None => self.parent_account(address)?,
        };
        let value = self.add_balances(base_value, &additions);
        // `walk` returned Found, so the origin exists.
        Ok((value, origin.unwrap_or(ReadOrigin::Parent)))
    }

    /// Which version of the slot (or of a wipe of its account) `tx` sees.
    fn storage_walk(
        &self,
        address: &Address,
        slot: &U256,
        tx: TxIndex,
    ) -> Result<(Option<(Version, U256)>, ReadOrigin), ReadError> {
        let slot_walk = self.walk(&StateKey::Storage(*address, *slot), tx);
        let slot_write = match slot_walk {
            Walk::Blocked(b) => return Err(ReadError::Blocked(b)),
            Walk::Found { base: Some((v, StateValue::Storage(value))), .. } => Some((v, value)),
            Walk::Found { .. } => None,
        };
        if self.has_wipes.load(Ordering::Acquire) {
            match self.walk(&StateKey::StorageWipe(*address), tx) {
                Walk::Blocked(b) => return Err(ReadError::Blocked(b)),
                Walk::Found { base: Some((wipe, _)), .. } if slot_write.is_none_or(|(v, _)| v.tx < wipe.tx) => {
                    return Ok((Some((wipe, U256::ZERO)), ReadOrigin::Version(wipe)));
                }
                Walk::Found { .. } => {}
            }
        }
        let origin = slot_write.map_or(ReadOrigin::Parent, |(v, _)| ReadOrigin::Version(v));
        Ok((slot_write, origin))
    }

    /// The storage slot as transaction `tx` must see it.
    pub fn read_storage(&self, address: &Address, slot: &U256, tx: TxIndex) -> Result<(U256, ReadOrigin), ReadError> {
        let (write, origin) = self.storage_walk(address, slot, tx)?;
        let value = match write {
            Some((_, value)) => value,
            None => self.parent_storage(address, slot)?,
        };
        Ok((value, origin))
    }

    /// Bytecode by hash. Code is content-addressed, so any write of the hash
    /// holds the same bytes and the read needs no validation: the account read
    /// that produced the hash is validated instead.
    pub fn read_code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        let key = StateKey::Code(*code_hash);
        let hash = self.hasher.hash_one(key);
        if self.maybe_written_below(hash, TxIndex::MAX) {
            let shard = read!(self.shard_of_hash(hash));
            if let Some(versions) = shard.get(&key) {
                for entry in versions.iter() {
                    if let EntryData::Write(StateValue::Code(code)) = &entry.data {
                        return Ok(Some(code.clone()));
                    }
                }
            }
        }
        match self.pre_block.get(&key).filter(|_| !self.pre_block.is_empty()) {
            Some(StateValue::Code(code)) => Ok(Some(code.clone())),
            _ => self.parent.code(code_hash),
        }
    }

    /// Hash of an earlier block, from the parent.
    pub fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        self.parent.block_hash(number)
    }

    /// Where a read of `key` by `tx` would come from now.
    fn current_origin(&self, key: &StateKey, tx: TxIndex) -> Result<ReadOrigin, TxIndex> {
        match key {
            StateKey::Storage(address, slot) => match self.storage_walk(address, slot, tx) {
                Ok((_, origin)) => Ok(origin),
                Err(ReadError::Blocked(b)) => Err(b),
                // storage_walk never reads the parent.
                Err(ReadError::State(_)) => Err(tx),
            },
            _ => {
                let walk = self.walk(key, tx);
                match walk {
                    Walk::Blocked(b) => Err(b),
                    found => Ok(found.origin().unwrap_or(ReadOrigin::Parent)),
                }
            }
        }
    }

    /// Block-STM validation: every read of `tx` would still see the same
    /// version. Returns the first read that changed, if any.
    pub fn validate_reads<'r>(&self, tx: TxIndex, reads: &'r [ReadRecord]) -> Option<&'r ReadRecord> {
        reads.iter().find(|read| self.read_changed(read, tx))
    }

    /// [`MvMemory::validate_reads`] for reads made after `since`: only the
    /// reads of keys that lower transactions changed after it are walked
    /// again (none, usually), or all of them when the log cannot tell.
    pub fn validate_reads_since<'r>(
        &self,
        tx: TxIndex,
        reads: &'r [ReadRecord],
        since: ChangeMark,
    ) -> Option<&'r ReadRecord> {
        let Some(changes) = &self.changes else { return self.validate_reads(tx, reads) };
        match changes.lower_since(since.0, tx as u32) {
            LowerChanges::Unknown => self.validate_reads(tx, reads),
            LowerChanges::Keys(keys) if keys.is_empty() => None,
            LowerChanges::Keys(keys) => {
                let touched = |read: &&ReadRecord| keys.contains(&change_hash(self.hasher.hash_one(read.key)));
                reads.iter().filter(touched).find(|read| self.read_changed(read, tx))
            }
        }
    }

    /// Whether `read` would now see another version.
    fn read_changed(&self, read: &ReadRecord, tx: TxIndex) -> bool {
        match self.current_origin(&read.key, tx) {
            Ok(origin) => origin != read.origin,
            Err(_blocked) => true,
        }
    }

    /// Replaces the writes of the previous incarnation of `version.tx` with
    /// `writes` (one per key). Returns true if it wrote a location the
    /// previous incarnation did not (then higher transactions must be
    /// validated again).
    pub fn record(&self, version: Version, mut writes: Vec<(StateKey, WriteOp)>) -> bool {
        if !writes.is_sorted_by(|a, b| a.0 < b.0) {
            writes.sort_unstable_by_key(|a| a.0);
        }
        debug_assert!(writes.windows(2).all(|w| w[0].0 != w[1].0), "duplicate key in write set");
        let mut keys: Vec<StateKey> = Vec::with_capacity(writes.len());
        let mut changed = ChangedKeys::default();
        let mut lazy = LazyAmount::None;
        let mut debit = None;
        for (key, op) in writes {
            keys.push(key);
            // Hashed once, for the shard, the filter and the change log.
            let hash = self.hasher.hash_one(key);
            if self.changes.is_some() {
                changed.note(&key, hash);
            }
            if matches!(key, StateKey::StorageWipe(_)) {
                self.has_wipes.store(true, Ordering::Release);
            }
            let data = match op {
                WriteOp::Debit(amount) => {
                    let StateKey::Account(address) = key else { panic!("debit of {key:?}") };
                    assert!(self.debit_accounts.contains(&address), "debit of {address}, not a debit account");
                    debit = Some(Box::new(Debit {
                        account: address,
                        amount: LazyAmount::Write(version.incarnation, amount),
                    }));
                    continue;
                }
                WriteOp::AddBalance(amount) if matches!(key, StateKey::Account(a) if self.lazy == Some(a)) => {
                    lazy = LazyAmount::Write(version.incarnation, amount);
                    // A previous incarnation's full write must not hide it
                    // (only a full write puts the lazy key in the shards).
                    if self.lazy_full_write.load(Ordering::Acquire) {
                        let mut shard = write!(self.shard_of_hash(hash));
                        if let Some(versions) = shard.get_mut(&key) {
                            versions.retain(|e| e.tx != version.tx);
                        }
                    }
                    continue;
                }
                WriteOp::Set(value) if self.is_lazy(&key) => {
                    self.lazy_full_write.store(true, Ordering::Release);
                    EntryData::Write(value)
                }
                WriteOp::Set(value) => EntryData::Write(value),
                WriteOp::AddBalance(amount) => {
                    debug_assert!(matches!(key, StateKey::Account(_)));
                    EntryData::AddBalance(amount)
                }
            };
            let entry = Entry { tx: version.tx, incarnation: version.incarnation, data };
            self.note_written(hash, version.tx);
            let mut shard = write!(self.shard_of_hash(hash));
            let versions = shard.entry(key).or_default();
            let at = versions.partition_point(|e| e.tx < version.tx);
            match versions.get_mut(at) {
                Some(existing) if existing.tx == version.tx => *existing = entry,
                _ => versions.insert(at, entry),
            }
        }
        let mut last = lock!(self.last_writes[version.tx]);
        last.lazy = lazy;
        last.debit = debit;
        let mut wrote_new_location = false;
        if last.keys.is_empty() {
            wrote_new_location = !keys.is_empty();
        } else {
            // Both sorted: one merge pass finds stale and new keys.
            let (mut i, mut j) = (0, 0);
            while i < last.keys.len() || j < keys.len() {
                match (last.keys.get(i), keys.get(j)) {
                    (Some(old), Some(new)) if old == new => {
                        i += 1;
                        j += 1;
                    }
                    (Some(old), new) if new.is_none_or(|new| old < new) => {
                        let mut shard = write!(self.shard(old));
                        if let Some(versions) = shard.get_mut(old) {
                            versions.retain(|e| e.tx != version.tx);
                        }
                        if self.changes.is_some() {
                            changed.note(old, self.hasher.hash_one(old));
                        }
                        i += 1;
                    }
                    _ => {
                        wrote_new_location = true;
                        j += 1;
                    }
                }
            }
        }
        self.publish_change(version.tx, &changed);
        last.keys = keys;
        wrote_new_location
    }

    /// Numbers a change by `tx` in the log, if there is one; call once the
    /// change is in place.
    fn publish_change(&self, tx: TxIndex, changed: &ChangedKeys) {
        if let Some(changes) = &self.changes {
            changes.publish(tx as u32, &changed.hashes, changed.wide);
        }
    }

    /// Marks every write of the aborted transaction as an ESTIMATE, so that
    /// readers wait for its next incarnation instead of reading stale values.
    pub fn convert_writes_to_estimates(&self, tx: TxIndex) {
        let mut last = lock!(self.last_writes[tx]);
        let TxWrites { lazy, debit, .. } = &mut *last;
        for amount in std::iter::once(lazy).chain(debit.as_deref_mut().map(|d| &mut d.amount)) {
            if let LazyAmount::Write(..) = amount {
                *amount = LazyAmount::Estimate;
            }
        }
        let mut changed = ChangedKeys::default();
        for key in last.keys.iter() {
            let hash = self.hasher.hash_one(key);
            changed.note(key, hash);
            let mut shard = write!(self.shard_of_hash(hash));
            if let Some(versions) = shard.get_mut(key) {
                if let Ok(at) = versions.binary_search_by_key(&tx, |e| e.tx) {
                    versions[at].data = EntryData::Estimate;
                }
            }
        }
        self.publish_change(tx, &changed);
    }

    /// The keys written by the latest incarnation of `tx`, sorted.
    pub fn written_keys(&self, tx: TxIndex) -> Vec<StateKey> {
        lock!(self.last_writes[tx]).keys.clone()
    }

    /// The last write of every key once the block is done, in key order, with
    /// balance additions folded into full account values and slot writes that
    /// a later wipe of their account cleared left out. Includes the pre-block
    /// writes. Calling it while transactions still run is a logic error.
    pub fn final_writes(&self) -> Result<Writes, StateError> {
        let wipes = self.last_wipes();
        let mut out: Writes = Vec::new();
        for shard in self.shards.iter() {
            let shard = read!(shard);
            out.reserve(shard.len());
            for (key, versions) in shard.iter() {
                if let Some(value) = self.final_value(key, versions, &wipes, self.slots())? {
                    out.push((*key, value));
                }
            }
        }
        out.extend(self.final_lazy_and_pre_block(&wipes)?);
        sort_by_state_key(&mut out);
        Ok(out)
    }

    /// [`MvMemory::final_writes`], consuming the memory on up to `threads`
    /// threads. The written keys are split into one key range per thread (at
    /// bounds taken from a sample of them). First each thread turns a share
    /// of the shards into writes, freeing them as it goes (a block leaves one
    /// version vector per written key behind), and hands each write to the
    /// range of its key; then each thread sorts one range. The sorted ranges
    /// follow each other in key order: no merge is left for one thread at
    /// the end, only appending the ranges after the first.
    pub fn into_final_writes(mut self, threads: usize) -> Result<Writes, StateError> {
        let keys: usize = self.shards.iter().map(|shard| read!(shard).len()).sum();
        // Starting a thread costs more than converting a few thousand keys.
        let threads = if keys < PARALLEL_FINAL_KEYS { 1 } else { threads.clamp(1, SHARD_COUNT) };
        let end = self.slots();
        let wipes = self.last_wipes();
        let extra = self.final_lazy_and_pre_block(&wipes)?;
        let maps: Vec<KeyMap> = std::mem::take(&mut self.shards)
            .into_vec()
            .into_iter()
            .map(|shard| shard.0.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let last_writes = std::mem::take(&mut self.last_writes).into_vec();
        let bounds = range_bounds(&maps, threads);
        let range_of = |key: &StateKey| bounds.partition_point(|bound| bound <= key);
        let this = &self;
        let wipes = &wipes;
        // Each share: some shards, and some transactions' write sets to free.
        let mut shares: Vec<(Vec<KeyMap>, Vec<Mutex<TxWrites>>)> = Vec::new();
        let (mut maps, mut last_writes) = (maps.into_iter(), last_writes.into_iter());
        let (maps_per_share, writes_per_share) = (SHARD_COUNT.div_ceil(threads), end.div_ceil(threads).max(1));
        for _ in 0..threads {
            shares.push((
                maps.by_ref().take(maps_per_share).collect(),
                last_writes.by_ref().take(writes_per_share).collect(),
            ));
        }
        let convert = |(maps, last_writes): (Vec<KeyMap>, Vec<Mutex<TxWrites>>)| {
            drop(last_writes);
            // Room for an even split and some: a range that outgrows it
            // moves once.
            let keys: usize = maps.iter().map(KeyMap::len).sum();
            let room = keys.div_ceil(threads) + keys / 16;
            let mut ranges: Vec<Writes> = (0..threads).map(|_| Vec::with_capacity(room)).collect();
            for map in maps {
                for (key, versions) in map {
                    if let Some(value) = this.final_value(&key, &versions, wipes, end)? {
                        ranges[range_of(&key)].push((key, value));
                    }
                }
            }
            Ok::<_, StateError>(ranges)
        };
        let converted = crate::pool::map_shares(shares, convert);
        // By range: the writes of every share (and of the extra writes) to it.
        let mut by_range: Vec<Vec<Writes>> = (0..threads).map(|_| Vec::new()).collect();
        for ranges in converted {
            for (range, writes) in ranges?.into_iter().enumerate() {
                by_range[range].push(writes);
            }
        }
        let mut extra_ranges: Vec<Writes> = vec![Vec::new(); threads];
        for write in extra {
            extra_ranges[range_of(&write.0)].push(write);
        }
        for (range, writes) in extra_ranges.into_iter().enumerate() {
            by_range[range].push(writes);
        }
        let total: usize = by_range.iter().flatten().map(Vec::len).sum();
        let sort_range = |(room, mut parts): (usize, Vec<Writes>)| {
            // The largest part takes the others in.
            parts.sort_unstable_by_key(|part| std::cmp::Reverse(part.len()));
            let mut parts = parts.into_iter();
            let mut range = parts.next().unwrap_or_default();
            range.reserve(room.saturating_sub(range.len()));
            for part in parts {
                range.extend(part);
            }
            sort_by_state_key(&mut range);
            range
        };
        // The first range gets room for all: the others are appended to it.
        let shares = by_range
            .into_iter()
            .enumerate()
            .map(|(range, parts)| (if range == 0 { total } else { parts.iter().map(Vec::len).sum() }, parts))
            .collect();
        let mut sorted = crate::pool::map_shares(shares, sort_range).into_iter();
        let mut out = sorted.next().unwrap_or_default();
        for range in sorted {
            out.extend(range);
        }
        debug_assert!(out.windows(2).all(|pair| pair[0].0 < pair[1].0), "final writes are sorted and unique");
        Ok(out)
    }

    /// The last wipe of every wiped account, by transaction.
    fn last_wipes(&self) -> HashMap<Address, TxIndex> {
        let mut wipes: HashMap<Address, TxIndex> = HashMap::default();
        if self.has_wipes.load(Ordering::Acquire) {
            for shard in self.shards.iter() {
                for (key, versions) in read!(shard).iter() {
                    if let (StateKey::StorageWipe(address), Some((tx, _))) = (key, last_write(versions)) {
                        wipes.insert(*address, tx);
                    }
                }
            }
        }
        wipes
    }

    /// The final value of one key from the shards (`None`: no write left).
    fn final_value(
        &self,
        key: &StateKey,
        versions: &[Entry],
        wipes: &HashMap<Address, TxIndex>,
        end: TxIndex,
    ) -> Result<Option<StateValue>, StateError> {
        if versions.is_empty() || self.is_lazy(key) {
            return Ok(None);
        }
        if let Some(e) = versions.iter().find(|e| matches!(e.data, EntryData::Estimate)) {
            return Err(leftover(key, e.tx));
        }
        Ok(match key {
            StateKey::Account(address) => {
                let Walk::Found { base, additions } = walk_versions(versions, end) else {
                    unreachable!("no estimates left")
                };
                let base_value = match base {
                    Some((_, StateValue::Account(account))) => account,
                    Some(_) => None,
                    None => self.parent_account(address)?,
                };
                Some(StateValue::Account(self.add_balances(base_value, &additions)))
            }
            StateKey::Storage(address, _) => match last_write(versions) {
                // A wipe after the slot's last write clears it (a
                // creation wipes and writes slots in one transaction).
                Some((tx, _)) if wipes.get(address).is_some_and(|w| *w > tx) => None,
                other => other.map(|(_, v)| v.clone()),
            },
            StateKey::StorageWipe(_) | StateKey::Code(_) => last_write(versions).map(|(_, v)| v.clone()),
        })
    }

    /// The final writes outside the shards: the lazy account, and pre-block
    /// writes not overwritten in the block (minus slots that a wipe in the
    /// block cleared). Must run while the shards are in place.
    fn final_lazy_and_pre_block(&self, wipes: &HashMap<Address, TxIndex>) -> Result<Writes, StateError> {
        let mut out = Vec::new();
        if !self.debit_accounts.is_empty() {
            let Some(accounts) = self.replay_debits(|_, _, _| true)? else {
                return Err(StateError {
                    what: "final writes of the debited accounts".into(),
                    reason: "an estimate or a debit above the balance is left".into(),
                });
            };
            out.extend(
                accounts.into_iter().map(|(address, value)| (StateKey::Account(address), StateValue::Account(value))),
            );
        }
        let beneficiary = self.lazy.filter(|b| !self.debit_accounts.contains(b));
        if let Some(address) = beneficiary {
            let key = StateKey::Account(address);
            match self.walk_lazy(&key, self.slots()) {
                Walk::Blocked(tx) => return Err(leftover(&key, tx)),
                Walk::Found { base: None, additions } if additions.is_empty() => {}
                Walk::Found { base, additions } => {
                    let base_value = match base {
                        Some((_, StateValue::Account(account))) => account,
                        Some(_) => None,
                        None => self.parent_account(&address)?,
                    };
                    out.push((key, StateValue::Account(self.add_balances(base_value, &additions))));
                }
            }
        }
        for (key, value) in self.pre_block.iter() {
            let in_block = read!(self.shard(key)).get(key).is_some_and(|v| !v.is_empty())
                || (self.is_lazy(key) && out.iter().any(|(k, _)| k == key));
            if in_block {
                continue;
            }
            if let StateKey::Storage(address, _) = key {
                if wipes.contains_key(address) {
                    continue;
                }
            }
            out.push((*key, value.clone()));
        }
        Ok(out)
    }
}

/// Up to `ranges - 1` keys that split the keys of `maps` into `ranges` key
/// ranges of about the same size, taken from a sample: a few keys spread
/// over every map. A shard holds the keys of one hash range, so they are a random
/// sample of the key order.
fn range_bounds(maps: &[KeyMap], ranges: usize) -> Vec<StateKey> {
    const SAMPLED_PER_MAP: usize = 8;
    if ranges <= 1 {
        return Vec::new();
    }
    // Spread over each map's entries (in the order of first writes, which
    // may follow the key order within a run of transactions).
    let mut sample: Vec<StateKey> = maps
        .iter()
        .flat_map(|map| {
            let step = (map.len() / SAMPLED_PER_MAP).max(1);
            map.keys().step_by(step).take(SAMPLED_PER_MAP).copied()
        })
        .collect();
    sample.sort_unstable();
    (1..ranges).filter_map(|range| sample.get(range * sample.len() / ranges).copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::InMemoryState;
    use std::collections::BTreeMap;

    fn addr(n: u8) -> Address {
        Address::new([n; 20])
    }

    fn parent() -> InMemoryState {
        let mut state = InMemoryState::default();
        state.insert_account(addr(1), 0, U256::from(100), Bytes::new(), [(U256::from(7), U256::from(70))]);
        state
    }

    fn set_slot(value: u64) -> WriteOp {
        WriteOp::Set(StateValue::Storage(U256::from(value)))
    }

    #[test]
    fn read_returns_highest_lower_write_or_parent() {
        let state = parent();
        let mv = MvMemory::new(&state, 4, true);
        let key = StateKey::Storage(addr(1), U256::from(7));
        mv.record(Version { tx: 1, incarnation: 0 }, vec![(key, set_slot(11))]);
        mv.record(Version { tx: 3, incarnation: 0 }, vec![(key, set_slot(33))]);
        let read = |tx| mv.read_storage(&addr(1), &U256::from(7), tx).unwrap();
        assert_eq!(read(0), (U256::from(70), ReadOrigin::Parent));
        assert_eq!(read(1), (U256::from(70), ReadOrigin::Parent));
        assert_eq!(read(2).0, U256::from(11));
        assert_eq!(read(3).1, ReadOrigin::Version(Version { tx: 1, incarnation: 0 }));
        assert_eq!(read(4).0, U256::from(33));
    }

    #[test]
    fn reads_through_a_crowded_written_key_filter_match_a_model() {
        // Far more keys than filter entries per slot: entries collide, and
        // every read must still see the write below it or the parent's
        // value. Writers come in mixed order, so entries are lowered.
        let mut state = InMemoryState::default();
        let slots: Vec<U256> = (0..20_000u64).map(U256::from).collect();
        state.insert_account(addr(1), 0, U256::ZERO, Bytes::new(), slots.iter().map(|s| (*s, *s + U256::from(1))));
        let txs = 8;
        let mv = MvMemory::new(&state, txs, true);
        let mut model: BTreeMap<(u64, TxIndex), u64> = BTreeMap::new();
        for tx in [3, 7, 0, 5, 1, 6, 2, 4] {
            // Transaction tx writes every (tx + 2)-th slot of a third.
            let writes: Vec<(StateKey, WriteOp)> = (0..20_000u64)
                .filter(|s| s % 3 == 0 && s % (tx as u64 + 2) == 0)
                .map(|s| {
                    model.insert((s, tx), s * 10 + tx as u64);
                    (StateKey::Storage(addr(1), U256::from(s)), set_slot(s * 10 + tx as u64))
                })
                .collect();
            mv.record(Version { tx, incarnation: 0 }, writes);
        }
        for reader in 0..=txs {
            for s in 0..20_000u64 {
                let (value, expected) = match model.range((s, 0)..(s, reader)).next_back() {
                    Some((&(_, tx), &v)) => (v, ReadOrigin::Version(Version { tx, incarnation: 0 })),
                    None => (s + 1, ReadOrigin::Parent),
                };
                let read = mv.read_storage(&addr(1), &U256::from(s), reader).unwrap();
                assert_eq!(read, (U256::from(value), expected), "slot {s} read by {reader}");
            }
        }
    }

    #[test]
    fn validation_sees_a_write_below_the_reader_after_its_own() {
        // The reader's own write and a later one leave its read of the
        // parent valid; a write below it, recorded last, must not.
        let state = parent();
        let mv = MvMemory::new(&state, 8, true);
        let key = StateKey::Storage(addr(1), U256::from(7));
        let (value, origin) = mv.read_storage(&addr(1), &U256::from(7), 5).unwrap();
        let reads = vec![ReadRecord { key, origin: origin.clone() }];
        assert_eq!((value, origin), (U256::from(70), ReadOrigin::Parent));
        mv.record(Version { tx: 5, incarnation: 0 }, vec![(key, set_slot(5))]);
        mv.record(Version { tx: 7, incarnation: 0 }, vec![(key, set_slot(7))]);
        assert!(mv.validate_reads(5, &reads).is_none());
        mv.record(Version { tx: 2, incarnation: 0 }, vec![(key, set_slot(2))]);
        assert_eq!(mv.validate_reads(5, &reads), Some(&reads[0]));
        assert_eq!(mv.read_storage(&addr(1), &U256::from(7), 5).unwrap().0, U256::from(2));
        assert_eq!(mv.read_storage(&addr(1), &U256::from(7), 2).unwrap().0, U256::from(70));
    }

    #[test]
    fn estimate_blocks_readers_until_rewritten() {
        let state = parent();
        let mv = MvMemory::new(&state, 3, true);
        let key = StateKey::Storage(addr(1), U256::from(7));
        mv.record(Version { tx: 0, incarnation: 0 }, vec![(key, set_slot(1))]);
        mv.convert_writes_to_estimates(0);
        assert_eq!(mv.read_storage(&addr(1), &U256::from(7), 2), Err(ReadError::Blocked(0)));
        // The next incarnation writes again: readers see it.
        mv.record(Version { tx: 0, incarnation: 1 }, vec![(key, set_slot(2))]);
        assert_eq!(mv.read_storage(&addr(1), &U256::from(7), 2).unwrap().0, U256::from(2));
    }

    #[test]
    fn validation_fails_when_a_lower_write_appears_or_changes_incarnation() {
        let state = parent();
        let mv = MvMemory::new(&state, 3, true);
        let key = StateKey::Storage(addr(1), U256::from(7));
        let (_, origin) = mv.read_storage(&addr(1), &U256::from(7), 2).unwrap();
        let reads = vec![ReadRecord { key, origin }];
        assert!(mv.validate_reads(2, &reads).is_none());
        assert!(mv.record(Version { tx: 1, incarnation: 0 }, vec![(key, set_slot(5))]));
        assert_eq!(mv.validate_reads(2, &reads), Some(&reads[0]));
        // A read of incarnation 0 fails once incarnation 1 rewrote the key.
        let (_, origin) = mv.read_storage(&addr(1), &U256::from(7), 2).unwrap();
        let reads = vec![ReadRecord { key, origin }];
        assert!(!mv.record(Version { tx: 1, incarnation: 1 }, vec![(key, set_slot(5))]));
        assert!(mv.validate_reads(2, &reads).is_some());
    }

    /// Validation after a change mark against full validation, over random
    /// interleavings of reads, writes (storage, accounts, lazy additions,
    /// wipes, removed stale keys) and aborts by lower and higher
    /// transactions: both find a changed read in exactly the same cases.
    #[test]
    fn validation_since_a_mark_agrees_with_full_validation() {
        let state = parent();
        let mut seed = 0x5EED_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut skipped, mut changed) = (0, 0);
        for round in 0..300 {
            let mut mv = MvMemory::new(&state, 8, true);
            mv.set_lazy_account(addr(9));
            mv.track_changes();
            let key = |k: u64| match k {
                0..=3 => StateKey::Account(addr(k as u8 + 1)),
                4 => StateKey::Account(addr(9)),
                _ => StateKey::Storage(addr(1 + (k % 2) as u8), U256::from(k % 4)),
            };
            let write = |k: u64, v: u64| match key(k) {
                StateKey::Account(a) if a == addr(9) || v.is_multiple_of(3) => {
                    (StateKey::Account(a), WriteOp::AddBalance(U256::from(v)))
                }
                StateKey::Account(a) => (
                    StateKey::Account(a),
                    WriteOp::Set(StateValue::Account(Some(AccountBasic {
                        nonce: v,
                        balance: U256::from(v),
                        code_hash: crate::pending::EMPTY_CODE_HASH,
                    }))),
                ),
                other => (other, set_slot(v)),
            };
            let record =
                |mv: &MvMemory<'_>, tx: TxIndex, incarnation: Incarnation, next: &mut dyn FnMut(u64) -> u64| {
                    let mut writes: Vec<_> = (0..1 + next(3)).map(|_| write(next(8), next(50))).collect();
                    if next(10) == 0 {
                        writes.push((StateKey::StorageWipe(addr(1)), WriteOp::Set(StateValue::StorageWipe)));
                    }
                    writes.sort_by_key(|w| w.0);
                    writes.dedup_by_key(|w| w.0);
                    mv.record(Version { tx, incarnation }, writes);
                };
            // Some writes before the reader starts.
            for tx in 0..8 {
                if next(2) == 0 {
                    record(&mv, tx, 0, &mut next);
                }
            }
            let reader = 1 + next(7) as TxIndex;
            let mark = mv.change_mark();
            let mut reads = Vec::new();
            for _ in 0..1 + next(4) {
                let k = key(next(8));
                let origin = match k {
                    StateKey::Account(a) => mv.read_account(&a, reader).map(|(_, o)| o),
                    StateKey::Storage(a, s) => mv.read_storage(&a, &s, reader).map(|(_, o)| o),
                    _ => unreachable!(),
                };
                if let Ok(origin) = origin {
                    reads.push(ReadRecord { key: k, origin });
                }
            }
            // Changes after the mark: writes of new incarnations, aborts.
            for _ in 0..next(4) {
                let tx = next(8) as TxIndex;
                if tx == reader {
                    continue;
                }
                if next(4) == 0 {
                    mv.convert_writes_to_estimates(tx);
                } else {
                    record(&mv, tx, 1 + round, &mut next);
                }
            }
            let full = mv.validate_reads(reader, &reads).is_some();
            let since = mv.validate_reads_since(reader, &reads, mark).is_some();
            assert_eq!(full, since, "round {round}: reader {reader}, reads {reads:?}");
            changed += usize::from(full);
            skipped += usize::from(!full);
        }
        assert!(changed > 30 && skipped > 30, "{changed} changed, {skipped} unchanged");
    }

    #[test]
    fn stale_writes_of_a_previous_incarnation_are_removed() {
        let state = parent();
        let mv = MvMemory::new(&state, 2, true);
        let a = StateKey::Storage(addr(1), U256::from(1));
        let b = StateKey::Storage(addr(1), U256::from(2));
        mv.record(Version { tx: 0, incarnation: 0 }, vec![(a, set_slot(1)), (b, set_slot(2))]);
        mv.record(Version { tx: 0, incarnation: 1 }, vec![(a, set_slot(3))]);
        assert_eq!(mv.read_storage(&addr(1), &U256::from(2), 1).unwrap().1, ReadOrigin::Parent);
        assert_eq!(mv.final_writes().unwrap(), vec![(a, StateValue::Storage(U256::from(3)))]);
    }

    #[test]
    fn balance_additions_fold_in_order_and_track_every_origin() {
        let state = parent();
        let mv = MvMemory::new(&state, 4, true);
        let key = StateKey::Account(addr(1));
        mv.record(Version { tx: 0, incarnation: 0 }, vec![(key, WriteOp::AddBalance(U256::from(5)))]);
        mv.record(Version { tx: 2, incarnation: 0 }, vec![(key, WriteOp::AddBalance(U256::from(7)))]);
        let (account, origin) = mv.read_account(&addr(1), 3).unwrap();
        assert_eq!(account.unwrap().balance, U256::from(112));
        assert_eq!(
            origin,
            ReadOrigin::Additions(Box::new(AdditionChain {
                base: None,
                additions: vec![Version { tx: 2, incarnation: 0 }, Version { tx: 0, incarnation: 0 }],
            }))
        );
        // A new addition below the reader invalidates its read.
        let reads = vec![ReadRecord { key, origin }];
        mv.record(Version { tx: 1, incarnation: 0 }, vec![(key, WriteOp::AddBalance(U256::ZERO))]);
        assert!(mv.validate_reads(3, &reads).is_some());
    }

    #[test]
    fn zero_addition_to_a_missing_account_respects_eip161() {
        let state = InMemoryState::default();
        for (state_clear, expected) in [(true, None), (false, Some(AccountBasic::default()))] {
            let mv = MvMemory::new(&state, 1, state_clear);
            mv.record(
                Version { tx: 0, incarnation: 0 },
                vec![(StateKey::Account(addr(9)), WriteOp::AddBalance(U256::ZERO))],
            );
            assert_eq!(mv.read_account(&addr(9), 1).unwrap().0, expected);
        }
    }

    #[test]
    fn a_wipe_hides_older_slot_writes_and_parent_slots() {
        let state = parent();
        let mv = MvMemory::new(&state, 3, true);
        let slot = StateKey::Storage(addr(1), U256::from(7));
        mv.record(Version { tx: 0, incarnation: 0 }, vec![(slot, set_slot(9))]);
        mv.record(
            Version { tx: 1, incarnation: 0 },
            vec![(StateKey::StorageWipe(addr(1)), WriteOp::Set(StateValue::StorageWipe))],
        );
        assert_eq!(mv.read_storage(&addr(1), &U256::from(7), 2).unwrap().0, U256::ZERO);
        let writes = mv.final_writes().unwrap();
        assert_eq!(writes, vec![(StateKey::StorageWipe(addr(1)), StateValue::StorageWipe)]);
    }

    #[test]
    fn lazy_account_additions_match_shared_ones() {
        let state = parent();
        let key = StateKey::Account(addr(1));
        let add = |v: u64| WriteOp::AddBalance(U256::from(v));
        let full = |balance: u64| {
            WriteOp::Set(StateValue::Account(Some(AccountBasic { balance: U256::from(balance), ..Default::default() })))
        };
        let mut results = Vec::new();
        for lazy in [false, true] {
            let mut mv = MvMemory::new(&state, 6, true);
            if lazy {
                mv.set_lazy_account(addr(1));
            }
            mv.record(Version { tx: 0, incarnation: 0 }, vec![(key, add(5))]);
            mv.record(Version { tx: 1, incarnation: 0 }, vec![(key, full(1000))]);
            mv.record(Version { tx: 2, incarnation: 0 }, vec![(key, add(7))]);
            mv.record(Version { tx: 4, incarnation: 0 }, vec![(key, add(1))]);
            let (account, origin) = mv.read_account(&addr(1), 5).unwrap();
            assert_eq!(account.unwrap().balance, U256::from(1008));
            let base = Some(Version { tx: 1, incarnation: 0 });
            let additions = vec![Version { tx: 4, incarnation: 0 }, Version { tx: 2, incarnation: 0 }];
            assert_eq!(origin, ReadOrigin::Additions(Box::new(AdditionChain { base, additions })));
            assert_eq!(mv.read_account(&addr(1), 1).unwrap().0.unwrap().balance, U256::from(105));
            // An aborted addition blocks readers above it until rewritten.
            mv.convert_writes_to_estimates(2);
            assert_eq!(mv.read_account(&addr(1), 5), Err(ReadError::Blocked(2)));
            let reads = vec![ReadRecord { key, origin }];
            // The next incarnation touches the account fully instead.
            mv.record(Version { tx: 2, incarnation: 1 }, vec![(key, full(50))]);
            assert!(mv.validate_reads(5, &reads).is_some());
            assert_eq!(mv.read_account(&addr(1), 5).unwrap().0.unwrap().balance, U256::from(51));
            // And the one after that adds again: the full write is gone.
            mv.record(Version { tx: 2, incarnation: 2 }, vec![(key, add(3))]);
            assert_eq!(mv.read_account(&addr(1), 5).unwrap().0.unwrap().balance, U256::from(1004));
            results.push(mv.final_writes().unwrap());
        }
        assert_eq!(results[0], results[1]);
    }

    #[test]
    fn debits_fold_like_the_full_writes_they_stand_for() {
        let state = parent();
        let key = StateKey::Account(addr(1));
        let full = |nonce: u64, balance: u64| {
            WriteOp::Set(StateValue::Account(Some(AccountBasic {
                nonce,
                balance: U256::from(balance),
                ..Default::default()
            })))
        };
        let debit = |amount: u64| WriteOp::Debit(U256::from(amount));
        // The same history written in full and as debits, with the account
        // as a plain one and as the beneficiary too.
        let plain = [full(1, 90), WriteOp::AddBalance(U256::from(5)), full(2, 75), full(2, 500), full(3, 400)];
        let debits = [debit(10), WriteOp::AddBalance(U256::from(5)), debit(20), full(2, 500), debit(100)];
        let reads = |mv: &MvMemory| (0..=5).map(|tx| mv.read_account(&addr(1), tx).unwrap().0).collect::<Vec<_>>();
        let reference = MvMemory::new(&state, 5, true);
        for (tx, op) in plain.iter().enumerate() {
            reference.record(Version { tx, incarnation: 0 }, vec![(key, op.clone())]);
        }
        for beneficiary in [false, true] {
            let mut mv = MvMemory::new(&state, 5, true);
            mv.set_debit_accounts([addr(1)].into_iter().collect());
            if beneficiary {
                mv.set_lazy_account(addr(1));
            }
            for (tx, op) in debits.iter().enumerate() {
                mv.record(Version { tx, incarnation: 0 }, vec![(key, op.clone())]);
            }
            assert_eq!(reads(&mv), reads(&reference), "beneficiary {beneficiary}");
            let mut seen = Vec::new();
            let held = mv.check_debits(|tx, address, a| {
                seen.push((tx, *address, a.nonce, a.balance.to::<u64>()));
                true
            });
            assert_eq!(held, Ok(true));
            assert_eq!(seen, [(0, addr(1), 0, 100), (2, addr(1), 1, 95), (4, addr(1), 2, 500)]);
            // A precondition that fails (a nonce gap) fails the check.
            assert_eq!(mv.check_debits(|tx, _, _| tx != 2), Ok(false));
            assert_eq!(mv.final_writes().unwrap(), reference.final_writes().unwrap());
            // A debit above the balance fails it too.
            mv.record(Version { tx: 4, incarnation: 1 }, vec![(key, debit(501))]);
            assert_eq!(mv.check_debits(|_, _, _| true), Ok(false));
            // An aborted debit blocks the readers above it and the check.
            mv.convert_writes_to_estimates(2);
            assert_eq!(mv.read_account(&addr(1), 3), Err(ReadError::Blocked(2)));
            assert_eq!(mv.read_account(&addr(1), 2).unwrap().0, reference.read_account(&addr(1), 2).unwrap().0);
            assert_eq!(mv.check_debits(|_, _, _| true), Ok(false));
        }
    }

    #[test]
    fn consuming_final_writes_match_on_any_thread_count() {
        let state = parent();
        let build = || {
            let mut mv = MvMemory::new(&state, 40, true);
            mv.set_lazy_account(addr(200));
            mv.set_pre_block_writes([
                (StateKey::Storage(addr(1), U256::from(8)), StateValue::Storage(U256::from(80))),
                (StateKey::Storage(addr(3), U256::from(1)), StateValue::Storage(U256::from(5))),
            ]);
            for tx in 0..40u8 {
                let mut writes = vec![
                    (StateKey::Account(addr(tx)), WriteOp::AddBalance(U256::from(tx))),
                    (StateKey::Storage(addr(tx % 7), U256::from(tx)), set_slot(tx as u64 + 1)),
                    (StateKey::Account(addr(200)), WriteOp::AddBalance(U256::from(1))),
                ];
                if tx == 20 {
                    writes.push((StateKey::StorageWipe(addr(3)), WriteOp::Set(StateValue::StorageWipe)));
                }
                mv.record(Version { tx: tx as usize, incarnation: 0 }, writes);
            }
            mv
        };
        let expected = build().final_writes().unwrap();
        assert!(expected.len() > 40);
        for threads in [1, 2, 3, 8, 300] {
            assert_eq!(build().into_final_writes(threads).unwrap(), expected, "{threads} threads");
        }
        // Enough keys for the threads to start, of every kind, with lazy
        // and pre-block writes among them: each range gets its share.
        let big = || {
            let txs = 48u64;
            let mut mv = MvMemory::new(&state, txs as usize, true);
            let wide = |n: u64| Address::left_padding_from(&(n * 0x9e37_79b9).to_be_bytes());
            mv.set_lazy_account(wide(7));
            mv.set_pre_block_writes([
                (StateKey::Storage(wide(3), U256::from(1)), StateValue::Storage(U256::from(9))),
                (StateKey::Storage(addr(1), U256::MAX), StateValue::Storage(U256::from(8))),
            ]);
            for tx in 0..txs {
                let mut writes: Vec<_> = (0..PARALLEL_FINAL_KEYS as u64 / 8)
                    .map(|i| {
                        let n = tx * 1_000 + i;
                        match n % 4 {
                            0 => (StateKey::Account(wide(n % 600)), WriteOp::AddBalance(U256::from(n))),
                            1 => (StateKey::Account(wide(7)), WriteOp::AddBalance(U256::from(1))),
                            _ => (StateKey::Storage(wide(n % 13), U256::from(n % 5_000)), set_slot(n % 5)),
                        }
                    })
                    .chain(
                        (tx == 30).then_some((StateKey::StorageWipe(wide(3)), WriteOp::Set(StateValue::StorageWipe))),
                    )
                    .collect();
                writes.sort_by_key(|w| w.0);
                writes.dedup_by_key(|w| w.0);
                mv.record(Version { tx: tx as usize, incarnation: 0 }, writes);
            }
            mv
        };
        let expected = big().final_writes().unwrap();
        assert!(expected.len() > 2 * PARALLEL_FINAL_KEYS, "{} writes", expected.len());
        for threads in [1, 2, 3, 8] {
            assert_eq!(big().into_final_writes(threads).unwrap(), expected, "{threads} threads");
        }
    }
}
