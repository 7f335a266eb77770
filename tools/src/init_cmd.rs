//! `metis init --genesis FILE --datadir DIR`: a go-ethereum genesis file
//! becomes version 0. The state root is computed, never read from the file;
//! a stated root that differs fails the command. A failed init leaves the
//! data dir as it was.

use alloy_primitives::B256;
use clap::Args;
use metisdb::state::genesis;
use metisdb::tables::METADATA;
use metisdb::{Db, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Metadata key of the genesis file as given.
pub const GENESIS_KEY: &[u8] = b"chain/genesis";

/// Arguments of `metis init`.
#[derive(Args)]
pub struct InitArgs {
    /// go-ethereum genesis.json.
    #[arg(long)]
    genesis: PathBuf,
    /// Data directory to create the database in.
    #[arg(long, default_value = "./data")]
    datadir: PathBuf,
}

/// What existed before, so that a failure can put the data dir back.
struct Undo {
    dir: PathBuf,
    created_dir: bool,
    created_files: Vec<PathBuf>,
}

impl Undo {
    fn record(dir: &Path) -> Undo {
        let created_files =
            [metisdb::DATA_FILE, metisdb::LOCK_FILE].iter().map(|f| dir.join(f)).filter(|p| !p.exists()).collect();
        Undo { dir: dir.to_path_buf(), created_dir: !dir.exists(), created_files }
    }

    fn run(&self) {
        if self.created_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            for f in &self.created_files {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// Runs `metis init`.
pub fn run(a: InitArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&a.genesis).map_err(|e| format!("cannot read {}: {e}", a.genesis.display()))?;
    let g = genesis::parse(&bytes).map_err(|e| format!("{}: {e}", a.genesis.display()))?;
    let undo = Undo::record(&a.datadir);
    match write(&a, &g, &bytes) {
        Ok((root, n)) => {
            println!("version 0");
            println!("state_root {root:#x}");
            println!("accounts {n}");
            if let Some(id) = g.chain_id {
                println!("chain_id {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            undo.run();
            Err(e)
        }
    }
}

fn write(a: &InitArgs, g: &genesis::Genesis, raw: &[u8]) -> Result<(B256, usize)> {
    let db = Db::open(&a.datadir, Options::default())?;
    if let Some(v) = db.latest_version() {
        return Err(format!(
            "{} already holds a database at version {v} (state root 0x{}); init only creates new ones",
            a.datadir.display(),
            hex::encode(db.state_root())
        )
        .into());
    }
    let mut w = db.begin_state()?;
    g.write(&mut w)?;
    w.txn_mut().put(METADATA, GENESIS_KEY, raw)?;
    let root = w.compute_root()?;
    if let Some(stated) = g.stated_root {
        if stated != root {
            return Err(format!("the genesis file states root {stated:#x}, but its alloc hashes to {root:#x}").into());
        }
    }
    let (v, committed) = w.commit(Vec::new())?;
    debug_assert_eq!((v, committed), (0, root));
    Ok((root, g.alloc.len()))
}
