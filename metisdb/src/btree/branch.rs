//! Branch (interior) page format.
//!
//! ```text
//! header (24 B; byte 9 = level >= 1, count = n separators)
//! [24, 24+8(n+1))          child page ids (u64)
//! [.., +8n)                separator prefixes (first 8 bytes, big-endian value, stored LE)
//! [.., +2n)                separator cell offsets (u16)
//! ... free ...
//! cells                    klen u16 | separator key
//! ```
//! Child `i` holds keys `k` with `sep[i-1] <= k < sep[i]`. Separators are
//! the shortest keys that split two leaves (suffix truncation), which for
//! hashed keys are 3-5 bytes: a 4 KiB branch holds ~150 children.

use super::Malformed;
use crate::page::{self, get_u16, get_u64, key_prefix, put_u16, put_u64, HEADER_LEN};
use std::cmp::Ordering;

const CELL_HEADER_LEN: usize = 2;

/// Number of separators (children - 1).
#[inline]
pub fn count(page: &[u8]) -> usize {
    get_u16(page, 10) as usize
}

/// Tree level of the branch (leaves are level 0).
#[inline]
pub fn level(page: &[u8]) -> u8 {
    page[9]
}

#[inline]
fn children_at() -> usize {
    HEADER_LEN
}

#[inline]
fn prefixes_at(n: usize) -> usize {
    HEADER_LEN + 8 * (n + 1)
}

#[inline]
fn offsets_at(n: usize) -> usize {
    HEADER_LEN + 16 * n + 8
}

/// Checks the fields every other function relies on.
pub fn check(page: &[u8]) -> Result<(), Malformed> {
    let n = count(page);
    if offsets_at(n) + 2 * n > page.len() {
        return Err(Malformed("branch arrays exceed the page"));
    }
    if level(page) == 0 {
        return Err(Malformed("branch with level 0"));
    }
    Ok(())
}

/// Child `i` (0..=count).
#[inline]
pub fn child(page: &[u8], i: usize) -> u64 {
    get_u64(page, children_at() + 8 * i)
}

/// Overwrites child `i` in place (used when a child is copied on write).
#[inline]
pub fn set_child(page: &mut [u8], i: usize, id: u64) {
    put_u64(page, children_at() + 8 * i, id);
}

/// Separator `i` (0..count).
pub fn separator(page: &[u8], i: usize) -> Result<&[u8], Malformed> {
    let n = count(page);
    let off = get_u16(page, offsets_at(n) + 2 * i) as usize;
    let klen =
        page.get(off..off + 2).map(|b| get_u16(b, 0) as usize).ok_or(Malformed("branch cell offset out of page"))?;
    page.get(off + CELL_HEADER_LEN..off + CELL_HEADER_LEN + klen).ok_or(Malformed("branch separator out of page"))
}

/// Index of the child whose range holds `key`.
#[inline]
pub fn search(page: &[u8], key: &[u8]) -> Result<usize, Malformed> {
    let n = count(page);
    let kp = key_prefix(key);
    let pa = prefixes_at(n);
    let sep_cmp = |i: usize| -> Result<Ordering, Malformed> {
        Ok(match get_u64(page, pa + 8 * i).cmp(&kp) {
            Ordering::Equal => separator(page, i)?.cmp(key),
            o => o,
        })
    };
    // Keys past the last separator first: appends (sorted loads) go there.
    if n > 0 && sep_cmp(n - 1)? != Ordering::Greater {
        return Ok(n);
    }
    // Upper bound: first separator > key.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if sep_cmp(mid)? == Ordering::Greater {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// An owned, decoded branch, used when a branch changes shape (split, merge, new separator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BranchBuf {
    /// Level (>= 1).
    pub level: u8,
    /// Separators, sorted.
    pub seps: Vec<Vec<u8>>,
    /// Children; always `seps.len() + 1` of them.
    pub children: Vec<u64>,
}

impl BranchBuf {
    /// Decodes a branch page.
    pub fn decode(page: &[u8]) -> Result<BranchBuf, Malformed> {
        check(page)?;
        let n = count(page);
        let mut seps = Vec::with_capacity(n);
        for i in 0..n {
            seps.push(separator(page, i)?.to_vec());
        }
        let children = (0..=n).map(|i| child(page, i)).collect();
        Ok(BranchBuf { level: level(page), seps, children })
    }

    /// Bytes the encoded page needs.
    pub fn encoded_size(&self) -> usize {
        let n = self.seps.len();
        HEADER_LEN + 8 * (n + 1) + 10 * n + self.seps.iter().map(|s| CELL_HEADER_LEN + s.len()).sum::<usize>()
    }

