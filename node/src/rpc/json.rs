//! JSON shapes of blocks, headers, transactions, receipts and logs, as
//! go-ethereum returns them.

use crate::chain::store::StoredBlock;
use crate::txs::SignedTx;
use alloy_consensus::{Header, ReceiptEnvelope, Transaction, TxReceipt};
use alloy_primitives::{Address, Log, B256};
use alloy_rlp::Encodable;
use serde_json::{json, Value};

/// `0x`-hex of a quantity.
pub fn q(v: impl std::fmt::LowerHex) -> String {
    format!("{v:#x}")
}

/// `0x`-hex of bytes.
pub fn data(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Where a mined transaction is.
#[derive(Clone, Copy, Debug)]
pub struct TxLocation {
    /// Block hash.
    pub block_hash: B256,
    /// Block number.
    pub block_number: u64,
    /// Index in the block.
    pub index: usize,
    /// Base fee of the block.
    pub base_fee: u64,
    /// Block timestamp.
    pub timestamp: u64,
}

/// The header fields of a block object (also the `newHeads` notification).
pub fn header(h: &Header, hash: &B256) -> Value {
    let mut v = json!({
        "hash": hash,
        "parentHash": h.parent_hash,
        "sha3Uncles": h.ommers_hash,
        "miner": h.beneficiary,
        "stateRoot": h.state_root,
        "transactionsRoot": h.transactions_root,
        "receiptsRoot": h.receipts_root,
        "logsBloom": h.logs_bloom,
        "difficulty": q(h.difficulty),
        "totalDifficulty": "0x0",
        "number": q(h.number),
        "gasLimit": q(h.gas_limit),
        "gasUsed": q(h.gas_used),
        "timestamp": q(h.timestamp),
        "extraData": data(&h.extra_data),
        "mixHash": h.mix_hash,
        "nonce": h.nonce,
    });
    let obj = v.as_object_mut().expect("object literal");
    if let Some(f) = h.base_fee_per_gas {
        obj.insert("baseFeePerGas".into(), q(f).into());
    }
    if let Some(r) = h.withdrawals_root {
        obj.insert("withdrawalsRoot".into(), json!(r));
    }
    if let Some(g) = h.blob_gas_used {
        obj.insert("blobGasUsed".into(), q(g).into());
    }
    if let Some(g) = h.excess_blob_gas {
        obj.insert("excessBlobGas".into(), q(g).into());
    }
    if let Some(r) = h.parent_beacon_block_root {
        obj.insert("parentBeaconBlockRoot".into(), json!(r));
    }
    if let Some(r) = h.requests_hash {
        obj.insert("requestsHash".into(), json!(r));
    }
    v
}

/// RLP size of the block `[header, txs, uncles, withdrawals]`.
fn block_size(b: &StoredBlock) -> usize {
    let tx_payload: usize = b
        .txs
        .iter()
        .map(|t| if t.envelope.is_legacy() { t.encoded.len() } else { t.encoded.len().length() + t.encoded.len() })
        .sum();
    let list = |payload: usize| alloy_rlp::length_of_length(payload) + payload;
    let mut payload = b.header.length() + list(tx_payload) + list(0);
    if b.header.withdrawals_root.is_some() {
        payload += list(0);
    }
    list(payload)
}

/// A block object.
pub fn block(b: &StoredBlock, full: bool) -> Value {
    let mut v = header(&b.header, &b.hash);
    let obj = v.as_object_mut().expect("header is an object");
    let txs: Vec<Value> = if full {
        let base_fee = b.header.base_fee_per_gas.unwrap_or(0);
        b.txs
            .iter()
            .enumerate()
            .map(|(index, t)| {
                let loc = TxLocation {
                    block_hash: b.hash,
                    block_number: b.header.number,
                    index,
                    base_fee,
                    timestamp: b.header.timestamp,
                };
                transaction(t, Some(loc))
            })
            .collect()
    } else {
        b.txs.iter().map(|t| json!(t.hash)).collect()
    };
    obj.insert("size".into(), q(block_size(b)).into());
    obj.insert("transactions".into(), Value::Array(txs));
    obj.insert("uncles".into(), json!([]));
    if b.header.withdrawals_root.is_some() {
        obj.insert("withdrawals".into(), json!([]));
    }
    v
}

/// A transaction object; `loc` is `None` for a pending one.
pub fn transaction(t: &SignedTx, loc: Option<TxLocation>) -> Value {
    let e = &t.envelope;
    let sig = e.signature();
    let ty = e.tx_type() as u8;
    let mut v = json!({
        "type": q(ty),
        "hash": t.hash,
        "from": t.sender,
        "to": e.to(),
        "nonce": q(e.nonce()),
        "gas": q(e.gas_limit()),
        "value": q(e.value()),
        "input": data(e.input()),
        "r": q(sig.r()),
        "s": q(sig.s()),
        "blockHash": loc.map(|l| l.block_hash),
        "blockNumber": loc.map(|l| q(l.block_number)),
        "transactionIndex": loc.map(|l| q(l.index)),
    });
    let obj = v.as_object_mut().expect("object literal");
    let parity = sig.v() as u64;
    if let Some(id) = e.chain_id() {
        obj.insert("chainId".into(), q(id).into());
    }
    if e.is_legacy() {
        let v = match e.chain_id() {
            Some(id) => id * 2 + 35 + parity,
            None => 27 + parity,
        };
        obj.insert("v".into(), q(v).into());
        obj.insert("gasPrice".into(), q(e.gas_price().unwrap_or_default()).into());
    } else {
        obj.insert("v".into(), q(parity).into());
        obj.insert("yParity".into(), q(parity).into());
        obj.insert("accessList".into(), json!(e.access_list().cloned().unwrap_or_default()));
        if e.is_dynamic_fee() {
            obj.insert("maxFeePerGas".into(), q(e.max_fee_per_gas()).into());
            obj.insert("maxPriorityFeePerGas".into(), q(e.max_priority_fee_per_gas().unwrap_or_default()).into());
            let price = match loc {
                Some(l) => e.effective_gas_price(Some(l.base_fee)),
                None => e.max_fee_per_gas(),
            };
            obj.insert("gasPrice".into(), q(price).into());
        } else {
            obj.insert("gasPrice".into(), q(e.gas_price().unwrap_or_default()).into());
        }
        if let Some(list) = e.authorization_list() {
            obj.insert("authorizationList".into(), json!(list));
        }
    }
    v
}

/// A log object.
pub fn log(l: &Log, loc: &TxLocation, tx_hash: &B256, log_index: usize) -> Value {
    json!({
        "address": l.address,
        "topics": l.topics(),
        "data": data(&l.data.data),
        "blockNumber": q(loc.block_number),
        "blockHash": loc.block_hash,
        "blockTimestamp": q(loc.timestamp),
        "transactionHash": tx_hash,
        "transactionIndex": q(loc.index),
        "logIndex": q(log_index),
        "removed": false,
    })
}

/// A receipt object. `first_log_index` is the block-wide index of its first
/// log; `prev_cumulative` the cumulative gas of the transaction before.
pub fn receipt(
    t: &SignedTx,
    r: &ReceiptEnvelope,
    loc: &TxLocation,
    prev_cumulative: u64,
    first_log_index: usize,
) -> Value {
    let e = &t.envelope;
    let contract: Option<Address> = e.is_create().then(|| t.sender.create(e.nonce()));
    let logs: Vec<Value> =
        r.logs().iter().enumerate().map(|(i, l)| log(l, loc, &t.hash, first_log_index + i)).collect();
    json!({
        "type": q(e.tx_type() as u8),
        "transactionHash": t.hash,
        "transactionIndex": q(loc.index),
        "blockHash": loc.block_hash,
        "blockNumber": q(loc.block_number),
        "from": t.sender,
        "to": e.to(),
        "cumulativeGasUsed": q(r.cumulative_gas_used()),
        "gasUsed": q(r.cumulative_gas_used().saturating_sub(prev_cumulative)),
        "effectiveGasPrice": q(e.effective_gas_price(Some(loc.base_fee))),
        "contractAddress": contract,
        "logs": logs,
        "logsBloom": r.bloom(),
        "status": if r.status() { "0x1" } else { "0x0" },
    })
}
