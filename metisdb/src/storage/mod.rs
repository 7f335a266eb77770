//! Every persistent write of the engine goes through [`Storage`]: positioned
//! writes, data sync, full sync, length changes and directory sync. Reads go
//! through the memory map instead (except meta pages at open, read with
//! `read_at` so a short or damaged file cannot fault the process).
//!
//! Backends: [`uring::UringStorage`] batches a commit's writes into one
//! io_uring submission; [`pwrite::PwriteStorage`] is the portable fallback;
//! [`fault::FaultStorage`] wraps either to inject errors and build crash images.

pub mod fault;
pub mod pwrite;
pub mod uring;

use std::fs::File;
use std::io;
use std::path::Path;

/// One positioned write.
#[derive(Clone, Copy, Debug)]
pub struct WriteOp<'a> {
    /// Byte offset in the file.
    pub offset: u64,
    /// Bytes to write there.
    pub data: &'a [u8],
}

/// Buffers written back to back from one offset (a run of adjacent pages).
#[derive(Clone, Copy, Debug)]
pub struct GatherOp<'a> {
    /// Byte offset in the file of the first buffer.
    pub offset: u64,
    /// The buffers, in file order.
    pub bufs: &'a [&'a [u8]],
}

/// The persistence interface of the data file.
#[allow(clippy::len_without_is_empty)] // `len` is the file length, not a collection's
pub trait Storage: Send + Sync {
    /// Short name of the backend, for stats.
    fn name(&self) -> &'static str;
    /// The data file (the memory map is made from it).
    fn file(&self) -> &File;
    /// Path of the data file, for error messages.
    fn path(&self) -> &Path;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all ops completely (in any order), or fails.
    fn write_all(&self, ops: &[WriteOp<'_>]) -> io::Result<()>;
    /// Writes every op's buffers back to back at its offset (in any order
    /// between ops), or fails. By default each op's buffers are joined into
    /// one buffer for [`Storage::write_all`]: the same writes, one per op.
    fn write_gathered(&self, ops: &[GatherOp<'_>]) -> io::Result<()> {
        let joined: Vec<Vec<u8>> = ops.iter().map(|op| op.bufs.concat()).collect();
        let ops: Vec<WriteOp<'_>> =
            ops.iter().zip(&joined).map(|(op, data)| WriteOp { offset: op.offset, data }).collect();
        self.write_all(&ops)
    }
    /// Starts writing back `len` written bytes at `offset`, so that the
    /// next sync has less left to write. A hint: only [`Storage::sync_data`]
    /// and [`Storage::sync_all`] make anything durable. By default nothing.
    fn start_writeback(&self, _offset: u64, _len: u64) {}
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// fsync (also persists the file length).
    fn sync_all(&self) -> io::Result<()>;
    /// Changes the file length (the engine only grows it).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current file length.
    fn len(&self) -> io::Result<u64>;
    /// fsync of the directory holding the file (after create or rename).
    fn sync_dir(&self) -> io::Result<()>;
}

/// Which backend to use for a database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// io_uring when the kernel offers it, else pwrite (detected at open).
    #[default]
    Auto,
    /// Portable positioned writes.
    Pwrite,
    /// io_uring; opening fails if the kernel refuses it.
    Uring,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "pwrite" => Ok(Backend::Pwrite),
            "uring" | "io_uring" => Ok(Backend::Uring),
            _ => Err(format!("unknown I/O backend {s:?} (auto, pwrite, uring)")),
        }
    }
}

