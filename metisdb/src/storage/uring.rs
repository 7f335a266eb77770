//! io_uring backend: a commit's writes go to the kernel in one submission
//! (up to the ring size per round), so the device sees a deep queue instead
//! of one write at a time. Syncs also go through the ring.

use super::{GatherOp, Storage, WriteOp};
use io_uring::{opcode, squeue, types, IoUring};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const RING_ENTRIES: u32 = 256;
/// Largest single write submitted (the kernel may cap lengths anyway).
const MAX_WRITE: usize = 1 << 30;
/// Most buffers in one `writev` (the kernel's IOV_MAX).
const MAX_IOVECS: usize = 1024;

/// io_uring-backed positioned writes.
pub struct UringStorage {
    file: File,
    /// The same file opened with `O_DIRECT`, for gathered page writes whose
    /// buffers, offsets and lengths are aligned ([`DIRECT_ALIGN`]).
    direct: Option<File>,
    /// `writev`s that went through `direct`.
    direct_pieces: std::sync::atomic::AtomicU64,
    path: PathBuf,
    ring: Mutex<IoUring>,
}

/// Alignment of buffers, offsets and lengths that `O_DIRECT` writes get (at
/// least the logical block size of any disk in use).
const DIRECT_ALIGN: usize = 4096;

impl UringStorage {
    /// Creates a ring; fails when the kernel does not offer io_uring (or forbids it).
    pub fn new(file: File, path: &Path) -> io::Result<UringStorage> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // Probe: a no-op round trip proves the ring works here (seccomp or
        // io_uring_disabled can let setup succeed and submissions fail).
        let mut s = UringStorage {
            file,
            direct: None,
            direct_pieces: Default::default(),
            path: path.to_path_buf(),
            ring: Mutex::new(ring),
        };
        s.nop()?;
        Ok(s)
    }

    /// Gathered page writes go around the page cache (`O_DIRECT`) when
    /// aligned; where the file system refuses `O_DIRECT` (tmpfs), nothing
    /// changes. Syncs and reads stay on the buffered descriptor: `fdatasync`
    /// flushes the device cache for both, and the kernel drops cached copies
    /// of the pages a direct write replaces.
    pub fn with_direct_writes(mut self) -> io::Result<UringStorage> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&self.path) {
            Ok(f) => self.direct = Some(f),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
        Ok(self)
    }

    fn nop(&mut self) -> io::Result<()> {
        let ring = self.ring.get_mut().map_err(|_| io::Error::other("ring lock poisoned"))?;
        let e = opcode::Nop::new().build().user_data(0);
        // SAFETY: a Nop entry references no memory.
        unsafe { ring.submission().push(&e).map_err(|_| io::Error::other("submission queue full"))? };
        ring.submit_and_wait(1)?;
        let cqe = ring.completion().next().ok_or_else(|| io::Error::other("no completion"))?;
        if cqe.result() < 0 {
            return Err(io::Error::from_raw_os_error(-cqe.result()));
        }
        Ok(())
    }

    fn fsync(&self, datasync: bool) -> io::Result<()> {
        let mut ring = self.ring.lock().map_err(|_| io::Error::other("ring lock poisoned"))?;
        let mut e = opcode::Fsync::new(types::Fd(self.file.as_raw_fd()));
        if datasync {
            e = e.flags(types::FsyncFlags::DATASYNC);
        }
        let e = e.build().user_data(0);
        // SAFETY: an fsync entry references only the file descriptor, which
        // `self.file` keeps open for the duration of the call.
        unsafe { ring.submission().push(&e).map_err(|_| io::Error::other("submission queue full"))? };
        ring.submit_and_wait(1)?;
        let cqe = ring.completion().next().ok_or_else(|| io::Error::other("no completion"))?;
        if cqe.result() < 0 {
            return Err(io::Error::from_raw_os_error(-cqe.result()));
        }
        Ok(())
    }
}

