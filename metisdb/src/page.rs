//! Page layout shared by every data page: the 24-byte header, checksums and
//! little-endian field helpers. Byte-level format: docs/file-format.md.
//!
//! ```text
//! offset size field
//! 0      8    checksum: xxh3-64 of bytes [8, len) seeded with (salt, page id)
//! 8      1    kind: 1 branch, 2 leaf, 3 run (overflow value or free-list blob)
//! 9      1    kind-specific byte (branch: level; run: run kind)
//! 10     2    count (branch: separators; leaf: entries)
//! 12     2    leaf: start of the cell area / run: low half of the page count
//! 14     2    leaf: fragmented bytes in the cell area / run: high half
//! 16     7    version that wrote the page (56 bits)
//! 23     1    table id of a tree page (lets cleaning find a page's owner)
//! ```
//! Seeding the checksum with the page id makes a page written at the wrong
//! place (or swapped with another) fail its check; seeding with the file's
//! salt makes pages copied from another database fail too.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Length of the common page header.
pub const HEADER_LEN: usize = 24;
/// Offset of the payload length in a run's first page.
pub const RUN_LEN_OFFSET: usize = HEADER_LEN;
/// Offset of a run's payload.
pub const RUN_PAYLOAD_OFFSET: usize = HEADER_LEN + 8;

/// Page kinds, as stored in byte 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageKind {
    /// Interior node of a B+tree.
    Branch = 1,
    /// Leaf node of a B+tree.
    Leaf = 2,
    /// A contiguous run of pages holding one payload (large value, free list).
    Run = 3,
}

impl PageKind {
    /// Decodes the kind byte.
    pub fn from_byte(b: u8) -> Option<PageKind> {
        match b {
            1 => Some(PageKind::Branch),
            2 => Some(PageKind::Leaf),
            3 => Some(PageKind::Run),
            _ => None,
        }
    }
}

/// What a run holds (byte 9 of a run's first page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RunKind {
    /// A value too large to live in a leaf.
    Value = 1,
    /// The free-page list of a meta page.
    FreeList = 2,
    /// The change set of a version (see `history`).
    Changes = 3,
}

fn seed(salt: u64, page: u64) -> u64 {
    salt ^ page.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Checksum of a page (or of a run starting at `page`): covers everything after the checksum field.
pub fn checksum(bytes: &[u8], salt: u64, page: u64) -> u64 {
    debug_assert!(bytes.len() > 8);
    xxh3_64_with_seed(&bytes[8..], seed(salt, page))
}

/// Writes the checksum of a finished page or run.
pub fn seal(bytes: &mut [u8], salt: u64, page: u64) {
    let sum = checksum(bytes, salt, page);
    bytes[..8].copy_from_slice(&sum.to_le_bytes());
}

/// Checks the stored checksum of a page or run.
pub fn verify_checksum(bytes: &[u8], salt: u64, page: u64) -> bool {
    bytes.len() > 8 && get_u64(bytes, 0) == checksum(bytes, salt, page)
}

/// Kind byte of a page.
pub fn kind(page: &[u8]) -> Option<PageKind> {
    PageKind::from_byte(page[8])
}

/// Version that wrote a page.
pub fn written_at(page: &[u8]) -> u64 {
    get_u64(page, 16) & 0x00FF_FFFF_FFFF_FFFF
}

/// Byte of the page header holding the table id of a tree page.
pub const TABLE_BYTE: usize = 23;

/// Initializes the header of a fresh page.
pub fn init_header(page: &mut [u8], kind: PageKind, aux: u8, version: u64) {
    page[..HEADER_LEN].fill(0);
    page[8] = kind as u8;
    page[9] = aux;
    put_u64(page, 16, version);
}

/// Number of pages a run spans, from its first page's header.
pub fn run_pages(first: &[u8]) -> u32 {
    get_u16(first, 12) as u32 | ((get_u16(first, 14) as u32) << 16)
}

/// Stores the number of pages of a run in its first page's header.
pub fn set_run_pages(first: &mut [u8], pages: u32) {
    put_u16(first, 12, pages as u16);
    put_u16(first, 14, (pages >> 16) as u16);
}

/// The payload of a (checksum-verified) run: its kind must be a run and
/// the length in its header must fit the run's bytes.
pub fn run_payload(bytes: &[u8]) -> Result<&[u8], &'static str> {
    if kind(bytes) != Some(PageKind::Run) {
        return Err("value points to a page that is not a run");
    }
    let len = get_u64(bytes, RUN_LEN_OFFSET) as usize;
    bytes.get(RUN_PAYLOAD_OFFSET..RUN_PAYLOAD_OFFSET.saturating_add(len)).ok_or("run payload longer than the run")
}

/// Pages needed for a run carrying `payload_len` bytes.
pub fn pages_for_run(payload_len: usize, page_size: usize) -> u64 {
    (RUN_PAYLOAD_OFFSET + payload_len).div_ceil(page_size) as u64
}

#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}

#[inline]
pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The first 8 bytes of a key as a big-endian integer (zero padded), so that
/// comparing prefixes as integers agrees with comparing keys as bytes: if
/// `key_prefix(a) < key_prefix(b)` then `a < b`; equal prefixes need a full compare.
#[inline]
pub fn key_prefix(key: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = key.len().min(8);
    buf[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_binds_page_id_and_salt() {
        let mut p = vec![0u8; 4096];
        init_header(&mut p, PageKind::Leaf, 0, 7);
        seal(&mut p, 1, 42);
        assert!(verify_checksum(&p, 1, 42));
        assert!(!verify_checksum(&p, 1, 43), "a page read at another id must fail");
        assert!(!verify_checksum(&p, 2, 42), "a page from another file must fail");
        p[100] ^= 1;
        assert!(!verify_checksum(&p, 1, 42));
    }

    #[test]
    fn prefix_order_agrees_with_byte_order() {
        let keys: [&[u8]; 7] = [b"", b"\0", b"a", b"a\0", b"a\0\x01", b"abcdefgh", b"abcdefgi"];
        for a in keys {
            for b in keys {
                let (pa, pb) = (key_prefix(a), key_prefix(b));
                if pa < pb {
                    assert!(a < b, "{a:?} {b:?}");
                }
                if pa > pb {
                    assert!(a > b, "{a:?} {b:?}");
                }
            }
        }
    }
}
