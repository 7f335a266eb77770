//! The snapshot file format, byte by byte (docs/snapshot-format.md).
//!
//! ```text
//! header  128 bytes   magic, format version, chain id, block number and hash, state root
//! chunk*  48 + C      frame header (kind, sequence, lengths, xxh3 checksums) + zstd payload
//! footer  64 bytes    totals
//! ```
//! All integers are little-endian. Entries inside a chunk payload:
//! codes first (by code hash), then accounts (by keccak(address)), each
//! followed by its storage slots (by keccak(slot)).

use alloy_primitives::{Address, B256, U256};
use metis_trie::KECCAK_EMPTY;
use metisdb::state::AccountInfo;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// First 8 bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"METISSNP";
/// Format version written by this build (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 128;
/// Tag of a chunk frame.
pub const CHUNK_TAG: [u8; 4] = *b"CHNK";
/// Tag of the footer.
pub const FOOTER_TAG: [u8; 4] = *b"FOOT";
/// Length of a chunk frame header.
pub const FRAME_LEN: usize = 48;
/// Length of the footer.
pub const FOOTER_LEN: usize = 64;
/// Largest uncompressed chunk payload a reader accepts.
pub const MAX_CHUNK: usize = 64 << 20;
/// Largest bytecode accepted in a code entry.
pub const MAX_CODE: usize = 16 << 20;

/// Entry tags.
pub const TAG_CODE: u8 = 1;
/// An account.
pub const TAG_ACCOUNT: u8 = 2;
/// A storage slot of the preceding account.
pub const TAG_SLOT: u8 = 3;

/// Chunk kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// Code entries only.
    Codes = 1,
    /// Account and slot entries only.
    State = 2,
}

impl ChunkKind {
    fn from_u8(b: u8) -> Option<ChunkKind> {
        match b {
            1 => Some(ChunkKind::Codes),
            2 => Some(ChunkKind::State),
            _ => None,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The snapshot header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Chain id (0 when unknown).
    pub chain_id: u64,
    /// Block number: the version exported, and the version the import creates.
    pub block_number: u64,
    /// Block hash (zero when the database does not record it).
    pub block_hash: B256,
    /// State root of that block.
    pub state_root: B256,
    /// Unix time of the export, milliseconds.
    pub created_ms: u64,
}

/// Why a header was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Short(usize),
    /// Not a snapshot.
    Magic([u8; 8]),
    /// A newer format.
    Newer(u32),
    /// Version 0 or a wrong header length.
    Invalid(String),
    /// The checksum does not match.
    Checksum,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short(n) => write!(f, "the file is {n} bytes, shorter than a snapshot header ({HEADER_LEN})"),
            HeaderError::Magic(m) => {
                write!(f, "not a Metis snapshot (magic {:?}, expected {:?})", String::from_utf8_lossy(m), "METISSNP")
            }
            HeaderError::Newer(v) => write!(f, "format version {v} is newer than {FORMAT_VERSION}"),
            HeaderError::Invalid(r) => write!(f, "{r}"),
            HeaderError::Checksum => write!(f, "header checksum mismatch (the header is corrupt)"),
        }
    }
}

