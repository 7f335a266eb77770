//! Writing state and computing the state root at commit.
//!
//! The writer records which leaves changed: accounts by keccak(address),
//! slots per account. At commit it first recomputes the storage root of
//! every account whose storage changed (accounts in parallel), stores the
//! new roots in the account records, then updates the account trie (its
//! top-level subtries in parallel). Both walks rehash only the changed
//! paths, reusing the stored branch records of untouched subtrees, and
//! write back just the records that changed. On more than one thread the
//! records of both tries are written while the account trie's walk goes on
//! (into edits apart from the transaction, merged at the end), not after it;
//! likewise a large batch of changes goes into the accounts and the storage
//! tables side by side ([`StateWriter::apply_batch`]).

use super::account::{AccountInfo, StoredAccount};
use super::read::{bad, StateRead};
use super::trie_io::{trie_key, AccountLeaves, StorageLeaves, TrieBranches};
use super::{hash_slot, keccak256, storage_key, stored_slot_value, Address, B256, U256};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::tables;
use crate::txn::{ApartEdits, CommitInfo, TableEdit, WriteTxn};
use alloy_primitives::map::HashMap;
use metis_trie::{
    combine_subtries, prefixes_at_depth, update_root, update_subtrie, BranchRecord, Nibbles, PrefixSet, RootUpdate,
    SubtrieUpdate, EMPTY_ROOT_HASH,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Below this many changed accounts the account trie is updated on one thread.
const PARALLEL_ACCOUNT_THRESHOLD: usize = 256;

/// What the last root computation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootStats {
    /// Storage tries recomputed.
    pub storage_tries: usize,
    /// Changed account leaves.
    pub accounts: usize,
    /// Branch records written.
    pub records_written: usize,
    /// Branch records deleted.
    pub records_removed: usize,
    /// Nanoseconds in storage tries.
    pub storage_ns: u64,
    /// Nanoseconds in the account trie.
    pub account_ns: u64,
    /// Of `storage_ns`: walking the storage tries (on the hashing threads).
    pub storage_walk_ns: u64,
    /// Of `account_ns`: walking the account trie (on the hashing threads;
    /// with more than one thread, including the record writes that overlap
    /// the walk).
    pub account_walk_ns: u64,
    /// Of both: writing the changed records and storage roots into the
    /// transaction, where it does not overlap a walk.
    pub write_ns: u64,
}

/// A write transaction that speaks Ethereum state and maintains the state root.
pub struct StateWriter<'db> {
    txn: WriteTxn<'db>,
    /// Changed account leaves, in the order of the changes, repeats and all
    /// ([`PrefixSet::from_keys`] sorts them once at the root; an ordered
    /// set here cost a tree insert per change, a tenth of applying it).
    accounts: Vec<B256>,
    /// Changed slots per account, likewise.
    storage: HashMap<B256, Vec<B256>>,
    threads: usize,
    preimages: bool,
    last: RootStats,
}

impl Db {
    /// Starts a state transaction for the next version.
    pub fn begin_state(&self) -> Result<StateWriter<'_>> {
        Ok(StateWriter {
            txn: self.begin_write()?,
            accounts: Vec::new(),
            storage: HashMap::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            preimages: true,
            last: RootStats::default(),
        })
    }
}

