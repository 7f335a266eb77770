//! Bulk load of snapshot entries into an empty (staging) database.
//!
//! A snapshot holds the state in key order: codes by hash, then accounts by
//! keccak(address), each followed by its slots by keccak(slot). That order
//! is the order of the tables and of the tries, so the load writes the
//! leaves in one forward pass and computes the tries as it goes: one
//! streaming [`RootBuilder`] per trie prefix (see [`RecordTrie`]) produces
//! the state root and every stored branch record, exactly the records the
//! incremental [`metisdb::state::StateWriter`] keeps (so later commits of
//! the imported database update them incrementally). Nothing is read back
//! from the tables while loading and nothing is hashed twice. The stage that
//! reads the entries may hash the leaves whose place in the trie its batch
//! settles ([`hash_leaves_ahead`]), which the builders then take as they are.
//!
//! Batches are plain write transactions committed as the same version
//! label ([`metisdb::WriteTxn::rebase`]), bounded by bytes. An account
//! whose slots continue past a batch is stored with a provisional record
//! (its storage root unknown yet) that the next batch replaces; a resumed
//! import rebuilds the tries' state from the committed tables
//! ([`Tries::replay`]): the account trie from the stored accounts and the
//! storage trie of the last account from its stored slots.

use super::format::Entry;
use crate::error::{DbContext, Error, Result};
use alloy_primitives::map::B256Set;
use alloy_primitives::{B256, U256};
use metis_trie::{
    leaf_depth, leaf_node_into, storage_leaf_value, BranchRecord, BuildError, LeafHash, Nibbles, RootBuilder,
    SubtrieTop, UnhashedRoot,
};
use metisdb::state::{
    storage_key, stored_slot_value, trie_key, AccountInfo, StoredAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY,
};
use metisdb::tables::{Table, ACCOUNTS, ACCOUNT_TRIE, CODE, METADATA, PREIMAGES, STORAGE, STORAGE_TRIE};
use metisdb::{CommitInfo, Db, Durability, Options, WriteTxn};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};

/// Prefix depth (nibbles) at which the account trie is split: the records
/// of one of its 4096 parts are held until the part is complete.
pub const ACCOUNT_SPLIT: usize = 3;
/// Prefix depth at which storage tries are split.
pub const STORAGE_SPLIT: usize = 2;

/// A trie fed leaves in key order that hands out its branch records as
/// they complete, with memory bounded by one part of the trie: the key
/// space is split at a prefix depth; each part is built by its own
/// [`RootBuilder`], whose records are handed out when the part is
/// complete, and whose topmost node feeds a builder of the branches above
/// the parts (as `metis_trie::combine_subtries` does), whose few records
/// are handed out by [`RecordTrie::finish`].
pub struct RecordTrie {
    split: usize,
    /// The part being built: its key prefix of `split` nibbles, packed.
    part: Option<u64>,
    cur: RootBuilder,
    top: RootBuilder,
    leaves: u64,
}

impl RecordTrie {
    /// An empty trie split at `split` nibbles (1 to 16).
    pub fn new(split: usize) -> RecordTrie {
        assert!((1..=16).contains(&split), "parts are named by a prefix of 1 to 16 nibbles");
        RecordTrie {
            split,
            part: None,
            cur: RootBuilder::new().with_records(true),
            top: RootBuilder::new().with_records(true),
            leaves: 0,
        }
    }

    /// Leaves added.
    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// Adds the next leaf (keys strictly increasing), with its node's hash
    /// if computed ahead; `out` gets the records of completed parts.
    pub fn add_leaf(
        &mut self,
        key: &B256,
        value: &[u8],
        hashed: Option<LeafHash>,
        out: &mut dyn FnMut(Nibbles, BranchRecord) -> Result<()>,
    ) -> Result<()> {
        // The part's prefix read from the key's first 8 bytes (a Nibbles
        // prefix per leaf was 1.6% of the hashing thread).
        let first_word = u64::from_be_bytes(key.0[..8].try_into().expect("32-byte key"));
        let part = first_word >> (64 - 4 * self.split);
        if self.part != Some(part) {
            self.close_part(out)?;
            self.part = Some(part);
        }
        self.cur.add_leaf_hashed(Nibbles::unpack(key.as_slice()), value, hashed).map_err(trie_err)?;
        self.leaves += 1;
        Ok(())
    }

    fn close_part(&mut self, out: &mut dyn FnMut(Nibbles, BranchRecord) -> Result<()>) -> Result<()> {
        if self.part.take().is_none() {
            return Ok(());
        }
        let b = std::mem::replace(&mut self.cur, RootBuilder::new().with_records(true));
        let o = b.finish().map_err(trie_err)?;
        for (p, r) in o.records {
            out(p, r)?;
        }
        match o.top {
            SubtrieTop::Empty => {}
            SubtrieTop::Leaf { key, value } => self.top.add_leaf(key, &value).map_err(trie_err)?,
            SubtrieTop::Branch { path, node_ref, stored } => {
                self.top.add_branch(path, node_ref, stored).map_err(trie_err)?
            }
        }
        Ok(())
    }

