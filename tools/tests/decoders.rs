//! Decoders of the snapshot format and of the import's resume record on
//! arbitrary, mutated and valid input: never a panic or an allocation sized
//! by the input, encodings round-trip, and what decodes is canonical (it
//! encodes back to the bytes it came from). Checksums stop corruption
//! before these decoders see it; these tests are about input that carries
//! valid checksums and still lies (a hand-made or buggy file).
//!
//! `METIS_PROPTEST_CASES=N` runs N cases per property (default 512).

use metis_tools::import::Checkpoint;
use metis_tools::snapshot::format::{
    put_account, put_code, put_slot, put_varint, ChunkKind, Entry, EntryDecoder, Footer, Frame, Header, FOOTER_LEN,
    FRAME_LEN, HEADER_LEN,
};
use metis_tools::snapshot::reader::Position;
use metis_tools::snapshot::Totals;
use metisdb::state::{AccountInfo, Address, B256, KECCAK_EMPTY, U256};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("METIS_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
}

fn b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}

/// Integers of every byte length, zero included.
fn u256() -> impl Strategy<Value = U256> {
    (any::<[u8; 32]>(), 0usize..=32).prop_map(|(b, len)| U256::from_be_slice(&b[32 - len..]))
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (b256(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(hash, code)| Entry::Code { hash, code }),
        (b256(), proptest::option::of(any::<[u8; 20]>()), any::<u64>(), u256(), proptest::option::of(b256())).prop_map(
            |(hash, address, nonce, balance, code_hash)| Entry::Account {
                hash,
                address: address.map(Address::from),
                info: AccountInfo { nonce, balance, code_hash: code_hash.unwrap_or(KECCAK_EMPTY) },
            }
        ),
        // Zero slots are absent: a slot's value is at least 1.
        (b256(), proptest::option::of(u256()), u256().prop_map(|v| v.max(U256::from(1))))
            .prop_map(|(hash, slot, value)| Entry::Slot { hash, slot, value }),
    ]
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            Entry::Code { hash, code } => put_code(&mut out, hash, code),
            Entry::Account { hash, address, info } => put_account(&mut out, hash, address.as_ref(), info),
            Entry::Slot { hash, slot, value } => put_slot(&mut out, hash, slot.as_ref(), value),
        }
    }
    out
}

