//! A set of page numbers as a bitmap.
//!
//! The allocator's free set holds hundreds of thousands of pages in a large
//! file, and every durable point lists all of them (the free-list run).
//! Kept as a bitmap, inserting, removing and looking up a page is one word
//! operation, and the set is walked in ascending order 64 pages a step:
//! listing the maximal runs of a 10M-account file's free pages touches
//! about 20,000 words instead of every page of an ordered tree.

/// Pages per word of the bitmap.
const WORD_BITS: u64 = 64;

/// A set of page numbers (a bitmap grown to the highest page inserted).
#[derive(Clone, Debug, Default)]
pub struct PageSet {
    words: Vec<u64>,
    len: usize,
}

fn word_of(p: u64) -> usize {
    (p / WORD_BITS) as usize
}

fn bit_of(p: u64) -> u64 {
    1 << (p % WORD_BITS)
}

/// Bits `lo..hi` of one word (`lo < hi <= 64`).
fn mask(lo: u64, hi: u64) -> u64 {
    debug_assert!(lo < hi && hi <= WORD_BITS);
    (u64::MAX >> (WORD_BITS - (hi - lo))) << lo
}

impl PageSet {
    /// Pages in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    fn grow_to(&mut self, words: usize) {
        // A file holds at most MAX_PAGES pages (512 MiB of bitmap at most):
        // a larger page number is a bug, not a reason to allocate.
        assert!(
            words as u64 <= crate::MAX_PAGES.div_ceil(WORD_BITS),
            "page {} past the largest file",
            words as u64 * WORD_BITS
        );
        if self.words.len() < words {
            self.words.resize(words, 0);
        }
    }

    /// Adds `p`; false if it was in the set already.
    pub fn insert(&mut self, p: u64) -> bool {
        self.grow_to(word_of(p) + 1);
        let w = &mut self.words[word_of(p)];
        let added = *w & bit_of(p) == 0;
        *w |= bit_of(p);
        self.len += added as usize;
        added
    }

    /// True when `p` is in the set.
    pub fn contains(&self, p: u64) -> bool {
        self.words.get(word_of(p)).is_some_and(|w| w & bit_of(p) != 0)
    }

    /// Applies `f(word, mask)` to the words covering `lo..hi`, each with
    /// the mask of its bits inside the range.
    fn for_words(&mut self, lo: u64, hi: u64, mut f: impl FnMut(&mut u64, u64)) {
        let mut p = lo;
        while p < hi {
            let end = ((p / WORD_BITS + 1) * WORD_BITS).min(hi);
            f(&mut self.words[word_of(p)], mask(p % WORD_BITS, end - (p / WORD_BITS) * WORD_BITS));
            p = end;
        }
    }

    /// Adds every page of `lo..hi`.
    pub fn insert_range(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        self.grow_to(word_of(hi - 1) + 1);
        let mut added = 0;
        self.for_words(lo, hi, |w, m| {
            added += (m & !*w).count_ones() as usize;
            *w |= m;
        });
        self.len += added;
    }

    /// Removes every page of `lo..hi`; returns how many were in the set.
    pub fn remove_range(&mut self, lo: u64, hi: u64) -> usize {
        let hi = hi.min(self.words.len() as u64 * WORD_BITS);
        if lo >= hi {
            return 0;
        }
        let mut removed = 0;
        self.for_words(lo, hi, |w, m| {
            removed += (m & *w).count_ones() as usize;
            *w &= !m;
        });
        self.len -= removed;
        removed
    }

    /// The smallest page `>= from` in the set (`set` true) or not in it.
    fn next_with(&self, from: u64, set: bool) -> Option<u64> {
        let mut i = word_of(from);
        let flip = if set { 0 } else { u64::MAX };
        let mut word = (*self.words.get(i)? ^ flip) & (u64::MAX << (from % WORD_BITS));
        loop {
            if word != 0 {
                return Some(i as u64 * WORD_BITS + word.trailing_zeros() as u64);
            }
            i += 1;
            word = *self.words.get(i)? ^ flip;
        }
    }

    /// The pages of the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let b = rest.trailing_zeros() as u64;
                    rest &= rest - 1;
                    i as u64 * WORD_BITS + b
                })
            })
        })
    }

    /// The maximal runs of consecutive pages of the set, ascending: (first
    /// page, length).
    pub fn extents(&self) -> impl Iterator<Item = (u64, u64)> + Clone + '_ {
        let end_of_words = self.words.len() as u64 * WORD_BITS;
        let mut at = 0;
        std::iter::from_fn(move || {
            let first = self.next_with(at, true)?;
            let end = self.next_with(first, false).unwrap_or(end_of_words);
            at = end;
            Some((first, end - first))
        })
    }
}

