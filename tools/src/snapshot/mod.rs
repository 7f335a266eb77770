//! Snapshot files: one version of the state, streamed, chunked, compressed
//! and checksummed (docs/snapshot-format.md).

pub mod export;
pub mod format;
pub mod load;
pub mod reader;

use crate::error::{Error, Result};
use crate::stream_root::StreamRoot;
use alloy_primitives::{Address, B256};
use format::{Entry, EntryDecoder, Footer, Header, OrderCheck};
use reader::{Chunk, SnapshotReader};
use std::path::Path;

/// Entries counted while reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Accounts.
    pub accounts: u64,
    /// Storage slots.
    pub slots: u64,
    /// Bytecodes.
    pub codes: u64,
}

impl Totals {
    /// Entries of all kinds.
    pub fn items(&self) -> u64 {
        self.accounts + self.slots + self.codes
    }
}

/// Decodes and checks every entry of `chunk` (order, preimages, code
/// hashes) and returns them, in order. Errors name the chunk and the
/// entry's position in its payload; of several bad entries, the first is
/// named.
///
/// The chunk is decoded whole first so that its codes, addresses and slot
/// numbers are hashed in one batch (`metis_keccak`, eight at a time where
/// the CPU can; a quarter of an import's keccak work). Entries are decoded
/// into the vector returned (an entry is about 130 bytes, and an import
/// moves 15M of them).
pub fn decode_chunk(path: &Path, chunk: &Chunk, order: &mut OrderCheck, totals: &mut Totals) -> Result<Vec<Entry>> {
    let mut d = EntryDecoder::new(&chunk.payload);
    // Entries up to the first that fails to decode, and their payload positions.
    let mut entries: Vec<Entry> = Vec::with_capacity(chunk.frame.entries as usize);
    let mut positions: Vec<usize> = Vec::with_capacity(chunk.frame.entries as usize);
    let decode_error = loop {
        let at = d.position();
        match d.next() {
            Ok(Some(e)) => {
                entries.push(e);
                positions.push(at);
            }
            Ok(None) => break None,
            Err(r) => break Some((at, r)),
        }
    };
    let where_ = |n: usize, at: usize| format!("{}, entry {n} at payload byte {at}", chunk.place());
    // The first entry whose preimage (code, address or slot number) does
    // not hash to its key; earlier entries may still fail their order check.
    let preimages: Vec<(usize, Preimage<'_>, &B256)> = entries
        .iter()
        .enumerate()
        .filter_map(|(n, e)| match e {
            Entry::Code { hash, code } => Some((n, Preimage::Bytes(code), hash)),
            Entry::Account { hash, address: Some(address), .. } => Some((n, Preimage::Bytes(address.as_slice()), hash)),
            Entry::Slot { hash, slot: Some(slot), .. } => Some((n, Preimage::Word(slot.to_be_bytes()), hash)),
            _ => None,
        })
        .collect();
    let hashes = metis_keccak::keccak256_all(&preimages.iter().map(|(_, p, _)| p).collect::<Vec<_>>());
    let first_bad = preimages.iter().zip(&hashes).find(|((_, _, key), h)| *key != *h).map(|((n, _, _), _)| *n);
    let entry_count = entries.len();
    for (n, (e, &at)) in entries.iter().zip(&positions).enumerate() {
        order.check(e, chunk.frame.kind).map_err(|r| Error::bad(path, where_(n, at), r))?;
        let bad = match e {
            _ if first_bad != Some(n) => None,
            Entry::Code { hash, code } => Some(bad_code_preimage(hash, code)),
            Entry::Account { hash, address: Some(address), .. } => Some(bad_address_preimage(hash, address)),
            Entry::Slot { hash, .. } => Some(bad_slot_preimage(hash, &order.last_account().unwrap_or_default())),
            Entry::Account { address: None, .. } => None,
        };
        if let Some(reason) = bad {
            return Err(Error::bad(path, where_(n, at), reason));
        }
        match e {
            Entry::Code { .. } => totals.codes += 1,
            Entry::Account { .. } => totals.accounts += 1,
            Entry::Slot { .. } => totals.slots += 1,
        }
    }
    if let Some((at, r)) = decode_error {
        return Err(Error::bad(path, where_(entry_count, at), r));
    }
    if entry_count != chunk.frame.entries as usize {
        return Err(Error::bad(
            path,
            chunk.place(),
            format!("the chunk holds {entry_count} entries, its frame says {}", chunk.frame.entries),
        ));
    }
    Ok(entries)
}

/// What an entry's key is the keccak of: borrowed bytes (code, address) or
/// a slot number's 32 big-endian bytes.
enum Preimage<'a> {
    Bytes(&'a [u8]),
    Word([u8; 32]),
}

impl AsRef<[u8]> for Preimage<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Preimage::Bytes(b) => b,
            Preimage::Word(w) => w,
        }
    }
}

