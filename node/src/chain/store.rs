//! The block tables and their encoding.
//!
//! | table | key | value |
//! |---|---|---|
//! | `BLOCKS` | number, 8 bytes big-endian | `rlp([header, [tx, ...], [sender, ...]])`: the consensus header, each transaction's EIP-2718 bytes as an RLP string, each recovered sender as a 20-byte string |
//! | `BLOCK_NUMBERS` | block hash (32) | number, 8 bytes big-endian |
//! | `TX_LOOKUP` | transaction hash (32) | number (8 BE) ++ index in the block (4 BE) |
//! | `RECEIPTS` | number, 8 bytes big-endian | `rlp([receipt, ...])`: each receipt's EIP-2718 consensus encoding as an RLP string |
//! | `METADATA` | `node/chain` | the chain parameters as JSON ([`super::ChainConfig::to_json`]) |
//!
//! The block hash is keccak256 of the header's RLP; the engine's per-version
//! `extra` bytes of version `n` hold the hash of block `n` as well.

use crate::error::{NodeError, Result};
use crate::txs::SignedTx;
use alloy_consensus::{Header, ReceiptEnvelope, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, Address, Bytes, B256};
use alloy_rlp::{Decodable, Encodable};
use metis_executor::receipts::Receipt;
use metisdb::state::ReadTables;
use metisdb::tables::{BLOCKS, BLOCK_NUMBERS, METADATA, RECEIPTS, TX_LOOKUP};
use metisdb::WriteTxn;

/// METADATA key of the chain parameters.
pub const CHAIN_KEY: &[u8] = b"node/chain";

/// Key of a block number.
pub fn number_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// A block as stored.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    /// Header.
    pub header: Header,
    /// keccak256 of the header's RLP.
    pub hash: B256,
    /// Transactions in order.
    pub txs: Vec<SignedTx>,
}

/// Encodes a block record.
pub fn encode_block(header: &Header, txs: &[SignedTx]) -> Vec<u8> {
    let tx_bytes: Vec<&Bytes> = txs.iter().map(|t| &t.encoded).collect();
    let senders: Vec<Address> = txs.iter().map(|t| t.sender).collect();
    let payload = header.length() + tx_bytes.length() + senders.length();
    let mut out = Vec::with_capacity(payload + 8);
    alloy_rlp::Header { list: true, payload_length: payload }.encode(&mut out);
    header.encode(&mut out);
    tx_bytes.encode(&mut out);
    senders.encode(&mut out);
    out
}

fn corrupt(what: &'static str, key: u64, e: impl std::fmt::Display) -> NodeError {
    NodeError::corrupt(what, key, e)
}

/// Decodes the header of a block record and returns the rest of the payload.
fn decode_header(number: u64, b: &[u8]) -> Result<(Header, B256, &[u8])> {
    let mut buf = b;
    let outer = alloy_rlp::Header::decode(&mut buf).map_err(|e| corrupt("block", number, e))?;
    if !outer.list || outer.payload_length != buf.len() {
        return Err(corrupt("block", number, "not an RLP list of the record's length"));
    }
    let start = buf;
    let header = Header::decode(&mut buf).map_err(|e| corrupt("block", number, e))?;
    let hash = keccak256(&start[..start.len() - buf.len()]);
    Ok((header, hash, buf))
}

/// Decodes a block record.
pub fn decode_block(number: u64, b: &[u8]) -> Result<StoredBlock> {
    let (header, hash, mut rest) = decode_header(number, b)?;
    let tx_bytes = Vec::<Bytes>::decode(&mut rest).map_err(|e| corrupt("block", number, e))?;
    let senders = Vec::<Address>::decode(&mut rest).map_err(|e| corrupt("block", number, e))?;
    if tx_bytes.len() != senders.len() || !rest.is_empty() {
        return Err(corrupt("block", number, "transactions and senders differ in count, or trailing bytes"));
    }
    let mut txs = Vec::with_capacity(tx_bytes.len());
    for (raw, sender) in tx_bytes.into_iter().zip(senders) {
        let mut buf = &raw[..];
        let envelope = TxEnvelope::decode_2718(&mut buf).map_err(|e| corrupt("block", number, e))?;
        let hash = *envelope.tx_hash();
        txs.push(SignedTx { envelope, sender, hash, encoded: raw });
    }
    Ok(StoredBlock { header, hash, txs })
}

/// Encodes the receipts record of a block.
pub fn encode_receipts(receipts: &[Receipt]) -> Vec<u8> {
    let encoded: Vec<Bytes> = receipts.iter().map(|r| Bytes::from(r.encoded_2718())).collect();
    alloy_rlp::encode(&encoded)
}

/// Decodes the receipts record of a block.
pub fn decode_receipts(number: u64, b: &[u8]) -> Result<Vec<ReceiptEnvelope>> {
    let mut buf = b;
    let items = Vec::<Bytes>::decode(&mut buf).map_err(|e| corrupt("receipts", number, e))?;
    items
        .iter()
        .map(|raw| {
            let mut r = &raw[..];
            ReceiptEnvelope::decode_2718(&mut r).map_err(|e| corrupt("receipts", number, e))
        })
        .collect()
}

