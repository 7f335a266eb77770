//! `metis snapshot export|import|verify`: round trips, concurrent export,
//! and every kind of bad input (truncation, flipped bits in every chunk,
//! wrong magic, newer format, root mismatch, ENOSPC, interruption): a clear
//! error naming what and where, a non-zero exit, the target unchanged.

mod common;

use common::*;
use metis_tools::import::{import_snapshot, staging_dir, ImportOptions};
use metis_tools::snapshot::format::{Frame, Header, CHUNK_TAG, FRAME_LEN, HEADER_LEN};
use metisdb::storage::fault::{Fault, FaultKind, FaultStorage, Op};
use metisdb::{Db, Options};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Byte offsets of every chunk frame of a snapshot file.
fn chunk_offsets(b: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut at = HEADER_LEN;
    while b[at..at + 4] == CHUNK_TAG {
        let f = Frame::decode(b[at..at + FRAME_LEN].try_into().unwrap()).unwrap();
        v.push(at);
        at += FRAME_LEN + f.compressed_len as usize;
    }
    v
}

/// `metis db verify` of `dir` passes: pages, records, and the root recomputed from the tables.
fn assert_verifies(dir: &Path, root: &str) {
    let ver = metis_ok(&["db", "verify", "--datadir", s(dir)]);
    assert_eq!(field(&ver, "state_root_recomputed"), root);
    assert!(ver.trim_end().ends_with("ok"), "{ver}");
}

/// A source data dir with history and an exported snapshot of it.
fn source(t: &Path) -> (PathBuf, PathBuf, String) {
    let src = t.join("src");
    let root = synth(&src, 3000, 4, 300);
    let snap = t.join("state.snap");
    let out = export(&src, None, &snap);
    assert_eq!(field(&out, "state_root"), root);
    (src, snap, root)
}

/// Addresses and slots of a state, from its JSONL dump.
fn sample_queries(dir: &Path, t: &Path) -> Vec<Vec<String>> {
    let dump = t.join(format!("{}.jsonl", dir.file_name().unwrap().to_string_lossy()));
    metis_ok(&["export-state", "--datadir", s(dir), "--out", s(&dump)]);
    let text = std::fs::read_to_string(&dump).unwrap();
    let mut q = Vec::new();
    for line in text.lines().skip(1).step_by(97).take(30) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut args = vec!["--address".to_string(), v["address"].as_str().unwrap().to_string(), "--code".into()];
        if let Some(st) = v["storage"].as_object() {
            for k in st.keys() {
                args.extend(["--slot".to_string(), k.clone()]);
            }
        }
        q.push(args);
    }
    // An absent account and an absent slot.
    q.push(vec![
        "--address".into(),
        "0x00000000000000000000000000000000000000ee".into(),
        "--slot".into(),
        "0x5".into(),
    ]);
    q
}

