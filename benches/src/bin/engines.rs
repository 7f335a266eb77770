//! Side-by-side storage-engine benchmark: MetisDB and its peers on the same
//! workload, one child process per engine, tables with MetisDB/peer ratios
//! and one JSON line per result.

// The allocator of the shipped `metis` binary.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use metis_benches::engine::Kind;
use metis_benches::parse_count;
use metis_benches::report;
use metis_benches::runner::{self, Phase, RunConfig};
use metis_benches::Res;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn parse_list<T: std::str::FromStr<Err = String>>(s: &str) -> Result<Vec<T>, String> {
    s.split(',').filter(|x| !x.trim().is_empty()).map(|x| x.parse()).collect()
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "metis-bench-engines",
    about = "MetisDB vs libmdbx, redb and RocksDB on the same workload",
    long_about = "Runs the same workload on each engine, each in its own child process, \
                  then prints a table per phase with MetisDB/peer ratios. Every result is \
                  also printed as one JSON line (lines starting with '{'). \
                  Peers need the `peers` feature; see benches/RESULTS.md."
)]
struct Args {
    /// Keys to load (accepts 20k, 1M, 10M).
    #[arg(long, default_value = "1M", value_parser = parse_count)]
    keys: u64,
    /// Engines, comma separated: metisdb,mdbx,redb,rocksdb (default: all built in).
    #[arg(long, value_parser = parse_list::<Kind>)]
    engines: Option<std::vec::Vec<Kind>>,
    /// Phases, comma separated: load,reads,commits,space,cold,churn. Without
    /// load, the data dir of an earlier run (same --keys, --dir) is reused.
    #[arg(long, default_value = "load,reads,commits,space,cold,churn", value_parser = parse_list::<Phase>)]
    phases: std::vec::Vec<Phase>,
    /// Parent directory of the data dirs (`<dir>/<engine>-<keys>`).
    #[arg(long, default_value = "/var/tmp/metis-bench")]
    dir: PathBuf,
    /// Point reads per thread in the warm-reads phase.
    #[arg(long, default_value = "2M", value_parser = parse_count)]
    reads: u64,
    /// Reader thread counts, comma separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Sample the latency of every n-th warm read.
    #[arg(long, default_value_t = 16)]
    sample_every: usize,
    /// Puts per load transaction.
    #[arg(long, default_value = "100k", value_parser = parse_count)]
    load_batch: u64,
    /// Commits in the commits phase.
    #[arg(long, default_value_t = 50)]
    commits: u64,
    /// Updates of existing keys per commit.
    #[arg(long, default_value = "9000", value_parser = parse_count)]
    updates: u64,
    /// New keys per commit.
    #[arg(long, default_value = "1000", value_parser = parse_count)]
    inserts: u64,
    /// Reads in the cold phase.
    #[arg(long, default_value = "100k", value_parser = parse_count)]
    cold_reads: u64,
    /// Commits in the churn phase.
    #[arg(long, default_value_t = 1000)]
    churn_commits: u64,
    /// MetisDB retention (versions).
    #[arg(long, default_value_t = 256)]
    retention: u32,
    /// Data seed.
    #[arg(long, default_value_t = 0x6d65_7469_7364_6221)]
    seed: u64,
    /// Skip the warm-up pass before the warm reads.
    #[arg(long)]
    no_warmup: bool,
    /// Run the engines one after another in this process instead of one child each.
    #[arg(long)]
    in_process: bool,
    /// Also append the JSON lines to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Print the tables of the JSON lines in this file (from --json-out) and exit.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Internal: run one engine and print its results as JSON lines.
    #[arg(long, hide = true)]
    child: Option<Kind>,
}

impl Args {
    fn run_config(&self, engine: Kind) -> RunConfig {
        let mut c = RunConfig::new(engine, self.keys, self.dir.clone());
        c.phases = self.phases.clone();
        c.phases.sort();
        c.phases.dedup();
        c.reads = self.reads;
        c.threads = self.threads.clone();
        c.sample_every = self.sample_every;
        c.load_batch = self.load_batch.max(1);
        c.commits = self.commits;
        c.updates = self.updates;
        c.inserts = self.inserts;
        c.cold_reads = self.cold_reads;
        c.churn_commits = self.churn_commits;
        c.retention = self.retention;
        c.seed = self.seed;
        c.no_warmup = self.no_warmup;
        c
    }