/// The error for a code entry whose code does not hash to its key.
fn bad_code_preimage(hash: &B256, code: &[u8]) -> String {
    format!("code entry {hash:#x} holds code that hashes to {:#x}", alloy_primitives::keccak256(code))
}

/// The error for an account whose address does not hash to its key.
fn bad_address_preimage(hash: &B256, address: &Address) -> String {
    format!("account {hash:#x}: address preimage {address:#x} does not hash to it")
}

/// The error for a slot (of account `account`) whose number does not hash
/// to its key.
fn bad_slot_preimage(hash: &B256, account: &B256) -> String {
    format!("slot {hash:#x} of account {account:#x}: preimage does not hash to it")
}

/// Compares the footer's totals with what was read.
pub fn check_totals(path: &Path, footer: &Footer, t: &Totals) -> Result<()> {
    if (footer.accounts, footer.slots, footer.codes) != (t.accounts, t.slots, t.codes) {
        return Err(Error::bad(
            path,
            "footer",
            format!(
                "the footer counts {} accounts, {} slots, {} codes; the chunks hold {}, {}, {}",
                footer.accounts, footer.slots, footer.codes, t.accounts, t.slots, t.codes
            ),
        ));
    }
    Ok(())
}

/// What [`verify_file`] found.
#[derive(Clone, Debug)]
pub struct VerifySummary {
    /// The header.
    pub header: Header,
    /// The footer.
    pub footer: Footer,
    /// The state root recomputed from the entries.
    pub computed_root: B256,
}

/// Checks a snapshot file without importing it: header, every chunk's
/// checksum and contents, entry order, code hashes, footer totals, and the
/// state root recomputed from the entries (memory: a few chunks plus the
/// trie depth). `progress` gets (bytes read, entries read). Two threads: one
/// reads, decompresses and checks the chunks and hashes the leaves a chunk
/// settles ([`load::hash_leaves_ahead`]), the calling thread hashes the rest
/// of the tries (both mostly keccak: preimages, code hashes, trie nodes).
pub fn verify_file(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifySummary> {
    /// Decoded chunks in flight between the threads.
    const CHUNKS_AHEAD: usize = 4;
    let mut r = SnapshotReader::open(path)?;
    let header = r.header().clone();
    type Decoded = (Vec<Entry>, Vec<Option<metis_trie::LeafHash>>, u64, u64);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Decoded>(CHUNKS_AHEAD);
    let trie_err = |e: metis_trie::BuildError| Error::bad(path, "trie", e.to_string());
    let (decoded, hashed) = std::thread::scope(|s| {
        let decoder = s.spawn(move || -> Result<Option<Footer>> {
            let mut order = OrderCheck::default();
            let mut totals = Totals::default();
            while let Some(chunk) = r.next_chunk()? {
                let mut entries = decode_chunk(path, &chunk, &mut order, &mut totals)?;
                entries.retain(|e| !matches!(e, Entry::Code { .. }));
                // The hashing side paces the check: this thread hashes what it can.
                let leaf_hashes = load::hash_leaves_ahead(&entries);
                if tx.send((entries, leaf_hashes, r.position().offset, totals.items())).is_err() {
                    // The hashing side stopped; its error explains why.
                    return Ok(None);
                }
            }
            let footer = *r.footer().expect("next_chunk returns None only after the footer");
            check_totals(path, &footer, &totals)?;
            Ok(Some(footer))
        });
        let mut root = StreamRoot::new();
        let hashed = (|| -> Result<()> {
            for (entries, leaf_hashes, offset, items) in rx {
                for (n, e) in entries.into_iter().enumerate() {
                    let hashed = leaf_hashes.get(n).copied().flatten();
                    match e {
                        Entry::Code { .. } => {}
                        Entry::Account { hash, info, .. } => {
                            root.account(hash, info, None, hashed).map_err(trie_err)?
                        }
                        Entry::Slot { hash, value, .. } => {
                            root.slot(hash, &value, hashed).map_err(trie_err)?;
                        }
                    }
                }
                progress(offset, items);
            }
            Ok(())
        })()
        .and_then(|()| root.finish().map(|(computed, _, _)| computed).map_err(trie_err));
        // Returning drops the receiver (when hashing failed), which stops the decoder.
        (decoder.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), hashed)
    });
    // A damaged chunk explains a hashing failure after it.
    let footer = decoded?;
    let computed_root = hashed?;
    let footer = footer.expect("the decoder stops early only when hashing failed");
    if computed_root != header.state_root {
        return Err(Error::RootMismatch {
            what: format!("the header of {}", path.display()),
            expected: header.state_root,
            computed: computed_root,
        });
    }
    Ok(VerifySummary { header, footer, computed_root })
}

