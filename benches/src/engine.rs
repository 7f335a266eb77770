//! The engine interface of the harness and the MetisDB engine.

use crate::measure::{dir_bytes, ticks};
use crate::workload::Batch;
use crate::Res;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Engines the harness knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// MetisDB.
    Metis,
    /// libmdbx.
    Mdbx,
    /// redb.
    Redb,
    /// RocksDB.
    Rocks,
}

impl Kind {
    /// Every engine, MetisDB first.
    pub const ALL: [Kind; 4] = [Kind::Metis, Kind::Mdbx, Kind::Redb, Kind::Rocks];

    /// Short name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Metis => "metisdb",
            Kind::Mdbx => "mdbx",
            Kind::Redb => "redb",
            Kind::Rocks => "rocksdb",
        }
    }

    /// Whether this build can run the engine (peers need the `peers` feature).
    pub fn available(self) -> bool {
        self == Kind::Metis || cfg!(feature = "peers")
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "metisdb" | "metis" => Ok(Kind::Metis),
            "mdbx" | "libmdbx" => Ok(Kind::Mdbx),
            "redb" => Ok(Kind::Redb),
            "rocksdb" | "rocks" => Ok(Kind::Rocks),
            o => Err(format!("unknown engine {o:?} (metisdb, mdbx, redb, rocksdb)")),
        }
    }
}

/// Time spent in one durable transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteTiming {
    /// Begin plus all puts (or building the write batch), in ns.
    pub puts_ns: u64,
    /// The commit call (durable when it returns), in ns.
    pub commit_ns: u64,
}

impl WriteTiming {
    /// Whole transaction, in ns.
    pub fn total_ns(&self) -> u64 {
        self.puts_ns + self.commit_ns
    }
}

/// What a run of point reads found.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadTally {
    /// Keys found.
    pub found: u64,
    /// Keys missing.
    pub missing: u64,
    /// Sum of value lengths (keeps the reads observable).
    pub bytes: u64,
}

/// How much disk an engine uses.
#[derive(Clone, Debug, Default)]
pub struct Space {
    /// The engine's headline figure: apparent length of its data files
    /// (see `what`).
    pub file_bytes: u64,
    /// Blocks allocated on the file system (`st_blocks * 512`) for every
    /// file in the engine's directory.
    pub alloc_bytes: u64,
    /// Bytes of pages holding live data, where the engine can tell.
    pub used_bytes: Option<u64>,
    /// How `file_bytes` is measured.
    pub what: &'static str,
    /// Engine details.
    pub detail: Value,
}

/// One storage engine under test. Every method may be called from any
/// thread; `read` is called concurrently by the reader threads.
pub trait Engine: Sync {
    /// Short name.
    fn kind(&self) -> Kind;
    /// Writes `batch` in one durable transaction.
    fn write(&self, batch: &Batch) -> Res<WriteTiming>;
    /// Point-reads `keys` in order from one read view; every `sample`-th
    /// read (0 = none) appends its latency in clock ticks to `lat`; `lens`,
    /// when given, receives each value's length (`u32::MAX` if missing).
    fn read(&self, keys: &[[u8; 32]], sample: usize, lat: &mut Vec<u64>, lens: Option<&mut Vec<u32>>)
        -> Res<ReadTally>;
    /// Disk usage now.
    fn space(&self) -> Res<Space>;
    /// Engine figures: `{"counters": {..}}` (diffed between the start and
    /// the end of a phase) and `{"gauges": {..}}` (taken at the end).
    fn profile(&self) -> Value {
        Value::Null
    }
    /// Waits for background work (compactions) to finish; returns seconds waited.
    fn settle(&self) -> f64 {
        0.0
    }
    /// Settings used, for the results.
    fn config(&self) -> Value;
}

/// The shared read loop: `get` returns the value length of a key.
#[inline(always)]
pub fn read_loop<F>(
    keys: &[[u8; 32]],
    sample: usize,
    lat: &mut Vec<u64>,
    mut lens: Option<&mut Vec<u32>>,
    mut get: F,
) -> Res<ReadTally>
where
    F: FnMut(&[u8]) -> Res<Option<usize>>,
{
    let mut t = ReadTally::default();
    for (n, k) in keys.iter().enumerate() {
        let r = if sample != 0 && n % sample == 0 {
            let t0 = ticks();
            let r = get(k)?;
            lat.push(ticks().wrapping_sub(t0));
            r
        } else {
            get(k)?
        };
        match r {
            Some(len) => {
                t.found += 1;
                t.bytes += len as u64;
            }
            None => t.missing += 1,
        }
        if let Some(l) = lens.as_deref_mut() {
            l.push(r.map_or(u32::MAX, |x| x as u32));
        }
    }
    Ok(t)
}

/// Settings shared by the engines.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// MetisDB versions retained.
    pub retention: u32,
}

