//! Version history: how a snapshot of an older version reads versioned tables.
//!
//! The trees always hold the newest state. The commit of version `u` also
//! writes one *change set*: a run holding, for every key of a versioned
//! table it changed, the value the key had before (at `u - 1`), sorted by
//! (table, key), with a bloom filter in front. The value of a key at an
//! older version `v` is the old value in the first change set after `v`
//! that has the key, or the newest value if none has. Writing a change set
//! is one sequential run; dropping a version out of the retention window
//! frees its run; the file holds one copy of the state plus the changes of
//! the retained window instead of a page-level copy per version.
//!
//! Change set layout (the run payload):
//! ```text
//! 0   u32  n: entries
//! 4   u32  bloom bytes (multiple of 8)
//! 8   u32  bloom hash count k
//! 12  u32  reserved
//! 16  bloom bits
//! ..  u32 offsets [n + 1], relative to the entry area, increasing
//! ..  entries: table u8 | key_len u16 | key | tag u8 (0 absent, 1 present) | value
//! ```

use crate::page::{get_u16, get_u32};
use crate::tables::Table;
use std::cmp::Ordering;
use xxhash_rust::xxh3::xxh3_64_with_seed;

const HEADER: usize = 16;
const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_K: u32 = 6;

/// Record stored per version in the VERSIONS table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionRecord {
    /// State root of the version.
    pub state_root: [u8; 32],
    /// Commit time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Number of keys of versioned tables the commit changed.
    pub changes: u64,
    /// First page of the change-set run (0 = no change set).
    pub changes_page: u64,
    /// Payload length of the change-set run.
    pub changes_len: u64,
    /// Caller-defined bytes (block number and hash for the node).
    pub extra: Vec<u8>,
}

impl VersionRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.extra.len());
        b.extend_from_slice(&self.state_root);
        b.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        b.extend_from_slice(&self.changes.to_le_bytes());
        b.extend_from_slice(&self.changes_page.to_le_bytes());
        b.extend_from_slice(&self.changes_len.to_le_bytes());
        b.extend_from_slice(&self.extra);
        b
    }

    /// Decodes a record; `None` when too short.
    pub fn decode(b: &[u8]) -> Option<VersionRecord> {
        if b.len() < 64 {
            return None;
        }
        let u = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        Some(VersionRecord {
            state_root: b[..32].try_into().ok()?,
            timestamp_ms: u(32),
            changes: u(40),
            changes_page: u(48),
            changes_len: u(56),
            extra: b[64..].to_vec(),
        })
    }
}

/// Key of a version record.
pub fn version_key(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

fn bloom_hashes(table: Table, key: &[u8]) -> (u64, u64) {
    let h1 = xxh3_64_with_seed(key, table.0 as u64);
    let h2 = xxh3_64_with_seed(key, 0x5bd1_e995 ^ table.0 as u64) | 1;
    (h1, h2)
}

/// Bytes of one entry: table, key length, key, presence flag, old value.
fn entry_len(key: &[u8], old: Option<&[u8]>) -> usize {
    1 + 2 + key.len() + 1 + old.map_or(0, <[u8]>::len)
}

/// Builds a change set from entries sorted by (table, key): (table, key, old value).
#[cfg(test)]
pub fn encode_change_set<'a>(
    entries: impl ExactSizeIterator<Item = (Table, &'a [u8], Option<&'a [u8]>)> + Clone,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_change_set_into(&mut out, entries);
    out
}

/// Appends the change set of `entries` (sorted by (table, key): (table,
/// key, old value)) to `out`. The entries are walked twice: once for
/// their sizes (`out` grows once, to its final size: a commit's change set
/// is megabytes, and growing it by doubling copied and faulted it in again
/// and again), once to copy them. The writer appends to a buffer it keeps
/// from one commit to the next, whose pages are already mapped.
pub fn encode_change_set_into<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = (Table, &'a [u8], Option<&'a [u8]>)> + Clone,
) {
    let (n, entry_bytes) =
        entries.clone().fold((0, 0), |(n, bytes), (_, key, old)| (n + 1, bytes + entry_len(key, old)));
    let bloom_bytes = if n == 0 { 0 } else { (n * BLOOM_BITS_PER_KEY).div_ceil(64) * 8 };
    let bits = (bloom_bytes * 8) as u64;
    let total = HEADER + bloom_bytes + 4 * (n + 1) + entry_bytes;
    let base = out.len();
    out.reserve(total);
    out.resize(base + HEADER + bloom_bytes + 4 * (n + 1), 0);
    let set = &mut out[base..];
    set[0..4].copy_from_slice(&(n as u32).to_le_bytes());
    set[4..8].copy_from_slice(&(bloom_bytes as u32).to_le_bytes());
    set[8..12].copy_from_slice(&BLOOM_K.to_le_bytes());
    let offsets_at = base + HEADER + bloom_bytes;
    let entries_at = out.len();
    let mut prev: Option<(Table, &[u8])> = None;
    for (i, (table, key, old)) in entries.enumerate() {
        debug_assert!(prev.is_none_or(|p| p < (table, key)), "change set entries must be sorted and distinct");
        prev = Some((table, key));
        let (h1, h2) = bloom_hashes(table, key);
        for j in 0..BLOOM_K as u64 {
            let bit = h1.wrapping_add(j.wrapping_mul(h2)) % bits;
            out[base + HEADER + (bit / 8) as usize] |= 1 << (bit % 8);
        }
        let off = (out.len() - entries_at) as u32;
        out[offsets_at + 4 * i..offsets_at + 4 * i + 4].copy_from_slice(&off.to_le_bytes());
        out.push(table.0);
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        match old {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(v);
            }
        }
    }
    let end = (out.len() - entries_at) as u32;
    out[offsets_at + 4 * n..offsets_at + 4 * n + 4].copy_from_slice(&end.to_le_bytes());
    debug_assert_eq!(out.len() - base, total, "entry sizes computed ahead");
}

