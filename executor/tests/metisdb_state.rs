//! MetisDB is the executor's state: blocks execute on a MetisDB snapshot as
//! their parent, their final writes fold into the next version, and the
//! committed state root and post-state equal those of the in-memory model
//! for the same writes.

mod common_data;

use metis_executor::pending::{fold, InMemoryState, StateKey, StateValue, WithBlockHashes};
use metis_executor::replay::load_block_dir;
use metis_executor::revm::context::TxEnv;
use metis_executor::synthetic::{synthetic_block, SyntheticSpec, Workload};
use metis_executor::{execute_block, BlockInput, ExecutionMode};
use metisdb::state::{StateRead, KECCAK_EMPTY};
use metisdb::{Db, Options};
use std::collections::BTreeMap;
use std::path::Path;

/// Writes `state` into a fresh version of `db` and returns its root.
fn import(db: &Db, state: &InMemoryState) -> alloy_primitives::B256 {
    let mut writer = db.begin_state().expect("begin");
    state.write_to(&mut writer).expect("write the state");
    writer.commit(Vec::new()).expect("commit").1
}

/// Every account, slot and code of `expected` reads back from the newest
/// version of `db`, and whatever `before` had that `expected` lost is gone.
fn assert_reads_back(db: &Db, expected: &InMemoryState, before: &InMemoryState) {
    let snap = db.snapshot(None).expect("snapshot");
    for (address, account) in &expected.accounts {
        let stored = snap.account(address).expect("read").unwrap_or_else(|| panic!("account {address} missing"));
        assert_eq!(stored.info.nonce, account.basic.nonce, "nonce of {address}");
        assert_eq!(stored.info.balance, account.basic.balance, "balance of {address}");
        assert_eq!(stored.info.code_hash, account.basic.code_hash, "code hash of {address}");
        assert_eq!(stored.storage_root, account.storage_root(), "storage root of {address}");
        for (slot, value) in &account.storage {
            assert_eq!(snap.storage(address, slot).expect("read"), *value, "slot {slot} of {address}");
        }
        if account.basic.code_hash != KECCAK_EMPTY {
            let code = snap.code(&account.basic.code_hash).expect("read").expect("code present");
            assert_eq!(code, expected.codes[&account.basic.code_hash].as_ref());
        }
    }
    for (address, account) in &before.accounts {
        match expected.accounts.get(address) {
            None => assert!(snap.account(address).expect("read").is_none(), "account {address} survived"),
            Some(now) => {
                for slot in account.storage.keys().filter(|s| !now.storage.contains_key(*s)) {
                    assert!(snap.storage(address, slot).expect("read").is_zero(), "slot {slot} of {address} survived");
                }
            }
        }
    }
}

/// Executes one block on the newest version of `db` (sequential and
/// parallel), checks the writes against execution on the in-memory `state`,
/// folds them into the next version and checks its root and contents.
/// Returns the new in-memory state.
fn execute_on_metisdb(db: &Db, state: &InMemoryState, input: &BlockInput, txs: &[TxEnv]) -> InMemoryState {
    let snap = db.snapshot(None).expect("snapshot");
    assert_eq!(snap.state_root().expect("root"), state.state_root().0, "parent roots differ");
    let parent = WithBlockHashes { state: &snap, hashes: state.block_hashes.clone() };
    let reference = execute_block(state, input, txs, ExecutionMode::Sequential).expect("in-memory execution");
    let mut writes: Option<Vec<(StateKey, StateValue)>> = None;
    for mode in [ExecutionMode::Sequential, ExecutionMode::Parallel { workers: 2 }] {
        let output = execute_block(&parent, input, txs, mode).expect("execution on MetisDB");
        assert_eq!(output.receipts, reference.receipts, "{mode:?}: receipts");
        assert_eq!(output.final_writes, reference.final_writes, "{mode:?}: final writes");
        writes.get_or_insert(output.final_writes);
    }
    drop(snap);
    let writes = writes.expect("two runs");

    let mut writer = db.begin_state().expect("begin");
    let stats = fold(&mut writer, &writes).expect("fold");
    assert_eq!(stats.accounts + stats.deleted_accounts + stats.wipes + stats.slots + stats.codes, writes.len());
    let (_, root) = writer.commit(Vec::new()).expect("commit");

    let mut post = state.clone();
    post.apply(&writes);
    assert_eq!(root, post.state_root(), "MetisDB root differs from the in-memory root of the same writes");
    assert_reads_back(db, &post, state);
    post
}

fn fresh_db(dir: &Path, state: &InMemoryState) -> Db {
    let db = Db::open(dir, Options::default()).expect("open");
    let root = import(&db, state);
    assert_eq!(root, state.state_root(), "imported pre-state root");
    db
}

fn run_block_dirs(root: &Path) -> usize {
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("block.json").exists())
        .collect();
    dirs.sort();
    let mut wipes = 0;
    for block_dir in &dirs {
        let fixture = load_block_dir(block_dir).expect("fixture");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = fresh_db(dir.path(), &fixture.state);
        let post = execute_on_metisdb(&db, &fixture.state, &fixture.input, &fixture.txs);
        wipes += fixture.state.accounts.keys().filter(|a| !post.accounts.contains_key(*a)).count();
    }
    eprintln!("{} blocks, {wipes} accounts deleted", dirs.len());
    dirs.len()
}

#[test]
fn mainnet_blocks_execute_on_a_metisdb_snapshot() {
    assert!(run_block_dirs(&common_data::fixtures().join("mainnet_blocks")) >= 2);
}

#[test]
fn all_mainnet_blocks_execute_on_a_metisdb_snapshot() {
    let Some(data) = common_data::shared_data() else {
        eprintln!("notice: shared data not found, mainnet blocks on MetisDB skipped");
        return;
    };
    assert_eq!(run_block_dirs(&data.join("mainnet-blocks")), 22);
}

/// The next block's transactions renumbered to follow the senders' nonces in `state`.
fn renumber(state: &InMemoryState, mut txs: Vec<TxEnv>) -> Vec<TxEnv> {
    let mut next: BTreeMap<_, u64> = BTreeMap::new();
    for tx in &mut txs {
        let nonce =
            next.entry(tx.caller).or_insert_with(|| state.accounts.get(&tx.caller).map_or(0, |a| a.basic.nonce));
        tx.nonce = *nonce;
        *nonce += 1;
    }
    txs
}

#[test]
fn a_chain_of_blocks_executes_version_after_version() {
    let spec = |seed| SyntheticSpec { txs: 150, senders: 20, hot_ratio: 0.3, pools: 2, seed };
    let first = synthetic_block(Workload::Mixed, &spec(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = fresh_db(dir.path(), &first.state);
    let mut state = first.state.clone();
    for seed in 1..=4 {
        let block = synthetic_block(Workload::Mixed, &spec(seed));
        let txs = renumber(&state, block.txs);
        state = execute_on_metisdb(&db, &state, &block.input, &txs);
    }
    assert_eq!(db.latest_version(), Some(4));
}