fn db_get(dir: &Path, q: &[String], version: Option<u64>) -> String {
    let mut args: Vec<&str> = vec!["db", "get", "--datadir", s(dir)];
    args.extend(q.iter().map(String::as_str));
    let v = version.map(|v| v.to_string());
    if let Some(v) = &v {
        args.extend(["--version", v]);
    }
    let out = metis_ok(&args);
    // The version line differs when comparing an older version with its import.
    out.lines().filter(|l| !l.starts_with("version ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn round_trip_gives_the_same_root_and_the_same_answers() {
    let (_t, t) = tmp();
    let (src, snap, root) = source(&t);
    let v = metis_ok(&["snapshot", "verify", s(&snap)]);
    assert_eq!(field(&v, "state_root"), root);
    assert_eq!(field(&v, "block"), "4");
    assert!(v.lines().last() == Some("ok"), "{v}");
    assert!(field(&v, "chunks").parse::<u64>().unwrap() > 3, "several chunks: {v}");

    let dst = t.join("dst");
    let out = metis_ok(&["snapshot", "import", "--datadir", s(&dst), s(&snap)]);
    assert_eq!(field(&out, "state_root"), root);
    assert_eq!(root_of(&dst), root);
    let info = metis_ok(&["db", "info", "--datadir", s(&dst)]);
    assert_eq!(field(&info, "version"), "4", "the import is version N = the snapshot's block");
    assert!(!staging_dir(&dst).unwrap().exists(), "staging removed after the switch");
    // One version, no history of the import's batches.
    let stats = metis_ok(&["db", "stats", "--datadir", s(&dst)]);
    assert!(stats.contains("versions 4..=4"), "{stats}");
    for q in sample_queries(&src, &t) {
        assert_eq!(db_get(&src, &q, None), db_get(&dst, &q, None), "db get {q:?}");
    }
    // The imported database passes a full verify (pages and recomputed root).
    assert_verifies(&dst, &root);

    // An older retained version exports and imports to that version's root.
    let old_root = field(
        &metis_ok(&[
            "db",
            "get",
            "--datadir",
            s(&src),
            "--address",
            "0x00000000000000000000000000000000000000ee",
            "--version",
            "2",
        ]),
        "version",
    );
    assert_eq!(old_root, "2");
    let snap2 = t.join("v2.snap");
    let e2 = export(&src, Some(2), &snap2);
    let dst2 = t.join("dst2");
    let i2 = metis_ok(&["snapshot", "import", "--datadir", s(&dst2), s(&snap2)]);
    assert_eq!(field(&i2, "state_root"), field(&e2, "state_root"));
    assert_ne!(field(&e2, "state_root"), root, "version 2 differs from version 4");
    for q in sample_queries(&src, &t).iter().take(10) {
        assert_eq!(db_get(&src, q, Some(2)), db_get(&dst2, q, None), "db get {q:?} at version 2");
    }
}

#[test]
fn export_levels_are_checked_and_every_level_imports_to_the_same_root() {
    let (_t, t) = tmp();
    let (src, _snap, root) = source(&t);
    let bad = t.join("bad.snap");
    let out = metis(&["snapshot", "export", "--datadir", s(&src), "--out", s(&bad), "--level", "23"]);
    assert!(!out.status.success(), "level 23 accepted");
    assert!(stderr(&out).contains("--level 23: zstd levels run from"), "{}", stderr(&out));
    assert!(!bad.exists(), "nothing written for a refused level");
    for level in ["19", "-1000"] {
        let file = t.join(format!("level{level}.snap"));
        metis_ok(&["snapshot", "export", "--datadir", s(&src), "--out", s(&file), "--level", level]);
        let dst = t.join(format!("dst{level}"));
        let out = metis_ok(&["snapshot", "import", "--datadir", s(&dst), s(&file)]);
        assert_eq!(field(&out, "state_root"), root, "level {level}");
    }
}

#[test]
fn export_pins_its_version_while_the_writer_commits() {
    use alloy_primitives::{Address, U256};
    use metisdb::state::{AccountInfo, KECCAK_EMPTY};
    let (_t, t) = tmp();
    let dir = t.join("live");
    let db = Db::open(&dir, Options::default()).unwrap();
    let put = |i: u64, n: u64| {
        let mut w = db.begin_state().unwrap();
        for j in 0..n {
            let a = Address::from_word(alloy_primitives::keccak256((i * 1_000_000 + j).to_le_bytes()));
            w.set_account(&a, Some(AccountInfo { nonce: i, balance: U256::from(j + 1), code_hash: KECCAK_EMPTY }))
                .unwrap();
            w.set_storage(&a, &U256::from(j % 3), &U256::from(i + 1)).unwrap();
        }
        w.commit(Vec::new()).unwrap()
    };
    let (v0, root0) = put(0, 4000);
    let out = t.join("live.snap");
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            metis_tools::snapshot::export::export(
                &db,
                Some(v0),
                &out,
                &metis_tools::snapshot::export::ExportOptions { chunk_bytes: 4096, ..Default::default() },
                &mut |_, _| {},
            )
            .unwrap()
        });
        // The writer keeps committing while the export runs.
        for i in 1..6 {
            put(i, 500);
        }
        let s = h.join().unwrap();
        assert_eq!(s.header.block_number, v0);
        assert_eq!(s.header.state_root, root0);
    });
    assert_ne!(B256::from(db.state_root()), root0);
    let v = metis_tools::snapshot::verify_file(&out, &mut |_, _| {}).unwrap();
    assert_eq!(v.computed_root, root0);
    drop(db);
}