    /// Completes the trie: hands out the remaining records and returns the root.
    pub fn finish(mut self, out: &mut dyn FnMut(Nibbles, BranchRecord) -> Result<()>) -> Result<B256> {
        if self.leaves == 0 {
            return Ok(EMPTY_ROOT_HASH);
        }
        self.close_part(out)?;
        let o = self.top.finish().map_err(trie_err)?;
        let root = o.root();
        for (p, r) in o.records {
            out(p, r)?;
        }
        Ok(root)
    }
}

/// Storage tries of up to this many slots are built by one builder when
/// their account closes, from leaves held until then; larger ones go
/// through a [`RecordTrie`] split at [`STORAGE_SPLIT`], whose memory stays
/// bounded whatever their size. (Most contracts hold a handful of slots,
/// and a split trie pays a builder per slot then: every slot of a small
/// trie is a part of its own.)
pub const SMALL_STORAGE_LEAVES: usize = 256;

/// The storage trie of the account being loaded.
enum StorageTrie {
    Small(Vec<(B256, Vec<u8>, Option<LeafHash>)>),
    Split(Box<RecordTrie>),
}

impl StorageTrie {
    fn new() -> StorageTrie {
        StorageTrie::Small(Vec::new())
    }

    /// Adds the next leaf (keys strictly increasing); `out` gets the records of completed parts.
    fn add_leaf(
        &mut self,
        key: &B256,
        value: &[u8],
        hashed: Option<LeafHash>,
        out: &mut dyn FnMut(Nibbles, BranchRecord) -> Result<()>,
    ) -> Result<()> {
        match self {
            StorageTrie::Small(leaves) if leaves.len() < SMALL_STORAGE_LEAVES => {
                leaves.push((*key, value.to_vec(), hashed));
                Ok(())
            }
            StorageTrie::Small(leaves) => {
                let mut split = RecordTrie::new(STORAGE_SPLIT);
                for (k, v, h) in leaves.drain(..) {
                    split.add_leaf(&k, &v, h, out)?;
                }
                split.add_leaf(key, value, hashed, out)?;
                *self = StorageTrie::Split(Box::new(split));
                Ok(())
            }
            StorageTrie::Split(split) => split.add_leaf(key, value, hashed, out),
        }
    }

    /// Completes the trie: hands out the remaining records and returns the
    /// root, unhashed when the trie is small (see [`Tries::close_account`]).
    fn finish(self, out: &mut dyn FnMut(Nibbles, BranchRecord) -> Result<()>) -> Result<UnhashedRoot> {
        match self {
            StorageTrie::Small(leaves) if leaves.is_empty() => Ok(UnhashedRoot::Empty),
            StorageTrie::Small(leaves) => {
                let mut b = RootBuilder::new().with_records(true);
                for (k, v, h) in &leaves {
                    b.add_leaf_hashed(Nibbles::unpack(k.as_slice()), v, *h).map_err(trie_err)?;
                }
                let (root, records) = b.finish_unhashed().map_err(trie_err)?;
                for (p, r) in records {
                    out(p, r)?;
                }
                Ok(root)
            }
            StorageTrie::Split(split) => split.finish(out).map(UnhashedRoot::Hash),
        }
    }
}

fn trie_err(e: BuildError) -> Error {
    Error::Refused(format!("the entries cannot form a trie: {e}"))
}

struct Open {
    hash: B256,
    info: AccountInfo,
    storage: StorageTrie,
    /// Its leaf's node hash if computed ahead (for an empty storage trie).
    hashed: Option<LeafHash>,
}

/// Table writes in the order they are made, in one buffer.
#[derive(Default)]
pub struct Ops {
    buf: Vec<u8>,
    list: Vec<(u8, u32, u16, u32)>,
}

impl Ops {
    /// No writes.
    pub fn new() -> Ops {
        Ops::default()
    }

    /// Writes `key` = `value` into `table`.
    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.list.push((table.0, self.buf.len() as u32, key.len() as u16, value.len() as u32));
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
    }

    /// Forgets the writes, keeping the buffers.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.list.clear();
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are no writes.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The writes in order: (table id, key, value).
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8], &[u8])> + '_ {
        self.list.iter().map(|&(t, at, kl, vl)| {
            let (at, kl, vl) = (at as usize, kl as usize, vl as usize);
            (t, &self.buf[at..at + kl], &self.buf[at + kl..at + kl + vl])
        })
    }
}

/// What the tries make of entries: the branch records, and the accounts
/// closed (their slots all seen) with their storage roots, in order.
#[derive(Default)]
pub struct TrieOut {
    /// Writes of branch records (tables `account_trie` and `storage_trie`).
    pub records: Ops,
    /// Closed accounts and their records.
    pub accounts: Vec<(B256, StoredAccount)>,
}

/// The trie side of a load: follows entries (in snapshot order, checked by
/// the caller), computing storage roots, branch records and the state root
/// as it goes. Runs apart from the table writes (its own thread), so
/// hashing and tree inserts proceed in parallel; it makes only what needs
/// the tries, and the writing side writes the entries themselves (see
/// [`load_staged`]): the hashing paces a load.
pub struct Tries {
    accounts: RecordTrie,
    open: Option<Open>,
    /// Closed accounts whose leaves wait for storage roots to be hashed:
    /// at most [`ROOTS_PER_HASH`] roots to hash, [`MAX_CLOSING`] accounts.
    closing: Vec<(B256, AccountInfo, UnhashedRoot, Option<LeafHash>)>,
    /// Of `closing`, the roots to hash.
    unhashed: usize,
    /// Scratch: the hashes of the root nodes in `closing`.
    root_hashes: Vec<B256>,
    /// Scratch: an account leaf's value (one buffer instead of a vector per account).
    leaf: Vec<u8>,
}

