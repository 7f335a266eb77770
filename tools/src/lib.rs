//! Library side of the `metis` command: pieces shared by its subcommands
//! and usable from tests.

pub mod direct_io;
pub mod error;
pub mod import;
pub mod jsonl;
pub mod progress;
pub mod rss;
pub mod snapshot;
pub mod stream_root;
pub mod walk;

pub use error::{Error, Result};

/// Metadata key of the genesis file stored by `metis init`.
pub const GENESIS_KEY: &[u8] = b"chain/genesis";
