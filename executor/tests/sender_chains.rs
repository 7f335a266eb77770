//! Same-sender chains of plain transfers run in parallel as debits of their
//! sender, checked once the block is done; when a check fails the block runs
//! on the sequential path. Either way the result is the sequential one.

use metis_executor::revm::context_interface::Transaction;
use metis_executor::revm::primitives::{Address, U256};
use metis_executor::synthetic::{synthetic_block, SyntheticBlock, SyntheticSpec, Workload};
use metis_executor::{build_block, execute_block, ExecutionMode, StateView};

const PARALLEL: ExecutionMode = ExecutionMode::Parallel { workers: 2 };

/// One sender paying out `txs` plain transfers.
fn payouts(txs: usize) -> SyntheticBlock {
    synthetic_block(Workload::RawTransfers, &SyntheticSpec { txs, senders: 1, hot_ratio: 0.0, pools: 1, seed: 3 })
}

fn sender(block: &SyntheticBlock) -> Address {
    block.txs[0].caller
}

#[test]
fn a_payout_chain_runs_in_parallel_and_matches_the_sequential_run() {
    let block = payouts(64);
    let seq = execute_block(&block.state, &block.input, &block.txs, ExecutionMode::Sequential).unwrap();
    let par = execute_block(&block.state, &block.input, &block.txs, PARALLEL).unwrap();
    assert_eq!(par.stats.workers, 2, "the chain fell back to the sequential path");
    assert_eq!(par.receipts, seq.receipts);
    assert_eq!(par.receipts_root, seq.receipts_root);
    assert_eq!(par.final_writes, seq.final_writes);
}

#[test]
fn a_chain_that_runs_out_of_balance_fails_or_skips_as_the_sequential_run_does() {
    let mut block = payouts(24);
    let account = block.state.account(&sender(&block)).unwrap().unwrap();
    // Enough for the first `affordable` transfers' maximum spending only.
    for affordable in [0, 1, 5, 23] {
        let balance: U256 = block.txs[..affordable].iter().map(|tx| tx.max_balance_spending().unwrap()).sum();
        block.state.insert_account(sender(&block), account.nonce, balance, Default::default(), []);
        let seq = execute_block(&block.state, &block.input, &block.txs, ExecutionMode::Sequential);
        let par = execute_block(&block.state, &block.input, &block.txs, PARALLEL);
        assert_eq!(format!("{par:?}"), format!("{seq:?}"), "execute, {affordable} affordable");
        assert!(seq.is_err(), "{affordable} affordable: the block must fail");

        let seq = build_block(&block.state, &block.input, &block.txs, ExecutionMode::Sequential).unwrap();
        let par = build_block(&block.state, &block.input, &block.txs, PARALLEL).unwrap();
        assert_eq!(par.included, seq.included, "{affordable} affordable");
        assert_eq!(par.rejected, seq.rejected);
        assert_eq!(par.output.final_writes, seq.output.final_writes);
        assert_eq!(par.output.stats.workers, 1, "a broken chain runs on the sequential path");
    }
}

#[test]
fn a_nonce_gap_in_a_chain_fails_as_the_sequential_run_does() {
    let mut block = payouts(16);
    block.txs[9].nonce += 1;
    let seq = execute_block(&block.state, &block.input, &block.txs, ExecutionMode::Sequential);
    let par = execute_block(&block.state, &block.input, &block.txs, PARALLEL);
    assert!(seq.is_err());
    assert_eq!(format!("{par:?}"), format!("{seq:?}"));
}