/// Runs `f` over `items` on up to `threads` threads; results in item order.
fn parallel_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { break };
        let r = f(item);
        out.lock().expect("result lock").push((i, r));
    };
    crate::pool::with_helpers(threads.min(items.len()) - 1, |_| work(), work);
    let mut out = out.into_inner().expect("result lock");
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// The account trie on `threads` threads (256 subtries taken in turn: fine
/// enough that the threads finish together), with the record writes off
/// the critical path: while the other threads hash, the calling thread
/// writes the storage tries' records (`storage_updates`, already walked)
/// into `storage_edit`, then hashes subtries itself and, between them,
/// writes the records of every finished subtrie into `account_edit`. The
/// edits are apart from `txn`, which the hashing threads keep reading.
/// Returns the root and the edits to merge.
fn overlapped_account_update(
    txn: &WriteTxn<'_>,
    mut account_edit: TableEdit<'_>,
    mut storage_edit: TableEdit<'_>,
    storage_updates: &[(B256, RootUpdate)],
    changed: &PrefixSet,
    threads: usize,
    stats: &mut RootStats,
) -> Result<(B256, ApartEdits, ApartEdits)> {
    let t0 = Instant::now();
    let prefixes = prefixes_at_depth(2);
    let next = AtomicUsize::new(0);
    let hash_next = || {
        let prefix = prefixes.get(next.fetch_add(1, Ordering::Relaxed))?;
        Some(update_subtrie(prefix, changed, &mut AccountLeaves::new(txn), &mut TrieBranches::accounts(txn)))
    };
    let mut parts: Vec<SubtrieUpdate> = Vec::with_capacity(prefixes.len());
    let mut write_part =
        |part: std::result::Result<SubtrieUpdate, metis_trie::TrieError>, stats: &mut RootStats| -> Result<()> {
            let mut part = part?;
            write_records(&mut account_edit, &[], &part.removals, &part.upserts, stats)?;
            part.removals.clear();
            part.upserts.clear();
            parts.push(part);
            Ok(())
        };
    let (sender, finished) = std::sync::mpsc::channel();
    // Taken by the calling thread once every subtrie is claimed, so that the
    // channel closes when the helpers that claimed some are done (or panicked).
    let sender = Mutex::new(Some(sender));
    let helpers = threads.min(prefixes.len()).saturating_sub(1);
    crate::pool::with_helpers(
        helpers,
        |_| {
            // A helper that starts after every subtrie was claimed has nothing to do.
            let Some(sender) = sender.lock().expect("sender lock").clone() else { return };
            while let Some(part) = hash_next() {
                if sender.send(part).is_err() {
                    break; // The writer failed and left.
                }
            }
        },
        || -> Result<()> {
            // `finished` moves in here: an early return drops it, which stops the helpers.
            let finished = finished;
            // The storage tries' records first: the helpers hash meanwhile.
            for (address_hash, u) in storage_updates {
                write_records(&mut storage_edit, address_hash.as_slice(), &u.removals, &u.upserts, stats)?;
            }
            while let Some(part) = hash_next() {
                write_part(part, stats)?;
                while let Ok(part) = finished.try_recv() {
                    write_part(part, stats)?;
                }
            }
            drop(sender.lock().expect("sender lock").take());
            // Ends when every helper has finished and dropped its sender.
            for part in finished {
                write_part(part, stats)?;
            }
            Ok(())
        },
    )?;
    stats.account_walk_ns = t0.elapsed().as_nanos() as u64;
    let tw = Instant::now();
    let top = combine_subtries(parts, &mut TrieBranches::accounts(txn))?;
    write_records(&mut account_edit, &[], &top.removals, &top.upserts, stats)?;
    stats.write_ns += tw.elapsed().as_nanos() as u64;
    Ok((top.root, account_edit.finish(), storage_edit.finish()))
}

/// Where the writes of one table go: the transaction's own table, or an
/// edit apart from the transaction.
trait TableWrites {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&mut self, key: &[u8]) -> Result<bool>;
    /// Puts `value` and returns the key's previous value, in one descent.
    fn replace(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>>;
}

impl TableWrites for TableEdit<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        TableEdit::put(self, key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        TableEdit::delete(self, key)
    }
    fn replace(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        TableEdit::replace(self, key, value)
    }
}

/// A record table of the transaction itself.
struct InTxn<'a, 'db>(&'a mut WriteTxn<'db>, tables::Table);

impl TableWrites for InTxn<'_, '_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(self.1, key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.0.delete(self.1, key)
    }
    fn replace(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.replace(self.1, key, value)
    }
}