/// Every entry of a snapshot file, in file order.
fn entries_of(file: &Path) -> Vec<metis_tools::snapshot::format::Entry> {
    let mut r = metis_tools::snapshot::reader::SnapshotReader::open(file).unwrap();
    let (mut order, mut totals, mut v) = (Default::default(), Default::default(), Vec::new());
    while let Some(chunk) = r.next_chunk().unwrap() {
        v.extend(metis_tools::snapshot::decode_chunk(file, &chunk, &mut order, &mut totals).unwrap());
    }
    v
}

#[test]
fn a_walk_split_into_many_units_writes_the_same_entries() {
    use metis_tools::snapshot::export::{export, ExportOptions};
    let (_t, t) = tmp();
    let (src, one_unit, root) = source(&t);
    let db = Db::open(&src, Options::default()).unwrap();
    // 3000 accounts in units of 7 (428 units over two walkers, each
    // holding at most a few units ahead of the writer), in small chunks.
    let many = t.join("many.snap");
    let opts = ExportOptions { accounts_per_unit: 7, chunk_bytes: 2048, ..Default::default() };
    let sum = export(&db, None, &many, &opts, &mut |_, _| {}).unwrap();
    drop(db);
    assert_eq!(format!("{:#x}", sum.header.state_root), root);
    let one = metis_ok(&["snapshot", "verify", s(&one_unit)]);
    assert!(sum.footer.chunks > 428, "a chunk per unit at least: {}", sum.footer.chunks);
    assert_eq!(sum.footer.accounts.to_string(), field(&one, "accounts"));
    assert_eq!(sum.footer.slots.to_string(), field(&one, "slots"));
    assert_eq!(sum.footer.codes.to_string(), field(&one, "codes"));
    assert!(entries_of(&many) == entries_of(&one_unit), "same entries in the same order");
    let v = metis_tools::snapshot::verify_file(&many, &mut |_, _| {}).unwrap();
    assert_eq!(format!("{:#x}", v.computed_root), root);
    let dst = t.join("dst");
    import_snapshot(&dst, &many, &ImportOptions::default(), &mut |_, _, _| {}).unwrap();
    assert_eq!(root_of(&dst), root);
}

#[test]
fn a_walker_that_fails_stops_the_export_cleanly() {
    use alloy_primitives::{Address, U256};
    use metis_tools::snapshot::export::{export, ExportOptions};
    use metisdb::state::{AccountInfo, KECCAK_EMPTY};
    let (_t, t) = tmp();
    let dir = t.join("bad");
    let db = Db::open(&dir, Options::default()).unwrap();
    let mut w = db.begin_state().unwrap();
    for j in 0..300u64 {
        let a = Address::from_word(alloy_primitives::keccak256(j.to_le_bytes()));
        w.set_account(&a, Some(AccountInfo { nonce: 1, balance: U256::from(j + 1), code_hash: KECCAK_EMPTY })).unwrap();
    }
    w.commit(Vec::new()).unwrap();
    // A slot of an account that does not exist, in the middle of the key space.
    let mut txn = db.begin_write().unwrap();
    let mut key = vec![0x80u8; 32];
    key.extend_from_slice(&[1u8; 32]);
    txn.put(metisdb::tables::STORAGE, &key, &[1]).unwrap();
    txn.commit(metisdb::CommitInfo { state_root: db.state_root(), extra: Vec::new() }).unwrap();
    for per_unit in [7, 1 << 16] {
        let out = t.join(format!("bad-{per_unit}.snap"));
        let opts = ExportOptions { accounts_per_unit: per_unit, chunk_bytes: 1024, ..Default::default() };
        let e = export(&db, None, &out, &opts, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("storage of account 0x8080") && e.contains("without an account record"), "{e}");
        let left: Vec<_> = std::fs::read_dir(&t).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!left.iter().any(|n| n.to_string_lossy().contains(".snap")), "nothing written: {left:?}");
    }
}

