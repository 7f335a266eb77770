//! Importing state into a new database through a staging database.
//!
//! The state is written into a staging data dir next to the target
//! (`<parent>/.<name>.import`, same filesystem), in batches bounded by
//! bytes, so memory is one batch of dirty pages whatever the state size.
//! Both imports are bulk loads ([`crate::snapshot::load::load_staged`]):
//! a snapshot is in key order already, a JSONL dump (`init-state`) is
//! sorted first; the tries are computed in one streaming pass on a hashing
//! thread and the batches are plain table writes. Every batch is committed
//! as the same version label with [`metisdb::WriteTxn::rebase`], so the
//! staging database never holds history. A snapshot import records its
//! position in the file (the last completed chunk) in the metadata table in
//! the same commit as the batch, so `--resume` continues from the last
//! durable batch after an interruption (batches are durable at flush
//! points, every second, not each on its own).
//!
//! The last batch computes the root and compares it with the stated one
//! before committing. Only then is the staging data file renamed into the
//! target dir (after taking the target's lock), and the directory synced.
//! Until that rename the target dir is never touched; after a failure it
//! is exactly as it was.

use crate::error::{DbContext, Error, Result};
use crate::snapshot::format::{Entry, Header, OrderCheck};
use crate::snapshot::load::{hash_leaves_ahead, load_staged, open_staging, EntryBatch, LoadHooks, Tries};
use crate::snapshot::reader::{Position, SnapshotReader};
use crate::snapshot::{check_totals, decode_chunk, Totals};
use alloy_primitives::B256;
use metisdb::tables::METADATA;
use metisdb::Options;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Metadata key of the import position in a staging database.
pub const PROGRESS_KEY: &[u8] = b"import/progress";
/// Metadata key of the header of the snapshot a database was imported from.
pub const SOURCE_KEY: &[u8] = b"import/source";

/// Import settings.
#[derive(Clone)]
pub struct ImportOptions {
    /// Options of the staging database (tests inject storage faults here).
    pub db: Options,
    /// Entry bytes per batch (one commit each).
    pub batch_bytes: u64,
    /// Continue an interrupted import from its last completed batch.
    pub resume: bool,
    /// Replace a database the target already holds.
    pub overwrite: bool,
    /// Hashing threads (default: available cores).
    pub threads: Option<usize>,
    /// Stop after this many batches, as if interrupted (tests).
    pub stop_after_batches: Option<u64>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            db: Options::default(),
            batch_bytes: 32 << 20,
            resume: false,
            overwrite: false,
            threads: None,
            stop_after_batches: None,
        }
    }
}

/// What an import did.
#[derive(Clone, Debug)]
pub struct ImportSummary {
    /// The version the target now holds.
    pub version: u64,
    /// Its state root (equal to the stated one).
    pub state_root: B256,
    /// Entries imported.
    pub totals: Totals,
    /// Chunk the import resumed at, if it resumed.
    pub resumed_at_chunk: Option<u64>,
    /// Batches committed by this run.
    pub batches: u64,
}

/// Progress of an import: (input bytes done, input bytes total, entries done).
pub type ImportProgress<'a> = &'a mut dyn FnMut(u64, u64, u64);

/// The staging data dir of an import into `target`: a hidden sibling.
pub fn staging_dir(target: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(target).map_err(|e| Error::io("resolve", target, e))?;
    let name = abs
        .file_name()
        .ok_or_else(|| Error::Refused(format!("{} has no directory name to stage next to", target.display())))?;
    Ok(abs.with_file_name(format!(".{}.import", name.to_string_lossy())))
}

/// Fails when the target cannot receive an import: it holds a database
/// (and `overwrite` is off) or a running process holds its lock.
pub fn check_target(target: &Path, overwrite: bool) -> Result<()> {
    let data = target.join(metisdb::DATA_FILE);
    if data.exists() && !overwrite {
        return Err(Error::Refused(format!(
            "{} already holds a database ({}); an import only creates new ones (--overwrite replaces it)",
            target.display(),
            data.display()
        )));
    }
    let lock = target.join(metisdb::LOCK_FILE);
    if lock.exists() {
        let f = OpenOptions::new().read(true).write(true).open(&lock).map_err(|e| Error::io("open", &lock, e))?;
        if let Err(std::fs::TryLockError::WouldBlock) = f.try_lock() {
            return Err(Error::Refused(format!(
                "{} is in use by a running process (lock {})",
                target.display(),
                lock.display()
            )));
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync dir", dir, e))
}

/// Moves the staging data file into `target` atomically, under the
/// target's lock; on failure the target is put back as it was.
pub fn install(staging: &Path, target: &Path, overwrite: bool) -> Result<()> {
    let created_dir = !target.exists();
    let lock_path = target.join(metisdb::LOCK_FILE);
    let created_lock = !lock_path.exists();
    let undo = || {
        if created_dir {
            let _ = std::fs::remove_dir_all(target);
        } else if created_lock {
            let _ = std::fs::remove_file(&lock_path);
        }
    };
    let res = (|| -> Result<()> {
        std::fs::create_dir_all(target).map_err(|e| Error::io("create dir", target, e))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Refused(format!("{} is in use by a running process", target.display())))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path, e)),
        }
        let dest = target.join(metisdb::DATA_FILE);
        if dest.exists() && !overwrite {
            return Err(Error::Refused(format!("{} already holds a database", target.display())));
        }
        let src = staging.join(metisdb::DATA_FILE);
        std::fs::rename(&src, &dest).map_err(|e| Error::io("rename into place", &dest, e))?;
        sync_dir(target)?;
        drop(lock);
        Ok(())
    })();
    if res.is_err() {
        undo();
        return res;
    }
    std::fs::remove_dir_all(staging).map_err(|e| Error::io("remove", staging, e))?;
    if let Some(p) = staging.parent() {
        let _ = sync_dir(p);
    }
    Ok(())
}

