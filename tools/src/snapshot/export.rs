//! `snapshot export`: one version of a database to a snapshot file.
//!
//! The export reads a [`metisdb::Snapshot`], which pins its version: the
//! node can keep committing while it runs. The walk over the tables runs on
//! the calling thread; compression, checksums and writes run on a second
//! thread, with at most two chunks in flight between them. The file is
//! written under a temporary name and renamed into place when complete.

use super::format::{put_account, put_code, put_slot, ChunkKind, Footer, Frame, Header};
use crate::error::{DbContext, Error, Result};
use crate::walk::{walk_codes, walk_state, StateVisitor, WalkOptions, WalkTotals};
use alloy_primitives::{Address, B256, U256};
use metisdb::state::StoredAccount;
use metisdb::Db;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Export settings.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// zstd level (1 = fastest).
    pub level: i32,
    /// Uncompressed bytes per chunk.
    pub chunk_bytes: usize,
    /// Chain id for the header (default: from the stored genesis, else 0).
    pub chain_id: Option<u64>,
    /// Block hash for the header (default: from the version record, else zero).
    pub block_hash: Option<B256>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { level: 1, chunk_bytes: 1 << 20, chain_id: None, block_hash: None }
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

enum Job {
    Chunk(ChunkKind, Vec<u8>, u32),
    End(Footer),
}

struct Writer {
    path: PathBuf,
    file: std::io::BufWriter<File>,
    level: i32,
    written: u64,
    seq: u64,
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>, done: SyncSender<u64>) -> Result<(u64, u64)> {
        let mut cctx = zstd::bulk::Compressor::new(self.level).map_err(|e| Error::io("zstd init", &self.path, e))?;
        let mut footer = None;
        for job in rx {
            match job {
                Job::Chunk(kind, raw, entries) => {
                    let c = cctx.compress(&raw).map_err(|e| Error::io("zstd compress", &self.path, e))?;
                    let frame = Frame::new(kind, self.seq, &c, raw.len(), entries);
                    self.file.write_all(&frame.encode()).map_err(|e| Error::io("write", &self.path, e))?;
                    self.file.write_all(&c).map_err(|e| Error::io("write", &self.path, e))?;
                    self.written += (super::format::FRAME_LEN + c.len()) as u64;
                    self.seq += 1;
                    let _ = done.try_send(self.written);
                }
                Job::End(mut f) => {
                    f.chunks = self.seq;
                    f.file_len = self.written + super::format::FOOTER_LEN as u64;
                    self.file.write_all(&f.encode()).map_err(|e| Error::io("write", &self.path, e))?;
                    self.written = f.file_len;
                    footer = Some(f);
                }
            }
        }
        let f = footer.ok_or_else(|| Error::Refused("the export stopped before its end".into()))?;
        let file = self.file.into_inner().map_err(|e| Error::io("write", &self.path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("fsync", &self.path, e))?;
        Ok((f.chunks, self.written))
    }
}

/// Builds chunk payloads from the walk and hands them to the writer thread.
struct Chunker<'a> {
    tx: SyncSender<Job>,
    buf: Vec<u8>,
    entries: u32,
    kind: ChunkKind,
    chunk_bytes: usize,
    footer: Footer,
    written: &'a std::sync::atomic::AtomicU64,
    progress: ExportProgress<'a>,
    done_rx: Receiver<u64>,
}

impl Chunker<'_> {
    fn flush(&mut self) -> Result<()> {
        if self.entries == 0 {
            return Ok(());
        }
        let raw = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk_bytes + 4096));
        self.footer.raw_bytes += raw.len() as u64;
        self.tx
            .send(Job::Chunk(self.kind, raw, self.entries))
            .map_err(|_| Error::Refused("the snapshot writer stopped".into()))?;
        self.entries = 0;
        while let Ok(w) = self.done_rx.try_recv() {
            self.written.store(w, std::sync::atomic::Ordering::Relaxed);
        }
        (self.progress)(self.written.load(std::sync::atomic::Ordering::Relaxed), self.footer.accounts);
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

impl StateVisitor for Chunker<'_> {
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
    let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let mut bw = std::io::BufWriter::with_capacity(4 << 20, file);
    bw.write_all(&header.encode()).map_err(|e| Error::io("write", &tmp, e))?;
    let writer =
        Writer { path: tmp.clone(), file: bw, level: opts.level, written: super::format::HEADER_LEN as u64, seq: 0 };
    let prefetch = crate::rss::Prefetch::start(db.path());
    let (tx, rx) = sync_channel::<Job>(2);
    let (done_tx, done_rx) = sync_channel::<u64>(1024);
    let written = std::sync::atomic::AtomicU64::new(0);
    let res = std::thread::scope(|s| -> Result<(Footer, WalkTotals, u64)> {
        let handle = s.spawn(move || writer.run(rx, done_tx));
        let walked = (|| -> Result<(Footer, WalkTotals)> {
            let mut ch = Chunker {
                tx,
                buf: Vec::with_capacity(opts.chunk_bytes + 4096),
                entries: 0,
                kind: ChunkKind::Codes,
                chunk_bytes: opts.chunk_bytes,
                footer: Footer::default(),
                written: &written,
                progress,
                done_rx,
            };
            let mut totals = WalkTotals::default();
            walk_codes(&snap, &mut totals, Some(db.path()), |h, code| {
                put_code(&mut ch.buf, h, code);
                ch.footer.codes += 1;
                ch.entry_done()
            })?;
            ch.flush()?;
            ch.kind = ChunkKind::State;
            let mut tick = |_: &WalkTotals| {};
            walk_state(
                &snap,
                WalkOptions { preimages: true, tick: &mut tick, release: Some(db.path()) },
                &mut totals,
                &mut ch,
            )?;
            ch.flush()?;
            let footer = ch.footer;
            ch.tx.send(Job::End(footer)).map_err(|_| Error::Refused("the snapshot writer stopped".into()))?;
            Ok((footer, totals))
        })();
        let written = handle.join().map_err(|_| Error::Refused("the snapshot writer panicked".into()))?;
        // A writer error explains a walk error ("writer stopped"), so it wins.
        let (chunks, bytes) = written?;
        let (mut footer, totals) = walked?;
        footer.chunks = chunks;
        Ok((footer, totals, bytes))
    });
    drop(prefetch);
    let (mut footer, totals, bytes) = match res {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    footer.file_len = bytes;
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
