//! `snapshot export`: one version of a database to a snapshot file.
//!
//! The export reads a [`metisdb::Snapshot`], which pins its version: the
//! node can keep committing while it runs. The state is split into units
//! (the codes, then account-hash ranges); [`WALKERS`] threads walk units in
//! turn and compress their chunks, and the calling thread writes the units'
//! chunks in key order, numbering and checksumming the frames. A walker
//! starts a unit at most `Board::AHEAD` units beyond the one being
//! written and holds at most a few chunks per unit, so memory stays bounded
//! whatever the state size. The file is written under a temporary name and
//! renamed into place when complete, around the page cache
//! ([`DirectOut`]).

use super::format::{put_account, put_code, put_slot, ChunkKind, Footer, Frame, Header};
use crate::direct_io::DirectOut;
use crate::error::{DbContext, Error, Result};
use crate::walk::{walk_codes, walk_state, StateVisitor, WalkOptions, WalkTotals};
use alloy_primitives::{Address, B256, U256};
use metisdb::state::StoredAccount;
use metisdb::Db;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// The zstd level of an export. A state is mostly 32-byte hashes, which do
/// not compress: at 10M accounts level 1 made 999 MB of about 1.3 GB, level -5
/// 1,004 MB, and the compressor's CPU fell by a third (user CPU of the
/// export 6.3-6.7 -> 3.9-4.7 s, wall 6.1-6.5 -> 4.7-6.0 s, three cold runs
/// each); decompressing in an import costs the same at either level.
pub const DEFAULT_LEVEL: i32 = -5;

/// Export settings.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// zstd level ([`DEFAULT_LEVEL`] unless set).
    pub level: i32,
    /// Uncompressed bytes per chunk.
    pub chunk_bytes: usize,
    /// Chain id for the header (default: from the stored genesis, else 0).
    pub chain_id: Option<u64>,
    /// Block hash for the header (default: from the version record, else zero).
    pub block_hash: Option<B256>,
    /// Accounts per unit of the parallel walk (see [`ACCOUNTS_PER_UNIT`]).
    pub accounts_per_unit: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            level: DEFAULT_LEVEL,
            chunk_bytes: 1 << 20,
            chain_id: None,
            block_hash: None,
            accounts_per_unit: ACCOUNTS_PER_UNIT,
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportSummary {
    /// The header written.
    pub header: Header,
    /// The footer written.
    pub footer: Footer,
    /// Accounts without a recorded address preimage (exported by hash only).
    pub missing_address_preimages: u64,
    /// Slots without a recorded slot preimage.
    pub missing_slot_preimages: u64,
}

/// Progress of an export: (file bytes written, accounts done).
pub type ExportProgress<'a> = &'a mut dyn FnMut(u64, u64);

/// Block number and hash as the node records them in a version record's
/// caller bytes: number (u64 big-endian) then hash (32 bytes).
pub fn block_of_extra(extra: &[u8]) -> Option<(u64, B256)> {
    (extra.len() == 40)
        .then(|| (u64::from_be_bytes(extra[..8].try_into().expect("8 bytes")), B256::from_slice(&extra[8..])))
}

/// The chain id recorded by `metis init` (from the stored genesis file).
pub fn stored_chain_id(snap: &metisdb::Snapshot) -> Option<u64> {
    let raw = snap.get(metisdb::tables::METADATA, crate::GENESIS_KEY).ok()??;
    metisdb::state::genesis::parse(raw).ok()?.chain_id
}

/// Accounts per unit of the walk: the state is split into units of about
/// this many accounts (by key prefix), walked by [`WALKERS`] threads and
/// written in key order. Each unit ends with a chunk of its own, so a
/// unit should hold many chunks' worth of entries.
pub const ACCOUNTS_PER_UNIT: u64 = 1 << 16;
/// Threads walking units of the state.
pub const WALKERS: usize = 2;
/// Compressed chunks a unit's walker may hold ahead of the writer: the
/// export buffers at most `Board::AHEAD` units x this many chunks.
const CHUNKS_AHEAD: usize = 8;

/// A part of the snapshot walked by one thread: the codes, or the accounts
/// with keys in `start..end`.
#[derive(Clone, Debug)]
pub(crate) enum Unit {
    Codes,
    State { start: Vec<u8>, end: Option<Vec<u8>> },
}

