//! Hex-prefix ("compact") encoding of nibble paths inside leaf and extension
//! nodes (Ethereum yellow paper, appendix C).
//!
//! The first nibble is a flag: bit 1 marks a leaf, bit 0 an odd number of
//! path nibbles. An odd path's first nibble shares the flag byte; an even
//! path gets a zero padding nibble after the flag.

use crate::nibbles::Nibbles;
use core::fmt;

/// Flag bit for a leaf path (as opposed to an extension path).
const LEAF_FLAG: u8 = 0x2;
/// Flag bit for an odd number of nibbles.
const ODD_FLAG: u8 = 0x1;

/// Errors from [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexPrefixError {
    /// The encoding had no bytes at all.
    Empty,
    /// The flag nibble was not one of 0..=3.
    InvalidFlag(u8),
    /// An even-length encoding had a non-zero padding nibble.
    NonZeroPadding(u8),
}

impl fmt::Display for HexPrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "hex-prefix path is empty (needs at least the flag byte)"),
            Self::InvalidFlag(b) => write!(f, "hex-prefix flag nibble {b:#x} is not in 0..=3"),
            Self::NonZeroPadding(b) => {
                write!(f, "hex-prefix even-length padding nibble is {b:#x}, must be 0")
            }
        }
    }
}

impl std::error::Error for HexPrefixError {}

/// Number of bytes [`encode`] produces for a path of `nibble_len` nibbles.
pub const fn encoded_len(nibble_len: usize) -> usize {
    nibble_len / 2 + 1
}

/// Appends the hex-prefix encoding of `path` to `out`.
pub fn encode_into(path: &Nibbles, is_leaf: bool, out: &mut Vec<u8>) {
    let odd = path.len() % 2 == 1;
    let flag = if is_leaf { LEAF_FLAG } else { 0 } | if odd { ODD_FLAG } else { 0 };
    out.reserve(encoded_len(path.len()));
    let packed = path.as_packed();
    if odd {
        // The first nibble shares the flag byte, so every later byte is the
        // low half of one packed byte and the high half of the next.
        out.push(flag << 4 | packed[0] >> 4);
        out.extend(packed.windows(2).map(|w| w[0] << 4 | w[1] >> 4));
    } else {
        out.push(flag << 4);
        out.extend_from_slice(packed);
    }
}

/// Appends the hex-prefix encoding of `path[from..]` to `out`, as
/// [`encode_into`] of `path.slice(from, path.len())` does, without building
/// the slice when the suffix's nibble pairs are whole bytes of `path` (an
/// even-length path, the case of every hashed key).
pub fn encode_suffix_into(path: &Nibbles, from: usize, is_leaf: bool, out: &mut Vec<u8>) {
    let from = from.min(path.len());
    if path.len() % 2 == 1 {
        encode_into(&path.slice(from, path.len()), is_leaf, out);
        return;
    }
    let flag = if is_leaf { LEAF_FLAG } else { 0 };
    let packed = path.as_packed();
    if from % 2 == 1 {
        // Odd suffix: its first nibble shares the flag byte; the pairs after
        // it start at an even index, whole bytes of `path`.
        out.push((flag | ODD_FLAG) << 4 | path.nibble(from));
        out.extend_from_slice(&packed[from.div_ceil(2)..]);
    } else {
        out.push(flag << 4);
        out.extend_from_slice(&packed[from / 2..]);
    }
}

/// The hex-prefix encoding of `path`.
pub fn encode(path: &Nibbles, is_leaf: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(path.len()));
    encode_into(path, is_leaf, &mut out);
    out
}

/// Decodes a hex-prefix encoding into the path and the leaf flag.
pub fn decode(bytes: &[u8]) -> Result<(Nibbles, bool), HexPrefixError> {
    let (&first, rest) = bytes.split_first().ok_or(HexPrefixError::Empty)?;
    let flag = first >> 4;
    if flag > (LEAF_FLAG | ODD_FLAG) {
        return Err(HexPrefixError::InvalidFlag(flag));
    }
    let is_leaf = flag & LEAF_FLAG != 0;
    let mut path = Nibbles::new();
    if flag & ODD_FLAG != 0 {
        path.push(first & 0x0f);
    } else if first & 0x0f != 0 {
        return Err(HexPrefixError::NonZeroPadding(first & 0x0f));
    }
    for &b in rest {
        path.push(b >> 4);
        path.push(b & 0x0f);
    }
    Ok((path, is_leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[u8]) -> Nibbles {
        Nibbles::from_nibbles(v).unwrap()
    }

    #[test]
    fn yellow_paper_examples() {
        // Examples from the Ethereum wiki's Patricia tree page.
        assert_eq!(encode(&n(&[1, 2, 3, 4, 5]), false), vec![0x11, 0x23, 0x45]);
        assert_eq!(encode(&n(&[0, 1, 2, 3, 4, 5]), false), vec![0x00, 0x01, 0x23, 0x45]);
        assert_eq!(encode(&n(&[0, 15, 1, 12, 11, 8]), true), vec![0x20, 0x0f, 0x1c, 0xb8]);
        assert_eq!(encode(&n(&[15, 1, 12, 11, 8]), true), vec![0x3f, 0x1c, 0xb8]);
        assert_eq!(encode(&n(&[]), true), vec![0x20]);
        assert_eq!(encode(&n(&[]), false), vec![0x00]);
    }

    #[test]
    fn round_trip() {
        for len in 0..20u8 {
            let path: Vec<u8> = (0..len).map(|i| (i * 7) % 16).collect();
            for leaf in [false, true] {
                let enc = encode(&n(&path), leaf);
                assert_eq!(enc.len(), encoded_len(path.len()));
                assert_eq!(decode(&enc).unwrap(), (n(&path), leaf));
            }
        }
    }

    /// The definition, one nibble at a time.
    fn model_encode(path: &Nibbles, is_leaf: bool) -> Vec<u8> {
        let nibbles = path.to_vec();
        let flag = if is_leaf { LEAF_FLAG } else { 0 } | (nibbles.len() % 2) as u8;
        let mut all = vec![flag];
        if nibbles.len().is_multiple_of(2) {
            all.push(0);
        }
        all.extend(nibbles);
        all.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    proptest::proptest! {
        #[test]
        fn encode_equals_the_definition(nibbles in proptest::collection::vec(0u8..16, 0..90), leaf: bool) {
            let path = n(&nibbles);
            proptest::prop_assert_eq!(encode(&path, leaf), model_encode(&path, leaf));
            // Paths cut from a longer key at an odd offset, as the root builder makes them.
            if !nibbles.is_empty() {
                let cut = path.slice(1, path.len());
                proptest::prop_assert_eq!(encode(&cut, leaf), model_encode(&cut, leaf));
            }
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode(&[]), Err(HexPrefixError::Empty));
        assert_eq!(decode(&[0x40]), Err(HexPrefixError::InvalidFlag(4)));
        assert_eq!(decode(&[0x21, 0x00]), Err(HexPrefixError::NonZeroPadding(1)));
    }
}
