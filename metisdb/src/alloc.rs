//! Page allocation: the free set, the quarantine of recently freed pages,
//! and the free-list encoding stored with each meta.
//!
//! A page freed by the commit that produced version `f` is still visible in
//! version `f - 1`. It may be reused once (a) no live reader pins a version
//! below `f` and (b) a meta for a version `>= f` is durable, so that the meta
//! a crash would fall back to never sees a reused page. Until then it waits
//! in the quarantine, keyed by `f`.

use crate::page_set::PageSet;
use std::collections::{BTreeSet, VecDeque};

/// Pages per segment: the unit of sequential placement and of cleaning (1 MiB at 4 KiB pages).
pub const SEGMENT_PAGES: u64 = 256;

/// Where a page goes. Each stream fills its own segment, so that pages
/// with the same lifetime share segments and free up together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Branch pages and records that nearly every commit rewrites.
    Hot = 0,
    /// Leaves of the account and storage tables.
    Cold = 1,
    /// Change sets and free lists: freed in the order they were written.
    Log = 2,
    /// Large values (bytecode, block bodies): long-lived.
    Values = 3,
}

/// The writer's view of free space.
///
/// Free pages are either in `free` (released, sorted) or in the unused part
/// of a stream's open segment. Allocation takes whole free segments, so a
/// commit writes long sequential runs; [`Allocator::victims`] names the
/// emptiest segments, whose live pages the writer relocates so that they
/// become whole free segments again.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    /// Released free pages (pages of open segments excluded). A bitmap:
    /// every segment a commit opens or closes takes or gives back up to 256
    /// pages, a large file has hundreds of thousands free, and every durable
    /// point lists them all.
    free: PageSet,
    /// Pages freed by the commit that made state `s`, oldest first.
    quarantine: VecDeque<(u64, Vec<u64>)>,
    /// Pages in the file (high-water mark): ids `>= page_count` are unused.
    page_count: u64,
    /// Pages below this are the meta pages.
    first_page: u64,
    /// Per segment: free pages (released or unused in an open segment).
    seg_free: Vec<u32>,
    /// Per segment: quarantined pages.
    seg_quar: Vec<u32>,
    /// Segments entirely free and not open.
    free_segs: BTreeSet<u64>,
    /// Open segment per stream: (next page, end of the segment range).
    open: [Option<(u64, u64)>; 4],
    /// Segments holding pages that cleaning cannot move (runs).
    unmovable: BTreeSet<u64>,
}

fn seg_of(p: u64) -> u64 {
    p / SEGMENT_PAGES
}

impl Allocator {
    /// Allocator of a file with `page_count` pages, meta pages below
    /// `first_page`, whose free pages are `free`.
    pub fn new(page_count: u64, first_page: u64, free: Vec<u64>) -> Allocator {
        let free = free.into_iter().collect();
        let mut a = Allocator { free, page_count, first_page, ..Default::default() };
        a.grow_segments();
        for p in a.free.iter() {
            a.seg_free[seg_of(p) as usize] += 1;
        }
        // Pages past the end of the file are free too.
        for (s, f) in a.seg_free.iter_mut().enumerate() {
            let (lo, hi) = (s as u64 * SEGMENT_PAGES, (s as u64 + 1) * SEGMENT_PAGES);
            *f += hi.saturating_sub(page_count.max(lo)) as u32;
        }
        for s in 0..a.seg_free.len() as u64 {
            a.note_segment(s);
        }
        a.check("new");
        a
    }

    fn grow_segments(&mut self) {
        let n = (seg_of(self.page_count.max(self.first_page)) + 1) as usize;
        if self.seg_free.len() < n {
            self.seg_free.resize(n, 0);
            self.seg_quar.resize(n, 0);
        }
    }

    /// True when a stream's open range still has unused pages in `seg`.
    fn is_open(&self, seg: u64) -> bool {
        let (lo, hi) = (seg * SEGMENT_PAGES, (seg + 1) * SEGMENT_PAGES);
        self.open.iter().flatten().any(|&(next, end)| next < end && next < hi && end > lo)
    }

