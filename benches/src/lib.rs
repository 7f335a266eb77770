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

/// Parses a count for the command lines: `10000`, `10_000`, `10k`, `1M`, `2.5m`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (&t[..], 1),
    };
    num.parse::<f64>().map(|x| (x * mul as f64).round() as u64).map_err(|e| format!("{s:?}: {e}"))
}
