//! The error type of the library side of the `metis` tools: every variant
//! names what failed and where (file, byte offset, chunk, account).

use std::path::PathBuf;

/// Result of the tools library.
pub type Result<T> = std::result::Result<T, Error>;

/// Errors of snapshot, state-dump and import operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file does not have the expected contents.
    #[error("{}: {where_}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// Where in it ("header", "chunk 12 at byte 4096", "line 7").
        where_: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is a snapshot of a newer format than this build reads.
    #[error("{}: snapshot format version {found} is newer than the newest this build reads ({supported}); upgrade metis", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Newest version supported.
        supported: u32,
    },
    /// The recomputed state root differs from the one the input states.
    #[error("state root mismatch: {what} states {expected:#x}, the state recomputed from the entries hashes to {computed:#x}")]
    RootMismatch {
        /// Which input stated the root.
        what: String,
        /// The stated root.
        expected: alloy_primitives::B256,
        /// The recomputed root.
        computed: alloy_primitives::B256,
    },
    /// The database engine failed.
    #[error("{context}: {source}")]
    Db {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: Box<metisdb::Error>,
    },
    /// The request cannot be carried out as asked (existing database, missing
    /// preimages, no staged import to resume...).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }

    /// A format error in `path` at `where_`.
    pub fn bad(path: impl Into<PathBuf>, where_: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::BadFile { path: path.into(), where_: where_.into(), reason: reason.into() }
    }
}

/// Adds context to engine errors.
pub trait DbContext<T> {
    /// Wraps an engine error with what was being done.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, metisdb::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Db { context: context(), source: Box::new(source) })
    }
}
