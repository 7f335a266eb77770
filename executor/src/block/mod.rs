//! Executing a block: pre-block system calls, transactions (Block-STM or the
//! sequential reference), receipts, post-block withdrawals, final writes.

mod outcome;
mod parallel;
mod prehashed;
mod sequential;

pub use outcome::ExecStats;

use crate::error::ExecutorError;
use crate::evm::{execute_system_call, CodeCache, EvmEnv};
use crate::receipts::{receipts_root_with_threads, Receipt, PARALLEL_RECEIPTS};
use alloy_primitives::map::HashMap;
use alloy_primitives::{address, Address, Bloom, Bytes, B256, U256};
use metisdb::pending::{MvMemory, StateKey, StateValue, StateView, TxIndex, Version, WriteOp};
use outcome::TxOutcome;
use parallel::ParallelFailure;
use revm::context::TxEnv;
use revm::primitives::hardfork::SpecId;
use std::time::Instant;

/// EIP-4788 beacon roots contract.
pub const BEACON_ROOTS_ADDRESS: Address = address!("000F3df6D732807Ef1319fB7B8bB8522d0Beac02");
/// EIP-2935 block hash history contract.
pub const HISTORY_STORAGE_ADDRESS: Address = address!("0000F90827F1C53a10cb7A02335B175320002935");
/// EIP-4844 gas per blob.
const GAS_PER_BLOB: u64 = 131_072;

/// An EIP-4895 withdrawal: a balance increment applied after the transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub address: Address,
    pub amount_gwei: u64,
}

/// A block to execute, apart from its transactions.
#[derive(Clone, Debug)]
pub struct BlockInput {
    /// Fork rules, chain id and block header fields.
    pub env: EvmEnv,
    /// EIP-4788 (Cancun): stored by a system call before the transactions.
    pub parent_beacon_block_root: Option<B256>,
    /// EIP-2935 (Prague): stored by a system call before the transactions.
    pub parent_hash: Option<B256>,
    pub withdrawals: Vec<Withdrawal>,
}

impl BlockInput {
    pub fn number(&self) -> u64 {
        self.env.block.number.saturating_to()
    }
}

/// How to run the transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionMode {
    /// One after the other: the reference.
    Sequential,
    /// Block-STM with this many worker threads (the caller's thread
    /// included), whatever the block.
    Parallel { workers: usize },
    /// Block-STM with up to this many workers, or sequential for blocks too
    /// small or too serial to win (see [`choose_workers`]). What a node uses.
    Auto { workers: usize },
}

impl ExecutionMode {
    /// [`ExecutionMode::Auto`] on every available core.
    pub fn parallel() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        ExecutionMode::Auto { workers }
    }
}

/// Below this much gas (sum of the transactions' limits) a block runs
/// sequentially in [`ExecutionMode::Auto`]: starting workers and keeping
/// read sets costs more than a second core gives back.
pub const MIN_PARALLEL_GAS: u64 = 4_000_000;
/// Below this many transactions a block runs sequentially in
/// [`ExecutionMode::Auto`].
pub const MIN_PARALLEL_TXS: usize = 16;

/// Transactions from which a block covered by same-sender payout chains
/// runs in parallel in [`ExecutionMode::Auto`]. At 2 workers, transfers
/// from 4 or 64 senders: 47,619 of them 1.39-1.44x, 4,761 1.12x, 9,523
/// 1.09x; the 1,414-transaction mainnet block 13287210 0.89-1.23x
/// (depending on how far apart the host placed the two vCPUs), so it stays
/// sequential, as do the 380- and 579-transaction payout blocks (0.82-0.98x).
pub const MIN_PARALLEL_PAYOUT_TXS: usize = 4 * PARALLEL_RECEIPTS;

