//! Folding the final writes of a block into the next version.

use super::types::{StateKey, StateValue};
use crate::error::{Error, Result};
use crate::state::{AccountUpdate, SlotWrite, StateWriter};

/// What [`fold`] applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldStats {
    /// Accounts set (created or changed).
    pub accounts: usize,
    /// Accounts deleted (with their storage).
    pub deleted_accounts: usize,
    /// Storage wipes (self-destruct, creation over an address).
    pub wipes: usize,
    /// Storage slots set or cleared.
    pub slots: usize,
    /// Bytecodes stored.
    pub codes: usize,
}

fn mismatch(key: &StateKey, value: &StateValue) -> Error {
    Error::InvalidState(format!("final write {value:?} does not fit key {key:?}"))
}

/// Applies the final writes of a block (as [`super::MvMemory::final_writes`]
/// returns them: the last write of every key, slot writes cleared by a later
/// wipe already left out) to `writer`. The caller commits the writer, which
/// computes the state root of the new version.
///
/// Order: bytecode first (an account never references code the version does
/// not hold), then storage wipes, then account deletions, then the updated
/// accounts and the slots as one batch ([`StateWriter::apply_batch`]: in
/// hashed-key order), so that a wipe never removes a slot the same block
/// wrote after it and an account deleted in the block takes its storage
/// with it.
pub fn fold(writer: &mut StateWriter<'_>, writes: &[(StateKey, StateValue)]) -> Result<FoldStats> {
    let mut stats = FoldStats::default();
    for (key, value) in writes {
        if let StateKey::Code(hash) = key {
            let StateValue::Code(code) = value else { return Err(mismatch(key, value)) };
            writer.set_code(hash, code)?;
            stats.codes += 1;
        }
    }
    for (key, value) in writes {
        if let StateKey::StorageWipe(address) = key {
            if !matches!(value, StateValue::StorageWipe) {
                return Err(mismatch(key, value));
            }
            writer.wipe_storage(address)?;
            stats.wipes += 1;
        }
    }
    // Account deletions (with their storage) before any slot write; then
    // the updated accounts and the slots as one batch, in key order.
    let mut accounts: Vec<AccountUpdate> = Vec::new();
    let mut slots: Vec<SlotWrite> = Vec::new();
    for (key, value) in writes {
        match (key, value) {
            (StateKey::Account(address), StateValue::Account(None)) => {
                writer.set_account(address, None)?;
                stats.deleted_accounts += 1;
            }
            (StateKey::Account(address), StateValue::Account(Some(account))) => {
                accounts.push((writer.hash_address(address)?, (*account).into()));
            }
            (StateKey::Account(_), _) => return Err(mismatch(key, value)),
            (StateKey::Storage(address, slot), StateValue::Storage(v)) => {
                let (address_hash, slot_hash) = writer.hash_slot_key(address, slot)?;
                slots.push((address_hash, slot_hash, *v));
            }
            (StateKey::Storage(..), _) => return Err(mismatch(key, value)),
            _ => {}
        }
    }
    stats.accounts = accounts.len();
    stats.slots = slots.len();
    writer.apply_batch(&mut accounts, &mut slots)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::{AccountBasic, InMemoryState, MvMemory, StateView, Version, WriteOp, EMPTY_CODE_HASH};
    use crate::state::StateRead;
    use crate::{Db, Options};
    use alloy_primitives::{keccak256, Address, Bytes, U256};

    fn addr(n: u8) -> Address {
        Address::new([n; 20])
    }

    fn parent() -> InMemoryState {
        let mut s = InMemoryState::default();
        let slots = |v: &[(u64, u64)]| v.iter().map(|(k, v)| (U256::from(*k), U256::from(*v))).collect::<Vec<_>>();
        s.insert_account(addr(1), 1, U256::from(100), Bytes::new(), slots(&[(1, 10), (2, 20)]));
        s.insert_account(addr(2), 1, U256::from(5), Bytes::from_static(&[0x60, 0x00]), slots(&[(1, 1), (2, 2)]));
        s.insert_account(addr(3), 0, U256::from(7), Bytes::new(), slots(&[(9, 9)]));
        s
    }

    fn import(db: &Db, state: &InMemoryState) {
        let mut w = db.begin_state().unwrap();
        state.write_to(&mut w).unwrap();
        let (_, root) = w.commit(Vec::new()).unwrap();
        assert_eq!(root, state.state_root());
    }

    fn set(value: StateValue) -> WriteOp {
        WriteOp::Set(value)
    }

    #[test]
    fn folded_block_commits_the_in_memory_root() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let pre = parent();
        import(&db, &pre);
        let snap = db.snapshot(None).unwrap();
        assert_eq!(StateView::storage(&snap, &addr(1), &U256::from(2)).unwrap(), U256::from(20));

        let new_code = Bytes::from_static(&[0x60, 0x01, 0x00]);
        let new_hash = keccak256(&new_code);
        let mv = MvMemory::new(&snap, 4, true);
        let slot = |a: u8, s: u64| StateKey::Storage(addr(a), U256::from(s));
        let word = |v: u64| set(StateValue::Storage(U256::from(v)));
        // tx 0: changes and clears slots, writes a slot of account 2 that a later wipe clears.
        mv.record(
            Version { tx: 0, incarnation: 0 },
            vec![(slot(1, 1), word(11)), (slot(1, 2), word(0)), (slot(2, 1), word(99))],
        );
        // tx 1: account 2 is re-created with new code and one slot.
        let created = AccountBasic { nonce: 1, balance: U256::from(5), code_hash: new_hash };
        mv.record(
            Version { tx: 1, incarnation: 0 },
            vec![
                (StateKey::Account(addr(2)), set(StateValue::Account(Some(created)))),
                (StateKey::StorageWipe(addr(2)), set(StateValue::StorageWipe)),
                (slot(2, 3), word(33)),
                (StateKey::Code(new_hash), set(StateValue::Code(new_code.clone()))),
            ],
        );
        // tx 2: account 3 is destroyed; a new account gets a balance lazily.
        mv.record(
            Version { tx: 2, incarnation: 0 },
            vec![
                (StateKey::Account(addr(3)), set(StateValue::Account(None))),
                (StateKey::StorageWipe(addr(3)), set(StateValue::StorageWipe)),
                (StateKey::Account(addr(4)), WriteOp::AddBalance(U256::from(3))),
            ],
        );
        let writes = mv.final_writes().unwrap();
        assert!(!writes.contains(&(slot(2, 1), StateValue::Storage(U256::from(99)))), "a wiped slot write survived");
        drop(snap);

        let mut writer = db.begin_state().unwrap();
        let stats = fold(&mut writer, &writes).unwrap();
        assert_eq!(
            stats,
            FoldStats { accounts: 2, deleted_accounts: 1, wipes: 2, slots: 3, codes: 1 },
            "writes: {writes:?}"
        );
        let (_, root) = writer.commit(Vec::new()).unwrap();
        let mut post = pre.clone();
        post.apply(&writes);
        assert_eq!(root, post.state_root());

        let snap = db.snapshot(None).unwrap();
        assert_eq!(StateRead::storage(&snap, &addr(1), &U256::from(1)).unwrap(), U256::from(11));
        assert_eq!(StateRead::storage(&snap, &addr(1), &U256::from(2)).unwrap(), U256::ZERO);
        assert_eq!(StateRead::storage(&snap, &addr(2), &U256::from(1)).unwrap(), U256::ZERO);
        assert_eq!(StateRead::storage(&snap, &addr(2), &U256::from(2)).unwrap(), U256::ZERO);
        assert_eq!(StateRead::storage(&snap, &addr(2), &U256::from(3)).unwrap(), U256::from(33));
        assert_eq!(StateView::code(&snap, &new_hash).unwrap(), Some(new_code));
        assert!(StateRead::account(&snap, &addr(3)).unwrap().is_none());
        assert_eq!(StateRead::storage(&snap, &addr(3), &U256::from(9)).unwrap(), U256::ZERO);
        let fresh = StateView::account(&snap, &addr(4)).unwrap().unwrap();
        assert_eq!((fresh.balance, fresh.code_hash), (U256::from(3), EMPTY_CODE_HASH));
    }

    #[test]
    fn a_value_that_does_not_fit_its_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let mut writer = db.begin_state().unwrap();
        let bad = [(StateKey::Account(addr(1)), StateValue::Storage(U256::from(1)))];
        assert!(matches!(fold(&mut writer, &bad), Err(Error::InvalidState(_))));
    }
}
