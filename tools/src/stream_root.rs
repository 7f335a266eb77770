//! State roots computed in one pass over leaves in key order, with memory
//! proportional to the trie depth (no branch records are kept): accounts by
//! keccak(address), each followed by its slots by keccak(slot). Used to
//! check snapshot files without importing them and to recompute the state
//! root of a database from its leaves.

use alloy_primitives::{B256, U256};
use metis_trie::{storage_leaf_value, BuildError, Nibbles, RootBuilder};
use metisdb::state::{AccountInfo, StoredAccount};

/// An account whose stored storage root differs from its recomputed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRootMismatch {
    /// keccak(address).
    pub account: B256,
    /// Root in the account record.
    pub stored: B256,
    /// Root of the account's slots.
    pub computed: B256,
}

struct Open {
    hash: B256,
    info: AccountInfo,
    stored_root: Option<B256>,
    storage: RootBuilder,
    slots: u64,
}

/// Streaming state root.
#[derive(Default)]
pub struct StreamRoot {
    accounts: RootBuilder,
    open: Option<Open>,
    /// Accounts whose stored storage root was wrong (first 100).
    pub mismatches: Vec<StorageRootMismatch>,
    /// How many accounts had a wrong stored storage root.
    pub mismatch_count: u64,
}

impl StreamRoot {
    /// An empty computation.
    pub fn new() -> StreamRoot {
        StreamRoot::default()
    }

    fn close(&mut self) -> Result<(), BuildError> {
        if let Some(o) = self.open.take() {
            let root = if o.slots == 0 { metis_trie::EMPTY_ROOT_HASH } else { o.storage.finish()?.root() };
            if let Some(stored) = o.stored_root {
                if stored != root {
                    self.mismatch_count += 1;
                    if self.mismatches.len() < 100 {
                        self.mismatches.push(StorageRootMismatch { account: o.hash, stored, computed: root });
                    }
                }
            }
            let leaf = StoredAccount { info: o.info, storage_root: root }.trie_account().encode_to_vec();
            self.accounts.add_leaf(Nibbles::unpack(o.hash.as_slice()), &leaf)?;
        }
        Ok(())
    }

    /// The next account (strictly increasing `hash`). `stored_root` is the
    /// storage root the source claims, checked against its slots.
    pub fn account(&mut self, hash: B256, info: AccountInfo, stored_root: Option<B256>) -> Result<(), BuildError> {
        self.close()?;
        self.open = Some(Open { hash, info, stored_root, storage: RootBuilder::new(), slots: 0 });
        Ok(())
    }

    /// A non-zero slot of the current account (strictly increasing `hash`).
    /// Returns false when no account is open.
    pub fn slot(&mut self, hash: B256, value: &U256) -> Result<bool, BuildError> {
        let Some(o) = self.open.as_mut() else { return Ok(false) };
        let Some(leaf) = storage_leaf_value(value) else { return Ok(true) };
        o.storage.add_leaf(Nibbles::unpack(hash.as_slice()), &leaf)?;
        o.slots += 1;
        Ok(true)
    }

    /// The state root of everything fed.
    pub fn finish(mut self) -> Result<(B256, Vec<StorageRootMismatch>, u64), BuildError> {
        self.close()?;
        let root = self.accounts.finish()?.root();
        Ok((root, self.mismatches, self.mismatch_count))
    }
}

/// What [`check_state_root`] found.
#[derive(Clone, Debug)]
pub struct RootCheck {
    /// Version checked.
    pub version: Option<u64>,
    /// Root stored with the version.
    pub stored: B256,
    /// Root recomputed from the account and storage leaves.
    pub computed: B256,
    /// Accounts whose stored storage root differs from their slots' root (first 100).
    pub mismatches: Vec<StorageRootMismatch>,
    /// How many such accounts.
    pub mismatch_count: u64,
    /// Accounts read.
    pub accounts: u64,
    /// Slots read.
    pub slots: u64,
}

impl RootCheck {
    /// True when the recomputed root equals the stored one and every storage root matched.
    pub fn ok(&self) -> bool {
        self.stored == self.computed && self.mismatch_count == 0
    }
}

/// Recomputes the state root of a snapshot's version from its leaves (one
/// pass in key order; memory: the trie depth) and checks every account's
/// stored storage root against its slots. `tick` gets the accounts done.
pub fn check_state_root(
    snap: &metisdb::Snapshot,
    release: Option<&std::path::Path>,
    tick: &mut dyn FnMut(u64),
) -> crate::Result<RootCheck> {
    use crate::walk::{walk_state, StateVisitor, WalkOptions, WalkTotals};
    struct V(StreamRoot);
    let err = |e: BuildError| crate::Error::Refused(format!("the leaves cannot form a trie: {e}"));
    impl StateVisitor for V {
        fn account(
            &mut self,
            hash: &B256,
            _: Option<&alloy_primitives::Address>,
            a: &metisdb::state::StoredAccount,
        ) -> crate::Result<()> {
            self.0
                .account(*hash, a.info, Some(a.storage_root))
                .map_err(|e| crate::Error::Refused(format!("account {hash:#x}: {e}")))
        }
        fn slot(&mut self, hash: &B256, _: Option<&U256>, value: &U256) -> crate::Result<()> {
            self.0.slot(*hash, value).map_err(|e| crate::Error::Refused(format!("slot {hash:#x}: {e}")))?;
            Ok(())
        }
    }
    let stored = B256::from(
        snap.state_root()
            .map_err(|e| crate::Error::Db { context: "read the state root".into(), source: Box::new(e) })?,
    );
    // Warm the page cache sequentially (see `Prefetch`); the guard stops it on return.
    let _prefetch = release.map(crate::rss::Prefetch::start);
    let mut v = V(StreamRoot::new());
    let mut totals = WalkTotals::default();
    let mut t = |w: &WalkTotals| tick(w.accounts);
    walk_state(snap, WalkOptions::all(false, &mut t, release), &mut totals, &mut v)?;
    let (computed, mismatches, mismatch_count) = v.0.finish().map_err(err)?;
    Ok(RootCheck {
        version: snap.version(),
        stored,
        computed,
        mismatches,
        mismatch_count,
        accounts: totals.accounts,
        slots: totals.slots,
    })
}
