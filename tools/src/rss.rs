//! Resident memory: the peak (VmHWM) for reports, and a way to drop the
//! pages of a database's read mapping from this process's resident set
//! after a full scan (they stay in the page cache; touching them again
//! faults them back in from there).

use std::path::Path;

/// Peak resident set size of this process in KiB (VmHWM), if readable.
pub fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// Current resident set size of this process in KiB (VmRSS), if readable.
pub fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// File-backed resident memory ([`Prefetch`] and [`RssTrim`] keep a
/// scan's mapped data-file pages to about this much).
pub const FILE_RSS_LIMIT_KIB: u64 = 128 << 10;

fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Drops the resident pages of every mapping of `file` in this process.
///
/// A sequential scan through a memory map leaves every page it touched in
/// the resident set, so a full read of a large database would show the
/// database's size as RSS. The engine maps data files shared and read-only,
/// so discarding the pages loses nothing: the next access reads them from
/// the page cache again. Returns the bytes of address space advised.
pub fn release_mapped(file: &Path) -> u64 {
    let Ok(target) = std::fs::canonicalize(file) else { return 0 };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return 0 };
    let mut advised = 0;
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut parts = line.splitn(6, ' ');
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else { continue };
        let path = parts.nth(3).map(str::trim).unwrap_or("");
        if path != target.as_os_str().to_string_lossy() || !perms.starts_with('r') || !perms.contains('s') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        if end <= start {
            continue;
        }
        // SAFETY: [start, end) is a shared, read-only file mapping of this
        // process (from /proc/self/maps). MADV_DONTNEED on such a mapping
        // only unmaps the pages from the page tables: the mapping stays
        // valid and its contents are those of the file, re-read from the
        // page cache on the next access, so slices into it stay correct.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc == 0 {
            advised += (end - start) as u64;
        }
    }
    advised
}

/// File-backed resident pages of this process in KiB, from
/// `/proc/self/statm` (shared pages: file-backed plus shared memory; much
/// cheaper to read than `/proc/self/status`).
fn shared_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let shared: u64 = s.split_whitespace().nth(2)?.parse().ok()?;
    Some(shared * page_kib())
}

fn page_kib() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ps > 0 {
        ps as u64 / 1024
    } else {
        4
    }
}

/// Brings `file` into the page cache ahead of a full scan, from a
/// background thread. A scan in key order of a tree whose leaves are
/// scattered (an aged database) reads pages from all over the file
/// (`metisdb::Scan`, one `pread` per page); on a cold cache each would
/// wait for a 4 KiB read of its own, while one sequential pass is many
/// times faster. ([`Prefetch::for_state_scan`] skips the pass when the
/// leaves lie in key order.) The pass asks the kernel to read ahead ([`PREFETCH_STEP`]
/// at a time, `readahead(2)`), so the pages go into the page cache without
/// being copied into this process (a `read` into a buffer copied the whole
/// file, a fifth of an export's CPU at 10M accounts). Stops at the end of
/// the file or when the returned guard drops.
///
/// A second thread keeps the file's mapped pages bounded while the guard
/// lives (point reads beside the scan, such as slot preimages, go through
/// the map): every few milliseconds it compares the file-backed resident
/// memory with [`FILE_RSS_LIMIT_KIB`] and releases the file's mapped pages
/// ([`release_mapped`]) when above.
pub struct Prefetch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    _trim: RssTrim,
}

/// Bytes [`Prefetch`] asks the kernel to read ahead per call. The kernel
/// reads at most the device's readahead window per `readahead` call (128
/// KiB by default, `queue/read_ahead_kb`) and ignores the rest, so larger
/// steps would leave holes.
pub const PREFETCH_STEP: u64 = 128 << 10;

/// Share of neighbouring account leaves in key order
/// ([`metisdb::Snapshot::leaves_in_key_order`]) from which a scan of the
/// state reads the file front to back by itself, so that [`Prefetch::for_state_scan`]
/// reads nothing ahead of it.
pub const IN_ORDER_SHARE: f64 = 0.5;

