//! State roots computed in one pass over leaves in key order: accounts by
//! keccak(address), each followed by its slots by keccak(slot).
//! [`StreamRoot`] keeps no branch records (memory: the trie depth) and
//! checks snapshot files without importing them; [`check_state_root`]
//! recomputes a database's state root, storage roots and branch records
//! from its leaves with the bulk load's trie builders (memory: one part of
//! a trie) and compares them with what is stored.

use alloy_primitives::{B256, U256};
use metis_trie::{storage_leaf_value, BuildError, LeafHash, Nibbles, RootBuilder};
use metisdb::state::{AccountInfo, StoredAccount};

/// An account whose stored storage root differs from its recomputed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRootMismatch {
    /// keccak(address).
    pub account: B256,
    /// Root in the account record.
    pub stored: B256,
    /// Root of the account's slots.
    pub computed: B256,
}

/// Findings listed in reports (the rest are only counted).
const LISTED: usize = 100;

/// Counts `item` and keeps it if fewer than [`LISTED`] are kept.
fn note<T>(kept: &mut Vec<T>, count: &mut u64, item: T) {
    *count += 1;
    if kept.len() < LISTED {
        kept.push(item);
    }
}

struct Open {
    hash: B256,
    info: AccountInfo,
    stored_root: Option<B256>,
    storage: RootBuilder,
    slots: u64,
    /// Its leaf's node hash if computed ahead (for an empty storage trie).
    hashed: Option<LeafHash>,
}

/// Streaming state root.
#[derive(Default)]
pub struct StreamRoot {
    accounts: RootBuilder,
    open: Option<Open>,
    /// Accounts whose stored storage root was wrong (first 100).
    pub mismatches: Vec<StorageRootMismatch>,
    /// How many accounts had a wrong stored storage root.
    pub mismatch_count: u64,
}

impl StreamRoot {
    /// An empty computation.
    pub fn new() -> StreamRoot {
        StreamRoot::default()
    }

    fn close(&mut self) -> Result<(), BuildError> {
        if let Some(o) = self.open.take() {
            let root = if o.slots == 0 { metis_trie::EMPTY_ROOT_HASH } else { o.storage.finish()?.root() };
            if let Some(stored) = o.stored_root {
                if stored != root {
                    let m = StorageRootMismatch { account: o.hash, stored, computed: root };
                    note(&mut self.mismatches, &mut self.mismatch_count, m);
                }
            }
            let leaf = StoredAccount { info: o.info, storage_root: root }.trie_account().encode_to_vec();
            let hashed = crate::snapshot::load::account_hash_for(o.hashed, root);
            self.accounts.add_leaf_hashed(Nibbles::unpack(o.hash.as_slice()), &leaf, hashed)?;
        }
        Ok(())
    }

    /// The next account (strictly increasing `hash`), with its leaf's node
    /// hash if computed ahead ([`crate::snapshot::load::hash_leaves_ahead`]).
    /// `stored_root` is the storage root the source claims, checked against its slots.
    pub fn account(
        &mut self,
        hash: B256,
        info: AccountInfo,
        stored_root: Option<B256>,
        hashed: Option<LeafHash>,
    ) -> Result<(), BuildError> {
        self.close()?;
        self.open = Some(Open { hash, info, stored_root, storage: RootBuilder::new(), slots: 0, hashed });
        Ok(())
    }

    /// A non-zero slot of the current account (strictly increasing `hash`),
    /// with its leaf's node hash if computed ahead. Returns false when no
    /// account is open.
    pub fn slot(&mut self, hash: B256, value: &U256, hashed: Option<LeafHash>) -> Result<bool, BuildError> {
        let Some(o) = self.open.as_mut() else { return Ok(false) };
        let Some(leaf) = storage_leaf_value(value) else { return Ok(true) };
        o.storage.add_leaf_hashed(Nibbles::unpack(hash.as_slice()), &leaf, hashed)?;
        o.slots += 1;
        Ok(true)
    }

    /// The state root of everything fed.
    pub fn finish(mut self) -> Result<(B256, Vec<StorageRootMismatch>, u64), BuildError> {
        self.close()?;
        let root = self.accounts.finish()?.root();
        Ok((root, self.mismatches, self.mismatch_count))
    }
}