    /// Keeps `free_segs` in step with the counters of `seg`.
    fn note_segment(&mut self, seg: u64) {
        let whole = seg > 0 || self.first_page == 0;
        if whole && self.seg_free[seg as usize] as u64 == SEGMENT_PAGES && !self.is_open(seg) {
            self.free_segs.insert(seg);
            self.unmovable.remove(&seg);
        } else {
            self.free_segs.remove(&seg);
        }
    }

    /// Pages in the file.
    pub fn page_count(&self) -> u64 {
        self.page_count
    }

    /// Free pages (released, in open segments, and in the tail segment).
    pub fn free_len(&self) -> usize {
        self.unreachable_len() as usize
    }

    /// `unreachable().len()` without building the list: the three sets are disjoint.
    fn unreachable_len(&self) -> u64 {
        let open: u64 =
            self.open.iter().flatten().map(|&(next, end)| end.min(self.page_count).saturating_sub(next)).sum();
        self.free.len() as u64 + open + self.quarantined_len() as u64
    }

    /// Pages waiting for readers or durability.
    pub fn quarantined_len(&self) -> usize {
        self.quarantine.iter().map(|(_, p)| p.len()).sum()
    }

    /// Entirely free segments.
    pub fn free_segments(&self) -> usize {
        self.free_segs.len()
    }

    /// Number of maximal runs of consecutive free pages, and the longest.
    pub fn extents(&self) -> (usize, u64) {
        self.unreachable_free().extents().fold((0, 0), |(n, longest), (_, len)| (n + 1, longest.max(len)))
    }

    /// Puts the pages freed by the commit that made state `seq` into quarantine.
    pub fn quarantine(&mut self, seq: u64, pages: Vec<u64>) {
        if pages.is_empty() {
            return;
        }
        debug_assert!(self.quarantine.back().is_none_or(|(v, _)| *v <= seq));
        for &p in &pages {
            self.seg_quar[seg_of(p) as usize] += 1;
        }
        self.quarantine.push_back((seq, pages));
        self.check("quarantine");
    }

    /// Makes pages freed by commits of states `<= gate` reusable.
    pub fn release(&mut self, gate: u64) {
        let mut released = Vec::new();
        while self.quarantine.front().is_some_and(|(v, _)| *v <= gate) {
            released.extend(self.quarantine.pop_front().expect("checked non-empty").1);
        }
        if released.is_empty() {
            return;
        }
        released.sort_unstable();
        let mut touched = BTreeSet::new();
        for &p in &released {
            let s = seg_of(p) as usize;
            self.seg_quar[s] -= 1;
            self.seg_free[s] += 1;
            touched.insert(s as u64);
        }
        self.free.extend(released);
        for s in touched {
            self.note_segment(s);
        }
        self.check("release");
    }

    /// Removes `[lo, hi)` from the released free list (they were all free).
    fn take_range(&mut self, lo: u64, hi: u64) {
        let taken = self.free.remove_range(lo, hi);
        debug_assert_eq!(taken as u64, hi.min(self.page_count).saturating_sub(lo), "pages {lo}..{hi} are not all free");
    }

    /// Gives the unused rest of a stream's open segment back to the free list.
    fn close(&mut self, stream: Stream) {
        if let Some((next, end)) = self.open[stream as usize].take() {
            self.free.insert_range(next, end.min(self.page_count));
            if next < end {
                for seg in seg_of(next)..=seg_of(end - 1) {
                    self.note_segment(seg);
                }
            }
        }
    }

