//! libmdbx through the `libmdbx` crate: the unnamed main table,
//! `SyncMode::Durable` commits, default page size, `MDBX_NORDAHEAD`.

use crate::engine::{read_loop, Engine, Kind, ReadTally, Space, WriteTiming};
use crate::measure::dir_bytes;
use crate::workload::Batch;
use crate::Res;
use libmdbx::{Database, DatabaseOptions, Mode, NoWriteMap, ReadWriteOptions, SyncMode, WriteFlags};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Upper bound of the map (and file) size.
const MAX_SIZE: isize = 1 << 40;

/// libmdbx engine.
pub struct Mdbx {
    db: Database<NoWriteMap>,
    dir: PathBuf,
}

impl Mdbx {
    /// Opens (creates) the environment in `dir`.
    pub fn open(dir: &Path) -> Res<Mdbx> {
        let db = Database::<NoWriteMap>::open_with_options(
            dir,
            DatabaseOptions {
                mode: Mode::ReadWrite(ReadWriteOptions {
                    sync_mode: SyncMode::Durable,
                    max_size: Some(MAX_SIZE),
                    ..ReadWriteOptions::default()
                }),
                no_rdahead: true,
                max_readers: Some(64),
                ..DatabaseOptions::default()
            },
        )?;
        Ok(Mdbx { db, dir: dir.to_path_buf() })
    }
}

impl Engine for Mdbx {
    fn kind(&self) -> Kind {
        Kind::Mdbx
    }

    fn write(&self, batch: &Batch) -> Res<WriteTiming> {
        let t0 = Instant::now();
        let txn = self.db.begin_rw_txn()?;
        {
            let table = txn.open_table(None)?;
            for (k, v) in batch.iter() {
                txn.put(&table, k, v, WriteFlags::UPSERT)?;
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
        let txn = self.db.begin_ro_txn()?;
        let table = txn.open_table(None)?;
        read_loop(keys, sample, lat, lens, |k| Ok(txn.get::<Cow<'_, [u8]>>(&table, k)?.map(|v| v.len())))
    }

    fn space(&self) -> Res<Space> {
        let (file, _) = dir_bytes(&self.dir, |n| n == "mdbx.dat");
        let (_, alloc) = dir_bytes(&self.dir, |_| true);
        let info = self.db.info()?;
        let stat = self.db.stat()?;
        let free = self.db.freelist()? as u64;
        let ps = stat.page_size() as u64;
        let pages = info.last_pgno() as u64 + 1;
        Ok(Space {
            file_bytes: file,
            alloc_bytes: alloc,
            used_bytes: Some(pages.saturating_sub(free) * ps),
            what: "length of mdbx.dat (mdbx.lck excluded)",
            detail: json!({
                "page_size": ps,
                "last_pgno": info.last_pgno(),
                "freelist_pages": free,
                "depth": stat.depth(),
                "branch_pages": stat.branch_pages(),
                "leaf_pages": stat.leaf_pages(),
                "overflow_pages": stat.overflow_pages(),
                "entries": stat.entries(),
                "geometry_now": info.geometry().current_size(),
                "growth_step": info.geometry().growth_step(),
            }),
        })
    }

    fn config(&self) -> Value {
        json!({
            "crate": "libmdbx 0.9.0 (mdbx-sys 14.4.0)",
            "mode": "NoWriteMap",
            "sync_mode": "Durable",
            "no_rdahead": true,
            "page_size": "default",
            "max_size": MAX_SIZE,
            "table": "unnamed main table",
        })
    }
}
