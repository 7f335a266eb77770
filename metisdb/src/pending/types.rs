//! Keys and values of the pending layer (Block-STM's multi-version memory).

use alloy_primitives::{Address, Bytes, B256, U256};

/// Index of a transaction inside its block.
pub type TxIndex = usize;

/// How many times a transaction has been (re)started; the first execution is 0.
pub type Incarnation = u32;

/// The write of one incarnation of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// The transaction.
    pub tx: TxIndex,
    /// Its incarnation.
    pub incarnation: Incarnation,
}

/// keccak256 of the empty byte string: the code hash of accounts without code.
pub const EMPTY_CODE_HASH: B256 =
    alloy_primitives::b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");

/// The part of an account that lives outside its storage trie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountBasic {
    /// Nonce.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak256 of the code ([`EMPTY_CODE_HASH`] for none).
    pub code_hash: B256,
}

impl Default for AccountBasic {
    fn default() -> Self {
        Self { nonce: 0, balance: U256::ZERO, code_hash: EMPTY_CODE_HASH }
    }
}

impl AccountBasic {
    /// EIP-161 emptiness: no nonce, no balance, no code.
    pub fn is_empty(&self) -> bool {
        self.nonce == 0 && self.balance.is_zero() && self.code_hash == EMPTY_CODE_HASH
    }
}

/// One location of the world state.
///
/// The variant order matters: `final_writes` returns keys in this order, so a
/// consumer folding them applies every `StorageWipe` of an address before any
/// `Storage` write of the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateKey {
    /// Nonce, balance and code hash of an account.
    Account(Address),
    /// Marks that every storage slot of the account was cleared (self-destruct,
    /// creation over an address). Slot writes after it in the block survive.
    StorageWipe(Address),
    /// One storage slot.
    Storage(Address, U256),
    /// Bytecode, content-addressed by its hash.
    Code(B256),
}

impl StateKey {
    /// The account a key belongs to (none for code, which is shared).
    pub fn address(&self) -> Option<Address> {
        match self {
            StateKey::Account(a) | StateKey::StorageWipe(a) | StateKey::Storage(a, _) => Some(*a),
            StateKey::Code(_) => None,
        }
    }
}

/// The value of a location after a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateValue {
    /// `None`: the account does not exist (destroyed or never created).
    Account(Option<AccountBasic>),
    /// Every slot of the account cleared.
    StorageWipe,
    /// A zero value deletes the slot.
    Storage(U256),
    /// Bytecode.
    Code(Bytes),
}

/// What a transaction does to one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Overwrite the location.
    Set(StateValue),
    /// Add to the balance of an account without reading it first (fees paid to
    /// the beneficiary, withdrawals). Commutative, so it never makes a later
    /// transaction conflict unless that transaction reads the balance.
    AddBalance(U256),
    /// The sender side of a plain value transfer by a debit account
    /// ([`crate::pending::MvMemory::set_debit_accounts`]): increments the nonce
    /// and subtracts the amount (value and fee). The transaction did not read
    /// the account, so transactions of one sender do not conflict with each
    /// other; [`crate::pending::MvMemory::check_debits`] replays the nonce and
    /// balance checks once the block is done.
    Debit(U256),
}

/// Where a read found its value: validation re-resolves the read and compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOrigin {
    /// Not written by any lower transaction: the parent state.
    Parent,
    /// The write of this version.
    Version(Version),
    /// A chain of balance additions, newest first, ending on a full write or on
    /// the parent state (`base` is `None`).
    Additions {
        /// The full write below the additions (`None`: the parent state).
        base: Option<Version>,
        /// The additions, newest first.
        additions: Vec<Version>,
    },
}

/// A read made by a transaction and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    /// The location read.
    pub key: StateKey,
    /// Where its value came from.
    pub origin: ReadOrigin,
}
