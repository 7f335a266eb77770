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

    /// The first 32 bytes of the key's order-preserving encoding (variant
    /// byte, then the fields' big-endian bytes, zero-padded) as two
    /// integers: keys with different prefixes compare as their prefixes do;
    /// keys with equal prefixes (slots of one account sharing their high
    /// bytes) need the full comparison.
    fn order_prefix(&self) -> (u128, u128) {
        let mut bytes = [0u8; 32];
        let (variant, field): (u8, &[u8]) = match self {
            StateKey::Account(a) => (0, a.as_slice()),
            StateKey::StorageWipe(a) => (1, a.as_slice()),
            StateKey::Storage(a, _) => (2, a.as_slice()),
            StateKey::Code(h) => (3, &h[..31]),
        };
        bytes[0] = variant;
        bytes[1..1 + field.len()].copy_from_slice(field);
        if let StateKey::Storage(_, slot) = self {
            bytes[21..].copy_from_slice(&slot.to_be_bytes::<32>()[..11]);
        }
        let word = |at: usize| u128::from_be_bytes(bytes[at..at + 16].try_into().expect("16 bytes"));
        (word(0), word(16))
    }
}

/// Sorts `(key, value)` pairs by key. Sorting the pairs themselves moves a
/// whole account value on every swap and compares enum fields byte by byte;
/// this sorts (prefix, index) entries and then swaps every pair into place
/// once.
pub(crate) fn sort_by_state_key<V>(pairs: &mut [(StateKey, V)]) {
    assert!(pairs.len() <= u32::MAX as usize, "{} pairs: indices are u32", pairs.len());
    let mut order: Vec<(u128, u128, u32)> = pairs
        .iter()
        .enumerate()
        .map(|(i, (key, _))| {
            let (high, low) = key.order_prefix();
            (high, low, i as u32)
        })
        .collect();
    order.sort_unstable_by(|a, b| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| pairs[a.2 as usize].0.cmp(&pairs[b.2 as usize].0))
    });
    // In place, as `slice::sort_by_cached_key` does: position `i` takes the
    // pair at `order[i]`, or, if that one was already swapped away (index
    // below `i`), the place it went to, found by following the indices.
    for i in 0..order.len() {
        let mut source = order[i].2 as usize;
        while source < i {
            source = order[source].2 as usize;
        }
        order[i].2 = source as u32;
        pairs.swap(i, source);
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
    /// A chain of balance additions (rare: boxed, so that the common origins
    /// and with them every read record stay small; a read set is written
    /// for every read of every transaction).
    Additions(Box<AdditionChain>),
}

/// Balance additions, newest first, ending on a full write or on the parent
/// state (`base` is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdditionChain {
    /// The full write below the additions (`None`: the parent state).
    pub base: Option<Version>,
    /// The additions, newest first.
    pub additions: Vec<Version>,
}

/// A read made by a transaction and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    /// The location read.
    pub key: StateKey,
    /// Where its value came from.
    pub origin: ReadOrigin,
}

// Every read of every transaction of a parallel block leaves one record
// (a block of swaps: about 25 per transaction); keep them at most 80 bytes.
const _: () = assert!(std::mem::size_of::<ReadRecord>() <= 80);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys that collide on their prefixes: few addresses, slots that
    /// differ only in their low bytes or only in their high bytes, code
    /// hashes that differ only in their last byte.
    fn key() -> impl Strategy<Value = StateKey> {
        let address = (0u8..3, 0u8..2).prop_map(|(a, b)| {
            let mut bytes = [0x11u8; 20];
            bytes[0] = a;
            bytes[19] = b;
            Address::from(bytes)
        });
        let slot = (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(high, low, big)| {
            let mut bytes = [0u8; 32];
            bytes[if big { 0 } else { 10 }] = high;
            bytes[31] = low;
            U256::from_be_bytes(bytes)
        });
        prop_oneof![
            address.clone().prop_map(StateKey::Account),
            address.clone().prop_map(StateKey::StorageWipe),
            (address, slot).prop_map(|(a, s)| StateKey::Storage(a, s)),
            (any::<u8>(), any::<u8>()).prop_map(|(first, last)| {
                let mut h = [0u8; 32];
                h[0] = first % 2;
                h[31] = last;
                StateKey::Code(B256::from(h))
            }),
        ]
    }

    proptest! {
        #[test]
        fn sorting_by_state_key_matches_the_key_order(keys in proptest::collection::vec(key(), 0..300)) {
            let mut pairs: Vec<(StateKey, usize)> = keys.iter().copied().zip(0..).collect();
            let mut expected = pairs.clone();
            expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            sort_by_state_key(&mut pairs);
            // Equal keys may come in any order; their values must all be there.
            let mut runs = pairs.clone();
            runs.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            prop_assert_eq!(&runs, &expected);
            prop_assert!(pairs.windows(2).all(|w| w[0].0 <= w[1].0), "not sorted: {:?}", pairs);
        }
    }
}
