//! The two meta pages: the only pages written in place. Each commit writes
//! the slot not holding the newest valid meta, after the commit's data pages
//! are durable; open picks the valid meta with the highest sequence whose
//! pages all lie inside the file. Byte layout: docs/file-format.md.

use crate::btree::TreeRoot;
use crate::page::{get_u32, get_u64, put_u32, put_u64};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// File magic.
pub const MAGIC: [u8; 8] = *b"METISDB\0";
/// Current on-disk format version. 2: branch records stored by the policy of
/// `metis_trie::stores_record` (version 1 stored every branch with a branch
/// child); a file of another version is refused, not reinterpreted.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest format version a database opens in for reading (to export its
/// state: the leaves are the same in every version so far).
pub const OLDEST_READABLE_FORMAT: u32 = 1;
/// Byte offset of meta slot `i`.
pub const META_OFFSETS: [u64; 2] = [0, 4096];
/// Bytes of a meta record covered by its checksum.
pub const META_LEN: usize = 1024;
/// Table slots in a meta page.
pub const MAX_TABLES: usize = 32;
const TABLES_AT: usize = 128;
const TABLE_LEN: usize = 24;

/// First page number usable for data with a given page size (the metas take the first 8 KiB).
pub fn first_data_page(page_size: usize) -> u64 {
    (8192usize).div_ceil(page_size) as u64
}

/// Decoded meta page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Format version the file was written in.
    pub format: u32,
    /// Page size of the file.
    pub page_size: u32,
    /// Random per-file value mixed into every page checksum.
    pub salt: u64,
    /// Increments with every meta written; the newest valid meta wins.
    pub sequence: u64,
    /// Latest committed version, `None` before the first commit.
    pub version: Option<u64>,
    /// Oldest version whose history is still retained.
    pub oldest_version: u64,
    /// Pages in use by the file (high-water mark).
    pub page_count: u64,
    /// First page of the free-list run (0 = empty list).
    pub freelist_page: u64,
    /// Payload length of the free-list run.
    pub freelist_len: u64,
    /// Versions of history to keep.
    pub retention: u32,
    /// State root of the latest version.
    pub state_root: [u8; 32],
    /// Table roots.
    pub tables: [TreeRoot; MAX_TABLES],
}

/// Why a meta slot was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaError {
    /// Short read: the file ends inside the meta.
    Truncated,
    /// The magic is not ours.
    ForeignMagic,
    /// The checksum does not match.
    Checksum,
    /// Written in another format version than this build's.
    OtherFormat(u32),
    /// A field is out of range.
    Invalid(&'static str),
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaError::Truncated => write!(f, "truncated"),
            MetaError::ForeignMagic => write!(f, "foreign magic"),
            MetaError::Checksum => write!(f, "checksum mismatch"),
            MetaError::OtherFormat(v) => write!(f, "format version {v}, not {FORMAT_VERSION}"),
            MetaError::Invalid(r) => write!(f, "{r}"),
        }
    }
}

fn seed(slot: usize) -> u64 {
    0x4d45_5441_0000_0000 | slot as u64
}

impl Meta {
    /// Encodes into a `META_LEN` buffer for `slot`.
    pub fn encode(&self, slot: usize) -> Vec<u8> {
        let mut b = vec![0u8; META_LEN];
        b[8..16].copy_from_slice(&MAGIC);
        put_u32(&mut b, 16, self.format);
        put_u32(&mut b, 20, self.page_size);
        put_u64(&mut b, 24, self.salt);
        put_u64(&mut b, 32, self.sequence);
        put_u64(&mut b, 40, self.version.map_or(0, |v| v + 1));
        put_u64(&mut b, 48, self.oldest_version);
        put_u64(&mut b, 56, self.page_count);
        put_u64(&mut b, 64, self.freelist_page);
        put_u64(&mut b, 72, self.freelist_len);
        put_u32(&mut b, 80, self.retention);
        put_u32(&mut b, 84, MAX_TABLES as u32);
        b[88..120].copy_from_slice(&self.state_root);
        for (i, t) in self.tables.iter().enumerate() {
            let at = TABLES_AT + i * TABLE_LEN;
            put_u64(&mut b, at, t.page);
            put_u64(&mut b, at + 8, t.entries);
            b[at + 16] = t.level;
        }
        let sum = xxh3_64_with_seed(&b[8..], seed(slot));
        put_u64(&mut b, 0, sum);
        b
    }

