//! Block-STM workers: each pulls tasks from the scheduler and executes or
//! validates transactions against the multi-version memory.

use super::outcome::{ExecStats, TxOutcome};
use crate::chains::DebitChains;
use crate::evm::{CodeCache, EvmEnv, ExecFailure, TxExecutor};
use crate::hints::DependencyHints;
use crate::scheduler::{Claims, Scheduler, Task, MAX_CLAIM_BATCH};
use metisdb::pending::{ChangeMark, MvMemory, ReadRecord, TxIndex, Version};
use revm::context::TxEnv;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Why a parallel run produced no result.
#[derive(Debug)]
pub enum ParallelFailure {
    /// A worker panicked (or left a transaction without outcome): the block
    /// is abandoned.
    Panic { tx: TxIndex, message: String },
    /// A chain transaction was not a plain transfer, or a chain's nonce and
    /// balance checks fail on the real history ([`crate::chains`]): the
    /// block must run on the sequential path.
    ChainBroken,
}

struct TxSlot {
    outcome: Option<TxOutcome>,
    reads: Vec<ReadRecord>,
    /// The memory's changes before the execution that made `reads` began.
    since: ChangeMark,
}

struct ParallelRun<'a, 'p> {
    env: &'a EvmEnv,
    mv: &'a MvMemory<'p>,
    codes: &'a CodeCache,
    txs: &'a [TxEnv],
    scheduler: Scheduler,
    hints: DependencyHints,
    chains: &'a DebitChains,
    slots: Vec<Mutex<TxSlot>>,
    failure: Mutex<Option<ParallelFailure>>,
    executions: AtomicUsize,
    validation_aborts: AtomicUsize,
    dependency_waits: AtomicUsize,
}

