//! Oracle: alloy's scalar keccak256, input by input.

use alloy_primitives::{keccak256, B256};
use metis_keccak::{keccak256_all, keccak256_each, RATE};
use proptest::prelude::*;

fn reference(inputs: &[Vec<u8>]) -> Vec<B256> {
    inputs.iter().map(keccak256).collect()
}

#[test]
fn lengths_around_the_rate_and_its_padding() {
    // Every length from 0 to three blocks and a byte, one per lane position.
    let inputs: Vec<Vec<u8>> = (0..=3 * RATE + 1).map(|n| (0..n).map(|i| (i * 7 + n) as u8).collect()).collect();
    assert_eq!(keccak256_all(&inputs), reference(&inputs));
    // Each length alone with seven 32-byte neighbours, in every position.
    for n in [0, 1, 31, 32, 33, RATE - 2, RATE - 1, RATE, RATE + 1, 2 * RATE - 1, 2 * RATE, 1000] {
        for position in 0..8 {
            let mut inputs: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8; 32]).collect();
            inputs[position] = vec![0xa5; n];
            assert_eq!(keccak256_all(&inputs), reference(&inputs), "length {n} at {position}");
        }
    }
}

#[test]
fn every_batch_size_of_one_length() {
    // Groups of eight, four lanes for two to four left over, one lane for a
    // last one: every split of 1 to 20 inputs of one length class.
    for n in 1..=20 {
        for len in [0, 32, RATE - 1, RATE, 300] {
            let inputs: Vec<Vec<u8>> = (0..n).map(|i| (0..len).map(|b| (b * 31 + i * 7 + n) as u8).collect()).collect();
            assert_eq!(keccak256_all(&inputs), reference(&inputs), "{n} inputs of {len} bytes");
        }
    }
}

#[test]
fn output_is_replaced_not_appended() {
    let mut out = vec![B256::repeat_byte(1); 3];
    keccak256_each(&[b"abc"], &mut out);
    assert_eq!(out, vec![keccak256(b"abc")]);
    keccak256_each::<&[u8]>(&[], &mut out);
    assert!(out.is_empty());
}

proptest! {
    #[test]
    fn equals_scalar_keccak(inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..40)) {
        prop_assert_eq!(keccak256_all(&inputs), reference(&inputs));
    }
}
