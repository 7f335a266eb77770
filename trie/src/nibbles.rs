//! Nibble paths.
//!
//! A trie key is walked one nibble (half byte) at a time, high nibble first.
//! [`Nibbles`] stores such a path packed two nibbles per byte. Paths of up to
//! 64 nibbles (every path of a trie keyed by 32-byte hashes) live inline
//! without allocation; longer paths (only possible with long raw keys) spill
//! to the heap.
//!
//! Ordering is lexicographic over the nibbles with a prefix sorting before
//! every path it prefixes. For full keys of equal length this is the byte
//! order of the keys, and for raw keys of different lengths it is the byte
//! order with shorter-prefix-first, which is the order a root builder needs.

use alloy_primitives::B256;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};

/// Number of bytes stored inline (64 nibbles).
const INLINE_BYTES: usize = 32;

/// Length of [`Nibbles::to_stored_key`] output.
pub const STORED_KEY_LEN: usize = INLINE_BYTES + 1;

/// Error for a value that is not a nibble (greater than 0x0f) or a malformed
/// stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NibblesError {
    /// A nibble value was 16 or more.
    InvalidNibble(u8),
    /// A stored key declared a length over 64 nibbles.
    StoredKeyTooLong(u8),
    /// A stored key had non-zero bits past its declared length.
    StoredKeyNotCanonical,
}

impl fmt::Display for NibblesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNibble(n) => write!(f, "invalid nibble value {n:#x} (must be < 0x10)"),
            Self::StoredKeyTooLong(n) => {
                write!(f, "stored path key declares {n} nibbles, at most 64 allowed")
            }
            Self::StoredKeyNotCanonical => {
                write!(f, "stored path key has non-zero bits past its length")
            }
        }
    }
}

impl std::error::Error for NibblesError {}

#[derive(Clone)]
enum Packed {
    Inline([u8; INLINE_BYTES]),
    Heap(Vec<u8>),
}