/// Pages between two wanted pages up to which [`Prefetch::pages`] reads
/// the gap too (128 KiB at 4 KiB pages): a longer read costs the disk less
/// than two requests.
pub const PAGE_GAP: u64 = 32;

impl Prefetch {
    /// For a full scan of the state of `snap` (of the database `db`): a
    /// pass ahead of the scan when the leaves lie out of key order, as after
    /// many commits of scattered changes. When they lie in
    /// key order, as after one large commit (`init`, an import, `db
    /// synth`), the scan's own reads stream through the file and drop what
    /// they have read (`metisdb::Scan`), which a whole-file pass would only
    /// slow down: it fills the page cache with the whole file, and on a
    /// virtual machine every fresh page of it costs a fault in the host
    /// (10M accounts: export 5.3-6.0 s with the pass, 3.3-3.8 s without).
    /// The pass reads the pages of the state's trees only ([`Prefetch::pages`]),
    /// not the history and free pages beside them. Mapped pages are
    /// bounded either way.
    pub fn for_state_scan(db: &metisdb::Db, snap: &metisdb::Snapshot) -> Prefetch {
        use metisdb::tables::{ACCOUNTS, CODE, PREIMAGES, STORAGE};
        let file = db.path();
        let in_order = snap.leaves_in_key_order(ACCOUNTS, 16).ok().flatten();
        if in_order.is_some_and(|share| share >= IN_ORDER_SHARE) {
            return Prefetch {
                stop: Default::default(),
                reader: None,
                _trim: RssTrim::start(file, FILE_RSS_LIMIT_KIB),
            };
        }
        let pages: metisdb::Result<Vec<Vec<u64>>> =
            [ACCOUNTS, STORAGE, PREIMAGES, CODE].into_iter().map(|t| snap.tree_pages(t)).collect();
        match pages {
            Ok(pages) => {
                // Four sorted runs: the stable sort merges them in one pass.
                let mut pages = pages.concat();
                pages.sort();
                Prefetch::pages(file, db.page_size() as u64, pages)
            }
            // The scan reports the damage; read everything ahead meanwhile.
            Err(_) => Prefetch::start(file),
        }
    }

    /// Starts prefetching `file` and bounding its resident pages to [`FILE_RSS_LIMIT_KIB`].
    pub fn start(file: &Path) -> Prefetch {
        Prefetch::ranges(file, |f| {
            let Ok(len) = f.metadata().map(|m| m.len()) else { return Vec::new() };
            // Holes (the file's unwritten tail: 243 MB of a 10M-account
            // database) would be read in as zeroed pages, for nothing.
            let mut regions = Vec::new();
            let mut at = 0;
            while at < len {
                let Some((data, end)) = data_region(f, at, len) else { break };
                regions.push((data, end));
                at = end;
            }
            regions
        })
    }

    /// Starts prefetching `pages` (sorted page numbers of `page_size`
    /// bytes) of `file`, and bounding its resident pages: pages closer than
    /// [`PAGE_GAP`] are read as one range, so that the disk sees long reads
    /// rather than one per page.
    pub fn pages(file: &Path, page_size: u64, pages: Vec<u64>) -> Prefetch {
        Prefetch::ranges(file, move |_| page_ranges(&pages, page_size))
    }

    /// Starts a thread reading the byte ranges that `ranges` lists for the
    /// open `file` ahead ([`PREFETCH_STEP`] at a time), and the trim thread.
    fn ranges(file: &Path, ranges: impl FnOnce(&std::fs::File) -> Vec<(u64, u64)> + Send + 'static) -> Prefetch {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (s2, path) = (stop.clone(), file.to_path_buf());
        let reader = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || {
                let Ok(f) = std::fs::File::open(&path) else { return };
                for (mut at, end) in ranges(&f) {
                    while at < end && !s2.load(Ordering::Relaxed) {
                        let step = PREFETCH_STEP.min(end - at);
                        // SAFETY: `f` is an open file for the whole call;
                        // readahead only reads the file into the page cache.
                        let rc = unsafe { libc::readahead(f.as_raw_fd(), at as libc::off64_t, step as usize) };
                        if rc != 0 {
                            return;
                        }
                        at += step;
                    }
                }
            })
            .ok();
        Prefetch { stop, reader, _trim: RssTrim::start(file, FILE_RSS_LIMIT_KIB) }
    }
}

