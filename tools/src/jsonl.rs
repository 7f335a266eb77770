//! The JSONL state dump that reth's `init-state` reads and writes.
//!
//! ```text
//! {"root":"0x<state root>"}
//! {"nonce":"0x1","balance":"0x2a","code":"0x6000","storage":{"0x<slot, 32 bytes>":"0x<value, 32 bytes>"},"address":"0x<20 bytes>"}
//! ...
//! ```
//! One account per line (reth's `GenesisAccountWithAddress`: alloy's
//! `GenesisAccount` flattened, plus `address`). Written as reth writes it:
//! nonce and balance as hex quantities, code as hex bytes (omitted when
//! empty), storage keys and values as 32-byte hex (omitted when empty).
//! Read as reth reads it: `balance` required; `nonce` a hex quantity or a
//! number; storage keys and values hex of at most 32 bytes, left-padded;
//! other fields ignored. Zero storage values mean "absent".
//!
//! Import ([`init_state`]) does not need the lines in any order: a first
//! pass turns them into records keyed by hashed address (and hashed slot),
//! parsed on two threads in batches of lines and sorted in bounded runs on
//! disk; a merge of the runs (on its own thread) feeds the bulk load of a
//! snapshot import (tries hashed on another thread, batched commits into
//! a staging database). Memory is one sort run plus a few batches,
//! whatever the file size.

use crate::error::{DbContext, Error, Result};
use crate::import::{check_target, install, staging_dir};
use crate::snapshot::export::{units, walk_and_write, Board, Unit, ACCOUNTS_PER_UNIT, WRITER_STOPPED};
use crate::snapshot::format::{Entry, EntryDecoder};
use crate::snapshot::load::{load_staged, open_staging, EntryBatch, LoadHooks, Tries};
use crate::walk::{walk_state, StateVisitor, WalkOptions, WalkTotals};
use alloy_primitives::{keccak256, Address, B256, U256};
use metisdb::state::{AccountInfo, StoredAccount, KECCAK_EMPTY};
use metisdb::tables::CODE;
use metisdb::{Db, Options};
use serde::Deserialize;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Parses a hex string of at most `max` bytes ("0x" optional, odd length allowed).
fn hex_bytes(s: &str, max: usize) -> std::result::Result<Vec<u8>, String> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let padded;
    let h = if h.len() % 2 == 1 {
        padded = format!("0{h}");
        &padded
    } else {
        h
    };
    let b = hex::decode(h).map_err(|_| format!("{s:?} is not hex"))?;
    if b.len() > max {
        return Err(format!("{s:?} is longer than {max} bytes"));
    }
    Ok(b)
}

/// A JSON quantity: hex string, decimal string or number.
fn quantity(v: &serde_json::Value, what: &str) -> std::result::Result<U256, String> {
    match v {
        serde_json::Value::String(s) => {
            if s.starts_with("0x") || s.starts_with("0X") {
                Ok(U256::from_be_slice(&hex_bytes(s, 32).map_err(|e| format!("{what}: {e}"))?))
            } else {
                U256::from_str_radix(s, 10).map_err(|_| format!("{what}: {s:?} is not a number"))
            }
        }
        serde_json::Value::Number(n) => {
            n.as_u64().map(U256::from).ok_or_else(|| format!("{what}: {n} is not a non-negative integer"))
        }
        other => Err(format!("{what}: expected a quantity, found {other}")),
    }
}

#[derive(Deserialize)]
struct RootLine {
    root: String,
}

#[derive(Deserialize)]
struct AccountLine {
    address: String,
    balance: Option<serde_json::Value>,
    #[serde(default)]
    nonce: Option<serde_json::Value>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    storage: Option<BTreeMap<String, String>>,
}

/// An account of a dump line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpAccount {
    /// The address.
    pub address: Address,
    /// Nonce.
    pub nonce: u64,
    /// Balance.
    pub balance: U256,
    /// Bytecode (empty for none).
    pub code: Vec<u8>,
    /// Non-zero slots.
    pub storage: Vec<(U256, U256)>,
}

