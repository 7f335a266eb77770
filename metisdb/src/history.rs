//! Version history: how a snapshot of an older version reads versioned tables.
//!
//! The trees always hold the newest state. Each commit of version `u` also
//! appends, for every key of a versioned table it changed, the value the key
//! had before (at `u - 1`) to the CHANGES table under
//! `u (8 bytes BE) ++ table (1 byte) ++ key`. The value of `key` at an
//! older version `v` is then the old value recorded by the first commit
//! after `v` that changed it, or the newest value if none did. Appends are
//! sequential (cheap), pruning a version deletes one contiguous key range,
//! and the file holds one copy of the state plus the changes of the retained
//! window instead of a page-level copy per version.

use crate::tables::Table;

/// Length of the (version, table) prefix of a change key.
pub const CHANGE_PREFIX_LEN: usize = 9;

/// Key of a change record.
pub fn change_key(version: u64, table: Table, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(CHANGE_PREFIX_LEN + key.len());
    k.extend_from_slice(&version.to_be_bytes());
    k.push(table.0);
    k.extend_from_slice(key);
    k
}

/// Splits a change key into (version, table, key).
pub fn split_change_key(k: &[u8]) -> Option<(u64, Table, &[u8])> {
    if k.len() < CHANGE_PREFIX_LEN {
        return None;
    }
    let v = u64::from_be_bytes(k[..8].try_into().ok()?);
    Some((v, Table(k[8]), &k[CHANGE_PREFIX_LEN..]))
}

/// Encodes an old value: tag 0 = the key was absent, 1 = present with bytes.
pub fn encode_old(old: Option<&[u8]>) -> Vec<u8> {
    match old {
        None => vec![0],
        Some(v) => {
            let mut b = Vec::with_capacity(1 + v.len());
            b.push(1);
            b.extend_from_slice(v);
            b
        }
    }
}

/// Decodes [`encode_old`]; `None` for malformed records.
pub fn decode_old(b: &[u8]) -> Option<Option<&[u8]>> {
    match b.split_first() {
        Some((0, [])) => Some(None),
        Some((1, v)) => Some(Some(v)),
        _ => None,
    }
}

/// Record stored per version in the VERSIONS table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionRecord {
    /// State root of the version.
    pub state_root: [u8; 32],
    /// Commit time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Number of change records the commit wrote.
    pub changes: u64,
    /// Caller-defined bytes (block number and hash for the node).
    pub extra: Vec<u8>,
}

impl VersionRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(48 + self.extra.len());
        b.extend_from_slice(&self.state_root);
        b.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        b.extend_from_slice(&self.changes.to_le_bytes());
        b.extend_from_slice(&self.extra);
        b
    }

    /// Decodes a record; `None` when too short.
    pub fn decode(b: &[u8]) -> Option<VersionRecord> {
        if b.len() < 48 {
            return None;
        }
        Some(VersionRecord {
            state_root: b[..32].try_into().ok()?,
            timestamp_ms: u64::from_le_bytes(b[32..40].try_into().ok()?),
            changes: u64::from_le_bytes(b[40..48].try_into().ok()?),
            extra: b[48..].to_vec(),
        })
    }
}

/// Key of a version record.
pub fn version_key(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}