/// A validated view of a change set.
#[derive(Clone, Copy)]
pub struct ChangeSet<'a> {
    bloom: &'a [u8],
    k: u32,
    offsets: &'a [u8],
    entries: &'a [u8],
    n: usize,
}

/// One entry of a change set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// Table of the key.
    pub table: Table,
    /// The key.
    pub key: &'a [u8],
    /// Its value before the change (`None`: it did not exist).
    pub old: Option<&'a [u8]>,
}

impl<'a> ChangeSet<'a> {
    /// Checks the layout; `Err` names what is wrong.
    pub fn parse(b: &'a [u8]) -> Result<ChangeSet<'a>, &'static str> {
        if b.len() < HEADER {
            return Err("change set shorter than its header");
        }
        let n = get_u32(b, 0) as usize;
        let bloom_bytes = get_u32(b, 4) as usize;
        let k = get_u32(b, 8);
        let offsets_at = HEADER.checked_add(bloom_bytes).ok_or("change set: bloom size")?;
        let entries_at = n
            .checked_add(1)
            .and_then(|m| m.checked_mul(4))
            .and_then(|m| m.checked_add(offsets_at))
            .ok_or("change set: count")?;
        if entries_at > b.len() || k == 0 || k > 32 || (n > 0 && bloom_bytes == 0) || !bloom_bytes.is_multiple_of(8) {
            return Err("change set header out of range");
        }
        let cs = ChangeSet {
            bloom: &b[HEADER..offsets_at],
            k,
            offsets: &b[offsets_at..entries_at],
            entries: &b[entries_at..],
            n,
        };
        if cs.offset(n) != cs.entries.len() {
            return Err("change set: entry area length differs from its offsets");
        }
        Ok(cs)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn offset(&self, i: usize) -> usize {
        get_u32(self.offsets, 4 * i) as usize
    }

    /// Entry `i`; `Err` if malformed.
    pub fn entry(&self, i: usize) -> Result<Change<'a>, &'static str> {
        let (s, e) = (self.offset(i), self.offset(i + 1));
        let b = self.entries.get(s..e).ok_or("change set: offsets out of order")?;
        if b.len() < 4 {
            return Err("change set: short entry");
        }
        let klen = get_u16(b, 1) as usize;
        let key = b.get(3..3 + klen).ok_or("change set: key out of entry")?;
        let old = match b.get(3 + klen) {
            Some(0) if b.len() == 4 + klen => None,
            Some(1) => Some(&b[4 + klen..]),
            _ => return Err("change set: bad value tag"),
        };
        Ok(Change { table: Table(b[0]), key, old })
    }

    fn may_contain(&self, table: Table, key: &[u8]) -> bool {
        if self.n == 0 {
            return false;
        }
        let bits = (self.bloom.len() * 8) as u64;
        let (h1, h2) = bloom_hashes(table, key);
        (0..self.k as u64).all(|j| {
            let bit = h1.wrapping_add(j.wrapping_mul(h2)) % bits;
            self.bloom[(bit / 8) as usize] & (1 << (bit % 8)) != 0
        })
    }

    /// Index of the first entry `>= (table, key)`.
    pub fn lower_bound(&self, table: Table, key: &[u8]) -> Result<usize, &'static str> {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = self.entry(mid)?;
            if (e.table, e.key).cmp(&(table, key)) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The old value recorded for `key`: `Some(old)` if the set has the key.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Option<&'a [u8]>>, &'static str> {
        if !self.may_contain(table, key) {
            return Ok(None);
        }
        let i = self.lower_bound(table, key)?;
        if i < self.n {
            let e = self.entry(i)?;
            if e.table == table && e.key == key {
                return Ok(Some(e.old));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_set_round_trip_and_lookup() {
        let keys: Vec<(Table, Vec<u8>, Option<Vec<u8>>)> = (0..500u32)
            .map(|i| {
                (
                    Table(1 + (i % 2) as u8),
                    (i / 2).to_be_bytes().to_vec(),
                    (i % 3 != 0).then(|| vec![i as u8; (i % 7) as usize]),
                )
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        let b = encode_change_set(sorted.iter().map(|(t, k, v)| (*t, &k[..], v.as_deref())));
        let cs = ChangeSet::parse(&b).unwrap();
        assert_eq!(cs.len(), 500);
        for (t, k, v) in &sorted {
            assert_eq!(cs.get(*t, k).unwrap(), Some(v.as_deref()));
        }
        let misses = (1000u32..3000).filter(|i| cs.get(Table(1), &i.to_be_bytes()).unwrap().is_some()).count();
        assert_eq!(misses, 0);
        for cut in [0, 5, 16, 100, b.len() - 1] {
            assert!(ChangeSet::parse(&b[..cut]).is_err(), "truncated to {cut}");
        }
        let empty = encode_change_set(std::iter::empty());
        assert!(ChangeSet::parse(&empty).unwrap().is_empty());
    }
}