/// Parses the first line: the state root.
pub fn parse_root_line(line: &str) -> std::result::Result<B256, String> {
    let r: RootLine = serde_json::from_str(line).map_err(|e| format!("expected {{\"root\": \"0x...\"}}: {e}"))?;
    let b = hex_bytes(&r.root, 32)?;
    if b.len() != 32 {
        return Err(format!("root {:?} is not 32 bytes", r.root));
    }
    Ok(B256::from_slice(&b))
}

/// Parses an account line.
pub fn parse_account_line(line: &str) -> std::result::Result<DumpAccount, String> {
    let a: AccountLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let ab = hex_bytes(&a.address, 20)?;
    if ab.len() != 20 {
        return Err(format!("address {:?} is not 20 bytes", a.address));
    }
    let balance = quantity(a.balance.as_ref().ok_or("missing field `balance`")?, "balance")?;
    let nonce = match &a.nonce {
        None | Some(serde_json::Value::Null) => 0,
        Some(v) => {
            let n = quantity(v, "nonce")?;
            u64::try_from(n).map_err(|_| format!("nonce {n} exceeds 64 bits"))?
        }
    };
    let code = match &a.code {
        None => Vec::new(),
        Some(c) => hex_bytes(c, crate::snapshot::format::MAX_CODE)?,
    };
    let mut storage = Vec::new();
    for (k, v) in a.storage.iter().flatten() {
        let key = U256::from_be_slice(&hex_bytes(k, 32).map_err(|e| format!("storage key: {e}"))?);
        let value = U256::from_be_slice(&hex_bytes(v, 32).map_err(|e| format!("storage value: {e}"))?);
        if !value.is_zero() {
            storage.push((key, value));
        }
    }
    Ok(DumpAccount { address: Address::from_slice(&ab), nonce, balance, code, storage })
}

/// Writes the root line.
pub fn write_root_line(out: &mut impl Write, root: &B256) -> std::io::Result<()> {
    writeln!(out, "{{\"root\":\"{root:#x}\"}}")
}

/// Writes `"0x..."` (the `hex` crate's encoder, a char iterator, was a
/// fifth of a dump's CPU; alloy's is a table or SIMD encoder).
fn write_b256(out: &mut impl Write, v: &[u8; 32]) -> std::io::Result<()> {
    let mut buf = *b"\"0x0000000000000000000000000000000000000000000000000000000000000000\"";
    alloy_primitives::hex::encode_to_slice(v, &mut buf[3..67]).expect("64 digits for 32 bytes");
    out.write_all(&buf)
}

/// Streams state to JSONL lines in reth's field order.
struct LineWriter<'a, W: Write> {
    out: W,
    path: &'a Path,
    /// Bytecodes by hash, read with pread beside the walk.
    codes: metisdb::PagedLookup<'a>,
    slots_in_line: u64,
    address: Option<Address>,
}

impl<W: Write> LineWriter<'_, W> {
    fn io(&self, e: std::io::Error) -> Error {
        Error::io("write", self.path, e)
    }
}