impl Header {
    /// The 128 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.chain_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.block_number.to_le_bytes());
        b[32..64].copy_from_slice(self.block_hash.as_slice());
        b[64..96].copy_from_slice(self.state_root.as_slice());
        b[96..104].copy_from_slice(&self.created_ms.to_le_bytes());
        let sum = xxh3_64(&b[..120]);
        b[120..128].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Parses and checks a header: magic, then version, then checksum.
    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        if b.len() >= 8 && b[0..8] != MAGIC {
            return Err(HeaderError::Magic(b[0..8].try_into().expect("8 bytes")));
        }
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Short(b.len()));
        }
        let version = u32_at(b, 8);
        if version > FORMAT_VERSION {
            return Err(HeaderError::Newer(version));
        }
        if version == 0 {
            return Err(HeaderError::Invalid("format version 0 does not exist".into()));
        }
        let len = u32_at(b, 12);
        if len as usize != HEADER_LEN {
            return Err(HeaderError::Invalid(format!("header length {len}, expected {HEADER_LEN}")));
        }
        if u64_at(b, 120) != xxh3_64(&b[..120]) {
            return Err(HeaderError::Checksum);
        }
        Ok(Header {
            chain_id: u64_at(b, 16),
            block_number: u64_at(b, 24),
            block_hash: B256::from_slice(&b[32..64]),
            state_root: B256::from_slice(&b[64..96]),
            created_ms: u64_at(b, 96),
        })
    }

    /// A checksum identifying this header (used to match a resumed import to its file).
    pub fn id(&self) -> u64 {
        xxh3_64(&self.encode())
    }
}

/// A chunk frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Codes or state.
    pub kind: ChunkKind,
    /// Position of the chunk in the file, from 0.
    pub seq: u64,
    /// Bytes of zstd payload that follow the frame.
    pub compressed_len: u32,
    /// Bytes after decompression.
    pub raw_len: u32,
    /// Entries in the payload.
    pub entries: u32,
    /// xxh3-64 of the compressed payload, seeded with `seq`.
    pub payload_sum: u64,
}

impl Frame {
    /// Builds the frame of a compressed payload.
    pub fn new(kind: ChunkKind, seq: u64, compressed: &[u8], raw_len: usize, entries: u32) -> Frame {
        Frame {
            kind,
            seq,
            compressed_len: compressed.len() as u32,
            raw_len: raw_len as u32,
            entries,
            payload_sum: payload_checksum(compressed, seq),
        }
    }

    /// The 48 frame bytes.
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut b = [0u8; FRAME_LEN];
        b[0..4].copy_from_slice(&CHUNK_TAG);
        b[4] = self.kind as u8;
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.compressed_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.raw_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.entries.to_le_bytes());
        b[32..40].copy_from_slice(&self.payload_sum.to_le_bytes());
        let sum = xxh3_64(&b[..40]);
        b[40..48].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Parses and checks a frame header (tag already known to be [`CHUNK_TAG`]).
    pub fn decode(b: &[u8; FRAME_LEN]) -> Result<Frame, String> {
        if u64_at(b, 40) != xxh3_64(&b[..40]) {
            return Err("frame header checksum mismatch (the chunk header is corrupt)".into());
        }
        let kind = ChunkKind::from_u8(b[4]).ok_or_else(|| format!("unknown chunk kind {}", b[4]))?;
        if b[5..8] != [0; 3] || b[28..32] != [0; 4] {
            return Err("reserved frame bytes are not zero".into());
        }
        let f = Frame {
            kind,
            seq: u64_at(b, 8),
            compressed_len: u32_at(b, 16),
            raw_len: u32_at(b, 20),
            entries: u32_at(b, 24),
            payload_sum: u64_at(b, 32),
        };
        if f.raw_len as usize > MAX_CHUNK {
            return Err(format!("chunk of {} bytes exceeds the limit of {MAX_CHUNK}", f.raw_len));
        }
        if f.compressed_len as usize > zstd::zstd_safe::compress_bound(MAX_CHUNK) {
            return Err(format!("compressed chunk of {} bytes exceeds the limit", f.compressed_len));
        }
        Ok(f)
    }
}

/// Checksum of a compressed chunk payload.
pub fn payload_checksum(compressed: &[u8], seq: u64) -> u64 {
    xxh3_64_with_seed(compressed, seq)
}

/// The footer: totals of the whole file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footer {
    /// Chunks in the file.
    pub chunks: u64,
    /// Accounts.
    pub accounts: u64,
    /// Storage slots.
    pub slots: u64,
    /// Bytecodes.
    pub codes: u64,
    /// Sum of the uncompressed payload lengths.
    pub raw_bytes: u64,
    /// Length of the whole file, footer included.
    pub file_len: u64,
}

