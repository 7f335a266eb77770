//! The collaborative scheduler of Block-STM (Gelashvili et al., 2022,
//! algorithms 4 and 5): workers pull execution and validation tasks from two
//! shared indices; aborted transactions are re-incarnated and the indices are
//! lowered so that everything above them is validated again.

use crossbeam::utils::CachePadded;
use metisdb::pending::{Incarnation, TxIndex, Version};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most transaction indices one claim takes from a shared index.
pub const MAX_CLAIM_BATCH: usize = 8;

/// Indices a worker took from the shared execution or validation index in
/// one step and has not turned into tasks yet. Claiming a run of
/// transactions at once moves the shared counters' cache lines between the
/// cores once per run instead of once per transaction.
///
/// It also holds the tasks the worker ended but has not subtracted from the
/// shared count of active tasks yet: that count only tells when the block
/// is done, so keeping it high a little longer only delays that, and the
/// worker subtracts them before it looks for new work.
#[derive(Debug, Default)]
pub struct Claims {
    validate: Range<TxIndex>,
    execute: Range<TxIndex>,
    ended: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Status {
    #[default]
    ReadyToExecute,
    Executing,
    Executed,
    /// Validation failed or the incarnation hit a dependency; waiting for the
    /// next incarnation.
    Aborting,
}

/// Work handed to a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Execute(Version),
    Validate(Version),
}

// Each counter on its own cache line: every worker updates them on every
// task, and sharing a line would make each update invalidate the others.
pub struct Scheduler {
    num_txs: usize,
    /// Indices per claim (1: the algorithm as published).
    batch: usize,
    execution_idx: CachePadded<AtomicUsize>,
    validation_idx: CachePadded<AtomicUsize>,
    /// Bumped whenever an index is lowered, so `check_done` can tell that no
    /// decrease raced with its observation.
    decrease_count: CachePadded<AtomicUsize>,
    num_active_tasks: CachePadded<AtomicUsize>,
    done: CachePadded<AtomicBool>,
    /// Per transaction, on its own cache line: two workers run neighbouring
    /// transactions at the same time, and sharing a line would make their
    /// status updates invalidate each other.
    txs: Box<[CachePadded<TxState>]>,
}

#[derive(Default)]
struct TxState {
    status: Mutex<(Incarnation, Status)>,
    /// Transactions waiting for this one to finish executing.
    dependents: Mutex<Vec<TxIndex>>,
}

// Locks here guard a few words and never run user code: a poisoned lock can
// only come from a panic between two assignments, so its data is usable.
macro_rules! lock {
    ($m:expr) => {
        $m.lock().unwrap_or_else(|e| e.into_inner())
    };
}

impl Scheduler {
    /// One index per claim.
    pub fn new(num_txs: usize) -> Self {
        Self::with_batch(num_txs, 1)
    }

    /// `batch` indices per claim (1..=[`MAX_CLAIM_BATCH`]).
    pub fn with_batch(num_txs: usize, batch: usize) -> Self {
        assert!((1..=MAX_CLAIM_BATCH).contains(&batch), "claim batch {batch} out of range");
        Self {
            num_txs,
            batch,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_count: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: CachePadded::new(AtomicUsize::new(0)),
            done: CachePadded::new(AtomicBool::new(num_txs == 0)),
            txs: (0..num_txs).map(|_| CachePadded::new(TxState::default())).collect(),
        }
    }

    pub fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Stops every worker at its next `next_task` (used when the block fails).
    pub fn halt(&self) {
        self.done.store(true, Ordering::Release);
    }

    fn decrease_execution_idx(&self, target: TxIndex) {
        self.execution_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_count.fetch_add(1, Ordering::SeqCst);
    }

    fn decrease_validation_idx(&self, target: TxIndex) {
        self.validation_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_count.fetch_add(1, Ordering::SeqCst);
    }

    fn check_done(&self) {
        let observed = self.decrease_count.load(Ordering::SeqCst);
        if self.execution_idx.load(Ordering::SeqCst).min(self.validation_idx.load(Ordering::SeqCst)) >= self.num_txs
            && self.num_active_tasks.load(Ordering::SeqCst) == 0
            && observed == self.decrease_count.load(Ordering::SeqCst)
        {
            self.done.store(true, Ordering::Release);
        }
    }

