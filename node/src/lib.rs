//! The Metis dev node: a mempool, block production with the Block-STM
//! executor on MetisDB (one version per block), JSON-RPC over HTTP and
//! WebSocket, Prometheus metrics. See README.md.

pub mod chain;
pub mod core;
pub mod dev;
pub mod error;
pub mod loadgen;
pub mod mempool;
pub mod metrics;
mod metrics_http;
pub mod node;
pub mod producer;
pub mod rpc;
pub mod txs;

pub use error::{NodeError, Result};
pub use node::{Node, NodeConfig};
