//! State-root commit benchmark: MetisDB commits of 10k changed keys
//! (updated accounts and slots plus new accounts) including the Merkle state
//! root, on 1 and more hashing threads, next to a raw libmdbx durable write
//! of the same puts (no Merkle work) and a full rebuild of the root with
//! alloy-trie's `HashBuilder`, which also checks MetisDB's root.
//!
//! Everything runs in one process on the same deterministic state: N
//! accounts (keccak of an index as the address), every `--slot-every`-th of
//! them with `--slots` storage slots. See `benches/STATE_ROOT.md`.

// The allocator of the shipped `metis` binary.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use alloy_rlp::Encodable;
use alloy_trie::{HashBuilder, Nibbles};
use clap::Parser;
use libmdbx::{
    Database, DatabaseOptions, Mode, NoWriteMap, ReadWriteOptions, SyncMode, Table, TableFlags, Transaction,
    WriteFlags, RW,
};
use metis_benches::parse_count;
use metis_benches::Res;
use metisdb::state::{
    account_proof, keccak256, storage_key, stored_slot_value, AccountInfo, AccountUpdate, Address, SlotWrite,
    StoredAccount, B256, EMPTY_ROOT_HASH, KECCAK_EMPTY, U256,
};
use metisdb::{Db, Options};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "metis-bench-state-root",
    about = "MetisDB commits including the state root vs raw libmdbx commits and a HashBuilder rebuild"
)]
struct Args {
    /// Accounts to load (accepts 1M, 10M).
    #[arg(long, default_value = "1M", value_parser = parse_count)]
    accounts: u64,
    /// Parent directory of the data dirs (`<dir>/metisdb-<n>`, `<dir>/mdbx-<n>`), removed at the end
    /// unless --keep.
    #[arg(long, default_value = "/var/tmp/metis-bench-state")]
    dir: PathBuf,
    /// Measured commits per thread count.
    #[arg(long, default_value_t = 10)]
    commits: usize,
    /// Unmeasured warm-up commits per thread count.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Hashing thread counts of the MetisDB commits, comma separated (taken in turn).
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Seed of the addresses and of the changes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Changed keys per commit.
    #[arg(long, default_value = "10k", value_parser = parse_count)]
    changes: u64,
    /// New accounts among them (the rest update existing accounts and slots).
    #[arg(long, default_value = "1k", value_parser = parse_count)]
    new_accounts: u64,
    /// Of the updates, this share are slot updates (the rest account updates).
    #[arg(long, default_value_t = 1.0 / 3.0)]
    slot_share: f64,
    /// Every n-th loaded account has storage.
    #[arg(long, default_value_t = 10)]
    slot_every: u64,
    /// Slots of an account with storage.
    #[arg(long, default_value_t = 4)]
    slots: u64,
    /// Accounts per load transaction.
    #[arg(long, default_value = "250k", value_parser = parse_count)]
    batch: u64,
    /// Account proofs timed (after one warm-up pass over the same accounts).
    #[arg(long, default_value_t = 1000)]
    proofs: usize,
    /// Keep the data dirs.
    #[arg(long)]
    keep: bool,
}

/// (table, pages, entries) per table.
type TablePages = Vec<(&'static str, u64, u64)>;

/// xorshift64*: cheap deterministic randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn address(seed: u64, i: u64) -> Address {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[8..].copy_from_slice(&seed.to_le_bytes());
    Address::from_slice(&keccak256(b)[12..])
}

/// The state as the benchmark knows it, independent of any engine: the
/// oracle of the HashBuilder rebuild.
struct Model {
    seed: u64,
    /// keccak(address) by account index.
    hashes: Vec<B256>,
    nonce: Vec<u64>,
    balance: Vec<U256>,
    /// Accounts `i < loaded` with `i % slot_every == 0` have storage.
    loaded: u64,
    slot_every: u64,
    slots: u64,
    /// keccak(slot) of slots 0..slots.
    slot_hashes: Vec<B256>,
    /// Slot values, `slots` per account with storage.
    values: Vec<U256>,
}