/// Nibble `index` of `packed` (two per byte, high nibble first): of a
/// [`Nibbles`] path or of a 32-byte key.
#[inline]
pub(crate) fn packed_nibble(packed: &[u8], index: usize) -> u8 {
    let byte = packed[index / 2];
    if index.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

/// A path of nibbles (values 0..=15), packed two per byte.
///
/// Invariant: every nibble position past `len` in the backing storage is
/// zero, so packed byte slices can be compared and hashed directly.
#[derive(Clone)]
pub struct Nibbles {
    len: usize,
    packed: Packed,
}

impl Default for Nibbles {
    fn default() -> Self {
        Self::new()
    }
}

impl Nibbles {
    /// The empty path (the trie root).
    pub const fn new() -> Self {
        Self { len: 0, packed: Packed::Inline([0; INLINE_BYTES]) }
    }

    /// Builds a path from unpacked nibbles (one nibble per byte).
    pub fn from_nibbles(nibbles: &[u8]) -> Result<Self, NibblesError> {
        let mut out = Self::new();
        for &n in nibbles {
            if n > 0x0f {
                return Err(NibblesError::InvalidNibble(n));
            }
            out.push(n);
        }
        Ok(out)
    }

    /// Splits every byte of `bytes` into two nibbles, high nibble first.
    pub fn unpack(bytes: &[u8]) -> Self {
        let len = bytes.len() * 2;
        let packed = if bytes.len() <= INLINE_BYTES {
            let mut buf = [0u8; INLINE_BYTES];
            buf[..bytes.len()].copy_from_slice(bytes);
            Packed::Inline(buf)
        } else {
            Packed::Heap(bytes.to_vec())
        };
        Self { len, packed }
    }

    /// The 64-nibble path of a 32-byte hashed key.
    pub fn from_b256(key: &B256) -> Self {
        Self::unpack(key.as_slice())
    }

    /// Number of nibbles.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether this is the empty path.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes: `ceil(len / 2)` bytes, an odd-length path ends with
    /// a zero low nibble.
    pub fn as_packed(&self) -> &[u8] {
        let used = self.len.div_ceil(2);
        match &self.packed {
            Packed::Inline(buf) => &buf[..used],
            Packed::Heap(v) => &v[..used],
        }
    }

    fn storage_mut(&mut self) -> &mut [u8] {
        match &mut self.packed {
            Packed::Inline(buf) => buf,
            Packed::Heap(v) => v,
        }
    }

    /// The nibble at `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<u8> {
        if index >= self.len {
            return None;
        }
        Some(self.nibble(index))
    }

    /// The nibble at `index`; the caller guarantees `index < len`.
    #[inline]
    pub(crate) fn nibble(&self, index: usize) -> u8 {
        debug_assert!(index < self.len);
        packed_nibble(self.as_packed(), index)
    }

    /// The last nibble, if any.
    pub fn last(&self) -> Option<u8> {
        self.len.checked_sub(1).map(|i| self.nibble(i))
    }

    /// Appends one nibble. Only the low four bits of `nibble` are used.
    pub fn push(&mut self, nibble: u8) {
        debug_assert!(nibble < 16, "nibble out of range: {nibble}");
        let nibble = nibble & 0x0f;
        let index = self.len;
        let byte_index = index / 2;
        // Grow storage when the inline buffer (or heap vector) is full.
        match &mut self.packed {
            Packed::Inline(buf) if byte_index >= INLINE_BYTES => {
                let mut v = buf.to_vec();
                v.push(0);
                self.packed = Packed::Heap(v);
            }
            Packed::Heap(v) if byte_index >= v.len() => v.push(0),
            _ => {}
        }
        let storage = self.storage_mut();
        if index.is_multiple_of(2) {
            storage[byte_index] = nibble << 4;
        } else {
            storage[byte_index] |= nibble;
        }
        self.len += 1;
    }

    /// Removes and returns the last nibble.
    pub fn pop(&mut self) -> Option<u8> {
        let last = self.last()?;
        self.truncate(self.len - 1);
        Some(last)
    }

    /// Shortens the path to `new_len` nibbles (no-op if already shorter).
    pub fn truncate(&mut self, new_len: usize) {
        if new_len >= self.len {
            return;
        }
        let old_used = self.len.div_ceil(2);
        let storage = self.storage_mut();
        // Keep the zero-past-the-end invariant.
        if new_len % 2 == 1 {
            storage[new_len / 2] &= 0xf0;
        }
        let first_clear = new_len.div_ceil(2);
        for b in &mut storage[first_clear..old_used] {
            *b = 0;
        }
        self.len = new_len;
    }

    /// Appends all nibbles of `other`.
    pub fn extend(&mut self, other: &Nibbles) {
        for n in other.iter() {
            self.push(n);
        }
    }

    /// `self` followed by `other`.
    pub fn join(&self, other: &Nibbles) -> Nibbles {
        let mut out = self.clone();
        out.extend(other);
        out
    }

    /// `self` followed by one nibble.
    pub fn with_nibble(&self, nibble: u8) -> Nibbles {
        let mut out = self.clone();
        out.push(nibble);
        out
    }

    /// The nibbles in `start..end`, both clamped to the length.
    ///
    /// Hot in root building (the path of every leaf below its branch):
    /// copies packed bytes, shifting by one nibble when `start` is odd,
    /// instead of pushing nibble by nibble.
    pub fn slice(&self, start: usize, end: usize) -> Nibbles {
        let end = end.min(self.len);
        let start = start.min(end);
        let len = end - start;
        let bytes = len.div_ceil(2);
        let packed =
            if bytes <= INLINE_BYTES { Packed::Inline([0; INLINE_BYTES]) } else { Packed::Heap(vec![0; bytes]) };
        let mut out = Nibbles { len, packed };
        let dst = &mut out.storage_mut()[..bytes];
        let src = self.as_packed();
        let first = start / 2;
        if start.is_multiple_of(2) {
            dst.copy_from_slice(&src[first..first + bytes]);
        } else {
            // Output byte i holds source nibbles start + 2i and start + 2i + 1:
            // the low half of source byte first + i and the high half of the next.
            for (i, out) in dst.iter_mut().enumerate() {
                let next = src.get(first + i + 1).map_or(0, |b| b >> 4);
                *out = src[first + i] << 4 | next;
            }
        }
        if len % 2 == 1 {
            // Keep the zero-past-the-end invariant.
            dst[bytes - 1] &= 0xf0;
        }
        out
    }

    /// The first `len` nibbles (clamped).
    pub fn prefix(&self, len: usize) -> Nibbles {
        self.slice(0, len)
    }

    /// Length of the longest common prefix of `self` and `other`.
    pub fn common_prefix_len(&self, other: &Nibbles) -> usize {
        let a = self.as_packed();
        let b = other.as_packed();
        let max = self.len.min(other.len);
        let mut i = 0;
        // Whole bytes first, then the nibble inside the first differing byte.
        while i < a.len().min(b.len()) && a[i] == b[i] {
            i += 1;
        }
        let mut n = i * 2;
        if n < max && self.nibble(n) == other.nibble(n) {
            n += 1;
        }
        n.min(max)
    }

    /// Whether `prefix` is a prefix of `self`.
    pub fn starts_with(&self, prefix: &Nibbles) -> bool {
        prefix.len <= self.len && self.common_prefix_len(prefix) == prefix.len
    }

    /// Iterates over the nibbles.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.len).map(move |i| self.nibble(i))
    }

    /// The nibbles unpacked, one per byte.
    pub fn to_vec(&self) -> Vec<u8> {
        self.iter().collect()
    }

    /// An order-preserving fixed-width encoding for paths of at most 64
    /// nibbles: the packed nibbles zero-padded to 32 bytes, then the length.
    ///
    /// Comparing two stored keys bytewise gives the same order as comparing
    /// the paths, which lets a sorted key-value table serve
    /// [`BranchStore::seek`](crate::incremental::BranchStore::seek).
    /// Returns `None` for longer paths.
    pub fn to_stored_key(&self) -> Option<[u8; STORED_KEY_LEN]> {
        if self.len > 2 * INLINE_BYTES {
            return None;
        }
        let mut out = [0u8; STORED_KEY_LEN];
        let packed = self.as_packed();
        out[..packed.len()].copy_from_slice(packed);
        // len <= 64 was checked above, so it fits a byte.
        out[INLINE_BYTES] = self.len as u8;
        Some(out)
    }

    /// Inverse of [`Nibbles::to_stored_key`]; rejects non-canonical input.
    pub fn from_stored_key(key: &[u8; STORED_KEY_LEN]) -> Result<Self, NibblesError> {
        let len = key[INLINE_BYTES];
        if usize::from(len) > 2 * INLINE_BYTES {
            return Err(NibblesError::StoredKeyTooLong(len));
        }
        let mut out = Self::unpack(&key[..INLINE_BYTES]);
        out.truncate(usize::from(len));
        if out.as_packed() != &key[..usize::from(len).div_ceil(2)]
            || key[usize::from(len).div_ceil(2)..INLINE_BYTES].iter().any(|&b| b != 0)
        {
            return Err(NibblesError::StoredKeyNotCanonical);
        }
        Ok(out)
    }

    /// Pads the path to 64 nibbles with `fill` and returns it as a key.
    /// Returns `None` for paths longer than 64 nibbles.
    pub fn pad_to_b256(&self, fill: u8) -> Option<B256> {
        if self.len > 64 {
            return None;
        }
        // Hot in prefix-set lookups (two keys per visited child): copy the
        // packed bytes and fill the rest, instead of pushing nibbles.
        let fill = fill & 0x0f;
        let mut out = [fill * 0x11; 32];
        let packed = self.as_packed();
        let whole = self.len / 2;
        out[..whole].copy_from_slice(&packed[..whole]);
        if self.len % 2 == 1 {
            out[whole] = (packed[whole] & 0xf0) | fill;
        }
        Some(B256::from(out))
    }
}