impl<W: Write> StateVisitor for LineWriter<'_, W> {
    fn account(&mut self, hash: &B256, address: Option<&Address>, a: &StoredAccount) -> Result<()> {
        let Some(address) = address else {
            return Err(Error::Refused(format!(
                "account {hash:#x} has no recorded address preimage; export-state needs the addresses \
                 (databases made with preimages off can only be exported as snapshots)"
            )));
        };
        self.address = Some(*address);
        let r = (|| -> std::io::Result<()> {
            write!(self.out, "{{\"nonce\":\"{:#x}\",\"balance\":\"{:#x}\"", a.info.nonce, a.info.balance)?;
            Ok(())
        })();
        r.map_err(|e| self.io(e))?;
        if a.info.code_hash != KECCAK_EMPTY {
            let code = self
                .codes
                .get(a.info.code_hash.as_slice())
                .ctx(|| format!("read code {:#x}", a.info.code_hash))?
                .ok_or_else(|| {
                    Error::Refused(format!("account {address:#x}: code {:#x} is missing", a.info.code_hash))
                })?;
            let r = (|| -> std::io::Result<()> {
                self.out.write_all(b",\"code\":\"0x")?;
                self.out.write_all(alloy_primitives::hex::encode(code).as_bytes())?;
                self.out.write_all(b"\"")
            })();
            r.map_err(|e| self.io(e))?;
        }
        self.slots_in_line = 0;
        Ok(())
    }

    fn slot(&mut self, hash: &B256, slot: Option<&U256>, value: &U256) -> Result<()> {
        let Some(slot) = slot else {
            return Err(Error::Refused(format!(
                "slot {hash:#x} of account {:#x} has no recorded preimage; export-state needs slot numbers",
                self.address.unwrap_or_default()
            )));
        };
        let first = self.slots_in_line == 0;
        let r = (|| -> std::io::Result<()> {
            self.out.write_all(if first { b",\"storage\":{" } else { b"," })?;
            write_b256(&mut self.out, &slot.to_be_bytes::<32>())?;
            self.out.write_all(b":")?;
            write_b256(&mut self.out, &value.to_be_bytes::<32>())
        })();
        r.map_err(|e| self.io(e))?;
        self.slots_in_line += 1;
        Ok(())
    }

    fn end_account(&mut self) -> Result<()> {
        let address = self.address.take().unwrap_or_default();
        let close_storage = self.slots_in_line > 0;
        let r = (|| -> std::io::Result<()> {
            if close_storage {
                self.out.write_all(b"}")?;
            }
            writeln!(self.out, ",\"address\":\"{address:#x}\"}}")
        })();
        r.map_err(|e| self.io(e))?;
        Ok(())
    }
}

/// What an export or import of a dump did.
#[derive(Clone, Debug, Default)]
pub struct DumpSummary {
    /// Version exported or created.
    pub version: u64,
    /// State root.
    pub state_root: B256,
    /// Accounts.
    pub accounts: u64,
    /// Non-zero storage slots.
    pub slots: u64,
    /// Distinct bytecodes (import only).
    pub codes: u64,
}

/// Dump bytes a walker hands the writer at a time.
const PIECE_BYTES: usize = 1 << 20;
/// Pieces of one unit in flight to the writer.
const PIECES_AHEAD: usize = 8;

/// What a dump walker hands the writer for one unit.
enum Piece {
    Lines(Vec<u8>),
    End(WalkTotals),
}

/// The lines of one unit, in pieces of about [`PIECE_BYTES`], to the writer.
struct PieceOut {
    buf: Vec<u8>,
    tx: std::sync::mpsc::SyncSender<Piece>,
}

impl PieceOut {
    fn send(&mut self) -> std::io::Result<()> {
        let lines = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE_BYTES + (64 << 10)));
        self.tx.send(Piece::Lines(lines)).map_err(|_| std::io::Error::other(WRITER_STOPPED))
    }
}