/// The units of a state of `accounts` accounts: the codes, then account
/// ranges split at two-byte key prefixes.
pub(crate) fn units(accounts: u64, per_unit: u64) -> Vec<Unit> {
    let parts = (accounts / per_unit.max(1)).clamp(1, 1 << 16);
    let bound = |i: u64| (i < parts).then(|| ((i << 16) / parts) as u16);
    let mut v = vec![Unit::Codes];
    for i in 0..parts {
        let start = bound(i).filter(|&b| b > 0).map(|b| b.to_be_bytes().to_vec()).unwrap_or_default();
        v.push(Unit::State { start, end: bound(i + 1).map(|b| b.to_be_bytes().to_vec()) });
    }
    v
}

/// A walker's error when the writer stopped first (the writer's error says why).
pub(crate) const WRITER_STOPPED: &str = "the writer stopped";

/// True for a walker's [`WRITER_STOPPED`] error, as a refusal or as the
/// I/O error of a sink that hands bytes to the writer.
fn writer_stopped(r: &Result<()>) -> bool {
    match r {
        Err(Error::Refused(m)) => m == WRITER_STOPPED,
        Err(Error::Io { source, .. }) => source.to_string() == WRITER_STOPPED,
        _ => false,
    }
}

/// Runs `walk` on up to [`WALKERS`] threads (one per unit at most), taking
/// units from `board`, and `write` on the calling thread; each side stops
/// the other when it fails or panics. The first walker error is returned
/// (it explains the others' and the writer's "a walker stopped"), else the
/// writer's result. `what` names the walkers in a panic's error.
pub(crate) fn walk_and_write<M: Send, T>(
    board: &Board<M>,
    units: usize,
    what: &str,
    walk: impl Fn() -> Result<()> + Sync,
    write: impl FnOnce() -> Result<T>,
) -> Result<T> {
    std::thread::scope(|s| {
        let walkers: Vec<_> = (0..WALKERS.min(units))
            .map(|_| {
                s.spawn(|| {
                    // Stops the board if the walk fails or panics, so the writer does not wait for it.
                    let guard = StopOnDrop(board);
                    let r = walk();
                    if r.is_ok() {
                        std::mem::forget(guard);
                    }
                    r
                })
            })
            .collect();
        let written = {
            // Once the writer is done (or unwinds), walkers start nothing more.
            let _stop = StopOnDrop(board);
            write()
        };
        let mut walked = Ok(());
        for w in walkers {
            let r = w.join().map_err(|_| Error::Refused(format!("a {what} walker panicked")))?;
            if walked.is_ok() && !writer_stopped(&r) {
                walked = r;
            }
        }
        walked?;
        written
    })
}

/// What a walker hands the writer for one unit.
enum Out {
    Chunk { kind: ChunkKind, compressed: Vec<u8>, raw_len: usize, entries: u32 },
    End(Footer, WalkTotals),
}

/// Hand-over of units between walkers and the writer, whose messages are `M`.
pub(crate) struct Board<M> {
    state: std::sync::Mutex<BoardState<M>>,
    changed: std::sync::Condvar,
}

impl<M> Default for Board<M> {
    fn default() -> Self {
        Board { state: std::sync::Mutex::new(BoardState::default()), changed: std::sync::Condvar::new() }
    }
}

struct BoardState<M> {
    /// Receivers of the units started and not yet taken by the writer.
    started: std::collections::HashMap<usize, Receiver<M>>,
    /// The next unit to start.
    next: usize,
    /// The unit the writer writes.
    writing: usize,
    stopped: bool,
}

impl<M> Default for BoardState<M> {
    fn default() -> Self {
        BoardState { started: std::collections::HashMap::new(), next: 0, writing: 0, stopped: false }
    }
}

