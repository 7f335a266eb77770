//! Eight Keccak-f[1600] states in AVX-512 registers: register `i` holds
//! lane `i` of each of the eight states, one per 64-bit element.

use super::RATE;
use alloy_primitives::B256;
use std::arch::x86_64::{
    __m512i, _mm512_loadu_si512, _mm512_rol_epi64, _mm512_rolv_epi64, _mm512_set1_epi64, _mm512_setzero_si512,
    _mm512_storeu_si512, _mm512_ternarylogic_epi64, _mm512_xor_si512,
};
use std::sync::OnceLock;

/// States hashed side by side.
pub const LANES: usize = 8;

/// Words (64-bit lanes) of the state that one rate block covers.
const RATE_WORDS: usize = RATE / 8;

const ROUND_CONSTANTS: [u64; 24] = [
    0x0000000000000001,
    0x0000000000008082,
    0x800000000000808a,
    0x8000000080008000,
    0x000000000000808b,
    0x0000000080000001,
    0x8000000080008081,
    0x8000000000008009,
    0x000000000000008a,
    0x0000000000000088,
    0x0000000080008009,
    0x000000008000000a,
    0x000000008000808b,
    0x800000000000008b,
    0x8000000000008089,
    0x8000000000008003,
    0x8000000000008002,
    0x8000000000000080,
    0x000000000000800a,
    0x800000008000000a,
    0x8000000080008081,
    0x8000000000008080,
    0x0000000080000001,
    0x8000000080008008,
];

/// Rotation of lane `x + 5 y` in the rho step.
const RHO: [u64; 25] = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];

/// Whether the CPU runs AVX-512F (checked once).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// The 24 rounds of Keccak-f[1600] on eight states.
#[target_feature(enable = "avx512f")]
fn permute(a: &mut [__m512i; 25]) {
    for rc in ROUND_CONSTANTS {
        // theta: 0x96 is the three-way xor.
        let mut c = [_mm512_setzero_si512(); 5];
        for (x, c) in c.iter_mut().enumerate() {
            let three = _mm512_ternarylogic_epi64::<0x96>(a[x], a[x + 5], a[x + 10]);
            *c = _mm512_ternarylogic_epi64::<0x96>(three, a[x + 15], a[x + 20]);
        }
        for x in 0..5 {
            let d = _mm512_xor_si512(c[(x + 4) % 5], _mm512_rol_epi64::<1>(c[(x + 1) % 5]));
            for y in 0..5 {
                a[x + 5 * y] = _mm512_xor_si512(a[x + 5 * y], d);
            }
        }
        // rho and pi.
        let mut b = [_mm512_setzero_si512(); 25];
        for x in 0..5 {
            for y in 0..5 {
                let i = x + 5 * y;
                b[y + 5 * ((2 * x + 3 * y) % 5)] = _mm512_rolv_epi64(a[i], _mm512_set1_epi64(RHO[i] as i64));
            }
        }
        // chi: 0xD2 is a ^ (!b & c).
        for y in 0..5 {
            for x in 0..5 {
                a[x + 5 * y] =
                    _mm512_ternarylogic_epi64::<0xD2>(b[x + 5 * y], b[(x + 1) % 5 + 5 * y], b[(x + 2) % 5 + 5 * y]);
            }
        }
        // iota.
        a[0] = _mm512_xor_si512(a[0], _mm512_set1_epi64(rc as i64));
    }
}

/// Writes rate block `k` of `input`, after keccak padding (0x01, zeros,
/// 0x80), into column `lane` of the word-major `words` (zeroed by the
/// caller: only the words the block sets are written); false past the last
/// block.
fn absorb_words(input: &[u8], k: usize, lane: usize, words: &mut [[u64; LANES]; RATE_WORDS]) -> bool {
    let blocks = input.len() / RATE + 1;
    if k >= blocks {
        return false;
    }
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().expect("8-byte chunk"));
    let start = k * RATE;
    if k + 1 < blocks {
        for (w, bytes) in input[start..start + RATE].chunks_exact(8).enumerate() {
            words[w][lane] = word(bytes);
        }
        return true;
    }
    // The last block: fewer than RATE bytes, so at most 16 full words.
    let tail = &input[start..];
    let full = tail.len() / 8;
    for (w, bytes) in tail.chunks_exact(8).enumerate() {
        words[w][lane] = word(bytes);
    }
    let rest = &tail[full * 8..];
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] = 0x01;
    words[full][lane] = u64::from_le_bytes(last);
    words[RATE_WORDS - 1][lane] ^= 0x80 << 56;
    true
}

/// The first four words of every state.
#[target_feature(enable = "avx512f")]
fn squeeze(a: &[__m512i; 25]) -> [[u64; LANES]; 4] {
    let mut words = [[0u64; LANES]; 4];
    for (w, lanes) in words.iter_mut().enumerate() {
        // SAFETY: `lanes` is 8 u64s, the 64 bytes one unaligned store writes.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), a[w]) };
    }
    words
}

#[target_feature(enable = "avx512f")]
fn hash_group_avx512<I: AsRef<[u8]>>(inputs: &[I], out: &mut [B256; LANES]) {
    let blocks = |i: usize| inputs.get(i).map_or(0, |input| input.as_ref().len() / RATE + 1);
    let rounds = (0..LANES).map(blocks).max().unwrap_or(0);
    let mut a = [_mm512_setzero_si512(); 25];
    for k in 0..rounds {
        // Word-major: `words[w]` holds word `w` of every lane's block, one
        // vector load each.
        let mut words = [[0u64; LANES]; RATE_WORDS];
        for (lane, input) in inputs.iter().enumerate() {
            // A state whose input has ended absorbs nothing more (zeros):
            // its digest was taken after its last block.
            absorb_words(input.as_ref(), k, lane, &mut words);
        }
        for (reg, lanes) in a.iter_mut().zip(&words) {
            // SAFETY: `lanes` is 8 u64s, the 64 bytes one unaligned load reads.
            let block = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
            *reg = _mm512_xor_si512(*reg, block);
        }
        permute(&mut a);
        let mut digest_words = None;
        for (lane, digest) in out.iter_mut().enumerate() {
            if lane < inputs.len() && blocks(lane) == k + 1 {
                let words = *digest_words.get_or_insert_with(|| squeeze(&a));
                for (w, chunk) in digest.0.chunks_exact_mut(8).enumerate() {
                    chunk.copy_from_slice(&words[w][lane].to_le_bytes());
                }
            }
        }
    }
}

/// keccak256 of up to eight inputs into `out[..inputs.len()]`.
pub fn hash_group<I: AsRef<[u8]>>(inputs: &[I], out: &mut [B256; LANES]) {
    assert!(inputs.len() <= LANES, "{} inputs in a group of {LANES}", inputs.len());
    assert!(available(), "AVX-512F is not available");
    // SAFETY: the CPU runs AVX-512F (checked above), the only requirement of
    // the target feature.
    unsafe { hash_group_avx512(inputs, out) }
}
