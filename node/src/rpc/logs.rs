//! eth_getLogs (on a blocking thread), bounded in range and results.
use super::error::{db_err, internal, invalid_params, server, RpcResult};
use super::eth::resolve;
use super::filter::LogFilter;
use super::json::{self};
use super::params::{at_most, required, BlockId};
use super::txs::tx_loc;
use super::RpcLimits;
use crate::chain::store;
use crate::core::Core;
use serde_json::{json, Value};

/// eth_getLogs (runs on a blocking thread).
pub fn get_logs(core: &Core, p: &[Value], limits: &RpcLimits) -> RpcResult<Value> {
    at_most(p, 1)?;
    let f = LogFilter::parse(required(p, 0, "filter")?)?;
    let snap = core.db.snapshot(None).map_err(db_err)?;
    let (from, to) = match f.block_hash {
        Some(h) => {
            let n = store::number_by_hash(&snap, &h).map_err(db_err)?.ok_or_else(|| server("unknown block"))?;
            (n, n)
        }
        None => {
            let head = core.chain.head().number;
            let from = match f.from {
                Some(id) => resolve_range_end(core, id, head)?,
                None => head,
            };
            let to = match f.to {
                Some(id) => resolve_range_end(core, id, head)?,
                None => head,
            };
            (from, to.min(head))
        }
    };
    if from > to {
        if f.block_hash.is_none() && from > core.chain.head().number {
            return Ok(json!([]));
        }
        return Err(invalid_params("invalid block range params"));
    }
    if to - from >= limits.logs_max_range {
        return Err(server(format!("query exceeds max block range {}", limits.logs_max_range)));
    }
    collect_logs(core, &f, from, to, limits).map(Value::Array)
}

/// The logs of blocks `from..=to` that match `f`, bounded by the result limit.
pub fn collect_logs(core: &Core, f: &LogFilter, from: u64, to: u64, limits: &RpcLimits) -> RpcResult<Vec<Value>> {
    let snap = core.db.snapshot(None).map_err(db_err)?;
    let mut out = Vec::new();
    for n in from..=to {
        let Some((h, _)) = store::read_header(&snap, n).map_err(db_err)? else { continue };
        if !f.may_match(&h.logs_bloom) {
            continue;
        }
        let block = store::read_block(&snap, n).map_err(db_err)?.ok_or_else(|| internal("block missing"))?;
        let receipts = store::read_receipts(&snap, n).map_err(db_err)?.unwrap_or_default();
        let mut log_index = 0;
        for (i, (t, r)) in block.txs.iter().zip(&receipts).enumerate() {
            let loc = tx_loc(&block, i);
            for l in r.logs() {
                if f.matches(l) {
                    if out.len() >= limits.logs_max_results {
                        return Err(server(format!("query returned more than {} results", limits.logs_max_results)));
                    }
                    out.push(json::log(l, &loc, &t.hash, log_index));
                }
                log_index += 1;
            }
        }
    }
    Ok(out)
}

fn resolve_range_end(core: &Core, id: BlockId, head: u64) -> RpcResult<u64> {
    match id {
        BlockId::Number(n) => Ok(n),
        BlockId::Latest | BlockId::Pending => Ok(head),
        other => resolve(core, other),
    }
}
