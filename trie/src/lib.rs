//! Merkle Patricia Trie: pure, no I/O.
