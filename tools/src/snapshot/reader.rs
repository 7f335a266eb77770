//! Streaming reader of snapshot files: the header, then one checked and
//! decompressed chunk at a time, then the footer. Memory: one chunk and
//! the read buffer; the file is read around the page cache ([`DirectIn`]).

use super::format::{Footer, Frame, Header, HeaderError, CHUNK_TAG, FOOTER_LEN, FOOTER_TAG, FRAME_LEN, HEADER_LEN};
use crate::direct_io::DirectIn;
use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A decompressed, checked chunk.
pub struct Chunk {
    /// Its frame header.
    pub frame: Frame,
    /// File offset of the frame.
    pub offset: u64,
    /// The uncompressed entries.
    pub payload: Vec<u8>,
}

impl Chunk {
    /// "chunk N at byte X": where errors inside this chunk are.
    pub fn place(&self) -> String {
        format!("chunk {} at byte {}", self.frame.seq, self.offset)
    }
}

/// Position in a file between two chunks (used to resume).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Offset of the next frame.
    pub offset: u64,
    /// Sequence number of the next chunk.
    pub seq: u64,
    /// Uncompressed bytes of the chunks before it.
    pub raw_bytes: u64,
}

/// Reads a snapshot file chunk by chunk.
pub struct SnapshotReader {
    path: PathBuf,
    file: DirectIn,
    header: Header,
    file_len: u64,
    pos: Position,
    footer: Option<Footer>,
    dctx: zstd::bulk::Decompressor<'static>,
    compressed: Vec<u8>,
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl SnapshotReader {
    /// Opens `path` and checks its header.
    pub fn open(path: &Path) -> Result<SnapshotReader> {
        let mut file = DirectIn::open(path).map_err(|e| Error::io("open", path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let mut b = [0u8; HEADER_LEN];
        let n = read_full(&mut file, &mut b).map_err(|e| Error::io("read", path, e))?;
        let header = Header::decode(&b[..n]).map_err(|e| match e {
            HeaderError::Newer(found) => {
                Error::NewerFormat { path: path.into(), found, supported: super::format::FORMAT_VERSION }
            }
            e => Error::bad(path, "header", e.to_string()),
        })?;
        let dctx = zstd::bulk::Decompressor::new().map_err(|e| Error::io("zstd init", path, e))?;
        Ok(SnapshotReader {
            path: path.into(),
            file,
            header,
            file_len,
            pos: Position { offset: HEADER_LEN as u64, seq: 0, raw_bytes: 0 },
            footer: None,
            dctx,
            compressed: Vec::new(),
        })
    }

    /// Continues at `pos` (a position returned by [`Self::position`] earlier).
    pub fn seek(&mut self, pos: Position) -> Result<()> {
        if pos.offset < HEADER_LEN as u64 || pos.offset > self.file_len {
            return Err(Error::bad(&self.path, format!("byte {}", pos.offset), "resume position outside the file"));
        }
        self.file.seek(SeekFrom::Start(pos.offset)).map_err(|e| Error::io("seek", &self.path, e))?;
        self.pos = pos;
        Ok(())
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Where the next chunk starts.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// The footer, once reached.
    pub fn footer(&self) -> Option<&Footer> {
        self.footer.as_ref()
    }

    fn truncated(&self, what: &str) -> Error {
        Error::bad(
            &self.path,
            format!("byte {}", self.file_len),
            format!(
                "the file is truncated: it ends {what} (after {} complete chunks; {} bytes long)",
                self.pos.seq, self.file_len
            ),
        )
    }

    /// The next chunk, checked and decompressed; `None` after a valid footer.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.footer.is_some() {
            return Ok(None);
        }
        let at = self.pos.offset;
        let mut fb = [0u8; FRAME_LEN];
        let n = read_full(&mut self.file, &mut fb[..4]).map_err(|e| Error::io("read", &self.path, e))?;
        if n < 4 {
            return Err(
                self.truncated(&format!("at byte {} where chunk {} or the footer should start", at, self.pos.seq))
            );
        }
        let tag: [u8; 4] = fb[..4].try_into().expect("4 bytes");
        if tag == FOOTER_TAG {
            let mut b = [0u8; FOOTER_LEN];
            b[..4].copy_from_slice(&tag);
            let n = read_full(&mut self.file, &mut b[4..]).map_err(|e| Error::io("read", &self.path, e))?;
            if n < FOOTER_LEN - 4 {
                return Err(self.truncated("inside the footer"));
            }
            let where_ = format!("footer at byte {at}");
            let f = Footer::decode(&b).map_err(|r| Error::bad(&self.path, &where_, r))?;
            let end = at + FOOTER_LEN as u64;
            if f.chunks != self.pos.seq {
                return Err(Error::bad(
                    &self.path,
                    &where_,
                    format!("the footer counts {} chunks, the file holds {}", f.chunks, self.pos.seq),
                ));
            }
            if f.raw_bytes != self.pos.raw_bytes || f.file_len != end {
                return Err(Error::bad(&self.path, &where_, "the footer's byte totals do not match the file"));
            }
            let mut extra = [0u8; 1];
            if read_full(&mut self.file, &mut extra).map_err(|e| Error::io("read", &self.path, e))? != 0 {
                return Err(Error::bad(&self.path, format!("byte {end}"), "trailing bytes after the footer"));
            }
            self.pos.offset = end;
            self.footer = Some(f);
            return Ok(None);
        }
        let where_ = format!("chunk {} at byte {at}", self.pos.seq);
        if tag != CHUNK_TAG {
            return Err(Error::bad(&self.path, &where_, format!("no chunk or footer tag (found {:02x?})", tag)));
        }
        let n = read_full(&mut self.file, &mut fb[4..]).map_err(|e| Error::io("read", &self.path, e))?;
        if n < FRAME_LEN - 4 {
            return Err(self.truncated(&format!("inside the header of chunk {}", self.pos.seq)));
        }
        let frame = Frame::decode(&fb).map_err(|r| Error::bad(&self.path, &where_, r))?;
        if frame.seq != self.pos.seq {
            return Err(Error::bad(
                &self.path,
                &where_,
                format!("chunk numbered {} where chunk {} belongs (chunks lost or reordered)", frame.seq, self.pos.seq),
            ));
        }
        let clen = frame.compressed_len as usize;
        self.compressed.resize(clen, 0);
        let n = read_full(&mut self.file, &mut self.compressed).map_err(|e| Error::io("read", &self.path, e))?;
        if n < clen {
            return Err(self.truncated(&format!("inside chunk {} ({} of its {clen} bytes present)", frame.seq, n)));
        }
        if super::format::payload_checksum(&self.compressed, frame.seq) != frame.payload_sum {
            return Err(Error::bad(&self.path, &where_, "checksum mismatch: the chunk's bytes are corrupt"));
        }
        let payload = self
            .dctx
            .decompress(&self.compressed, frame.raw_len as usize)
            .map_err(|e| Error::bad(&self.path, &where_, format!("zstd: {e}")))?;
        if payload.len() != frame.raw_len as usize {
            return Err(Error::bad(
                &self.path,
                &where_,
                format!("decompressed to {} bytes, the frame says {}", payload.len(), frame.raw_len),
            ));
        }
        self.pos = Position {
            offset: at + (FRAME_LEN + clen) as u64,
            seq: self.pos.seq + 1,
            raw_bytes: self.pos.raw_bytes + payload.len() as u64,
        };
        Ok(Some(Chunk { frame, offset: at, payload }))
    }
}
