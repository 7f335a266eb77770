//! A [`Storage`] wrapper for tests: injects I/O errors and records every
//! operation so that crash images can be built for any point of a run.
//!
//! Media model (docs/file-format.md, "Media assumptions"), deliberately
//! weaker than real disks: nothing written since the last successful sync
//! is guaranteed; unsynced writes may be lost, reordered or torn at 512-byte
//! granularity; `fdatasync` does not persist file growth (only `fsync`
//! does); a failed sync loses the unsynced writes even though a later sync
//! may "succeed" (fsyncgate).

use super::{Storage, WriteOp};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// Kinds of operations that can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A positioned write (each `WriteOp` counts once).
    Write,
    /// fdatasync or fsync.
    Sync,
    /// set_len.
    SetLen,
}

/// How an injected failure looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// EIO.
    Eio,
    /// ENOSPC.
    NoSpace,
    /// A write that stores only its first half, then reports EIO.
    ShortWrite,
}

/// One injected failure: the `nth` operation of kind `op` (1-based) fails,
/// and with `persistent` every later one too.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// Which operation kind.
    pub op: Op,
    /// Which occurrence fails first.
    pub nth: u64,
    /// Keep failing after the first failure.
    pub persistent: bool,
    /// The error returned.
    pub kind: FaultKind,
}

/// A recorded operation.
#[derive(Clone, Debug)]
pub enum Logged {
    /// Bytes written at an offset (what actually reached the file).
    Write(u64, Vec<u8>),
    /// A data sync and whether it succeeded.
    SyncData(bool),
    /// A full sync and whether it succeeded.
    SyncAll(bool),
    /// A length change.
    SetLen(u64),
}

struct State {
    counts: [u64; 3],
    log: Vec<Logged>,
    faults: Vec<Fault>,
    injected: u64,
}

/// Fault-injecting, recording storage.
pub struct FaultStorage {
    inner: Box<dyn Storage>,
    initial: Vec<u8>,
    state: Mutex<State>,
}

impl FaultStorage {
    /// Wraps a backend; the file's current content is the durable starting point.
    pub fn new(inner: Box<dyn Storage>, faults: Vec<Fault>) -> io::Result<FaultStorage> {
        let len = inner.len()?;
        let mut initial = vec![0u8; len as usize];
        let n = inner.read_at(&mut initial, 0)?;
        initial.truncate(n);
        Ok(FaultStorage {
            inner,
            initial,
            state: Mutex::new(State { counts: [0; 3], log: Vec::new(), faults, injected: 0 }),
        })
    }

    /// The file content when the wrapper was made.
    pub fn initial(&self) -> &[u8] {
        &self.initial
    }

    /// All operations so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().expect("fault state lock").log.clone()
    }

    /// Number of failures injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().expect("fault state lock").injected
    }

    /// Decides whether this operation fails; records the count.
    fn check(&self, op: Op) -> Option<FaultKind> {
        let mut s = self.state.lock().expect("fault state lock");
        let idx = op as usize;
        s.counts[idx] += 1;
        let n = s.counts[idx];
        let hit = s.faults.iter().find(|f| f.op == op && (n == f.nth || (f.persistent && n > f.nth))).map(|f| f.kind);
        if hit.is_some() {
            s.injected += 1;
        }
        hit
    }

    fn log_op(&self, l: Logged) {
        self.state.lock().expect("fault state lock").log.push(l);
    }
}

fn error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        _ => io::Error::from_raw_os_error(libc::EIO),
    }
}