impl Footer {
    /// The 64 footer bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..4].copy_from_slice(&FOOTER_TAG);
        b[8..16].copy_from_slice(&self.chunks.to_le_bytes());
        b[16..24].copy_from_slice(&self.accounts.to_le_bytes());
        b[24..32].copy_from_slice(&self.slots.to_le_bytes());
        b[32..40].copy_from_slice(&self.codes.to_le_bytes());
        b[40..48].copy_from_slice(&self.raw_bytes.to_le_bytes());
        b[48..56].copy_from_slice(&self.file_len.to_le_bytes());
        let sum = xxh3_64(&b[..56]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Parses and checks a footer (tag already known to be [`FOOTER_TAG`]).
    pub fn decode(b: &[u8; FOOTER_LEN]) -> Result<Footer, String> {
        if u64_at(b, 56) != xxh3_64(&b[..56]) {
            return Err("footer checksum mismatch (the footer is corrupt)".into());
        }
        if b[4..8] != [0; 4] {
            return Err("reserved footer bytes are not zero".into());
        }
        Ok(Footer {
            chunks: u64_at(b, 8),
            accounts: u64_at(b, 16),
            slots: u64_at(b, 24),
            codes: u64_at(b, 32),
            raw_bytes: u64_at(b, 40),
            file_len: u64_at(b, 48),
        })
    }
}

/// One item of a snapshot, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A bytecode.
    Code {
        /// keccak of the code.
        hash: B256,
        /// The code.
        code: Vec<u8>,
    },
    /// An account; the slots that follow belong to it.
    Account {
        /// keccak(address).
        hash: B256,
        /// The address, when the source recorded its preimage.
        address: Option<Address>,
        /// Nonce, balance, code hash.
        info: AccountInfo,
    },
    /// A storage slot of the last account.
    Slot {
        /// keccak(slot).
        hash: B256,
        /// The slot, when the source recorded its preimage.
        slot: Option<U256>,
        /// The value (never zero).
        value: U256,
    },
}

/// Appends `v` as LEB128.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_uint(out: &mut Vec<u8>, v: &U256) {
    let b = v.to_be_bytes::<32>();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    out.push((32 - skip) as u8);
    out.extend_from_slice(&b[skip..]);
}

/// Appends a code entry.
pub fn put_code(out: &mut Vec<u8>, hash: &B256, code: &[u8]) {
    out.push(TAG_CODE);
    out.extend_from_slice(hash.as_slice());
    put_varint(out, code.len() as u64);
    out.extend_from_slice(code);
}

/// Appends an account entry.
pub fn put_account(out: &mut Vec<u8>, hash: &B256, address: Option<&Address>, info: &AccountInfo) {
    out.push(TAG_ACCOUNT);
    out.extend_from_slice(hash.as_slice());
    let has_code = info.code_hash != KECCAK_EMPTY;
    out.push(address.is_some() as u8 | (has_code as u8) << 1);
    if let Some(a) = address {
        out.extend_from_slice(a.as_slice());
    }
    put_varint(out, info.nonce);
    put_uint(out, &info.balance);
    if has_code {
        out.extend_from_slice(info.code_hash.as_slice());
    }
}

/// Appends a slot entry (`value` must not be zero).
pub fn put_slot(out: &mut Vec<u8>, hash: &B256, slot: Option<&U256>, value: &U256) {
    debug_assert!(!value.is_zero());
    out.push(TAG_SLOT);
    out.extend_from_slice(hash.as_slice());
    out.push(slot.is_some() as u8);
    if let Some(s) = slot {
        out.extend_from_slice(&s.to_be_bytes::<32>());
    }
    put_uint(out, value);
}