impl Write for PieceOut {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Walks units of the state in turn, writing their lines, until none is left.
fn dump_walker(snap: &metisdb::Snapshot, units: &[Unit], board: &Board<Piece>, path: &Path) -> Result<()> {
    loop {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(PIECES_AHEAD);
        let Some(u) = board.start(units.len(), rx) else { return Ok(()) };
        // (The dump's units are state ranges only: codes go inline.)
        let Unit::State { start, end } = &units[u] else {
            return Err(Error::Refused(format!("dump unit {u} is not a range of accounts")));
        };
        let mut lw = LineWriter {
            out: PieceOut { buf: Vec::with_capacity(PIECE_BYTES + (64 << 10)), tx },
            path,
            codes: snap.paged_lookup(CODE),
            slots_in_line: 0,
            address: None,
        };
        let mut totals = WalkTotals::default();
        let mut tick = |_: &WalkTotals| {};
        let o = WalkOptions { start, end: end.as_deref(), ..WalkOptions::all(true, &mut tick) };
        walk_state(snap, o, &mut totals, &mut lw)?;
        let stopped = || Error::Refused(WRITER_STOPPED.into());
        lw.out.send().map_err(|_| stopped())?;
        lw.out.tx.send(Piece::End(totals)).map_err(|_| stopped())?;
    }
}

/// Writes version `version` (default latest) of `db` as a JSONL dump to
/// `out`. The state is split into units of account ranges as the snapshot
/// export splits it; [`crate::snapshot::export::WALKERS`] threads walk them
/// and the calling thread writes their lines in key order. `progress` gets
/// the totals and the bytes of lines written after each unit.
pub fn export_state(
    db: &Db,
    version: Option<u64>,
    out: &Path,
    progress: &mut dyn FnMut(&WalkTotals, u64),
) -> Result<DumpSummary> {
    export_state_in_units(db, version, out, ACCOUNTS_PER_UNIT, progress)
}

/// [`export_state`] with units of about `accounts_per_unit` accounts.
pub fn export_state_in_units(
    db: &Db,
    version: Option<u64>,
    out: &Path,
    accounts_per_unit: u64,
    progress: &mut dyn FnMut(&WalkTotals, u64),
) -> Result<DumpSummary> {
    let snap = db.snapshot(version).ctx(|| format!("open version {version:?}"))?;
    let v = snap.version().ok_or_else(|| Error::Refused(format!("{} holds no version yet", db.path().display())))?;
    let root = B256::from(snap.state_root().ctx(|| "read the state root".into())?);
    let name = out.file_name().ok_or_else(|| Error::Refused(format!("{} is not a file name", out.display())))?;
    let tmp = out.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let mut w = crate::direct_io::DirectOut::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let prefetch = crate::rss::Prefetch::for_state_scan(db, &snap);
    // The state units only: codes go inline with their accounts.
    let units: Vec<Unit> = units(snap.latest_entries(metisdb::tables::ACCOUNTS), accounts_per_unit)
        .into_iter()
        .filter(|u| matches!(u, Unit::State { .. }))
        .collect();
    let board = Board::<Piece>::default();
    let res = walk_and_write(
        &board,
        units.len(),
        "dump",
        || dump_walker(&snap, &units, &board, &tmp),
        || -> Result<WalkTotals> {
            let write_err = |e| Error::io("write", &tmp, e);
            write_root_line(&mut w, &root).map_err(write_err)?;
            let mut totals = WalkTotals::default();
            // JSONL bytes written after the root line, for the progress report.
            let mut written = 0u64;
            let stopped = || Error::Refused("a dump walker stopped".into());
            for u in 0..units.len() {
                let rx = board.take(u).ok_or_else(stopped)?;
                loop {
                    match rx.recv().map_err(|_| stopped())? {
                        Piece::Lines(lines) => {
                            w.write_all(&lines).map_err(write_err)?;
                            written += lines.len() as u64;
                        }
                        Piece::End(t) => {
                            totals.add(&t);
                            break;
                        }
                    }
                }
                progress(&totals, written);
            }
            Ok(totals)
        },
    );
    drop(prefetch);
    let res = res.and_then(|totals| {
        w.finish().map_err(|e| Error::io("write and fsync", &tmp, e))?;
        Ok(totals)
    });
    let totals = match res {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| Error::io("rename", out, e))?;
    crate::rss::release_mapped(db.path());
    Ok(DumpSummary {
        version: v,
        state_root: root,
        accounts: totals.accounts,
        slots: totals.slots,
        codes: totals.codes,
    })
}

// ---- external sort ---------------------------------------------------------

/// Sort records: `0x00 ++ code hash` -> code; `0x01 ++ keccak(address)` ->
/// account; `0x01 ++ keccak(address) ++ keccak(slot)` -> slot. Byte order
/// of the keys is the order the import needs (codes, then each account
/// followed by its slots).
type Record = (Vec<u8>, Vec<u8>);

struct RunWriter {
    dir: PathBuf,
    runs: Vec<PathBuf>,
    buf: Vec<Record>,
    bytes: usize,
    limit: usize,
}

impl RunWriter {
    fn push(&mut self, k: Vec<u8>, v: Vec<u8>) -> Result<()> {
        self.bytes += k.len() + v.len() + 48;
        self.buf.push((k, v));
        if self.bytes >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf.sort_unstable();
        let path = self.dir.join(format!("run-{:05}", self.runs.len()));
        let f = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        for (k, v) in self.buf.drain(..) {
            let r = (|| -> std::io::Result<()> {
                w.write_all(&(k.len() as u32).to_le_bytes())?;
                w.write_all(&(v.len() as u32).to_le_bytes())?;
                w.write_all(&k)?;
                w.write_all(&v)
            })();
            r.map_err(|e| Error::io("write", &path, e))?;
        }
        w.flush().map_err(|e| Error::io("write", &path, e))?;
        self.runs.push(path);
        self.bytes = 0;
        Ok(())
    }
}

struct RunReader {
    r: BufReader<File>,
    path: PathBuf,
}

impl RunReader {
    fn next(&mut self) -> Result<Option<Record>> {
        let mut lens = [0u8; 8];
        match self.r.read_exact(&mut lens) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        }
        let kl = u32::from_le_bytes(lens[..4].try_into().expect("4 bytes")) as usize;
        let vl = u32::from_le_bytes(lens[4..].try_into().expect("4 bytes")) as usize;
        let mut k = vec![0u8; kl];
        let mut v = vec![0u8; vl];
        self.r.read_exact(&mut k).map_err(|e| Error::io("read", &self.path, e))?;
        self.r.read_exact(&mut v).map_err(|e| Error::io("read", &self.path, e))?;
        Ok(Some((k, v)))
    }
}

