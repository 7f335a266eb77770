//! Snapshot files: one version of the state, streamed, chunked, compressed
//! and checksummed (docs/snapshot-format.md).

pub mod export;
pub mod format;
pub mod load;
pub mod reader;

use crate::error::{Error, Result};
use crate::stream_root::StreamRoot;
use alloy_primitives::B256;
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
/// hashes) and passes it to `f`. Errors name the chunk and the entry's
/// position in its payload.
pub fn for_each_entry(
    path: &Path,
    chunk: &Chunk,
    order: &mut OrderCheck,
    totals: &mut Totals,
    mut f: impl FnMut(Entry) -> Result<()>,
) -> Result<()> {
    let mut d = EntryDecoder::new(&chunk.payload);
    let mut n = 0u32;
    loop {
        let at = d.position();
        let where_ = || format!("{}, entry {n} at payload byte {at}", chunk.place());
        let e = match d.next() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(r) => return Err(Error::bad(path, where_(), r)),
        };
        order.check(&e, chunk.frame.kind).map_err(|r| Error::bad(path, where_(), r))?;
        match &e {
            Entry::Code { .. } => totals.codes += 1,
            Entry::Account { .. } => totals.accounts += 1,
            Entry::Slot { .. } => totals.slots += 1,
        }
        n += 1;
        f(e)?;
    }
    if n != chunk.frame.entries {
        return Err(Error::bad(
            path,
            chunk.place(),
            format!("the chunk holds {n} entries, its frame says {}", chunk.frame.entries),
        ));
    }
    Ok(())
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
/// reads, decompresses and checks the chunks, the calling thread hashes the
/// tries (both mostly keccak: preimages and code hashes, trie nodes).
pub fn verify_file(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifySummary> {
    /// Decoded chunks in flight between the threads.
    const CHUNKS_AHEAD: usize = 4;
    let mut r = SnapshotReader::open(path)?;
    let header = r.header().clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<Entry>, u64, u64)>(CHUNKS_AHEAD);
    let trie_err = |e: metis_trie::BuildError| Error::bad(path, "trie", e.to_string());
    let (decoded, hashed) = std::thread::scope(|s| {
        let decoder = s.spawn(move || -> Result<Option<Footer>> {
            let mut order = OrderCheck::default();
            let mut totals = Totals::default();
            while let Some(chunk) = r.next_chunk()? {
                let mut entries = Vec::with_capacity(chunk.frame.entries as usize);
                for_each_entry(path, &chunk, &mut order, &mut totals, |e| {
                    if !matches!(e, Entry::Code { .. }) {
                        entries.push(e);
                    }
                    Ok(())
                })?;
                if tx.send((entries, r.position().offset, totals.items())).is_err() {
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
            for (entries, offset, items) in rx {
                for e in entries {
                    match e {
                        Entry::Code { .. } => {}
                        Entry::Account { hash, info, .. } => root.account(hash, info, None).map_err(trie_err)?,
                        Entry::Slot { hash, value, .. } => {
                            root.slot(hash, &value).map_err(trie_err)?;
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