    /// Opens a new segment range of `pages` pages (a whole number of
    /// segments, consecutive) for `stream`: free segments first, else at the end of the file.
    fn open_segment(&mut self, stream: Stream, pages: u64) {
        self.close(stream);
        let k = pages.div_ceil(SEGMENT_PAGES).max(1);
        let start = if k == 1 {
            self.free_segs.first().copied()
        } else {
            let segs: Vec<u64> = self.free_segs.iter().copied().collect();
            segs.windows(k as usize).find(|w| w[w.len() - 1] - w[0] == k - 1).map(|w| w[0])
        };
        let (lo, hi) = match start {
            Some(s) => {
                for seg in s..s + k {
                    self.free_segs.remove(&seg);
                }
                let (lo, hi) = (s * SEGMENT_PAGES, (s + k) * SEGMENT_PAGES);
                self.take_range(lo, hi);
                (lo, hi)
            }
            None => {
                // At the end of the file (after other streams' open ranges),
                // up to a segment boundary.
                // Small files grow in small steps (an eighth of their size), so
                // that three streams do not each reserve a segment of a tiny file.
                let lo = self.open.iter().flatten().map(|&(_, end)| end).fold(self.page_count, u64::max);
                let step = (self.page_count / 8).clamp(16, SEGMENT_PAGES);
                let boundary = (lo + 1).div_ceil(SEGMENT_PAGES) * SEGMENT_PAGES;
                (lo, (lo + step).min(boundary).max(lo + pages.max(1)))
            }
        };
        self.open[stream as usize] = Some((lo, hi));
        self.page_count = self.page_count.max(lo);
        self.grow_segments_to(hi);
    }

    fn grow_segments_to(&mut self, end: u64) {
        let n = seg_of(end.saturating_sub(1)) as usize + 1;
        if self.seg_free.len() < n {
            // Segments past the end of the file are entirely free.
            self.seg_free.resize(n, SEGMENT_PAGES as u32);
            self.seg_quar.resize(n, 0);
        }
    }

    fn take_page(&mut self, stream: Stream) -> u64 {
        loop {
            if let Some((next, end)) = self.open[stream as usize] {
                if next < end {
                    self.open[stream as usize] = Some((next + 1, end));
                    self.seg_free[seg_of(next) as usize] -= 1;
                    self.page_count = self.page_count.max(next + 1);
                    return next;
                }
            }
            self.open_segment(stream, SEGMENT_PAGES);
        }
    }

    /// Takes `n` pages for `stream`, in ascending order within each segment.
    pub fn alloc(&mut self, stream: Stream, n: usize) -> Vec<u64> {
        let out = (0..n).map(|_| self.take_page(stream)).collect();
        self.check("alloc");
        out
    }

    /// Takes `n` consecutive pages for a run of `stream`; returns the first.
    pub fn alloc_run(&mut self, stream: Stream, n: u64) -> u64 {
        debug_assert!(n > 0);
        let fits = self.open[stream as usize].is_some_and(|(next, end)| end - next >= n);
        if !fits {
            self.open_segment(stream, n);
        }
        let (next, end) = self.open[stream as usize].expect("opened above");
        for p in next..next + n {
            self.seg_free[seg_of(p) as usize] -= 1;
        }
        self.open[stream as usize] = Some((next + n, end));
        self.page_count = self.page_count.max(next + n);
        self.check("alloc_run");
        next
    }

    /// Segments worth cleaning, emptiest first, whose live pages add up to
    /// at most `budget`: not open, not holding quarantined pages (they are
    /// about to free up anyway), not known to hold unmovable pages, at most
    /// three quarters live.
    pub fn victims(&self, budget: u64) -> Vec<u64> {
        let mut cands: Vec<(u32, u64)> = (1..self.seg_free.len() as u64)
            .filter(|&s| {
                let free = self.seg_free[s as usize] as u64;
                self.seg_quar[s as usize] == 0
                    && free < SEGMENT_PAGES
                    && (SEGMENT_PAGES - free) * 4 <= SEGMENT_PAGES * 3
                    && (s + 1) * SEGMENT_PAGES <= self.page_count
                    && !self.is_open(s)
                    && !self.unmovable.contains(&s)
            })
            .map(|s| (SEGMENT_PAGES as u32 - self.seg_free[s as usize], s))
            .collect();
        cands.sort_unstable();
        let mut out = Vec::new();
        let mut used = 0;
        for (live, s) in cands {
            if used + live as u64 > budget {
                break;
            }
            used += live as u64;
            out.push(s);
        }
        out
    }