/// Writes a block, its lookups and receipts into the transaction of its version.
pub fn write_block(
    txn: &mut WriteTxn<'_>,
    header: &Header,
    hash: &B256,
    txs: &[SignedTx],
    receipts: &[Receipt],
) -> metisdb::Result<()> {
    let key = number_key(header.number);
    txn.put(BLOCKS, &key, &encode_block(header, txs))?;
    txn.put(BLOCK_NUMBERS, hash.as_slice(), &key)?;
    txn.put(RECEIPTS, &key, &encode_receipts(receipts))?;
    for (i, tx) in txs.iter().enumerate() {
        let mut loc = [0u8; 12];
        loc[..8].copy_from_slice(&key);
        loc[8..].copy_from_slice(&(i as u32).to_be_bytes());
        txn.put(TX_LOOKUP, tx.hash.as_slice(), &loc)?;
    }
    Ok(())
}

/// Reads a whole block.
pub fn read_block<R: ReadTables>(r: &R, number: u64) -> Result<Option<StoredBlock>> {
    match r.get(BLOCKS, &number_key(number))? {
        None => Ok(None),
        Some(b) => decode_block(number, b).map(Some),
    }
}

/// Reads a block's header and hash without decoding its transactions.
pub fn read_header<R: ReadTables>(r: &R, number: u64) -> Result<Option<(Header, B256)>> {
    match r.get(BLOCKS, &number_key(number))? {
        None => Ok(None),
        Some(b) => decode_header(number, b).map(|(h, hash, _)| Some((h, hash))),
    }
}

/// The number of the block with this hash.
pub fn number_by_hash<R: ReadTables>(r: &R, hash: &B256) -> Result<Option<u64>> {
    match r.get(BLOCK_NUMBERS, hash.as_slice())? {
        None => Ok(None),
        Some(b) => {
            let arr: [u8; 8] = b.try_into().map_err(|_| NodeError::corrupt("block_numbers", hash, "not 8 bytes"))?;
            Ok(Some(u64::from_be_bytes(arr)))
        }
    }
}

/// Where a transaction is: (block number, index).
pub fn tx_location<R: ReadTables>(r: &R, hash: &B256) -> Result<Option<(u64, usize)>> {
    match r.get(TX_LOOKUP, hash.as_slice())? {
        None => Ok(None),
        Some(b) if b.len() == 12 => {
            let n = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
            let i = u32::from_be_bytes(b[8..].try_into().expect("4 bytes"));
            Ok(Some((n, i as usize)))
        }
        Some(_) => Err(NodeError::corrupt("tx_lookup", hash, "not 12 bytes")),
    }
}

/// The receipts of a block.
pub fn read_receipts<R: ReadTables>(r: &R, number: u64) -> Result<Option<Vec<ReceiptEnvelope>>> {
    match r.get(RECEIPTS, &number_key(number))? {
        None => Ok(None),
        Some(b) => decode_receipts(number, b).map(Some),
    }
}

/// The stored chain parameters, if any.
pub fn read_chain_config<R: ReadTables>(r: &R) -> Result<Option<serde_json::Value>> {
    match r.get(METADATA, CHAIN_KEY)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(b).map(Some).map_err(|e| NodeError::corrupt("metadata", "node/chain", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{dev_accounts, sign_eip1559};
    use alloy_primitives::{TxKind, U256};
    use proptest::prelude::*;

    fn sample() -> (Header, Vec<SignedTx>, Vec<Receipt>) {
        let a = &dev_accounts(1).unwrap()[0];
        let txs: Vec<SignedTx> = (0..3u64)
            .map(|n| {
                let raw = sign_eip1559(
                    &a.signer,
                    1337,
                    n,
                    TxKind::Call(Address::ZERO),
                    U256::from(n),
                    Bytes::new(),
                    21_000,
                    10,
                    1,
                );
                SignedTx::decode(&raw).unwrap()
            })
            .collect();
        let receipts = (0..3u64)
            .map(|n| Receipt {
                tx_type: 2,
                success: n != 1,
                gas_used: 21_000,
                cumulative_gas_used: 21_000 * (n + 1),
                logs: Vec::new(),
                logs_bloom: Default::default(),
            })
            .collect();
        (Header { number: 7, gas_limit: 30_000_000, base_fee_per_gas: Some(7), ..Default::default() }, txs, receipts)
    }

    #[test]
    fn records_round_trip_and_every_truncation_is_an_error() {
        let (header, txs, receipts) = sample();
        let b = encode_block(&header, &txs);
        let back = decode_block(7, &b).unwrap();
        assert_eq!(back.header, header);
        assert_eq!(back.hash, header.hash_slow());
        assert_eq!(
            back.txs.iter().map(|t| (t.hash, t.sender)).collect::<Vec<_>>(),
            txs.iter().map(|t| (t.hash, t.sender)).collect::<Vec<_>>()
        );
        for cut in 0..b.len() {
            assert!(decode_block(7, &b[..cut]).is_err(), "block cut at {cut}");
        }
        let r = encode_receipts(&receipts);
        let back = decode_receipts(7, &r).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(alloy_consensus::TxReceipt::cumulative_gas_used(&back[2]), 63_000);
        assert!(!alloy_consensus::TxReceipt::status(&back[1]));
        for cut in 0..r.len() {
            assert!(decode_receipts(7, &r[..cut]).is_err(), "receipts cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_block(1, &bytes);
            let _ = decode_receipts(1, &bytes);
            let _ = SignedTx::decode(&bytes);
        }

        #[test]
        fn flipped_blocks_never_panic(flip in 0usize..4000, bit in 0u8..8) {
            let (header, txs, _) = sample();
            let mut b = encode_block(&header, &txs);
            let i = flip % b.len();
            b[i] ^= 1 << bit;
            let _ = decode_block(7, &b);
        }
    }
}
