//! A sequential output file written around the page cache (`O_DIRECT`).
//!
//! A snapshot or dump is written once and read back, if ever, on another
//! machine. Through the page cache, every byte is first copied into a
//! freshly allocated cache page (a quarter of a 10M-account export's CPU on
//! a virtual machine whose memory the host backs on first touch), and the
//! file's pages then push the node's hot database pages out of the cache.
//! [`DirectOut`] buffers [`BUFFER`] bytes in a block-aligned buffer and
//! writes them straight to the device. Where the file system refuses
//! `O_DIRECT` (tmpfs), it falls back to ordinary writes.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of direct writes: buffer address, file offset and length.
/// 4 KiB covers every logical block size in use.
pub const ALIGN: usize = 4096;
/// Bytes buffered between writes (a multiple of [`ALIGN`]).
pub const BUFFER: usize = 4 << 20;

/// See the module documentation.
pub struct DirectOut {
    file: File,
    direct: bool,
    /// `BUFFER + ALIGN` bytes; the buffer is the aligned `BUFFER` bytes at `start`.
    raw: Vec<u8>,
    start: usize,
    /// Bytes in the buffer.
    len: usize,
    /// Bytes written to the file before the buffer's first byte.
    flushed: u64,
}

impl DirectOut {
    /// Creates (or truncates) `path` for writing.
    pub fn create(path: &Path) -> io::Result<DirectOut> {
        let open = |flags: i32| {
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).custom_flags(flags).open(path)
        };
        let (file, direct) = match open(libc::O_DIRECT) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(0)?, false),
            Err(e) => return Err(e),
        };
        let raw = vec![0u8; BUFFER + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        debug_assert!(start < ALIGN);
        Ok(DirectOut { file, direct, raw, start, len: 0, flushed: 0 })
    }

    /// True when writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes the buffered bytes, padded to [`ALIGN`] when direct; returns
    /// how many of the written bytes are padding.
    fn write_buffer(&mut self) -> io::Result<usize> {
        let padded = if self.direct { self.len.next_multiple_of(ALIGN) } else { self.len };
        let buf = &mut self.raw[self.start..self.start + padded];
        buf[self.len..].fill(0);
        match self.file.write_all_at(buf, self.flushed) {
            // Some file systems accept the flag at open and refuse the
            // write: go on through the page cache.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.set_buffered()?;
                self.file.write_all_at(&self.raw[self.start..self.start + self.len], self.flushed)?;
                Ok(0)
            }
            r => r.map(|()| padded - self.len),
        }
    }

    fn set_buffered(&mut self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this struct owns; F_GETFL/F_SETFL
        // only read and change its status flags.
        let rc = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                flags
            } else {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT)
            }
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.direct = false;
        Ok(())
    }

    /// Writes what is buffered, cuts the padding off and syncs the file.
    pub fn finish(mut self) -> io::Result<File> {
        let padding = self.write_buffer()?;
        self.flushed += self.len as u64;
        if padding > 0 {
            self.file.set_len(self.flushed)?;
        }
        self.file.sync_all()?;
        Ok(self.file)
    }
}

impl Write for DirectOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BUFFER - self.len);
        let at = self.start + self.len;
        self.raw[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == BUFFER {
            let padding = self.write_buffer()?;
            debug_assert_eq!(padding, 0, "a full buffer is aligned");
            self.flushed += BUFFER as u64;
            self.len = 0;
        }
        Ok(n)
    }

    /// Does nothing: a partial block cannot be written directly before the
    /// end ([`DirectOut::finish`] writes it).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files of lengths around the buffer and block boundaries read back
    /// byte for byte, in a directory on disk (direct) and on tmpfs.
    #[test]
    fn writes_read_back_exactly() {
        let mut dirs = vec![tempfile::tempdir().unwrap()];
        if Path::new("/dev/shm").is_dir() {
            dirs.push(tempfile::tempdir_in("/dev/shm").unwrap());
        }
        for dir in &dirs {
            for len in [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, BUFFER - 1, BUFFER, BUFFER + 7, 2 * BUFFER + ALIGN + 3] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
                let path = dir.path().join(format!("out-{len}"));
                let mut out = DirectOut::create(&path).unwrap();
                // Uneven pieces, as frames and payloads arrive.
                for piece in data.chunks(1000 + len % 3001) {
                    out.write_all(piece).unwrap();
                }
                out.finish().unwrap();
                let back = std::fs::read(&path).unwrap();
                assert_eq!(back.len(), len, "length of a {len}-byte file");
                assert!(back == data, "contents of a {len}-byte file");
            }
        }
    }
}
