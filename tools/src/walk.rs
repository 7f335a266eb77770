//! One ordered pass over the state of a snapshot: bytecodes by hash, then
//! accounts by keccak(address), each with its slots by keccak(slot), with
//! the preimages (address, slot) when the database recorded them. Three
//! scans move forward together (accounts, storage, preimages), so the pass
//! reads each table once in key order, with positioned reads into the
//! scans' own page buffers ([`metisdb::Scan`]): a full walk over a large
//! database leaves next to nothing mapped. It runs under a
//! [`crate::rss::Prefetch`], which reads the file into the page cache ahead
//! of it (and bounds what the slot-preimage lookups map).

use crate::error::{DbContext, Error, Result};
use alloy_primitives::map::B256Map;
use alloy_primitives::{Address, B256, U256};
use metisdb::state::StoredAccount;
use metisdb::tables::{ACCOUNTS, CODE, PREIMAGES, STORAGE};
use metisdb::Snapshot;

/// Receives the state in order.
pub trait StateVisitor {
    /// An account; its slots follow.
    fn account(&mut self, hash: &B256, address: Option<&Address>, account: &StoredAccount) -> Result<()>;
    /// A slot of the last account.
    fn slot(&mut self, hash: &B256, slot: Option<&U256>, value: &U256) -> Result<()>;
    /// The last account's slots are done.
    fn end_account(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Counts of one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkTotals {
    /// Accounts visited.
    pub accounts: u64,
    /// Slots visited.
    pub slots: u64,
    /// Bytecodes visited.
    pub codes: u64,
    /// Key and value bytes read.
    pub bytes: u64,
    /// Accounts without a recorded address preimage.
    pub missing_address_preimages: u64,
    /// Slots without a recorded slot preimage.
    pub missing_slot_preimages: u64,
}

fn bad(snap: &Snapshot, what: String) -> Error {
    Error::Refused(format!("the database at version {:?} is inconsistent: {what}", snap.version()))
}

/// Every bytecode, by hash.
pub fn walk_codes(
    snap: &Snapshot,
    totals: &mut WalkTotals,
    mut f: impl FnMut(&B256, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut it = snap.scan(CODE, &[]).ctx(|| "read the code table".into())?;
    while let Some((k, v)) = it.current() {
        if k.len() != 32 {
            return Err(bad(snap, format!("code key 0x{} is not 32 bytes", hex::encode(k))));
        }
        totals.codes += 1;
        totals.bytes += (k.len() + v.len()) as u64;
        f(&B256::from_slice(k), v)?;
        it.advance().ctx(|| "read the code table".into())?;
    }
    Ok(())
}

/// Options of [`walk_state`].
pub struct WalkOptions<'a> {
    /// Look up address and slot preimages.
    pub preimages: bool,
    /// Called every 4096 accounts with the totals so far.
    pub tick: &'a mut dyn FnMut(&WalkTotals),
    /// Accounts from this key on (`&[]`: from the first).
    pub start: &'a [u8],
    /// Accounts below this key (`None`: to the last).
    pub end: Option<&'a [u8]>,
}

impl<'a> WalkOptions<'a> {
    /// The whole state, with or without preimages.
    pub fn all(preimages: bool, tick: &'a mut dyn FnMut(&WalkTotals)) -> Self {
        WalkOptions { preimages, tick, start: &[], end: None }
    }
}

impl WalkTotals {
    /// Adds the counts of another pass.
    pub fn add(&mut self, o: &WalkTotals) {
        self.accounts += o.accounts;
        self.slots += o.slots;
        self.codes += o.codes;
        self.bytes += o.bytes;
        self.missing_address_preimages += o.missing_address_preimages;
        self.missing_slot_preimages += o.missing_slot_preimages;
    }
}

/// Every account with its slots, in key order (those with keys in
/// `opts.start..opts.end`).
pub fn walk_state(
    snap: &Snapshot,
    opts: WalkOptions<'_>,
    totals: &mut WalkTotals,
    v: &mut dyn StateVisitor,
) -> Result<()> {
    let ctx = |t: &str| format!("read the {t} table");
    let below_end = |k: &[u8]| opts.end.is_none_or(|e| k < e);
    let mut accounts = snap.scan(ACCOUNTS, opts.start).ctx(|| ctx("accounts"))?;
    let mut storage = snap.scan(STORAGE, opts.start).ctx(|| ctx("storage"))?;
    let mut pre = if opts.preimages { Some(snap.scan(PREIMAGES, opts.start).ctx(|| ctx("preimages"))?) } else { None };
    // Slots repeat across accounts (slot 0, 1, ...): remember recent preimages.
    let mut slot_cache: B256Map<Option<U256>> = B256Map::default();
    let mut slot_preimages = snap.paged_lookup(PREIMAGES);
    while let Some((k, val)) = accounts.current() {
        if !below_end(k) {
            break;
        }
        if k.len() != 32 {
            return Err(bad(snap, format!("account key 0x{} is not 32 bytes", hex::encode(k))));
        }
        let hash = B256::from_slice(k);
        let acct = StoredAccount::decode(val).map_err(|r| bad(snap, format!("account {hash:#x}: {r}")))?;
        let mut address = None;
        if let Some(p) = pre.as_mut() {
            while let Some((pk, pv)) = p.current() {
                if pk < k {
                    p.advance().ctx(|| ctx("preimages"))?;
                    continue;
                }
                if pk == k && pv.len() == 20 {
                    address = Some(Address::from_slice(pv));
                }
                break;
            }
            if address.is_none() {
                totals.missing_address_preimages += 1;
            }
        }
        // Storage keys below this account belong to no account.
        if let Some((sk, _)) = storage.current() {
            if sk.len() != 64 {
                return Err(bad(snap, format!("storage key 0x{} is not 64 bytes", hex::encode(sk))));
            }
            if &sk[..32] < k {
                return Err(bad(
                    snap,
                    format!("storage of account 0x{} without an account record", hex::encode(&sk[..32])),
                ));
            }
        }
        totals.accounts += 1;
        totals.bytes += (k.len() + val.len()) as u64;
        v.account(&hash, address.as_ref(), &acct)?;
        while let Some((sk, sv)) = storage.current() {
            if sk.len() != 64 || &sk[..32] != k {
                break;
            }
            if sv.is_empty() || sv.len() > 32 || sv[0] == 0 {
                return Err(bad(snap, format!("slot 0x{} holds a malformed value", hex::encode(sk))));
            }
            let sh = B256::from_slice(&sk[32..]);
            let value = U256::from_be_slice(sv);
            let slot = if opts.preimages {
                if slot_cache.len() > 1 << 16 {
                    slot_cache.clear();
                }
                let s = match slot_cache.get(&sh) {
                    Some(s) => *s,
                    None => {
                        let s = slot_preimages
                            .get(sh.as_slice())
                            .ctx(|| ctx("preimages"))?
                            .filter(|b| b.len() == 32)
                            .map(U256::from_be_slice);
                        slot_cache.insert(sh, s);
                        s
                    }
                };
                if s.is_none() {
                    totals.missing_slot_preimages += 1;
                }
                s
            } else {
                None
            };
            totals.slots += 1;
            totals.bytes += (sk.len() + sv.len()) as u64;
            v.slot(&sh, slot.as_ref(), &value)?;
            storage.advance().ctx(|| ctx("storage"))?;
        }
        v.end_account()?;
        if totals.accounts.is_multiple_of(4096) {
            (opts.tick)(totals);
        }
        accounts.advance().ctx(|| ctx("accounts"))?;
    }
    // Storage of the next range belongs to it.
    if let Some((sk, _)) = storage.current().filter(|(sk, _)| below_end(sk)) {
        return Err(bad(
            snap,
            format!("storage of account 0x{} without an account record", hex::encode(&sk[..32.min(sk.len())])),
        ));
    }
    (opts.tick)(totals);
    Ok(())
}