    /// Claims up to `batch` indices from `index`, each counted as an active
    /// task until it is turned into a task or skipped.
    fn claim(&self, index: &AtomicUsize) -> Range<TxIndex> {
        // Counted before the indices move: `check_done` must never see the
        // indices past the end while a claimed index is not yet counted.
        self.num_active_tasks.fetch_add(self.batch, Ordering::SeqCst);
        let start = index.fetch_add(self.batch, Ordering::SeqCst);
        let end = (start + self.batch).min(self.num_txs).max(start);
        let unused = self.batch - (end - start);
        if unused > 0 {
            self.num_active_tasks.fetch_sub(unused, Ordering::SeqCst);
        }
        start..end
    }

    fn try_incarnate(&self, tx: TxIndex, claims: &mut Claims) -> Option<Version> {
        if tx < self.num_txs {
            let mut status = lock!(self.txs[tx].status);
            if status.1 == Status::ReadyToExecute {
                status.1 = Status::Executing;
                return Some(Version { tx, incarnation: status.0 });
            }
        }
        claims.ended += 1;
        None
    }

    /// Subtracts the tasks `claims` ended from the active ones.
    fn flush_ended(&self, claims: &mut Claims) {
        if claims.ended > 0 {
            self.num_active_tasks.fetch_sub(std::mem::take(&mut claims.ended), Ordering::SeqCst);
        }
    }

    /// The validation of claimed `tx`, if it has executed. If not, its
    /// execution hands back its validation when it finishes (the validation
    /// index has passed it).
    fn try_validation(&self, tx: TxIndex, claims: &mut Claims) -> Option<Version> {
        let status = *lock!(self.txs[tx].status);
        if status.1 == Status::Executed {
            return Some(Version { tx, incarnation: status.0 });
        }
        claims.ended += 1;
        None
    }

    /// The first claimed index that makes a task; skipped ones are no longer
    /// counted as active.
    fn take_claimed(&self, claims: &mut Claims) -> Option<Task> {
        while let Some(tx) = claims.validate.next() {
            if let Some(version) = self.try_validation(tx, claims) {
                return Some(Task::Validate(version));
            }
        }
        while let Some(tx) = claims.execute.next() {
            if let Some(version) = self.try_incarnate(tx, claims) {
                return Some(Task::Execute(version));
            }
        }
        None
    }

    /// The next task, or `None` if there is nothing to do right now (the caller
    /// checks `done` and retries). `claims` is the calling worker's own: what
    /// it claimed before comes first.
    pub fn next_task(&self, claims: &mut Claims) -> Option<Task> {
        if self.done() {
            return None;
        }
        if let Some(task) = self.take_claimed(claims) {
            return Some(task);
        }
        // Before `check_done` can look at the count, and before this worker
        // may spin waiting for others.
        self.flush_ended(claims);
        let validation_idx = self.validation_idx.load(Ordering::SeqCst);
        let execution_idx = self.execution_idx.load(Ordering::SeqCst);
        if validation_idx.min(execution_idx) >= self.num_txs {
            self.check_done();
            return None;
        }
        if validation_idx < execution_idx {
            claims.validate = self.claim(&self.validation_idx);
        } else {
            claims.execute = self.claim(&self.execution_idx);
        }
        let task = self.take_claimed(claims);
        if task.is_none() {
            // A worker that finds nothing holds nothing back.
            self.flush_ended(claims);
        }
        task
    }

    /// `tx` (executing) must wait for `blocking` to finish executing. Returns
    /// false if `blocking` already finished: the caller re-executes at once.
    pub fn add_dependency(&self, tx: TxIndex, blocking: TxIndex) -> bool {
        debug_assert!(blocking < tx, "tx {tx} cannot wait on a later tx {blocking}");
        let mut dependents = lock!(self.txs[blocking].dependents);
        if lock!(self.txs[blocking].status).1 == Status::Executed {
            return false;
        }
        {
            let mut status = lock!(self.txs[tx].status);
            debug_assert_eq!(status.1, Status::Executing);
            status.1 = Status::Aborting;
        }
        dependents.push(tx);
        drop(dependents);
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        true
    }

    fn set_ready_status(&self, tx: TxIndex) {
        let mut status = lock!(self.txs[tx].status);
        debug_assert_eq!(status.1, Status::Aborting);
        *status = (status.0 + 1, Status::ReadyToExecute);
    }

    /// Records that `version` finished executing; `wrote_new_location` is what
    /// `MvMemory::record` returned. May hand back the validation of `version`.
    pub fn finish_execution(&self, version: Version, wrote_new_location: bool, claims: &mut Claims) -> Option<Task> {
        {
            let mut status = lock!(self.txs[version.tx].status);
            debug_assert_eq!(*status, (version.incarnation, Status::Executing));
            status.1 = Status::Executed;
        }
        let dependents = std::mem::take(&mut *lock!(self.txs[version.tx].dependents));
        if let Some(&min_dependent) = dependents.iter().min() {
            for &d in &dependents {
                self.set_ready_status(d);
            }
            self.decrease_execution_idx(min_dependent);
        }
        if self.validation_idx.load(Ordering::SeqCst) > version.tx {
            if wrote_new_location {
                self.decrease_validation_idx(version.tx);
            } else {
                return Some(Task::Validate(version));
            }
        }
        claims.ended += 1;
        None
    }