    /// Decodes and validates the meta record read from `slot`.
    pub fn decode(b: &[u8], slot: usize) -> Result<Meta, MetaError> {
        if b.len() < META_LEN {
            return Err(MetaError::Truncated);
        }
        let b = &b[..META_LEN];
        if b[8..16] != MAGIC {
            return Err(MetaError::ForeignMagic);
        }
        if get_u64(b, 0) != xxh3_64_with_seed(&b[8..], seed(slot)) {
            return Err(MetaError::Checksum);
        }
        let format = get_u32(b, 16);
        if format == 0 {
            return Err(MetaError::Invalid("format version 0"));
        }
        if !(OLDEST_READABLE_FORMAT..=FORMAT_VERSION).contains(&format) {
            return Err(MetaError::OtherFormat(format));
        }
        let page_size = get_u32(b, 20);
        if !page_size.is_power_of_two() || !(4096..=32768).contains(&page_size) {
            return Err(MetaError::Invalid("page size is not a power of two in 4096..=32768"));
        }
        if get_u32(b, 84) as usize != MAX_TABLES {
            return Err(MetaError::Invalid("table count differs from this format"));
        }
        let mut tables = [TreeRoot::default(); MAX_TABLES];
        for (i, t) in tables.iter_mut().enumerate() {
            let at = TABLES_AT + i * TABLE_LEN;
            *t = TreeRoot { page: get_u64(b, at), entries: get_u64(b, at + 8), level: b[at + 16] };
        }
        let v = get_u64(b, 40);
        let mut state_root = [0u8; 32];
        state_root.copy_from_slice(&b[88..120]);
        let m = Meta {
            format,
            page_size,
            salt: get_u64(b, 24),
            sequence: get_u64(b, 32),
            version: v.checked_sub(1),
            oldest_version: get_u64(b, 48),
            page_count: get_u64(b, 56),
            freelist_page: get_u64(b, 64),
            freelist_len: get_u64(b, 72),
            retention: get_u32(b, 80),
            state_root,
            tables,
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), MetaError> {
        let first = first_data_page(self.page_size as usize);
        if self.page_count < first || self.page_count > crate::MAX_PAGES {
            return Err(MetaError::Invalid("page count out of range"));
        }
        let in_file = |p: u64| p == 0 || (p >= first && p < self.page_count);
        if !in_file(self.freelist_page) || self.tables.iter().any(|t| !in_file(t.page)) {
            return Err(MetaError::Invalid("root page outside the file"));
        }
        if self.tables.iter().any(|t| t.level as usize >= crate::btree::MAX_DEPTH) {
            return Err(MetaError::Invalid("tree height beyond the limit"));
        }
        if let Some(v) = self.version {
            if self.oldest_version > v {
                return Err(MetaError::Invalid("oldest retained version after the latest"));
            }
        }
        if self.retention == 0 {
            return Err(MetaError::Invalid("retention of zero versions"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        let mut tables = [TreeRoot::default(); MAX_TABLES];
        tables[1] = TreeRoot { page: 5, level: 2, entries: 99 };
        Meta {
            format: FORMAT_VERSION,
            page_size: 4096,
            salt: 77,
            sequence: 3,
            version: Some(9),
            oldest_version: 1,
            page_count: 10,
            freelist_page: 7,
            freelist_len: 12,
            retention: 256,
            state_root: [3; 32],
            tables,
        }
    }

    #[test]
    fn round_trip_and_every_bit_flip_is_caught() {
        let m = sample();
        let b = m.encode(1);
        assert_eq!(Meta::decode(&b, 1).unwrap(), m);
        assert!(Meta::decode(&b, 0).is_err(), "a meta read from the other slot must fail");
        for bit in 0..META_LEN * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Meta::decode(&c, 1).is_err(), "flip of bit {bit} accepted");
        }
    }
}
