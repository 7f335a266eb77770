//! The recent changes of the multi-version memory, so that a validation can
//! tell that nothing it read changed without walking its reads again.
//!
//! A Block-STM validation re-reads every location a transaction read, to
//! see whether a lower transaction wrote it (or aborted its write) since.
//! Usually none did: the other workers were running higher transactions or
//! wrote other keys. Every change to the memory (a transaction's writes
//! recorded, or turned into ESTIMATEs) is numbered when its writes are in
//! place and leaves, in a ring of the latest [`RING_SLOTS`], which
//! transaction made it and a 32-bit hash of each key it touched. A
//! transaction notes the count of changes before it starts reading
//! ([`ChangeLog::mark`]); at its validation only the changes after that
//! count by lower transactions can have changed what it read
//! ([`ChangeLog::lower_since`]), and only at the keys they name.
//!
//! Anything the log cannot vouch for (a change not yet written into its
//! slot, a slot taken over by a newer change, a change of more keys than a
//! slot holds, more changes since the mark than the ring keeps) makes the
//! answer [`LowerChanges::Unknown`]: the caller validates every read.
//!
//! A loom model checks the numbering and the slots' seqlock (tests below;
//! `RUSTFLAGS="--cfg loom" cargo test -p metisdb --lib changes`).

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use smallvec::SmallVec;
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Changes the ring remembers. A validation usually looks back a few
/// changes (those the other workers made while the transaction ran).
#[cfg(not(loom))]
pub const RING_SLOTS: usize = 256;
/// Changes the ring remembers (two: loom explores a slot taken over).
#[cfg(loom)]
pub const RING_SLOTS: usize = 2;

/// Key hashes one slot holds; a change of more keys is recorded as touching
/// every key.
pub const SLOT_KEYS: usize = 13;

/// A slot's key count for a change that touched more keys than a slot holds
/// (or keys whose reads depend on other keys: storage wipes).
const WIDE: u32 = u32::MAX;

/// Tag of a slot being written (no change has it: transaction indices stay
/// below `u32::MAX`, as [`super::MvMemory::new`] asserts).
const BUSY: u64 = u64::MAX;

/// One change: `tag` is (change number + 1) in the high 32 bits and the
/// transaction in the low 32 (0: never written, [`BUSY`]: being written).
#[repr(align(64))]
struct Slot {
    tag: AtomicU64,
    count: AtomicU32,
    keys: [AtomicU32; SLOT_KEYS],
}

// One cache line per change: a validation reads one line per change.
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

fn tag(number: u64, tx: u32) -> u64 {
    (u64::from((number as u32).wrapping_add(1)) << 32) | u64::from(tx)
}

/// Whether `tag` belongs to a change numbered after `number` (numbers
/// compared in 32 bits, as tags hold them; the ring spans far fewer).
fn newer_than(tag: u64, number: u64) -> bool {
    let stamp = (tag >> 32) as u32;
    (stamp.wrapping_sub((number as u32).wrapping_add(1)) as i32) > 0
}

/// Key hashes of the changes a validation looks at (a few changes of a
/// few keys each, held inline).
pub type KeyHashes = SmallVec<[u32; 32]>;

/// What the changes since a mark by transactions below a reader touched.
#[derive(Debug, PartialEq, Eq)]
pub enum LowerChanges {
    /// The hashes of the keys lower transactions changed (none: every read
    /// stands).
    Keys(KeyHashes),
    /// The log cannot tell: validate every read.
    Unknown,
}

/// See the module documentation.
pub struct ChangeLog {
    /// Changes numbered so far; a change takes its number once its writes
    /// are in place.
    count: AtomicU64,
    ring: Box<[Slot]>,
}

impl Default for ChangeLog {
    fn default() -> Self {
        let slot = || Slot { tag: AtomicU64::new(0), count: AtomicU32::new(0), keys: Default::default() };
        ChangeLog { count: AtomicU64::new(0), ring: (0..RING_SLOTS).map(|_| slot()).collect() }
    }
}