use alloy_primitives::B256;

/// Runs an import expected to fail: non-zero exit, target unchanged (and
/// absent if it was absent), and an error containing every `needles`.
fn import_fails(target: &Path, file: &Path, extra: &[&str], needles: &[&str]) -> String {
    let before = tree_digest(target);
    let mut args = vec!["snapshot", "import", "--datadir", s(target), s(file)];
    args.extend(extra);
    let o = metis(&args);
    let err = stderr(&o);
    assert!(!o.status.success(), "import of {} succeeded", file.display());
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
    assert_eq!(tree_digest(target), before, "target changed by a failed import: {err}");
    err
}

fn verify_fails(file: &Path, needles: &[&str]) {
    let o = metis(&["snapshot", "verify", s(file)]);
    let err = stderr(&o);
    assert!(!o.status.success(), "verify of {} succeeded", file.display());
    for n in needles {
        assert!(err.contains(n), "verify error {err:?} lacks {n:?}");
    }
}

/// A target that already holds something unrelated (so that "unchanged" is not trivially "absent").
fn target_with_a_file(t: &Path, name: &str) -> PathBuf {
    let d = t.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("notes.txt"), b"operator notes").unwrap();
    d
}

#[test]
fn truncated_files_are_rejected_with_where_they_end() {
    let (_t, t) = tmp();
    let (_src, snap, _) = source(&t);
    let bytes = std::fs::read(&snap).unwrap();
    let offs = chunk_offsets(&bytes);
    let footer_at = bytes.len() - 64;
    for (i, cut) in [60, HEADER_LEN + 10, offs[2] + 20, offs[offs.len() / 2] + FRAME_LEN + 5, footer_at, footer_at + 30]
        .into_iter()
        .enumerate()
    {
        let f = t.join(format!("cut{i}.snap"));
        std::fs::write(&f, &bytes[..cut]).unwrap();
        let needle: &str = if cut < HEADER_LEN { "shorter than a snapshot header" } else { "truncated" };
        verify_fails(&f, &[needle]);
        let target = if i % 2 == 0 { t.join(format!("absent{i}")) } else { target_with_a_file(&t, &format!("cut{i}")) };
        import_fails(&target, &f, &[], &[needle]);
        let _ = std::fs::remove_dir_all(staging_dir(&target).unwrap());
    }
    // Truncated exactly at a chunk boundary: no footer.
    let f = t.join("boundary.snap");
    std::fs::write(&f, &bytes[..offs[3]]).unwrap();
    verify_fails(&f, &["truncated", "after 3 complete chunks"]);
}

#[test]
fn a_flipped_bit_in_any_chunk_is_caught_and_named() {
    let (_t, t) = tmp();
    let (_src, snap, _) = source(&t);
    let bytes = std::fs::read(&snap).unwrap();
    let offs = chunk_offsets(&bytes);
    assert!(offs.len() >= 4);
    let target = target_with_a_file(&t, "flip-target");
    for (n, &at) in offs.iter().enumerate() {
        let f = Frame::decode(bytes[at..at + FRAME_LEN].try_into().unwrap()).unwrap();
        // One flip in the frame header, one in the middle of the payload.
        for pos in [at + 17, at + FRAME_LEN + f.compressed_len as usize / 2] {
            let mut b = bytes.clone();
            b[pos] ^= 0x04;
            let file = t.join("flipped.snap");
            std::fs::write(&file, &b).unwrap();
            let place = format!("chunk {n} at byte {at}");
            verify_fails(&file, &[&place]);
            // Imports: every chunk for the first two, a sample after that (each import is a process).
            if n < 2 || n % 5 == 0 {
                import_fails(&target, &file, &[], &[&place]);
                let _ = std::fs::remove_dir_all(staging_dir(&target).unwrap());
            }
        }
    }
    // The header and the footer are checksummed too.
    for (pos, needle) in [(70usize, "header"), (bytes.len() - 40, "footer")] {
        let mut b = bytes.clone();
        b[pos] ^= 1;
        let file = t.join("flipped2.snap");
        std::fs::write(&file, &b).unwrap();
        verify_fails(&file, &[needle, "checksum"]);
        import_fails(&target, &file, &[], &[needle]);
        let _ = std::fs::remove_dir_all(staging_dir(&target).unwrap());
    }
}