/// Where a snapshot import stands (stored in the staging database).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// [`crate::snapshot::format::Header::id`] of the file.
    pub header_id: u64,
    /// Length of the file.
    pub file_len: u64,
    /// The next chunk.
    pub pos: Position,
    /// Entries imported so far.
    pub totals: Totals,
    /// Order state after the last imported entry.
    pub last_code: Option<B256>,
    /// Last account imported (slots of the next chunk may continue it).
    pub last_account: Option<B256>,
    /// Last slot of that account.
    pub last_slot: Option<B256>,
    /// The whole file is imported and the root checked.
    pub complete: bool,
}

impl Checkpoint {
    const MAGIC: &'static [u8; 8] = b"MIMPORT1";

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(176);
        b.extend_from_slice(Self::MAGIC);
        for v in [
            self.header_id,
            self.file_len,
            self.pos.offset,
            self.pos.seq,
            self.pos.raw_bytes,
            self.totals.accounts,
            self.totals.slots,
            self.totals.codes,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let flags = self.last_code.is_some() as u8
            | (self.last_account.is_some() as u8) << 1
            | (self.last_slot.is_some() as u8) << 2
            | (self.complete as u8) << 3;
        b.push(flags);
        for h in [self.last_code, self.last_account, self.last_slot] {
            b.extend_from_slice(h.unwrap_or_default().as_slice());
        }
        b
    }

    /// Decodes a record.
    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        if b.len() != 8 + 64 + 1 + 96 || &b[..8] != Self::MAGIC {
            return None;
        }
        let u = |i: usize| u64::from_le_bytes(b[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes"));
        let flags = b[72];
        let h = |i: usize| (flags & (1 << i) != 0).then(|| B256::from_slice(&b[73 + 32 * i..105 + 32 * i]));
        Some(Checkpoint {
            header_id: u(0),
            file_len: u(1),
            pos: Position { offset: u(2), seq: u(3), raw_bytes: u(4) },
            totals: Totals { accounts: u(5), slots: u(6), codes: u(7) },
            last_code: h(0),
            last_account: h(1),
            last_slot: h(2),
            complete: flags & 8 != 0,
        })
    }
}

/// The snapshot import's side of [`load_staged`]: progress by input
/// bytes, the import position committed with every batch (and the
/// snapshot's header with the last), the test hook that stops early.
struct ImportHooks<'a> {
    header: &'a Header,
    file_len: u64,
    progress: ImportProgress<'a>,
    stop_after_batches: Option<u64>,
    staging: &'a Path,
}

impl LoadHooks<Checkpoint> for ImportHooks<'_> {
    fn applied(&mut self, meta: &Checkpoint) {
        (self.progress)(meta.pos.offset, self.file_len, meta.totals.items());
    }

    fn records(&self, meta: &Checkpoint, last: bool) -> Vec<(&'static [u8], Vec<u8>)> {
        let cp = Checkpoint { header_id: self.header.id(), file_len: self.file_len, complete: last, ..meta.clone() };
        let mut records = vec![(PROGRESS_KEY, cp.encode())];
        if last {
            records.push((SOURCE_KEY, self.header.encode().to_vec()));
        }
        records
    }

    fn committed(&mut self, meta: &Checkpoint, batches: u64) -> Result<()> {
        if self.stop_after_batches.is_some_and(|n| batches >= n) {
            return Err(Error::Refused(format!(
                "stopped after {batches} batches (chunk {}); the import is staged in {}",
                meta.pos.seq,
                self.staging.display()
            )));
        }
        Ok(())
    }
}