/// Decodes until the end or the first error; every entry that decodes must
/// encode back to exactly the bytes it was read from.
fn decode_canonical(payload: &[u8]) -> Result<Vec<Entry>, TestCaseError> {
    let mut d = EntryDecoder::new(payload);
    let mut out = Vec::new();
    loop {
        let at = d.position();
        match d.next() {
            Ok(Some(e)) => {
                let consumed = &payload[at..d.position()];
                prop_assert_eq!(encode(std::slice::from_ref(&e)), consumed.to_vec(), "entry {:?} is not canonical", e);
                out.push(e);
            }
            Ok(None) => return Ok(out),
            Err(reason) => {
                prop_assert!(!reason.is_empty());
                prop_assert!(d.position() <= payload.len());
                return Ok(out);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn entries_round_trip(entries in proptest::collection::vec(entry(), 0..40)) {
        let payload = encode(&entries);
        let mut d = EntryDecoder::new(&payload);
        let mut back = Vec::new();
        while let Some(e) = d.next().map_err(TestCaseError::fail)? {
            back.push(e);
        }
        prop_assert_eq!(back, entries);
        prop_assert_eq!(d.position(), payload.len());
    }

    #[test]
    fn arbitrary_payloads_decode_canonically_or_fail(payload in proptest::collection::vec(any::<u8>(), 0..400)) {
        decode_canonical(&payload)?;
    }

    #[test]
    fn mutated_payloads_decode_canonically_or_fail(
        entries in proptest::collection::vec(entry(), 1..20),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut payload = encode(&entries);
        for (at, byte) in edits {
            let at = at.index(payload.len());
            payload[at] = byte;
        }
        decode_canonical(&payload)?;
        payload.truncate(cut.index(payload.len()));
        decode_canonical(&payload)?;
    }

    #[test]
    fn headers_frames_and_footers_round_trip(
        (chain_id, block_number, created_ms) in any::<(u64, u64, u64)>(),
        (block_hash, state_root) in (b256(), b256()),
        (seq, raw_len, entries) in (any::<u64>(), 0usize..(64 << 20), any::<u32>()),
        footer in any::<[u64; 6]>(),
    ) {
        let h = Header { chain_id, block_number, block_hash, state_root, created_ms };
        prop_assert_eq!(Header::decode(&h.encode()), Ok(h));
        let f = Frame::new(ChunkKind::State, seq, b"compressed", raw_len, entries);
        prop_assert_eq!(Frame::decode(&f.encode()), Ok(f));
        let [chunks, accounts, slots, codes, raw_bytes, file_len] = footer;
        let t = Footer { chunks, accounts, slots, codes, raw_bytes, file_len };
        prop_assert_eq!(Footer::decode(&t.encode()), Ok(t));
    }

    #[test]
    fn arbitrary_headers_frames_and_footers_fail_or_round_trip(
        bytes in proptest::collection::vec(any::<u8>(), HEADER_LEN),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        // Random bytes, and one flipped bit in a valid encoding (caught by
        // the checksum, or in bytes the checksum does not cover).
        let valid = Header { chain_id: 1, block_number: 2, block_hash: B256::ZERO, state_root: B256::ZERO, created_ms: 3 };
        let mut flipped = valid.encode();
        flipped[flip.index(HEADER_LEN)] ^= 1 << bit;
        for b in [&bytes[..], &flipped[..]] {
            for len in [b.len(), HEADER_LEN - 1, 7, 0] {
                if let Ok(h) = Header::decode(&b[..len]) {
                    prop_assert_eq!(h.encode().to_vec(), b[..HEADER_LEN].to_vec());
                }
            }
            let frame: [u8; FRAME_LEN] = b[..FRAME_LEN].try_into().unwrap();
            if let Ok(f) = Frame::decode(&frame) {
                prop_assert_eq!(f.encode(), frame);
            }
            let footer: [u8; FOOTER_LEN] = b[..FOOTER_LEN].try_into().unwrap();
            if let Ok(t) = Footer::decode(&footer) {
                prop_assert_eq!(t.encode(), footer);
            }
        }
        prop_assert!(Header::decode(&flipped).is_err(), "a flipped bit in the header goes unnoticed");
    }

    #[test]
    fn checkpoints_round_trip_and_arbitrary_records_do_not_panic(
        nums in any::<[u64; 8]>(),
        hashes in (proptest::option::of(b256()), proptest::option::of(b256()), proptest::option::of(b256())),
        complete in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let [header_id, file_len, offset, seq, raw_bytes, accounts, slots, codes] = nums;
        let c = Checkpoint {
            header_id,
            file_len,
            pos: Position { offset, seq, raw_bytes },
            totals: Totals { accounts, slots, codes },
            last_code: hashes.0,
            last_account: hashes.1,
            last_slot: hashes.2,
            complete,
        };
        prop_assert_eq!(Checkpoint::decode(&c.encode()), Some(c.clone()));
        let _ = Checkpoint::decode(&bytes);
        let mut cut = c.encode();
        cut.pop();
        prop_assert_eq!(Checkpoint::decode(&cut), None);
    }
}

/// Lengths that promise more than the payload holds fail without
/// allocating what they promise.
#[test]
fn lengths_past_the_payload_fail_cleanly() {
    let mut code = Vec::new();
    put_code(&mut code, &B256::repeat_byte(1), b"\x60\x00");
    let tag = code[0];
    for len in [3u64, 1 << 20, u32::MAX as u64, u64::MAX >> 1] {
        let mut p = vec![tag];
        p.extend_from_slice(&[1u8; 32]);
        put_varint(&mut p, len);
        p.extend_from_slice(&[0x60, 0x00]);
        let err = EntryDecoder::new(&p).next().unwrap_err();
        assert!(err.contains("past the chunk end") || err.contains("exceeds the limit"), "{len}: {err}");
    }
}

/// One value, one encoding: a padded varint (a nonce of 0 as `80 00`) is
/// refused, as is a `uint` with a leading zero byte.
#[test]
fn padded_integers_are_refused() {
    let info = AccountInfo { nonce: 0, balance: U256::from(15u64), code_hash: KECCAK_EMPTY };
    let mut canonical = Vec::new();
    put_account(&mut canonical, &B256::ZERO, None, &info);
    // tag, hash (32), flags, nonce varint (one byte: 0), balance uint (01 0f).
    assert_eq!(canonical[34], 0);
    let mut padded = canonical.clone();
    padded.splice(34..35, [0x80, 0x00]);
    let err = EntryDecoder::new(&padded).next().unwrap_err();
    assert!(err.contains("not minimal"), "{err}");
    let mut zero_led = canonical.clone();
    zero_led.splice(35..37, [0x02, 0x00, 0x0f]);
    let err = EntryDecoder::new(&zero_led).next().unwrap_err();
    assert!(err.contains("leading zero"), "{err}");
    assert!(EntryDecoder::new(&canonical).next().unwrap().is_some());
}
