//! The collaborative scheduler of Block-STM (Gelashvili et al., 2022,
//! algorithms 4 and 5): workers pull execution and validation tasks from two
//! shared indices; aborted transactions are re-incarnated and the indices are
//! lowered so that everything above them is validated again.

use crossbeam::utils::CachePadded;
use metisdb::pending::{Incarnation, TxIndex, Version};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

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
    pub fn new(num_txs: usize) -> Self {
        Self {
            num_txs,
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

    fn try_incarnate(&self, tx: TxIndex) -> Option<Version> {
        if tx < self.num_txs {
            let mut status = lock!(self.txs[tx].status);
            if status.1 == Status::ReadyToExecute {
                status.1 = Status::Executing;
                return Some(Version { tx, incarnation: status.0 });
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    fn next_version_to_execute(&self) -> Option<Version> {
        if self.execution_idx.load(Ordering::SeqCst) >= self.num_txs {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let tx = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        self.try_incarnate(tx)
    }

    fn next_version_to_validate(&self) -> Option<Version> {
        if self.validation_idx.load(Ordering::SeqCst) >= self.num_txs {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let tx = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        if tx < self.num_txs {
            let status = *lock!(self.txs[tx].status);
            if status.1 == Status::Executed {
                return Some(Version { tx, incarnation: status.0 });
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// The next task, or `None` if there is nothing to do right now (the caller
    /// checks `done` and retries).
    pub fn next_task(&self) -> Option<Task> {
        if self.done() {
            return None;
        }
        if self.validation_idx.load(Ordering::SeqCst) < self.execution_idx.load(Ordering::SeqCst) {
            self.next_version_to_validate().map(Task::Validate)
        } else {
            self.next_version_to_execute().map(Task::Execute)
        }
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
    pub fn finish_execution(&self, version: Version, wrote_new_location: bool) -> Option<Task> {
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
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
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
    pub fn finish_validation(&self, tx: TxIndex, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(tx);
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(Ordering::SeqCst) > tx {
                return self.try_incarnate(tx).map(Task::Execute);
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
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

    fn v(tx: TxIndex, incarnation: Incarnation) -> Version {
        Version { tx, incarnation }
    }

    /// Polls until a task comes out (a poll may find nothing to claim).
    fn poll(s: &Scheduler) -> Option<Task> {
        (0..10).find_map(|_| s.next_task())
    }

    #[test]
    fn executes_then_validates_in_order_and_finishes() {
        let s = Scheduler::new(2);
        assert_eq!(s.next_task(), Some(Task::Execute(v(0, 0))));
        assert_eq!(s.finish_execution(v(0, 0), false), None);
        assert_eq!(s.next_task(), Some(Task::Validate(v(0, 0))));
        assert_eq!(s.finish_validation(0, false), None);
        assert_eq!(s.next_task(), Some(Task::Execute(v(1, 0))));
        assert_eq!(s.finish_execution(v(1, 0), false), None);
        assert_eq!(s.next_task(), Some(Task::Validate(v(1, 0))));
        assert_eq!(s.finish_validation(1, false), None);
        assert_eq!(s.next_task(), None);
        assert!(s.done());
    }

    /// Runs every remaining task (including those handed back) to the end.
    fn drain(s: &Scheduler) -> Vec<Task> {
        let mut seen = Vec::new();
        let mut task = poll(s);
        while let Some(t) = task {
            seen.push(t);
            task = match t {
                Task::Execute(version) => s.finish_execution(version, false),
                Task::Validate(version) => s.finish_validation(version.tx, false),
            }
            .or_else(|| poll(s));
        }
        seen
    }

    #[test]
    fn failed_validation_bumps_the_incarnation_and_revalidates_above() {
        let s = Scheduler::new(2);
        assert_eq!(poll(&s), Some(Task::Execute(v(0, 0))));
        assert_eq!(poll(&s), Some(Task::Execute(v(1, 0))));
        // The validation index already passed tx 0: its validation is handed back.
        assert_eq!(s.finish_execution(v(0, 0), false), Some(Task::Validate(v(0, 0))));
        assert!(s.try_validation_abort(v(0, 0)));
        // Only the first abort of an incarnation wins.
        assert!(!s.try_validation_abort(v(0, 0)));
        assert_eq!(s.finish_validation(0, true), Some(Task::Execute(v(0, 1))));
        assert_eq!(s.finish_execution(v(1, 0), false), None);
        // A new location written: everything above is validated again.
        assert_eq!(s.finish_execution(v(0, 1), true), None);
        let seen = drain(&s);
        assert!(seen.contains(&Task::Validate(v(0, 1))));
        assert!(seen.contains(&Task::Validate(v(1, 0))));
        assert!(s.done());
    }

    #[test]
    fn dependency_suspends_until_the_blocking_transaction_executes() {
        let s = Scheduler::new(2);
        assert_eq!(poll(&s), Some(Task::Execute(v(0, 0))));
        assert_eq!(poll(&s), Some(Task::Execute(v(1, 0))));
        assert!(s.add_dependency(1, 0));
        assert!(!s.done());
        // Finishing tx 0 resumes tx 1 with its next incarnation.
        assert_eq!(s.finish_execution(v(0, 0), false), Some(Task::Validate(v(0, 0))));
        s.finish_validation(0, false);
        let seen = drain(&s);
        assert!(seen.contains(&Task::Execute(v(1, 1))));
        assert!(s.done());
        // Once executed, a dependency on it is refused.
        let s = Scheduler::new(2);
        assert_eq!(poll(&s), Some(Task::Execute(v(0, 0))));
        assert_eq!(poll(&s), Some(Task::Execute(v(1, 0))));
        s.finish_execution(v(0, 0), false);
        assert!(!s.add_dependency(1, 0));
    }
}