    /// Claims the abort of `version` after its validation failed. Only the
    /// first failing validation of an incarnation wins.
    pub fn try_validation_abort(&self, version: Version) -> bool {
        let mut status = lock!(self.txs[version.tx].status);
        if *status == (version.incarnation, Status::Executed) {
            status.1 = Status::Aborting;
            true
        } else {
            false
        }
    }

    /// Records the end of a validation. After an abort, may hand back the
    /// re-execution of the transaction.
    pub fn finish_validation(&self, tx: TxIndex, aborted: bool, claims: &mut Claims) -> Option<Task> {
        if aborted {
            self.set_ready_status(tx);
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(Ordering::SeqCst) > tx {
                return self.try_incarnate(tx, claims).map(Task::Execute);
            }
        }
        claims.ended += 1;
        None
    }

    /// Whether `tx` has finished its current incarnation.
    pub fn is_executed(&self, tx: TxIndex) -> bool {
        lock!(self.txs[tx].status).1 == Status::Executed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn v(tx: TxIndex, incarnation: Incarnation) -> Version {
        Version { tx, incarnation }
    }

    /// Polls until a task comes out (a poll may find nothing to claim).
    fn poll(s: &Scheduler, c: &mut Claims) -> Option<Task> {
        (0..10).find_map(|_| s.next_task(c))
    }

    #[test]
    fn executes_then_validates_in_order_and_finishes() {
        let s = Scheduler::new(2);
        let c = &mut Claims::default();
        assert_eq!(s.next_task(c), Some(Task::Execute(v(0, 0))));
        assert_eq!(s.finish_execution(v(0, 0), false, c), None);
        assert_eq!(s.next_task(c), Some(Task::Validate(v(0, 0))));
        assert_eq!(s.finish_validation(0, false, c), None);
        assert_eq!(s.next_task(c), Some(Task::Execute(v(1, 0))));
        assert_eq!(s.finish_execution(v(1, 0), false, c), None);
        assert_eq!(s.next_task(c), Some(Task::Validate(v(1, 0))));
        assert_eq!(s.finish_validation(1, false, c), None);
        assert_eq!(s.next_task(c), None);
        assert!(s.done());
    }

    /// Runs every remaining task (including those handed back) to the end.
    fn drain(s: &Scheduler, c: &mut Claims) -> Vec<Task> {
        let mut seen = Vec::new();
        let mut task = poll(s, c);
        while let Some(t) = task {
            seen.push(t);
            task = match t {
                Task::Execute(version) => s.finish_execution(version, false, c),
                Task::Validate(version) => s.finish_validation(version.tx, false, c),
            }
            .or_else(|| poll(s, c));
        }
        seen
    }

    #[test]
    fn failed_validation_bumps_the_incarnation_and_revalidates_above() {
        let s = Scheduler::new(2);
        let c = &mut Claims::default();
        assert_eq!(poll(&s, c), Some(Task::Execute(v(0, 0))));
        assert_eq!(poll(&s, c), Some(Task::Execute(v(1, 0))));
        // The validation index already passed tx 0: its validation is handed back.
        assert_eq!(s.finish_execution(v(0, 0), false, c), Some(Task::Validate(v(0, 0))));
        assert!(s.try_validation_abort(v(0, 0)));
        // Only the first abort of an incarnation wins.
        assert!(!s.try_validation_abort(v(0, 0)));
        assert_eq!(s.finish_validation(0, true, c), Some(Task::Execute(v(0, 1))));
        assert_eq!(s.finish_execution(v(1, 0), false, c), None);
        // A new location written: everything above is validated again.
        assert_eq!(s.finish_execution(v(0, 1), true, c), None);
        let seen = drain(&s, c);
        assert!(seen.contains(&Task::Validate(v(0, 1))));
        assert!(seen.contains(&Task::Validate(v(1, 0))));
        assert!(s.done());
    }

    #[test]
    fn dependency_suspends_until_the_blocking_transaction_executes() {
        let s = Scheduler::new(2);
        let c = &mut Claims::default();
        assert_eq!(poll(&s, c), Some(Task::Execute(v(0, 0))));
        assert_eq!(poll(&s, c), Some(Task::Execute(v(1, 0))));
        assert!(s.add_dependency(1, 0));
        assert!(!s.done());
        // Finishing tx 0 resumes tx 1 with its next incarnation.
        assert_eq!(s.finish_execution(v(0, 0), false, c), Some(Task::Validate(v(0, 0))));
        s.finish_validation(0, false, c);
        let seen = drain(&s, c);
        assert!(seen.contains(&Task::Execute(v(1, 1))));
        assert!(s.done());
        // Once executed, a dependency on it is refused.
        let s = Scheduler::new(2);
        assert_eq!(poll(&s, c), Some(Task::Execute(v(0, 0))));
        assert_eq!(poll(&s, c), Some(Task::Execute(v(1, 0))));
        s.finish_execution(v(0, 0), false, c);
        assert!(!s.add_dependency(1, 0));
    }

    #[test]
    fn a_worker_that_holds_claims_keeps_the_block_from_finishing() {
        let s = Scheduler::with_batch(4, 4);
        let (a, b) = (&mut Claims::default(), &mut Claims::default());
        // Worker a claims all four transactions and starts the first.
        assert_eq!(s.next_task(a), Some(Task::Execute(v(0, 0))));
        // Nothing is left to claim for b, and the block is not done.
        assert_eq!(s.next_task(b), None);
        assert!(!s.done());
        // b's validation claim passed the transactions a had not run: their
        // executions hand the validations back.
        assert_eq!(s.finish_execution(v(0, 0), false, a), Some(Task::Validate(v(0, 0))));
        assert_eq!(s.finish_validation(0, false, a), None);
        let seen = drain(&s, a);
        for tx in 1..4 {
            assert!(seen.contains(&Task::Execute(v(tx, 0))), "tx {tx} executed: {seen:?}");
        }
        assert!(s.done());
    }

    /// Workers on threads with claims of several indices, validations that
    /// fail at random (each transaction aborts a few times), dependencies
    /// between neighbours: every transaction's last incarnation is validated
    /// after it ran, and the block ends.
    #[test]
    fn batched_claims_validate_every_final_incarnation() {
        for (txs, batch, workers) in [(1, 1, 2), (7, 3, 3), (64, 8, 2), (200, 5, 4), (333, 8, 3)] {
            let s = Scheduler::with_batch(txs, batch);
            let executed: Vec<AtomicU64> = (0..txs).map(|_| AtomicU64::new(0)).collect();
            let aborts: Vec<AtomicU64> = (0..txs).map(|_| AtomicU64::new(0)).collect();
            let validated_final: Vec<AtomicBool> = (0..txs).map(|_| AtomicBool::new(false)).collect();
            let seed = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
            let random = || {
                let x = seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
                (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 40
            };
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| {
                        let c = &mut Claims::default();
                        let mut task = None;
                        let mut polls = 0u64;
                        while !s.done() {
                            polls += 1;
                            assert!(polls < 50_000_000, "block never finished");
                            task = match task.take().or_else(|| s.next_task(c)) {
                                None => {
                                    std::thread::yield_now();
                                    None
                                }
                                Some(Task::Execute(version)) => {
                                    if version.tx > 0
                                        && random() % 7 == 0
                                        && s.add_dependency(version.tx, version.tx - 1)
                                    {
                                        continue;
                                    }
                                    executed[version.tx].store(version.incarnation as u64 + 1, Ordering::SeqCst);
                                    validated_final[version.tx].store(false, Ordering::SeqCst);
                                    s.finish_execution(version, random() % 5 == 0, c)
                                }
                                Some(Task::Validate(version)) => {
                                    let fail = aborts[version.tx].load(Ordering::SeqCst) < 3 && random() % 4 == 0;
                                    let aborted = fail && s.try_validation_abort(version);
                                    if aborted {
                                        aborts[version.tx].fetch_add(1, Ordering::SeqCst);
                                    } else if executed[version.tx].load(Ordering::SeqCst)
                                        == version.incarnation as u64 + 1
                                    {
                                        validated_final[version.tx].store(true, Ordering::SeqCst);
                                    }
                                    s.finish_validation(version.tx, aborted, c)
                                }
                            };
                        }
                    });
                }
            });
            for (tx, validated) in validated_final.iter().enumerate() {
                assert!(s.is_executed(tx), "{txs} txs, batch {batch}: tx {tx} not executed");
                assert!(
                    validated.load(Ordering::SeqCst),
                    "{txs} txs, batch {batch}: last incarnation of tx {tx} never validated"
                );
            }
        }
    }
}