    /// Encodes into a page buffer (the caller made sure it fits).
    pub fn encode(&self, page: &mut [u8], version: u64) {
        debug_assert_eq!(self.children.len(), self.seps.len() + 1);
        debug_assert!(self.encoded_size() <= page.len());
        debug_assert!(self.seps.windows(2).all(|w| w[0] < w[1]));
        page::init_header(page, page::PageKind::Branch, self.level, version);
        let n = self.seps.len();
        put_u16(page, 10, n as u16);
        for (i, c) in self.children.iter().enumerate() {
            put_u64(page, children_at() + 8 * i, *c);
        }
        let mut top = page.len();
        for (i, s) in self.seps.iter().enumerate() {
            put_u64(page, prefixes_at(n) + 8 * i, key_prefix(s));
            top -= CELL_HEADER_LEN + s.len();
            put_u16(page, top, s.len() as u16);
            page[top + CELL_HEADER_LEN..top + CELL_HEADER_LEN + s.len()].copy_from_slice(s);
            put_u16(page, offsets_at(n) + 2 * i, top as u16);
        }
        put_u16(page, 12, top as u16);
    }
}

/// Appends separator `sep` and child `right` after the last child, which
/// becomes `left` (a split of the last child, as sorted loads make them), in
/// place; `false` (page unchanged) when the page has no room. The page must
/// be a checked branch whose separators are all below `sep`.
pub fn try_append(page: &mut [u8], sep: &[u8], left: u64, right: u64) -> bool {
    let n = count(page);
    debug_assert!(n == 0 || separator(page, n - 1).is_ok_and(|last| last < sep));
    let top = get_u16(page, 12) as usize;
    let cell = CELL_HEADER_LEN + sep.len();
    // The arrays grow by a child, a prefix and an offset; the cell goes below the others.
    if offsets_at(n + 1) + 2 * (n + 1) + cell > top {
        return false;
    }
    // Offsets move by 16 bytes and prefixes by 8 (the child arrays grow in
    // front of them); offsets first, as the prefixes move into their place.
    page.copy_within(offsets_at(n)..offsets_at(n) + 2 * n, offsets_at(n + 1));
    page.copy_within(prefixes_at(n)..prefixes_at(n) + 8 * n, prefixes_at(n + 1));
    put_u64(page, children_at() + 8 * n, left);
    put_u64(page, children_at() + 8 * (n + 1), right);
    let top = top - cell;
    put_u16(page, top, sep.len() as u16);
    page[top + CELL_HEADER_LEN..top + cell].copy_from_slice(sep);
    put_u64(page, prefixes_at(n + 1) + 8 * n, key_prefix(sep));
    put_u16(page, offsets_at(n + 1) + 2 * n, top as u16);
    put_u16(page, 10, (n + 1) as u16);
    put_u16(page, 12, top as u16);
    true
}

/// The shortest key `s` with `left < s <= right` (suffix truncation of `right`).
pub fn shortest_separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    debug_assert!(left < right);
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    right[..(common + 1).min(right.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_search() {
        let b = BranchBuf {
            level: 1,
            seps: vec![b"b".to_vec(), b"d\0".to_vec(), b"dz".to_vec()],
            children: vec![10, 11, 12, 13],
        };
        let mut p = vec![0u8; 4096];
        b.encode(&mut p, 3);
        assert_eq!(BranchBuf::decode(&p).unwrap(), b);
        let cases: [(&[u8], usize); 7] =
            [(b"a", 0), (b"b", 1), (b"c", 1), (b"d", 1), (b"d\0", 2), (b"dz", 3), (b"zz", 3)];
        for (k, want) in cases {
            assert_eq!(search(&p, k).unwrap(), want, "{k:?}");
        }
    }

    #[test]
    fn append_in_place_equals_the_re_encoded_branch() {
        let mut buf = BranchBuf { level: 2, seps: vec![b"b".to_vec()], children: vec![10, 11] };
        let mut p = vec![0u8; 512];
        buf.encode(&mut p, 3);
        let mut appended = 0;
        for i in 0u16.. {
            let sep = [b"c".as_slice(), &i.to_be_bytes(), &[7; 5][..(i % 6) as usize]].concat();
            let (left, right) = (100 + u64::from(i), 1000 + u64::from(i));
            let mut expect = buf.clone();
            *expect.children.last_mut().unwrap() = left;
            expect.seps.push(sep.clone());
            expect.children.push(right);
            if !try_append(&mut p, &sep, left, right) {
                assert!(expect.encoded_size() > p.len(), "room was left for {} separators", expect.seps.len());
                break;
            }
            appended += 1;
            assert_eq!(BranchBuf::decode(&p).unwrap(), expect);
            assert_eq!(search(&p, &sep).unwrap(), expect.seps.len());
            assert_eq!(search(&p, b"b").unwrap(), 1);
            buf = expect;
        }
        assert!(appended > 10, "{appended}");
    }

    #[test]
    fn shortest_separator_splits() {
        for (l, r) in [(&b"abc"[..], &b"abd"[..]), (b"a", b"ab"), (b"abc", b"b"), (b"", b"\0")] {
            let s = shortest_separator(l, r);
            assert!(l < &s[..] && &s[..] <= r, "{l:?} {r:?} {s:?}");
        }
    }
}