/// Equal when they hold the same pages, however far each bitmap grew.
impl PartialEq for PageSet {
    fn eq(&self, other: &PageSet) -> bool {
        let (short, long) = if self.words.len() <= other.words.len() { (self, other) } else { (other, self) };
        self.len == other.len
            && long.words[..short.words.len()] == short.words[..]
            && long.words[short.words.len()..].iter().all(|&w| w == 0)
    }
}

impl Eq for PageSet {}

impl Extend<u64> for PageSet {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, pages: I) {
        for p in pages {
            self.insert(p);
        }
    }
}

impl FromIterator<u64> for PageSet {
    fn from_iter<I: IntoIterator<Item = u64>>(pages: I) -> PageSet {
        let mut s = PageSet::default();
        s.extend(pages);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(u64),
        InsertRange(u64, u64),
        RemoveRange(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Pages around word boundaries and past the bitmap's end.
        let page = 0u64..700;
        prop_oneof![
            page.clone().prop_map(Op::Insert),
            page.clone().prop_map(Op::Remove),
            (page.clone(), 0u64..200).prop_map(|(lo, n)| Op::InsertRange(lo, lo + n)),
            (page, 0u64..200).prop_map(|(lo, n)| Op::RemoveRange(lo, lo + n)),
        ]
    }

    /// Maximal runs of a sorted model.
    fn model_extents(model: &BTreeSet<u64>) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for &p in model {
            match out.last_mut() {
                Some((first, len)) if *first + *len == p => *len += 1,
                _ => out.push((p, 1)),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every operation, lookup, iteration and extent list equals a BTreeSet's.
        #[test]
        fn behaves_as_an_ordered_set(ops in proptest::collection::vec(op(), 1..60)) {
            let mut set = PageSet::default();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(p) => prop_assert_eq!(set.insert(p), model.insert(p)),
                    Op::Remove(p) => prop_assert_eq!(set.remove_range(p, p + 1) == 1, model.remove(&p)),
                    Op::InsertRange(lo, hi) => {
                        set.insert_range(lo, hi);
                        model.extend(lo..hi);
                    }
                    Op::RemoveRange(lo, hi) => {
                        let expected = (lo..hi).filter(|p| model.remove(p)).count();
                        prop_assert_eq!(set.remove_range(lo, hi), expected);
                    }
                }
                prop_assert_eq!(set.len(), model.len());
            }
            prop_assert!(set.iter().eq(model.iter().copied()));
            prop_assert_eq!(set.extents().collect::<Vec<_>>(), model_extents(&model));
            for p in 0..800 {
                prop_assert_eq!(set.contains(p), model.contains(&p), "page {}", p);
            }
        }
    }

    #[test]
    fn extents_end_at_the_last_word() {
        let mut s = PageSet::default();
        s.insert_range(60, 128);
        assert_eq!(s.extents().collect::<Vec<_>>(), vec![(60, 68)]);
        s.insert(0);
        s.remove_range(127, 128);
        assert_eq!(s.extents().collect::<Vec<_>>(), vec![(0, 1), (60, 67)]);
        assert_eq!(s.remove_range(0, 10_000), 68);
        assert!(s.len() == 0 && s.extents().next().is_none());
        assert_eq!(s, PageSet::default(), "sets of the same pages are equal whatever their bitmaps' lengths");
        s.insert(3);
        assert_ne!(s, PageSet::default());
    }
}
