//! Page allocation: the free set, the quarantine of recently freed pages,
//! and the free-list encoding stored with each meta.
//!
//! A page freed by the commit that produced version `f` is still visible in
//! version `f - 1`. It may be reused once (a) no live reader pins a version
//! below `f` and (b) a meta for a version `>= f` is durable, so that the meta
//! a crash would fall back to never sees a reused page. Until then it waits
//! in the quarantine, keyed by `f`.

use std::collections::VecDeque;

/// The writer's view of free space.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    /// Reusable pages, sorted ascending.
    free: Vec<u64>,
    /// Pages freed by the commit of a version, oldest first.
    quarantine: VecDeque<(u64, Vec<u64>)>,
    /// Pages in the file (high-water mark): ids `>= page_count` are unused.
    page_count: u64,
}

impl Allocator {
    /// Allocator of a file with `page_count` pages whose free pages are `free`.
    pub fn new(page_count: u64, mut free: Vec<u64>) -> Allocator {
        free.sort_unstable();
        free.dedup();
        Allocator { free, quarantine: VecDeque::new(), page_count }
    }

    /// Pages in the file.
    pub fn page_count(&self) -> u64 {
        self.page_count
    }

    /// Reusable pages.
    pub fn free_len(&self) -> usize {
        self.free.len()
    }

    /// Pages waiting for readers or durability.
    pub fn quarantined_len(&self) -> usize {
        self.quarantine.iter().map(|(_, p)| p.len()).sum()
    }

    /// Number of maximal runs of consecutive free pages, and the longest.
    pub fn extents(&self) -> (usize, u64) {
        let mut n = 0;
        let mut longest = 0;
        let mut run = 0u64;
        for (i, p) in self.free.iter().enumerate() {
            if i > 0 && self.free[i - 1] + 1 == *p {
                run += 1;
            } else {
                n += 1;
                run = 1;
            }
            longest = longest.max(run);
        }
        (n, longest)
    }

    /// Puts the pages freed by the commit of `version` into quarantine.
    pub fn quarantine(&mut self, version: u64, pages: Vec<u64>) {
        if pages.is_empty() {
            return;
        }
        debug_assert!(self.quarantine.back().is_none_or(|(v, _)| *v <= version));
        self.quarantine.push_back((version, pages));
    }

    /// Makes pages freed by commits of versions `<= gate` reusable.
    pub fn release(&mut self, gate: u64) {
        let mut released = Vec::new();
        while self.quarantine.front().is_some_and(|(v, _)| *v <= gate) {
            released.extend(self.quarantine.pop_front().expect("checked non-empty").1);
        }
        if released.is_empty() {
            return;
        }
        released.sort_unstable();
        let mut merged = Vec::with_capacity(self.free.len() + released.len());
        let (mut a, mut b) = (self.free.iter().peekable(), released.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x <= y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let p = *next.expect("peeked");
            debug_assert!(merged.last() != Some(&p), "page {p} freed twice");
            merged.push(p);
        }
        self.free = merged;
    }

    /// Takes `n` pages, lowest numbers first, growing the file if needed.
    pub fn alloc(&mut self, n: usize) -> Vec<u64> {
        let take = n.min(self.free.len());
        let mut out: Vec<u64> = self.free.drain(..take).collect();
        while out.len() < n {
            out.push(self.page_count);
            self.page_count += 1;
        }
        out
    }

    /// Takes `n` pages from the longest free runs first (then the end of the
    /// file), returned in ascending order: few, long sequential writes.
    pub fn alloc_contiguous(&mut self, n: usize) -> Vec<u64> {
        if n == 0 {
            return Vec::new();
        }
        // Runs of consecutive free pages: (length, start index in `free`).
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        for i in 1..=self.free.len() {
            if i == self.free.len() || self.free[i - 1] + 1 != self.free[i] {
                runs.push((i - start, start));
                start = i;
            }
        }
        runs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut taken = vec![false; self.free.len()];
        let mut out = Vec::with_capacity(n);
        for (len, s) in runs {
            // Runs shorter than this are not worth it: holes are left to cold pages.
            if out.len() == n || len < 16 {
                break;
            }
            let k = len.min(n - out.len());
            for t in &mut taken[s..s + k] {
                *t = true;
            }
            out.extend_from_slice(&self.free[s..s + k]);
        }
        let mut i = 0;
        self.free.retain(|_| {
            i += 1;
            !taken[i - 1]
        });
        while out.len() < n {
            out.push(self.page_count);
            self.page_count += 1;
        }
        out.sort_unstable();
        out
    }

