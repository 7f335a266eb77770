//! Storage-engine benchmarks: the same workloads on MetisDB and on peer
//! engines (libmdbx, redb, RocksDB, with the `peers` feature), run side by
//! side by the `metis-bench-engines` binary. See `RESULTS.md`.

#![warn(missing_docs)]

pub mod engine;
pub mod measure;
#[cfg(feature = "peers")]
pub mod peers;
pub mod report;
pub mod runner;
pub mod workload;

/// Errors of the harness.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Sort position of an engine name (MetisDB, libmdbx, redb, RocksDB).
pub fn engine_order(name: &str) -> usize {
    engine::Kind::ALL.iter().position(|k| k.name() == name).unwrap_or(usize::MAX)
}