/// Storage roots hashed together (two groups of the eight that
/// `metis_keccak` hashes at once): hashed one by one, the last keccak of
/// each storage trie was a tenth of the hashing thread's time, which paces
/// a load.
const ROOTS_PER_HASH: usize = 16;
/// Closed accounts held for [`ROOTS_PER_HASH`]: most accounts have no
/// storage, and their leaves wait with the others to stay in order.
const MAX_CLOSING: usize = 1024;

impl Default for Tries {
    fn default() -> Self {
        Tries::new()
    }
}

impl Tries {
    /// Nothing loaded yet.
    pub fn new() -> Tries {
        Tries {
            accounts: RecordTrie::new(ACCOUNT_SPLIT),
            open: None,
            closing: Vec::new(),
            unhashed: 0,
            root_hashes: Vec::with_capacity(ROOTS_PER_HASH),
            leaf: Vec::new(),
        }
    }

    /// Rebuilds the state after a resumed import from what the database
    /// holds: every stored account is a leaf of the account trie (its
    /// stored storage root is final), except the last one, `last_account`,
    /// whose storage may continue: its stored slots are fed to a new
    /// storage trie. Records are not written again (they were committed).
    pub fn replay(&mut self, db: &Db, last_account: Option<B256>) -> Result<()> {
        let Some(last) = last_account else { return Ok(()) };
        let snap = db.snapshot(None).ctx(|| "read the staging database".into())?;
        let mut drop_records = |_: Nibbles, _: BranchRecord| Ok(());
        let mut it = snap.range(ACCOUNTS, &[]).ctx(|| "read the staged accounts".into())?;
        let mut found = false;
        while let Some((k, v)) = it.next().ctx(|| "read the staged accounts".into())? {
            let hash = B256::try_from(k).map_err(|_| Error::Refused("a staged account key is not 32 bytes".into()))?;
            let a = StoredAccount::decode(v).map_err(|r| Error::Refused(format!("staged account {hash:#x}: {r}")))?;
            if hash == last {
                self.open = Some(Open { hash, info: a.info, storage: StorageTrie::new(), hashed: None });
                found = true;
                break;
            }
            self.accounts.add_leaf(&hash, &a.trie_account().encode_to_vec(), None, &mut drop_records)?;
        }
        if !found {
            return Err(Error::Refused(format!("the staged import lacks its last account {last:#x}")));
        }
        let o = self.open.as_mut().expect("set above");
        let mut it = snap.range(STORAGE, last.as_slice()).ctx(|| "read the staged storage".into())?;
        while let Some((k, v)) = it.next().ctx(|| "read the staged storage".into())? {
            if k.len() != 64 || k[..32] != last[..] {
                break;
            }
            let leaf = storage_leaf_value(&U256::from_be_slice(v))
                .ok_or_else(|| Error::Refused("a staged slot holds zero".into()))?;
            o.storage.add_leaf(&B256::from_slice(&k[32..]), &leaf, None, &mut drop_records)?;
        }
        Ok(())
    }

    /// The account whose slots may continue: its hash and fields.
    pub fn open_account(&self) -> Option<(B256, AccountInfo)> {
        self.open.as_ref().map(|o| (o.hash, o.info))
    }

    /// Follows one entry, with its leaf's node hash if computed ahead
    /// ([`hash_leaves_ahead`]).
    pub fn apply(&mut self, e: &Entry, hashed: Option<LeafHash>, out: &mut TrieOut) -> Result<()> {
        match e {
            Entry::Code { .. } => {}
            Entry::Account { hash, info, .. } => {
                self.close_account(out)?;
                self.open = Some(Open { hash: *hash, info: *info, storage: StorageTrie::new(), hashed });
            }
            Entry::Slot { hash, value, .. } => {
                let Some(leaf) = storage_leaf_value(value) else { return Ok(()) };
                let o = self.open.as_mut().ok_or_else(slot_without_account)?;
                let mut sink = record_sink(&mut out.records, STORAGE_TRIE, o.hash.as_slice());
                o.storage.add_leaf(hash, &leaf, hashed, &mut sink)?;
            }
        }
        Ok(())
    }

    /// Completes the open account's storage trie; the account's leaf and
    /// record follow when its root is hashed ([`Tries::flush`]).
    fn close_account(&mut self, out: &mut TrieOut) -> Result<()> {
        let Some(o) = self.open.take() else { return Ok(()) };
        let root = o.storage.finish(&mut record_sink(&mut out.records, STORAGE_TRIE, o.hash.as_slice()))?;
        self.unhashed += usize::from(matches!(root, UnhashedRoot::Node(_)));
        self.closing.push((o.hash, o.info, root, o.hashed));
        if self.unhashed == ROOTS_PER_HASH || self.closing.len() == MAX_CLOSING {
            self.flush(out)?;
        }
        Ok(())
    }

