//! Leaf page format and in-place edits on a dirty page buffer.
//!
//! ```text
//! header (24 B; count = n, [12..14) cell area start, [14..16) fragmented bytes)
//! [24, 24+8n)        key prefixes: first 8 key bytes as big-endian u64, stored LE
//! [24+8n, 24+10n)    cell offsets (u16)
//! ... free ...
//! [cells_start, ps)  cells: klen u16 | vlen u32 (bit 31: value in a run) | key | value or run page id u64
//! ```
//! The prefix array lets a lookup binary-search contiguous integers instead
//! of chasing an offset to a key for every probe: for 32-byte hashed keys the
//! prefixes almost never tie, so a search reads ~4 cache lines of a page.

use super::Malformed;
use crate::page::{self, get_u16, get_u32, get_u64, key_prefix, put_u16, put_u32, put_u64, HEADER_LEN};
use std::cmp::Ordering;

const SLOT_LEN: usize = 10;
const CELL_HEADER_LEN: usize = 6;
const OVERFLOW_BIT: u32 = 1 << 31;

/// A value as stored in a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// The value bytes, inline in the leaf.
    Inline(&'a [u8]),
    /// The value lives in a run of pages starting at `page`.
    Run {
        /// First page of the run (a temporary id while dirty).
        page: u64,
        /// Value length in bytes.
        len: u32,
    },
}

impl ValueRef<'_> {
    fn stored_len(&self) -> usize {
        match self {
            ValueRef::Inline(v) => v.len(),
            ValueRef::Run { .. } => 8,
        }
    }
}

/// Bytes an entry takes in a leaf (slot + cell).
pub fn entry_size(key_len: usize, value: &ValueRef<'_>) -> usize {
    SLOT_LEN + CELL_HEADER_LEN + key_len + value.stored_len()
}

/// Largest entry a leaf accepts inline: a quarter of the usable space, so that
/// any split leaves both halves within a page.
pub fn max_entry_size(page_size: usize) -> usize {
    (page_size - HEADER_LEN) / 4
}

/// Number of entries in a leaf.
#[inline]
pub fn count(page: &[u8]) -> usize {
    get_u16(page, 10) as usize
}

fn cells_start(page: &[u8]) -> usize {
    get_u16(page, 12) as usize
}

fn frag(page: &[u8]) -> usize {
    get_u16(page, 14) as usize
}

#[inline]
fn prefix_at(page: &[u8], i: usize) -> u64 {
    get_u64(page, HEADER_LEN + 8 * i)
}

#[inline]
fn offset_at(page: &[u8], n: usize, i: usize) -> usize {
    get_u16(page, HEADER_LEN + 8 * n + 2 * i) as usize
}

/// Checks the fields every other function relies on; run once per page read.
pub fn check(page: &[u8]) -> Result<(), Malformed> {
    let n = count(page);
    let slots_end = HEADER_LEN + SLOT_LEN * n;
    let cs = cells_start(page);
    if slots_end > cs || cs > page.len() {
        return Err(Malformed("leaf slot array overlaps its cell area"));
    }
    Ok(())
}

fn cell(page: &[u8], i: usize) -> Result<(&[u8], ValueRef<'_>), Malformed> {
    let n = count(page);
    let off = offset_at(page, n, i);
    let hdr = page.get(off..off + CELL_HEADER_LEN).ok_or(Malformed("leaf cell offset out of page"))?;
    let klen = get_u16(hdr, 0) as usize;
    let vraw = get_u32(hdr, 2);
    let kstart = off + CELL_HEADER_LEN;
    let key = page.get(kstart..kstart + klen).ok_or(Malformed("leaf key out of page"))?;
    let vstart = kstart + klen;
    let value = if vraw & OVERFLOW_BIT != 0 {
        let b = page.get(vstart..vstart + 8).ok_or(Malformed("leaf run reference out of page"))?;
        ValueRef::Run { page: get_u64(b, 0), len: vraw & !OVERFLOW_BIT }
    } else {
        let v = page.get(vstart..vstart + vraw as usize).ok_or(Malformed("leaf value out of page"))?;
        ValueRef::Inline(v)
    };
    Ok((key, value))
}

/// Key of entry `i`.
pub fn key(page: &[u8], i: usize) -> Result<&[u8], Malformed> {
    cell(page, i).map(|(k, _)| k)
}

