//! Portable backend: one `pwrite` per write, `fdatasync`/`fsync` for syncs.

use super::{Storage, WriteOp};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Positioned writes through the standard library.
pub struct PwriteStorage {
    file: File,
    path: PathBuf,
}

impl PwriteStorage {
    /// Wraps an open, writable data file.
    pub fn new(file: File, path: &Path) -> PwriteStorage {
        PwriteStorage { file, path: path.to_path_buf() }
    }
}

impl Storage for PwriteStorage {
    fn name(&self) -> &'static str {
        "pwrite"
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
        for op in ops {
            self.file.write_all_at(op.data, op.offset)?;
        }
        Ok(())
    }
    fn start_writeback(&self, offset: u64, len: u64) {
        super::start_writeback_of(&self.file, offset, len);
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
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