/// Checks the stored branch records (tables `account_trie` and
/// `storage_trie`) against the records a bulk load of the same leaves
/// makes ([`crate::snapshot::load::Tries`]), which are exactly those the
/// incremental writer keeps. A missing or wrong record does not change any
/// root the database reports, but a later commit would build on it: a
/// wrong child hash gives wrong roots, a missing record costs reading leaves.
///
/// A first pass only sums a digest of the recomputed records and compares
/// it with a digest of one scan of the stored tables; only when they differ
/// does a second pass look every recomputed record up to name the bad ones.
struct RecordCheck<'a> {
    snap: &'a metisdb::Snapshot,
    tries: crate::snapshot::load::Tries,
    out: crate::snapshot::load::TrieOut,
    /// Look every record up (second pass) instead of summing the digest.
    locate: bool,
    /// Order-independent digest of the records recomputed (see [`record_digest`]).
    digest: u64,
    /// Records recomputed.
    checked: u64,
    /// Of those, not stored.
    missing: u64,
    /// (account, stored storage root) of the accounts whose computed record
    /// has not come out of the tries yet (first pass).
    stored_roots: std::collections::VecDeque<(B256, B256)>,
    /// Accounts whose stored storage root is not their slots' (first 100), and how many.
    mismatches: Vec<StorageRootMismatch>,
    mismatch_count: u64,
    /// Problems found (first 100) and how many in all.
    problems: Vec<String>,
    problem_count: u64,
}

/// The digest of one record: the sum of these over a set of records is
/// the same in any order.
fn record_digest(table: u8, key: &[u8], value: &[u8]) -> u64 {
    let seed = xxhash_rust::xxh3::xxh3_64_with_seed(key, u64::from(table));
    xxhash_rust::xxh3::xxh3_64_with_seed(value, seed)
}

/// (entries, digest) of the stored branch records, in one scan per table.
fn stored_records(snap: &metisdb::Snapshot) -> crate::Result<(u64, u64)> {
    let db_err = |e| crate::Error::Db { context: "read the branch records".into(), source: Box::new(e) };
    let (mut n, mut digest) = (0u64, 0u64);
    for table in [metisdb::tables::ACCOUNT_TRIE, metisdb::tables::STORAGE_TRIE] {
        let mut it = snap.scan(table, &[]).map_err(db_err)?;
        while let Some((k, v)) = it.current() {
            n += 1;
            digest = digest.wrapping_add(record_digest(table.0, k, v));
            it.advance().map_err(db_err)?;
        }
    }
    Ok((n, digest))
}

impl<'a> RecordCheck<'a> {
    fn new(snap: &'a metisdb::Snapshot, locate: bool) -> Self {
        RecordCheck {
            snap,
            tries: crate::snapshot::load::Tries::new(),
            out: crate::snapshot::load::TrieOut::default(),
            locate,
            digest: 0,
            checked: 0,
            missing: 0,
            stored_roots: std::collections::VecDeque::new(),
            mismatches: Vec::new(),
            mismatch_count: 0,
            problems: Vec::new(),
            problem_count: 0,
        }
    }

    /// Checks a closed account's computed storage root against the stored one.
    fn closed_account(&mut self, hash: &B256, computed: B256) {
        let Some((account, stored)) = self.stored_roots.pop_front() else { return };
        debug_assert_eq!(&account, hash, "accounts close in the order they were fed");
        if stored != computed {
            note(&mut self.mismatches, &mut self.mismatch_count, StorageRootMismatch { account, stored, computed });
        }
    }

    fn problem(&mut self, p: String) {
        note(&mut self.problems, &mut self.problem_count, p);
    }

    /// Compares the records made so far with the stored ones.
    fn drain(&mut self) -> crate::Result<()> {
        use metisdb::tables::ACCOUNT_TRIE;
        // Taken out while it is read (the checks below borrow `self`), then
        // put back empty: one buffer for the whole walk.
        let mut out = std::mem::take(&mut self.out);
        if !self.locate {
            for (hash, stored) in &out.accounts {
                self.closed_account(hash, stored.storage_root);
            }
        }
        for (t, k, v) in out.records.iter() {
            let table = metisdb::Table(t);
            self.checked += 1;
            if !self.locate {
                self.digest = self.digest.wrapping_add(record_digest(t, k, v));
                continue;
            }
            let stored = self
                .snap
                .get(table, k)
                .map_err(|e| crate::Error::Db { context: "read a branch record".into(), source: Box::new(e) })?;
            let name = if table == ACCOUNT_TRIE { "account_trie" } else { "storage_trie" };
            match stored {
                None => {
                    self.missing += 1;
                    self.problem(format!("{name} record 0x{} is missing", hex::encode(k)))
                }
                Some(s) if s != v => {
                    self.problem(format!("{name} record 0x{} differs from its leaves' record", hex::encode(k)))
                }
                Some(_) => {}
            }
        }
        out.records.clear();
        out.accounts.clear();
        self.out = out;
        Ok(())
    }
}