#[cfg(test)]
mod tests {
    use super::format::{put_account, put_code, put_slot, ChunkKind, Frame};
    use super::*;
    use alloy_primitives::{keccak256, Address, U256};
    use metis_trie::KECCAK_EMPTY;
    use metisdb::state::AccountInfo;

    /// A state chunk of accounts with address preimages, sorted by hash;
    /// `corrupt(n, hash, address)` may change entry `n` before encoding.
    fn chunk(count: usize, corrupt: impl Fn(usize, &mut B256, &mut Address)) -> Chunk {
        let info = AccountInfo { nonce: 1, balance: U256::from(5u64), code_hash: KECCAK_EMPTY };
        let mut accounts: Vec<(B256, Address)> =
            (0..count as u64).map(|i| Address::with_last_byte(1).create(i)).map(|a| (keccak256(a), a)).collect();
        accounts.sort();
        let mut payload = Vec::new();
        for (n, (mut hash, mut address)) in accounts.into_iter().enumerate() {
            corrupt(n, &mut hash, &mut address);
            put_account(&mut payload, &hash, Some(&address), &info);
        }
        Chunk { frame: Frame::new(ChunkKind::State, 0, b"", payload.len(), count as u32), offset: 64, payload }
    }

    fn run(chunk: &Chunk) -> std::result::Result<u64, String> {
        let mut totals = Totals::default();
        decode_chunk(Path::new("x.snap"), chunk, &mut OrderCheck::default(), &mut totals)
            .map(|_| totals.accounts)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn batched_preimage_checks_name_the_first_bad_entry() {
        // 21 accounts: batches of eight and a tail of five.
        assert_eq!(run(&chunk(21, |_, _, _| {})), Ok(21));
        for bad in [0, 7, 8, 16, 20] {
            let e = run(&chunk(21, |n, _, a| {
                if n == bad {
                    *a = Address::repeat_byte(0xee);
                }
            }))
            .unwrap_err();
            assert!(e.contains(&format!("entry {bad} at")) && e.contains("does not hash"), "{bad}: {e}");
        }
        // An order error before a bad preimage is the one named, and a bad
        // preimage before an order error.
        let both = |order_at: usize, preimage_at: usize| {
            run(&chunk(21, move |n, h, a| {
                if n == order_at {
                    *h = B256::ZERO; // Not above the previous hash.
                    *a = Address::ZERO;
                }
                if n == preimage_at {
                    *a = Address::repeat_byte(0xee);
                }
            }))
            .unwrap_err()
        };
        let e = both(3, 12);
        assert!(e.contains("entry 3 at") && e.contains("out of order"), "{e}");
        let e = both(12, 3);
        assert!(e.contains("entry 3 at") && e.contains("does not hash"), "{e}");
    }

    #[test]
    fn batched_code_checks_name_the_first_code_that_does_not_hash_to_its_key() {
        // 11 codes of different lengths (around the 136-byte rate), sorted by hash.
        let chunk = |bad: Option<usize>| {
            let mut codes: Vec<(B256, Vec<u8>)> =
                (0..11usize).map(|i| vec![0x60 + i as u8; 1 + i * 40]).map(|c| (keccak256(&c), c)).collect();
            codes.sort();
            let mut payload = Vec::new();
            for (n, (hash, mut code)) in codes.into_iter().enumerate() {
                if Some(n) == bad {
                    code[0] ^= 1;
                }
                put_code(&mut payload, &hash, &code);
            }
            Chunk { frame: Frame::new(ChunkKind::Codes, 0, b"", payload.len(), 11), offset: 64, payload }
        };
        let codes = |c: &Chunk| {
            let mut totals = Totals::default();
            decode_chunk(Path::new("x.snap"), c, &mut OrderCheck::default(), &mut totals)
                .map(|_| totals.codes)
                .map_err(|e| e.to_string())
        };
        assert_eq!(codes(&chunk(None)), Ok(11));
        for bad in [0, 7, 8, 10] {
            let e = codes(&chunk(Some(bad))).unwrap_err();
            assert!(e.contains(&format!("entry {bad} at")) && e.contains("holds code that hashes to"), "{bad}: {e}");
        }
    }

    #[test]
    fn slot_preimages_are_checked_every_time() {
        let info = AccountInfo { nonce: 0, balance: U256::from(1u64), code_hash: KECCAK_EMPTY };
        let slot = U256::from(2u64);
        let hash = metisdb::state::hash_slot(&slot);
        let state = |payload: Vec<u8>, entries: u32| Chunk {
            frame: Frame::new(ChunkKind::State, 0, b"", payload.len(), entries),
            offset: 64,
            payload,
        };
        // The same (hash, slot) pair under many accounts.
        let mut payload = Vec::new();
        for a in 1u8..=3 {
            put_account(&mut payload, &B256::repeat_byte(a), None, &info);
            put_slot(&mut payload, &hash, Some(&slot), &U256::from(9u64));
        }
        // A wrong preimage for a hash seen before is rejected.
        let good = payload.clone();
        put_account(&mut payload, &B256::repeat_byte(4), None, &info);
        put_slot(&mut payload, &hash, Some(&U256::from(3u64)), &U256::from(9u64));
        assert_eq!(run(&state(good, 6)), Ok(3));
        assert!(run(&state(payload, 8)).unwrap_err().contains("does not hash"));
        // And a zero hash with a zero slot.
        let mut payload = Vec::new();
        put_account(&mut payload, &B256::repeat_byte(5), None, &info);
        put_slot(&mut payload, &B256::ZERO, Some(&U256::ZERO), &U256::from(9u64));
        assert!(run(&state(payload, 2)).unwrap_err().contains("does not hash"));
    }

    #[test]
    fn batched_slot_preimage_checks_name_the_bad_slot_and_its_account() {
        // One account with 20 slots (sorted by hash); slot `bad` gets the
        // wrong number.
        let chunk = |bad: Option<usize>| {
            let info = AccountInfo { nonce: 1, balance: U256::from(5u64), code_hash: KECCAK_EMPTY };
            let address = Address::repeat_byte(7);
            let mut payload = Vec::new();
            put_account(&mut payload, &keccak256(address), Some(&address), &info);
            let mut slots: Vec<(B256, U256)> =
                (0..20u64).map(|i| (metisdb::state::hash_slot(&U256::from(i)), U256::from(i))).collect();
            slots.sort();
            for (n, (hash, slot)) in slots.into_iter().enumerate() {
                let slot = if Some(n) == bad { slot + U256::from(100u64) } else { slot };
                put_slot(&mut payload, &hash, Some(&slot), &U256::from(9u64));
            }
            Chunk { frame: Frame::new(ChunkKind::State, 0, b"", payload.len(), 21), offset: 64, payload }
        };
        let mut totals = Totals::default();
        decode_chunk(Path::new("x.snap"), &chunk(None), &mut OrderCheck::default(), &mut totals).unwrap();
        assert_eq!((totals.accounts, totals.slots), (1, 20));
        for bad in [0, 9, 19] {
            let e = run(&chunk(Some(bad))).unwrap_err();
            let account = format!("{:#x}", keccak256(Address::repeat_byte(7)));
            assert!(e.contains(&format!("entry {} at", bad + 1)) && e.contains("preimage does not hash"), "{e}");
            assert!(e.contains(&account), "{e}");
        }
    }
}