    /// Takes `n` consecutive pages; returns the first.
    pub fn alloc_run(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        if n == 1 {
            return self.alloc(1)[0];
        }
        let mut start = 0;
        for i in 0..self.free.len() {
            if i > 0 && self.free[i - 1] + 1 != self.free[i] {
                start = i;
            }
            if (i - start + 1) as u64 == n {
                let first = self.free[start];
                self.free.drain(start..=i);
                return first;
            }
        }
        // A free tail touching the end of the file can be extended.
        let mut first = self.page_count;
        while first > 0 && self.free.last() == Some(&(first - 1)) {
            first -= 1;
            self.free.pop();
        }
        self.page_count = first + n;
        first
    }

    /// Every page that is not reachable from the latest version: free and quarantined.
    pub fn unreachable(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.free.clone();
        for (_, p) in &self.quarantine {
            all.extend_from_slice(p);
        }
        all.sort_unstable();
        all
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Encodes sorted, distinct page numbers as extents: count, then
/// (gap from the previous extent's end, length) varint pairs.
pub fn encode_pages(pages: &[u64]) -> Vec<u8> {
    debug_assert!(pages.windows(2).all(|w| w[0] < w[1]));
    let mut extents: Vec<(u64, u64)> = Vec::new();
    for &p in pages {
        match extents.last_mut() {
            Some((s, l)) if *s + *l == p => *l += 1,
            _ => extents.push((p, 1)),
        }
    }
    let mut out = Vec::with_capacity(extents.len() * 3 + 10);
    put_varint(&mut out, extents.len() as u64);
    let mut end = 0;
    for (s, l) in extents {
        put_varint(&mut out, s - end);
        put_varint(&mut out, l);
        end = s + l;
    }
    out
}

/// Decodes [`encode_pages`]; every page must be in `[first, limit)`.
pub fn decode_pages(b: &[u8], first: u64, limit: u64) -> Result<Vec<u64>, &'static str> {
    let mut pos = 0;
    let n = get_varint(b, &mut pos).ok_or("free list: truncated count")?;
    // Each extent takes at least two bytes: bound the count before allocating.
    if n > (b.len() / 2) as u64 {
        return Err("free list: extent count exceeds its length");
    }
    let mut out = Vec::new();
    let mut end = 0u64;
    for _ in 0..n {
        let gap = get_varint(b, &mut pos).ok_or("free list: truncated extent")?;
        let len = get_varint(b, &mut pos).ok_or("free list: truncated extent")?;
        let s = end.checked_add(gap).ok_or("free list: overflow")?;
        let e = s.checked_add(len).ok_or("free list: overflow")?;
        if len == 0 || s < first || e > limit || (end != 0 && gap == 0) {
            return Err("free list: extent outside the file or not canonical");
        }
        out.extend(s..e);
        end = e;
    }
    if pos != b.len() {
        return Err("free list: trailing bytes");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let pages = vec![2, 3, 4, 9, 11, 12, 1000];
        let b = encode_pages(&pages);
        assert_eq!(decode_pages(&b, 2, 1001).unwrap(), pages);
        assert!(decode_pages(&b, 2, 1000).is_err());
        assert!(decode_pages(&b[..b.len() - 1], 2, 1001).is_err());
    }

    #[test]
    fn quarantine_waits_for_the_gate_and_runs_are_contiguous() {
        let mut a = Allocator::new(10, vec![]);
        a.quarantine(5, vec![3, 4, 5]);
        a.release(4);
        assert_eq!(a.free_len(), 0);
        assert_eq!(a.alloc(1), vec![10]);
        a.release(5);
        assert_eq!(a.alloc_run(3), 3);
        assert_eq!(a.alloc_run(2), 11);
        assert_eq!(a.page_count(), 13);
    }
}