impl ChangeLog {
    /// The number of changes so far: every change before it is in place
    /// for whoever reads after taking the mark.
    pub fn mark(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Numbers a change by `tx` of the keys with these hashes; call once its
    /// writes are in place. `wide`: the change must count as touching every
    /// key.
    pub fn publish(&self, tx: u32, key_hashes: &[u32], wide: bool) -> u64 {
        let number = self.count.fetch_add(1, Ordering::AcqRel);
        let slot = &self.ring[number as usize % RING_SLOTS];
        // Take the slot, unless a newer change already holds it (this one
        // was slow to get here): then its readers find the newer tag and
        // validate in full.
        let mut current = slot.tag.load(Ordering::Acquire);
        #[cfg(not(loom))]
        let mut spins = 0u32;
        loop {
            if current == BUSY {
                // Another writer holds the slot for a few stores; if it
                // was preempted, let it run.
                #[cfg(loom)]
                loom::thread::yield_now();
                #[cfg(not(loom))]
                {
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                current = slot.tag.load(Ordering::Acquire);
                continue;
            }
            if current != 0 && newer_than(current, number) {
                return number;
            }
            match slot.tag.compare_exchange_weak(current, BUSY, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        // A reader that sees any of the stores below sees BUSY (or later)
        // when it checks the tag again.
        fence(Ordering::Release);
        if wide || key_hashes.len() > SLOT_KEYS {
            slot.count.store(WIDE, Ordering::Relaxed);
        } else {
            slot.count.store(key_hashes.len() as u32, Ordering::Relaxed);
            for (cell, &hash) in slot.keys.iter().zip(key_hashes) {
                cell.store(hash, Ordering::Relaxed);
            }
        }
        slot.tag.store(tag(number, tx), Ordering::Release);
        number
    }

    /// The keys changed by transactions below `tx` since `mark`.
    pub fn lower_since(&self, mark: u64, tx: u32) -> LowerChanges {
        self.lower_between(mark, tx).1
    }

    /// [`Self::lower_since`], with the count of changes it looked up to.
    fn lower_between(&self, mark: u64, tx: u32) -> (u64, LowerChanges) {
        let now = self.count.load(Ordering::Acquire);
        (now, self.lower_in(mark, now, tx))
    }

    fn lower_in(&self, mark: u64, now: u64, tx: u32) -> LowerChanges {
        if now - mark > RING_SLOTS as u64 {
            return LowerChanges::Unknown;
        }
        let mut keys = KeyHashes::new();
        for number in mark..now {
            let slot = &self.ring[number as usize % RING_SLOTS];
            let seen = slot.tag.load(Ordering::Acquire);
            if seen == BUSY || seen >> 32 != (tag(number, 0) >> 32) {
                return LowerChanges::Unknown; // Not written yet, or taken over.
            }
            if seen as u32 >= tx {
                continue;
            }
            let count = slot.count.load(Ordering::Relaxed) as usize;
            if count > SLOT_KEYS {
                return LowerChanges::Unknown; // A wide change.
            }
            keys.extend(slot.keys[..count].iter().map(|k| k.load(Ordering::Relaxed)));
            // Keys read while a newer change took the slot over: the tag
            // then differs (see the fence in `publish`).
            fence(Ordering::Acquire);
            if slot.tag.load(Ordering::Relaxed) != seen {
                return LowerChanges::Unknown;
            }
        }
        LowerChanges::Keys(keys)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn keys(answer: LowerChanges) -> Option<Vec<u32>> {
        match answer {
            LowerChanges::Keys(mut k) => {
                k.sort_unstable();
                Some(k.to_vec())
            }
            LowerChanges::Unknown => None,
        }
    }

    #[test]
    fn a_reader_sees_the_keys_of_lower_changes_after_its_mark_only() {
        let log = ChangeLog::default();
        log.publish(1, &[100], false);
        let mark = log.mark();
        assert_eq!(keys(log.lower_since(mark, 5)), Some(vec![]), "nothing since the mark");
        log.publish(7, &[1, 2], false); // above the reader
        log.publish(5, &[3], false); // the reader itself
        assert_eq!(keys(log.lower_since(mark, 5)), Some(vec![]));
        log.publish(2, &[4, 6], false);
        log.publish(0, &[], false);
        log.publish(4, &[5], false);
        assert_eq!(keys(log.lower_since(mark, 5)), Some(vec![4, 5, 6]));
        assert_eq!(keys(log.lower_since(mark, 3)), Some(vec![4, 6]));
        assert_eq!(keys(log.lower_since(mark, 0)), Some(vec![]));
    }

    #[test]
    fn what_the_log_cannot_vouch_for_is_unknown() {
        let log = ChangeLog::default();
        let mark = log.mark();
        log.publish(1, &[1], true);
        assert_eq!(keys(log.lower_since(mark, 2)), None, "a wide change");
        assert_eq!(keys(log.lower_since(mark, 1)), Some(vec![]), "a wide change above the reader");
        let mark = log.mark();
        log.publish(1, &[7; SLOT_KEYS + 1], false);
        assert_eq!(keys(log.lower_since(mark, 2)), None, "more keys than a slot holds");
        let mark = log.mark();
        log.publish(1, &[7; SLOT_KEYS], false);
        assert_eq!(keys(log.lower_since(mark, 2)), Some(vec![7; SLOT_KEYS]));
        // The ring keeps RING_SLOTS changes.
        let mark = log.mark();
        for _ in 0..RING_SLOTS {
            log.publish(9, &[1], false);
        }
        assert_eq!(keys(log.lower_since(mark, 2)), Some(vec![]));
        log.publish(9, &[1], false);
        assert_eq!(keys(log.lower_since(mark, 2)), None, "past the ring");
        // A change numbered but not yet in its slot.
        let mark = log.mark();
        log.count.fetch_add(1, Ordering::AcqRel);
        assert_eq!(keys(log.lower_since(mark, 2)), None);
    }

    #[test]
    fn a_slow_writer_leaves_a_newer_change_in_its_slot() {
        let log = ChangeLog::default();
        // Change 0 is numbered, then RING_SLOTS more take the ring round
        // to its slot before it is written.
        log.count.fetch_add(1, Ordering::AcqRel);
        for _ in 0..RING_SLOTS {
            log.publish(3, &[8], false);
        }
        let slot = &log.ring[0];
        let newer = slot.tag.load(Ordering::Acquire);
        // The late writer of change 0 (as `publish` goes on after numbering).
        assert!(newer_than(newer, 0));
        let before = log.count.load(Ordering::Acquire);
        log.count.store(0, Ordering::Release);
        log.publish(1, &[9], false);
        log.count.store(before, Ordering::Release);
        assert_eq!(slot.tag.load(Ordering::Acquire), newer, "the newer change stays");
        assert_eq!(slot.keys[0].load(Ordering::Relaxed), 8);
    }

    /// Writers on threads and a reader asking meanwhile; afterwards every
    /// answer of keys is checked against all that was published: it holds
    /// every key of every change by a lower transaction in the range it
    /// looked at, and none of those changes was wide. A round whose threads
    /// the machine happened to run one after the other checks little, so
    /// rounds repeat (each checked) until one overlapped enough.
    #[test]
    fn concurrent_answers_cover_every_lower_change() {
        let mut coverage = Vec::new();
        for _ in 0..20 {
            let (with_keys, with_lower) = concurrent_round();
            if with_keys > 1000 && with_lower > 100 {
                return;
            }
            coverage.push((with_keys, with_lower));
        }
        panic!("no round overlapped enough: (answers of keys, lower changes in them) {coverage:?}");
    }

    /// One round of [`concurrent_answers_cover_every_lower_change`]:
    /// (answers of keys, lower changes checked in them).
    fn concurrent_round() -> (usize, usize) {
        use std::sync::atomic::AtomicUsize;
        use std::sync::{Barrier, Mutex};
        const WRITERS: usize = 3;
        let log = ChangeLog::default();
        // (change number, transaction, key hashes or none for a wide change)
        type Published = Vec<(u64, u32, Option<Vec<u32>>)>;
        let published: Mutex<Published> = Mutex::new(Vec::new());
        let mut answers: Vec<(u64, u64, u32, LowerChanges)> = Vec::new();
        let (start, writers_done) = (Barrier::new(WRITERS + 1), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for writer in 0..WRITERS as u32 {
                let (log, published, start, writers_done) = (&log, &published, &start, &writers_done);
                scope.spawn(move || {
                    start.wait();
                    for i in 0..20_000u32 {
                        let tx = (i * 7 + writer * 13) % 50;
                        let hashes: Vec<u32> = (0..(i % 5)).map(|k| tx * 100 + k).collect();
                        let wide = i % 97 == 0;
                        let number = log.publish(tx, &hashes, wide);
                        published.lock().unwrap().push((number, tx, (!wide).then_some(hashes)));
                        if i % 256 == 0 {
                            std::thread::yield_now();
                        }
                    }
                    writers_done.fetch_add(1, Ordering::Release);
                });
            }
            let (log, answers, start, writers_done) = (&log, &mut answers, &start, &writers_done);
            scope.spawn(move || {
                start.wait();
                let mut i = 0u32;
                // Asks as long as any writer writes.
                while writers_done.load(Ordering::Acquire) < WRITERS || i < 20_000 {
                    let mark = log.mark();
                    for _ in 0..(i % 40) {
                        std::hint::spin_loop();
                    }
                    let tx = i % 50;
                    let (now, answer) = log.lower_between(mark, tx);
                    answers.push((mark, now, tx, answer));
                    i += 1;
                }
            });
        });
        let mut published = published.into_inner().unwrap();
        published.sort_unstable_by_key(|(number, _, _)| *number);
        let (mut with_keys, mut with_lower) = (0, 0);
        for (mark, now, tx, answer) in answers {
            let LowerChanges::Keys(keys) = answer else { continue };
            with_keys += 1;
            let range =
                published.partition_point(|(n, _, _)| *n < mark)..published.partition_point(|(n, _, _)| *n < now);
            for (_, _, hashes) in published[range].iter().filter(|(_, w, _)| *w < tx) {
                with_lower += 1;
                let hashes = hashes.as_ref().expect("a wide change must make the answer unknown");
                assert!(hashes.iter().all(|h| keys.contains(h)), "{hashes:?} missing from {keys:?}");
            }
        }
        (with_keys, with_lower)
    }
}

/// The log under every interleaving loom allows. A reader takes its mark,
/// reads a location, and asks for the lower changes since; a lower writer
/// writes that location and publishes the change. Whenever the answer names
/// keys without the location's, the read saw the write, or the change was
/// numbered after the count the answer covers (a later validation, which
/// the scheduler starts once the change is in place, covers it). With a
/// ring of two slots, a change taking over a slot another change is still
/// writing never lends its keys to the other's number.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::Arc;

    const KEY: u32 = 7;

    #[test]
    fn a_lower_write_the_read_missed_is_never_vouched_for() {
        loom::model(|| {
            let log = Arc::new(ChangeLog::default());
            let location = Arc::new(AtomicU64::new(0));
            let writer = {
                let (log, location) = (log.clone(), location.clone());
                loom::thread::spawn(move || {
                    location.store(1, Ordering::Release);
                    log.publish(1, &[KEY], false)
                })
            };
            let mark = log.mark();
            let seen = location.load(Ordering::Acquire);
            let (now, answer) = log.lower_between(mark, 5);
            let number = writer.join().expect("writer");
            if let LowerChanges::Keys(keys) = answer {
                assert!(
                    keys.contains(&KEY) || seen == 1 || number >= now,
                    "vouched for a read that missed change {number} (mark {mark}, now {now})"
                );
            }
        });
    }

    #[test]
    fn a_slot_taken_over_never_mixes_two_changes() {
        loom::model(|| {
            let log = Arc::new(ChangeLog::default());
            let mark = log.mark();
            // A change by a transaction above the reader, on another
            // thread: numbered third, it takes over the slot of the lower
            // change while the reader may be reading that slot.
            let other = {
                let log = log.clone();
                loom::thread::spawn(move || log.publish(9, &[1, 1], false))
            };
            let lower = log.publish(0, &[3, 4], false);
            log.publish(9, &[2], false);
            let (now, answer) = log.lower_between(mark, 5);
            other.join().expect("writer");
            if let LowerChanges::Keys(keys) = answer {
                if (mark..now).contains(&lower) {
                    assert!(keys.contains(&3) && keys.contains(&4), "the lower change's keys are missing: {keys:?}");
                }
                assert!(!keys.contains(&1) && !keys.contains(&2), "keys of a higher change: {keys:?}");
            }
        });
    }
}