    /// Hashes the storage roots of the closed accounts together, then adds
    /// their leaves to the account trie and their records to `out`, in order.
    fn flush(&mut self, out: &mut TrieOut) -> Result<()> {
        let nodes: Vec<&[u8]> = self
            .closing
            .iter()
            .filter_map(|(_, _, root, _)| match root {
                UnhashedRoot::Node(rlp) => Some(rlp.as_slice()),
                _ => None,
            })
            .collect();
        metis_keccak::keccak256_each(&nodes, &mut self.root_hashes);
        self.unhashed = 0;
        let mut hashes = self.root_hashes.iter();
        for (hash, info, root, hashed) in self.closing.drain(..) {
            let storage_root = match root {
                UnhashedRoot::Node(_) => *hashes.next().expect("one hash per node"),
                other => other.hash(),
            };
            let hashed = account_hash_for(hashed, storage_root);
            let stored = StoredAccount { info, storage_root };
            self.leaf.clear();
            stored.trie_account().encode_into(&mut self.leaf);
            let mut sink = record_sink(&mut out.records, ACCOUNT_TRIE, &[]);
            self.accounts.add_leaf(&hash, &self.leaf, hashed, &mut sink)?;
            out.accounts.push((hash, stored));
        }
        Ok(())
    }

    /// Completes every trie; returns the state root.
    pub fn finish(mut self, out: &mut TrieOut) -> Result<B256> {
        self.close_account(out)?;
        self.flush(out)?;
        self.accounts.finish(&mut record_sink(&mut out.records, ACCOUNT_TRIE, &[]))
    }
}

/// An account leaf's hash from [`hash_leaves_ahead`], which computes them
/// with the empty storage root: kept only if the account's storage root,
/// computed from its slots, is that.
pub(crate) fn account_hash_for(hashed: Option<LeafHash>, storage_root: B256) -> Option<LeafHash> {
    hashed.filter(|_| storage_root == EMPTY_ROOT_HASH)
}

/// The node hashes of the leaves of `entries` (a chunk, in snapshot order)
/// whose depth and value the chunk alone settles, one per entry (`None`
/// for the others), so that the reading thread hashes them instead of the
/// tries thread, which paces a load (the trie builder takes a hash for the
/// depth it was computed for and hashes anything else itself). A leaf's
/// depth needs both its neighbours in its trie, so the first and last
/// leaves of each run of the chunk are left out unless the run visibly
/// starts or ends there (slots right after their account, or followed by
/// the next account); an account's value needs its storage root, so only
/// accounts followed by another account (no slots) are hashed, with the
/// empty root.
pub fn hash_leaves_ahead(entries: &[Entry]) -> Vec<Option<LeafHash>> {
    // The nodes to hash, end to end, and per node (entry index, depth, end in `nodes`).
    // Room for a typical node per entry (an account leaf node is about 110
    // bytes): growing the buffer by reallocation was a sixth of the copies
    // of the reading thread.
    let mut nodes: Vec<u8> = Vec::with_capacity(entries.len() * 112);
    let mut owners: Vec<(usize, usize, usize)> = Vec::with_capacity(entries.len());
    let mut node = Vec::new();
    let mut push = |at: usize, key: &B256, depth: Option<usize>, value: &[u8]| {
        if let Some(d) = depth.filter(|&d| leaf_node_into(&mut node, key, d, value)) {
            nodes.extend_from_slice(&node);
            owners.push((at, d, nodes.len()));
        }
    };
    // Accounts of the chunk: (entry index, key, fields when it has no slots).
    let mut accounts: Vec<(usize, B256, Option<AccountInfo>)> = Vec::with_capacity(entries.len());
    let mut run: Vec<(usize, B256, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        match &entries[i] {
            Entry::Account { hash, info, .. } => {
                let no_slots = matches!(entries.get(i + 1), Some(Entry::Account { .. }));
                accounts.push((i, *hash, no_slots.then_some(*info)));
                i += 1;
            }
            Entry::Slot { .. } => {
                // One account's slots (as far as this chunk holds them).
                let starts = i > 0 && matches!(entries[i - 1], Entry::Account { .. });
                run.clear();
                while let Some(Entry::Slot { hash, value, .. }) = entries.get(i) {
                    if let Some(leaf) = storage_leaf_value(value) {
                        run.push((i, *hash, leaf));
                    }
                    i += 1;
                }
                let ends = matches!(entries.get(i), Some(Entry::Account { .. }));
                for n in 0..run.len() {
                    let prev = if n > 0 { Some(&run[n - 1].1) } else { None };
                    let next = run.get(n + 1).map(|r| &r.1);
                    if (prev.is_none() && !starts) || (next.is_none() && !ends) {
                        continue;
                    }
                    let (at, key, value) = &run[n];
                    push(*at, key, leaf_depth(prev, key, next), value);
                }
            }
            Entry::Code { .. } => i += 1,
        }
    }
    // The chunk's first and last accounts have a neighbour outside it.
    let mut value = Vec::new();
    for n in 1..accounts.len().saturating_sub(1) {
        if let (at, key, Some(info)) = &accounts[n] {
            value.clear();
            StoredAccount { info: *info, storage_root: EMPTY_ROOT_HASH }.trie_account().encode_into(&mut value);
            push(*at, key, leaf_depth(Some(&accounts[n - 1].1), key, Some(&accounts[n + 1].1)), &value);
        }
    }
    let mut start = 0;
    let inputs: Vec<&[u8]> = owners
        .iter()
        .map(|&(_, _, end)| {
            let input = &nodes[start..end];
            start = end;
            input
        })
        .collect();
    let hashes = metis_keccak::keccak256_all(&inputs);
    let mut out = vec![None; entries.len()];
    for (&(at, depth, _), hash) in owners.iter().zip(hashes) {
        out[at] = Some(LeafHash { depth, hash });
    }
    out
}