// ---- parsing on worker threads ---------------------------------------------

/// Text of the dump handed to a parsing thread at a time.
const PARSE_BATCH_BYTES: usize = 1 << 20;
/// Parsing threads; the calling thread reads the file and sorts.
const PARSE_THREADS: usize = 2;

/// Whole lines of the dump, the first being line `first_line`.
struct LineBatch {
    first_line: u64,
    text: String,
}

/// The sort records of a [`LineBatch`].
struct ParsedBatch {
    records: Vec<Record>,
    accounts: u64,
    bytes: u64,
}

/// The sort records of one parsed account line: its code (if any), the
/// account, its slots; each state record ends with the line number (to
/// name duplicates after the sort). `address_hash` and `slot_hashes` (one
/// per slot, in order) were hashed by the caller.
fn account_records(a: DumpAccount, address_hash: B256, slot_hashes: &[B256], lineno: u64, out: &mut Vec<Record>) {
    let code_hash = if a.code.is_empty() { KECCAK_EMPTY } else { keccak256(&a.code) };
    let mut k = vec![1u8];
    k.extend_from_slice(address_hash.as_slice());
    let mut v = Vec::with_capacity(96);
    crate::snapshot::format::put_account(
        &mut v,
        &address_hash,
        Some(&a.address),
        &AccountInfo { nonce: a.nonce, balance: a.balance, code_hash },
    );
    v.extend_from_slice(&lineno.to_le_bytes());
    if !a.code.is_empty() {
        let mut ck = vec![0u8];
        ck.extend_from_slice(code_hash.as_slice());
        out.push((ck, a.code));
    }
    debug_assert_eq!(slot_hashes.len(), a.storage.len());
    for ((slot, value), sh) in a.storage.into_iter().zip(slot_hashes) {
        let mut sk = k.clone();
        sk.extend_from_slice(sh.as_slice());
        let mut sv = Vec::with_capacity(72);
        crate::snapshot::format::put_slot(&mut sv, sh, Some(&slot), &value);
        sv.extend_from_slice(&lineno.to_le_bytes());
        out.push((sk, sv));
    }
    out.push((k, v));
}

/// Parses a batch of lines; the addresses and slots of all its accounts are
/// hashed in one batch (`metis_keccak`: eight at a time where the CPU can).
fn parse_batch(file: &Path, batch: &LineBatch) -> Result<ParsedBatch> {
    let mut accounts: Vec<(u64, DumpAccount)> = Vec::new();
    for (i, line) in batch.text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let lineno = batch.first_line + i as u64;
        let a = parse_account_line(t).map_err(|e| Error::bad(file, format!("line {lineno}"), e))?;
        accounts.push((lineno, a));
    }
    let addresses: Vec<&[u8]> = accounts.iter().map(|(_, a)| a.address.as_slice()).collect();
    let address_hashes = metis_keccak::keccak256_all(&addresses);
    let slots: Vec<[u8; 32]> =
        accounts.iter().flat_map(|(_, a)| a.storage.iter().map(|(slot, _)| slot.to_be_bytes::<32>())).collect();
    let slot_hashes = metis_keccak::keccak256_all(&slots);
    let mut parsed =
        ParsedBatch { records: Vec::new(), accounts: accounts.len() as u64, bytes: batch.text.len() as u64 };
    let mut slot_hashes = slot_hashes.as_slice();
    for ((lineno, a), address_hash) in accounts.into_iter().zip(address_hashes) {
        let (these, rest) = slot_hashes.split_at(a.storage.len());
        slot_hashes = rest;
        account_records(a, address_hash, these, lineno, &mut parsed.records);
    }
    Ok(parsed)
}

