//! Opening, creating and locking a database; the state shared by the writer
//! and the readers of one handle.

use crate::alloc::{self, Allocator};
use crate::btree::TreeRoot;
use crate::error::{Error, Result};
use crate::meta::{self, Meta, MetaError, MAX_TABLES};
use crate::metrics::Metrics;
use crate::mmap::{Mapping, MIN_RESERVE};
use crate::page::{self, RunKind};
use crate::readers::Readers;
use crate::storage::{self, Backend, Storage};
use arc_swap::ArcSwap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Name of the data file inside the data dir.
pub const DATA_FILE: &str = "metis.db";
/// Name of the lock file inside the data dir.
pub const LOCK_FILE: &str = "LOCK";
/// Default number of retained versions.
pub const DEFAULT_RETENTION: u32 = 256;

/// When a commit is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A commit that returned is on stable storage.
    #[default]
    Sync,
    /// Commits reach stable storage at the next flush point (every
    /// `flush_interval`, on `Db::flush` and on close). A crash may lose the
    /// versions since the last flush point, never corrupt the file.
    Async,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(Durability::Sync),
            "async" => Ok(Durability::Async),
            _ => Err(format!("unknown durability {s:?} (sync, async)")),
        }
    }
}

/// Wraps the storage backend (used by tests to inject faults).
pub type StorageWrapper = Arc<dyn Fn(Box<dyn Storage>) -> std::io::Result<Box<dyn Storage>> + Send + Sync>;

/// Options for opening a database.
#[derive(Clone)]
pub struct Options {
    /// Page size for a new file (existing files keep theirs).
    pub page_size: usize,
    /// Versions of history to retain; `None` keeps the file's setting.
    pub retention: Option<u32>,
    /// Commit durability.
    pub durability: Durability,
    /// In async mode, the longest time between flush points.
    pub flush_interval: Duration,
    /// Storage backend.
    pub backend: Backend,
    /// Create the data dir and file if missing.
    pub create: bool,
    /// Optional wrapper around the backend.
    pub wrap_storage: Option<StorageWrapper>,
    /// Open a file of an older format version (down to
    /// [`meta::OLDEST_READABLE_FORMAT`]) for reading, to export its state;
    /// every write transaction on it is refused.
    pub read_older_format: bool,
    /// Write pages around the page cache (`O_DIRECT`) where the backend and
    /// the file system allow it (io_uring; otherwise writes go through the
    /// cache as usual). For bulk loads, whose pages are not read back soon:
    /// the kernel no longer copies every written page into the page cache.
    /// Reads of those pages go to the disk, so a node's database keeps the
    /// default.
    pub direct_writes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 4096,
            retention: None,
            durability: Durability::Sync,
            flush_interval: Duration::from_secs(1),
            backend: Backend::Auto,
            create: true,
            wrap_storage: None,
            read_older_format: false,
            direct_writes: false,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("page_size", &self.page_size)
            .field("retention", &self.retention)
            .field("durability", &self.durability)
            .field("backend", &self.backend)
            .field("direct_writes", &self.direct_writes)
            .finish_non_exhaustive()
    }
}

/// The newest committed state, as readers see it.
pub(crate) struct Committed {
    /// Commit sequence number of this state: 1 at open, +1 per commit.
    /// Reader pins and the page-reuse gate use it (version labels may jump
    /// or restart at an import; the sequence never does).
    pub seq: u64,
    /// Latest version (`None` before the first commit).
    pub version: Option<u64>,
    /// Oldest retained version.
    pub oldest: u64,
    pub tables: [TreeRoot; MAX_TABLES],
    pub page_count: u64,
    pub state_root: [u8; 32],
    pub map: Arc<Mapping>,
}

impl Committed {
    pub fn latest(&self) -> Option<u64> {
        self.version
    }
}

