//! Keccak-f[1600] states side by side in AVX-512 registers: register `i`
//! holds lane `i` of each state, one per 64-bit element. [`x8`] keeps
//! eight states in 512-bit registers; [`x4`] four in 256-bit ones (with
//! AVX-512VL's rotates and three-input logic), for the two to four inputs
//! left after groups of eight: on a Xeon a 256-bit permutation costs about
//! 0.63 of a 512-bit one, and a one-lane hash about as much as a 512-bit
//! permutation (per hash of 110-byte inputs in batches of two: 190 against
//! 336 ns; of ten: 100 against 133 ns; `cargo run --release -p
//! metis-keccak --example throughput`).

use super::RATE;
use std::sync::OnceLock;

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

/// Whether the CPU runs AVX-512F and AVX-512VL (checked once).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
    })
}

/// Writes rate block `k` of `input`, after keccak padding (0x01, zeros,
/// 0x80), into column `lane` of the word-major `words` (zeroed by the
/// caller: only the words the block sets are written); false past the last
/// block.
fn absorb_words<const N: usize>(input: &[u8], k: usize, lane: usize, words: &mut [[u64; N]; RATE_WORDS]) -> bool {
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

/// One width of states side by side: the permutation, absorbing and
/// squeezing written once over the register type and its intrinsics.
macro_rules! states_side_by_side {
    (
        $(#[$doc:meta])* mod $name:ident, lanes $lanes:literal, $vec:ident, $features:literal,
        zero $zero:ident, load $load:ident, store $store:ident, xor $xor:ident, rol $rol:ident,
        rolv $rolv:ident, splat $splat:ident, logic $logic:ident
    ) => {
        $(#[$doc])*
        pub mod $name {
            use super::{absorb_words, RATE, RATE_WORDS, RHO, ROUND_CONSTANTS};
            use alloy_primitives::B256;
            use std::arch::x86_64::{$load, $logic, $rol, $rolv, $splat, $store, $vec, $xor, $zero};

            /// States hashed side by side.
            pub const LANES: usize = $lanes;

            /// The 24 rounds of Keccak-f[1600] on every state.
            #[target_feature(enable = $features)]
            fn permute(a: &mut [$vec; 25]) {
                for rc in ROUND_CONSTANTS {
                    // theta: 0x96 is the three-way xor.
                    let mut c = [$zero(); 5];
                    for (x, c) in c.iter_mut().enumerate() {
                        let three = $logic::<0x96>(a[x], a[x + 5], a[x + 10]);
                        *c = $logic::<0x96>(three, a[x + 15], a[x + 20]);
                    }
                    for x in 0..5 {
                        let d = $xor(c[(x + 4) % 5], $rol::<1>(c[(x + 1) % 5]));
                        for y in 0..5 {
                            a[x + 5 * y] = $xor(a[x + 5 * y], d);
                        }
                    }
                    // rho and pi.
                    let mut b = [$zero(); 25];
                    for x in 0..5 {
                        for y in 0..5 {
                            let i = x + 5 * y;
                            b[y + 5 * ((2 * x + 3 * y) % 5)] = $rolv(a[i], $splat(RHO[i] as i64));
                        }
                    }
                    // chi: 0xD2 is a ^ (!b & c).
                    for y in 0..5 {
                        for x in 0..5 {
                            a[x + 5 * y] = $logic::<0xD2>(b[x + 5 * y], b[(x + 1) % 5 + 5 * y], b[(x + 2) % 5 + 5 * y]);
                        }
                    }
                    // iota.
                    a[0] = $xor(a[0], $splat(rc as i64));
                }
            }

            /// The first four words of every state.
            #[target_feature(enable = $features)]
            fn squeeze(a: &[$vec; 25]) -> [[u64; LANES]; 4] {
                let mut words = [[0u64; LANES]; 4];
                for (w, lanes) in words.iter_mut().enumerate() {
                    // SAFETY: `lanes` is LANES u64s, the bytes one unaligned store of the register writes.
                    unsafe { $store(lanes.as_mut_ptr().cast(), a[w]) };
                }
                words
            }

            #[target_feature(enable = $features)]
            fn hash_group_simd<I: AsRef<[u8]>>(inputs: &[I], out: &mut [B256; LANES]) {
                let blocks = |i: usize| inputs.get(i).map_or(0, |input| input.as_ref().len() / RATE + 1);
                let rounds = (0..LANES).map(blocks).max().unwrap_or(0);
                let mut a = [$zero(); 25];
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
                        // SAFETY: `lanes` is LANES u64s, the bytes one unaligned load of the register reads.
                        let block = unsafe { $load(lanes.as_ptr().cast()) };
                        *reg = $xor(*reg, block);
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

            /// keccak256 of up to [`LANES`] inputs into `out[..inputs.len()]`.
            pub fn hash_group<I: AsRef<[u8]>>(inputs: &[I], out: &mut [B256; LANES]) {
                assert!(inputs.len() <= LANES, "{} inputs in a group of {LANES}", inputs.len());
                assert!(super::available(), "AVX-512F and AVX-512VL are not available");
                // SAFETY: the CPU runs the target features (checked above), the
                // only requirement of the function.
                unsafe { hash_group_simd(inputs, out) }
            }
        }
    };
}

states_side_by_side! {
    /// Eight states in 512-bit registers.
    mod x8, lanes 8, __m512i, "avx512f",
    zero _mm512_setzero_si512, load _mm512_loadu_si512, store _mm512_storeu_si512, xor _mm512_xor_si512,
    rol _mm512_rol_epi64, rolv _mm512_rolv_epi64, splat _mm512_set1_epi64, logic _mm512_ternarylogic_epi64
}

states_side_by_side! {
    /// Four states in 256-bit registers.
    mod x4, lanes 4, __m256i, "avx512f,avx512vl",
    zero _mm256_setzero_si256, load _mm256_loadu_si256, store _mm256_storeu_si256, xor _mm256_xor_si256,
    rol _mm256_rol_epi64, rolv _mm256_rolv_epi64, splat _mm256_set1_epi64x, logic _mm256_ternarylogic_epi64
}