/// The workers [`ExecutionMode::Auto`] uses for `txs` (1: sequential).
/// Sequential when the block is small ([`MIN_PARALLEL_TXS`],
/// [`MIN_PARALLEL_GAS`]) or when same-sender chains cover most of it (each
/// transaction of a chain must wait for the previous one, so the block is
/// serial by construction). Payout chains of plain transfers
/// (`crate::chains`) run in parallel, but their transfers are too small
/// for a second worker to win much: a block they cover runs in parallel
/// only from [`MIN_PARALLEL_PAYOUT_TXS`] transactions, at least half of
/// them plain transfers by their form, where building the receipts and
/// final writes on every thread pays.
pub fn choose_workers(txs: &[TxEnv], workers: usize) -> usize {
    if workers <= 1 || txs.len() < MIN_PARALLEL_TXS {
        return 1;
    }
    let gas: u64 = txs.iter().map(|tx| tx.gas_limit).fold(0, u64::saturating_add);
    if gas < MIN_PARALLEL_GAS {
        return 1;
    }
    let senders: alloy_primitives::map::HashSet<Address> = txs.iter().map(|tx| tx.caller).collect();
    if senders.len() * 2 <= txs.len() {
        let plain = txs.iter().filter(|tx| crate::chains::plain_transfer_to(tx).is_some()).count();
        let payout = txs.len() >= MIN_PARALLEL_PAYOUT_TXS && plain * 2 >= txs.len();
        return if payout { workers } else { 1 };
    }
    workers
}

/// The result of a block.
#[derive(Clone, Debug)]
pub struct BlockOutput {
    pub receipts: Vec<Receipt>,
    pub gas_used: u64,
    pub logs_bloom: Bloom,
    /// `None` before Byzantium: receipts then carry an intermediate state
    /// root, which this executor does not compute.
    pub receipts_root: Option<B256>,
    /// The last write of every key, in key order, ready to fold into the next
    /// state version.
    pub final_writes: Vec<(StateKey, StateValue)>,
    pub stats: ExecStats,
}

/// A block assembled by the dev node: transactions that revm rejected are
/// left out and reported; they wrote nothing, so the others executed as if
/// they were absent.
#[derive(Clone, Debug)]
pub struct BuiltBlock {
    pub output: BlockOutput,
    /// Indices (into the given list) of the transactions in the block, in
    /// receipt order.
    pub included: Vec<TxIndex>,
    pub rejected: Vec<(TxIndex, String)>,
}

/// Executes a block whose transactions must all be valid.
pub fn execute_block(
    parent: &dyn StateView,
    input: &BlockInput,
    txs: &[TxEnv],
    mode: ExecutionMode,
) -> Result<BlockOutput, ExecutorError> {
    run_block(parent, input, txs, mode, InvalidPolicy::FailBlock).map(|built| built.output)
}