fn slot_without_account() -> Error {
    Error::Refused("a slot precedes every account".into())
}

/// Entries in import order (codes, then each account followed by its
/// slots) with what the caller tracks beside them; `last` ends the load.
pub struct EntryBatch<M> {
    /// The entries.
    pub entries: Vec<Entry>,
    /// Per entry, its leaf's node hash if computed ahead
    /// ([`hash_leaves_ahead`]); may be empty (none computed).
    pub leaf_hashes: Vec<Option<LeafHash>>,
    /// The caller's own (a position in the input, totals).
    pub meta: M,
    /// No entries follow.
    pub last: bool,
}

/// An [`EntryBatch`] with what the tries made of it, the account whose
/// slots may continue, and after the last batch the state root.
struct HashedBatch<M> {
    /// The entries.
    pub entries: Vec<Entry>,
    /// Records and closed accounts.
    pub out: TrieOut,
    /// The account whose slots may continue in the next batch.
    pub open: Option<(B256, AccountInfo)>,
    /// The batch's `meta`.
    pub meta: M,
    /// The state root, after the last batch.
    pub root: Option<B256>,
}

/// The hashing stage of a load (its own thread): follows batches with
/// `tries`, in order, until the last batch, an error, or the writer
/// hanging up.
fn hash_batches<M>(
    mut tries: Tries,
    rx: std::sync::mpsc::Receiver<Result<EntryBatch<M>>>,
    tx: std::sync::mpsc::SyncSender<Result<HashedBatch<M>>>,
) {
    // Batches are alike: each starts with room for as many accounts as the
    // last one had (growing the vector was 2% of this thread).
    let mut accounts_per_batch = 0;
    for msg in rx {
        let res = msg.and_then(|b| {
            let mut out = TrieOut { records: Ops::new(), accounts: Vec::with_capacity(accounts_per_batch) };
            for (n, e) in b.entries.iter().enumerate() {
                tries.apply(e, b.leaf_hashes.get(n).copied().flatten(), &mut out)?;
            }
            // The batch's closed accounts are written with it.
            tries.flush(&mut out)?;
            let root = if b.last { Some(std::mem::take(&mut tries).finish(&mut out)?) } else { None };
            accounts_per_batch = out.accounts.len();
            Ok(HashedBatch { entries: b.entries, out, open: tries.open_account(), meta: b.meta, root })
        });
        let stop = !matches!(res, Ok(HashedBatch { root: None, .. }));
        if tx.send(res).is_err() || stop {
            return;
        }
    }
}

/// Writes the branch records a [`RecordTrie`] hands out into `table`, under `prefix`.
fn record_sink<'a>(
    ops: &'a mut Ops,
    table: Table,
    prefix: &'a [u8],
) -> impl FnMut(Nibbles, BranchRecord) -> Result<()> + 'a {
    move |path, record| {
        ops.put(table, &trie_key(prefix, &path), &record.encode());
        Ok(())
    }
}

/// At most this many code hashes are kept by [`KnownCodes`]: a set of 2^20
/// buckets (35 MiB) holds them.
const MAX_KNOWN_CODES: usize = 900_000;

/// The hashes of the codes a load wrote, while that is every code in the
/// database: then whether an account's code exists is a lookup in a hash
/// set instead of in the code table. Lookups in the table land on random
/// pages of the staging file, each a page fault, and were two fifths of
/// the writing thread's time at 10M accounts; a binary search in a sorted
/// list of the hashes still took a tenth of it (a cache miss a step). The
/// set is given up (and lookups go to the table) past [`MAX_KNOWN_CODES`],
/// or when the database held codes before the load (a resumed import).
struct KnownCodes {
    hashes: B256Set,
    complete: bool,
}

impl KnownCodes {
    fn new(db_has_codes: bool) -> KnownCodes {
        KnownCodes { hashes: B256Set::default(), complete: !db_has_codes }
    }

    fn wrote(&mut self, hash: &B256) {
        if !self.complete {
            return;
        }
        if self.hashes.len() == MAX_KNOWN_CODES {
            return self.give_up();
        }
        self.hashes.insert(*hash);
    }

    fn give_up(&mut self) {
        self.complete = false;
        self.hashes = B256Set::default();
    }

    /// `Some(exists)` when the set answers, `None` when the table must.
    fn exists(&self, hash: &B256) -> Option<bool> {
        self.complete.then(|| self.hashes.contains(hash))
    }
}

/// The write side of a load: applies [`Ops`] to write transactions
/// committed as batches of one version label.
struct BatchWriter<'db> {
    db: &'db Db,
    version: u64,
    txn: Option<WriteTxn<'db>>,
    codes: KnownCodes,
    /// The account the next slots belong to (the last account entry).
    slot_owner: Option<B256>,
    /// Slot hashes whose preimage was written lately: most contracts use
    /// the same low slot numbers, written once instead of once each.
    slot_preimages: B256Set,
    /// Bytes applied in the open batch.
    pub pending: u64,
    /// Batches committed.
    pub batches: u64,
}

