//! redb: one table of `&[u8] -> &[u8]`, `Durability::Immediate`, default
//! cache size (1 GiB).

use crate::engine::{read_loop, Engine, Kind, ReadTally, Space, WriteTiming};
use crate::measure::dir_bytes;
use crate::workload::Batch;
use crate::Res;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const FILE: &str = "data.redb";

/// redb engine.
pub struct Redb {
    db: Database,
    dir: PathBuf,
}

impl Redb {
    /// Opens (creates) the database file `data.redb` in `dir`.
    pub fn open(dir: &Path) -> Res<Redb> {
        let db = Database::builder().create(dir.join(FILE))?;
        Ok(Redb { db, dir: dir.to_path_buf() })
    }
}

impl Engine for Redb {
    fn kind(&self) -> Kind {
        Kind::Redb
    }

    fn write(&self, batch: &Batch) -> Res<WriteTiming> {
        let t0 = Instant::now();
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut t = txn.open_table(TABLE)?;
            for (k, v) in batch.iter() {
                t.insert(k, v)?;
            }
        }
        let t1 = Instant::now();
        txn.commit()?;
        Ok(WriteTiming { puts_ns: (t1 - t0).as_nanos() as u64, commit_ns: t1.elapsed().as_nanos() as u64 })
    }

    fn read(
        &self,
        keys: &[[u8; 32]],
        sample: usize,
        lat: &mut Vec<u64>,
        lens: Option<&mut Vec<u32>>,
    ) -> Res<ReadTally> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TABLE)?;
        read_loop(keys, sample, lat, lens, |k| Ok(t.get(k)?.map(|g| g.value().len())))
    }

    fn space(&self) -> Res<Space> {
        let (file, _) = dir_bytes(&self.dir, |n| n == FILE);
        let (_, alloc) = dir_bytes(&self.dir, |_| true);
        Ok(Space {
            file_bytes: file,
            alloc_bytes: alloc,
            used_bytes: None,
            what: "length of data.redb",
            detail: Value::Null,
        })
    }

    fn config(&self) -> Value {
        json!({
            "crate": "redb 4.6.0",
            "durability": "Immediate",
            "cache_size": "default (1 GiB)",
        })
    }
}
