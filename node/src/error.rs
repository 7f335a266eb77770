//! The node's error type.

use alloy_primitives::B256;

/// Result alias of the node.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;

/// Errors of the node (not of single RPC requests: those are JSON-RPC errors).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] metisdb::Error),
    /// The executor failed on a block.
    #[error("executor: {0}")]
    Executor(#[from] metis_executor::ExecutorError),
    /// A stored record does not decode.
    #[error("corrupt {what} record {key}: {reason}")]
    Corrupt {
        /// Which table or record.
        what: &'static str,
        /// Its key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The data dir holds another chain or a database the node cannot continue.
    #[error("data dir does not hold this chain: {0}")]
    ChainMismatch(String),
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// I/O (sockets, signals).
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A block hash that the chain should know is missing.
    #[error("block {0} is missing from the block tables")]
    MissingBlock(String),
    /// The header of a committed block does not hash to the stored hash.
    #[error("block {number} hashes to {computed}, stored as {stored}")]
    HashMismatch {
        /// Block number.
        number: u64,
        /// Computed hash.
        computed: B256,
        /// Stored hash.
        stored: B256,
    },
}

impl NodeError {
    pub(crate) fn corrupt(what: &'static str, key: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        NodeError::Corrupt { what, key: key.to_string(), reason: reason.to_string() }
    }
}