/// Writer-only state, behind the writer mutex.
pub(crate) struct WriterState {
    pub alloc: Allocator,
    pub sequence: u64,
    pub next_slot: usize,
    /// Sequence number of the newest state whose meta is durable.
    pub durable_seq: u64,
    /// Version of that state.
    pub durable_version: Option<u64>,
    pub file_len: u64,
    /// The file grew since the last full sync.
    pub grew: bool,
    /// Free-list run of the newest durable meta: (first page, pages).
    pub blob: Option<(u64, u64)>,
    pub last_durable: Instant,
    pub poisoned: Option<String>,
    pub retention: u32,
    /// The buffer of the last change-set run written, kept for the next
    /// commit's: a change set is megabytes, and a fresh buffer costs a
    /// page fault per 4 KiB, twice (encoding, then copying into the run).
    pub spare_run: Vec<u8>,
    /// Page buffers of the last commit, for the next one's dirty pages
    /// ([`crate::btree::write::Dirty::with_spare_pages`]).
    pub spare_pages: Vec<Box<[u8]>>,
}

pub(crate) struct Inner {
    pub path: PathBuf,
    pub storage: Box<dyn Storage>,
    pub page_size: usize,
    pub salt: u64,
    pub first_page: u64,
    pub committed: ArcSwap<Committed>,
    /// Mirrors `committed.seq` for the reader pin protocol.
    pub latest_seq: AtomicU64,
    pub readers: Readers,
    pub writer: Mutex<WriterState>,
    pub options: Options,
    pub metrics: Metrics,
    _lock: File,
    /// The file's format version when older than this build's (opened
    /// with `read_older_format`: reads only).
    pub older_format: Option<u32>,
    /// Bytes the kernel reads ahead of sequential reads of the file, if
    /// known ([`crate::storage::device_read_ahead`], read once at open).
    pub device_read_ahead: Option<u64>,
}

