//! Fee methods: eth_gasPrice, eth_maxPriorityFeePerGas, eth_feeHistory.
use super::error::{db_err, invalid_params, server, RpcResult};
use super::eth::{resolve, SUGGESTED_TIP};
use super::json::q;
use super::params::{self, at_most, positional, required};
use crate::chain::{base_fee_after, store};
use crate::core::Core;
use jsonrpsee::types::Params;
use serde_json::{json, Value};

pub fn gas_price(core: &Core, _: Params) -> RpcResult<Value> {
    let next = base_fee_after(&core.chain.head().header);
    Ok(json!(q(next as u128 + SUGGESTED_TIP as u128)))
}

pub fn max_priority_fee(_: &Core, _: Params) -> RpcResult<Value> {
    Ok(json!(q(SUGGESTED_TIP)))
}

pub fn fee_history(core: &Core, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 3)?;
    let count = match required(&p, 0, "blockCount")? {
        Value::Number(n) => n.as_u64().ok_or_else(|| invalid_params("blockCount: not a quantity"))?,
        v => params::u64q(v, "blockCount")?,
    };
    let newest = resolve(core, params::block_number_tag(Some(required(&p, 1, "newestBlock")?))?)?;
    let percentiles: Vec<f64> = match p.get(2) {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| invalid_params(format!("rewardPercentiles: {e}")))?,
    };
    if percentiles.len() > 100 {
        return Err(invalid_params("at most 100 reward percentiles"));
    }
    let mut last = -1.0;
    for &x in &percentiles {
        if !(0.0..=100.0).contains(&x) || x < last {
            return Err(invalid_params(format!("invalid reward percentile {x}: must be ascending within 0..=100")));
        }
        last = x;
    }
    let count = count.min(1024).min(newest + 1);
    if count == 0 {
        return Ok(json!({"oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": [], "reward": []}));
    }
    let oldest = newest + 1 - count;
    let snap = core.db.snapshot(None).map_err(db_err)?;
    let (mut base_fees, mut ratios, mut rewards, mut blob_fees, mut blob_ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last_header = None;
    for n in oldest..=newest {
        let (h, _) = store::read_header(&snap, n).map_err(db_err)?.ok_or_else(|| server("header not found"))?;
        let base_fee = h.base_fee_per_gas.unwrap_or(0);
        base_fees.push(q(base_fee));
        ratios.push(h.gas_used as f64 / h.gas_limit.max(1) as f64);
        blob_fees.push("0x1".to_string());
        blob_ratios.push(0.0);
        if !percentiles.is_empty() {
            let block = store::read_block(&snap, n).map_err(db_err)?.ok_or_else(|| server("block not found"))?;
            let receipts = store::read_receipts(&snap, n).map_err(db_err)?.unwrap_or_default();
            let mut prev = 0;
            let mut tips: Vec<(u128, u64)> = Vec::new();
            for (t, r) in block.txs.iter().zip(&receipts) {
                let used = r.cumulative_gas_used() - prev;
                prev = r.cumulative_gas_used();
                tips.push((t.effective_tip(base_fee).unwrap_or(0), used));
            }
            tips.sort_unstable();
            let total: u64 = tips.iter().map(|t| t.1).sum();
            let row: Vec<String> = percentiles
                .iter()
                .map(|pct| {
                    if tips.is_empty() {
                        return "0x0".to_string();
                    }
                    let threshold = (total as f64 * pct / 100.0) as u64;
                    let mut sum = 0;
                    for (tip, used) in &tips {
                        sum += used;
                        if sum >= threshold {
                            return q(*tip);
                        }
                    }
                    q(tips.last().map_or(0, |t| t.0))
                })
                .collect();
            rewards.push(row);
        }
        last_header = Some(h);
    }
    if let Some(h) = last_header {
        base_fees.push(q(base_fee_after(&h)));
        blob_fees.push("0x1".to_string());
    }
    let mut v = json!({
        "oldestBlock": q(oldest),
        "baseFeePerGas": base_fees,
        "gasUsedRatio": ratios,
        "baseFeePerBlobGas": blob_fees,
        "blobGasUsedRatio": blob_ratios,
    });
    if !percentiles.is_empty() {
        v["reward"] = json!(rewards);
    }
    Ok(v)
}