    /// Records that `seg` holds pages cleaning cannot move.
    pub fn mark_unmovable(&mut self, seg: u64) {
        self.unmovable.insert(seg);
    }

    /// True when page `p` is free (released or unused in an open segment).
    pub fn is_free(&self, p: u64) -> bool {
        self.free.contains(p)
            || self.open.iter().flatten().any(|&(next, end)| p >= next && p < end)
            || p >= self.page_count
    }

    /// Pages of the file that hold nothing: released, and unused in the
    /// open segments inside the file.
    fn unreachable_free(&self) -> PageSet {
        let mut set = self.free.clone();
        for &(next, end) in self.open.iter().flatten() {
            set.insert_range(next, end.min(self.page_count));
        }
        set
    }

    /// Every page of the file that the latest state does not reach: free,
    /// unused in open segments, and quarantined.
    fn unreachable_set(&self) -> PageSet {
        let mut set = self.unreachable_free();
        set.extend(self.quarantine.iter().flat_map(|(_, p)| p.iter().copied()));
        set
    }

    /// Every page of the file that the latest state does not reach (free,
    /// unused in open segments, quarantined), sorted.
    pub fn unreachable(&self) -> Vec<u64> {
        self.unreachable_set().iter().collect()
    }

    /// Recomputes the per-segment counters from scratch and compares (debug builds).
    #[cfg(debug_assertions)]
    fn check(&self, at: &str) {
        let mut free = vec![0u32; self.seg_free.len()];
        let mut quar = vec![0u32; self.seg_quar.len()];
        for p in self.unreachable_free().iter() {
            free[seg_of(p) as usize] += 1;
        }
        for (s, f) in free.iter_mut().enumerate() {
            let (lo, hi) = (s as u64 * SEGMENT_PAGES, (s as u64 + 1) * SEGMENT_PAGES);
            *f += hi.saturating_sub(self.page_count.max(lo)) as u32;
        }
        for (_, pages) in &self.quarantine {
            for &p in pages {
                quar[seg_of(p) as usize] += 1;
            }
        }
        assert_eq!(free, self.seg_free, "segment free counts drifted ({at})");
        assert_eq!(quar, self.seg_quar, "segment quarantine counts drifted ({at})");
    }

    #[cfg(not(debug_assertions))]
    fn check(&self, _at: &str) {}

    /// Places the free-list run of a durable point: takes its pages from the
    /// log stream and returns (first page, pages, payload), the payload being
    /// the free space that remains ([`Allocator::unreachable`], encoded).
    ///
    /// A reopened database knows the run only from the payload length the
    /// meta records, so the payload must need every page of the run: taking
    /// the run out of the free space can shorten the encoding (an extent
    /// disappears or merges) below what the estimate reserved, and the last
    /// page of the run would then be neither free nor reachable after a
    /// reopen. The payload is padded to the run's length instead.
    pub fn place_free_list(&mut self, page_size: usize) -> (u64, u64, Vec<u8>) {
        // The list is built once (at 10M accounts it is hundreds of
        // thousands of pages, every durable point).
        let mut unreachable = self.unreachable_set();
        // Taking pages out of the free set can split at most one extent, hence the slack.
        let estimate = encoding_shape(unreachable.extents()).1 + 32;
        let n = crate::page::pages_for_run(estimate, page_size);
        let page_count = self.page_count;
        let first = self.alloc_run(Stream::Log, n);
        if self.page_count == page_count {
            // Inside the file, the run's pages are the only ones the
            // allocation took out (a file that grew can gain unreachable
            // pages: other streams' open ranges it now covers).
            let taken = unreachable.remove_range(first, first + n);
            debug_assert_eq!(taken as u64, n, "the free-list run was not unreachable");
            debug_assert_eq!(unreachable, self.unreachable_set(), "the free-list run took out more than its pages");
        } else {
            unreachable = self.unreachable_set();
        }
        // The payload must need all n pages: longer than what n - 1 hold.
        let min_len = ((n - 1) as usize * page_size + 1).saturating_sub(crate::page::RUN_PAYLOAD_OFFSET);
        let payload = encode_extents_min_len(unreachable.extents(), min_len);
        assert_eq!(
            crate::page::pages_for_run(payload.len(), page_size),
            n,
            "the free list cannot be padded to its run ({} bytes, {n} pages)",
            payload.len()
        );
        (first, n, payload)
    }

