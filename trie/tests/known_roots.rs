//! Roots of small tries whose nodes are spelled out byte by byte here, so
//! the expected values do not come from the code under test.

use metis_trie::verify::verify_proof_nibbles;
use metis_trie::{keccak256, verify_proof, Bytes, Nibbles, RootBuilder, B256, EMPTY_ROOT_HASH, KECCAK_EMPTY};

fn root_of(leaves: &[(Vec<u8>, Vec<u8>)]) -> B256 {
    let mut b = RootBuilder::new();
    for (k, v) in leaves {
        b.add_leaf(Nibbles::unpack(k), v).unwrap();
    }
    b.finish().unwrap().root()
}

#[test]
fn constants() {
    assert_eq!(EMPTY_ROOT_HASH, keccak256([0x80]));
    assert_eq!(KECCAK_EMPTY, keccak256([]));
    assert_eq!(root_of(&[]), EMPTY_ROOT_HASH);
}

#[test]
fn single_leaf() {
    // leaf([hp(64 zero nibbles, leaf) = 0x20 ++ 32 zero bytes, 0x01])
    let mut node = vec![0xe3, 0xa1, 0x20];
    node.extend([0u8; 32]);
    node.push(0x01);
    assert_eq!(root_of(&[(vec![0; 32], vec![1])]), keccak256(&node));
}

#[test]
fn two_leaves_under_a_root_branch() {
    // Keys 0x00.. and 0x10..: a root branch with children 0 and 1, each a
    // leaf with the remaining 63 (odd) nibbles: hp = 0x30 ++ 31 zero bytes.
    let leaf = |value: u8| {
        let mut node = vec![0xe2, 0xa0, 0x30];
        node.extend([0u8; 31]);
        node.push(value);
        keccak256(node)
    };
    let mut branch = vec![0xf8, 0x51, 0xa0];
    branch.extend(leaf(1));
    branch.push(0xa0);
    branch.extend(leaf(2));
    branch.extend([0x80; 15]);
    let mut k1 = vec![0u8; 32];
    k1[0] = 0x10;
    assert_eq!(root_of(&[(vec![0; 32], vec![1]), (k1, vec![2])]), keccak256(&branch));
}

#[test]
fn embedded_nodes() {
    // Keys 0x01 -> "a" and 0x02 -> "b": extension [0] over a branch with two
    // leaves of empty path. Leaves (3 bytes) embed in the branch, and the
    // branch (22 bytes) embeds in the extension.
    let mut branch = vec![0xd5, 0x80, 0xc2, 0x20, b'a', 0xc2, 0x20, b'b'];
    branch.extend([0x80; 14]);
    assert_eq!(branch.len(), 22);
    let mut ext = vec![0xd7, 0x10];
    ext.extend(&branch);
    let root = keccak256(&ext);
    assert_eq!(root_of(&[(vec![0x01], b"a".to_vec()), (vec![0x02], b"b".to_vec())]), root);

    // The proof of either key is the root node alone; the verifier must
    // follow the embedded nodes.
    let key = Nibbles::unpack(&[0x02]);
    let mut b = RootBuilder::new().with_proof_targets([key.clone()]);
    b.add_leaf(Nibbles::unpack(&[0x01]), b"a").unwrap();
    b.add_leaf(key.clone(), b"b").unwrap();
    let proof = b.finish().unwrap().proof(&key);
    assert_eq!(proof, vec![Bytes::from(ext.clone())]);
    verify_proof_nibbles(root, &key, Some(b"b"), &proof).unwrap();
    assert!(verify_proof_nibbles(root, &key, Some(b"a"), &proof).is_err());
    verify_proof_nibbles(root, &Nibbles::unpack(&[0x03]), None, &proof).unwrap();
    verify_proof_nibbles(root, &Nibbles::unpack(&[0x11]), None, &proof).unwrap();
}

#[test]
fn branch_value() {
    // "do" -> "verb", "dog" -> "puppy": extension over the nibbles of "do"
    // (6, 4, 6, f) to a branch holding "verb" whose child 6 ('g' = 0x67) is
    // a leaf with path [7] and value "puppy". The branch is 29 bytes, so it
    // is embedded in the extension.
    let leaf = [0xc7, 0x37, 0x85, b'p', b'u', b'p', b'p', b'y'];
    let mut branch = vec![0xdc];
    branch.extend([0x80; 6]);
    branch.extend(leaf);
    branch.extend([0x80; 9]);
    branch.extend([0x84, b'v', b'e', b'r', b'b']);
    assert_eq!(branch.len(), 29);
    let mut ext = vec![0xe1, 0x83, 0x00, 0x64, 0x6f];
    ext.extend(&branch);
    assert_eq!(root_of(&[(b"do".to_vec(), b"verb".to_vec()), (b"dog".to_vec(), b"puppy".to_vec())]), keccak256(&ext));
}

#[test]
fn empty_trie_proof() {
    let key = B256::repeat_byte(1);
    verify_proof(EMPTY_ROOT_HASH, &key, None, &[]).unwrap();
    assert!(verify_proof(EMPTY_ROOT_HASH, &key, Some(b"x"), &[]).is_err());
    assert!(verify_proof(B256::repeat_byte(2), &key, None, &[]).is_err());
}
