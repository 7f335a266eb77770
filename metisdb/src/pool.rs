//! Helper threads that outlive the work they do.
//!
//! Block-STM used to start its workers for each block, and a commit its
//! hashing threads, and let them end with it. A thread's end is not free:
//! the allocator's thread cache goes back to its arena, and on this 2-vCPU
//! machine that was some 60 `madvise` calls per block, each a TLB-shootdown
//! interrupt to the core still running the block, which finished its
//! receipts and final writes 1.2-1.9x slower than the sequential path for
//! it. Pooled threads stay (parked) between uses.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Pools are kept per size (a node uses one; tests ask for 1 to 8
/// workers), up to this many threads each.
pub const MAX_POOLED_THREADS: usize = 64;

fn pool(threads: usize) -> Arc<ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    pools
        .entry(threads)
        .or_insert_with(|| {
            let pool = ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("metis-worker-{i}"))
                .build()
                .expect("start pooled helper threads");
            Arc::new(pool)
        })
        .clone()
}

/// Runs `work(0)` on the calling thread and `work(1)` .. `work(workers - 1)`
/// on pooled threads, and returns once every call has returned. A panic in
/// any of them is resumed here after all have returned.
pub fn on_workers(workers: usize, work: impl Fn(usize) + Sync) {
    with_helpers(workers.saturating_sub(1), &work, || work(0));
}

/// Runs `main` on the calling thread and `helper(1)` .. `helper(helpers)`
/// on pooled threads; returns `main`'s result once every call has
/// returned. A helper may start late (on the caller, after `main`, when the
/// pool is busy with another caller's work), so `main` must not wait for
/// a helper that has not claimed any work yet. A panic in any call is
/// resumed here after all have returned.
pub fn with_helpers<R>(helpers: usize, helper: impl Fn(usize) + Sync, main: impl FnOnce() -> R) -> R {
    assert!(helpers <= MAX_POOLED_THREADS, "{helpers} helpers: at most {MAX_POOLED_THREADS} pooled");
    if helpers == 0 {
        return main();
    }
    let helper = &helper;
    pool(helpers).in_place_scope(|scope| {
        for id in 1..=helpers {
            scope.spawn(move |_| helper(id));
        }
        main()
    })
}

/// Runs `work` on every share: the first on the calling thread, each other
/// on a pooled helper; returns the results in the order of the shares.
pub fn map_shares<T: Send, R: Send>(shares: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let mut shares = shares.into_iter();
    let Some(first) = shares.next() else { return Vec::new() };
    // A helper takes its share and leaves its result through a slot of its own.
    let slots: Vec<Mutex<(Option<T>, Option<R>)>> = shares.map(|share| Mutex::new((Some(share), None))).collect();
    let lock = |id: usize| slots[id - 1].lock().unwrap_or_else(|e| e.into_inner());
    let work = &work;
    let first = with_helpers(
        slots.len(),
        |id| {
            let share = lock(id).0.take().expect("each share is taken once");
            let result = work(share);
            lock(id).1 = Some(result);
        },
        || work(first),
    );
    let rest = slots.into_iter().map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()).1);
    std::iter::once(first).chain(rest.map(|r| r.expect("every helper has run"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn run_counted(workers: usize) -> Vec<usize> {
        let calls: Vec<AtomicUsize> = (0..workers).map(|_| AtomicUsize::new(0)).collect();
        on_workers(workers, |id| {
            calls[id].fetch_add(1, Ordering::Relaxed);
        });
        calls.into_iter().map(AtomicUsize::into_inner).collect()
    }

    #[test]
    fn every_worker_runs_once_and_on_worker_zero_the_caller() {
        for workers in [1, 2, 3, 8] {
            assert_eq!(run_counted(workers), vec![1; workers], "{workers} workers");
        }
        let caller = std::thread::current().id();
        on_workers(2, |id| {
            if id == 0 {
                assert_eq!(std::thread::current().id(), caller);
            } else {
                assert_ne!(std::thread::current().id(), caller);
            }
        });
    }

    #[test]
    fn helpers_run_once_each_beside_main_which_gives_the_result() {
        let calls: Vec<AtomicUsize> = (0..=3).map(|_| AtomicUsize::new(0)).collect();
        let result = with_helpers(
            3,
            |id| {
                calls[id].fetch_add(1, Ordering::Relaxed);
            },
            || 42,
        );
        assert_eq!(result, 42);
        let calls: Vec<usize> = calls.into_iter().map(AtomicUsize::into_inner).collect();
        assert_eq!(calls, vec![0, 1, 1, 1]);
        assert_eq!(with_helpers(0, |_| unreachable!("no helpers"), || "alone"), "alone");
    }

    #[test]
    fn shares_are_mapped_in_order_the_first_on_the_caller() {
        let caller = std::thread::current().id();
        for n in [0, 1, 2, 5] {
            let results = map_shares((0..n).collect(), |i: usize| (i * 10, std::thread::current().id()));
            assert_eq!(results.iter().map(|r| r.0).collect::<Vec<_>>(), (0..n).map(|i| i * 10).collect::<Vec<_>>());
            if let Some(first) = results.first() {
                assert_eq!(first.1, caller, "the first share runs on the caller");
            }
        }
    }

    #[test]
    fn concurrent_callers_share_a_pool_and_all_finish() {
        // Each call's workers wait for each other: the calls only finish if
        // every worker of every call gets a thread, whoever holds the pool.
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        let arrived = AtomicUsize::new(0);
                        on_workers(2, |_| {
                            arrived.fetch_add(1, Ordering::AcqRel);
                            while arrived.load(Ordering::Acquire) < 2 {
                                std::thread::yield_now();
                            }
                        });
                    }
                });
            }
        });
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_after_the_others_return() {
        let finished = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on_workers(3, |id| {
                if id == 1 {
                    panic!("worker one");
                }
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(result.is_err());
        assert_eq!(finished.load(Ordering::Relaxed), 2);
    }
}
