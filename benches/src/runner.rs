//! Runs the phases for one engine and emits one JSON object per result.

use crate::engine::{self, Engine, EngineOptions, Kind, Space, WriteTiming};
use crate::measure::{self, Clock, Summary};
use crate::workload::{replay_lens, Workload};
use crate::Res;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Phases, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Load N keys in batches of durable transactions.
    Load,
    /// Warm point reads with 1 and 2 threads.
    Reads,
    /// Durable commits of 10k puts.
    Commits,
    /// Bytes per key after load and after the commits.
    Space,
    /// Point reads after dropping the page cache.
    Cold,
    /// Many commits, then file size against live data.
    Churn,
}

impl Phase {
    /// Every phase in run order.
    pub const ALL: [Phase; 6] = [Phase::Load, Phase::Reads, Phase::Commits, Phase::Space, Phase::Cold, Phase::Churn];
    /// Name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Load => "load",
            Phase::Reads => "reads",
            Phase::Commits => "commits",
            Phase::Space => "space",
            Phase::Cold => "cold",
            Phase::Churn => "churn",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| format!("unknown phase {s:?} (load, reads, commits, space, cold, churn)"))
    }
}

/// Everything that defines a run of one engine.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Engine.
    pub engine: Kind,
    /// Keys loaded.
    pub keys: u64,
    /// Phases to run (run in `Phase` order).
    pub phases: Vec<Phase>,
    /// Parent directory; the engine uses `<dir>/<engine>-<keys>`.
    pub dir: PathBuf,
    /// Puts per load transaction.
    pub load_batch: u64,
    /// Point reads per thread.
    pub reads: u64,
    /// Reader thread counts to measure.
    pub threads: Vec<usize>,
    /// Sample the latency of every n-th read.
    pub sample_every: usize,
    /// Commits in the commits phase.
    pub commits: u64,
    /// Updates of existing keys per commit.
    pub updates: u64,
    /// New keys per commit.
    pub inserts: u64,
    /// Reads in the cold phase.
    pub cold_reads: u64,
    /// Commits in the churn phase.
    pub churn_commits: u64,
    /// MetisDB retention.
    pub retention: u32,
    /// Data seed.
    pub seed: u64,
    /// Skip the warm-up pass before the reads.
    pub no_warmup: bool,
}

impl RunConfig {
    /// Defaults of the command line for `engine` and `keys`.
    pub fn new(engine: Kind, keys: u64, dir: PathBuf) -> RunConfig {
        RunConfig {
            engine,
            keys,
            phases: Phase::ALL.to_vec(),
            dir,
            load_batch: 100_000,
            reads: 2_000_000,
            threads: vec![1, 2],
            sample_every: 16,
            commits: 50,
            updates: 9_000,
            inserts: 1_000,
            cold_reads: 100_000,
            churn_commits: 1_000,
            retention: 256,
            seed: 0x6d65_7469_7364_6221,
            no_warmup: false,
        }
    }

    /// Data directory of this engine and key count.
    pub fn engine_dir(&self) -> PathBuf {
        self.dir.join(format!("{}-{}", self.engine.name(), self.keys))
    }
}

const STATE_FILE: &str = "bench-state.json";

/// What a data dir holds: enough to regenerate its content.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    loaded: u64,
    commits: u64,
    updates: u64,
    inserts: u64,
    seed: u64,
}

impl State {
    fn live(&self) -> u64 {
        self.loaded + self.commits * self.inserts
    }
    fn load(dir: &Path) -> Option<State> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(STATE_FILE)).ok()?).ok()?;
        Some(State {
            loaded: v["loaded"].as_u64()?,
            commits: v["commits"].as_u64()?,
            updates: v["updates"].as_u64()?,
            inserts: v["inserts"].as_u64()?,
            seed: v["seed"].as_u64()?,
        })
    }
    fn save(&self, dir: &Path) -> Res<()> {
        let v = json!({
            "loaded": self.loaded, "commits": self.commits,
            "updates": self.updates, "inserts": self.inserts, "seed": self.seed,
        });
        std::fs::write(dir.join(STATE_FILE), v.to_string())?;
        Ok(())
    }
}

