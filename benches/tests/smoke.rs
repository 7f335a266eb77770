//! End-to-end run of the comparison harness on a small MetisDB data set
//! (no timing assertions).

use serde_json::Value;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_metis-bench-engines"))
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON result line"))
        .collect()
}

fn phase<'a>(rs: &'a [Value], p: &str) -> Vec<&'a Value> {
    rs.iter().filter(|r| r["phase"] == p).collect()
}

#[test]
fn metisdb_all_phases_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.jsonl");
    let out = bin()
        .args([
            "--keys=20k",
            "--engines=metisdb",
            "--reads=20k",
            "--commits=5",
            "--updates=900",
            "--inserts=100",
            "--cold-reads=2k",
            "--churn-commits=20",
            "--retention=8",
            "--load-batch=5k",
        ])
        .arg(format!("--dir={}", dir.path().join("data").display()))
        .arg(format!("--json-out={}", json.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "harness failed: {stderr}");
    let rs = json_lines(&out.stdout);

    let load = phase(&rs, "load");
    assert_eq!(load.len(), 1);
    assert_eq!(load[0]["engine"], "metisdb");
    assert_eq!(load[0]["transactions"], 4);
    assert!(load[0]["keys_per_s"].as_f64().unwrap() > 0.0);

    let reads = phase(&rs, "reads");
    let warm: Vec<_> = reads.iter().filter(|r| r["threads"] == 0).collect();
    assert_eq!(warm.len(), 1);
    assert_eq!(warm[0]["wrong"], 0);
    for t in [1, 2] {
        let r = reads.iter().find(|r| r["threads"] == t).expect("reads result");
        assert_eq!(r["ops"], 20_000 * t);
        assert_eq!(r["missing"], 0);
        assert!(r["p50_ns"].as_f64().unwrap() > 0.0);
    }

    let commits = phase(&rs, "commits");
    assert_eq!(commits[0]["commits"], 5);
    assert_eq!(commits[0]["live_keys"], 20_500);
    assert!(commits[0]["profile"]["commits"].as_f64().unwrap() >= 5.0);

    let space = phase(&rs, "space");
    assert!(space[0]["after_load"]["bytes_per_key"].as_f64().unwrap() > 32.0);
    assert!(space[0]["after_commits"]["bytes_per_key"].as_f64().unwrap() > 32.0);

    let cold = phase(&rs, "cold");
    assert_eq!(cold[0]["reads"], 2_000);
    assert_eq!(cold[0]["missing"], 0);

    let churn = phase(&rs, "churn");
    assert_eq!(churn[0]["commits"], 20);
    assert_eq!(churn[0]["live_keys"], 22_500);
    let live = churn[0]["live_data_bytes"].as_u64().unwrap();
    assert!((22_500 * 72..=22_500 * 142).contains(&live));
    assert!(churn[0]["file_over_live"].as_f64().unwrap() > 0.5);

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("### load"), "{stdout}");
    assert!(stdout.contains("### Targets"), "{stdout}");

    // Reuse the data dir for the reads only (state kept from the run above),
    // then render the saved JSON lines.
    let out = bin()
        .args(["--keys=20k", "--engines=metisdb", "--phases=reads", "--reads=5k", "--threads=1"])
        .args(["--updates=900", "--inserts=100"])
        .arg(format!("--dir={}", dir.path().join("data").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rs = json_lines(&out.stdout);
    let warm = rs.iter().find(|r| r["phase"] == "reads" && r["threads"] == 0).unwrap();
    assert_eq!(warm["keys"], 22_500);
    assert_eq!(warm["wrong"], 0);

    let out = bin().arg(format!("--report={}", json.display())).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("### churn"));
}

#[test]
fn reads_without_a_load_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["--keys=1k", "--engines=metisdb", "--phases=reads", "--in-process"])
        .arg(format!("--dir={}", dir.path().display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run the load phase first"));
}