/// Writes the record of an existing or new account into the accounts
/// table; the account keeps its storage root. One descent: the record goes
/// in with an empty storage root and the old one comes back; an account with
/// storage is written again (its leaf is a dirty page in the cache by then).
fn write_account(accounts: &mut impl TableWrites, address_hash: &B256, info: AccountInfo) -> Result<()> {
    let key = address_hash.as_slice();
    let fresh = StoredAccount { info, storage_root: EMPTY_ROOT_HASH };
    if let Some(old) = accounts.replace(key, &fresh.encode())? {
        let old = StoredAccount::decode(&old).map_err(|r| bad(tables::ACCOUNTS, key, r))?;
        if old.storage_root != EMPTY_ROOT_HASH {
            let storage_root = old.storage_root;
            accounts.put(key, &StoredAccount { info, storage_root }.encode())?;
        }
    }
    Ok(())
}

/// Writes a slot into the storage table (zero deletes it).
fn write_slot(storage: &mut impl TableWrites, address_hash: &B256, slot_hash: &B256, value: &U256) -> Result<()> {
    let k = storage_key(address_hash, slot_hash);
    if value.is_zero() {
        storage.delete(&k)?;
    } else {
        storage.put(&k, stored_slot_value(&value.to_be_bytes()))?;
    }
    Ok(())
}

/// Below this many account updates or slot writes (the fewer of the two), a
/// batch is applied on one thread.
const PARALLEL_APPLY_THRESHOLD: usize = 256;

/// Applies sorted account updates and slot writes on two threads, each
/// table into an edit apart from `txn`; `None` if `txn` already changed
/// either table. Returns the edits of the accounts and of the storage.
fn apply_apart(
    txn: &mut WriteTxn<'_>,
    accounts: &[AccountUpdate],
    slots: &[SlotWrite],
) -> Result<Option<(ApartEdits, ApartEdits)>> {
    if !(txn.is_untouched(tables::ACCOUNTS) && txn.is_untouched(tables::STORAGE)) {
        return Ok(None);
    }
    // A change dirties about one page (its leaf); a few more for branches.
    let account_pages = txn.lend_spare_pages(accounts.len() + 64);
    let storage_pages = txn.lend_spare_pages(slots.len() + 64);
    let txn = &*txn;
    let (Some(account_edit), Some(mut storage_edit)) =
        (txn.edit_apart_with(tables::ACCOUNTS, account_pages)?, txn.edit_apart_with(tables::STORAGE, storage_pages)?)
    else {
        return Ok(None);
    };
    let account_edit = Mutex::new(Some(account_edit));
    let accounts_done: Mutex<Option<Result<ApartEdits>>> = Mutex::new(None);
    let storage = crate::pool::with_helpers(
        1,
        |_| {
            let Some(mut edit) = account_edit.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
            let done = accounts.iter().try_for_each(|(ah, info)| write_account(&mut edit, ah, *info));
            *accounts_done.lock().unwrap_or_else(|e| e.into_inner()) = Some(done.map(|()| edit.finish()));
        },
        || -> Result<ApartEdits> {
            for (ah, sh, value) in slots {
                write_slot(&mut storage_edit, ah, sh, value)?;
            }
            Ok(storage_edit.finish())
        },
    );
    // Every helper call has returned (possibly run here, after the storage).
    let accounts = accounts_done.into_inner().unwrap_or_else(|e| e.into_inner()).expect("the accounts were applied");
    Ok(Some((accounts?, storage?)))
}

/// An account update of [`StateWriter::apply_batch`]: keccak(address) and
/// the account's new nonce, balance and code hash.
pub type AccountUpdate = (B256, AccountInfo);

/// A slot write of [`StateWriter::apply_batch`]: keccak(address),
/// keccak(slot) and the value (zero deletes the slot).
pub type SlotWrite = (B256, B256, U256);

/// Writes record changes of a trie (the account trie, or with `prefix` =
/// keccak(address) an account's storage trie) into `table`.
fn write_records(
    table: &mut impl TableWrites,
    prefix: &[u8],
    removals: &[Nibbles],
    upserts: &[(Nibbles, BranchRecord)],
    stats: &mut RootStats,
) -> Result<()> {
    for path in removals {
        table.delete(&trie_key(prefix, path))?;
    }
    for (path, rec) in upserts {
        table.put(&trie_key(prefix, path), &rec.encode())?;
    }
    stats.records_written += upserts.len();
    stats.records_removed += removals.len();
    Ok(())
}

