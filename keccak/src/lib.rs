//! keccak256 of many independent inputs at once.
//!
//! Hashing dominates the work of Merkle roots, receipts roots, log blooms
//! and snapshot checks, and there the inputs are many and independent
//! (the leaves under one branch, the receipts of a block, the preimages of
//! a chunk). One Keccak-f\[1600\] permutation is a chain of dependent
//! 64-bit operations; with AVX-512 eight states advance side by side, one
//! 64-bit lane of each register per state: 84-86 ns per 32-byte hash
//! against 283-298 ns for alloy's scalar assembly on this machine's EPYC,
//! 3.3-3.7x the throughput for 32-532-byte inputs (`cargo run --release -p
//! metis-keccak --example throughput`).
//!
//! [`keccak256_each`] takes the inputs in groups of eight; a group costs as
//! many permutations as its longest input has rate blocks (136 bytes), so
//! inputs of different lengths are grouped longest first, and one far
//! longer than the rest of its group is hashed alone. Without AVX-512
//! (detected once at run time) every input goes through alloy's
//! `keccak256`.

#[cfg(target_arch = "x86_64")]
mod x8;

use alloy_primitives::B256;

/// Bytes absorbed per permutation by keccak256 (1600 - 2 * 256 bits).
pub const RATE: usize = 136;

/// Below this many inputs left, a group is hashed one by one: a group of
/// eight costs about as much as two scalar hashes.
const MIN_GROUP: usize = 3;

/// Fewer inputs than this are hashed one by one: callers with smaller
/// batches gain by joining them with others first.
pub const MIN_BATCH: usize = MIN_GROUP;

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

/// [`keccak256_each`], eight at a time only if `eight_at_a_time` (which
/// requires [`batched`]).
fn each<I: AsRef<[u8]>>(inputs: &[I], out: &mut Vec<B256>, eight_at_a_time: bool) {
    out.clear();
    let scalar = |input: &I| alloy_primitives::keccak256(input.as_ref());
    #[cfg(target_arch = "x86_64")]
    if eight_at_a_time && inputs.len() >= MIN_GROUP {
        let first = blocks(inputs[0].as_ref().len());
        if inputs.iter().all(|input| blocks(input.as_ref().len()) == first) {
            // One length class (the usual case): groups in input order.
            out.reserve(inputs.len());
            let mut rest = inputs;
            while rest.len() >= MIN_GROUP {
                let (group, tail) = rest.split_at(rest.len().min(x8::LANES));
                let mut digests = [B256::ZERO; x8::LANES];
                x8::hash_group(group, &mut digests);
                out.extend_from_slice(&digests[..group.len()]);
                rest = tail;
            }
            out.extend(rest.iter().map(scalar));
        } else {
            mixed(inputs, out);
        }
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = eight_at_a_time;
    out.extend(inputs.iter().map(scalar));
}

/// Inputs of different lengths: a group runs all its lanes for as many
/// permutations as its longest input needs, so the inputs are grouped
/// longest first (neighbours have similar lengths), and an input much
/// longer than the others of its group (one receipt with ten thousand
/// logs among small ones) is hashed alone.
#[cfg(target_arch = "x86_64")]
fn mixed<I: AsRef<[u8]>>(inputs: &[I], out: &mut Vec<B256>) {
    let len = |i: usize| inputs[i].as_ref().len();
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_unstable_by_key(|&i| std::cmp::Reverse(len(i)));
    out.resize(inputs.len(), B256::ZERO);
    let mut rest = &order[..];
    while let Some(&longest) = rest.first() {
        let group = &rest[..rest.len().min(x8::LANES)];
        let group_blocks: usize = group.iter().map(|&i| blocks(len(i))).sum();
        if group.len() < MIN_GROUP || blocks(len(longest)) * GROUP_STEP_COST > group_blocks {
            out[longest] = alloy_primitives::keccak256(inputs[longest].as_ref());
            rest = &rest[1..];
            continue;
        }
        let members: Vec<&[u8]> = group.iter().map(|&i| inputs[i].as_ref()).collect();
        let mut digests = [B256::ZERO; x8::LANES];
        x8::hash_group(&members, &mut digests);
        for (&i, digest) in group.iter().zip(digests) {
            out[i] = digest;
        }
        rest = &rest[group.len()..];
    }
}

/// [`keccak256_each`] into a new vector.
pub fn keccak256_all<I: AsRef<[u8]>>(inputs: &[I]) -> Vec<B256> {
    let mut out = Vec::new();
    keccak256_each(inputs, &mut out);
    out
}

/// Whether [`keccak256_each`] hashes eight inputs at a time on this CPU.
pub fn batched() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x8::available()
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
        // A receipt with thousands of logs among small ones: hashed alone,
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
