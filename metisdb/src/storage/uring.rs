//! io_uring backend: a commit's writes go to the kernel in one submission
//! (up to the ring size per round), so the device sees a deep queue instead
//! of one write at a time. Syncs also go through the ring.

use super::{Storage, WriteOp};
use io_uring::{opcode, types, IoUring};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const RING_ENTRIES: u32 = 256;
/// Largest single write submitted (the kernel may cap lengths anyway).
const MAX_WRITE: usize = 1 << 30;

/// io_uring-backed positioned writes.
pub struct UringStorage {
    file: File,
    path: PathBuf,
    ring: Mutex<IoUring>,
}

impl UringStorage {
    /// Creates a ring; fails when the kernel does not offer io_uring (or forbids it).
    pub fn new(file: File, path: &Path) -> io::Result<UringStorage> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // Probe: a no-op round trip proves the ring works here (seccomp or
        // io_uring_disabled can let setup succeed and submissions fail).
        let mut s = UringStorage { file, path: path.to_path_buf(), ring: Mutex::new(ring) };
        s.nop()?;
        Ok(s)
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
            let batch = todo.len().min(RING_ENTRIES as usize);
            for (i, (off, data)) in todo[..batch].iter().enumerate() {
                let e =
                    opcode::Write::new(fd, data.as_ptr(), data.len() as u32).offset(*off).build().user_data(i as u64);
                // SAFETY: the buffer `data` borrows from `ops`, which outlives
                // this call, and we wait for every submitted entry to complete
                // before returning or reusing `todo`.
                unsafe { ring.submission().push(&e).map_err(|_| io::Error::other("submission queue full"))? };
            }
            let mut waited = 0;
            let mut results = vec![0i32; batch];
            let mut first_err = None;
            let mut failures = 0u32;
            while waited < batch {
                if let Err(e) = ring.submit_and_wait(batch - waited) {
                    if e.raw_os_error() != Some(libc::EINTR) {
                        // Submitted entries still point into `ops`: they must
                        // complete before this function may return.
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
            let mut rest = Vec::new();
            for (i, r) in results.iter().enumerate() {
                let (off, data) = todo[i];
                if *r < 0 {
                    return Err(io::Error::from_raw_os_error(-r));
                }
                let n = *r as usize;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes"));
                }
                if n < data.len() {
                    rest.push((off + n as u64, &data[n..]));
                }
            }
            todo.drain(..batch);
            todo.extend(rest);
        }
        Ok(())
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