/// Executes candidate transactions for a new block, leaving out the invalid
/// ones. The sum of their gas limits must fit the block gas limit.
pub fn build_block(
    parent: &dyn StateView,
    input: &BlockInput,
    txs: &[TxEnv],
    mode: ExecutionMode,
) -> Result<BuiltBlock, ExecutorError> {
    let total_gas: u128 = txs.iter().map(|tx| tx.gas_limit as u128).sum();
    if total_gas > input.env.block.gas_limit as u128 {
        return Err(ExecutorError::InvalidBlock {
            block: input.number(),
            reason: format!(
                "candidate gas limits sum to {total_gas}, above the block gas limit {}",
                input.env.block.gas_limit
            ),
        });
    }
    run_block(parent, input, txs, mode, InvalidPolicy::Skip)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InvalidPolicy {
    FailBlock,
    Skip,
}

fn run_block(
    parent: &dyn StateView,
    input: &BlockInput,
    txs: &[TxEnv],
    mode: ExecutionMode,
    policy: InvalidPolicy,
) -> Result<BuiltBlock, ExecutorError> {
    let block = input.number();
    let env = &input.env;
    // One slot per transaction plus one for the post-block withdrawals.
    let mode = match mode {
        ExecutionMode::Auto { workers } => match choose_workers(txs, workers) {
            1 => ExecutionMode::Sequential,
            workers => ExecutionMode::Parallel { workers },
        },
        other => other,
    };
    let prehashed;
    let reads: &dyn StateView = if parent.hashes_keys() && txs.len() >= MIN_PREHASHED_TXS {
        prehashed = prehashed::PrehashedParent::new(parent, block_addresses(input, txs));
        &prehashed
    } else {
        parent
    };
    let mut mv = MvMemory::new(reads, txs.len() + 1, env.state_clear());
    mv.set_lazy_account(env.block.beneficiary);
    let codes = CodeCache::default();
    let pre_block = pre_block_writes(input, &mv, &codes)?;
    mv.set_pre_block_writes(pre_block);

    let started = Instant::now();
    let (outcomes, mut stats) = match mode {
        ExecutionMode::Sequential | ExecutionMode::Auto { .. } => {
            sequential::run_sequential(env, &mv, &codes, txs, policy == InvalidPolicy::FailBlock)
        }
        ExecutionMode::Parallel { workers } => {
            let (hints, chains) = parallel::prepare(txs, &mv);
            mv.set_debit_accounts(chains.senders.clone());
            mv.track_changes();
            match parallel::run_parallel(env, &mv, &codes, txs, hints, &chains, workers) {
                Ok(run) => run,
                Err(ParallelFailure::Panic { tx, message }) => {
                    return Err(ExecutorError::TransactionFailed {
                        block,
                        index: tx,
                        reason: format!("worker panicked: {message}"),
                    })
                }
                Err(ParallelFailure::ChainBroken) => {
                    drop(mv);
                    return run_block(parent, input, txs, ExecutionMode::Sequential, policy);
                }
            }
        }
    };
    if !matches!(mode, ExecutionMode::Parallel { .. }) {
        stats.workers = 1;
    }
    let transactions_done = Instant::now();
    stats.transactions_time = transactions_done - started;
    let withdrawals = withdrawal_writes(&input.withdrawals);
    mv.record(Version { tx: txs.len(), incarnation: 0 }, withdrawals);
    // The sequential reference stays on one thread throughout, and so does
    // the finish of a block too small for a second thread to pay for its
    // start and for the cache lines it would pull from the other core.
    let threads = match mode {
        ExecutionMode::Parallel { workers } if txs.len() >= PARALLEL_RECEIPTS => workers,
        _ => 1,
    };
    let byzantium = env.spec().is_enabled_in(SpecId::BYZANTIUM);
    let finish_receipts = move || -> Result<(Assembled, Option<B256>), ExecutorError> {
        let assembled = assemble_receipts(input, txs, outcomes, policy)?;
        check_blob_gas(input, txs, &assembled.1)?;
        let root = byzantium.then(|| receipts_root_with_threads(&assembled.0, threads));
        Ok((assembled, root))
    };
    // Receipts (mostly keccak) and final writes (mostly cache misses) are
    // independent: side by side, each spread over every thread, so that
    // whichever is longer gets the cores the other leaves. With the
    // receipts hashed in batches the final writes are the longer side
    // (swap block, one thread: 40 ms against 15-20 ms); on half the
    // threads they held the finish at their own length.
    let (receipts_part, final_writes) = if threads >= 2 {
        std::thread::scope(|scope| {
            let receipts_part = scope.spawn(finish_receipts);
            let final_writes = mv.into_final_writes(threads);
            let receipts_part = receipts_part.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload));
            (receipts_part, final_writes)
        })
    } else {
        (finish_receipts(), mv.into_final_writes(1))
    };
    let ((receipts, included, rejected), receipts_root) = receipts_part?;
    let final_writes = final_writes.map_err(|source| ExecutorError::State { block, source })?;

    let gas_used = receipts.last().map_or(0, |r| r.cumulative_gas_used);
    let mut bloom = Bloom::ZERO;
    for receipt_bloom in receipts.iter().filter_map(|receipt| receipt.logs_bloom.as_deref()) {
        bloom.accrue_bloom(receipt_bloom);
    }
    stats.finish_time = transactions_done.elapsed();
    Ok(BuiltBlock {
        output: BlockOutput { receipts, gas_used, logs_bloom: bloom, receipts_root, final_writes, stats },
        included,
        rejected,
    })
}

