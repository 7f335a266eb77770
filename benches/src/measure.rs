//! Clocks, latency percentiles and process / disk counters.

use std::path::Path;
use std::time::{Duration, Instant};

/// Raw timestamp of the cheap clock (TSC ticks on x86_64, else nanoseconds).
#[inline(always)]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(unused_unsafe)]
        // SAFETY: RDTSC has no preconditions on x86_64.
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Converts cheap-clock ticks to nanoseconds (calibrated once against `Instant`).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Nanoseconds per tick.
    pub ns_per_tick: f64,
}

impl Clock {
    /// Calibrates over ~20 ms.
    pub fn calibrate() -> Clock {
        if !cfg!(target_arch = "x86_64") {
            return Clock { ns_per_tick: 1.0 };
        }
        let t0 = Instant::now();
        let c0 = ticks();
        while t0.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let c1 = ticks();
        let ns = t0.elapsed().as_nanos() as f64;
        Clock { ns_per_tick: ns / (c1 - c0).max(1) as f64 }
    }
    /// `t` ticks in nanoseconds.
    pub fn ns(&self, t: u64) -> f64 {
        t as f64 * self.ns_per_tick
    }
}

/// Percentile `p` (0..=100) of sorted samples (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summary of a set of durations given in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// Summarizes `v` (nanoseconds); sorts it.
    pub fn of(v: &mut [u64]) -> Summary {
        v.sort_unstable();
        if v.is_empty() {
            return Summary::default();
        }
        Summary {
            n: v.len(),
            mean: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
            p50: percentile(v, 50.0) as f64,
            p99: percentile(v, 99.0) as f64,
            max: *v.last().expect("non-empty") as f64,
        }
    }
}

fn proc_status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
}

/// Resident memory of this process, in MiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rss {
    /// Peak resident set (VmHWM) since the last reset.
    pub peak_mib: f64,
    /// Current anonymous resident memory (heap, engine caches).
    pub anon_mib: f64,
    /// Current file-backed resident memory (memory maps of data files).
    pub file_mib: f64,
}

/// Reads VmHWM, RssAnon and RssFile.
pub fn rss() -> Rss {
    let mib = |f| proc_status_kb(f).unwrap_or(0) as f64 / 1024.0;
    Rss { peak_mib: mib("VmHWM:"), anon_mib: mib("RssAnon:"), file_mib: mib("RssFile:") }
}

/// The 1-minute load average of the machine (other work competing for the CPUs).
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5); false if refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Bytes this process caused to be read from storage (`/proc/self/io`).
pub fn proc_read_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/io").ok()?;
    s.lines()
        .find(|l| l.starts_with("read_bytes:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Read counters of one block device (`/proc/diskstats`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskReads {
    /// Completed read requests.
    pub ios: u64,
    /// Sectors (512 bytes) read.
    pub sectors: u64,
}

/// Name of the block device holding `path` (its whole-disk or partition
/// entry in /proc/diskstats), if it can be found.
pub fn device_of(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let s = std::fs::read_to_string("/proc/diskstats").ok()?;
    s.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 6 && f[0].parse() == Ok(maj) && f[1].parse() == Ok(min)).then(|| f[2].to_string())
    })
}

/// Read counters of device `name`.
pub fn disk_reads(name: &str) -> Option<DiskReads> {
    let s = std::fs::read_to_string("/proc/diskstats").ok()?;
    s.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 6 && f[2] == name)
            .then(|| DiskReads { ios: f[3].parse().unwrap_or(0), sectors: f[5].parse().unwrap_or(0) })
    })
}

/// `sync`, then drop the clean page cache (needs root). Returns why not, if it failed.
pub fn drop_page_cache() -> Result<(), String> {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "1").map_err(|e| e.to_string())
}

/// Apparent length and allocated bytes (st_blocks) of the files directly in `dir`
/// whose name passes `filter`.
pub fn dir_bytes(dir: &Path, filter: impl Fn(&str) -> bool) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut len = 0;
    let mut alloc = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(m) = e.metadata() {
                if m.is_file() && filter(&name) {
                    len += m.len();
                    alloc += m.blocks() * 512;
                }
            }
        }
    }
    (len, alloc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=100).collect();
        let s = Summary::of(&mut v);
        assert_eq!(s.p50, 50.0);
        assert_eq!(s.p99, 99.0);
        assert_eq!(s.max, 100.0);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn clock_is_monotonic_enough() {
        let c = Clock::calibrate();
        assert!(c.ns_per_tick > 0.0);
        let a = ticks();
        std::thread::sleep(Duration::from_millis(2));
        let b = ticks();
        assert!(c.ns(b - a) > 1_000_000.0);
    }
}