/// A MetisDB database handle. Cheap to clone; all clones share one writer
/// lock and one reader table.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))?;
    // When the holder is this very process, the lock may outlive the handle
    // that took it for a moment: a child that another thread is starting
    // shares the lock's open file until it runs its program (a lock is held
    // as long as any copy of the descriptor is open). Wait that out, for at
    // most a second; a handle of this process that is really open still
    // gets the error.
    const OWN_HOLDER_RETRIES: u32 = 100;
    let mut retries = 0;
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut s = String::new();
                let _ = f.read_to_string(&mut s);
                let _ = f.rewind();
                let pid = s.trim().parse::<u32>().ok();
                if pid == Some(std::process::id()) && retries < OWN_HOLDER_RETRIES {
                    retries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                let holder = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                return Err(Error::Locked { path, holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
    }
    f.set_len(0).map_err(|e| Error::io("truncate lock file", &path, e))?;
    let _ = write!(f, "{}", std::process::id());
    Ok(f)
}

fn random_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// Writes a new, empty database file atomically: temp file, fsync, rename, dir fsync.
fn create_file(path: &Path, page_size: usize, retention: u32) -> Result<()> {
    if !page_size.is_power_of_two() || !(4096..=32768).contains(&page_size) {
        return Err(Error::InvalidOption(format!("page size {page_size} is not a power of two in 4096..=32768")));
    }
    let tmp = path.with_extension("db.tmp");
    let first = meta::first_data_page(page_size);
    let m = Meta {
        format: meta::FORMAT_VERSION,
        page_size: page_size as u32,
        salt: random_salt(),
        sequence: 1,
        version: None,
        oldest_version: 0,
        page_count: first,
        freelist_page: 0,
        freelist_len: 0,
        retention,
        state_root: [0; 32],
        tables: [TreeRoot::default(); MAX_TABLES],
    };
    let mut img = vec![0u8; first as usize * page_size];
    img[..meta::META_LEN].copy_from_slice(&m.encode(0));
    let mut m1 = m.clone();
    m1.sequence = 0;
    let at = meta::META_OFFSETS[1] as usize;
    img[at..at + meta::META_LEN].copy_from_slice(&m1.encode(1));
    let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(&img).map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
    storage::sync_dir_of(path).map_err(|e| Error::io("fsync dir", path, e))?;
    Ok(())
}

/// Reads both meta slots and picks the one to open.
fn choose_meta(storage: &dyn Storage, path: &Path, file_len: u64) -> Result<(Meta, usize)> {
    if file_len == 0 {
        return Err(Error::BadFile { path: path.into(), reason: "the file is empty".into() });
    }
    let mut found: Vec<(Meta, usize)> = Vec::new();
    let mut errors: Vec<(usize, MetaError)> = Vec::new();
    for (slot, off) in meta::META_OFFSETS.iter().enumerate() {
        let mut buf = vec![0u8; meta::META_LEN];
        let n = storage.read_at(&mut buf, *off).map_err(|e| Error::io("read meta", path, e))?;
        buf.truncate(n);
        match Meta::decode(&buf, slot) {
            Ok(m) => {
                let need = m.page_count * m.page_size as u64;
                if need > file_len {
                    errors.push((slot, MetaError::Invalid("its pages extend past the end of the file")));
                } else {
                    found.push((m, slot));
                }
            }
            Err(e) => errors.push((slot, e)),
        }
    }
    if let Some(best) = found.into_iter().max_by_key(|(m, _)| m.sequence) {
        return Ok(best);
    }
    if errors.iter().all(|(_, e)| *e == MetaError::ForeignMagic) {
        return Err(Error::NotMetisDb { path: path.into() });
    }
    if let Some((_, MetaError::OtherFormat(v))) = errors.iter().find(|(_, e)| matches!(e, MetaError::OtherFormat(_))) {
        return Err(Error::UnsupportedFormat { path: path.into(), found: *v, supported: meta::FORMAT_VERSION });
    }
    let reason = errors.iter().map(|(s, e)| format!("meta {s}: {e}")).collect::<Vec<_>>().join("; ");
    Err(Error::BadFile { path: path.into(), reason: format!("no valid meta page ({reason})") })
}

pub(crate) fn reserve_for(pages: u64, page_size: usize) -> u64 {
    let bytes = (pages * page_size as u64).saturating_mul(2).max(MIN_RESERVE);
    bytes.div_ceil(page_size as u64) * page_size as u64
}

impl Db {
    /// Opens (or creates) the database in data dir `dir`.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        let dir = dir.as_ref();
        if options.create {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
        } else if !dir.is_dir() {
            return Err(Error::io("open", dir, std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        if options.retention == Some(0) {
            return Err(Error::InvalidOption("retention must keep at least one version".into()));
        }
        let lock = lock_dir(dir)?;
        let path = dir.join(DATA_FILE);
        if !path.exists() {
            if !options.create {
                return Err(Error::io("open", &path, std::io::Error::from(std::io::ErrorKind::NotFound)));
            }
            create_file(&path, options.page_size, options.retention.unwrap_or(DEFAULT_RETENTION))?;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| Error::io("open", &path, e))?;
        let mut storage = storage::open_backend(options.backend, file, &path, options.direct_writes)
            .map_err(|e| Error::io("open storage", &path, e))?;
        if let Some(wrap) = &options.wrap_storage {
            storage = wrap(storage).map_err(|e| Error::io("wrap storage", &path, e))?;
        }
        let file_len = storage.len().map_err(|e| Error::io("stat", &path, e))?;
        let (m, slot) = choose_meta(storage.as_ref(), &path, file_len)?;
        let older_format = (m.format != meta::FORMAT_VERSION).then_some(m.format);
        if let (Some(found), false) = (older_format, options.read_older_format) {
            return Err(Error::UnsupportedFormat { path, found, supported: meta::FORMAT_VERSION });
        }
        let page_size = m.page_size as usize;
        let map = Mapping::new(storage.file(), reserve_for(m.page_count, page_size), page_size)
            .map_err(|e| Error::io("mmap", &path, e))?;
        let first_page = meta::first_data_page(page_size);
        let free = load_free_list(&map, &m, &path)?;
        let committed = Committed {
            seq: 1,
            version: m.version,
            oldest: m.oldest_version,
            tables: m.tables,
            page_count: m.page_count,
            state_root: m.state_root,
            map: Arc::new(map),
        };
        let blob =
            (m.freelist_page != 0).then(|| (m.freelist_page, page::pages_for_run(m.freelist_len as usize, page_size)));
        let writer = WriterState {
            alloc: Allocator::new(m.page_count, first_page, free),
            sequence: m.sequence,
            next_slot: 1 - slot,
            durable_seq: 1,
            durable_version: m.version,
            file_len,
            grew: false,
            blob,
            last_durable: Instant::now(),
            poisoned: None,
            retention: options.retention.unwrap_or(m.retention),
            spare_run: Vec::new(),
            spare_pages: Vec::new(),
        };
        let device_read_ahead = crate::storage::device_read_ahead(storage.file());
        Ok(Db {
            inner: Arc::new(Inner {
                path,
                storage,
                page_size,
                salt: m.salt,
                first_page,
                committed: ArcSwap::from_pointee(committed),
                latest_seq: AtomicU64::new(1),
                readers: Readers::default(),
                writer: Mutex::new(writer),
                options,
                metrics: Metrics::default(),
                _lock: lock,
                older_format,
                device_read_ahead,
            }),
        })
    }

    /// Path of the data file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Page size of the file.
    pub fn page_size(&self) -> usize {
        self.inner.page_size
    }

    /// Latest committed version (`None` before the first commit).
    pub fn latest_version(&self) -> Option<u64> {
        self.inner.committed.load().latest()
    }

    /// Oldest version a snapshot can open.
    pub fn oldest_version(&self) -> u64 {
        self.inner.committed.load().oldest
    }

    /// Format version of the file (older than this build's only when
    /// opened with [`Options::read_older_format`]).
    pub fn format_version(&self) -> u32 {
        self.inner.older_format.unwrap_or(meta::FORMAT_VERSION)
    }

    /// State root of the latest version.
    pub fn state_root(&self) -> [u8; 32] {
        self.inner.committed.load().state_root
    }

    /// Name of the storage backend in use.
    pub fn backend_name(&self) -> &'static str {
        self.inner.storage.name()
    }

    /// Counters.
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Whether the handle refuses writes after an I/O failure.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.writer.lock().ok().and_then(|w| w.poisoned.clone())
    }
}

fn load_free_list(map: &Mapping, m: &Meta, path: &Path) -> Result<Vec<u64>> {
    if m.freelist_page == 0 {
        return Ok(Vec::new());
    }
    let ps = m.page_size as usize;
    let corrupt =
        |r: &str| Error::Corrupt { path: path.into(), page: m.freelist_page, reason: format!("free list: {r}") };
    let pages = page::pages_for_run(m.freelist_len as usize, ps);
    if m.freelist_page.checked_add(pages).is_none_or(|end| end > m.page_count) {
        return Err(corrupt("run extends past the file"));
    }
    let bytes = map.pages(m.freelist_page, pages).ok_or_else(|| corrupt("outside the mapping"))?;
    if !page::verify_checksum(bytes, m.salt, m.freelist_page) {
        return Err(corrupt("checksum mismatch"));
    }
    if page::kind(bytes) != Some(page::PageKind::Run)
        || bytes[9] != RunKind::FreeList as u8
        || page::run_pages(bytes) as u64 != pages
        || page::get_u64(bytes, page::RUN_LEN_OFFSET) != m.freelist_len
    {
        return Err(corrupt("header does not match the meta page"));
    }
    let payload = &bytes[page::RUN_PAYLOAD_OFFSET..page::RUN_PAYLOAD_OFFSET + m.freelist_len as usize];
    let free = alloc::decode_pages(payload, meta::first_data_page(ps), m.page_count).map_err(corrupt)?;
    map.set_verified(m.freelist_page, pages);
    Ok(free)
}