#[test]
fn wrong_magic_and_newer_format_are_refused_before_anything_is_written() {
    let (_t, t) = tmp();
    let (_src, snap, _) = source(&t);
    let bytes = std::fs::read(&snap).unwrap();
    let target = t.join("never-created");
    let mut b = bytes.clone();
    b[..8].copy_from_slice(b"GETHSNAP");
    let f = t.join("magic.snap");
    std::fs::write(&f, &b).unwrap();
    verify_fails(&f, &["not a Metis snapshot", "header"]);
    import_fails(&target, &f, &[], &["not a Metis snapshot"]);
    assert!(!staging_dir(&target).unwrap().exists());
    // A JSONL dump given to snapshot import.
    let j = t.join("dump.jsonl");
    std::fs::write(&j, b"{\"root\":\"0x00\"}\n").unwrap();
    import_fails(&target, &j, &[], &["not a Metis snapshot"]);

    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    let f = t.join("newer.snap");
    std::fs::write(&f, &b).unwrap();
    verify_fails(&f, &["format version 2 is newer", "upgrade"]);
    import_fails(&target, &f, &[], &["format version 2 is newer"]);
    assert!(!staging_dir(&target).unwrap().exists());
}

#[test]
fn root_mismatch_is_found_before_the_switch() {
    let (_t, t) = tmp();
    let (_src, snap, root) = source(&t);
    let mut bytes = std::fs::read(&snap).unwrap();
    let mut h = Header::decode(&bytes[..HEADER_LEN]).unwrap();
    h.state_root = B256::repeat_byte(0x11);
    bytes[..HEADER_LEN].copy_from_slice(&h.encode());
    let f = t.join("lying.snap");
    std::fs::write(&f, &bytes).unwrap();
    verify_fails(&f, &["state root mismatch", "0x1111", &root]);
    let target = target_with_a_file(&t, "mismatch");
    import_fails(&target, &f, &[], &["state root mismatch", &root]);
    assert!(!staging_dir(&target).unwrap().exists(), "a wrong state is not kept for resume");
    // A data dir holding a database is never replaced without --overwrite.
    let full = t.join("full");
    synth(&full, 10, 0, 0);
    let before_root = root_of(&full);
    import_fails(&full, &snap, &[], &["already holds a database"]);
    assert_eq!(root_of(&full), before_root);
    let o = metis_ok(&["snapshot", "import", "--datadir", s(&full), s(&snap), "--overwrite"]);
    assert_eq!(field(&o, "state_root"), root);
    assert_eq!(root_of(&full), root);
}

