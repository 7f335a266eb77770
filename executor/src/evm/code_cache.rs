//! Analysed bytecode shared by all transactions (jump tables are computed once
//! per code hash, not once per call).

use alloy_primitives::map::HashMap;
use alloy_primitives::B256;
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
    pub fn analyse(bytes: alloy_primitives::Bytes) -> Bytecode {
        Bytecode::new_raw_checked(bytes.clone()).unwrap_or_else(|_| Bytecode::new_legacy(bytes))
    }

    pub fn get_or_load<E>(
        &self,
        code_hash: B256,
        load: impl FnOnce() -> Result<alloy_primitives::Bytes, E>,
    ) -> Result<Bytecode, E> {
        if let Some(code) = self.codes.read().unwrap_or_else(|e| e.into_inner()).get(&code_hash) {
            return Ok(code.clone());
        }
        let code = Self::analyse(load()?);
        self.codes.write().unwrap_or_else(|e| e.into_inner()).insert(code_hash, code.clone());
        Ok(code)
    }
}