impl<'db> BatchWriter<'db> {
    /// Batches of `version` into `db`, whose slots continue those of
    /// `slot_owner` (a resumed load's open account).
    pub fn new(db: &'db Db, version: u64, slot_owner: Option<B256>) -> Result<BatchWriter<'db>> {
        let read = || "read the staging database".to_string();
        let snap = db.snapshot(None).ctx(read)?;
        let has_codes = snap.range(CODE, &[]).ctx(read)?.next().ctx(read)?.is_some();
        Ok(BatchWriter {
            db,
            version,
            txn: None,
            codes: KnownCodes::new(has_codes),
            slot_owner,
            slot_preimages: B256Set::default(),
            pending: 0,
            batches: 0,
        })
    }

    fn txn(&mut self) -> Result<&mut WriteTxn<'db>> {
        if self.txn.is_none() {
            let mut t = self.db.begin_write().ctx(|| "begin a staging batch".into())?;
            // No history inside the staging database: every batch replaces the version.
            t.rebase(self.version);
            self.txn = Some(t);
        }
        Ok(self.txn.as_mut().expect("set above"))
    }

    /// Writes entries and what the tries made of them into the open batch:
    /// codes, address and slot preimages and slots from the entries (after
    /// checking that every account's code exists), then the closed
    /// accounts' records and the branch records.
    pub fn apply(&mut self, entries: &[Entry], out: &TrieOut) -> Result<()> {
        self.txn()?;
        let BatchWriter { txn, codes, slot_owner, slot_preimages, .. } = self;
        let txn = txn.as_mut().expect("opened above");
        let put = |txn: &mut WriteTxn<'_>, table: Table, k: &[u8], v: &[u8]| -> Result<u64> {
            txn.put(table, k, v).ctx(|| "write an imported entry".into())?;
            // Key, value and 16 bytes of bookkeeping: what `batch_bytes` bounds.
            Ok((k.len() + v.len() + 16) as u64)
        };
        let mut bytes = 0;
        // Accounts' code references, checked after the batch's codes are
        // written, all in one loop: the lookups are cache misses, and
        // between tree inserts they do not overlap.
        let mut code_refs: Vec<(&B256, &B256)> = Vec::new();
        for e in entries {
            match e {
                Entry::Code { hash, code } => {
                    codes.wrote(hash);
                    bytes += put(txn, CODE, hash.as_slice(), code)?;
                }
                Entry::Account { hash, address, info } => {
                    if info.code_hash != KECCAK_EMPTY {
                        code_refs.push((hash, &info.code_hash));
                    }
                    if let Some(a) = address {
                        bytes += put(txn, PREIMAGES, hash.as_slice(), a.as_slice())?;
                    }
                    *slot_owner = Some(*hash);
                }
                Entry::Slot { hash, slot, value } => {
                    if value.is_zero() {
                        continue;
                    }
                    let owner = slot_owner.as_ref().ok_or_else(slot_without_account)?;
                    bytes += put(txn, STORAGE, &storage_key(owner, hash), stored_slot_value(&value.to_be_bytes()))?;
                    if let Some(s) = slot {
                        if slot_preimages.len() > 1 << 16 {
                            slot_preimages.clear();
                        }
                        if slot_preimages.insert(*hash) {
                            bytes += put(txn, PREIMAGES, hash.as_slice(), &s.to_be_bytes::<32>())?;
                        }
                    }
                }
            }
        }
        for (account, code) in code_refs {
            let exists = match codes.exists(code) {
                Some(known) => known,
                None => txn.get(CODE, code.as_slice()).ctx(|| "read code".into())?.is_some(),
            };
            if !exists {
                return Err(Error::Refused(format!(
                    "account {account:#x} has code {code:#x}, which the input does not hold"
                )));
            }
        }
        for (hash, stored) in &out.accounts {
            bytes += put(txn, ACCOUNTS, hash.as_slice(), &stored.encode())?;
        }
        for (t, k, v) in out.records.iter() {
            bytes += put(txn, Table(t), k, v)?;
        }
        self.pending += bytes;
        Ok(())
    }

    /// Commits the open batch with `meta` entries in the metadata table,
    /// `open` (the account whose storage may continue) with a provisional
    /// record, and `root` as the version's state root.
    pub fn commit(&mut self, meta: &[(&[u8], Vec<u8>)], open: Option<(B256, AccountInfo)>, root: B256) -> Result<()> {
        let txn = self.txn()?;
        for (k, v) in meta {
            txn.put(METADATA, k, v).ctx(|| "write import metadata".into())?;
        }
        if let Some((hash, info)) = open {
            // A resumed import reads the account from it (see `Tries::replay`).
            let rec = StoredAccount { info, storage_root: EMPTY_ROOT_HASH }.encode();
            txn.put(ACCOUNTS, hash.as_slice(), &rec).ctx(|| "write an imported entry".into())?;
        }
        let txn = self.txn.take().expect("opened above");
        txn.commit(CommitInfo { state_root: root.0, extra: Vec::new() })
            .ctx(|| format!("commit import batch {}", self.batches + 1))?;
        self.batches += 1;
        self.pending = 0;
        Ok(())
    }

    /// Drops the open batch.
    pub fn abandon(&mut self) {
        self.txn = None;
    }
}