/// Reads the account lines of the dump (after line 1) in batches, parses
/// them on [`PARSE_THREADS`] threads and hands the results to `take` in
/// input order, so the first bad line in the file is the error reported.
/// Memory: at most two batches per thread in flight.
fn parse_in_order(file: &Path, r: &mut BufReader<File>, take: &mut dyn FnMut(ParsedBatch) -> Result<()>) -> Result<()> {
    std::thread::scope(|scope| {
        let mut to_workers = Vec::with_capacity(PARSE_THREADS);
        let mut from_workers = Vec::with_capacity(PARSE_THREADS);
        for _ in 0..PARSE_THREADS {
            let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel::<LineBatch>(2);
            let (parsed_tx, parsed_rx) = std::sync::mpsc::sync_channel::<Result<ParsedBatch>>(2);
            scope.spawn(move || {
                // Ends when the reader hangs up, or when it stops taking results.
                for batch in batch_rx {
                    if parsed_tx.send(parse_batch(file, &batch)).is_err() {
                        break;
                    }
                }
            });
            to_workers.push(batch_tx);
            from_workers.push(parsed_rx);
        }
        let stopped = || Error::Refused("a dump parsing thread stopped".into());
        let (mut sent, mut taken, mut next_line, mut eof) = (0usize, 0usize, 2u64, false);
        loop {
            while !eof && sent - taken < 2 * PARSE_THREADS {
                let mut text = String::with_capacity(PARSE_BATCH_BYTES + 4096);
                let first_line = next_line;
                while text.len() < PARSE_BATCH_BYTES {
                    let n = r.read_line(&mut text).map_err(|e| Error::io("read", file, e))?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    next_line += 1;
                }
                if text.is_empty() {
                    break;
                }
                if to_workers[sent % PARSE_THREADS].send(LineBatch { first_line, text }).is_err() {
                    return Err(stopped());
                }
                sent += 1;
            }
            if taken == sent {
                return Ok(());
            }
            let parsed = from_workers[taken % PARSE_THREADS].recv().map_err(|_| stopped())??;
            taken += 1;
            take(parsed)?;
        }
    })
}

/// Settings of [`init_state`].
#[derive(Clone)]
pub struct InitStateOptions {
    /// Options of the staging database.
    pub db: Options,
    /// Version the state becomes (default 0).
    pub version: u64,
    /// Bytes of records sorted in memory per run.
    pub sort_bytes: usize,
    /// Entry bytes per committed batch.
    pub batch_bytes: u64,
}

impl Default for InitStateOptions {
    fn default() -> Self {
        InitStateOptions { db: Options::default(), version: 0, sort_bytes: 128 << 20, batch_bytes: 32 << 20 }
    }
}