    /// Pages in use by the latest state (including meta pages), for space policies.
    pub fn live_pages(&self) -> u64 {
        debug_assert_eq!(self.unreachable_len(), self.unreachable().len() as u64);
        self.page_count - self.unreachable_len()
    }
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

/// Most bytes of a varint of a `u64` (what [`get_varint`] reads).
const MAX_VARINT_LEN: usize = 10;

fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Writes `v` in exactly `width` bytes (at least its canonical length):
/// continuation bytes with no value bits pad it.
fn put_varint_wide(out: &mut Vec<u8>, mut v: u64, width: usize) {
    debug_assert!(width >= varint_len(v) && width <= MAX_VARINT_LEN);
    for i in 0..width {
        let more = if i + 1 < width { 0x80 } else { 0 };
        out.push((v & 0x7f) as u8 | more);
        v >>= 7;
    }
}

/// Encodes sorted, distinct page numbers as extents: count, then
/// (gap from the previous extent's end, length) varint pairs.
pub fn encode_pages(pages: &[u64]) -> Vec<u8> {
    encode_extents_min_len(extents(pages), 0)
}

/// The maximal runs of consecutive pages of sorted, distinct `pages`:
/// (first page, length).
fn extents(pages: &[u64]) -> impl Iterator<Item = (u64, u64)> + Clone + '_ {
    debug_assert!(pages.windows(2).all(|w| w[0] < w[1]));
    let mut at = 0;
    std::iter::from_fn(move || {
        let &first = pages.get(at)?;
        let len = pages[at..].iter().zip(first..).take_while(|(&p, expected)| p == *expected).count();
        at += len;
        Some((first, len as u64))
    })
}

/// Number of extents and bytes of their canonical encoding, computed
/// without building it (the free list is encoded at every durable point,
/// and this sizes its run first).
fn encoding_shape(extents: impl Iterator<Item = (u64, u64)>) -> (u64, usize) {
    let (mut count, mut bytes, mut end) = (0u64, 0, 0);
    for (first, len) in extents {
        count += 1;
        bytes += varint_len(first - end) + varint_len(len);
        end = first + len;
    }
    (count, bytes + varint_len(count))
}