fn nospace_after(nth: u64) -> Options {
    let fault = Fault { op: Op::Write, nth, persistent: true, kind: FaultKind::NoSpace };
    Options {
        wrap_storage: Some(Arc::new(move |inner| {
            Ok(Box::new(FaultStorage::new(inner, vec![fault])?) as Box<dyn metisdb::storage::Storage>)
        })),
        // Every batch durable at once (the staging database's default is a
        // flush point per second), so that a failure mid-file leaves
        // committed batches to resume from.
        flush_interval: std::time::Duration::ZERO,
        ..Options::default()
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_the_import_resumes() {
    let (_t, t) = tmp();
    let (_src, snap, root) = source(&t);
    let target = target_with_a_file(&t, "enospc");
    let before = tree_digest(&target);
    let small = ImportOptions { batch_bytes: 32 << 10, ..ImportOptions::default() };
    for nth in [1u64, 3, 40] {
        let opts = ImportOptions { db: nospace_after(nth), ..small.clone() };
        let e = import_snapshot(&target, &snap, &opts, &mut |_, _, _| {}).unwrap_err().to_string();
        assert!(e.contains("No space left on device") || e.contains("os error 28"), "{e}");
        assert!(e.contains(".enospc.import"), "the error names the staging database: {e}");
        assert_eq!(tree_digest(&target), before);
        // Space is back: --resume continues from the last committed batch.
        let r = import_snapshot(&target, &snap, &ImportOptions { resume: true, ..small.clone() }, &mut |_, _, _| {});
        let r = r.unwrap();
        assert_eq!(format!("{:#x}", r.state_root), root);
        assert_eq!(root_of(&target), root);
        // The slots written after the resume belong to the right accounts.
        assert_verifies(&target, &root);
        if nth == 40 {
            assert!(r.resumed_at_chunk.is_some_and(|c| c > 0), "resumed mid-file: {r:?}");
        }
        // Reset for the next round.
        std::fs::remove_file(target.join(metisdb::DATA_FILE)).unwrap();
        std::fs::remove_file(target.join(metisdb::LOCK_FILE)).unwrap();
        assert_eq!(tree_digest(&target), before);
    }
}

#[test]
fn an_interrupted_import_resumes_from_its_last_chunk() {
    let (_t, t) = tmp();
    let (_src, snap, root) = source(&t);
    let target = t.join("resumed");
    let small = ImportOptions { batch_bytes: 32 << 10, ..ImportOptions::default() };
    let stop = ImportOptions { stop_after_batches: Some(3), ..small.clone() };
    let e = import_snapshot(&target, &snap, &stop, &mut |_, _, _| {}).unwrap_err().to_string();
    assert!(e.contains("stopped after 3 batches"), "{e}");
    assert_eq!(tree_digest(&target), vec!["<absent>".to_string()]);
    let staging = staging_dir(&target).unwrap();
    assert!(staging.join(metisdb::DATA_FILE).exists());
    // Without --resume the staged import is neither lost nor silently reused.
    import_fails(&target, &snap, &[], &["--resume", ".resumed.import"]);
    // Another snapshot cannot resume it.
    let (_t2, t2) = tmp();
    let other = t2.join("other");
    synth(&other, 50, 0, 0);
    let other_snap = t2.join("other.snap");
    export(&other, None, &other_snap);
    import_fails(&target, &other_snap, &["--resume"], &["another snapshot file"]);
    // The CLI resumes and finishes.
    let out = metis_ok(&["snapshot", "import", "--datadir", s(&target), s(&snap), "--resume"]);
    assert_eq!(field(&out, "state_root"), root);
    let at: u64 = field(&out, "resumed_at_chunk").parse().unwrap();
    assert!(at > 0, "{out}");
    assert_eq!(root_of(&target), root);
    assert_verifies(&target, &root);
    assert!(!staging.exists());
}

#[test]
fn a_killed_import_resumes() {
    let (_t, t) = tmp();
    let src = t.join("big");
    let root = synth(&src, 20_000, 0, 0);
    let snap = t.join("big.snap");
    export(&src, None, &snap);
    let target = t.join("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_metis"))
        .args(["snapshot", "import", "--datadir", s(&target), s(&snap), "--batch-mib", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a batch is staged (or let it finish on a fast machine).
    let staging = staging_dir(&target).unwrap();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let len = std::fs::metadata(staging.join(metisdb::DATA_FILE)).map(|m| m.len()).unwrap_or(0);
        if len > 4 << 20 {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = child.wait().unwrap();
    if !status.success() {
        assert_eq!(tree_digest(&target), vec!["<absent>".to_string()], "a killed import left the target untouched");
        let out = metis_ok(&["snapshot", "import", "--datadir", s(&target), s(&snap), "--resume"]);
        assert_eq!(field(&out, "state_root"), root);
    }
    assert_eq!(root_of(&target), root);
}

/// Applies the same changes (new, changed and deleted accounts, slots set
/// and cleared, a wiped storage) to a database through the incremental
/// state writer; returns the new root.
fn apply_changes(dir: &Path, round: u64) -> String {
    use metisdb::state::{AccountInfo, Address, KECCAK_EMPTY, U256};
    let db = Db::open(dir, Options::default()).unwrap();
    let mut w = db.begin_state().unwrap();
    let big = Address::repeat_byte(0xb1);
    for i in 0..40u64 {
        let a = Address::left_padding_from(&(i * 7 + round).to_be_bytes());
        let info = AccountInfo { nonce: i + round, balance: U256::from(i * 1000 + 1), code_hash: KECCAK_EMPTY };
        w.set_account(&a, Some(info)).unwrap();
        w.set_storage(&a, &U256::from(i), &U256::from(i + 1 + round)).unwrap();
    }
    for s in (0..3000u64).step_by(13) {
        let v = if s % 2 == 0 { U256::ZERO } else { U256::from(s * 3 + round) };
        w.set_storage(&big, &U256::from(s), &v).unwrap();
    }
    // A mid-sized storage trie (built in one piece by the import), changed in place.
    let mid = Address::repeat_byte(0xe5);
    for s in (round..120).step_by(11) {
        let v = if s % 3 == 0 { U256::ZERO } else { U256::from(s * 5 + round + 1) };
        w.set_storage(&mid, &U256::from(s), &v).unwrap();
    }
    w.set_account(&Address::repeat_byte(0xc2), None).unwrap();
    w.wipe_storage(&Address::repeat_byte(0xc3)).unwrap();
    let (_, root) = w.commit(Vec::new()).unwrap();
    format!("{root:#x}")
}

/// Every entry of `table` at the newest version.
fn table_entries(dir: &Path, table: metisdb::Table) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = Db::open(dir, Options::default()).unwrap();
    let snap = db.snapshot(None).unwrap();
    let mut it = snap.range(table, &[]).unwrap();
    let mut v = Vec::new();
    while let Some((k, val)) = it.next().unwrap() {
        v.push((k.to_vec(), val.to_vec()));
    }
    v
}

/// A state with large storage tries (thousands of slots under one account,
/// split across import batches) and small ones.
fn storage_heavy_source(dir: &Path) -> String {
    use metisdb::state::{AccountInfo, Address, KECCAK_EMPTY, U256};
    let db = Db::open(dir, Options { create: true, ..Options::default() }).unwrap();
    let mut w = db.begin_state().unwrap();
    for (b, n) in [(0xb1u8, 3000u64), (0xc2, 700), (0xc3, 150), (0xd4, 1), (0xe5, 100)] {
        let a = Address::repeat_byte(b);
        let info = AccountInfo { nonce: n, balance: U256::from(n), code_hash: KECCAK_EMPTY };
        w.set_account(&a, Some(info)).unwrap();
        for s in 0..n {
            w.set_storage(&a, &U256::from(s), &U256::from(s * s + 1)).unwrap();
        }
    }
    for i in 0..2000u64 {
        let a = Address::left_padding_from(&(i * 7).to_be_bytes());
        let info = AccountInfo { nonce: i, balance: U256::from(i + 5), code_hash: KECCAK_EMPTY };
        w.set_account(&a, Some(info)).unwrap();
        for s in 0..(i % 5) {
            w.set_storage(&a, &U256::from(s), &U256::from(i + s + 1)).unwrap();
        }
    }
    let (_, root) = w.commit(Vec::new()).unwrap();
    format!("{root:#x}")
}

#[test]
fn an_imported_database_keeps_correct_incremental_roots() {
    let (_t, t) = tmp();
    let src = t.join("src");
    let root = storage_heavy_source(&src);
    let snap = t.join("heavy.snap");
    assert_eq!(field(&export(&src, None, &snap), "state_root"), root);
    // Small batches: accounts' storage spans batches; one run is interrupted and resumed.
    let small = ImportOptions { batch_bytes: 16 << 10, ..ImportOptions::default() };
    let dst = t.join("dst");
    let stop = ImportOptions { stop_after_batches: Some(5), ..small.clone() };
    import_snapshot(&dst, &snap, &stop, &mut |_, _, _| {}).unwrap_err();
    let r = import_snapshot(&dst, &snap, &ImportOptions { resume: true, ..small.clone() }, &mut |_, _, _| {});
    assert_eq!(format!("{:#x}", r.unwrap().state_root), root);
    let dst2 = t.join("dst2");
    let r2 = import_snapshot(&dst2, &snap, &ImportOptions::default(), &mut |_, _, _| {}).unwrap();
    assert_eq!(format!("{:#x}", r2.state_root), root);
    for d in [&dst, &dst2] {
        let ver = metis_ok(&["db", "verify", "--datadir", s(d)]);
        assert!(ver.trim_end().ends_with("ok"), "{ver}");
        // The import keeps exactly the branch records the incremental writer
        // kept for the source (a missing record would only cost speed later:
        // the writer then reads the leaves instead).
        for table in [metisdb::tables::ACCOUNT_TRIE, metisdb::tables::STORAGE_TRIE] {
            assert!(table_entries(&src, table) == table_entries(d, table), "records of table {table:?} differ");
        }
    }
    // The same changes on the source (built by the incremental writer) and
    // on the imports give the same roots, round after round.
    for round in 0..3 {
        let want = apply_changes(&src, round);
        assert_eq!(apply_changes(&dst, round), want, "round {round}");
        assert_eq!(apply_changes(&dst2, round), want, "round {round}");
    }
    // After the rounds of changes (deletes, wipes, collapsing branches), the
    // records the incremental writer kept equal those of a fresh import of
    // the same state.
    let snap2 = t.join("heavy2.snap");
    export(&src, None, &snap2);
    let dst3 = t.join("dst3");
    import_snapshot(&dst3, &snap2, &ImportOptions::default(), &mut |_, _, _| {}).unwrap();
    for table in [metisdb::tables::ACCOUNT_TRIE, metisdb::tables::STORAGE_TRIE] {
        assert!(table_entries(&src, table) == table_entries(&dst3, table), "records of table {table:?} differ");
    }
    for d in [&dst, &dst2] {
        let ver = metis_ok(&["db", "verify", "--datadir", s(d)]);
        assert!(ver.trim_end().ends_with("ok"), "{ver}");
    }
}

/// A database of an older format version (the leaves are the same; the
/// trie records followed another policy): commands that only read open
/// it, `db verify` refuses it naming the way out, `snapshot export` reads
/// it (unchanged) and the import gives a database of this build's format
/// with the same root.
#[test]
fn an_older_format_moves_to_this_one_through_a_snapshot() {
    let (_t, t) = tmp();
    let src = t.join("old");
    let root = synth(&src, 800, 2, 100);
    let file = src.join(metisdb::DATA_FILE);
    let mut b = std::fs::read(&file).unwrap();
    let older = metisdb::meta::FORMAT_VERSION - 1;
    for (slot, off) in metisdb::meta::META_OFFSETS.iter().enumerate() {
        let rec = &mut b[*off as usize..*off as usize + metisdb::meta::META_LEN];
        rec[16..20].copy_from_slice(&older.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64_with_seed(&rec[8..], 0x4d45_5441_0000_0000 | slot as u64);
        rec[..8].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(&file, &b).unwrap();

    // Commands that only read it open it; `db verify` (which checks the
    // stored records against this build's policy) does not.
    let info = metis_ok(&["db", "info", "--datadir", s(&src)]);
    assert!(field(&info, "format").starts_with(&format!("{older} (older")), "{info}");
    assert_eq!(field(&info, "state_root"), root);
    let o = metis(&["db", "verify", "--datadir", s(&src)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("format version {older}")) && e.contains("snapshot export"), "{e}");

    let snap = t.join("old.snap");
    let out = export(&src, None, &snap);
    assert_eq!(field(&out, "state_root"), root);
    assert!(std::fs::read(&file).unwrap() == b, "the export changed the older file");
    let dst = t.join("new");
    let i = metis_ok(&["snapshot", "import", "--datadir", s(&dst), s(&snap)]);
    assert_eq!(field(&i, "state_root"), root);
    let info = metis_ok(&["db", "info", "--datadir", s(&dst), "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], metisdb::meta::FORMAT_VERSION);
    let ver = metis_ok(&["db", "verify", "--datadir", s(&dst)]);
    assert_eq!(field(&ver, "state_root_recomputed"), root);
    assert!(ver.trim_end().ends_with("ok"), "{ver}");
}
