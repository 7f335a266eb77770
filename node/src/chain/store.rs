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
