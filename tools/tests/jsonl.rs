//! `metis export-state` / `metis init-state`: reth's JSONL state dump, both
//! ways, checked against an independently computed root (alloy-trie).

mod common;

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_rlp::Encodable;
use common::*;
use std::collections::BTreeMap;

#[test]
fn export_state_then_init_state_gives_the_same_root() {
    let (_t, t) = tmp();
    let src = t.join("src");
    let root = synth(&src, 2500, 3, 200);
    let dump = t.join("state.jsonl");
    let out = metis_ok(&["export-state", "--datadir", s(&src), "--out", s(&dump)]);
    assert_eq!(field(&out, "state_root"), root);
    let text = std::fs::read_to_string(&dump).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(first, format!("{{\"root\":\"{root}\"}}"));
    // reth's field order and formats.
    let line = text
        .lines()
        .find(|l| l.contains("\"storage\"") && l.contains("\"code\""))
        .expect("an account with code and storage");
    assert!(line.starts_with("{\"nonce\":\"0x"), "{line}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let (k, val) = v["storage"].as_object().unwrap().iter().next().unwrap();
    assert_eq!((k.len(), val.as_str().unwrap().len()), (66, 66), "storage keys and values as 32-byte hex");
    assert!(line.ends_with(&format!("\"address\":{}}}", v["address"])), "address last: {line}");

    let dst = t.join("dst");
    // Tiny sort runs and batches: the external sort merges many runs.
    let o = metis_ok(&[
        "init-state",
        "--datadir",
        s(&dst),
        s(&dump),
        "--version",
        "3",
        "--sort-mib",
        "1",
        "--batch-mib",
        "1",
    ]);
    assert_eq!(field(&o, "state_root"), root);
    assert_eq!(field(&o, "version"), "3");
    assert_eq!(root_of(&dst), root);
    // And back out: identical dump.
    let dump2 = t.join("again.jsonl");
    metis_ok(&["export-state", "--datadir", s(&dst), "--out", s(&dump2)]);
    assert_eq!(std::fs::read_to_string(&dump2).unwrap(), text);
}

/// A dump walked in many units by two threads is the same file as one
/// walked in one unit.
#[test]
fn a_dump_split_into_many_units_writes_the_same_lines() {
    use metis_tools::jsonl::export_state_in_units;
    let (_t, t) = tmp();
    let src = t.join("src");
    synth(&src, 2500, 3, 200);
    let one = t.join("one.jsonl");
    let out = metis_ok(&["export-state", "--datadir", s(&src), "--out", s(&one)]);
    let db = metisdb::Db::open(&src, metisdb::Options::default()).unwrap();
    let many = t.join("many.jsonl");
    // About 2,500 accounts in units of 7: some 350 units over two walkers.
    let sum = export_state_in_units(&db, None, &many, 7, &mut |_, _| {}).unwrap();
    assert_eq!(sum.accounts.to_string(), field(&out, "accounts"));
    assert!(sum.accounts > 2000);
    assert!(std::fs::read(&many).unwrap() == std::fs::read(&one).unwrap(), "the same bytes");
    drop(db);
}

fn rlp_account(nonce: u64, balance: U256, storage_root: B256, code_hash: B256) -> Vec<u8> {
    let payload = nonce.length() + balance.length() + storage_root.length() + code_hash.length();
    let mut out = Vec::new();
    alloy_rlp::Header { list: true, payload_length: payload }.encode(&mut out);
    nonce.encode(&mut out);
    balance.encode(&mut out);
    storage_root.encode(&mut out);
    code_hash.encode(&mut out);
    out
}

fn reference_trie(leaves: BTreeMap<B256, Vec<u8>>) -> B256 {
    let mut hb = alloy_trie::HashBuilder::default();
    for (k, v) in &leaves {
        hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
    }
    hb.root()
}

#[test]
fn a_hand_written_reth_dump_imports_with_the_reference_root() {
    // (address, nonce, balance, code, storage)
    type Acct = (Address, u64, U256, Vec<u8>, Vec<(U256, U256)>);
    let accounts: Vec<Acct> = vec![
        (Address::with_last_byte(1), 0, U256::from(10u64).pow(U256::from(18u64)), vec![], vec![]),
        (
            Address::with_last_byte(2),
            1,
            U256::ZERO,
            vec![0x60, 0x80, 0x60, 0x40, 0x52, 0x00],
            vec![(U256::from(0u64), U256::from(0x2au64)), (U256::from(1u64), U256::MAX)],
        ),
        (
            Address::repeat_byte(0xab),
            7,
            U256::from(12345u64),
            vec![0x60, 0x80, 0x60, 0x40, 0x52, 0x00],
            vec![(U256::from_be_slice(&keccak256(b"mapping")[..]), U256::from(5u64))],
        ),
        (Address::repeat_byte(0x42), 3, U256::from(1u64), vec![0xfe], vec![(U256::from(9u64), U256::from(1u64))]),
    ];
    let mut leaves = BTreeMap::new();
    for (a, nonce, bal, code, storage) in &accounts {
        let sroot = reference_trie(
            storage.iter().map(|(k, v)| (keccak256(k.to_be_bytes::<32>()), alloy_rlp::encode(v))).collect(),
        );
        let ch = if code.is_empty() { metisdb::state::KECCAK_EMPTY } else { keccak256(code) };
        leaves.insert(keccak256(a), rlp_account(*nonce, *bal, sroot, ch));
    }
    let expected = reference_trie(leaves);

    // Written by hand in the shapes reth accepts: quantities as hex or
    // numbers, short storage keys and values, an ignored extra field, a
    // zero slot (absent) and the fields in any order.
    let mut text = format!("{{\"root\": \"{expected:#x}\"}}\n");
    text += &format!("{{\"address\":\"{:#x}\",\"balance\":\"0xde0b6b3a7640000\"}}\n", accounts[0].0);
    text += &format!(
        "{{\"balance\":\"0x0\",\"nonce\":\"0x1\",\"code\":\"0x608060405200\",\"storage\":{{\"0x00\":\"0x2a\",\"0x0000000000000000000000000000000000000000000000000000000000000001\":\"0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\",\"0x07\":\"0x0\"}},\"address\":\"{:#x}\"}}\n",
        accounts[1].0
    );
    text += &format!(
        "{{\"nonce\":7,\"balance\":\"12345\",\"code\":\"0x608060405200\",\"storage\":{{\"{:#x}\":\"0x05\"}},\"address\":\"{}\",\"secretKey\":\"0x01\"}}\n",
        B256::from(accounts[2].4[0].0),
        format!("{:#x}", accounts[2].0).to_uppercase().replacen("0X", "0x", 1)
    );
    text += &format!("{{\"address\":\"{:#x}\",\"nonce\":\"0x3\",\"balance\":\"0x1\",\"code\":\"0xfe\",\"storage\":{{\"0x9\":\"0x1\"}}}}\n", accounts[3].0);
    let (_t, t) = tmp();
    let f = t.join("hand.jsonl");
    std::fs::write(&f, &text).unwrap();
    let dst = t.join("dst");
    let o = metis_ok(&["init-state", "--datadir", s(&dst), s(&f)]);
    assert_eq!(field(&o, "state_root"), format!("{expected:#x}"));
    assert_eq!(field(&o, "accounts"), "4");
    assert_eq!(field(&o, "slots"), "4");
    assert_eq!(field(&o, "codes"), "2", "identical code stored once");
    let g = metis_ok(&[
        "db",
        "get",
        "--datadir",
        s(&dst),
        "--address",
        &format!("{:#x}", accounts[1].0),
        "--slot",
        "1",
        "--slot",
        "7",
        "--code",
    ]);
    assert_eq!(field(&g, "nonce"), "1");
    assert!(g.contains(&format!("slot 0x1 {:#x}", U256::MAX)), "{g}");
    assert!(g.contains("slot 0x7 0x0"), "{g}");
    assert_eq!(field(&g, "code"), "0x608060405200");

    // A wrong root line: refused, nothing created.
    let bad = t.join("bad-root.jsonl");
    std::fs::write(&bad, text.replacen(&format!("{expected:#x}"), &format!("{:#x}", B256::repeat_byte(3)), 1)).unwrap();
    let target = t.join("never");
    let o = metis(&["init-state", "--datadir", s(&target), s(&bad)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("state root mismatch"), "{}", stderr(&o));
    assert_eq!(tree_digest(&target), vec!["<absent>".to_string()]);
    assert!(!metis_tools::import::staging_dir(&target).unwrap().exists());

    // A malformed line: the error names it.
    let broken = t.join("broken.jsonl");
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "{\"address\":\"0x12\",\"balance\":\"0x1\"}";
    std::fs::write(&broken, lines.join("\n")).unwrap();
    let o = metis(&["init-state", "--datadir", s(&target), s(&broken)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 4") && stderr(&o).contains("not 20 bytes"), "{}", stderr(&o));
    assert_eq!(tree_digest(&target), vec!["<absent>".to_string()]);

    // Lines are parsed in batches on several threads: with two bad lines
    // megabytes apart (blank lines between), the first one is reported.
    let long = t.join("long.jsonl");
    let filler = " ".repeat(1000);
    let mut text_long: Vec<String> = text.lines().map(str::to_string).collect();
    text_long.extend(std::iter::repeat_n(filler.clone(), 1500));
    text_long.push("{\"address\":\"0x12\",\"balance\":\"0x1\"}".into());
    let first_bad = text_long.len();
    text_long.extend(std::iter::repeat_n(filler, 1500));
    text_long.push("not json".into());
    std::fs::write(&long, text_long.join("\n")).unwrap();
    let o = metis(&["init-state", "--datadir", s(&target), s(&long)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("line {first_bad}:")) && stderr(&o).contains("not 20 bytes"),
        "expected line {first_bad}: {}",
        stderr(&o)
    );
    assert_eq!(tree_digest(&target), vec!["<absent>".to_string()]);

    // The same account twice.
    let dup = t.join("dup.jsonl");
    std::fs::write(&dup, format!("{}{}", text, text.lines().nth(1).unwrap())).unwrap();
    let o = metis(&["init-state", "--datadir", s(&target), s(&dup)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("appears twice"), "{}", stderr(&o));
}

#[test]
fn export_state_needs_preimages() {
    let (_t, t) = tmp();
    let src = t.join("nopre");
    metis_ok(&[
        "db",
        "synth",
        "--datadir",
        s(&src),
        "--accounts",
        "20",
        "--blocks",
        "0",
        "--changes",
        "0",
        "--preimages",
        "false",
    ]);
    let o = metis(&["export-state", "--datadir", s(&src), "--out", s(&t.join("x.jsonl"))]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no recorded address preimage"), "{}", stderr(&o));
    assert!(!t.join("x.jsonl").exists());
    // In many units on two threads, the walker's error is still the one
    // reported (not the writer's "a walker stopped"), with no file left.
    let db = metisdb::Db::open(&src, metisdb::Options::default()).unwrap();
    let e = metis_tools::jsonl::export_state_in_units(&db, None, &t.join("x.jsonl"), 3, &mut |_, _| {});
    let e = e.unwrap_err().to_string();
    assert!(e.contains("no recorded address preimage"), "{e}");
    assert!(!t.join("x.jsonl").exists() && !t.join(".x.jsonl.partial").exists());
    drop(db);
    // A snapshot still works (by hashes).
    let snap = t.join("nopre.snap");
    let out = export(&src, None, &snap);
    let dst = t.join("dst");
    let i = metis_ok(&["snapshot", "import", "--datadir", s(&dst), s(&snap)]);
    assert_eq!(field(&i, "state_root"), field(&out, "state_root"));
}
