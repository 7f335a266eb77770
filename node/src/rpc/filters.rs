//! Polling filters: eth_newFilter, eth_newBlockFilter,
//! eth_newPendingTransactionFilter, eth_getFilterChanges, eth_getFilterLogs,
//! eth_uninstallFilter (what ethers' JsonRpcProvider and web3.py's filters
//! use). A filter not polled for 5 minutes is removed, as in go-ethereum.

use super::error::{invalid_params, server, RpcResult};
use super::filter::LogFilter;
use super::logs::collect_logs;
use super::params::{at_most, positional, required, BlockId};
use super::RpcContext;
use crate::chain::store;
use jsonrpsee::types::Params;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Filters unused this long are removed.
const FILTER_TIMEOUT: Duration = Duration::from_secs(300);
/// Most installed filters.
const MAX_FILTERS: usize = 10_000;

enum Kind {
    Blocks,
    PendingTransactions,
    Logs(LogFilter),
}

struct Installed {
    kind: Kind,
    /// First block not yet reported.
    next_block: u64,
    last_poll: Instant,
}

/// The installed filters of a server.
#[derive(Default)]
pub struct Filters {
    inner: Mutex<HashMap<String, Installed>>,
    counter: std::sync::atomic::AtomicU64,
}

impl Filters {
    fn install(&self, kind: Kind, next_block: u64) -> RpcResult<Value> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, f| f.last_poll.elapsed() < FILTER_TIMEOUT);
        if map.len() >= MAX_FILTERS {
            return Err(server("too many filters installed"));
        }
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = alloy_primitives::keccak256([seed.to_be_bytes().as_slice(), &n.to_be_bytes()].concat());
        let id = format!("0x{}", hex::encode(&id[..16]));
        map.insert(id.clone(), Installed { kind, next_block, last_poll: Instant::now() });
        Ok(json!(id))
    }
}

fn filter_id(p: &[Value]) -> RpcResult<String> {
    match required(p, 0, "filter id")? {
        Value::String(s) => Ok(s.to_ascii_lowercase()),
        v => Err(invalid_params(format!("filter id must be a string, got {v}"))),
    }
}

pub fn new_filter(ctx: &RpcContext, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let f = LogFilter::parse(required(&p, 0, "filter")?)?;
    if f.block_hash.is_some() {
        return Err(invalid_params("filters by block hash cannot be installed; use eth_getLogs"));
    }
    let head = ctx.core.chain.head().number;
    ctx.filters.install(Kind::Logs(f), head + 1)
}

pub fn new_block_filter(ctx: &RpcContext, p: Params) -> RpcResult<Value> {
    at_most(&positional(&p)?, 0)?;
    ctx.filters.install(Kind::Blocks, ctx.core.chain.head().number + 1)
}

pub fn new_pending_transaction_filter(ctx: &RpcContext, p: Params) -> RpcResult<Value> {
    at_most(&positional(&p)?, 1)?;
    ctx.filters.install(Kind::PendingTransactions, 0)
}

pub fn uninstall_filter(ctx: &RpcContext, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let id = filter_id(&p)?;
    Ok(json!(ctx.filters.inner.lock().unwrap_or_else(|e| e.into_inner()).remove(&id).is_some()))
}

fn bounds(f: &LogFilter, head: u64) -> (Option<u64>, Option<u64>) {
    let end = |id: Option<BlockId>| match id {
        Some(BlockId::Number(n)) => Some(n),
        Some(BlockId::Earliest) => Some(0),
        _ => None,
    };
    (end(f.from), end(f.to).map(|t| t.min(head)))
}

pub fn get_filter_changes(ctx: &RpcContext, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let id = filter_id(&p)?;
    let head = ctx.core.chain.head().number;
    // Take what to report under the lock, read blocks after releasing it.
    let (kind_logs, from) = {
        let mut map = ctx.filters.inner.lock().unwrap_or_else(|e| e.into_inner());
        let f = map.get_mut(&id).ok_or_else(|| server("filter not found"))?;
        f.last_poll = Instant::now();
        let from = f.next_block;
        // Report at most the logs range limit per poll.
        let to = head.min(from.saturating_add(ctx.limits.logs_max_range).saturating_sub(1));
        f.next_block = f.next_block.max(to + 1);
        match &f.kind {
            Kind::PendingTransactions => return Ok(json!([])),
            Kind::Blocks => (None, (from, to)),
            Kind::Logs(l) => (Some(l.clone()), (from, to)),
        }
    };
    let (from, to) = from;
    if from > to {
        return Ok(json!([]));
    }
    match kind_logs {
        None => {
            let snap = ctx.core.db.snapshot(None).map_err(super::error::db_err)?;
            let mut hashes = Vec::new();
            for n in from..=to {
                if let Some((_, h)) = store::read_header(&snap, n).map_err(super::error::db_err)? {
                    hashes.push(json!(h));
                }
            }
            Ok(Value::Array(hashes))
        }
        Some(f) => {
            let (lo, hi) = bounds(&f, head);
            let from = lo.map_or(from, |l| l.max(from));
            let to = hi.map_or(to, |h| h.min(to));
            if from > to {
                return Ok(json!([]));
            }
            collect_logs(&ctx.core, &f, from, to, &ctx.limits).map(Value::Array)
        }
    }
}

pub fn get_filter_logs(ctx: &RpcContext, p: Params) -> RpcResult<Value> {
    let p = positional(&p)?;
    at_most(&p, 1)?;
    let id = filter_id(&p)?;
    let f = {
        let mut map = ctx.filters.inner.lock().unwrap_or_else(|e| e.into_inner());
        let f = map.get_mut(&id).ok_or_else(|| server("filter not found"))?;
        f.last_poll = Instant::now();
        match &f.kind {
            Kind::Logs(l) => l.clone(),
            _ => return Err(server("filter not found")),
        }
    };
    let head = ctx.core.chain.head().number;
    let (lo, hi) = bounds(&f, head);
    let (from, to) = (lo.unwrap_or(head), hi.unwrap_or(head));
    if from > to {
        return Ok(json!([]));
    }
    if to - from >= ctx.limits.logs_max_range {
        return Err(server(format!("query exceeds max block range {}", ctx.limits.logs_max_range)));
    }
    collect_logs(&ctx.core, &f, from, to, &ctx.limits).map(Value::Array)
}