impl<'db> StateWriter<'db> {
    /// The underlying transaction (reads see this writer's changes).
    pub fn txn(&self) -> &WriteTxn<'db> {
        &self.txn
    }

    /// Mutable access for non-state tables (blocks, receipts, metadata).
    pub fn txn_mut(&mut self) -> &mut WriteTxn<'db> {
        &mut self.txn
    }

    /// Threads used for hashing (default: available cores).
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    /// Whether to record keccak preimages of addresses and slots (default on).
    pub fn set_record_preimages(&mut self, on: bool) {
        self.preimages = on;
    }

    /// Figures of the last root computation.
    pub fn last_root_stats(&self) -> &RootStats {
        &self.last
    }

    fn preimage(&mut self, hash: &B256, preimage: &[u8]) -> Result<()> {
        if self.preimages && self.txn.get(tables::PREIMAGES, hash.as_slice())?.is_none() {
            self.txn.put(tables::PREIMAGES, hash.as_slice(), preimage)?;
        }
        Ok(())
    }

    /// keccak(address), its preimage stored (unless preimages are off).
    pub(crate) fn hash_address(&mut self, address: &Address) -> Result<B256> {
        let h = keccak256(address);
        self.preimage(&h, address.as_slice())?;
        Ok(h)
    }

    /// keccak(address) and keccak(slot), both preimages stored (unless
    /// preimages are off).
    pub(crate) fn hash_slot_key(&mut self, address: &Address, slot: &U256) -> Result<(B256, B256)> {
        let ah = self.hash_address(address)?;
        let sh = hash_slot(slot);
        self.preimage(&sh, &slot.to_be_bytes::<32>())?;
        Ok((ah, sh))
    }

    /// Sets (or, with `None`, deletes together with its storage) the account at `address`.
    pub fn set_account(&mut self, address: &Address, info: Option<AccountInfo>) -> Result<()> {
        let h = self.hash_address(address)?;
        self.set_account_by_hash(&h, info)
    }

    /// [`Self::set_account`] by keccak(address).
    pub fn set_account_by_hash(&mut self, address_hash: &B256, info: Option<AccountInfo>) -> Result<()> {
        self.accounts.push(*address_hash);
        match info {
            None => {
                self.wipe_storage_by_hash(address_hash)?;
                self.txn.delete(tables::ACCOUNTS, address_hash.as_slice())?;
            }
            Some(info) => write_account(&mut InTxn(&mut self.txn, tables::ACCOUNTS), address_hash, info)?,
        }
        Ok(())
    }

    /// Applies account updates (each account keeps its storage) and slot
    /// writes as [`Self::set_account_by_hash`] and
    /// [`Self::set_storage_by_hash`] would one by one in the given order (of
    /// a key given twice the later change wins), but in key order (sorting
    /// both slices): each put then descends next to the last one, through
    /// branch pages already in the cache. Account deletions and storage
    /// wipes are not taken here: a wipe must come before the slot writes
    /// that follow it ([`crate::pending::fold`]).
    pub fn apply_batch(&mut self, accounts: &mut [AccountUpdate], slots: &mut [SlotWrite]) -> Result<()> {
        // Stable sorts: a key given twice keeps its later change last.
        accounts.sort_by_key(|(address_hash, _)| *address_hash);
        slots.sort_by_key(|(address_hash, slot_hash, _)| (*address_hash, *slot_hash));
        // The two tables side by side when each has work for a thread.
        let apart = if self.threads > 1 && accounts.len().min(slots.len()) >= PARALLEL_APPLY_THRESHOLD {
            apply_apart(&mut self.txn, accounts, slots)?
        } else {
            None
        };
        let Some((account_edits, storage_edits)) = apart else {
            for (address_hash, info) in accounts.iter() {
                self.set_account_by_hash(address_hash, Some(*info))?;
            }
            for (address_hash, slot_hash, value) in slots.iter() {
                self.set_storage_by_hash(address_hash, slot_hash, value)?;
            }
            return Ok(());
        };
        self.txn.merge_apart(account_edits)?;
        self.txn.merge_apart(storage_edits)?;
        self.accounts.extend(accounts.iter().map(|(address_hash, _)| *address_hash));
        for (address_hash, slot_hash, _) in slots.iter() {
            self.storage.entry(*address_hash).or_default().push(*slot_hash);
        }
        Ok(())
    }

    /// Sets a storage slot (zero deletes it).
    pub fn set_storage(&mut self, address: &Address, slot: &U256, value: &U256) -> Result<()> {
        let (ah, sh) = self.hash_slot_key(address, slot)?;
        self.set_storage_by_hash(&ah, &sh, value)
    }

    /// [`Self::set_storage`] by hashed keys.
    pub fn set_storage_by_hash(&mut self, address_hash: &B256, slot_hash: &B256, value: &U256) -> Result<()> {
        write_slot(&mut InTxn(&mut self.txn, tables::STORAGE), address_hash, slot_hash, value)?;
        self.storage.entry(*address_hash).or_default().push(*slot_hash);
        Ok(())
    }

    /// Deletes every slot of an account (self-destruct, re-creation), in
    /// bounded batches: a large storage is never held in memory at once.
    pub fn wipe_storage(&mut self, address: &Address) -> Result<()> {
        self.wipe_storage_by_hash(&keccak256(address))
    }

    /// [`Self::wipe_storage`] by keccak(address).
    pub fn wipe_storage_by_hash(&mut self, address_hash: &B256) -> Result<()> {
        let (lo, hi) = prefix_range(address_hash.as_slice());
        let n = self.txn.delete_range(tables::STORAGE, &lo, &hi)?;
        self.txn.delete_range(tables::STORAGE_TRIE, &lo, &hi)?;
        // With every record gone the storage trie is rebuilt from the slots
        // written after the wipe; slots changed before it no longer matter.
        let set = self.storage.entry(*address_hash).or_default();
        set.clear();
        if n > 0 {
            self.accounts.push(*address_hash);
        }
        Ok(())
    }

    /// Stores bytecode under its hash (content-addressed: written once).
    pub fn set_code(&mut self, code_hash: &B256, code: &[u8]) -> Result<()> {
        if self.txn.get(tables::CODE, code_hash.as_slice())?.is_none() {
            self.txn.put(tables::CODE, code_hash.as_slice(), code)?;
        }
        Ok(())
    }

    /// Brings the trie tables in line with the changes so far and returns the state root.
    pub fn compute_root(&mut self) -> Result<B256> {
        let mut stats = RootStats::default();
        let t0 = Instant::now();
        // 1. Storage tries, each with its account read on the same thread.
        let storage = std::mem::take(&mut self.storage);
        let mut jobs: Vec<(B256, PrefixSet)> =
            storage.into_iter().map(|(ah, slots)| (ah, PrefixSet::from_keys(slots))).collect();
        // In key order: the records go into the storage trie table in order.
        jobs.sort_unstable_by_key(|(ah, _)| *ah);
        let txn = &self.txn;
        let results = parallel_map(&jobs, self.threads, |(ah, set)| -> Result<Option<(StoredAccount, RootUpdate)>> {
            let Some(acct) = txn.account_by_hash(ah)? else {
                // A deleted account: its storage must be gone too.
                let (lo, _) = prefix_range(ah.as_slice());
                let mut it = txn.range(tables::STORAGE, &lo)?;
                if it.next()?.is_some_and(|(k, _)| k.starts_with(ah.as_slice())) {
                    return Err(Error::InvalidState(format!(
                        "storage written for account 0x{ah:x}, which does not exist"
                    )));
                }
                return Ok(None);
            };
            let update = update_root(set, &mut StorageLeaves::new(txn, *ah), &mut TrieBranches::storage(txn, ah))?;
            Ok(Some((acct, update)))
        });
        stats.storage_walk_ns = t0.elapsed().as_nanos() as u64;
        let tw = Instant::now();
        // The new storage roots go into the account records now (the account
        // trie's walk reads them); the storage tries' records can wait.
        let mut storage_updates: Vec<(B256, RootUpdate)> = Vec::with_capacity(jobs.len());
        for ((ah, _), res) in jobs.iter().zip(results) {
            let Some((mut acct, u)) = res? else { continue };
            if acct.storage_root != u.root {
                acct.storage_root = u.root;
                self.txn.put(tables::ACCOUNTS, ah.as_slice(), &acct.encode())?;
            }
            self.accounts.push(*ah);
            storage_updates.push((*ah, u));
        }
        stats.storage_tries = storage_updates.len();
        // 2. The account trie.
        let changed = PrefixSet::from_keys(std::mem::take(&mut self.accounts));
        stats.accounts = changed.len();
        let parallel = changed.len() >= PARALLEL_ACCOUNT_THRESHOLD && self.threads > 1;
        // Both tries' records written while the account trie's walk goes on,
        // if this transaction has not written either record table yet.
        let overlap =
            parallel && self.txn.is_untouched(tables::ACCOUNT_TRIE) && self.txn.is_untouched(tables::STORAGE_TRIE);
        if !overlap {
            for (ah, u) in &storage_updates {
                self.apply(tables::STORAGE_TRIE, ah.as_slice(), u, &mut stats)?;
            }
        }
        stats.write_ns = tw.elapsed().as_nanos() as u64;
        stats.storage_ns = t0.elapsed().as_nanos() as u64;
        let t1 = Instant::now();
        let root = if overlap {
            let untouched = "checked above";
            let accounts = self.txn.edit_apart(tables::ACCOUNT_TRIE)?.expect(untouched);
            let storage = self.txn.edit_apart(tables::STORAGE_TRIE)?.expect(untouched);
            let (root, accounts, storage) = overlapped_account_update(
                &self.txn,
                accounts,
                storage,
                &storage_updates,
                &changed,
                self.threads,
                &mut stats,
            )?;
            let tw = Instant::now();
            self.txn.merge_apart(accounts)?;
            self.txn.merge_apart(storage)?;
            stats.write_ns += tw.elapsed().as_nanos() as u64;
            root
        } else {
            let txn = &self.txn;
            let update = if parallel {
                let prefixes = prefixes_at_depth(1);
                let parts = parallel_map(&prefixes, self.threads, |p| {
                    update_subtrie(p, &changed, &mut AccountLeaves::new(txn), &mut TrieBranches::accounts(txn))
                });
                let parts = parts.into_iter().collect::<Result<Vec<_>, _>>()?;
                combine_subtries(parts, &mut TrieBranches::accounts(txn))?
            } else {
                update_root(&changed, &mut AccountLeaves::new(txn), &mut TrieBranches::accounts(txn))?
            };
            stats.account_walk_ns = t1.elapsed().as_nanos() as u64;
            let tw = Instant::now();
            self.apply(tables::ACCOUNT_TRIE, &[], &update, &mut stats)?;
            stats.write_ns += tw.elapsed().as_nanos() as u64;
            update.root
        };
        stats.account_ns = t1.elapsed().as_nanos() as u64;
        self.last = stats;
        Ok(root)
    }

    fn apply(&mut self, table: tables::Table, prefix: &[u8], u: &RootUpdate, stats: &mut RootStats) -> Result<()> {
        write_records(&mut InTxn(&mut self.txn, table), prefix, &u.removals, &u.upserts, stats)
    }

    /// Computes the state root and commits the next version. Returns (version, root).
    pub fn commit(mut self, extra: Vec<u8>) -> Result<(u64, B256)> {
        let root = self.compute_root()?;
        let v = self.txn.commit(CommitInfo { state_root: root.0, extra })?;
        Ok((v, root))
    }
}

/// `[prefix, prefix + 1)` as table key bounds.
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let lo = prefix.to_vec();
    let mut hi = prefix.to_vec();
    while let Some(last) = hi.last_mut() {
        if *last == 0xff {
            hi.pop();
        } else {
            *last += 1;
            return (lo, hi);
        }
    }
    (lo, vec![0xff; 513])
}
