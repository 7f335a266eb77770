//! Property: Block-STM with any number of workers produces exactly what the
//! sequential reference produces (receipts, gas, logs, post-state), on random
//! blocks with injected conflicts: same-sender chains, hot keys, coinbase
//! reads and transfers to the coinbase.

use metis_executor::synthetic::{synthetic_block, SyntheticSpec, Workload};
use metis_executor::{execute_block, ExecutionMode};
use proptest::prelude::*;

fn check(workload: Workload, spec: SyntheticSpec, repeats: usize) -> Result<(), TestCaseError> {
    let block = synthetic_block(workload, &spec);
    let reference = execute_block(&block.state, &block.input, &block.txs, ExecutionMode::Sequential)
        .map_err(|e| TestCaseError::fail(format!("sequential failed: {e}")))?;
    prop_assert_eq!(reference.receipts.len(), block.txs.len());
    // Transactions actually ran: the reverts of a broken contract would show.
    prop_assert!(reference.receipts.iter().all(|r| r.success), "a synthetic transaction failed");
    for workers in 1..=8 {
        for _ in 0..repeats {
            let parallel = execute_block(&block.state, &block.input, &block.txs, ExecutionMode::Parallel { workers })
                .map_err(|e| TestCaseError::fail(format!("parallel ({workers} workers) failed: {e}")))?;
            prop_assert_eq!(&parallel.receipts, &reference.receipts, "receipts, {} workers", workers);
            prop_assert_eq!(parallel.gas_used, reference.gas_used);
            prop_assert_eq!(parallel.receipts_root, reference.receipts_root);
            prop_assert_eq!(&parallel.final_writes, &reference.final_writes, "post-state, {} workers", workers);
        }
    }
    Ok(())
}

fn workload() -> impl Strategy<Value = Workload> {
    prop_oneof![Just(Workload::RawTransfers), Just(Workload::Erc20), Just(Workload::Swaps), Just(Workload::Mixed),]
}

/// Proptest case count: `METIS_PROPTEST_CASES` or 24 (a longer hunt for
/// scheduling races: `METIS_PROPTEST_CASES=500`).
fn cases() -> u32 {
    std::env::var("METIS_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn parallel_equals_sequential(
        workload in workload(),
        txs in 1usize..120,
        senders in 1usize..40,
        hot_ratio in 0.0f64..1.0,
        pools in 1usize..4,
        seed in any::<u64>(),
    ) {
        check(workload, SyntheticSpec { txs, senders, hot_ratio, pools, seed }, 2)?;
    }
}

/// Heavily contended blocks run many times: scheduling races show up as
/// occasional mismatches.
#[test]
fn contended_blocks_repeatedly() {
    for seed in 0..4 {
        let spec = SyntheticSpec { txs: 200, senders: 5, hot_ratio: 0.7, pools: 2, seed };
        check(Workload::Mixed, spec, 5).unwrap();
    }
}

/// A block large enough that its receipts and final writes are finished on
/// two threads side by side (smaller blocks finish on one).
#[test]
fn large_blocks_finish_side_by_side() {
    let spec = SyntheticSpec { txs: 1536, senders: 1200, hot_ratio: 0.2, pools: 3, seed: 7 };
    check(Workload::Mixed, spec, 1).unwrap();
}