/// Imports the snapshot `file` into the data dir `target` (see the module docs).
pub fn import_snapshot(
    target: &Path,
    file: &Path,
    opts: &ImportOptions,
    progress: ImportProgress<'_>,
) -> Result<ImportSummary> {
    let mut reader = SnapshotReader::open(file)?;
    let header = reader.header().clone();
    check_target(target, opts.overwrite)?;
    let staging = staging_dir(target)?;
    let mut resumed_at = None;
    let mut cp = Checkpoint {
        header_id: header.id(),
        file_len: reader.file_len(),
        pos: reader.position(),
        ..Default::default()
    };
    if staging.exists() {
        if !opts.resume {
            return Err(Error::Refused(format!(
                "an interrupted import is staged in {}; rerun with --resume to continue it, or delete that directory to start over",
                staging.display()
            )));
        }
        let db = open_staging(&staging, &opts.db)?;
        let snap = db.snapshot(None).ctx(|| "read the staging database".into())?;
        let stored = snap.get(METADATA, PROGRESS_KEY).ctx(|| "read the import position".into())?.map(|b| b.to_vec());
        drop(snap);
        match stored.as_deref().map(Checkpoint::decode) {
            None => {} // created but nothing committed yet: start at the first chunk
            Some(None) => {
                return Err(Error::Refused(format!("{} holds an unreadable import position", staging.display())))
            }
            Some(Some(c)) => {
                if c.header_id != cp.header_id || c.file_len != cp.file_len {
                    return Err(Error::Refused(format!(
                        "the import staged in {} is of another snapshot file (block {} root {:#x} is staged); \
                         delete that directory to import {}",
                        staging.display(),
                        header.block_number,
                        header.state_root,
                        file.display()
                    )));
                }
                cp = c;
                resumed_at = Some(cp.pos.seq);
            }
        }
        drop(db);
    }
    // Everything may have been imported and checked before, leaving only the switch.
    let (totals, batches) = if cp.complete {
        (cp.totals, 0)
    } else {
        let db = open_staging(&staging, &opts.db)?;
        if !cp.pos.offset.eq(&(crate::snapshot::format::HEADER_LEN as u64)) {
            reader.seek(cp.pos)?;
        }
        let mut tries = Tries::new();
        if resumed_at.is_some() {
            tries.replay(&db, cp.last_account)?;
        }
        let order = OrderCheck::resume(cp.last_code, cp.last_account, cp.last_slot);
        let start_totals = cp.totals;
        let mut hooks = ImportHooks {
            header: &header,
            file_len: cp.file_len,
            progress,
            stop_after_batches: opts.stop_after_batches,
            staging: &staging,
        };
        let end = load_staged(
            &db,
            header.block_number,
            tries,
            opts.batch_bytes,
            (header.state_root, &format!("the header of {}", file.display())),
            move |tx| decode_chunks(reader, file, order, start_totals, tx),
            &mut hooks,
        );
        drop(db);
        match end {
            Ok(loaded) => (loaded.meta.totals, loaded.batches),
            Err(e) => {
                if matches!(e, Error::RootMismatch { .. }) {
                    // The staged state is wrong as a whole: nothing to resume.
                    let _ = std::fs::remove_dir_all(&staging);
                }
                return Err(e);
            }
        }
    };
    install(&staging, target, opts.overwrite)?;
    Ok(ImportSummary {
        version: header.block_number,
        state_root: header.state_root,
        totals,
        resumed_at_chunk: resumed_at,
        batches,
    })
}

fn decode_chunks(
    mut reader: SnapshotReader,
    file: &Path,
    mut order: OrderCheck,
    mut totals: Totals,
    tx: std::sync::mpsc::SyncSender<Result<EntryBatch<Checkpoint>>>,
) {
    let at = |reader: &SnapshotReader, order: &OrderCheck, totals: Totals| Checkpoint {
        pos: reader.position(),
        totals,
        last_code: order.last_code(),
        last_account: order.last_account(),
        last_slot: order.last_slot(),
        ..Checkpoint::default()
    };
    loop {
        let res = (|| -> Result<Option<Vec<Entry>>> {
            let Some(chunk) = reader.next_chunk()? else { return Ok(None) };
            Ok(Some(decode_chunk(file, &chunk, &mut order, &mut totals)?))
        })();
        let msg = match res {
            Ok(Some(entries)) => Ok(EntryBatch {
                leaf_hashes: hash_leaves_ahead(&entries),
                entries,
                meta: at(&reader, &order, totals),
                last: false,
            }),
            Ok(None) => {
                let footer = *reader.footer().expect("next_chunk returns None only after the footer");
                // The footer was reached and its totals match: the end, with no entries.
                check_totals(file, &footer, &totals).map(|()| EntryBatch {
                    entries: Vec::new(),
                    leaf_hashes: Vec::new(),
                    meta: at(&reader, &order, totals),
                    last: true,
                })
            }
            Err(e) => Err(e),
        };
        let stop = !matches!(msg, Ok(EntryBatch { last: false, .. }));
        if tx.send(msg).is_err() || stop {
            return;
        }
    }
}