impl Model {
    fn new(seed: u64, n: u64, slot_every: u64, slots: u64) -> Model {
        let mut m = Model {
            seed,
            hashes: Vec::with_capacity(n as usize),
            nonce: Vec::with_capacity(n as usize),
            balance: Vec::with_capacity(n as usize),
            loaded: n,
            slot_every,
            slots,
            slot_hashes: (0..slots).map(|s| keccak256(U256::from(s).to_be_bytes::<32>())).collect(),
            values: Vec::new(),
        };
        for i in 0..n {
            m.push(i % 7, U256::from(i) * U256::from(1_000_000_007u64));
            if m.has_storage(i) {
                for s in 0..slots {
                    m.values.push(U256::from(i + s + 1));
                }
            }
        }
        m
    }

    fn len(&self) -> u64 {
        self.hashes.len() as u64
    }

    fn push(&mut self, nonce: u64, balance: U256) {
        let i = self.len();
        self.hashes.push(keccak256(address(self.seed, i)));
        self.nonce.push(nonce);
        self.balance.push(balance);
    }

    fn has_storage(&self, i: u64) -> bool {
        i < self.loaded && i.is_multiple_of(self.slot_every)
    }

    fn storage_accounts(&self) -> u64 {
        self.loaded.div_ceil(self.slot_every)
    }

    fn info(&self, i: u64) -> AccountInfo {
        AccountInfo { nonce: self.nonce[i as usize], balance: self.balance[i as usize], code_hash: KECCAK_EMPTY }
    }

    /// The account record as MetisDB stores it; for libmdbx a placeholder
    /// storage root of the same size stands in for the real one.
    fn record(&self, i: u64) -> Vec<u8> {
        let storage_root = if self.has_storage(i) { B256::repeat_byte(0x5a) } else { EMPTY_ROOT_HASH };
        StoredAccount { info: self.info(i), storage_root }.encode()
    }

    fn slot_value(&self, i: u64, s: u64) -> U256 {
        self.values[((i / self.slot_every) * self.slots + s) as usize]
    }
}

/// A non-zero slot value as MetisDB's storage table holds it, for libmdbx too.
fn slot_bytes(v: &U256) -> Vec<u8> {
    stored_slot_value(&v.to_be_bytes()).to_vec()
}

/// One commit's changes.
enum Change {
    /// Account `i` set to its model value (updated or new).
    Account(u64),
    /// Slot `s` of account `i` set to its model value.
    Slot(u64, u64),
}