/// The locations a transaction reads first: its sender's account and the
/// account it calls (or the sender's again for a creation), for
/// [`MvMemory::prefetch_keys`] before it runs.
fn first_reads(tx: &TxEnv) -> [StateKey; 2] {
    let to = match tx.kind {
        revm::primitives::TxKind::Call(to) => to,
        revm::primitives::TxKind::Create => tx.caller,
    };
    [StateKey::Account(tx.caller), StateKey::Account(to)]
}

/// From this many transactions, a parent state that hashes its keys is read
/// through [`prehashed::PrehashedParent`] (below, batches of a few hashes
/// gain nothing).
const MIN_PREHASHED_TXS: usize = 16;

/// The addresses a block reads more than once that it names before it runs:
/// contracts it calls (a call with data), access lists, the beneficiary and
/// the system contracts. Senders and plain-transfer recipients are read
/// about once each; hashing them ahead saved no more than building the
/// map cost (47,619 transfers: 20 ms either way).
fn block_addresses<'a>(input: &'a BlockInput, txs: &'a [TxEnv]) -> impl Iterator<Item = Address> + 'a {
    let named = txs.iter().flat_map(|tx| {
        let called = match tx.kind {
            revm::primitives::TxKind::Call(to) if !tx.data.is_empty() => Some(to),
            _ => None,
        };
        called.into_iter().chain(tx.access_list.0.iter().map(|item| item.address))
    });
    named.chain([input.env.block.beneficiary, BEACON_ROOTS_ADDRESS, HISTORY_STORAGE_ADDRESS])
}

/// Runs the system calls the fork requires before the first transaction.
/// A system contract without code is skipped (EIP-4788, EIP-2935).
fn pre_block_writes(
    input: &BlockInput,
    mv: &MvMemory<'_>,
    codes: &CodeCache,
) -> Result<Vec<(StateKey, StateValue)>, ExecutorError> {
    let block = input.number();
    let spec = input.env.spec();
    let mut calls: Vec<(Address, Bytes)> = Vec::new();
    if let (true, Some(root)) = (spec.is_enabled_in(SpecId::CANCUN), input.parent_beacon_block_root) {
        calls.push((BEACON_ROOTS_ADDRESS, Bytes::copy_from_slice(root.as_slice())));
    }
    if let (true, Some(hash)) = (spec.is_enabled_in(SpecId::PRAGUE), input.parent_hash) {
        calls.push((HISTORY_STORAGE_ADDRESS, Bytes::copy_from_slice(hash.as_slice())));
    }
    let mut writes = Vec::new();
    for (contract, data) in calls {
        let state_error = |source| ExecutorError::State { block, source };
        let has_code = mv
            .parent()
            .account(&contract)
            .map_err(state_error)?
            .is_some_and(|a| a.code_hash != metisdb::pending::EMPTY_CODE_HASH);
        if !has_code {
            continue;
        }
        // Both system calls write disjoint contracts, so running them on the
        // parent state one after the other equals running them in sequence.
        let call_writes = execute_system_call(&input.env, mv, codes, contract, data)
            .map_err(|reason| ExecutorError::SystemCall { block, contract, reason })?;
        writes.extend(call_writes.into_iter().filter_map(|(key, op)| match op {
            WriteOp::Set(value) => Some((key, value)),
            WriteOp::AddBalance(_) | WriteOp::Debit(_) => None,
        }));
    }
    Ok(writes)
}

fn withdrawal_writes(withdrawals: &[Withdrawal]) -> Vec<(StateKey, WriteOp)> {
    let mut sums: HashMap<Address, U256> = HashMap::default();
    for w in withdrawals.iter().filter(|w| w.amount_gwei > 0) {
        *sums.entry(w.address).or_default() += U256::from(w.amount_gwei) * U256::from(1_000_000_000u64);
    }
    sums.into_iter().map(|(address, amount)| (StateKey::Account(address), WriteOp::AddBalance(amount))).collect()
}

type Assembled = (Vec<Receipt>, Vec<TxIndex>, Vec<(TxIndex, String)>);