/// Creates a database in `target` from the JSONL dump `file` (see the module docs).
/// `progress` gets (input bytes read, input bytes total, accounts).
pub fn init_state(
    target: &Path,
    file: &Path,
    opts: &InitStateOptions,
    progress: &mut dyn FnMut(u64, u64, u64),
) -> Result<DumpSummary> {
    let f = File::open(file).map_err(|e| Error::io("open", file, e))?;
    let total = f.metadata().map_err(|e| Error::io("stat", file, e))?.len();
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| Error::io("read", file, e))?;
    let root = parse_root_line(line.trim()).map_err(|e| Error::bad(file, "line 1", e))?;
    check_target(target, false)?;
    let staging = staging_dir(target)?;
    if staging.exists() {
        return Err(Error::Refused(format!(
            "{} holds a staged import; finish it (snapshot import --resume) or delete it first",
            staging.display()
        )));
    }
    let res = init_staged(&staging, file, root, &mut r, total, opts, progress);
    match res {
        Ok(s) => {
            let _ = std::fs::remove_dir_all(staging.join("sort"));
            install(&staging, target, false)?;
            Ok(s)
        }
        Err(e) => {
            // A dump import has no resume: drop the staging dir.
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn init_staged(
    staging: &Path,
    file: &Path,
    root: B256,
    r: &mut BufReader<File>,
    total: u64,
    opts: &InitStateOptions,
    progress: &mut dyn FnMut(u64, u64, u64),
) -> Result<DumpSummary> {
    let sort_dir = staging.join("sort");
    std::fs::create_dir_all(&sort_dir).map_err(|e| Error::io("create dir", &sort_dir, e))?;
    let mut runs = RunWriter { dir: sort_dir, runs: Vec::new(), buf: Vec::new(), bytes: 0, limit: opts.sort_bytes };
    let (mut read, mut accounts) = (0u64, 0u64);
    parse_in_order(file, r, &mut |parsed| {
        read += parsed.bytes;
        accounts += parsed.accounts;
        for (k, v) in parsed.records {
            runs.push(k, v)?;
        }
        progress(read / 2, total, accounts);
        Ok(())
    })?;
    runs.spill()?;
    // Merge the runs into the staging database.
    let mut readers = Vec::with_capacity(runs.runs.len());
    for p in &runs.runs {
        let f = File::open(p).map_err(|e| Error::io("open", p, e))?;
        readers.push(RunReader { r: BufReader::with_capacity(256 << 10, f), path: p.clone() });
    }
    let db = open_staging(staging, &opts.db)?;
    // The merge (checking order and duplicates) feeds the same stages as a
    // snapshot import. Progress: the first half of the bar was the parsing.
    struct Hooks<'a> {
        progress: &'a mut dyn FnMut(u64, u64, u64),
        total: u64,
    }
    impl LoadHooks<Merged> for Hooks<'_> {
        fn applied(&mut self, m: &Merged) {
            (self.progress)(self.total / 2 + m.bytes.min(self.total) / 2, self.total, m.totals.accounts);
        }
    }
    let loaded = load_staged(
        &db,
        opts.version,
        Tries::new(),
        opts.batch_bytes,
        (root, &format!("line 1 of {}", file.display())),
        move |tx| merge_runs(readers, file, tx),
        &mut Hooks { progress: &mut *progress, total },
    )?;
    let summary = DumpSummary { version: opts.version, state_root: root, ..loaded.meta.totals };
    drop(db);
    progress(total, total, summary.accounts);
    Ok(summary)
}

/// Where the merge stands after a batch of entries.
struct Merged {
    /// Record bytes merged so far.
    bytes: u64,
    /// Accounts, slots and codes merged so far (version and root left for the caller).
    totals: DumpSummary,
}

/// Entries per batch of the merge.
const MERGED_BATCH: usize = 4096;

