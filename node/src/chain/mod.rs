//! The chain: its configuration, headers, the block tables and the head
//! that readers see.

mod config;
mod head;
mod header;
pub mod store;

pub use config::ChainConfig;
pub use head::{Chain, Head};
pub use header::{base_fee_after, build_header, HeaderFields};