/// Opens (creating) the staging database of a load. Nothing reads it until
/// the load ends, so a batch's commit does not wait for the disk: commits
/// are durable at flush points (every [`Options::flush_interval`] and at
/// the end of [`load_staged`]). A resumable load's position is recorded in
/// the same commit as its batch, so after a crash it resumes from the last
/// durable batch. Pages are written around the page cache
/// ([`Options::direct_writes`]): the load hardly reads them back, and the
/// kernel's copy of every page into the cache was a tenth of its CPU.
pub fn open_staging(dir: &Path, opts: &Options) -> Result<Db> {
    Db::open(dir, Options { create: true, durability: Durability::Async, direct_writes: true, ..opts.clone() })
        .ctx(|| format!("open the staging database {}", dir.display()))
}

/// What a [`load_staged`] caller does at batch boundaries.
pub trait LoadHooks<M> {
    /// A batch of entries was applied (not committed yet): progress.
    fn applied(&mut self, meta: &M);
    /// Metadata records to commit with the batch that ends at `meta`
    /// (`last`: the batch that completes the state); none by default.
    fn records(&self, _meta: &M, _last: bool) -> Vec<(&'static [u8], Vec<u8>)> {
        Vec::new()
    }
    /// An intermediate batch was committed; an error stops the load.
    fn committed(&mut self, _meta: &M, _batches: u64) -> Result<()> {
        Ok(())
    }
}

/// How a [`load_staged`] ended.
pub struct Loaded<M> {
    /// The last batch's `meta`.
    pub meta: M,
    /// Batches committed.
    pub batches: u64,
}