/// Opens (creating if needed) engine `kind` in `dir`.
pub fn open(kind: Kind, dir: &Path, opts: &EngineOptions) -> Res<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    match kind {
        Kind::Metis => Ok(Box::new(Metis::open(dir, opts)?)),
        #[cfg(feature = "peers")]
        Kind::Mdbx => Ok(Box::new(crate::peers::mdbx::Mdbx::open(dir)?)),
        #[cfg(feature = "peers")]
        Kind::Redb => Ok(Box::new(crate::peers::redb::Redb::open(dir)?)),
        #[cfg(feature = "peers")]
        Kind::Rocks => Ok(Box::new(crate::peers::rocks::Rocks::open(dir)?)),
        #[cfg(not(feature = "peers"))]
        k => Err(format!(
            "engine {} needs the `peers` feature (cargo build -p metis-benches --features peers)",
            k.name()
        )
        .into()),
    }
}

/// MetisDB: `tables::ACCOUNTS` (a versioned table), `Durability::Sync`.
pub struct Metis {
    db: metisdb::Db,
    dir: PathBuf,
    retention: u32,
}

impl Metis {
    /// Opens the database in `dir`.
    pub fn open(dir: &Path, opts: &EngineOptions) -> Res<Metis> {
        let db = metisdb::Db::open(
            dir,
            metisdb::Options {
                retention: Some(opts.retention),
                durability: metisdb::Durability::Sync,
                ..metisdb::Options::default()
            },
        )?;
        Ok(Metis { db, dir: dir.to_path_buf(), retention: opts.retention })
    }

    /// The handle (for tests).
    pub fn db(&self) -> &metisdb::Db {
        &self.db
    }
}

const METIS_TABLE: metisdb::Table = metisdb::tables::ACCOUNTS;

impl Engine for Metis {
    fn kind(&self) -> Kind {
        Kind::Metis
    }

    fn write(&self, batch: &Batch) -> Res<WriteTiming> {
        let t0 = Instant::now();
        let mut txn = self.db.begin_write()?;
        for (k, v) in batch.iter() {
            txn.put(METIS_TABLE, k, v)?;
        }
        let t1 = Instant::now();
        txn.commit(metisdb::CommitInfo::default())?;
        Ok(WriteTiming { puts_ns: (t1 - t0).as_nanos() as u64, commit_ns: t1.elapsed().as_nanos() as u64 })
    }

    fn read(
        &self,
        keys: &[[u8; 32]],
        sample: usize,
        lat: &mut Vec<u64>,
        lens: Option<&mut Vec<u32>>,
    ) -> Res<ReadTally> {
        let snap = self.db.snapshot(None)?;
        read_loop(keys, sample, lat, lens, |k| Ok(snap.get(METIS_TABLE, k)?.map(|v| v.len())))
    }

    fn space(&self) -> Res<Space> {
        let st = self.db.stats()?;
        let (_, alloc) = dir_bytes(&self.dir, |_| true);
        let ps = st.page_size as u64;
        let entries = |name: &str| st.tables.iter().find(|t| t.name == name).map_or(0, |t| t.entries);
        let depth = |name: &str| st.tables.iter().find(|t| t.name == name).map_or(0, |t| t.depth);
        Ok(Space {
            file_bytes: st.file_len,
            alloc_bytes: alloc,
            used_bytes: Some(st.used_pages() * ps),
            what: "length of metis.db (Stats::file_len)",
            detail: json!({
                "page_size": st.page_size,
                "page_count": st.page_count,
                "free_pages": st.free_pages,
                "quarantined_pages": st.quarantined_pages,
                "free_extents": st.free_extents,
                "largest_free_extent": st.largest_free_extent,
                "latest_version": st.latest_version,
                "oldest_version": st.oldest_version,
                "accounts_entries": entries("accounts"),
                "accounts_depth": depth("accounts"),
                "versions_entries": entries("versions"),
                "backend": st.backend,
            }),
        })
    }

    fn profile(&self) -> Value {
        let m = self.db.metrics();
        json!({ "counters": {
            "commits": m.commits,
            "durable_points": m.durable_points,
            "pages_written": m.pages_written,
            "bytes_written": m.bytes_written,
            "commit_prepare_ms": m.commit_prepare_ns as f64 / 1e6,
            "commit_write_ms": m.commit_write_ns as f64 / 1e6,
            "commit_sync_ms": m.commit_sync_ns as f64 / 1e6,
            "commit_meta_ms": m.commit_meta_ns as f64 / 1e6,
            "pages_verified": m.pages_verified,
            "reads": m.reads,
        }})
    }

    fn config(&self) -> Value {
        json!({
            "table": "accounts (versioned)",
            "durability": "Sync",
            "retention": self.retention,
            "page_size": self.db.page_size(),
            "backend": self.db.backend_name(),
        })
    }
}