macro_rules! lock {
    ($m:expr) => {
        // Slots are plain data written in one assignment: usable after a panic.
        $m.lock().unwrap_or_else(|e| e.into_inner())
    };
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

impl ParallelRun<'_, '_> {
    fn worker(&self, id: usize, workers: usize) {
        self.run_tasks();
        // The read sets are no longer needed: each worker frees its share, so
        // the collection of outcomes after the threads end is only moves.
        for slot in self.slots.iter().skip(id).step_by(workers) {
            drop(std::mem::take(&mut lock!(slot).reads));
        }
    }

    fn run_tasks(&self) {
        let mut executor = TxExecutor::new(self.env, self.mv, self.codes, true);
        let mut claims = Claims::default();
        let mut executions = 0;
        let mut task: Option<Task> = None;
        let mut idle: u32 = 0;
        loop {
            task = match task.take() {
                Some(Task::Execute(version)) => self.execute(&mut executor, version, &mut claims, &mut executions),
                Some(Task::Validate(version)) => self.validate(version, &mut claims),
                None if self.scheduler.done() => break,
                None => {
                    let next = self.scheduler.next_task(&mut claims);
                    if next.is_some() {
                        idle = 0;
                    } else {
                        // Nothing to claim: another worker holds the remaining
                        // work. Spin briefly, then give the core away (on a
                        // machine with fewer free cores than workers, spinning
                        // would slow the worker that is busy).
                        idle += 1;
                        if idle < 64 {
                            std::hint::spin_loop();
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    next
                }
            };
        }
        self.executions.fetch_add(executions, Ordering::Relaxed);
    }

    /// Runs `version`; counts each incarnation run in `executions`.
    fn execute(
        &self,
        executor: &mut TxExecutor<'_, '_>,
        version: Version,
        claims: &mut Claims,
        executions: &mut usize,
    ) -> Option<Task> {
        let tx = version.tx;
        if let Some(blocking) = self.hints.dependency(tx, &self.scheduler) {
            if self.scheduler.add_dependency(tx, blocking) {
                self.dependency_waits.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        self.mv.prefetch_keys(&super::first_reads(&self.txs[tx]));
        loop {
            *executions += 1;
            let since = self.mv.change_mark();
            let run = catch_unwind(AssertUnwindSafe(|| {
                if self.chains.contains(tx) {
                    executor.execute_chain(tx, &self.txs[tx])
                } else {
                    executor.execute(tx, &self.txs[tx])
                }
            }));
            let (outcome, writes, reads) = match run {
                Err(payload) => return self.fail(ParallelFailure::Panic { tx, message: panic_message(payload) }),
                Ok(Err(ExecFailure::NotPlainTransfer)) => return self.fail(ParallelFailure::ChainBroken),
                Ok(Err(ExecFailure::Blocked(blocking))) => {
                    if self.scheduler.add_dependency(tx, blocking) {
                        self.dependency_waits.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    continue; // The blocking transaction just finished.
                }
                Ok(Err(ExecFailure::Failed { reason, reads })) => (TxOutcome::Failed(reason), Vec::new(), reads),
                Ok(Ok(execution)) => {
                    let outcome = match execution.result {
                        Ok(result) => TxOutcome::Executed(result, execution.bloom),
                        Err(invalid) => TxOutcome::Invalid(invalid),
                    };
                    (outcome, execution.writes, execution.reads)
                }
            };
            let wrote_new_location = self.mv.record(version, writes);
            *lock!(self.slots[tx]) = TxSlot { outcome: Some(outcome), reads, since };
            return self.scheduler.finish_execution(version, wrote_new_location, claims);
        }
    }

    /// Stops the run; the first failure is the one reported.
    fn fail(&self, failure: ParallelFailure) -> Option<Task> {
        lock!(self.failure).get_or_insert(failure);
        self.scheduler.halt();
        None
    }

    fn validate(&self, version: Version, claims: &mut Claims) -> Option<Task> {
        let failed_key = {
            let slot = lock!(self.slots[version.tx]);
            self.mv.validate_reads_since(version.tx, &slot.reads, slot.since).map(|read| read.key)
        };
        let aborted = failed_key.is_some() && self.scheduler.try_validation_abort(version);
        if aborted {
            self.validation_aborts.fetch_add(1, Ordering::Relaxed);
            self.mv.convert_writes_to_estimates(version.tx);
            if let Some(key) = failed_key {
                self.hints.note_conflict(&key);
            }
        }
        self.scheduler.finish_validation(version.tx, aborted, claims)
    }
}

/// Indices a worker claims at once: runs of a few transactions on large
/// blocks, one at a time on small ones (where a run left at the end would
/// leave the other workers idle).
fn claim_batch(txs: usize, workers: usize) -> usize {
    (txs / (workers.max(1) * 16)).clamp(1, MAX_CLAIM_BATCH)
}

/// The chains of a block and its dependency hints, which depend on each
/// other; the memory must be given the chains' senders as debit accounts
/// before the run.
pub fn prepare(txs: &[TxEnv], mv: &MvMemory<'_>) -> (DependencyHints, DebitChains) {
    let mut hints = DependencyHints::new(txs);
    let chains = DebitChains::detect(txs, mv, &hints);
    hints.release_chains(&chains);
    (hints, chains)
}

/// Runs Block-STM over `txs` with `workers` threads, the transactions of
/// `chains` as debits of their senders ([`prepare`]). The memory holds the
/// final writes of every transaction afterwards.
pub fn run_parallel(
    env: &EvmEnv,
    mv: &MvMemory<'_>,
    codes: &CodeCache,
    txs: &[TxEnv],
    hints: DependencyHints,
    chains: &DebitChains,
    workers: usize,
) -> Result<(Vec<TxOutcome>, ExecStats), ParallelFailure> {
    let workers = workers.clamp(1, txs.len().max(1));
    let mut run = ParallelRun {
        env,
        mv,
        codes,
        txs,
        scheduler: Scheduler::with_batch(txs.len(), claim_batch(txs.len(), workers)),
        hints,
        chains,
        slots: (0..txs.len())
            .map(|_| Mutex::new(TxSlot { outcome: None, reads: Vec::new(), since: ChangeMark::default() }))
            .collect(),
        failure: Mutex::new(None),
        executions: AtomicUsize::new(0),
        validation_aborts: AtomicUsize::new(0),
        dependency_waits: AtomicUsize::new(0),
    };
    metisdb::pool::on_workers(workers, |id| run.worker(id, workers));
    if let Some(failure) = lock!(run.failure).take() {
        return Err(failure);
    }
    // A state error here fails the sequential run too, with its own report.
    if !chains.hold(txs, mv).unwrap_or(false) {
        return Err(ParallelFailure::ChainBroken);
    }
    let stats = ExecStats {
        executions: run.executions.into_inner(),
        validation_aborts: run.validation_aborts.into_inner(),
        dependency_waits: run.dependency_waits.into_inner(),
        workers,
        ..ExecStats::default()
    };
    // The scheduler only reports done once every transaction executed and
    // validated; a missing outcome means an invariant broke.
    let missing = |slot: &mut Mutex<TxSlot>| slot.get_mut().unwrap_or_else(|e| e.into_inner()).outcome.is_none();
    if let Some(tx) = run.slots.iter_mut().position(missing) {
        return Err(ParallelFailure::Panic { tx, message: "transaction left without outcome".into() });
    }
    // A map over the slots' own vector collects in place (an outcome is no
    // larger than its slot): no second block-sized allocation to fault in.
    let outcomes: Vec<TxOutcome> =
        run.slots.into_iter().filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()).outcome).collect();
    Ok((outcomes, stats))
}