fn space_json(s: &Space, live: u64) -> Value {
    let per = |b: u64| if live == 0 { 0.0 } else { b as f64 / live as f64 };
    json!({
        "file_bytes": s.file_bytes,
        "alloc_bytes": s.alloc_bytes,
        "used_bytes": s.used_bytes,
        "bytes_per_key": per(s.file_bytes),
        "alloc_bytes_per_key": per(s.alloc_bytes),
        "used_bytes_per_key": s.used_bytes.map(per),
        "live_keys": live,
        "measured": s.what,
        "detail": s.detail,
    })
}

/// Differences of the numeric `counters` of two profiles; `gauges` of the later.
fn profile_delta(a: &Value, b: &Value) -> Value {
    let mut out = Map::new();
    if let (Some(a), Some(b)) = (a["counters"].as_object(), b["counters"].as_object()) {
        for (k, vb) in b {
            if let (Some(x), Some(y)) = (a.get(k).and_then(Value::as_f64), vb.as_f64()) {
                let d = y - x;
                out.insert(k.clone(), json!((d * 1000.0).round() / 1000.0));
            }
        }
    }
    if let Some(g) = b["gauges"].as_object() {
        for (k, v) in g {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn progress(cfg: &RunConfig, msg: &str) {
    eprintln!("[{} {}] {msg}", cfg.engine.name(), cfg.keys);
}

/// Runs one engine through the configured phases; `emit` receives each result.
pub fn run(cfg: &RunConfig, emit: &mut dyn FnMut(Value)) -> Res<()> {
    // Every result records the machine's load (other work competing for the CPUs).
    let mut emit = |mut v: Value| {
        if let Some(m) = v.as_object_mut() {
            m.insert("loadavg_1m".into(), measure::loadavg().into());
        }
        emit(v)
    };
    if !cfg.engine.available() {
        return Err(format!("engine {} is not built in (enable the `peers` feature)", cfg.engine.name()).into());
    }
    let dir = cfg.engine_dir();
    let w = Workload { seed: cfg.seed };
    let clock = Clock::calibrate();
    let has = |p: Phase| cfg.phases.contains(&p);
    let opts = EngineOptions { retention: cfg.retention };

    let mut state = if has(Phase::Load) {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        State { loaded: 0, commits: 0, updates: cfg.updates, inserts: cfg.inserts, seed: cfg.seed }
    } else {
        let s = State::load(&dir).ok_or_else(|| {
            format!("{} holds no loaded data: run the load phase first (with the same --keys and --dir)", dir.display())
        })?;
        if s.loaded != cfg.keys || s.seed != cfg.seed {
            return Err(format!("{} was loaded with other settings", dir.display()).into());
        }
        if s.commits > 0 && (s.updates != cfg.updates || s.inserts != cfg.inserts) {
            return Err(format!("{} had commits with another update/insert mix", dir.display()).into());
        }
        State { updates: cfg.updates, inserts: cfg.inserts, ..s }
    };

    let base = |phase: Phase| {
        let mut m = Map::new();
        m.insert("engine".into(), json!(cfg.engine.name()));
        m.insert("keys".into(), json!(cfg.keys));
        m.insert("phase".into(), json!(phase.name()));
        m
    };

    let t_open = Instant::now();
    let mut db = engine::open(cfg.engine, &dir, &opts)?;
    let open_s = t_open.elapsed().as_secs_f64();
    progress(cfg, &format!("opened {} in {:.2}s", dir.display(), open_s));
    emit(json!({
        "engine": cfg.engine.name(), "keys": cfg.keys, "phase": "config",
        "config": db.config(), "dir": dir.display().to_string(),
        "threads": cfg.threads, "reads": cfg.reads, "sample_every": cfg.sample_every,
        "load_batch": cfg.load_batch, "commits": cfg.commits, "updates": cfg.updates,
        "inserts": cfg.inserts, "cold_reads": cfg.cold_reads, "churn_commits": cfg.churn_commits,
        "retention": cfg.retention, "seed": cfg.seed,
    }));

    let mut space_after_load: Option<Value> = None;
    let mut space_after_commits: Option<Value> = None;

    // Load.
    if has(Phase::Load) {
        measure::reset_peak_rss();
        let p0 = db.profile();
        let mut puts_ns = 0u64;
        let mut commit_ns = Vec::new();
        let mut gen_s = 0.0;
        let t0 = Instant::now();
        let mut done = 0u64;
        let mut next_report = Instant::now();
        while done < cfg.keys {
            let n = cfg.load_batch.min(cfg.keys - done);
            let tg = Instant::now();
            let batch = w.batch(done..done + n, 0);
            gen_s += tg.elapsed().as_secs_f64();
            let t = db.write(&batch)?;
            puts_ns += t.puts_ns;
            commit_ns.push(t.commit_ns);
            done += n;
            if next_report.elapsed().as_secs_f64() >= 10.0 || done == cfg.keys {
                next_report = Instant::now();
                let secs = t0.elapsed().as_secs_f64() - gen_s;
                progress(
                    cfg,
                    &format!(
                        "load {:>5.1}%  {done} keys  {secs:.1}s  {:.0} keys/s",
                        done as f64 * 100.0 / cfg.keys as f64,
                        done as f64 / secs
                    ),
                );
            }
        }
        let secs = t0.elapsed().as_secs_f64() - gen_s;
        state.loaded = cfg.keys;
        state.save(&dir)?;
        let settle_s = db.settle();
        let commit_sum: u64 = commit_ns.iter().sum();
        let cs = Summary::of(&mut commit_ns);
        let space = db.space()?;
        let sp = space_json(&space, state.live());
        space_after_load = Some(sp.clone());
        let rss = measure::rss();
        let mut m = base(Phase::Load);
        m.extend(
            json!({
                "secs": secs, "keys_per_s": cfg.keys as f64 / secs,
                "transactions": cs.n, "puts_per_txn": cfg.load_batch,
                "puts_secs": puts_ns as f64 / 1e9, "commit_secs": commit_sum as f64 / 1e9,
                "commit_ms_mean": cs.mean / 1e6, "commit_ms_p50": cs.p50 / 1e6,
                "commit_ms_p99": cs.p99 / 1e6, "commit_ms_max": cs.max / 1e6,
                "settle_secs": settle_s,
                "bytes_per_key": sp["bytes_per_key"],
                "peak_rss_mib": rss.peak_mib, "rss_anon_mib": rss.anon_mib, "rss_file_mib": rss.file_mib,
                "profile": profile_delta(&p0, &db.profile()),
            })
            .as_object()
            .expect("object")
            .clone(),
        );
        progress(cfg, &format!("load done: {secs:.1}s, {:.0} keys/s", cfg.keys as f64 / secs));
        emit(Value::Object(m));
    }

    // Warm reads.
    if has(Phase::Reads) {
        measure::reset_peak_rss();
        let live = state.live();
        if !cfg.no_warmup {
            let lens = replay_lens(&w, state.loaded, state.commits, state.updates, state.inserts);
            let t0 = Instant::now();
            let bad = warmup(db.as_ref(), &w, live, &lens)?;
            let ws = t0.elapsed().as_secs_f64();
            progress(cfg, &format!("warm-up read of {live} keys in {ws:.1}s"));
            if bad > 0 {
                return Err(format!("warm-up: {bad} keys missing or with a wrong value length").into());
            }
            let mut m = base(Phase::Reads);
            m.extend(
                json!({"warmup": true, "secs": ws, "keys": live, "wrong": bad}).as_object().expect("object").clone(),
            );
            // Reported as part of the reads phase (threads = 0).
            m.insert("threads".into(), json!(0));
            emit(Value::Object(m));
        }
        for &threads in &cfg.threads {
            let key_sets: Vec<Vec<[u8; 32]>> =
                (0..threads).map(|t| w.read_keys((threads * 100 + t) as u64, live, cfg.reads as usize)).collect();
            let p0 = db.profile();
            let engine: &dyn Engine = db.as_ref();
            let sample = cfg.sample_every;
            let t0 = Instant::now();
            let outs: Vec<Res<(crate::engine::ReadTally, Vec<u64>, f64)>> = std::thread::scope(|s| {
                let hs: Vec<_> = key_sets
                    .iter()
                    .map(|keys| {
                        s.spawn(move || {
                            let mut lat = Vec::with_capacity(keys.len() / sample.max(1) + 1);
                            let t = Instant::now();
                            let r = engine.read(keys, sample, &mut lat, None)?;
                            Ok((r, lat, t.elapsed().as_secs_f64()))
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("reader thread")).collect()
            });
            let wall = t0.elapsed().as_secs_f64();
            let mut found = 0;
            let mut missing = 0;
            let mut lat = Vec::new();
            let mut per_thread = Vec::new();
            for o in outs {
                let (r, l, s) = o?;
                found += r.found;
                missing += r.missing;
                lat.extend(l);
                per_thread.push(cfg.reads as f64 / s);
            }
            let ops = found + missing;
            let mut lat_ns: Vec<u64> = lat.iter().map(|&t| clock.ns(t) as u64).collect();
            let ls = Summary::of(&mut lat_ns);
            let rss = measure::rss();
            let mut m = base(Phase::Reads);
            m.extend(
                json!({
                    "threads": threads, "ops": ops, "secs": wall, "ops_per_s": ops as f64 / wall,
                    "per_thread_ops_per_s": per_thread, "missing": missing,
                    "p50_ns": ls.p50, "p99_ns": ls.p99, "mean_ns": ls.mean, "max_ns": ls.max,
                    "samples": ls.n,
                    "peak_rss_mib": rss.peak_mib, "rss_anon_mib": rss.anon_mib, "rss_file_mib": rss.file_mib,
                    "profile": profile_delta(&p0, &db.profile()),
                })
                .as_object()
                .expect("object")
                .clone(),
            );
            progress(
                cfg,
                &format!(
                    "reads, {threads} thread(s): {:.0} ops/s, p50 {:.0} ns, p99 {:.0} ns",
                    ops as f64 / wall,
                    ls.p50,
                    ls.p99
                ),
            );
            if missing > 0 {
                return Err(format!("{missing} reads found no value").into());
            }
            emit(Value::Object(m));
        }
    }

    // Commits.
    if has(Phase::Commits) {
        let (m, _) = commits(cfg, db.as_ref(), &w, &mut state, &dir, cfg.commits, Phase::Commits)?;
        emit(m);
        db.settle();
        space_after_commits = Some(space_json(&db.space()?, state.live()));
    }

    // Space.
    if has(Phase::Space) {
        let now = space_json(&db.space()?, state.live());
        let mut m = base(Phase::Space);
        m.extend(
            json!({
                "after_load": space_after_load,
                "after_commits": space_after_commits,
                "now": now,
                "commits_done": state.commits,
            })
            .as_object()
            .expect("object")
            .clone(),
        );
        emit(Value::Object(m));
    }

    // Cold reads.
    if has(Phase::Cold) {
        drop(db);
        let dropped = measure::drop_page_cache();
        if let Err(e) = &dropped {
            progress(cfg, &format!("could not drop the page cache: {e} (the cold reads are not cold)"));
        }
        measure::reset_peak_rss();
        let dev = measure::device_of(&dir);
        let io0 = measure::proc_read_bytes();
        let d0 = dev.as_deref().and_then(measure::disk_reads);
        let t_open = Instant::now();
        db = engine::open(cfg.engine, &dir, &opts)?;
        let open_s = t_open.elapsed().as_secs_f64();
        let io1 = measure::proc_read_bytes();
        let d1 = dev.as_deref().and_then(measure::disk_reads);
        let keys = w.read_keys(7_000_001, state.live(), cfg.cold_reads as usize);
        let mut lat = Vec::with_capacity(keys.len());
        // The first tenth runs on a truly cold cache; later reads find more
        // and more of the upper levels cached.
        let first = (keys.len() / 10).max(1).min(keys.len());
        let t0 = Instant::now();
        let r1 = db.read(&keys[..first], 1, &mut lat, None)?;
        let first_secs = t0.elapsed().as_secs_f64();
        let io_first = measure::proc_read_bytes();
        let r2 = db.read(&keys[first..], 1, &mut lat, None)?;
        let secs = t0.elapsed().as_secs_f64();
        let r = crate::engine::ReadTally {
            found: r1.found + r2.found,
            missing: r1.missing + r2.missing,
            bytes: r1.bytes + r2.bytes,
        };
        let io2 = measure::proc_read_bytes();
        let d2 = dev.as_deref().and_then(measure::disk_reads);
        let n = keys.len().max(1) as f64;
        let mut lat_ns: Vec<u64> = lat.iter().map(|&t| clock.ns(t) as u64).collect();
        let ls = Summary::of(&mut lat_ns);
        let rss = measure::rss();
        let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a) as f64 / 4096.0 / n),
            _ => None,
        };
        let mut m = base(Phase::Cold);
        m.extend(
            json!({
                "cache_dropped": dropped.is_ok(),
                "drop_error": dropped.err(),
                "reads": keys.len(), "missing": r.missing, "secs": secs,
                "reads_per_s": keys.len() as f64 / secs,
                "p50_ns": ls.p50, "p99_ns": ls.p99, "mean_ns": ls.mean,
                "first_reads": first,
                "first_reads_per_s": first as f64 / first_secs,
                "first_pages_4k_per_lookup": match (io1, io_first) {
                    (Some(a), Some(b)) => Some((b - a) as f64 / 4096.0 / first as f64), _ => None },
                "open_secs": open_s,
                "open_read_bytes": match (io0, io1) { (Some(a), Some(b)) => Some(b - a), _ => None },
                "pages_4k_per_lookup": per(io1, io2),
                "device": dev,
                "disk_read_ios_per_lookup": match (d1, d2) {
                    (Some(a), Some(b)) => Some((b.ios - a.ios) as f64 / n), _ => None },
                "disk_pages_4k_per_lookup": match (d1, d2) {
                    (Some(a), Some(b)) => Some((b.sectors - a.sectors) as f64 * 512.0 / 4096.0 / n),
                    _ => None },
                "disk_open_read_bytes": match (d0, d1) {
                    (Some(a), Some(b)) => Some((b.sectors - a.sectors) * 512), _ => None },
                "peak_rss_mib": rss.peak_mib, "rss_anon_mib": rss.anon_mib, "rss_file_mib": rss.file_mib,
            })
            .as_object()
            .expect("object")
            .clone(),
        );
        progress(
            cfg,
            &format!(
                "cold reads: {:.0} reads/s, {:.2} 4K pages read per lookup",
                keys.len() as f64 / secs,
                per(io1, io2).unwrap_or(f64::NAN)
            ),
        );
        emit(Value::Object(m));
    }

    // Churn.
    if has(Phase::Churn) {
        let (mut m, _) = commits(cfg, db.as_ref(), &w, &mut state, &dir, cfg.churn_commits, Phase::Churn)?;
        let settle_s = db.settle();
        let sp = db.space()?;
        let lens = replay_lens(&w, state.loaded, state.commits, state.updates, state.inserts);
        let live_bytes: u64 = lens.iter().map(|&l| 32 + l as u64).sum();
        let o = m.as_object_mut().expect("object");
        o.insert("settle_secs".into(), json!(settle_s));
        o.insert("live_keys".into(), json!(state.live()));
        o.insert("live_data_bytes".into(), json!(live_bytes));
        o.insert("file_bytes".into(), json!(sp.file_bytes));
        o.insert("file_over_live".into(), json!(sp.file_bytes as f64 / live_bytes as f64));
        o.insert("alloc_over_live".into(), json!(sp.alloc_bytes as f64 / live_bytes as f64));
        o.insert("used_over_live".into(), json!(sp.used_bytes.map(|u| u as f64 / live_bytes as f64)));
        o.insert("space".into(), space_json(&sp, state.live()));
        progress(
            cfg,
            &format!(
                "churn: file {:.1} MiB for {:.1} MiB live data ({:.2}x)",
                sp.file_bytes as f64 / 1048576.0,
                live_bytes as f64 / 1048576.0,
                sp.file_bytes as f64 / live_bytes as f64
            ),
        );
        emit(m);
    }
    drop(db);
    Ok(())
}

/// Reads every live key once (two threads), checking each value's length.
fn warmup(db: &dyn Engine, w: &Workload, live: u64, lens: &[u8]) -> Res<u64> {
    const CHUNK: u64 = 65_536;
    let next = std::sync::atomic::AtomicU64::new(0);
    let bad = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| -> Res<()> {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Res<()> {
                    let mut got = Vec::with_capacity(CHUNK as usize);
                    let mut lat = Vec::new();
                    loop {
                        let start = next.fetch_add(CHUNK, std::sync::atomic::Ordering::Relaxed);
                        if start >= live {
                            return Ok(());
                        }
                        let end = (start + CHUNK).min(live);
                        let keys: Vec<[u8; 32]> = (start..end).map(|i| w.key(i)).collect();
                        got.clear();
                        db.read(&keys, 0, &mut lat, Some(&mut got))?;
                        let wrong = (start..end).zip(&got).filter(|(i, &g)| g != lens[*i as usize] as u32).count();
                        bad.fetch_add(wrong as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("warm-up thread")?;
        }
        Ok(())
    })?;
    Ok(bad.into_inner())
}

/// Runs `count` commits of the update/insert mix; returns the result object.
fn commits(
    cfg: &RunConfig,
    db: &dyn Engine,
    w: &Workload,
    state: &mut State,
    dir: &Path,
    count: u64,
    phase: Phase,
) -> Res<(Value, Vec<WriteTiming>)> {
    measure::reset_peak_rss();
    let p0 = db.profile();
    let mut times = Vec::with_capacity(count as usize);
    let t0 = Instant::now();
    let mut gen_s = 0.0;
    let mut next_report = Instant::now();
    for i in 0..count {
        let c = state.commits + 1;
        let tg = Instant::now();
        let plan = w.commit_plan(c, state.live(), state.updates, state.inserts);
        let batch = w.batch(plan, c);
        gen_s += tg.elapsed().as_secs_f64();
        times.push(db.write(&batch)?);
        state.commits = c;
        if next_report.elapsed().as_secs_f64() >= 10.0 || i + 1 == count {
            next_report = Instant::now();
            state.save(dir)?;
            let secs = t0.elapsed().as_secs_f64() - gen_s;
            progress(
                cfg,
                &format!(
                    "{} {}/{count} commits, {secs:.1}s, {:.1} ms/commit",
                    phase.name(),
                    i + 1,
                    secs * 1000.0 / (i + 1) as f64
                ),
            );
        }
    }
    let secs = t0.elapsed().as_secs_f64() - gen_s;
    state.save(dir)?;
    let mut total: Vec<u64> = times.iter().map(|t| t.total_ns()).collect();
    let mut commit: Vec<u64> = times.iter().map(|t| t.commit_ns).collect();
    let ts = Summary::of(&mut total);
    let cs = Summary::of(&mut commit);
    let rss = measure::rss();
    let v = json!({
        "engine": cfg.engine.name(), "keys": cfg.keys, "phase": phase.name(),
        "commits": count, "puts_per_commit": state.updates + state.inserts,
        "updates": state.updates, "inserts": state.inserts, "secs": secs,
        "ms_mean": ts.mean / 1e6, "ms_p50": ts.p50 / 1e6, "ms_p99": ts.p99 / 1e6, "ms_max": ts.max / 1e6,
        "commit_call_ms_mean": cs.mean / 1e6, "commit_call_ms_p50": cs.p50 / 1e6,
        "commit_call_ms_p99": cs.p99 / 1e6,
        "commits_done_total": state.commits, "live_keys": state.live(),
        "peak_rss_mib": rss.peak_mib, "rss_anon_mib": rss.anon_mib, "rss_file_mib": rss.file_mib,
        "profile": profile_delta(&p0, &db.profile()),
    });
    Ok((v, times))
}
