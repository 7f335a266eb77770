//! `metis statetest` and `metis replay` as a user runs them: the output
//! lines other tools parse, exit codes, and failures that are reported as
//! failures (a tampered expectation must fail).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../executor/tests/fixtures")
}

fn metis(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metis")).args(args).args(paths).output().expect("run metis")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Parses the last line `N passed, N failed[, N skipped]`.
fn totals(out: &str) -> Vec<usize> {
    let last = out.lines().last().unwrap_or_default();
    last.split(", ").map(|part| part.split(' ').next().unwrap().parse().expect(last)).collect()
}

#[test]
fn statetest_runs_the_vendored_tests() {
    let dir = fixtures().join("state_tests/stChainId");
    let o = metis(&["statetest"], &[&dir]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let t = totals(&out);
    assert_eq!(t.len(), 3, "{out}");
    assert!(t[0] > 0 && t[1] == 0, "{out}");
}

#[test]
fn statetest_reports_a_wrong_post_state_root() {
    let src = fixtures().join("state_tests/stChainId/chainId.json");
    let text = std::fs::read_to_string(&src).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Change the first expected post-state root of every fork.
    let test = json.as_object_mut().unwrap().values_mut().next().unwrap();
    let mut changed = 0;
    for cases in test["post"].as_object_mut().unwrap().values_mut() {
        let case = &mut cases.as_array_mut().unwrap()[0];
        case["hash"] = serde_json::Value::String(format!("0x{}", "11".repeat(32)));
        changed += 1;
    }
    assert!(changed > 0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chainId.json");
    std::fs::write(&file, serde_json::to_string(&json).unwrap()).unwrap();
    let o = metis(&["statetest"], &[&file]);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("FAIL") && out.contains("state root"), "{out}");
    assert_eq!(totals(&out)[1], changed, "{out}");
}

#[test]
fn statetest_names_a_missing_path() {
    let o = metis(&["statetest"], &[Path::new("/nonexistent/tests")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/tests"));
}

#[test]
fn replay_checks_vendored_blocks_both_ways() {
    let blocks = fixtures().join("mainnet_blocks");
    let dirs: Vec<PathBuf> = ["46147", "2675000", "19923400"].iter().map(|b| blocks.join(b)).collect();
    let refs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    let o = metis(&["replay", "--workers", "2"], &refs);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("block ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 11, "{l}");
        assert_eq!((f[2], f[4], f[6], f[8], f[10]), ("txs", "seq_ms", "par_ms", "speedup", "ok"), "{l}");
        for i in [5, 7, 9] {
            assert!(f[i].parse::<f64>().expect(l) > 0.0, "{l}");
        }
    }
    assert_eq!(totals(&out), vec![3, 0], "{out}");
}

#[test]
fn replay_fails_a_block_whose_header_disagrees() {
    let src = fixtures().join("mainnet_blocks/19923400");
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let block = dir.path().join("block.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&block).unwrap()).unwrap();
    json["receiptsRoot"] = serde_json::Value::String(format!("0x{}", "22".repeat(32)));
    std::fs::write(&block, serde_json::to_string(&json).unwrap()).unwrap();
    let o = metis(&["replay", "--mode", "seq"], &[dir.path()]);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.lines().any(|l| l.starts_with("block 19923400 ") && l.ends_with(" FAIL")), "{out}");
    assert_eq!(totals(&out), vec![0, 1], "{out}");
}
