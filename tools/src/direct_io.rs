//! Sequential snapshot and dump files read and written around the page
//! cache (`O_DIRECT`).
//!
//! A snapshot or dump is written once and read once, usually on another
//! machine. Through the page cache, every byte is first copied into a
//! freshly allocated cache page (a quarter of a 10M-account export's CPU on
//! a virtual machine whose memory the host backs on first touch), and the
//! file's pages then push the node's hot database pages out of the cache.
//! [`DirectOut`] and [`DirectIn`] move [`BUFFER`] bytes at a time between a
//! block-aligned buffer and the device. Where the file system refuses
//! `O_DIRECT` (tmpfs), they fall back to ordinary reads and writes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of direct transfers: buffer address, file offset and length.
/// 4 KiB covers every logical block size in use.
pub const ALIGN: usize = 4096;
/// Bytes moved per read or write (a multiple of [`ALIGN`]).
pub const BUFFER: usize = 4 << 20;

/// Opens `path` with `O_DIRECT` added to `opts`, or without it where the
/// file system refuses it; says which.
fn open_direct(opts: &mut std::fs::OpenOptions, path: &Path) -> io::Result<(File, bool)> {
    match opts.clone().custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok((opts.open(path)?, false)),
        Err(e) => Err(e),
    }
}

/// An aligned buffer of [`BUFFER`] bytes: `raw[start..start + BUFFER]`.
fn aligned_buffer() -> (Vec<u8>, usize) {
    let raw = vec![0u8; BUFFER + ALIGN];
    let start = raw.as_ptr().align_offset(ALIGN);
    debug_assert!(start < ALIGN);
    (raw, start)
}

/// Clears `O_DIRECT` on `file`: some file systems accept the flag at open
/// and refuse the transfers.
fn set_buffered(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` keeps open; F_GETFL/F_SETFL only
    // read and change its status flags.
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
    Ok(())
}

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
        let (file, direct) = open_direct(std::fs::OpenOptions::new().write(true).create(true).truncate(true), path)?;
        let (raw, start) = aligned_buffer();
        Ok(DirectOut { file, direct, raw, start, len: 0, flushed: 0 })
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
                set_buffered(&self.file)?;
                self.direct = false;
                self.file.write_all_at(&self.raw[self.start..self.start + self.len], self.flushed)?;
                Ok(0)
            }
            r => r.map(|()| padded - self.len),
        }
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

/// A file read from start to end (or from a seek position on) with
/// `O_DIRECT`: see the module documentation.
pub struct DirectIn {
    file: File,
    direct: bool,
    /// `BUFFER + ALIGN` bytes; the buffer is the aligned `BUFFER` bytes at `start`.
    raw: Vec<u8>,
    start: usize,
    /// File offset of the buffer's first byte (a multiple of [`ALIGN`]).
    at: u64,
    /// Bytes of the file in the buffer.
    len: usize,
    /// Next byte to hand out, from the buffer's start (past `len` after a
    /// seek into the next block).
    pos: usize,
    /// The file ends within the buffer.
    at_end: bool,
}

impl DirectIn {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> io::Result<DirectIn> {
        let (file, direct) = open_direct(std::fs::OpenOptions::new().read(true), path)?;
        let (raw, start) = aligned_buffer();
        Ok(DirectIn { file, direct, raw, start, at: 0, len: 0, pos: 0, at_end: false })
    }

    /// The file's metadata.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// Fills the buffer from file offset `at` (aligned): as much as the file has, up to [`BUFFER`].
    fn fill(&mut self, at: u64) -> io::Result<()> {
        debug_assert!(at.is_multiple_of(ALIGN as u64));
        self.at = at;
        self.len = 0;
        while self.len < BUFFER {
            let dst = &mut self.raw[self.start + self.len..self.start + BUFFER];
            match self.file.read_at(dst, at + self.len as u64) {
                Ok(0) => break,
                // A direct read ends early only at the end of the file.
                Ok(n) if self.direct && !n.is_multiple_of(ALIGN) => {
                    self.len += n;
                    break;
                }
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    set_buffered(&self.file)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.at_end = self.len < BUFFER;
        Ok(())
    }
}

impl Read for DirectIn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            if self.at_end {
                return Ok(0);
            }
            // `at + len` is aligned: the buffer is full, or empty after a seek.
            let skip = self.pos - self.len;
            self.fill(self.at + self.len as u64)?;
            self.pos = skip;
            if self.pos >= self.len {
                return Ok(0);
            }
        }
        let n = out.len().min(self.len - self.pos);
        let from = self.start + self.pos;
        out[..n].copy_from_slice(&self.raw[from..from + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Seek for DirectIn {
    /// Only absolute positions (`SeekFrom::Start`) are supported.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Start(offset) = to else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "only seeks to absolute positions"));
        };
        if offset >= self.at && offset <= self.at + self.len as u64 {
            self.pos = (offset - self.at) as usize;
        } else {
            // Refill at the block holding `offset` on the next read.
            let block = offset - offset % ALIGN as u64;
            self.at = block;
            self.len = 0;
            self.pos = (offset - block) as usize;
            self.at_end = false;
        }
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files of lengths around the buffer and block boundaries written
    /// with [`DirectOut`] read back byte for byte, with `std::fs::read` and
    /// with [`DirectIn`], in a directory on disk (direct) and on tmpfs.
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
                read_back(&path, &data);
            }
        }
    }

    /// Reads `path` through [`DirectIn`] in uneven pieces, whole and from
    /// positions around block and buffer boundaries, and compares with `data`.
    fn read_back(path: &Path, data: &[u8]) {
        let len = data.len();
        let read_from = |r: &mut DirectIn, piece: usize| {
            let mut got = Vec::new();
            let mut buf = vec![0u8; piece];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        };
        let mut r = DirectIn::open(path).unwrap();
        assert!(read_from(&mut r, 777 + len % 5000) == data, "a {len}-byte file read whole");
        let positions = [0, 1, ALIGN - 1, ALIGN, ALIGN + 5, BUFFER - 3, BUFFER, BUFFER + ALIGN + 1, len / 2, len];
        for at in positions.into_iter().filter(|&p| p <= len) {
            // Seeks back from the end of the file, and forward from a fresh open.
            for fresh in [false, true] {
                if fresh {
                    r = DirectIn::open(path).unwrap();
                }
                assert_eq!(r.seek(SeekFrom::Start(at as u64)).unwrap(), at as u64);
                assert!(read_from(&mut r, 4096 + 13) == data[at..], "a {len}-byte file read from {at}");
            }
        }
    }
}
