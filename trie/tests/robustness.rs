//! Decoders and the verifier on arbitrary and mutated input: they must
//! return errors, never panic, and accept only canonical encodings.

mod common;

use common::*;
use metis_trie::hex_prefix;
use metis_trie::nibbles::STORED_KEY_LEN;
use metis_trie::node::Node;
use metis_trie::{full_root, verify_proof, BranchRecord, Bytes, Nibbles, TrieAccount, B256, U256};
use proptest::prelude::*;

/// Valid records of a random trie, to mutate.
fn sample_records() -> Vec<BranchRecord> {
    let leaves: MemLeaves =
        (0u32..600).map(|i| (metis_trie::keccak256(i.to_be_bytes()), vec![1 + (i % 200) as u8])).collect();
    let full = full_root(&mut leaves.cursor()).unwrap();
    assert!(full.records.len() > 10);
    full.records.into_iter().map(|(_, r)| r).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn branch_record_decode_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(r) = BranchRecord::decode(&bytes) {
            prop_assert_eq!(r.encode(), bytes);
        }
    }

    #[test]
    fn branch_record_decode_mutated(index in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let records = sample_records();
        let mut enc = index.get(&records).encode();
        let at = pos.index(enc.len());
        enc[at] = byte;
        if let Ok(r) = BranchRecord::decode(&enc) {
            prop_assert_eq!(r.encode(), enc.clone());
        }
        let cut_at = cut.index(enc.len());
        prop_assert!(BranchRecord::decode(&enc[..cut_at]).is_err());
    }

    #[test]
    fn account_decode_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(a) = TrieAccount::decode(&bytes) {
            prop_assert_eq!(a.encode_to_vec(), bytes);
        }
    }

    #[test]
    fn account_round_trip_and_mutation(nonce in any::<u64>(), balance in any::<[u8; 32]>(), sr in any::<[u8; 32]>(), ch in any::<[u8; 32]>(),
                                       pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let a = TrieAccount { nonce, balance: U256::from_be_bytes(balance), storage_root: B256::from(sr), code_hash: B256::from(ch) };
        let mut enc = a.encode_to_vec();
        prop_assert_eq!(TrieAccount::decode(&enc).unwrap(), a);
        let at = pos.index(enc.len());
        enc[at] = byte;
        if let Ok(b) = TrieAccount::decode(&enc) {
            prop_assert_eq!(b.encode_to_vec(), enc);
        }
    }

    #[test]
    fn node_and_path_decoders_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(node) = Node::decode(&bytes) {
            prop_assert_eq!(node.encode(), bytes.clone());
        }
        if let Ok((path, leaf)) = hex_prefix::decode(&bytes) {
            prop_assert_eq!(hex_prefix::encode(&path, leaf), bytes.clone());
        }
        if bytes.len() >= STORED_KEY_LEN {
            let key: [u8; STORED_KEY_LEN] = bytes[..STORED_KEY_LEN].try_into().unwrap();
            if let Ok(p) = Nibbles::from_stored_key(&key) {
                prop_assert_eq!(p.to_stored_key(), Some(key));
            }
        }
    }

    #[test]
    fn verifier_on_arbitrary_proofs(root in any::<[u8; 32]>(), key in any::<[u8; 32]>(),
                                    nodes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..5)) {
        let proof: Vec<Bytes> = nodes.into_iter().map(Bytes::from).collect();
        // Random nodes cannot hash to a random root: always rejected.
        prop_assert!(verify_proof(B256::from(root), &B256::from(key), None, &proof).is_err() || proof.is_empty());
        // With the root set to the first node's hash, walking must still not panic.
        if let Some(first) = proof.first() {
            let _ = verify_proof(metis_trie::keccak256(first), &B256::from(key), None, &proof);
        }
    }
}