/// Entry `i` (key and value).
pub fn entry(page: &[u8], i: usize) -> Result<(&[u8], ValueRef<'_>), Malformed> {
    if i >= count(page) {
        return Err(Malformed("leaf index out of range"));
    }
    cell(page, i)
}

/// Compares entry `i` with `key` (whose prefix is `kp`).
#[inline]
fn cmp_at(page: &[u8], i: usize, key: &[u8], kp: u64) -> Result<Ordering, Malformed> {
    match prefix_at(page, i).cmp(&kp) {
        Ordering::Equal => Ok(self::key(page, i)?.cmp(key)),
        o => Ok(o),
    }
}

/// Binary search: `Ok(i)` if entry `i` has `key`, else `Err(i)` where it would go.
pub fn search(page: &[u8], key: &[u8]) -> Result<Result<usize, usize>, Malformed> {
    let kp = key_prefix(key);
    let (mut lo, mut hi) = (0usize, count(page));
    // Past the last entry first: appends (sorted loads) go there.
    if hi > 0 {
        match cmp_at(page, hi - 1, key, kp)? {
            Ordering::Less => return Ok(Err(hi)),
            Ordering::Equal => return Ok(Ok(hi - 1)),
            Ordering::Greater => {}
        }
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match cmp_at(page, mid, key, kp)? {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Ok(Ok(mid)),
        }
    }
    Ok(Err(lo))
}

/// Initializes an empty leaf.
pub fn init(page: &mut [u8], version: u64) {
    page::init_header(page, page::PageKind::Leaf, 0, version);
    let len = page.len();
    put_u16(page, 12, len as u16);
}

/// Bytes free in the leaf, counting fragmented holes (usable after compaction).
pub fn free_space(page: &[u8]) -> usize {
    cells_start(page) - (HEADER_LEN + SLOT_LEN * count(page)) + frag(page)
}

/// Bytes used by slots and cells.
pub fn used_space(page: &[u8]) -> usize {
    page.len() - HEADER_LEN - free_space(page)
}

fn cell_len_at(page: &[u8], i: usize) -> usize {
    let n = count(page);
    let off = offset_at(page, n, i);
    let klen = get_u16(page, off) as usize;
    let vraw = get_u32(page, off + 2);
    let vlen = if vraw & OVERFLOW_BIT != 0 { 8 } else { vraw as usize };
    CELL_HEADER_LEN + klen + vlen
}

/// Rewrites the cell area without holes.
fn compact(page: &mut [u8]) {
    let n = count(page);
    let copy = page.to_vec();
    let mut top = page.len();
    for i in 0..n {
        let off = offset_at(&copy, n, i);
        let len = cell_len_at(&copy, i);
        top -= len;
        page[top..top + len].copy_from_slice(&copy[off..off + len]);
        put_u16(page, HEADER_LEN + 8 * n + 2 * i, top as u16);
    }
    put_u16(page, 12, top as u16);
    put_u16(page, 14, 0);
}

/// Inserts an entry at index `i` (the caller found it with `search`). Returns
/// false, leaving the page unchanged, when it does not fit.
pub fn insert(page: &mut [u8], i: usize, key: &[u8], value: ValueRef<'_>) -> bool {
    let n = count(page);
    debug_assert!(i <= n);
    let need = entry_size(key.len(), &value);
    if free_space(page) < need {
        return false;
    }
    let slots_end = HEADER_LEN + SLOT_LEN * n;
    if cells_start(page) - slots_end < need {
        compact(page);
    }
    let cell_len = need - SLOT_LEN;
    let top = cells_start(page) - cell_len;
    // Cell.
    put_u16(page, top, key.len() as u16);
    match value {
        ValueRef::Inline(v) => {
            put_u32(page, top + 2, v.len() as u32);
            page[top + CELL_HEADER_LEN..top + CELL_HEADER_LEN + key.len()].copy_from_slice(key);
            let vs = top + CELL_HEADER_LEN + key.len();
            page[vs..vs + v.len()].copy_from_slice(v);
        }
        ValueRef::Run { page: p, len } => {
            debug_assert!(len & OVERFLOW_BIT == 0);
            put_u32(page, top + 2, len | OVERFLOW_BIT);
            page[top + CELL_HEADER_LEN..top + CELL_HEADER_LEN + key.len()].copy_from_slice(key);
            put_u64(page, top + CELL_HEADER_LEN + key.len(), p);
        }
    }
    // Slot arrays: offsets move by 8 (new prefix) and open a hole at i.
    let pre = HEADER_LEN;
    let offs_old = HEADER_LEN + 8 * n;
    let offs_new = HEADER_LEN + 8 * (n + 1);
    // Move offsets [i, n) to new position i+1, then [0, i) to new position 0.
    page.copy_within(offs_old + 2 * i..offs_old + 2 * n, offs_new + 2 * (i + 1));
    page.copy_within(offs_old..offs_old + 2 * i, offs_new);
    put_u16(page, offs_new + 2 * i, top as u16);
    // Prefixes.
    page.copy_within(pre + 8 * i..pre + 8 * n, pre + 8 * (i + 1));
    put_u64(page, pre + 8 * i, key_prefix(key));
    put_u16(page, 10, (n + 1) as u16);
    put_u16(page, 12, top as u16);
    true
}