/// What [`check_state_root`] found.
#[derive(Clone, Debug)]
pub struct RootCheck {
    /// Version checked.
    pub version: Option<u64>,
    /// Root stored with the version.
    pub stored: B256,
    /// Root recomputed from the account and storage leaves.
    pub computed: B256,
    /// Accounts whose stored storage root differs from their slots' root (first 100).
    pub mismatches: Vec<StorageRootMismatch>,
    /// How many such accounts.
    pub mismatch_count: u64,
    /// Accounts read.
    pub accounts: u64,
    /// Slots read.
    pub slots: u64,
    /// Branch records recomputed from the leaves and compared.
    pub records_checked: u64,
    /// Records missing, differing or stored without a branch behind them (first 100).
    pub record_problems: Vec<String>,
    /// How many such records.
    pub record_problem_count: u64,
}

impl RootCheck {
    /// True when the recomputed root equals the stored one and every storage root matched.
    pub fn ok(&self) -> bool {
        self.stored == self.computed && self.mismatch_count == 0 && self.record_problem_count == 0
    }
}

/// Leaves per message from the walking thread to the hashing one.
const LEAVES_PER_BATCH: usize = 4096;
/// Messages in flight between them.
const BATCHES_AHEAD: usize = 8;
/// A walker's error when the hashing side stopped first (its error says why).
const HASHER_STOPPED: &str = "the hashing thread stopped";

/// Leaves in key order, the stored storage root of each account, the
/// leaves' node hashes computed ahead by the walker
/// ([`crate::snapshot::load::hash_leaves_ahead`]), and the accounts walked so far.
struct LeafBatch {
    entries: Vec<crate::snapshot::format::Entry>,
    stored_roots: Vec<Option<B256>>,
    leaf_hashes: Vec<Option<metis_trie::LeafHash>>,
    accounts: u64,
}

/// Collects the walk's leaves into batches for the hashing thread.
struct LeafBatcher {
    tx: std::sync::mpsc::SyncSender<LeafBatch>,
    entries: Vec<crate::snapshot::format::Entry>,
    stored_roots: Vec<Option<B256>>,
    accounts: u64,
}

