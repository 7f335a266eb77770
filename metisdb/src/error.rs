//! The one error type of the engine. Every variant carries enough context
//! (file, page, table, version) for an operator to act on it.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by MetisDB. Bad input and bad files are errors, never panics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// What was attempted (write, fdatasync, set_len, ...).
        op: &'static str,
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A page failed its checksum or structural checks.
    #[error("corrupt page {page} in {path}: {reason}")]
    Corrupt {
        /// Data file.
        path: PathBuf,
        /// Page number within the file.
        page: u64,
        /// What was wrong.
        reason: String,
    },

    /// The file is not usable as a whole (both meta pages bad, truncated, empty).
    #[error("{path} is not a usable MetisDB file: {reason}")]
    BadFile {
        /// Data file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// The file does not carry MetisDB's magic number.
    #[error("{path} is not a MetisDB file (foreign magic in both meta pages)")]
    NotMetisDb {
        /// Data file.
        path: PathBuf,
    },

    /// The file was written in another format version (older or newer),
    /// or a write was attempted on an older file opened for reading.
    #[error(
        "{path} has format version {found}; this build writes version {supported} only (move the state with \
         `metis snapshot export`, which reads older versions too, then `metis snapshot import`)"
    )]
    UnsupportedFormat {
        /// Data file.
        path: PathBuf,
        /// Format version found in the meta page.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },

    /// Another process (or another handle in this process) holds the data dir.
    #[error("data dir {path} is locked by another process{holder}")]
    Locked {
        /// Lock file.
        path: PathBuf,
        /// Description of the holder, if known (" (pid N)").
        holder: String,
    },

    /// A previous I/O failure left the page cache in an unknown state; the
    /// handle refuses writes until the database is reopened.
    #[error("database handle is poisoned by an earlier I/O failure ({cause}); reopen the database")]
    Poisoned {
        /// The failure that poisoned the handle.
        cause: String,
    },

    /// The requested version is not (or no longer) retained.
    #[error("version {requested} is not retained (retained: {retained})")]
    VersionNotRetained {
        /// Version asked for.
        requested: u64,
        /// Human-readable retained range.
        retained: String,
    },

    /// A key or value violates a limit.
    #[error("{what} is {len} bytes, limit is {limit}")]
    TooLarge {
        /// "key" or "value".
        what: &'static str,
        /// Actual length.
        len: usize,
        /// The limit.
        limit: usize,
    },

    /// A record decoded to nonsense (its page passed its checksum: a bug or a foreign writer).
    #[error("bad {table} record at key {key}: {reason}")]
    BadRecord {
        /// Table name.
        table: &'static str,
        /// The key, hex.
        key: String,
        /// What was wrong.
        reason: String,
    },

    /// The state trie computation failed.
    #[error("state trie: {0}")]
    Trie(#[from] metis_trie::TrieError),

    /// The state is inconsistent with the Ethereum model (caller error).
    #[error("invalid state: {0}")]
    InvalidState(String),

    /// A configuration value is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// The database reached a hard limit (file size, reader slots, ...).
    #[error("limit reached: {0}")]
    Limit(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// True when the error reports damaged data (as opposed to I/O, limits or misuse).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::BadFile { .. } | Error::NotMetisDb { .. })
    }
}