impl PartialEq for Nibbles {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.as_packed() == other.as_packed()
    }
}

impl Eq for Nibbles {}

impl Hash for Nibbles {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.len.hash(state);
        self.as_packed().hash(state);
    }
}

impl Ord for Nibbles {
    fn cmp(&self, other: &Self) -> Ordering {
        // Padding nibbles are zero, so the packed byte order agrees with the
        // nibble order except for ties where one path is a zero-extended
        // prefix of the other; the length breaks those ties (prefix first).
        self.as_packed().cmp(other.as_packed()).then(self.len.cmp(&other.len))
    }
}

impl PartialOrd for Nibbles {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Nibbles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nibbles(")?;
        for n in self.iter() {
            write!(f, "{n:x}")?;
        }
        write!(f, ")")
    }
}

impl From<&B256> for Nibbles {
    fn from(key: &B256) -> Self {
        Self::from_b256(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[u8]) -> Nibbles {
        Nibbles::from_nibbles(v).unwrap()
    }

    #[test]
    fn pad_to_b256_matches_pushing_nibbles() {
        let key: Vec<u8> = (0..64u32).map(|i| ((i * 7 + 3) % 16) as u8).collect();
        for len in 0..=64 {
            for fill in [0u8, 0x0f, 3] {
                let mut slow = n(&key[..len]);
                while slow.len() < 64 {
                    slow.push(fill);
                }
                assert_eq!(n(&key[..len]).pad_to_b256(fill), Some(B256::from_slice(slow.as_packed())), "len {len}");
            }
        }
        let mut long = n(&key);
        long.push(1);
        assert_eq!(long.pad_to_b256(0), None);
    }

    #[test]
    fn push_pop_truncate_keep_invariant() {
        let mut a = n(&[1, 2, 3]);
        assert_eq!(a.as_packed(), &[0x12, 0x30]);
        assert_eq!(a.pop(), Some(3));
        assert_eq!(a, n(&[1, 2]));
        a.push(0xf);
        a.truncate(1);
        assert_eq!(a.as_packed(), &[0x10]);
        a.push(4);
        assert_eq!(a, n(&[1, 4]));
    }

    #[test]
    fn long_paths_spill_to_heap() {
        let bytes: Vec<u8> = (0..40).collect();
        let a = Nibbles::unpack(&bytes);
        assert_eq!(a.len(), 80);
        let mut b = Nibbles::new();
        for x in a.iter() {
            b.push(x);
        }
        assert_eq!(a, b);
        assert_eq!(b.as_packed(), &bytes[..]);
        b.truncate(3);
        assert_eq!(b, n(&[0, 0, 0]));
        assert_eq!(a.slice(78, 80), n(&[2, 7]));
    }

    #[test]
    fn ordering_is_prefix_first_lexicographic() {
        let mut v = vec![n(&[1, 0]), n(&[1]), n(&[1, 0, 0]), n(&[0, 15]), n(&[]), n(&[1, 0, 5])];
        v.sort();
        let want = vec![n(&[]), n(&[0, 15]), n(&[1]), n(&[1, 0]), n(&[1, 0, 0]), n(&[1, 0, 5])];
        assert_eq!(v, want);
    }

    #[test]
    fn common_prefix_and_starts_with() {
        let a = n(&[1, 2, 3, 4, 5]);
        assert_eq!(a.common_prefix_len(&n(&[1, 2, 3, 9])), 3);
        assert_eq!(a.common_prefix_len(&n(&[1, 2, 4])), 2);
        assert_eq!(a.common_prefix_len(&n(&[1, 2])), 2);
        assert_eq!(a.common_prefix_len(&n(&[1, 0])), 1);
        assert_eq!(a.common_prefix_len(&n(&[])), 0);
        assert!(a.starts_with(&n(&[1, 2, 3])));
        assert!(!a.starts_with(&n(&[1, 2, 4])));
        assert!(!n(&[1]).starts_with(&n(&[1, 0])));
    }

    #[test]
    fn stored_key_round_trip_and_order() {
        let paths = [n(&[]), n(&[0]), n(&[0, 0]), n(&[0, 1]), n(&[1]), n(&[15; 64])];
        let keys: Vec<_> = paths.iter().map(|p| p.to_stored_key().unwrap()).collect();
        for w in keys.windows(2) {
            assert!(w[0] < w[1]);
        }
        for (p, k) in paths.iter().zip(&keys) {
            assert_eq!(&Nibbles::from_stored_key(k).unwrap(), p);
        }
        let mut bad = keys[1];
        bad[0] |= 1;
        assert!(Nibbles::from_stored_key(&bad).is_err());
        bad = keys[1];
        bad[32] = 65;
        assert!(Nibbles::from_stored_key(&bad).is_err());
    }

    /// The nibble-at-a-time definitions that the byte-wise paths must equal.
    fn model_slice(path: &Nibbles, start: usize, end: usize) -> Nibbles {
        let end = end.min(path.len());
        let mut out = Nibbles::new();
        for i in start.min(end)..end {
            out.push(path.nibble(i));
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn slice_equals_nibble_by_nibble(
            nibbles in proptest::collection::vec(0u8..16, 0..90),
            start in 0usize..95,
            end in 0usize..95,
        ) {
            let path = n(&nibbles);
            let fast = path.slice(start, end);
            let model = model_slice(&path, start, end);
            proptest::prop_assert_eq!(&fast, &model);
            // Same nibbles and the zero-past-the-end invariant (packed bytes equal).
            proptest::prop_assert_eq!(fast.as_packed(), model.as_packed());
            let mut grown = fast.clone();
            grown.push(0xa);
            let mut grown_model = model.clone();
            grown_model.push(0xa);
            proptest::prop_assert_eq!(grown, grown_model);
        }
    }

    #[test]
    fn invalid_nibble_is_rejected() {
        assert_eq!(Nibbles::from_nibbles(&[1, 16]), Err(NibblesError::InvalidNibble(16)));
    }
}