impl Storage for UringStorage {
    fn name(&self) -> &'static str {
        "io_uring"
    }
    fn file(&self) -> &File {
        &self.file
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_all(&self, ops: &[WriteOp<'_>]) -> io::Result<()> {
        // Work items: (offset, remaining bytes). Short writes are resubmitted.
        let mut todo: Vec<(u64, &[u8])> = Vec::with_capacity(ops.len());
        for op in ops {
            for (i, chunk) in op.data.chunks(MAX_WRITE).enumerate() {
                todo.push((op.offset + (i * MAX_WRITE) as u64, chunk));
            }
        }
        let mut ring = self.ring.lock().map_err(|_| io::Error::other("ring lock poisoned"))?;
        let fd = types::Fd(self.file.as_raw_fd());
        while !todo.is_empty() {
            let entries: Vec<squeue::Entry> = todo
                .iter()
                .map(|(off, data)| opcode::Write::new(fd, data.as_ptr(), data.len() as u32).offset(*off).build())
                .collect();
            // SAFETY: every buffer borrows from `ops`, which outlives this call.
            let results = unsafe { complete_all(&mut ring, &entries)? };
            let mut rest = Vec::new();
            for ((off, data), r) in todo.iter().zip(results) {
                let n = written(r, data.len())?;
                if n < data.len() {
                    rest.push((off + n as u64, &data[n..]));
                }
            }
            todo = rest;
        }
        Ok(())
    }

    fn write_gathered(&self, ops: &[GatherOp<'_>]) -> io::Result<()> {
        // Pieces of up to MAX_IOVECS buffers and MAX_WRITE bytes, one
        // `writev` each: the pages go to the kernel from where they are,
        // without being copied into one buffer first.
        let mut pieces: Vec<(u64, &[&[u8]])> = Vec::new();
        for op in ops {
            let (mut offset, mut bufs) = (op.offset, op.bufs);
            while !bufs.is_empty() {
                let mut n = 0;
                let mut bytes = 0;
                while n < bufs.len() && n < MAX_IOVECS && (n == 0 || bytes + bufs[n].len() <= MAX_WRITE) {
                    bytes += bufs[n].len();
                    n += 1;
                }
                pieces.push((offset, &bufs[..n]));
                offset += bytes as u64;
                bufs = &bufs[n..];
            }
        }
        let iovecs: Vec<Vec<libc::iovec>> = pieces
            .iter()
            .map(|(_, bufs)| {
                bufs.iter()
                    .map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() })
                    .collect()
            })
            .collect();
        let aligned = |p: usize| p.is_multiple_of(DIRECT_ALIGN);
        let direct = self.direct.as_ref().filter(|_| {
            pieces.iter().all(|(offset, bufs)| {
                aligned(*offset as usize) && bufs.iter().all(|b| aligned(b.as_ptr() as usize) && aligned(b.len()))
            })
        });
        if direct.is_some() {
            self.direct_pieces.fetch_add(pieces.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let fd = types::Fd(direct.unwrap_or(&self.file).as_raw_fd());
        let entries: Vec<squeue::Entry> = pieces
            .iter()
            .zip(&iovecs)
            .map(|((offset, _), iov)| opcode::Writev::new(fd, iov.as_ptr(), iov.len() as u32).offset(*offset).build())
            .collect();
        let results = {
            let mut ring = self.ring.lock().map_err(|_| io::Error::other("ring lock poisoned"))?;
            // SAFETY: the iovec arrays live in `iovecs` and the buffers they
            // point to borrow from `ops`; both outlive this call.
            unsafe { complete_all(&mut ring, &entries)? }
        };
        // What a short write left: the rest of each piece, as plain writes.
        let mut rest: Vec<WriteOp<'_>> = Vec::new();
        for (&(offset, bufs), r) in pieces.iter().zip(results) {
            let done = written(r, bufs.iter().map(|b| b.len()).sum())?;
            rest.extend(unwritten(offset, bufs, done));
        }
        if rest.is_empty() {
            Ok(())
        } else {
            self.write_all(&rest)
        }
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        super::start_writeback_of(&self.file, offset, len);
    }
    fn sync_data(&self) -> io::Result<()> {
        self.fsync(true)
    }
    fn sync_all(&self) -> io::Result<()> {
        self.fsync(false)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn sync_dir(&self) -> io::Result<()> {
        super::sync_dir_of(&self.path)
    }
}

/// Submits `entries` (up to the ring's size at a time), waits for every
/// one and returns their results in order.
///
/// # Safety
/// Every buffer and iovec array the entries point to must stay valid until
/// this returns: it returns only once the kernel is done with all of them.
unsafe fn complete_all(ring: &mut IoUring, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
    let mut results = vec![0i32; entries.len()];
    for (b, batch) in entries.chunks(RING_ENTRIES as usize).enumerate() {
        let base = b * RING_ENTRIES as usize;
        for (i, e) in batch.iter().enumerate() {
            let e = e.clone().user_data((base + i) as u64);
            // SAFETY: the caller keeps what the entry points to valid, and
            // every pushed entry is waited for below.
            unsafe { ring.submission().push(&e).map_err(|_| io::Error::other("submission queue full"))? };
        }
        let mut waited = 0;
        let mut first_err = None;
        let mut failures = 0u32;
        while waited < batch.len() {
            if let Err(e) = ring.submit_and_wait(batch.len() - waited) {
                if e.raw_os_error() != Some(libc::EINTR) {
                    // Submitted entries still point into the caller's
                    // buffers: they must complete before this may return.
                    failures += 1;
                    if failures > 10_000 {
                        eprintln!("metisdb: io_uring cannot reap in-flight writes ({e}); aborting");
                        std::process::abort();
                    }
                    first_err.get_or_insert(e);
                }
            }
            for cqe in ring.completion() {
                results[cqe.user_data() as usize] = cqe.result();
                waited += 1;
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // After a failed write the rest is not submitted: the caller reports
        // the failure, which comes before any unsubmitted entry.
        if results[base..base + batch.len()].iter().any(|&r| r < 0) {
            break;
        }
    }
    Ok(results)
}

/// The parts of `bufs` (written back to back from `offset`) after the first
/// `done` bytes.
fn unwritten<'a>(offset: u64, bufs: &[&'a [u8]], mut done: usize) -> Vec<WriteOp<'a>> {
    let mut rest = Vec::new();
    let mut at = offset;
    for b in bufs {
        if done < b.len() {
            rest.push(WriteOp { offset: at + done as u64, data: &b[done..] });
        }
        done = done.saturating_sub(b.len());
        at += b.len() as u64;
    }
    rest
}

/// The bytes a write of `len` bytes wrote, from its completion result.
fn written(result: i32, len: usize) -> io::Result<usize> {
    if result < 0 {
        return Err(io::Error::from_raw_os_error(-result));
    }
    if result == 0 && len > 0 {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes"));
    }
    Ok(result as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_write_leaves_the_tail_of_its_buffers() {
        let (a, b, c) = (&[1u8; 10][..], &[2u8; 5][..], &[3u8; 7][..]);
        let bufs = [a, b, c];
        let rest =
            |done| unwritten(100, &bufs, done).into_iter().map(|w| (w.offset, w.data.to_vec())).collect::<Vec<_>>();
        assert_eq!(rest(0), vec![(100, a.to_vec()), (110, b.to_vec()), (115, c.to_vec())]);
        assert_eq!(rest(12), vec![(112, vec![2; 3]), (115, c.to_vec())]);
        assert_eq!(rest(15), vec![(115, c.to_vec())]);
        assert!(rest(22).is_empty());
    }

    #[test]
    fn gathered_writes_put_every_buffer_at_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        let Ok(storage) = UringStorage::new(file, &path) else {
            eprintln!("io_uring unavailable here: nothing to test");
            return;
        };
        // More buffers per run than one writev takes, of varying sizes, in
        // two runs with a hole between them.
        let buffers: Vec<Vec<u8>> = (0..2 * MAX_IOVECS + 77).map(|i| vec![(i % 251) as u8; 1 + i % 37]).collect();
        let slices: Vec<&[u8]> = buffers.iter().map(Vec::as_slice).collect();
        let (first, second) = slices.split_at(MAX_IOVECS + 5);
        let first_len: usize = first.iter().map(|b| b.len()).sum();
        let gap = 4096;
        let ops =
            [GatherOp { offset: 10, bufs: first }, GatherOp { offset: (10 + first_len + gap) as u64, bufs: second }];
        storage.write_gathered(&ops).unwrap();
        let mut expected = vec![0u8; 10];
        expected.extend(first.concat());
        expected.extend(vec![0u8; gap]);
        expected.extend(second.concat());
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn direct_writes_land_where_buffered_ones_would_and_reads_see_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        let Ok(storage) = UringStorage::new(file, &path).and_then(UringStorage::with_direct_writes) else {
            eprintln!("io_uring unavailable here: nothing to test");
            return;
        };
        let page = DIRECT_ALIGN;
        // Aligned pages (one buffer, carved at an aligned address) and, in a
        // second call, an unaligned buffer, which takes the buffered path.
        let mut raw = vec![0u8; 8 * page + page];
        let at = raw.as_ptr().align_offset(page);
        let pages = &mut raw[at..at + 8 * page];
        for (i, p) in pages.chunks_mut(page).enumerate() {
            p.fill(i as u8 + 1);
        }
        let bufs: Vec<&[u8]> = pages.chunks(page).collect();
        // Cached before the direct write: the read after it must not see the old bytes.
        storage.write_all(&[WriteOp { offset: page as u64, data: &vec![0xee; page] }]).unwrap();
        let mut old = vec![0u8; page];
        storage.read_at(&mut old, page as u64).unwrap();
        storage
            .write_gathered(&[
                GatherOp { offset: 0, bufs: &bufs[..3] },
                GatherOp { offset: 5 * page as u64, bufs: &bufs[3..] },
            ])
            .unwrap();
        let odd = vec![0x77u8; 100];
        storage.write_gathered(&[GatherOp { offset: 3 * page as u64 + 1, bufs: &[&odd] }]).unwrap();
        let mut expected = pages[..3 * page].to_vec();
        expected.extend(vec![0u8; 2 * page]);
        expected[3 * page + 1..3 * page + 101].fill(0x77);
        expected.extend(&pages[3 * page..]);
        let mut back = vec![0u8; expected.len()];
        storage.read_at(&mut back, 0).unwrap();
        assert!(back == expected, "what reads see differs from what was written");
        assert!(std::fs::read(&path).unwrap() == expected);
        if storage.direct.is_some() {
            assert_eq!(storage.direct_pieces.load(std::sync::atomic::Ordering::Relaxed), 2, "aligned pieces go direct");
        } else {
            eprintln!("this file system refuses O_DIRECT: the writes went through the cache");
        }
    }
}