/// Decodes the entries of one chunk payload.
pub struct EntryDecoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> EntryDecoder<'a> {
    /// Entries of `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        EntryDecoder { buf: payload, pos: 0 }
    }

    /// Byte offset of the next entry inside the payload.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or("entry runs past the chunk end")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn hash(&mut self) -> Result<B256, String> {
        Ok(B256::from_slice(self.take(32)?))
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                // One value, one encoding: a last byte of zero after others
                // would only pad the number.
                if b == 0 && shift > 0 {
                    return Err("varint is not minimal (ends in a zero byte)".into());
                }
                return Ok(v);
            }
        }
        Err("varint overflows 64 bits".into())
    }

    fn uint(&mut self) -> Result<U256, String> {
        let n = self.byte()? as usize;
        if n > 32 {
            return Err(format!("integer of {n} bytes (at most 32)"));
        }
        let b = self.take(n)?;
        if n > 0 && b[0] == 0 {
            return Err("integer has a leading zero byte".into());
        }
        Ok(U256::from_be_slice(b))
    }

    /// The next entry, `None` at the end of the payload.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry>, String> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        match self.byte()? {
            TAG_CODE => {
                let hash = self.hash()?;
                let len = self.varint()?;
                if len > MAX_CODE as u64 {
                    return Err(format!("code of {len} bytes exceeds the limit of {MAX_CODE}"));
                }
                let code = self.take(len as usize)?.to_vec();
                Ok(Some(Entry::Code { hash, code }))
            }
            TAG_ACCOUNT => {
                let hash = self.hash()?;
                let flags = self.byte()?;
                if flags & !3 != 0 {
                    return Err(format!("unknown account flags {flags:#x}"));
                }
                let address = if flags & 1 != 0 { Some(Address::from_slice(self.take(20)?)) } else { None };
                let nonce = self.varint()?;
                let balance = self.uint()?;
                let code_hash = if flags & 2 != 0 { self.hash()? } else { KECCAK_EMPTY };
                Ok(Some(Entry::Account { hash, address, info: AccountInfo { nonce, balance, code_hash } }))
            }
            TAG_SLOT => {
                let hash = self.hash()?;
                let flags = self.byte()?;
                if flags & !1 != 0 {
                    return Err(format!("unknown slot flags {flags:#x}"));
                }
                let slot = if flags & 1 != 0 { Some(U256::from_be_slice(self.take(32)?)) } else { None };
                let value = self.uint()?;
                if value.is_zero() {
                    return Err("slot value is zero (zero slots are absent)".into());
                }
                Ok(Some(Entry::Slot { hash, slot, value }))
            }
            t => Err(format!("unknown entry tag {t}")),
        }
    }
}

/// Checks the order rules across a whole file: codes (strictly increasing
/// hashes) before accounts (strictly increasing hashes), slots strictly
/// increasing within their account and only after an account; preimages,
/// when present, hash to their keys; code hashes match their code.
#[derive(Default, Clone, Debug)]
pub struct OrderCheck {
    last_code: Option<B256>,
    last_account: Option<B256>,
    last_slot: Option<B256>,
}

impl OrderCheck {
    /// Resumes the check after `account` (with slots up to `slot`) was the last entry.
    pub fn resume(last_code: Option<B256>, last_account: Option<B256>, last_slot: Option<B256>) -> Self {
        OrderCheck { last_code, last_account, last_slot }
    }

    /// The last account seen.
    pub fn last_account(&self) -> Option<B256> {
        self.last_account
    }

    /// The last code hash seen.
    pub fn last_code(&self) -> Option<B256> {
        self.last_code
    }

    /// The last slot of the last account.
    pub fn last_slot(&self) -> Option<B256> {
        self.last_slot
    }