/// Byte ranges covering sorted `pages`, a gap of up to [`PAGE_GAP`] pages
/// between two of them read through.
fn page_ranges(pages: &[u64], page_size: u64) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &p in pages {
        match ranges.last_mut() {
            Some((_, end)) if p * page_size <= *end + PAGE_GAP * page_size => *end = (*end).max((p + 1) * page_size),
            _ => ranges.push((p * page_size, (p + 1) * page_size)),
        }
    }
    ranges
}

/// The data region of `f` at or after `at`: (start, end), `end` at a hole
/// or at `len`; `None` when only holes follow. Where the file system cannot
/// tell (no `SEEK_DATA`), all of `[at, len)` counts as data.
fn data_region(f: &std::fs::File, at: u64, len: u64) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let seek = |from: u64, whence: libc::c_int| {
        // SAFETY: lseek on an open descriptor only moves its file offset
        // (nothing reads from this descriptor's offset: readahead takes its own).
        let r = unsafe { libc::lseek(f.as_raw_fd(), from as libc::off_t, whence) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r as u64)
        }
    };
    match seek(at, libc::SEEK_DATA) {
        Ok(start) if start < len => Some((start, seek(start, libc::SEEK_HOLE).map_or(len, |end| end.min(len)))),
        Ok(_) => None,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => None,
        Err(_) => Some((at, len)),
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

/// Keeps the file-backed resident memory of this process at most about
/// `limit_kib` while the guard lives, by releasing the mapped pages of
/// `file` ([`release_mapped`]) when it is above (checked every 2 ms).
pub struct RssTrim {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl RssTrim {
    /// Starts bounding the resident pages of `file`'s mappings.
    pub fn start(file: &Path, limit_kib: u64) -> RssTrim {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (s2, path) = (stop.clone(), file.to_path_buf());
        let handle = std::thread::Builder::new()
            .name("rss-trim".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    if shared_rss_kib().is_some_and(|k| k > limit_kib) {
                        release_mapped(&path);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            })
            .ok();
        RssTrim { stop, handle }
    }
}

impl Drop for RssTrim {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn page_ranges_read_short_gaps_through() {
        let g = PAGE_GAP;
        let pages = [0, 1, 2, 2 + g, 3 + 2 * g + 1, 3 + 2 * g + 2, 100 * g];
        let ranges = page_ranges(&pages, 10);
        assert_eq!(
            ranges,
            vec![(0, (3 + g) * 10), ((4 + 2 * g) * 10, (6 + 2 * g) * 10), (1000 * g, (100 * g + 1) * 10)]
        );
        assert!(page_ranges(&[], 10).is_empty());
    }

    #[test]
    fn data_regions_cover_every_written_byte_and_skip_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let f = std::fs::File::create(&path).unwrap();
        let mib = 1u64 << 20;
        f.write_all_at(&[1u8; 4096], 0).unwrap();
        f.write_all_at(&[2u8; 4096], 4 * mib).unwrap();
        f.set_len(16 * mib).unwrap();
        let len = 16 * mib;
        let mut regions = Vec::new();
        let mut at = 0;
        while let Some((start, end)) = data_region(&f, at, len) {
            assert!(start >= at && end > start && end <= len, "{start}..{end} from {at}");
            regions.push((start, end));
            at = end;
            if at >= len {
                break;
            }
        }
        for written in [0, 4 * mib] {
            assert!(regions.iter().any(|&(s, e)| s <= written && written + 4096 <= e), "{written} in {regions:?}");
        }
        // Where the file system reports holes, the unwritten tail is skipped.
        if regions.len() > 1 || regions.first().is_some_and(|&(_, e)| e < len) {
            assert!(regions.last().unwrap().1 < len, "{regions:?}");
            assert!(data_region(&f, 4 * mib + 4096 + mib, len).is_none());
        }
    }
}
