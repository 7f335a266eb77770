//! Helpers shared by the tools integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `metis` binary.
pub fn metis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metis")).args(args).output().unwrap()
}

/// Runs `metis` and asserts success; returns stdout.
pub fn metis_ok(args: &[&str]) -> String {
    let o = metis(args);
    assert!(o.status.success(), "metis {args:?} failed: {}", stderr(&o));
    stdout(&o)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of the line `key value` in command output.
pub fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{out}"))
        .to_string()
}

/// Every file under `p` (recursively) with its length and content hash,
/// or `["<absent>"]`: compares a directory before and after a command.
pub fn tree_digest(p: &Path) -> Vec<String> {
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &path, out);
            } else {
                let b = std::fs::read(&path).unwrap();
                out.push(format!("{rel} {} {:016x}", b.len(), xxhash_rust::xxh3::xxh3_64(&b)));
            }
        }
    }
    if !p.exists() {
        return vec!["<absent>".into()];
    }
    let mut v = Vec::new();
    walk(p, p, &mut v);
    v.sort();
    v
}

/// A data dir with a synthetic state: `accounts` accounts at version 0,
/// then `blocks` blocks of `changes` changes.
pub fn synth(dir: &Path, accounts: u64, blocks: u64, changes: u64) -> String {
    let out = metis_ok(&[
        "db",
        "synth",
        "--datadir",
        dir.to_str().unwrap(),
        "--accounts",
        &accounts.to_string(),
        "--blocks",
        &blocks.to_string(),
        "--changes",
        &changes.to_string(),
        "--seed",
        "7",
    ]);
    out.lines().last().unwrap().split(' ').nth(3).unwrap().to_string()
}

/// `metis db info` root of a data dir.
pub fn root_of(dir: &Path) -> String {
    field(&metis_ok(&["db", "info", "--datadir", dir.to_str().unwrap()]), "state_root")
}

/// Exports `dir` (latest version or `version`) to `out`.
pub fn export(dir: &Path, version: Option<u64>, out: &Path) -> String {
    let mut args = vec!["snapshot", "export", "--datadir", dir.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let v = version.map(|v| v.to_string());
    if let Some(v) = &v {
        args.extend(["--version", v.as_str()]);
    }
    // Small chunks so that test files have many.
    args.extend(["--chunk-kib", "16"]);
    metis_ok(&args)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn tmp() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().to_path_buf();
    (t, p)
}