    /// Checks `e` against the entries before it: its kind for the chunk and
    /// its order. Preimages (codes, addresses, slot numbers) are the
    /// caller's to check, in a batch: [`crate::snapshot::decode_chunk`].
    pub fn check(&mut self, e: &Entry, kind: ChunkKind) -> Result<(), String> {
        match e {
            Entry::Code { hash, .. } => {
                if kind != ChunkKind::Codes {
                    return Err("code entry in a state chunk".into());
                }
                if self.last_account.is_some() {
                    return Err("code entry after the first account (codes come first)".into());
                }
                if self.last_code.is_some_and(|l| *hash <= l) {
                    return Err(format!("code {hash:#x} out of order"));
                }
                self.last_code = Some(*hash);
            }
            Entry::Account { hash, .. } => {
                if kind != ChunkKind::State {
                    return Err("account entry in a code chunk".into());
                }
                if self.last_account.is_some_and(|l| *hash <= l) {
                    return Err(format!("account {hash:#x} out of order"));
                }
                self.last_account = Some(*hash);
                self.last_slot = None;
            }
            Entry::Slot { hash, .. } => {
                if kind != ChunkKind::State {
                    return Err("slot entry in a code chunk".into());
                }
                let Some(acct) = self.last_account else {
                    return Err("slot entry before any account".into());
                };
                if self.last_slot.is_some_and(|l| *hash <= l) {
                    return Err(format!("slot {hash:#x} of account {acct:#x} out of order"));
                }
                self.last_slot = Some(*hash);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_frame_footer_round_trip_and_reject_corruption() {
        let h = Header {
            chain_id: 1088,
            block_number: 42,
            block_hash: B256::repeat_byte(7),
            state_root: B256::repeat_byte(9),
            created_ms: 5,
        };
        let b = h.encode();
        assert_eq!(Header::decode(&b).unwrap(), h);
        for i in 0..HEADER_LEN {
            let mut c = b;
            c[i] ^= 1;
            assert!(Header::decode(&c).is_err(), "flip at {i}");
        }
        let f = Frame::new(ChunkKind::State, 3, b"abc", 10, 2);
        let fb = f.encode();
        assert_eq!(Frame::decode(&fb).unwrap(), f);
        for i in 4..FRAME_LEN {
            let mut c = fb;
            c[i] ^= 0x10;
            assert!(Frame::decode(&c).is_err(), "flip at {i}");
        }
        let ft = Footer { chunks: 1, accounts: 2, slots: 3, codes: 4, raw_bytes: 5, file_len: 6 };
        assert_eq!(Footer::decode(&ft.encode()).unwrap(), ft);
    }

    #[test]
    fn entries_round_trip() {
        let mut buf = Vec::new();
        let info = AccountInfo { nonce: 300, balance: U256::from(12345u64), code_hash: B256::repeat_byte(3) };
        let a = Address::repeat_byte(1);
        put_code(&mut buf, &B256::repeat_byte(2), b"\x60\x00");
        put_account(&mut buf, &B256::repeat_byte(4), Some(&a), &info);
        put_slot(&mut buf, &B256::repeat_byte(5), Some(&U256::from(1u64)), &U256::from(7u64));
        put_slot(&mut buf, &B256::repeat_byte(6), None, &U256::MAX);
        let mut d = EntryDecoder::new(&buf);
        let mut out = Vec::new();
        while let Some(e) = d.next().unwrap() {
            out.push(e);
        }
        assert_eq!(out.len(), 4);
        assert_eq!(out[1], Entry::Account { hash: B256::repeat_byte(4), address: Some(a), info });
        assert_eq!(out[3], Entry::Slot { hash: B256::repeat_byte(6), slot: None, value: U256::MAX });
        for cut in 1..buf.len() {
            let mut d = EntryDecoder::new(&buf[..cut]);
            let mut r = Ok(Some(Entry::Code { hash: B256::ZERO, code: vec![] }));
            while let Ok(Some(_)) = r {
                r = d.next();
            }
            // A cut inside an entry is an error; a cut between entries ends cleanly.
            let _ = r;
        }
    }
}