/// Loads entries into the staging database `db` as `version`, on three
/// threads a few batches apart: `produce` reads, decodes and checks
/// entries and sends them in order; the second (`hash_batches`) computes
/// storage roots, branch records and the root; the calling thread writes
/// the entries with the roots and records, and commits whenever
/// `batch_bytes` are pending. The
/// root computed with the last batch must equal `expected` (stated in
/// `what`), or nothing of that batch is committed. On success every batch
/// is durable.
pub fn load_staged<M: Send>(
    db: &Db,
    version: u64,
    tries: Tries,
    batch_bytes: u64,
    (expected, what): (B256, &str),
    produce: impl FnOnce(SyncSender<Result<EntryBatch<M>>>) + Send,
    hooks: &mut dyn LoadHooks<M>,
) -> Result<Loaded<M>> {
    // Copy-on-write reads (and the code lookups of a resumed import) touch
    // pages all over the staging file; keep them out of the resident set.
    let _trim = crate::rss::RssTrim::start(db.path(), crate::rss::FILE_RSS_LIMIT_KIB);
    let mut sink = BatchWriter::new(db, version, tries.open_account().map(|(hash, _)| hash))?;
    let (tx, rx) = sync_channel::<Result<EntryBatch<M>>>(8);
    let (htx, hrx) = sync_channel::<Result<HashedBatch<M>>>(16);
    let meta = std::thread::scope(|s| -> Result<M> {
        s.spawn(move || produce(tx));
        s.spawn(move || hash_batches(tries, rx, htx));
        // `hrx` moves in here: an early return drops it, which stops the other stages.
        for msg in hrx {
            let h = msg?;
            sink.apply(&h.entries, &h.out)?;
            hooks.applied(&h.meta);
            if let Some(computed) = h.root {
                if computed != expected {
                    sink.abandon();
                    return Err(Error::RootMismatch { what: what.to_string(), expected, computed });
                }
                let records = hooks.records(&h.meta, true);
                sink.commit(&records, None, computed)?;
                return Ok(h.meta);
            }
            if sink.pending >= batch_bytes {
                let records = hooks.records(&h.meta, false);
                sink.commit(&records, h.open, B256::ZERO)?;
                hooks.committed(&h.meta, sink.batches)?;
            }
        }
        // The stages end with an error or with the last batch.
        Err(Error::Refused("the reading stage of the load stopped".into()))
    })?;
    db.flush().ctx(|| "make the loaded state durable".into())?;
    Ok(Loaded { meta, batches: sink.batches })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_hash(b: u8) -> B256 {
        B256::repeat_byte(b)
    }

    /// Applies code writes (`codes`), then asks for the codes of accounts
    /// (`required`); the error of the first missing one, if any.
    fn write_then_require(db: &Db, codes: &[u8], required: &[u8]) -> Result<()> {
        let mut entries: Vec<Entry> =
            codes.iter().map(|&c| Entry::Code { hash: code_hash(c), code: vec![0x60, c] }).collect();
        for (i, &c) in required.iter().enumerate() {
            let info = AccountInfo { code_hash: code_hash(c), ..AccountInfo::default() };
            entries.push(Entry::Account { hash: B256::with_last_byte(i as u8), address: None, info });
        }
        let mut w = BatchWriter::new(db, 1, None)?;
        w.apply(&entries, &TrieOut::default())?;
        w.commit(&[], None, B256::ZERO)
    }

    /// Accounts in key order, each followed by its slots in key order: one
    /// in four with storage (up to six slots, a zero value among them now
    /// and then), one in five sharing all but its last byte with the
    /// account before it (leaves deep enough to be inlined).
    fn sample_entries(seed: u64, accounts: u64) -> Vec<Entry> {
        let h =
            |parts: &[u64]| alloy_primitives::keccak256(parts.iter().flat_map(|p| p.to_be_bytes()).collect::<Vec<_>>());
        let mut keys: Vec<B256> = (0..accounts).map(|i| h(&[seed, i])).collect();
        for i in (1..keys.len()).step_by(5) {
            let mut k = keys[i - 1];
            k.0[31] ^= 0x5a;
            keys[i] = k;
        }
        keys.sort();
        keys.dedup();
        let mut entries = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let info = AccountInfo { nonce: i as u64, balance: U256::from(1000 + i), code_hash: KECCAK_EMPTY };
            entries.push(Entry::Account { hash: *key, address: None, info });
            if h(&[seed, i as u64, 1])[0] % 4 == 0 {
                let n = h(&[seed, i as u64, 2])[0] % 7;
                let mut slots: Vec<B256> = (0..u64::from(n)).map(|j| h(&[seed, i as u64, 3, j])).collect();
                slots.sort();
                for (j, slot) in slots.into_iter().enumerate() {
                    let value = if j == 3 { U256::ZERO } else { U256::from(j + 1) << (j * 40) };
                    entries.push(Entry::Slot { hash: slot, slot: None, value });
                }
            }
        }
        entries
    }

    /// Record writes: (table id, key, value).
    type Records = Vec<(u8, Vec<u8>, Vec<u8>)>;

    /// Root and records of `entries` fed in batches of `batch` entries, with
    /// or without leaf hashes computed ahead per batch; and how many were.
    fn fed_in_batches(entries: &[Entry], batch: usize, ahead: bool) -> (B256, Records, usize) {
        let (mut tries, mut out, mut offered) = (Tries::new(), TrieOut::default(), 0);
        for b in entries.chunks(batch) {
            let hashes = if ahead { hash_leaves_ahead(b) } else { Vec::new() };
            offered += hashes.iter().flatten().count();
            for (n, e) in b.iter().enumerate() {
                tries.apply(e, hashes.get(n).copied().flatten(), &mut out).unwrap();
            }
            tries.flush(&mut out).unwrap();
        }
        let root = tries.finish(&mut out).unwrap();
        (root, out.records.iter().map(|(t, k, v)| (t, k.to_vec(), v.to_vec())).collect(), offered)
    }

    #[test]
    fn leaves_hashed_ahead_give_the_root_and_records_of_leaves_hashed_by_the_tries() {
        for seed in 0..12 {
            // Enough accounts for stored account-trie records (full branches of branches).
            let entries = sample_entries(seed, 600);
            let (root, records, _) = fed_in_batches(&entries, entries.len(), false);
            for batch in [1, 2, 3, 7, 64, entries.len()] {
                let (r, rec, offered) = fed_in_batches(&entries, batch, true);
                assert_eq!(r, root, "seed {seed}, batches of {batch}");
                assert_eq!(rec, records, "seed {seed}, batches of {batch}");
                if batch >= 64 {
                    assert!(
                        offered > entries.len() / 2,
                        "seed {seed}, batches of {batch}: only {offered} hashed ahead"
                    );
                }
            }
        }
    }

    fn fresh_db(dir: &Path) -> Db {
        Db::open(dir, Options { create: true, ..Options::default() }).unwrap()
    }

    #[test]
    fn an_account_whose_code_is_missing_is_refused_with_and_without_the_set() {
        let t = tempfile::tempdir().unwrap();
        // Codes written by this load, in order or not: the set answers.
        for codes in [&[1u8, 3, 5][..], &[5, 1, 3]] {
            let db = fresh_db(&t.path().join(format!("missing-{}", codes[0])));
            let err = write_then_require(&db, codes, &[3, 4]).unwrap_err().to_string();
            assert!(err.contains(&format!("{:#x}", code_hash(4))), "{err}");
            assert!(err.contains(&format!("{:#x}", B256::with_last_byte(1))), "{err}");
            let db = fresh_db(&t.path().join(format!("present-{}", codes[0])));
            write_then_require(&db, codes, &[1, 3, 5]).unwrap();
        }
        // Codes already in the database before the load (a resumed import): the table answers.
        let db = fresh_db(&t.path().join("resumed"));
        write_then_require(&db, &[7], &[7]).unwrap();
        write_then_require(&db, &[8], &[7, 8]).unwrap();
        let err = write_then_require(&db, &[9], &[7, 6]).unwrap_err().to_string();
        assert!(err.contains(&format!("{:#x}", code_hash(6))), "{err}");
    }

    #[test]
    fn the_set_is_given_up_past_its_limit_or_after_a_resume() {
        let mut known = KnownCodes::new(false);
        for b in [3u8, 1, 2] {
            known.wrote(&code_hash(b));
        }
        assert_eq!(known.exists(&code_hash(2)), Some(true));
        assert_eq!(known.exists(&code_hash(4)), Some(false));
        assert_eq!(KnownCodes::new(true).exists(&code_hash(1)), None);
        let mut full = KnownCodes::new(false);
        full.hashes = (0..MAX_KNOWN_CODES as u64).map(|i| B256::left_padding_from(&i.to_be_bytes())).collect();
        full.wrote(&B256::repeat_byte(0xff));
        assert_eq!(full.exists(&B256::ZERO), None);
        assert!(full.hashes.capacity() == 0, "memory given back");
    }
}