impl<M> Board<M> {
    /// Units a walker may start beyond the one being written: bounds the
    /// output held in memory when one unit takes long (a large storage).
    const AHEAD: usize = WALKERS + 1;

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState<M>> {
        // A panicking walker or writer fails the export anyway (join), so a
        // poisoned lock's state is still fine to read.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the next unit (below `units`) with the receiver `rx`; waits
    /// while it is too far ahead of the writer. `None` when every unit is
    /// started or the export stopped.
    pub(crate) fn start(&self, units: usize, rx: Receiver<M>) -> Option<usize> {
        let mut g = self.lock();
        loop {
            if g.stopped || g.next >= units {
                return None;
            }
            if g.next < g.writing + Self::AHEAD {
                let u = g.next;
                g.next += 1;
                g.started.insert(u, rx);
                self.changed.notify_all();
                return Some(u);
            }
            g = self.changed.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The receiver of `unit` once a walker started it; `None` after [`Board::stop`].
    pub(crate) fn take(&self, unit: usize) -> Option<Receiver<M>> {
        let mut g = self.lock();
        g.writing = unit;
        self.changed.notify_all();
        loop {
            if g.stopped {
                return None;
            }
            if let Some(rx) = g.started.remove(&unit) {
                return Some(rx);
            }
            g = self.changed.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Ends the export: walkers start no more units, the writer takes no
    /// more, and dropping the receivers releases walkers blocked on them.
    fn stop(&self) {
        let mut g = self.lock();
        g.stopped = true;
        g.started.clear();
        self.changed.notify_all();
    }
}

/// Calls [`Board::stop`] when dropped.
struct StopOnDrop<'a, M>(&'a Board<M>);

impl<M> Drop for StopOnDrop<'_, M> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Builds the chunks of one unit, compressed, and sends them to the writer.
struct Chunker {
    tx: SyncSender<Out>,
    cctx: zstd::bulk::Compressor<'static>,
    buf: Vec<u8>,
    entries: u32,
    kind: ChunkKind,
    chunk_bytes: usize,
    footer: Footer,
    path: PathBuf,
}

impl Chunker {
    fn flush(&mut self) -> Result<()> {
        if self.entries == 0 {
            return Ok(());
        }
        let compressed = self.cctx.compress(&self.buf).map_err(|e| Error::io("zstd compress", &self.path, e))?;
        self.footer.raw_bytes += self.buf.len() as u64;
        let out = Out::Chunk { kind: self.kind, compressed, raw_len: self.buf.len(), entries: self.entries };
        self.tx.send(out).map_err(|_| Error::Refused(WRITER_STOPPED.into()))?;
        self.buf.clear();
        self.entries = 0;
        Ok(())
    }

    fn entry_done(&mut self) -> Result<()> {
        self.entries += 1;
        if self.buf.len() >= self.chunk_bytes {
            self.flush()?;
        }
        Ok(())
    }
}

impl StateVisitor for Chunker {
    fn account(&mut self, hash: &B256, address: Option<&Address>, a: &StoredAccount) -> Result<()> {
        put_account(&mut self.buf, hash, address, &a.info);
        self.footer.accounts += 1;
        self.entry_done()
    }
    fn slot(&mut self, hash: &B256, slot: Option<&U256>, value: &U256) -> Result<()> {
        put_slot(&mut self.buf, hash, slot, value);
        self.footer.slots += 1;
        self.entry_done()
    }
}

/// Walks units in turn until none is left or the export stops.
fn walker(
    snap: &metisdb::Snapshot,
    units: &[Unit],
    board: &Board<Out>,
    opts: &ExportOptions,
    path: &Path,
) -> Result<()> {
    let mut cctx = zstd::bulk::Compressor::new(opts.level).map_err(|e| Error::io("zstd init", path, e))?;
    loop {
        let (tx, rx) = sync_channel::<Out>(CHUNKS_AHEAD);
        let Some(u) = board.start(units.len(), rx) else { return Ok(()) };
        let unit = &units[u];
        let mut ch = Chunker {
            tx,
            cctx,
            buf: Vec::with_capacity(opts.chunk_bytes + 4096),
            entries: 0,
            kind: ChunkKind::Codes,
            chunk_bytes: opts.chunk_bytes,
            footer: Footer::default(),
            path: path.to_path_buf(),
        };
        let mut totals = WalkTotals::default();
        match unit {
            Unit::Codes => walk_codes(snap, &mut totals, |h, code| {
                put_code(&mut ch.buf, h, code);
                ch.footer.codes += 1;
                ch.entry_done()
            })?,
            Unit::State { start, end } => {
                ch.kind = ChunkKind::State;
                let mut tick = |_: &WalkTotals| {};
                let o = WalkOptions { start, end: end.as_deref(), ..WalkOptions::all(true, &mut tick) };
                walk_state(snap, o, &mut totals, &mut ch)?;
            }
        }
        ch.flush()?;
        ch.tx.send(Out::End(ch.footer, totals)).map_err(|_| Error::Refused(WRITER_STOPPED.into()))?;
        cctx = ch.cctx;
    }
}

/// Writes the units' chunks in unit order; returns the footer (chunks,
/// totals, file length) and the walks' totals.
fn write_units(
    file: &mut DirectOut,
    path: &Path,
    units: usize,
    board: &Board<Out>,
    progress: ExportProgress<'_>,
) -> Result<(Footer, WalkTotals)> {
    let mut footer = Footer::default();
    let mut totals = WalkTotals::default();
    let mut written = super::format::HEADER_LEN as u64;
    let stopped = || Error::Refused("a snapshot walker stopped".into());
    for u in 0..units {
        let rx = board.take(u).ok_or_else(stopped)?;
        loop {
            match rx.recv().map_err(|_| stopped())? {
                Out::Chunk { kind, compressed, raw_len, entries } => {
                    let frame = Frame::new(kind, footer.chunks, &compressed, raw_len, entries);
                    file.write_all(&frame.encode()).map_err(|e| Error::io("write", path, e))?;
                    file.write_all(&compressed).map_err(|e| Error::io("write", path, e))?;
                    written += (super::format::FRAME_LEN + compressed.len()) as u64;
                    footer.chunks += 1;
                }
                Out::End(f, t) => {
                    footer.accounts += f.accounts;
                    footer.slots += f.slots;
                    footer.codes += f.codes;
                    footer.raw_bytes += f.raw_bytes;
                    totals.add(&t);
                    break;
                }
            }
            progress(written, footer.accounts);
        }
        progress(written, footer.accounts);
    }
    footer.file_len = written + super::format::FOOTER_LEN as u64;
    file.write_all(&footer.encode()).map_err(|e| Error::io("write", path, e))?;
    Ok((footer, totals))
}

/// Writes version `version` (default: the latest) of `db` to `out`.
pub fn export(
    db: &Db,
    version: Option<u64>,
    out: &Path,
    opts: &ExportOptions,
    progress: ExportProgress<'_>,
) -> Result<ExportSummary> {
    let snap = db.snapshot(version).ctx(|| format!("open version {version:?} of {}", db.path().display()))?;
    let v = snap.version().ok_or_else(|| Error::Refused(format!("{} holds no version yet", db.path().display())))?;
    let state_root = B256::from(snap.state_root().ctx(|| format!("read the state root of version {v}"))?);
    let rec = snap.version_record(v).ctx(|| format!("read the record of version {v}"))?;
    let block_hash = opts
        .block_hash
        .or_else(|| rec.as_ref().and_then(|r| block_of_extra(&r.extra)).filter(|(n, _)| *n == v).map(|(_, h)| h))
        .unwrap_or_default();
    let header = Header {
        chain_id: opts.chain_id.or_else(|| stored_chain_id(&snap)).unwrap_or(0),
        block_number: v,
        block_hash,
        state_root,
        created_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let name = out.file_name().ok_or_else(|| Error::Refused(format!("{} is not a file name", out.display())))?;
    let tmp = out.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let mut bw = DirectOut::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    bw.write_all(&header.encode()).map_err(|e| Error::io("write", &tmp, e))?;
    let prefetch = crate::rss::Prefetch::for_state_scan(db, &snap);
    let units = units(snap.latest_entries(metisdb::tables::ACCOUNTS), opts.accounts_per_unit);
    let board = Board::<Out>::default();
    let res = walk_and_write(
        &board,
        units.len(),
        "snapshot",
        || walker(&snap, &units, &board, opts, &tmp),
        || write_units(&mut bw, &tmp, units.len(), &board, progress),
    );
    drop(prefetch);
    let res = res.and_then(|(footer, totals)| {
        bw.finish().map_err(|e| Error::io("write and fsync", &tmp, e))?;
        Ok((footer, totals))
    });
    let (footer, totals) = match res {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| Error::io("rename", out, e))?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    crate::rss::release_mapped(db.path());
    Ok(ExportSummary {
        header,
        footer,
        missing_address_preimages: totals.missing_address_preimages,
        missing_slot_preimages: totals.missing_slot_preimages,
    })
}
