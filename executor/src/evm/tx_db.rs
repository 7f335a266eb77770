//! revm's `Database` for one transaction: every read goes through the
//! multi-version memory and is recorded for validation.

use super::code_cache::CodeCache;
use crate::chains::STAND_IN_BALANCE;
use alloy_primitives::map::HashMap;
use alloy_primitives::{Address, B256, U256};
use metisdb::pending::{MvMemory, ReadError, ReadRecord, StateError, StateKey, TxIndex};
use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, Database};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

/// Why a read aborted the execution of a transaction.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// A lower transaction is being re-executed and will write what was read.
    #[error("blocked by transaction {0}")]
    Blocked(TxIndex),
    #[error(transparent)]
    State(#[from] StateError),
}

impl DBErrorMarker for DbError {}

impl From<ReadError> for DbError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Blocked(tx) => DbError::Blocked(tx),
            ReadError::State(e) => DbError::State(e),
        }
    }
}

pub struct TxDb<'a, 'p> {
    pub mv: &'a MvMemory<'p>,
    pub codes: &'a CodeCache,
    /// This worker's own analysed copies: revm clones bytecode on every
    /// account load, and a reference count shared with other workers would
    /// bounce between cores.
    local_codes: HashMap<B256, Bytecode>,
    /// This worker's own empty code: `Bytecode::default()` clones revm's one
    /// global instance, and every account load moved its reference count
    /// between the cores (70% of `basic` on the transfer block).
    empty_code: Bytecode,
    pub tx: TxIndex,
    /// The sequential path reads only final values and skips the bookkeeping.
    pub record_reads: bool,
    pub reads: Vec<ReadRecord>,
    /// A chain transaction's sender and nonce ([`crate::chains`]): reads of
    /// it see a stand-in account and are not recorded.
    pub stand_in_sender: Option<(Address, u64)>,
}

impl<'a, 'p> TxDb<'a, 'p> {
    pub fn new(mv: &'a MvMemory<'p>, codes: &'a CodeCache, tx: TxIndex, record_reads: bool) -> Self {
        Self {
            mv,
            codes,
            local_codes: HashMap::default(),
            empty_code: CodeCache::private_copy(&Bytecode::default()),
            tx,
            record_reads,
            reads: Vec::new(),
            stand_in_sender: None,
        }
    }

    fn load_code(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        if let Some(code) = self.local_codes.get(&code_hash) {
            return Ok(code.clone());
        }
        let shared = self.codes.get_or_load(code_hash, || {
            self.mv.read_code(&code_hash)?.ok_or_else(|| {
                DbError::State(StateError {
                    what: format!("code {code_hash}"),
                    reason: "missing from the state".into(),
                })
            })
        })?;
        let code = CodeCache::private_copy(&shared);
        self.local_codes.insert(code_hash, code.clone());
        Ok(code)
    }
}

impl Database for TxDb<'_, '_> {
    type Error = DbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        if let Some((_, nonce)) = self.stand_in_sender.filter(|(sender, _)| *sender == address) {
            return Ok(Some(AccountInfo::new(STAND_IN_BALANCE, nonce, KECCAK_EMPTY, self.empty_code.clone())));
        }
        let (account, origin) = self.mv.read_account(&address, self.tx)?;
        if self.record_reads {
            self.reads.push(ReadRecord { key: StateKey::Account(address), origin });
        }
        let Some(account) = account else {
            return Ok(None);
        };
        let code = if account.code_hash == KECCAK_EMPTY {
            self.empty_code.clone()
        } else {
            self.load_code(account.code_hash)?
        };
        Ok(Some(AccountInfo::new(account.balance, account.nonce, account.code_hash, code)))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(self.empty_code.clone());
        }
        self.load_code(code_hash)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, DbError> {
        let (value, origin) = self.mv.read_storage(&address, &index, self.tx)?;
        if self.record_reads {
            self.reads.push(ReadRecord { key: StateKey::Storage(address, index), origin });
        }
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, DbError> {
        self.mv.block_hash(number)?.ok_or_else(|| {
            DbError::State(StateError {
                what: format!("hash of block {number}"),
                reason: "missing from the state".into(),
            })
        })
    }
}