fn assemble_receipts(
    input: &BlockInput,
    txs: &[TxEnv],
    outcomes: Vec<TxOutcome>,
    policy: InvalidPolicy,
) -> Result<Assembled, ExecutorError> {
    let block = input.number();
    let gas_limit = input.env.block.gas_limit;
    let mut receipts = Vec::with_capacity(outcomes.len());
    let mut included = Vec::with_capacity(outcomes.len());
    let mut rejected = Vec::new();
    let mut cumulative = 0u64;
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let (result, bloom) = match outcome {
            TxOutcome::Executed(result, bloom) => (result, bloom),
            TxOutcome::Invalid(invalid) if policy == InvalidPolicy::Skip => {
                rejected.push((index, invalid.to_string()));
                continue;
            }
            TxOutcome::Invalid(invalid) => {
                return Err(ExecutorError::InvalidTransaction { block, index, reason: invalid.to_string() })
            }
            TxOutcome::Failed(reason) => return Err(ExecutorError::TransactionFailed { block, index, reason }),
        };
        let tx = &txs[index];
        // The gas pool check of go-ethereum: each transaction's limit must fit
        // what the block has left.
        if tx.gas_limit > gas_limit - cumulative {
            return Err(ExecutorError::InvalidTransaction {
                block,
                index,
                reason: format!(
                    "gas limit {} exceeds the {} gas left in the block",
                    tx.gas_limit,
                    gas_limit - cumulative
                ),
            });
        }
        let gas_used = result.tx_gas_used();
        let success = result.is_success();
        cumulative += gas_used;
        let logs = result.into_logs();
        receipts.push(Receipt {
            tx_type: tx.tx_type,
            success,
            gas_used,
            cumulative_gas_used: cumulative,
            logs_bloom: bloom,
            logs,
        });
        included.push(index);
    }
    Ok((receipts, included, rejected))
}

/// EIP-4844: the blobs of the block's transactions fit the block's blob gas.
fn check_blob_gas(input: &BlockInput, txs: &[TxEnv], included: &[TxIndex]) -> Result<(), ExecutorError> {
    let spec = input.env.spec();
    if !spec.is_enabled_in(SpecId::CANCUN) {
        return Ok(());
    }
    let max_blobs: u64 = if spec.is_enabled_in(SpecId::PRAGUE) { 9 } else { 6 };
    let blobs: u64 = included.iter().map(|&i| txs[i].blob_hashes.len() as u64).sum();
    if blobs > max_blobs {
        return Err(ExecutorError::InvalidBlock {
            block: input.number(),
            reason: format!("{} blob gas used, above the maximum {}", blobs * GAS_PER_BLOB, max_blobs * GAS_PER_BLOB),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::TxKind;

    fn tx(sender: u64, to: u64, data: &[u8]) -> TxEnv {
        TxEnv {
            caller: Address::with_last_byte(1).create(sender),
            kind: TxKind::Call(Address::with_last_byte(2).create(to)),
            data: Bytes::copy_from_slice(data),
            gas_limit: 21_000,
            ..TxEnv::default()
        }
    }

    #[test]
    fn auto_runs_large_payouts_in_parallel_and_other_chains_sequentially() {
        let payout = |n: usize, senders: u64, data: &[u8]| -> Vec<TxEnv> {
            (0..n).map(|i| tx(i as u64 % senders, 1_000 + i as u64, data)).collect()
        };
        let large = MIN_PARALLEL_PAYOUT_TXS;
        // Independent transfers.
        assert_eq!(choose_workers(&payout(PARALLEL_RECEIPTS, PARALLEL_RECEIPTS as u64, &[]), 2), 2);
        // A large payout.
        assert_eq!(choose_workers(&payout(large, 4, &[]), 2), 2);
        // A smaller payout, and a large chain of contract calls: serial.
        assert_eq!(choose_workers(&payout(large - 1, 4, &[]), 2), 1);
        assert_eq!(choose_workers(&payout(large, 4, &[0xa9]), 2), 1);
        // One worker is always sequential.
        assert_eq!(choose_workers(&payout(large, 4, &[]), 1), 1);
    }
}