/// Opens the backend for a data file; `direct_writes`: see
/// [`crate::Options::direct_writes`] (io_uring only).
pub fn open_backend(backend: Backend, file: File, path: &Path, direct_writes: bool) -> io::Result<Box<dyn Storage>> {
    let uring = |file: File| -> io::Result<uring::UringStorage> {
        let u = uring::UringStorage::new(file, path)?;
        if direct_writes {
            u.with_direct_writes()
        } else {
            Ok(u)
        }
    };
    match backend {
        Backend::Pwrite => Ok(Box::new(pwrite::PwriteStorage::new(file, path))),
        Backend::Uring => Ok(Box::new(uring(file)?)),
        Backend::Auto => match uring(file.try_clone()?) {
            Ok(u) => Ok(Box::new(u)),
            Err(_) => Ok(Box::new(pwrite::PwriteStorage::new(file, path))),
        },
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`: starts the writeback of a
/// range without waiting for it. Errors are ignored: the sync that follows
/// reports any failure to write. Nothing where the call does not exist.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback_of(_file: &File, _offset: u64, _len: u64) {}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`: starts the writeback of a
/// range without waiting for it. Errors are ignored: the sync that follows
/// reports any failure to write.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback_of(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else { return };
    // SAFETY: `file` is an open descriptor for the whole call; the call only
    // schedules the writeback of that file's dirty pages in the range.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)`: drops clean, unmapped cached pages
/// of a range that a one-pass scan has copied out and will not read again,
/// so that a scan of a large file keeps the page cache small and reuses its
/// pages instead of taking fresh ones. A hint: errors are ignored. Nothing
/// where the call does not exist.
#[cfg(not(target_os = "linux"))]
pub(crate) fn drop_cached_of(_file: &File, _offset: u64, _len: u64) {}

/// `posix_fadvise(POSIX_FADV_DONTNEED)`: drops clean, unmapped cached pages
/// of a range that a one-pass scan has copied out and will not read again,
/// so that a scan of a large file keeps the page cache small and reuses its
/// pages instead of taking fresh ones. A hint: errors are ignored. Pages
/// mapped by a process (the node's memory map) are not dropped.
#[cfg(target_os = "linux")]
pub(crate) fn drop_cached_of(file: &File, offset: u64, len: u64) {
    fadvise(file, offset, len, libc::POSIX_FADV_DONTNEED);
}

/// `posix_fadvise` of a range of `file` with `advice`, a hint: errors (and
/// ranges past what `off_t` holds) are ignored.
#[cfg(target_os = "linux")]
fn fadvise(file: &File, offset: u64, len: u64, advice: libc::c_int) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else { return };
    // SAFETY: `file` is an open descriptor for the whole call, and advice
    // never changes the file's data: callers pass only DONTNEED (drops clean
    // cached copies) and WILLNEED (schedules reads into the page cache).
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, len, advice);
    }
}

/// Bytes the kernel reads ahead of sequential reads of `file`: the
/// `read_ahead_kb` of its block device (of the disk, for a partition), from
/// sysfs. `None` when unknown (not Linux, not on a block device).
#[cfg(target_os = "linux")]
pub(crate) fn device_read_ahead(file: &File) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = file.metadata().ok()?.dev();
    let base = format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev));
    [format!("{base}/queue/read_ahead_kb"), format!("{base}/../queue/read_ahead_kb")]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Bytes the kernel reads ahead of sequential reads of `file`: unknown here.
#[cfg(not(target_os = "linux"))]
pub(crate) fn device_read_ahead(_file: &File) -> Option<u64> {
    None
}

/// `posix_fadvise(POSIX_FADV_WILLNEED)`: asks the kernel to start reading
/// a range into the page cache, without waiting for it. A hint: errors are
/// ignored. Nothing where the call does not exist.
#[cfg(not(target_os = "linux"))]
pub(crate) fn will_need_of(_file: &File, _offset: u64, _len: u64) {}

/// `posix_fadvise(POSIX_FADV_WILLNEED)`: asks the kernel to start reading
/// a range into the page cache, without waiting for it (per call, at most
/// the larger of the device's readahead window and its largest transfer).
/// A hint: errors are ignored.
#[cfg(target_os = "linux")]
pub(crate) fn will_need_of(file: &File, offset: u64, len: u64) {
    fadvise(file, offset, len, libc::POSIX_FADV_WILLNEED);
}

pub(crate) fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}