/// The encoding of [`encode_pages`] of ascending, maximal `extents` (first
/// page, length), at least `min_len` bytes long if the varints can be
/// widened that far (each to `MAX_VARINT_LEN` bytes); [`decode_pages`]
/// reads the same pages either way.
fn encode_extents_min_len(extents: impl Iterator<Item = (u64, u64)> + Clone, min_len: usize) -> Vec<u8> {
    let (count, canonical) = encoding_shape(extents.clone());
    let mut padding = min_len.saturating_sub(canonical);
    let mut out = Vec::with_capacity(canonical + padding);
    let mut put = |v: u64| {
        let len = varint_len(v);
        let extra = padding.min(MAX_VARINT_LEN - len);
        padding -= extra;
        put_varint_wide(&mut out, v, len + extra);
    };
    put(count);
    let mut end = 0;
    for (first, len) in extents {
        put(first - end);
        put(len);
        end = first + len;
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
    fn padded_encodings_decode_to_the_same_pages() {
        let pages = vec![2, 3, 4, 9, 11, 12, 1000, 70_000, 70_001, 1 << 40];
        let canonical = encode_pages(&pages);
        // Six extents: 13 varints of at most 10 bytes each.
        for min_len in [0, canonical.len(), canonical.len() + 1, canonical.len() + 37, 130] {
            let b = encode_extents_min_len(extents(&pages), min_len);
            assert_eq!(b.len(), min_len.max(canonical.len()), "min_len {min_len}");
            assert_eq!(decode_pages(&b, 2, (1 << 40) + 1).unwrap(), pages, "min_len {min_len}");
        }
        assert_eq!(encode_extents_min_len(extents(&pages), 1000).len(), 130, "padding stops at ten bytes per varint");
        assert_eq!(decode_pages(&encode_extents_min_len(std::iter::empty(), 10), 2, 3).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn quarantine_waits_for_the_gate_and_segments_fill_sequentially() {
        let mut a = Allocator::new(2, 2, vec![]);
        let pages = a.alloc(Stream::Cold, 300);
        assert_eq!(pages[0], 2);
        assert!(pages.windows(2).all(|w| w[0] < w[1]));
        let before = a.page_count();
        a.quarantine(5, pages[..254].to_vec());
        a.release(4);
        assert_eq!(a.free_segments(), 0);
        let r = a.alloc_run(Stream::Log, 3);
        assert!(r >= before, "a run does not reuse quarantined pages");
        a.release(5);
        // Segment 0 holds the metas: never a whole free segment.
        assert_eq!(a.free_segments(), 0);
        let mut b = Allocator::new(2, 2, vec![]);
        let p = b.alloc(Stream::Hot, 600);
        b.quarantine(1, p[254..510].to_vec());
        b.release(1);
        assert_eq!(b.free_segments(), 1);
        let q = b.alloc(Stream::Cold, 10);
        assert_eq!(q[0], 256, "whole free segments are reused first");
        assert!(b.unreachable().windows(2).all(|w| w[0] < w[1]));
    }

    /// Allocators in many states (random free extents, a log segment opened
    /// at random): the free-list run's payload needs exactly the run's pages,
    /// decodes to the free space left after the run, and never lists the run.
    #[test]
    fn free_list_payload_needs_every_page_of_its_run() {
        let ps = 4096;
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut short = 0;
        for case in 0..3000u64 {
            // Enough single-page holes for a free list of one to four pages.
            let page_count = 4_000 + next() % 20_000;
            let free: Vec<u64> = (2..page_count).filter(|_| next() % 4 == 0).collect();
            let mut a = Allocator::new(page_count, 2, free);
            if case % 2 == 0 {
                a.alloc_run(Stream::Log, 1 + next() % 40);
            }
            let estimate_pages = crate::page::pages_for_run(encode_pages(&a.unreachable()).len() + 32, ps);
            let (first, n, payload) = a.place_free_list(ps);
            assert_eq!(n, estimate_pages);
            if crate::page::pages_for_run(encode_pages(&a.unreachable()).len(), ps) < n {
                short += 1;
            }
            assert_eq!(
                crate::page::pages_for_run(payload.len(), ps),
                n,
                "case {case}: a reopened database would see a run of fewer pages than were taken"
            );
            let listed = decode_pages(&payload, 2, a.page_count()).unwrap();
            assert_eq!(listed, a.unreachable(), "case {case}");
            assert!(listed.iter().all(|p| !(first..first + n).contains(p)), "case {case}: the run is listed free");
        }
        assert!(short > 0, "no case shortened the encoding: the test does not reach the case it is for");
    }

    #[test]
    fn streams_never_share_pages() {
        let mut a = Allocator::new(2, 2, vec![]);
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..50u64 {
            let mut got = a.alloc(Stream::Hot, 37 + round as usize);
            got.extend(a.alloc(Stream::Cold, 300));
            let r = a.alloc_run(if round % 2 == 0 { Stream::Log } else { Stream::Values }, 1 + round % 7);
            got.extend(r..r + 1 + round % 7);
            for p in &got {
                assert!(seen.insert(*p), "page {p} handed out twice");
                assert!(*p < a.page_count());
            }
            // Free some pages of earlier rounds and let them come back.
            let old: Vec<u64> = seen.iter().copied().filter(|p| p % 3 == round % 3).take(200).collect();
            for p in &old {
                seen.remove(p);
            }
            a.quarantine(round + 1, old);
            a.release(round);
            let free = a.unreachable();
            assert!(free.iter().all(|p| !seen.contains(p)), "a live page is listed free");
            assert_eq!(free.len() as u64 + seen.len() as u64 + 2, a.page_count(), "pages lost or counted twice");
        }
    }
}