/// Merges the sorted runs into entries in import order (codes, then each
/// account followed by its slots), dropping repeated codes and refusing
/// an account or slot that appears twice (naming both lines).
fn merge_runs(mut readers: Vec<RunReader>, file: &Path, tx: std::sync::mpsc::SyncSender<Result<EntryBatch<Merged>>>) {
    let res = (|| -> Result<()> {
        // (key, run, value), smallest key first.
        type Head = std::cmp::Reverse<(Vec<u8>, usize, Vec<u8>)>;
        let mut heap: BinaryHeap<Head> = BinaryHeap::new();
        for (i, rd) in readers.iter_mut().enumerate() {
            if let Some((k, v)) = rd.next()? {
                heap.push(std::cmp::Reverse((k, i, v)));
            }
        }
        let mut last: Option<(Vec<u8>, u64)> = None;
        let mut totals = DumpSummary::default();
        let mut merged = 0u64;
        let mut entries = Vec::with_capacity(MERGED_BATCH);
        while let Some(std::cmp::Reverse((k, i, v))) = heap.pop() {
            if let Some(next) = readers[i].next()? {
                heap.push(std::cmp::Reverse((next.0, i, next.1)));
            }
            merged += (k.len() + v.len()) as u64;
            let dup = last.as_ref().is_some_and(|(lk, _)| *lk == k);
            if k[0] == 0 {
                // Identical code of several accounts: written once.
                if !dup {
                    totals.codes += 1;
                    entries.push(Entry::Code { hash: B256::from_slice(&k[1..33]), code: v });
                }
                last = Some((k, 0));
            } else {
                // Every state record ends with the line number it came from.
                let (payload, l) = v.split_at(v.len().saturating_sub(8));
                let line_of = u64::from_le_bytes(
                    l.try_into().map_err(|_| Error::Refused("internal sort record is short".into()))?,
                );
                if dup {
                    let first = last.as_ref().map_or(0, |(_, l)| *l);
                    let what = if k.len() == 33 { "account" } else { "storage slot" };
                    return Err(Error::bad(
                        file,
                        format!("line {line_of}"),
                        format!("{what} {} appears twice (first at line {first})", hex::encode(&k[1..])),
                    ));
                }
                let e = EntryDecoder::new(payload)
                    .next()
                    .map_err(|r| Error::Refused(format!("internal sort record: {r}")))?
                    .ok_or_else(|| Error::Refused("internal sort record is empty".into()))?;
                match e {
                    Entry::Account { .. } => totals.accounts += 1,
                    Entry::Slot { .. } => totals.slots += 1,
                    Entry::Code { .. } => {}
                }
                entries.push(e);
                last = Some((k, line_of));
            }
            if entries.len() >= MERGED_BATCH {
                let batch = std::mem::replace(&mut entries, Vec::with_capacity(MERGED_BATCH));
                let meta = Merged { bytes: merged, totals: totals.clone() };
                if tx.send(Ok(EntryBatch { entries: batch, leaf_hashes: Vec::new(), meta, last: false })).is_err() {
                    return Ok(());
                }
            }
        }
        let meta = Merged { bytes: merged, totals };
        let _ = tx.send(Ok(EntryBatch { entries, leaf_hashes: Vec::new(), meta, last: true }));
        Ok(())
    })();
    if let Err(e) = res {
        let _ = tx.send(Err(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reth_lines() {
        assert_eq!(
            parse_root_line(r#"{"root":"0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"}"#)
                .unwrap(),
            metis_trie::EMPTY_ROOT_HASH
        );
        let a = parse_account_line(
            r#"{"balance":"0x10","nonce":"0x2","code":"0x6000","storage":{"0x01":"0x22","0x02":"0x00"},"address":"0x0000000000000000000000000000000000000001","secretKey":"0x01"}"#,
        )
        .unwrap();
        assert_eq!(a.balance, U256::from(16u64));
        assert_eq!(a.nonce, 2);
        assert_eq!(a.code, vec![0x60, 0]);
        assert_eq!(a.storage, vec![(U256::from(1u64), U256::from(0x22u64))]);
        let b = parse_account_line(
            r#"{"balance":"1000","nonce":7,"address":"0x00000000000000000000000000000000000000aa"}"#,
        )
        .unwrap();
        assert_eq!((b.balance, b.nonce), (U256::from(1000u64), 7));
        assert!(
            parse_account_line(r#"{"nonce":"0x1","address":"0x0000000000000000000000000000000000000001"}"#).is_err()
        );
        assert!(parse_account_line(r#"{"balance":"0x1","address":"0x01"}"#).is_err());
    }

    #[test]
    fn hex_strings() {
        assert_eq!(hex_bytes("0x0a0B", 2).unwrap(), vec![0x0a, 0x0b]);
        assert_eq!(hex_bytes("abc", 2).unwrap(), vec![0x0a, 0xbc], "odd length");
        assert_eq!(hex_bytes("0X", 2).unwrap(), Vec::<u8>::new());
        for bad in ["0x0x12", "0xzz", "0x12 ", "0x123456"] {
            assert!(hex_bytes(bad, 2).is_err(), "{bad:?}");
        }
    }
}
