//! kill -9 loop: a child `metis db synth` streams `block <i> root <r>` after
//! each durable commit and is killed with SIGKILL after 5-150 ms (some kills
//! land while it opens the database). After every kill the reopened
//! database must be at a version >= the last one printed, its root must
//! equal the uninterrupted run's root for that version, and verify must pass.

use metisdb::{Db, Options};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ACCOUNTS: &str = "3000";
const CHANGES: &str = "150";
const SEED: &str = "11";

fn synth(dir: &Path, blocks: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_metis"));
    c.args(["db", "synth", "--datadir"]).arg(dir).args([
        "--accounts",
        ACCOUNTS,
        "--blocks",
        &blocks.to_string(),
        "--changes",
        CHANGES,
        "--seed",
        SEED,
    ]);
    c
}

fn parse(line: &str) -> Option<(u64, String)> {
    let mut w = line.split_whitespace();
    match (w.next(), w.next(), w.next(), w.next()) {
        (Some("block"), Some(v), Some("root"), Some(r)) if r.len() == 66 => Some((v.parse().ok()?, r.to_string())),
        _ => None,
    }
}

/// Roots of an uninterrupted run, extended on demand.
struct Reference {
    dir: tempfile::TempDir,
    roots: BTreeMap<u64, String>,
}

impl Reference {
    fn root(&mut self, v: u64) -> String {
        if !self.roots.contains_key(&v) {
            let out = synth(self.dir.path(), v + 200).output().unwrap();
            assert!(out.status.success(), "reference run failed: {}", String::from_utf8_lossy(&out.stderr));
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let (bv, r) = parse(line).expect("reference output is well formed");
                self.roots.insert(bv, r);
            }
        }
        self.roots[&v].clone()
    }
}

#[test]
fn kill9_never_loses_an_acknowledged_version() {
    let kills: u32 = std::env::var("METIS_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut reference = Reference { dir: tempfile::tempdir().unwrap(), roots: BTreeMap::new() };
    let mut rng: u64 = 0x5EED;
    let mut reopen_ms: Vec<f64> = Vec::new();
    let mut last_acked: Option<u64> = None;
    let mut kills_during_open = 0;
    for k in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(5 + rng % 146);
        let mut child = synth(dir.path(), 1_000_000).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let printed: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
        let out = child.stdout.take().unwrap();
        let p2 = printed.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // A line cut by the kill is not an acknowledgement.
                if let Some(x) = parse(&line) {
                    p2.lock().unwrap().push(x);
                }
            }
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let printed = printed.lock().unwrap().clone();
        if printed.is_empty() {
            kills_during_open += 1;
        }
        for (v, r) in &printed {
            assert_eq!(
                *r,
                reference.root(*v),
                "kill {k}: printed root of version {v} differs from the uninterrupted run"
            );
        }
        if let Some((v, _)) = printed.last() {
            last_acked = Some(*v);
        }
        let t = Instant::now();
        let db = match Db::open(dir.path(), Options::default()) {
            Ok(db) => db,
            Err(e) => panic!("kill {k} after {delay:?}: reopen failed: {e}"),
        };
        reopen_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let v = db.latest_version();
        assert!(v >= last_acked, "kill {k}: reopened at {v:?}, but {last_acked:?} was acknowledged");
        if let Some(v) = v {
            assert_eq!(
                format!("0x{}", hex::encode(db.state_root())),
                reference.root(v),
                "kill {k}: root of version {v}"
            );
        }
        let report = db.verify(&mut |_, _| {}).unwrap();
        assert!(report.ok(), "kill {k}: verify: {:?}", report.problems);
    }
    reopen_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p99 = reopen_ms[(reopen_ms.len() * 99 / 100).min(reopen_ms.len() - 1)];
    eprintln!(
        "kills: {kills} ({kills_during_open} before the first commit printed), last version {last_acked:?}, reopen p50 {:.2} ms p99 {p99:.2} ms",
        reopen_ms[reopen_ms.len() / 2]
    );
    assert!(last_acked.is_some_and(|v| v > 10), "the child should make progress between kills");
}