impl Storage for FaultStorage {
    fn name(&self) -> &'static str {
        "fault"
    }
    fn file(&self) -> &File {
        self.inner.file()
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all(&self, ops: &[WriteOp<'_>]) -> io::Result<()> {
        for op in ops {
            match self.check(Op::Write) {
                None => {
                    self.inner.write_all(&[*op])?;
                    self.log_op(Logged::Write(op.offset, op.data.to_vec()));
                }
                Some(FaultKind::ShortWrite) => {
                    let half = WriteOp { offset: op.offset, data: &op.data[..op.data.len() / 2] };
                    self.inner.write_all(&[half])?;
                    self.log_op(Logged::Write(half.offset, half.data.to_vec()));
                    return Err(error(FaultKind::Eio));
                }
                Some(k) => return Err(error(k)),
            }
        }
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        if let Some(k) = self.check(Op::Sync) {
            self.log_op(Logged::SyncData(false));
            return Err(error(k));
        }
        self.inner.sync_data()?;
        self.log_op(Logged::SyncData(true));
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        if let Some(k) = self.check(Op::Sync) {
            self.log_op(Logged::SyncAll(false));
            return Err(error(k));
        }
        self.inner.sync_all()?;
        self.log_op(Logged::SyncAll(true));
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if let Some(k) = self.check(Op::SetLen) {
            return Err(error(k));
        }
        self.inner.set_len(len)?;
        self.log_op(Logged::SetLen(len));
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
}

/// What survives a crash, for building images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPolicy {
    /// Only what was synced.
    DropUnsynced,
    /// A random subset of the unsynced writes, and the unsynced length or not.
    RandomSubset,
    /// All unsynced writes, but the last one torn at a 512-byte boundary.
    TornLast,
    /// Only the last unsynced write (typically a meta page) reaches the disk;
    /// earlier unsynced writes and length changes do not.
    LastWriteOnly,
}

/// Durable and pending state after replaying a log prefix.
struct Replay {
    durable: Vec<u8>,
    durable_len: u64,
    live_len: u64,
    pending: Vec<(u64, Vec<u8>)>,
}

fn apply(buf: &mut Vec<u8>, off: u64, data: &[u8]) {
    let end = off as usize + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[off as usize..end].copy_from_slice(data);
}

fn replay(initial: &[u8], log: &[Logged]) -> Replay {
    let mut r = Replay {
        durable: initial.to_vec(),
        durable_len: initial.len() as u64,
        live_len: initial.len() as u64,
        pending: Vec::new(),
    };
    for l in log {
        match l {
            Logged::Write(off, data) => r.pending.push((*off, data.clone())),
            Logged::SetLen(len) => r.live_len = *len,
            Logged::SyncData(ok) | Logged::SyncAll(ok) => {
                if *ok {
                    for (off, data) in r.pending.drain(..) {
                        apply(&mut r.durable, off, &data);
                    }
                    if matches!(l, Logged::SyncAll(_)) {
                        r.durable_len = r.live_len;
                    }
                } else {
                    // fsyncgate: the kernel dropped the dirty pages.
                    r.pending.clear();
                }
            }
        }
    }
    r
}

/// Builds the file a crash right after `log[..upto]` could leave behind.
/// `rand` supplies randomness (any deterministic generator).
pub fn crash_image(initial: &[u8], log: &[Logged], policy: CrashPolicy, rand: &mut dyn FnMut() -> u64) -> Vec<u8> {
    let r = replay(initial, log);
    let mut img = r.durable;
    let mut len = r.durable_len;
    match policy {
        CrashPolicy::DropUnsynced => {}
        CrashPolicy::RandomSubset => {
            for (off, data) in &r.pending {
                if rand().is_multiple_of(2) {
                    apply(&mut img, *off, data);
                }
            }
            if rand().is_multiple_of(2) {
                len = r.live_len;
            }
        }
        CrashPolicy::TornLast => {
            if let Some(((off, data), rest)) = r.pending.split_last() {
                for (o, d) in rest {
                    apply(&mut img, *o, d);
                }
                let sectors = data.len().div_ceil(512);
                let keep = ((rand() as usize) % sectors.max(1)) * 512;
                apply(&mut img, *off, &data[..keep.min(data.len())]);
            }
            len = r.live_len;
        }
        CrashPolicy::LastWriteOnly => {
            if let Some((off, data)) = r.pending.last() {
                apply(&mut img, *off, data);
            }
        }
    }
    img.resize(len as usize, 0);
    img
}