/// Draws `changes` distinct changed keys and applies them to the model.
fn draw_changes(m: &mut Model, rng: &mut Rng, args: &Args) -> Vec<Change> {
    let updates = args.changes - args.new_accounts;
    let slot_updates = (updates as f64 * args.slot_share).round() as u64;
    let mut out = Vec::with_capacity(args.changes as usize);
    let mut seen = HashSet::new();
    while (out.len() as u64) < updates - slot_updates {
        let i = rng.below(m.len());
        if seen.insert((i, u64::MAX)) {
            m.nonce[i as usize] += 1;
            m.balance[i as usize] = U256::from(rng.next());
            out.push(Change::Account(i));
        }
    }
    while (out.len() as u64) < updates {
        let i = rng.below(m.storage_accounts()) * m.slot_every;
        let s = rng.below(m.slots);
        if seen.insert((i, s)) {
            let v = U256::from(rng.next() | 1);
            let k = ((i / m.slot_every) * m.slots + s) as usize;
            m.values[k] = v;
            out.push(Change::Slot(i, s));
        }
    }
    for _ in 0..args.new_accounts {
        let i = m.len();
        m.push(0, U256::from(rng.next()));
        out.push(Change::Account(i));
    }
    // Both engines take a commit's puts in key order, as a client hands
    // over hashed state (accounts, then slots).
    out.sort_unstable_by_key(|c| match *c {
        Change::Account(i) => (false, m.hashes[i as usize], B256::ZERO),
        Change::Slot(i, s) => (true, m.hashes[i as usize], m.slot_hashes[s as usize]),
    });
    out
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------- libmdbx

struct Mdbx {
    db: Database<NoWriteMap>,
}

impl Mdbx {
    fn open(dir: &Path) -> Res<Mdbx> {
        let db = Database::<NoWriteMap>::open_with_options(
            dir,
            DatabaseOptions {
                mode: Mode::ReadWrite(ReadWriteOptions {
                    sync_mode: SyncMode::Durable,
                    max_size: Some(1 << 40),
                    ..ReadWriteOptions::default()
                }),
                no_rdahead: true,
                max_tables: Some(4),
                ..DatabaseOptions::default()
            },
        )?;
        Ok(Mdbx { db })
    }

    /// Runs `f` in one write transaction with the accounts and storage tables; returns (puts, commit) ms.
    fn write(
        &self,
        f: impl FnOnce(&Transaction<'_, RW, NoWriteMap>, &Table<'_>, &Table<'_>) -> Res<()>,
    ) -> Res<(f64, f64)> {
        let t0 = Instant::now();
        let txn = self.db.begin_rw_txn()?;
        {
            let acc = txn.create_table(Some("accounts"), TableFlags::default())?;
            let sto = txn.create_table(Some("storage"), TableFlags::default())?;
            f(&txn, &acc, &sto)?;
        }
        let t1 = Instant::now();
        txn.commit()?;
        Ok((ms(t1 - t0), ms(t1.elapsed())))
    }

    /// (file bytes, [(table, pages, entries)]).
    fn space(&self, dir: &Path) -> Res<(u64, TablePages)> {
        let file = std::fs::metadata(dir.join("mdbx.dat"))?.len();
        let txn = self.db.begin_ro_txn()?;
        let mut out = Vec::new();
        for name in ["accounts", "storage"] {
            let t = txn.open_table(Some(name))?;
            let s = txn.table_stat(&t)?;
            out.push((name, (s.branch_pages() + s.leaf_pages() + s.overflow_pages()) as u64, s.entries() as u64));
        }
        Ok((file, out))
    }
}

fn mdbx_apply(
    m: &Model,
    changes: &[Change],
    txn: &Transaction<'_, RW, NoWriteMap>,
    acc: &Table<'_>,
    sto: &Table<'_>,
) -> Res<()> {
    for c in changes {
        match *c {
            Change::Account(i) => txn.put(acc, m.hashes[i as usize], m.record(i), WriteFlags::UPSERT)?,
            Change::Slot(i, s) => txn.put(
                sto,
                storage_key(&m.hashes[i as usize], &m.slot_hashes[s as usize]),
                slot_bytes(&m.slot_value(i, s)),
                WriteFlags::UPSERT,
            )?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- HashBuilder

/// RLP of the account leaf `[nonce, balance, storage_root, code_hash]`.
fn encode_account(nonce: u64, balance: &U256, storage_root: &B256, code_hash: &B256, out: &mut Vec<u8>) {
    let payload_length = nonce.length() + balance.length() + storage_root.length() + code_hash.length();
    alloy_rlp::Header { list: true, payload_length }.encode(out);
    nonce.encode(out);
    balance.encode(out);
    storage_root.encode(out);
    code_hash.encode(out);
}

/// Full rebuild from the model: (root, storage-roots ms, account-trie ms).
/// Sorting the keys is not timed (a database yields them sorted).
fn hash_builder_root(m: &Model) -> (B256, f64, f64) {
    let mut order: Vec<u32> = (0..m.len() as u32).collect();
    order.sort_unstable_by_key(|&i| m.hashes[i as usize]);
    let mut slot_order: Vec<u64> = (0..m.slots).collect();
    slot_order.sort_unstable_by_key(|&s| m.slot_hashes[s as usize]);
    let mut buf = Vec::with_capacity(128);
    // Storage roots of every account with storage.
    let t0 = Instant::now();
    let mut roots = Vec::with_capacity(m.storage_accounts() as usize);
    for j in 0..m.storage_accounts() {
        let i = j * m.slot_every;
        let mut hb = HashBuilder::default();
        for &s in &slot_order {
            buf.clear();
            m.slot_value(i, s).encode(&mut buf);
            hb.add_leaf(Nibbles::unpack(m.slot_hashes[s as usize]), &buf);
        }
        roots.push(hb.root());
    }
    let storage_ms = ms(t0.elapsed());
    // The account trie.
    let t1 = Instant::now();
    let mut hb = HashBuilder::default();
    for &i in &order {
        let i = i as u64;
        let storage_root = if m.has_storage(i) { roots[(i / m.slot_every) as usize] } else { EMPTY_ROOT_HASH };
        buf.clear();
        encode_account(m.nonce[i as usize], &m.balance[i as usize], &storage_root, &KECCAK_EMPTY, &mut buf);
        hb.add_leaf(Nibbles::unpack(m.hashes[i as usize]), &buf);
    }
    let root = hb.root();
    (root, storage_ms, ms(t1.elapsed()))
}

// ---------------------------------------------------------------- MetisDB

/// A full page walk (`Db::verify`, which also checks the file): (reachable pages, [(table, pages, entries)]).
/// Reachable pages are the tables of the newest version plus the retained history (change sets), the
/// meta pages and the free list.
fn page_walk(db: &Db) -> Res<(u64, TablePages)> {
    let r = db.verify(&mut |_, _| {})?;
    if !r.ok() {
        return Err(format!("verify found problems: {:?}", &r.problems[..r.problems.len().min(5)]).into());
    }
    let tables = r.tables.iter().filter(|t| t.pages > 0).map(|t| (t.name, t.pages, t.entries)).collect();
    Ok((r.page_count - r.free_pages, tables))
}

fn pages_of(tables: &[(&'static str, u64, u64)], name: &str) -> u64 {
    tables.iter().find(|t| t.0 == name).map_or(0, |t| t.1)
}

/// Space figures of MetisDB (and libmdbx) at one point.
fn space_report(label: &str, db: &Db, mdbx: &Mdbx, mdbx_dir: &Path, m: &Model) -> Res<serde_json::Value> {
    let s = db.stats()?;
    let (reachable, t) = page_walk(db)?;
    let ps = s.page_size as f64;
    let n = m.len() as f64;
    let slots = (m.storage_accounts() * m.slots) as f64;
    let used = reachable as f64 * ps;
    let table_pages: u64 = t.iter().map(|x| x.1).sum();
    let acct = (pages_of(&t, "accounts") + pages_of(&t, "account_trie")) as f64 * ps;
    let slot = (pages_of(&t, "storage") + pages_of(&t, "storage_trie")) as f64 * ps;
    let (mfile, mt) = mdbx.space(mdbx_dir)?;
    let mps = 4096.0;
    println!(
        "space {label}: metisdb file {:.0} MB, reachable {:.0} MB ({reachable} pages: {table_pages} in tables, \
         {} history/meta/free list); {:.0} B/account reachable, {:.0} B/account file; tables only {:.0} B/account; \
         accounts+account_trie {:.0} B/account; storage+storage_trie {:.0} B/slot",
        s.file_len as f64 / 1e6,
        used / 1e6,
        reachable - table_pages,
        used / n,
        s.file_len as f64 / n,
        table_pages as f64 * ps / n,
        acct / n,
        slot / slots
    );
    for (name, pages, entries) in &t {
        println!("  metisdb {name:<13} {pages:>9} pages {entries:>10} entries");
    }
    let mdbx_acct = mt[0].1 as f64 * mps;
    let mdbx_slot = mt[1].1 as f64 * mps;
    println!(
        "  libmdbx file {:.0} MB; accounts {} pages ({:.0} B/account), storage {} pages ({:.0} B/slot)",
        mfile as f64 / 1e6,
        mt[0].1,
        mdbx_acct / n,
        mt[1].1,
        mdbx_slot / slots
    );
    Ok(json!({
        "label": label, "accounts": m.len(), "slots": slots,
        "metisdb_file_bytes": s.file_len, "metisdb_reachable_pages": reachable, "metisdb_table_pages": table_pages,
        "metisdb_b_per_account_reachable": used / n, "metisdb_b_per_account_file": s.file_len as f64 / n,
        "metisdb_b_per_account_tables": table_pages as f64 * ps / n,
        "metisdb_b_per_account_account_tables": acct / n, "metisdb_b_per_slot": slot / slots,
        "metisdb_tables": t.iter().map(|(a, b, c)| json!([a, b, c])).collect::<Vec<_>>(),
        "mdbx_file_bytes": mfile, "mdbx_b_per_account": mdbx_acct / n, "mdbx_b_per_slot": mdbx_slot / slots,
    }))
}

#[derive(Default)]
struct Sample {
    total: f64,
    apply: f64,
    root: f64,
    storage_root: f64,
    account_root: f64,
    commit: f64,
    write: f64,
    sync: f64,
    meta: f64,
    prepare: f64,
    pages: f64,
    relocated: f64,
    records: f64,
    root_cpu: f64,
    storage_walk: f64,
    account_walk: f64,
    record_write: f64,
}

/// CPU time of the process (all threads, user + system) in ms.
fn cpu_ms() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() -> Res<()> {
    let args = Args::parse();
    assert!(args.new_accounts <= args.changes, "--new-accounts exceeds --changes");
    assert!(!args.threads.is_empty(), "--threads is empty");
    let n = args.accounts;
    let mdir = args.dir.join(format!("metisdb-{n}"));
    let xdir = args.dir.join(format!("mdbx-{n}"));
    for d in [&mdir, &xdir] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    println!(
        "accounts {n}, every {}th with {} slots; {} changes per commit ({} new accounts); threads {:?}; seed {}",
        args.slot_every, args.slots, args.changes, args.new_accounts, args.threads, args.seed
    );

    let t = Instant::now();
    let mut m = Model::new(args.seed, n, args.slot_every, args.slots);
    println!("model: {n} accounts, {} slots in {:.1} s", m.storage_accounts() * m.slots, t.elapsed().as_secs_f64());

    // Load MetisDB.
    let db = Db::open(&mdir, Options::default())?;
    let t = Instant::now();
    let mut i = 0;
    let mut load_root = B256::ZERO;
    while i < n {
        let end = (i + args.batch).min(n);
        let mut w = db.begin_state()?;
        w.set_record_preimages(false);
        for j in i..end {
            let ah = m.hashes[j as usize];
            w.set_account_by_hash(&ah, Some(m.info(j)))?;
            if m.has_storage(j) {
                for s in 0..m.slots {
                    w.set_storage_by_hash(&ah, &m.slot_hashes[s as usize], &m.slot_value(j, s))?;
                }
            }
        }
        load_root = w.commit(Vec::new())?.1;
        i = end;
    }
    let metis_load = t.elapsed().as_secs_f64();
    println!("metisdb load: {metis_load:.1} s ({:.0} accounts/s)", n as f64 / metis_load);

    // Load libmdbx.
    let mdbx = Mdbx::open(&xdir)?;
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + args.batch).min(n);
        mdbx.write(|txn, acc, sto| {
            for j in i..end {
                let ah = &m.hashes[j as usize];
                txn.put(acc, ah, m.record(j), WriteFlags::UPSERT)?;
                if m.has_storage(j) {
                    for s in 0..m.slots {
                        let k = storage_key(ah, &m.slot_hashes[s as usize]);
                        txn.put(sto, k, slot_bytes(&m.slot_value(j, s)), WriteFlags::UPSERT)?;
                    }
                }
            }
            Ok(())
        })?;
        i = end;
    }
    let mdbx_load = t.elapsed().as_secs_f64();
    println!("libmdbx load: {mdbx_load:.1} s ({:.0} accounts/s)", n as f64 / mdbx_load);

    // The root after the load, checked against a full rebuild.
    let (hb_root, hb_storage, hb_accounts) = hash_builder_root(&m);
    println!(
        "hashbuilder rebuild after load: {:.0} ms (storage roots {hb_storage:.0} ms, account trie {hb_accounts:.0} ms)",
        hb_storage + hb_accounts
    );
    if hb_root != load_root {
        return Err(format!("ROOT MISMATCH after load: metisdb {load_root}, hashbuilder {hb_root}").into());
    }
    println!("root after load {load_root} matches the HashBuilder rebuild");
    let space_load = space_report("after load", &db, &mdbx, &xdir, &m)?;

    // Commits: change sets in turn on each thread count, each also written to libmdbx.
    let mut rng = Rng(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let rounds = args.warmup + args.commits;
    let mut samples: Vec<Vec<Sample>> = args.threads.iter().map(|_| Vec::new()).collect();
    let mut mdbx_samples: Vec<(f64, f64)> = Vec::new();
    let mut root = load_root;
    for r in 0..rounds {
        for (ti, &threads) in args.threads.iter().enumerate() {
            let changes = draw_changes(&mut m, &mut rng, &args);
            let m0 = db.metrics();
            let t0 = Instant::now();
            let mut w = db.begin_state()?;
            w.set_threads(threads);
            w.set_record_preimages(false);
            let (mut accounts, mut slots): (Vec<AccountUpdate>, Vec<SlotWrite>) = (Vec::new(), Vec::new());
            for c in &changes {
                match *c {
                    Change::Account(i) => accounts.push((m.hashes[i as usize], m.info(i))),
                    Change::Slot(i, s) => {
                        slots.push((m.hashes[i as usize], m.slot_hashes[s as usize], m.slot_value(i, s)))
                    }
                }
            }
            w.apply_batch(&mut accounts, &mut slots)?;
            let t1 = Instant::now();
            let c1 = cpu_ms();
            let computed = w.compute_root()?;
            let st = w.last_root_stats().clone();
            let c2 = cpu_ms();
            let t2 = Instant::now();
            let (_, committed) = w.commit(Vec::new())?;
            let t3 = Instant::now();
            let m1 = db.metrics();
            if committed != computed {
                return Err(format!("commit root {committed} differs from the computed root {computed}").into());
            }
            root = committed;
            let d = |a: u64, b: u64| (b - a) as f64 / 1e6;
            let s = Sample {
                total: ms(t3 - t0),
                apply: ms(t1 - t0),
                root: ms(t2 - t1),
                storage_root: st.storage_ns as f64 / 1e6,
                account_root: st.account_ns as f64 / 1e6,
                commit: ms(t3 - t2),
                write: d(m0.commit_write_ns, m1.commit_write_ns),
                sync: d(m0.commit_sync_ns, m1.commit_sync_ns),
                meta: d(m0.commit_meta_ns, m1.commit_meta_ns),
                prepare: d(m0.commit_prepare_ns, m1.commit_prepare_ns),
                pages: (m1.pages_written - m0.pages_written) as f64,
                relocated: (m1.pages_relocated - m0.pages_relocated) as f64,
                records: st.records_written as f64,
                root_cpu: c2 - c1,
                storage_walk: st.storage_walk_ns as f64 / 1e6,
                account_walk: st.account_walk_ns as f64 / 1e6,
                record_write: st.write_ns as f64 / 1e6,
            };
            let (xp, xc) = mdbx.write(|txn, acc, sto| mdbx_apply(&m, &changes, txn, acc, sto))?;
            let tag = if r < args.warmup { "warm-up" } else { "measured" };
            println!(
                "{tag} commit {r}/{threads}t: metisdb {:.1} ms (apply {:.1}, root {:.1} [cpu {:.1}, storage {:.1} (walk {:.1}), \
                 accounts {:.1} (walk {:.1}), writing records {:.1}, {} records], commit {:.1} [prepare {:.1}, write {:.1}, sync {:.1}, meta {:.1}, {} pages, {} \
                 relocated]) | \
                 libmdbx {:.1} ms (puts {xp:.1}, commit {xc:.1})",
                s.total,
                s.apply,
                s.root,
                s.root_cpu,
                s.storage_root,
                s.storage_walk,
                s.account_root,
                s.account_walk,
                s.record_write,
                st.records_written,
                s.commit,
                s.prepare,
                s.write,
                s.sync,
                s.meta,
                s.pages,
                s.relocated,
                xp + xc
            );
            if r >= args.warmup {
                samples[ti].push(s);
                mdbx_samples.push((xp, xc));
            }
        }
    }

    // Full rebuild at the final version.
    let (hb_root, hb_storage, hb_accounts) = hash_builder_root(&m);
    let hb_ms = hb_storage + hb_accounts;
    println!(
        "hashbuilder rebuild at the end ({} accounts): {hb_ms:.0} ms (storage roots {hb_storage:.0} ms, \
         account trie {hb_accounts:.0} ms)",
        m.len()
    );
    if hb_root != root {
        return Err(format!("ROOT MISMATCH at the end: metisdb {root}, hashbuilder {hb_root}").into());
    }
    println!("final root {root} matches the HashBuilder rebuild");
    let space_end = space_report("after commits", &db, &mdbx, &xdir, &m)?;

    // Warm account proofs.
    let snap = db.snapshot(None)?;
    let mut prng = Rng(args.seed ^ 0x5eed);
    let picks: Vec<(Address, u64)> = (0..args.proofs)
        .map(|_| {
            let i = prng.below(m.len());
            (address(args.seed, i), i)
        })
        .collect();
    for (a, _) in &picks {
        std::hint::black_box(account_proof(&snap, a, &[])?);
    }
    let t = Instant::now();
    let mut nodes = 0usize;
    for (a, _) in &picks {
        nodes += std::hint::black_box(account_proof(&snap, a, &[])?).account_proof.len();
    }
    let proof_us = t.elapsed().as_secs_f64() * 1e6 / picks.len().max(1) as f64;
    for (a, i) in picks.iter().take(20) {
        let p = account_proof(&snap, a, &[])?;
        p.verify(root).map_err(|e| format!("proof of account {i} does not verify: {e:?}"))?;
        if p.nonce != m.nonce[*i as usize] || p.balance != m.balance[*i as usize] {
            return Err(format!("proof of account {i} shows the wrong account").into());
        }
    }
    println!(
        "proofs: {proof_us:.1} us per account proof (warm, {} proofs, {:.1} nodes each); 20 verified",
        picks.len(),
        nodes as f64 / picks.len().max(1) as f64
    );
    drop(snap);

    // Summary.
    let mdbx_total: Vec<f64> = mdbx_samples.iter().map(|(p, c)| p + c).collect();
    let mdbx_ms = median(&mdbx_total);
    let med = |ti: usize, f: fn(&Sample) -> f64| median(&samples[ti].iter().map(f).collect::<Vec<_>>());
    let slots = (m.storage_accounts() * m.slots) as f64;
    println!();
    println!(
        "## {n} accounts ({} slots), {} changes per commit, medians of {} commits per thread count",
        slots, args.changes, args.commits
    );
    println!();
    println!(
        "| threads | metisdb commit ms | apply | root | root cpu | storage walk | account walk | record writes | \
         txn commit | \
         sync+meta | pages written (relocated) | metisdb/mdbx |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (ti, &threads) in args.threads.iter().enumerate() {
        let total = med(ti, |s| s.total);
        println!(
            "| {threads} | {total:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} ({:.0}) | {:.2} |",
            med(ti, |s| s.apply),
            med(ti, |s| s.root),
            med(ti, |s| s.root_cpu),
            med(ti, |s| s.storage_walk),
            med(ti, |s| s.account_walk),
            med(ti, |s| s.record_write),
            med(ti, |s| s.commit),
            med(ti, |s| s.sync + s.meta),
            med(ti, |s| s.pages),
            med(ti, |s| s.relocated),
            total / mdbx_ms
        );
        rows.push(json!({
            "threads": threads, "total_ms": total, "apply_ms": med(ti, |s| s.apply), "root_ms": med(ti, |s| s.root),
            "storage_root_ms": med(ti, |s| s.storage_root), "account_root_ms": med(ti, |s| s.account_root),
            "commit_ms": med(ti, |s| s.commit), "prepare_ms": med(ti, |s| s.prepare), "write_ms": med(ti, |s| s.write),
            "sync_ms": med(ti, |s| s.sync), "meta_ms": med(ti, |s| s.meta), "pages_written": med(ti, |s| s.pages),
            "pages_relocated": med(ti, |s| s.relocated), "root_cpu_ms": med(ti, |s| s.root_cpu),
            "storage_walk_ms": med(ti, |s| s.storage_walk), "account_walk_ms": med(ti, |s| s.account_walk),
            "record_write_ms": med(ti, |s| s.record_write),
            "records_written": med(ti, |s| s.records), "ratio_to_mdbx": total / mdbx_ms,
            "total_samples": samples[ti].iter().map(|s| s.total).collect::<Vec<_>>(),
        }));
    }
    let root_speedup = if args.threads.len() >= 2 { med(0, |s| s.root) / med(1, |s| s.root) } else { f64::NAN };
    let space = |k: &str| space_end[k].as_f64().unwrap_or(f64::NAN);
    println!();
    println!(
        "| accounts | metisdb 1st/2nd thread count ms | root ms | root speedup | libmdbx raw ms (puts + commit) | \
         HashBuilder rebuild ms | B/account reachable (file) | B/slot | proof us |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let firsts = |f: fn(&Sample) -> f64| {
        (0..args.threads.len()).map(|ti| format!("{:.1}", med(ti, f))).collect::<Vec<_>>().join(" / ")
    };
    println!(
        "| {} | {} | {} | {root_speedup:.2} | {mdbx_ms:.1} ({:.1} + {:.1}) | {hb_ms:.0} | {:.0} ({:.0}) | {:.0} | \
         {proof_us:.1} |",
        m.len(),
        firsts(|s| s.total),
        firsts(|s| s.root),
        median(&mdbx_samples.iter().map(|x| x.0).collect::<Vec<_>>()),
        median(&mdbx_samples.iter().map(|x| x.1).collect::<Vec<_>>()),
        space("metisdb_b_per_account_reachable"),
        space("metisdb_b_per_account_file"),
        space("metisdb_b_per_slot"),
    );
    println!();
    println!(
        "{}",
        json!({
            "bench": "state_root", "accounts_loaded": n, "accounts_end": m.len(), "slots": slots,
            "changes": args.changes, "new_accounts": args.new_accounts, "commits": args.commits,
            "warmup": args.warmup, "seed": args.seed, "metisdb_load_s": metis_load, "mdbx_load_s": mdbx_load,
            "metisdb": rows, "root_speedup": root_speedup, "mdbx_ms": mdbx_ms,
            "mdbx_samples": mdbx_total, "hashbuilder_ms": hb_ms, "hashbuilder_storage_ms": hb_storage,
            "hashbuilder_accounts_ms": hb_accounts, "proof_us": proof_us,
            "space_load": space_load, "space_end": space_end,
        })
    );
    drop(db);
    drop(mdbx);
    if !args.keep {
        std::fs::remove_dir_all(&mdir)?;
        std::fs::remove_dir_all(&xdir)?;
    }
    Ok(())
}