impl LeafBatcher {
    fn push(&mut self, e: crate::snapshot::format::Entry, stored_root: Option<B256>) -> crate::Result<()> {
        self.entries.push(e);
        self.stored_roots.push(stored_root);
        if self.entries.len() >= LEAVES_PER_BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> crate::Result<()> {
        let entries = std::mem::replace(&mut self.entries, Vec::with_capacity(LEAVES_PER_BATCH));
        let stored_roots = std::mem::replace(&mut self.stored_roots, Vec::with_capacity(LEAVES_PER_BATCH));
        // The hashing thread paces the check: the walker hashes what it can.
        let leaf_hashes = crate::snapshot::load::hash_leaves_ahead(&entries);
        let batch = LeafBatch { entries, stored_roots, leaf_hashes, accounts: self.accounts };
        self.tx.send(batch).map_err(|_| crate::Error::Refused(HASHER_STOPPED.into()))
    }
}

impl crate::walk::StateVisitor for LeafBatcher {
    fn account(&mut self, hash: &B256, _: Option<&alloy_primitives::Address>, a: &StoredAccount) -> crate::Result<()> {
        self.accounts += 1;
        self.push(
            crate::snapshot::format::Entry::Account { hash: *hash, address: None, info: a.info },
            Some(a.storage_root),
        )
    }
    fn slot(&mut self, hash: &B256, _: Option<&U256>, value: &U256) -> crate::Result<()> {
        self.push(crate::snapshot::format::Entry::Slot { hash: *hash, slot: None, value: *value }, None)
    }
}

/// One pass over the leaves of `snap` through a [`RecordCheck`]: a thread
/// walks the tables (reads and decoding) and hashes the leaves each batch
/// settles, the calling thread runs the trie builders (keccak). Returns the check, the walk's totals and the root.
fn check_leaves<'a>(
    snap: &'a metisdb::Snapshot,
    locate: bool,
    tick: &mut dyn FnMut(u64),
) -> crate::Result<(RecordCheck<'a>, crate::walk::WalkTotals, B256)> {
    use crate::snapshot::format::Entry;
    use crate::walk::{walk_state, WalkOptions, WalkTotals};
    let (tx, rx) = std::sync::mpsc::sync_channel::<LeafBatch>(BATCHES_AHEAD);
    std::thread::scope(|s| {
        let walker = s.spawn(move || -> crate::Result<WalkTotals> {
            let mut b = LeafBatcher {
                tx,
                entries: Vec::with_capacity(LEAVES_PER_BATCH),
                stored_roots: Vec::with_capacity(LEAVES_PER_BATCH),
                accounts: 0,
            };
            let mut totals = WalkTotals::default();
            let mut t = |_: &WalkTotals| {};
            walk_state(snap, WalkOptions::all(false, &mut t), &mut totals, &mut b)?;
            b.send()?;
            Ok(totals)
        });
        let mut r = RecordCheck::new(snap, locate);
        let hashed = (|| -> crate::Result<B256> {
            for batch in &rx {
                for (n, (e, stored_root)) in batch.entries.iter().zip(batch.stored_roots).enumerate() {
                    let account = matches!(e, Entry::Account { .. });
                    if let (Entry::Account { hash, .. }, Some(root), false) = (e, stored_root, locate) {
                        r.stored_roots.push_back((*hash, root));
                    }
                    r.tries.apply(e, batch.leaf_hashes.get(n).copied().flatten(), &mut r.out)?;
                    if account || r.out.records.len() >= 4096 {
                        r.drain()?;
                    }
                }
                tick(batch.accounts);
            }
            let root = std::mem::take(&mut r.tries).finish(&mut r.out)?;
            r.drain()?;
            Ok(root)
        })();
        // Stops the walker if hashing failed.
        drop(rx);
        let walked = walker.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        match (walked, hashed) {
            (Ok(totals), Ok(root)) => Ok((r, totals, root)),
            (Err(crate::Error::Refused(m)), Err(e)) if m == HASHER_STOPPED => Err(e),
            // A walk that failed explains what the hashing saw after it.
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    })
}

/// Recomputes the state root of a snapshot's version from its leaves (one
/// pass in key order), checks every account's stored storage root against
/// its slots and every stored branch record against the leaves (see
/// `RecordCheck`). `tick` gets the accounts done. The walk reads the whole
/// file: callers run it under a [`crate::rss::Prefetch`].
pub fn check_state_root(snap: &metisdb::Snapshot, tick: &mut dyn FnMut(u64)) -> crate::Result<RootCheck> {
    let stored = B256::from(
        snap.state_root()
            .map_err(|e| crate::Error::Db { context: "read the state root".into(), source: Box::new(e) })?,
    );
    let (mut r, totals, computed) = check_leaves(snap, false, tick)?;
    let (mismatches, mismatch_count) = (std::mem::take(&mut r.mismatches), r.mismatch_count);
    let (stored_count, stored_digest) = stored_records(snap)?;
    if (stored_count, stored_digest) != (r.checked, r.digest) {
        // Something differs: walk again, looking every record up.
        r = check_leaves(snap, true, &mut |_| {})?.0;
        // Every stored record that has a branch behind it was found; the
        // others are stale.
        let found = r.checked - r.missing;
        if stored_count > found {
            r.problem(format!(
                "{} branch records are stored without a branch behind them ({stored_count} stored, {} recomputed \
                 from the leaves, {} of them missing)",
                stored_count - found,
                r.checked,
                r.missing
            ));
        }
        if r.problem_count == 0 {
            r.problem(format!(
                "the branch records differ from those of the leaves ({stored_count} stored, {} recomputed), \
                 though none was found missing, different or stale",
                r.checked
            ));
        }
    }
    Ok(RootCheck {
        version: snap.version(),
        stored,
        computed,
        mismatches,
        mismatch_count,
        accounts: totals.accounts,
        slots: totals.slots,
        records_checked: r.checked,
        record_problems: r.problems,
        record_problem_count: r.problem_count,
    })
}