/// Removes entry `i`.
pub fn remove(page: &mut [u8], i: usize) {
    let n = count(page);
    debug_assert!(i < n);
    let off = offset_at(page, n, i);
    let len = cell_len_at(page, i);
    let pre = HEADER_LEN;
    let offs_old = HEADER_LEN + 8 * n;
    let offs_new = HEADER_LEN + 8 * (n - 1);
    page.copy_within(pre + 8 * (i + 1)..pre + 8 * n, pre + 8 * i);
    page.copy_within(offs_old..offs_old + 2 * i, offs_new);
    page.copy_within(offs_old + 2 * (i + 1)..offs_old + 2 * n, offs_new + 2 * i);
    put_u16(page, 10, (n - 1) as u16);
    if off == cells_start(page) {
        put_u16(page, 12, (off + len) as u16);
    } else {
        let f = frag(page) + len;
        put_u16(page, 14, f as u16);
    }
    if n == 1 {
        // Empty page: reset the cell area so no fragmentation lingers.
        let len = page.len();
        put_u16(page, 12, len as u16);
        put_u16(page, 14, 0);
    }
}

/// Builds a leaf holding `entries` (sorted, fitting).
pub fn build<'a>(page: &mut [u8], version: u64, entries: impl Iterator<Item = (&'a [u8], ValueRef<'a>)>) {
    init(page, version);
    for (k, v) in entries {
        let n = count(page);
        let ok = insert(page, n, k, v);
        debug_assert!(ok, "build called with entries that do not fit");
    }
}

/// Rewrites the run references of a leaf (temporary ids become page numbers at commit).
pub fn patch_run_refs(page: &mut [u8], map: impl Fn(u64) -> u64) {
    let n = count(page);
    for i in 0..n {
        let off = offset_at(page, n, i);
        let klen = get_u16(page, off) as usize;
        let vraw = get_u32(page, off + 2);
        if vraw & OVERFLOW_BIT != 0 {
            let at = off + CELL_HEADER_LEN + klen;
            let old = get_u64(page, at);
            put_u64(page, at, map(old));
        }
    }
}

/// Calls `f` with every run reference of a leaf: (first page, value length).
pub fn for_each_run(page: &[u8], mut f: impl FnMut(u64, u32)) -> Result<(), Malformed> {
    for i in 0..count(page) {
        if let (_, ValueRef::Run { page: p, len }) = entry(page, i)? {
            f(p, len);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_search_remove_keep_order() {
        let mut p = vec![0u8; 4096];
        init(&mut p, 1);
        let mut model = std::collections::BTreeMap::new();
        let mut x: u64 = 7;
        for _ in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = (x >> 40).to_be_bytes()[3..].to_vec();
            let val = vec![(x >> 8) as u8; (x % 40) as usize];
            match search(&p, &key).unwrap() {
                Ok(i) => {
                    if x.is_multiple_of(3) {
                        remove(&mut p, i);
                        model.remove(&key);
                    }
                }
                Err(i) => {
                    if insert(&mut p, i, &key, ValueRef::Inline(&val)) {
                        model.insert(key, val);
                    }
                }
            }
            check(&p).unwrap();
            assert_eq!(count(&p), model.len());
            for (i, (k, v)) in model.iter().enumerate() {
                let (pk, pv) = entry(&p, i).unwrap();
                assert_eq!(pk, &k[..]);
                assert_eq!(pv, ValueRef::Inline(&v[..]));
            }
        }
    }
}
