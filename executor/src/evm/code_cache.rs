//! Analysed bytecode shared by all transactions (jump tables are computed once
//! per code hash, not once per call).

use alloy_primitives::map::HashMap;
use alloy_primitives::{Bytes, B256};
use revm::bytecode::Bytecode;
use std::sync::RwLock;

#[derive(Default)]
pub struct CodeCache {
    codes: RwLock<HashMap<B256, Bytecode>>,
}

impl CodeCache {
    /// Analysed bytecode. EIP-7702 delegation designators are decoded as
    /// such; anything else (including a malformed designator, as revm's own
    /// state loader does) is legacy code.
    pub fn analyse(bytes: Bytes) -> Bytecode {
        Bytecode::new_raw_checked(bytes.clone()).unwrap_or_else(|_| Bytecode::new_legacy(bytes))
    }

    /// A copy of `code` that shares no allocation, and so no reference
    /// count, with it: a worker's own copy. Copying the padded bytes and the
    /// jump table costs a fraction of analysing the code again (which was a
    /// quarter of a mainnet block's sequential time).
    pub fn private_copy(code: &Bytecode) -> Bytecode {
        // Empty code too: its analysis is revm's one global `Bytecode`, whose
        // reference count every account load of every worker would move
        // between the cores.
        let Some(jump_table) = code.legacy_jump_table() else {
            // EIP-7702 designators (23 bytes): nothing to save.
            return Self::analyse(Bytes::copy_from_slice(code.original_byte_slice()));
        };
        let padded = Bytes::copy_from_slice(code.bytecode());
        // SAFETY: `padded` is a byte-for-byte copy of the bytes that
        // `analyze_legacy` padded for `code`, given with `code`'s own
        // original length and jump table: the padding invariant that
        // `new_analyzed` requires holds for the copy as it does for `code`.
        unsafe { Bytecode::new_analyzed(padded, code.len(), jump_table.clone()) }
    }

    pub fn get_or_load<E>(&self, code_hash: B256, load: impl FnOnce() -> Result<Bytes, E>) -> Result<Bytecode, E> {
        if let Some(code) = self.codes.read().unwrap_or_else(|e| e.into_inner()).get(&code_hash) {
            return Ok(code.clone());
        }
        let code = Self::analyse(load()?);
        self.codes.write().unwrap_or_else(|e| e.into_inner()).insert(code_hash, code.clone());
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_copy_equals_a_fresh_analysis() {
        let codes: Vec<Vec<u8>> = vec![
            vec![0x60, 0x01, 0x56, 0x5b, 0x00],              // PUSH1 1 JUMP JUMPDEST STOP
            vec![0x7f, 0x5b],                                // PUSH32 cut short: padded
            vec![0x5b; 100],                                 // jump destinations only
            [&[0xef, 0x01, 0x00][..], &[0x11; 20]].concat(), // EIP-7702 designator
            vec![0xef, 0x01, 0x00, 0x11],                    // malformed designator: legacy
            vec![],                                          // empty: revm's global default
        ];
        for raw in codes {
            let shared = CodeCache::analyse(Bytes::from(raw.clone()));
            let copy = CodeCache::private_copy(&shared);
            assert_eq!(copy.kind(), shared.kind(), "{raw:02x?}");
            assert_eq!(copy.bytecode(), shared.bytecode(), "{raw:02x?}");
            assert_eq!(copy.original_byte_slice(), &raw[..]);
            assert_eq!(copy.legacy_jump_table(), shared.legacy_jump_table(), "{raw:02x?}");
            assert_ne!(copy.bytecode().as_ptr(), shared.bytecode().as_ptr(), "{raw:02x?}: shares its bytes");
        }
    }
}