    /// The arguments a child gets (everything but the orchestration flags).
    fn child_args(&self, engine: Kind) -> Vec<String> {
        let phases: Vec<&str> = self.phases.iter().map(|p| p.name()).collect();
        let threads: Vec<String> = self.threads.iter().map(|t| t.to_string()).collect();
        let mut v = vec![
            format!("--child={}", engine.name()),
            format!("--keys={}", self.keys),
            format!("--phases={}", phases.join(",")),
            format!("--dir={}", self.dir.display()),
            format!("--reads={}", self.reads),
            format!("--threads={}", threads.join(",")),
            format!("--sample-every={}", self.sample_every),
            format!("--load-batch={}", self.load_batch),
            format!("--commits={}", self.commits),
            format!("--updates={}", self.updates),
            format!("--inserts={}", self.inserts),
            format!("--cold-reads={}", self.cold_reads),
            format!("--churn-commits={}", self.churn_commits),
            format!("--retention={}", self.retention),
            format!("--seed={}", self.seed),
        ];
        if self.no_warmup {
            v.push("--no-warmup".into());
        }
        v
    }
}

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let mem_kib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    serde_json::json!({
        "phase": "machine",
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "mem_gib": mem_kib.map(|k| (k as f64 / 1048576.0 * 10.0).round() / 10.0),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

fn main() {
    let args = Args::parse();
    if let Err(e) = real_main(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main(args: Args) -> Res<()> {
    if let Some(path) = &args.report {
        let results: Vec<Value> = std::fs::read_to_string(path)?
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        print!("{}", report::render(&results));
        return Ok(());
    }
    if let Some(engine) = args.child {
        // Child: one engine, JSON lines on stdout.
        let cfg = args.run_config(engine);
        let stdout = std::io::stdout();
        return runner::run(&cfg, &mut |v| {
            let mut o = stdout.lock();
            let _ = writeln!(o, "{v}");
            let _ = o.flush();
        });
    }

    let engines: Vec<Kind> = match &args.engines {
        Some(e) => e.clone(),
        None => Kind::ALL.into_iter().filter(|k| k.available()).collect(),
    };
    for e in &engines {
        if !e.available() {
            return Err(format!(
                "engine {} is not built in: build with `--features peers` (see benches/RESULTS.md)",
                e.name()
            )
            .into());
        }
    }
    let mut json_out = match &args.json_out {
        Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).open(p)?),
        None => None,
    };
    let mut results: Vec<Value> = Vec::new();
    let mut record = |v: Value, results: &mut Vec<Value>| {
        println!("{v}");
        if let Some(f) = json_out.as_mut() {
            let _ = writeln!(f, "{v}");
        }
        results.push(v);
    };
    let mut m = machine();
    m["keys"] = args.keys.into();
    record(m, &mut results);
    let mut failed = Vec::new();
    for &engine in &engines {
        eprintln!("== {} ({} keys) ==", engine.name(), args.keys);
        if args.in_process {
            let cfg = args.run_config(engine);
            let mut got = Vec::new();
            let r = runner::run(&cfg, &mut |v| got.push(v));
            for v in got {
                record(v, &mut results);
            }
            if let Err(e) = r {
                eprintln!("{}: {e}", engine.name());
                failed.push(engine.name());
            }
            continue;
        }
        let mut child = Command::new(std::env::current_exe()?)
            .args(args.child_args(engine))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().expect("piped stdout");
        for line in BufReader::new(out).lines() {
            let line = line?;
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if line.starts_with('{') => record(v, &mut results),
                _ => eprintln!("{line}"),
            }
        }
        let status = child.wait()?;
        if !status.success() {
            eprintln!("{}: child process failed ({status})", engine.name());
            failed.push(engine.name());
        }
    }
    println!("{}", report::render(&results));
    if !failed.is_empty() {
        return Err(format!("failed engines: {}", failed.join(", ")).into());
    }
    Ok(())
}
