//! RocksDB through the `rocksdb` crate linked to the system librocksdb:
//! default options, one `WriteBatch` per transaction written with
//! `sync = true` (WAL on).

use crate::engine::{read_loop, Engine, Kind, ReadTally, Space, WriteTiming};
use crate::measure::dir_bytes;
use crate::workload::Batch;
use crate::Res;
use rocksdb::{Options, ReadOptions, WriteBatch, WriteOptions, DB};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// RocksDB engine.
pub struct Rocks {
    db: DB,
    dir: PathBuf,
}

impl Rocks {
    /// Opens (creates) the database in `dir`.
    pub fn open(dir: &Path) -> Res<Rocks> {
        let mut o = Options::default();
        o.create_if_missing(true);
        let db = DB::open(&o, dir)?;
        Ok(Rocks { db, dir: dir.to_path_buf() })
    }

    fn prop(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }
}

impl Engine for Rocks {
    fn kind(&self) -> Kind {
        Kind::Rocks
    }

    fn write(&self, batch: &Batch) -> Res<WriteTiming> {
        let t0 = Instant::now();
        let mut b = WriteBatch::default();
        for (k, v) in batch.iter() {
            b.put(k, v);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let t1 = Instant::now();
        self.db.write_opt(b, &wo)?;
        Ok(WriteTiming { puts_ns: (t1 - t0).as_nanos() as u64, commit_ns: t1.elapsed().as_nanos() as u64 })
    }

    fn read(
        &self,
        keys: &[[u8; 32]],
        sample: usize,
        lat: &mut Vec<u64>,
        lens: Option<&mut Vec<u32>>,
    ) -> Res<ReadTally> {
        let ro = ReadOptions::default();
        read_loop(keys, sample, lat, lens, |k| Ok(self.db.get_pinned_opt(k, &ro)?.map(|v| v.len())))
    }

    fn space(&self) -> Res<Space> {
        let (file, _) = dir_bytes(&self.dir, |n| n.ends_with(".sst") || n.ends_with(".log"));
        let (_, alloc) = dir_bytes(&self.dir, |_| true);
        let (sst, _) = dir_bytes(&self.dir, |n| n.ends_with(".sst"));
        Ok(Space {
            file_bytes: file,
            alloc_bytes: alloc,
            used_bytes: None,
            what: "*.sst + *.log (WAL) files",
            detail: json!({
                "sst_bytes": sst,
                "wal_bytes": file - sst,
                "live_sst_files_size": self.prop("rocksdb.live-sst-files-size"),
                "estimate_live_data_size": self.prop("rocksdb.estimate-live-data-size"),
                "num_files_l0": self.prop("rocksdb.num-files-at-level0"),
                "memtable_bytes": self.prop("rocksdb.cur-size-all-mem-tables"),
                "block_cache_usage": self.prop("rocksdb.block-cache-usage"),
                "table_readers_mem": self.prop("rocksdb.estimate-table-readers-mem"),
            }),
        })
    }

    fn settle(&self) -> f64 {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(600) {
            let busy = self.prop("rocksdb.num-running-compactions")
                + self.prop("rocksdb.num-running-flushes")
                + self.prop("rocksdb.compaction-pending")
                + self.prop("rocksdb.mem-table-flush-pending");
            if busy == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        t0.elapsed().as_secs_f64()
    }

    fn profile(&self) -> Value {
        json!({
            "gauges": {
                "num_files_l0": self.prop("rocksdb.num-files-at-level0"),
                "live_sst_bytes": self.prop("rocksdb.live-sst-files-size"),
            }
        })
    }

    fn config(&self) -> Value {
        json!({
            "crate": "rocksdb 0.25.0, system librocksdb (Debian librocksdb-dev)",
            "options": "defaults + create_if_missing",
            "write": "WriteBatch per transaction, WriteOptions::set_sync(true), WAL on",
            "read": "get_pinned_opt, default ReadOptions",
        })
    }
}
