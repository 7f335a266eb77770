//! keccak256 of many independent inputs at once.
//!
//! Hashing dominates the work of Merkle roots, receipts roots, log blooms
//! and snapshot checks, and there the inputs are many and independent
//! (the leaves under one branch, the receipts of a block, the preimages of
//! a chunk). One Keccak-f\[1600\] permutation is a chain of dependent
//! 64-bit operations; with AVX-512 eight states advance side by side, one
//! 64-bit lane of each register per state: 84-86 ns per 32-byte hash
//! against 283-298 ns for alloy's scalar assembly on an EPYC, 3.3-3.7x the
//! throughput for 32-532-byte inputs, and 74-79 ns against 337 ns on a
//! Xeon (`cargo run --release -p metis-keccak --example throughput`).
//!
//! [`keccak256_each`] takes the inputs in groups of eight; the two to four
//! left after them go side by side in 256-bit registers, where a
//! permutation costs about one one-lane permutation, and a last one alone
//! through alloy's `keccak256`. A group costs as many permutations as its
//! longest input has rate blocks (136 bytes), so inputs of different
//! lengths are grouped longest first, and one far longer than the rest of
//! its eight goes into a group of four. Without AVX-512F and AVX-512VL
//! (detected once at run time) every input goes through alloy's
//! `keccak256`.

#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
use lanes::{x4, x8};

use alloy_primitives::B256;

/// Bytes absorbed per permutation by keccak256 (1600 - 2 * 256 bits).
pub const RATE: usize = 136;

/// Batches smaller than this gain most by joining others first: a group
/// of two costs as much as one of four, and two or three inputs make one
/// group where joined batches would have filled eight lanes.
pub const MIN_BATCH: usize = 3;

/// `out[i] = keccak256(inputs[i])` for every input (`out` is cleared first).
pub fn keccak256_each<I: AsRef<[u8]>>(inputs: &[I], out: &mut Vec<B256>) {
    each(inputs, out, batched());
}

/// What a group's permutation costs in one-lane permutations, with margin:
/// eight lanes at a time give 3.3-3.7x the throughput of one, so a group
/// step costs about 2.3 scalar ones.
const GROUP_STEP_COST: usize = 3;

/// Rate blocks keccak256 absorbs for an input of `len` bytes (with padding).
fn blocks(len: usize) -> usize {
    len / RATE + 1
}

/// [`keccak256_each`], several states side by side only if `side_by_side` (which
/// requires [`batched`]).
fn each<I: AsRef<[u8]>>(inputs: &[I], out: &mut Vec<B256>, side_by_side: bool) {
    out.clear();
    let scalar = |input: &I| alloy_primitives::keccak256(input.as_ref());
    #[cfg(target_arch = "x86_64")]
    if side_by_side && inputs.len() >= 2 {
        let first = blocks(inputs[0].as_ref().len());
        if inputs.iter().all(|input| blocks(input.as_ref().len()) == first) {
            // One length class (the usual case): groups in input order.
            out.reserve(inputs.len());
            let mut rest = inputs;
            while !rest.is_empty() {
                let n = group_len(rest.len());
                let (group, tail) = rest.split_at(n);
                hash_group(group, out);
                rest = tail;
            }
        } else {
            mixed(inputs, out);
        }
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = side_by_side;
    out.extend(inputs.iter().map(scalar));
}

/// Inputs of different lengths: a group runs all its lanes for as many
/// permutations as its longest input needs, so the inputs are grouped
/// longest first (neighbours have similar lengths), and an input much
/// longer than the others of its eight (one receipt with ten thousand
/// logs among small ones) goes into a group of four, whose steps cost
/// about what one-lane steps do.
#[cfg(target_arch = "x86_64")]
fn mixed<I: AsRef<[u8]>>(inputs: &[I], out: &mut Vec<B256>) {
    let len = |i: usize| inputs[i].as_ref().len();
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_unstable_by_key(|&i| std::cmp::Reverse(len(i)));
    out.resize(inputs.len(), B256::ZERO);
    let mut rest = &order[..];
    let mut digests = Vec::with_capacity(x8::LANES);
    while let Some(&longest) = rest.first() {
        let eight = &rest[..rest.len().min(x8::LANES)];
        let eight_blocks: usize = eight.iter().map(|&i| blocks(len(i))).sum();
        // Eight lanes when there are more than four inputs and the longest
        // is not far longer than the rest; otherwise up to four lanes (one
        // step of four costs about a one-lane step, so they never lose).
        let group = if eight.len() > x4::LANES && blocks(len(longest)) * GROUP_STEP_COST <= eight_blocks {
            eight
        } else {
            &rest[..rest.len().min(x4::LANES)]
        };
        let members: Vec<&[u8]> = group.iter().map(|&i| inputs[i].as_ref()).collect();
        hash_group(&members, &mut digests);
        for (&i, digest) in group.iter().zip(&digests) {
            out[i] = *digest;
        }
        digests.clear();
        rest = &rest[group.len()..];
    }
}

/// Inputs taken by the next group when `left` remain: eight lanes for
/// five or more, four lanes for two to four, one at a time for the last.
#[cfg(target_arch = "x86_64")]
fn group_len(left: usize) -> usize {
    if left <= x4::LANES {
        left
    } else {
        left.min(x8::LANES)
    }
}

/// Appends the hashes of `group` (one to eight inputs) to `out`, with the
/// narrowest states that hold them.
#[cfg(target_arch = "x86_64")]
fn hash_group<I: AsRef<[u8]>>(group: &[I], out: &mut Vec<B256>) {
    match group.len() {
        1 => out.push(alloy_primitives::keccak256(group[0].as_ref())),
        2..=4 => {
            let mut digests = [B256::ZERO; x4::LANES];
            x4::hash_group(group, &mut digests);
            out.extend_from_slice(&digests[..group.len()]);
        }
        _ => {
            let mut digests = [B256::ZERO; x8::LANES];
            x8::hash_group(group, &mut digests);
            out.extend_from_slice(&digests[..group.len()]);
        }
    }
}

/// [`keccak256_each`] into a new vector.
pub fn keccak256_all<I: AsRef<[u8]>>(inputs: &[I]) -> Vec<B256> {
    let mut out = Vec::new();
    keccak256_each(inputs, &mut out);
    out
}

/// Whether [`keccak256_each`] hashes inputs side by side (eight or four at a time) on this CPU.
pub fn batched() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        lanes::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_long_input_among_short_ones_gives_the_scalar_hashes() {
        // A receipt with thousands of logs among small ones: in a group of four,
        // the others still in groups, every digest in its input's place.
        for at in [0, 5, 40] {
            let mut inputs: Vec<Vec<u8>> = (0..41).map(|n| vec![n as u8; 100 + n * 7]).collect();
            inputs[at] = vec![0xab; 200_000];
            let reference: Vec<B256> = inputs.iter().map(alloy_primitives::keccak256).collect();
            let mut out = Vec::new();
            each(&inputs, &mut out, batched());
            assert_eq!(out, reference, "long input at {at}");
        }
    }

    #[test]
    fn both_paths_give_the_scalar_hashes() {
        let inputs: Vec<Vec<u8>> = (0..300).map(|n| vec![n as u8; n]).collect();
        let reference: Vec<B256> = inputs.iter().map(alloy_primitives::keccak256).collect();
        let mut out = Vec::new();
        each(&inputs, &mut out, false);
        assert_eq!(out, reference);
        if batched() {
            each(&inputs, &mut out, true);
            assert_eq!(out, reference);
        }
    }
}
