//! `metis init`, `metis db prove` and `metis db synth` against known roots
//! and independent checks.

use std::path::Path;
use std::process::{Command, Output};

fn metis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metis")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SEPOLIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sepolia-genesis.json");
const SEPOLIA_ROOT: &str = "0x5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494";

fn dir_listing(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(p) {
        Ok(r) => r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec!["<absent>".into()],
    };
    v.sort();
    v
}

#[test]
fn sepolia_genesis_has_its_published_state_root() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let o = metis(&["init", "--genesis", SEPOLIA, "--datadir", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("state_root {SEPOLIA_ROOT}")), "{}", stdout(&o));
    let info = metis(&["db", "info", "--datadir", d.to_str().unwrap()]);
    assert_eq!(stdout(&info), format!("version 0\nstate_root {SEPOLIA_ROOT}\n"));
    // A second init refuses to touch the database.
    let again = metis(&["init", "--genesis", SEPOLIA, "--datadir", d.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already holds a database"), "{}", stderr(&again));
    assert_eq!(stdout(&metis(&["db", "info", "--datadir", d.to_str().unwrap()])), stdout(&info));
}

#[test]
fn bad_genesis_files_fail_with_the_json_path_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (r#"{"alloc": {"0x01": {"balance": "1"}}}"#, "alloc.0x01"),
        (
            r#"{"alloc": {"0x0000000000000000000000000000000000000001": {"balance": "0x10000000000000000000000000000000000000000000000000000000000000000"}}}"#,
            "alloc.0x0000000000000000000000000000000000000001.balance",
        ),
        (
            r#"{"alloc": {"0x0000000000000000000000000000000000000001": {"storage": {"0x01": "0x02"}}}}"#,
            "alloc.0x0000000000000000000000000000000000000001.storage.0x01",
        ),
        (r#"{"alloc": {"#, "invalid JSON"),
        (
            &format!(
                r#"{{"stateRoot": "0x{}", "alloc": {{"0x0000000000000000000000000000000000000001": {{"balance": "1"}}}}}}"#,
                "11".repeat(32)
            ),
            "hashes to",
        ),
    ];
    for (i, (json, want)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("g{i}.json"));
        std::fs::write(&f, json).unwrap();
        // A data dir that does not exist yet, and one that exists (empty).
        for existing in [false, true] {
            let d = dir.path().join(format!("data{i}-{existing}"));
            if existing {
                std::fs::create_dir(&d).unwrap();
                std::fs::write(d.join("notes.txt"), "keep me").unwrap();
            }
            let before = dir_listing(&d);
            let o = metis(&["init", "--genesis", f.to_str().unwrap(), "--datadir", d.to_str().unwrap()]);
            assert!(!o.status.success(), "case {i} succeeded");
            assert!(stderr(&o).contains(want), "case {i}: {}", stderr(&o));
            assert_eq!(dir_listing(&d), before, "case {i}: the data dir changed");
        }
    }
}

#[test]
fn prove_output_verifies_and_synth_roots_are_state_roots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let ds = d.to_str().unwrap();
    let o = metis(&[
        "db",
        "synth",
        "--datadir",
        ds,
        "--accounts",
        "2000",
        "--blocks",
        "6",
        "--changes",
        "300",
        "--seed",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 7);
    // The printed roots are the roots a rebuild from the leaves gives.
    let db = metisdb::Db::open(&d, metisdb::Options::default()).unwrap();
    for v in [2u64, 6] {
        let snap = db.snapshot(Some(v)).unwrap();
        let full = metis_trie::full_root(&mut metisdb::state::AccountLeaves::new(&snap)).unwrap();
        assert!(lines[v as usize].ends_with(&format!("{:#x}", full.root)), "version {v}: {}", lines[v as usize]);
    }
    drop(db);
    // Proofs at the newest and an older version, for a present and an absent account.
    for (addr, version) in [
        ("0x0000000000000000000000000000000000000042", None),
        ("0x0000000000000000000000000000000000000042", Some("3")),
    ] {
        let mut args = vec!["db", "prove", "--datadir", ds, "--address", addr, "--slot", "0x0"];
        if let Some(v) = version {
            args.extend(["--version", v]);
        }
        let o = metis(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let root_line = &lines[version.map_or(6, |v| v.parse().unwrap())];
        let root: alloy_primitives::B256 = root_line.split_whitespace().last().unwrap().parse().unwrap();
        let proof: Vec<alloy_primitives::Bytes> =
            j["accountProof"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().parse().unwrap()).collect();
        let key = alloy_primitives::keccak256(addr.parse::<alloy_primitives::Address>().unwrap());
        alloy_trie::proof::verify_proof(root, alloy_trie::Nibbles::unpack(key), None, &proof).expect("exclusion proof");
    }
    let o = metis(&["db", "prove", "--datadir", ds, "--address", "0x12"]);
    assert!(!o.status.success() && stderr(&o).contains("expected 20"), "{}", stderr(&o));
    let o = metis(&[
        "db",
        "prove",
        "--datadir",
        ds,
        "--address",
        "0x0000000000000000000000000000000000000042",
        "--version",
        "99",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("not retained"), "{}", stderr(&o));
}
