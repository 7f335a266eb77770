//! JSON-RPC over HTTP and WebSocket (jsonrpsee), with go-ethereum's limits.

mod blocks;
mod call;
mod error;
mod eth;
mod fees;
mod filter;
mod filters;
pub mod json;
pub(crate) mod listener;
mod logs;
pub mod params;
mod subscribe;
mod txs;

pub use error::{RpcError, RpcResult};
pub use eth::SUGGESTED_TIP;
pub use txs::submit;

use crate::core::Core;
use crate::error::{NodeError, Result};
use jsonrpsee::server::{stop_channel, BatchRequestConfig, PingConfig, RpcModule, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::Params;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits of the server (defaults: go-ethereum's).
#[derive(Clone, Debug)]
pub struct RpcLimits {
    /// Largest request body.
    pub max_request_body: u32,
    /// Largest response body (a batch's total).
    pub max_response_body: u32,
    /// Most requests in a batch.
    pub max_batch_len: u32,
    /// Open connections (one over it is answered 503 and closed).
    pub max_connections: u32,
    /// Time to send a request's headers, and most time between two
    /// requests on a kept-alive connection.
    pub header_timeout: Duration,
    /// Time to send a request's body and get its answer.
    pub request_timeout: Duration,
    /// Period of the pings a WebSocket connection gets.
    pub ws_ping_interval: Duration,
    /// A WebSocket connection that answers no ping for this long is closed
    /// (a client gone without closing it would hold its slot for good).
    pub ws_inactive_limit: Duration,
    /// Gas cap of eth_call and eth_estimateGas.
    pub call_gas_cap: u64,
    /// Time limit of eth_call and eth_estimateGas.
    pub call_timeout: Duration,
    /// Widest eth_getLogs block range.
    pub logs_max_range: u64,
    /// Most logs one eth_getLogs returns.
    pub logs_max_results: usize,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            max_request_body: 5 * 1024 * 1024,
            max_response_body: 25 * 1000 * 1000,
            max_batch_len: 1000,
            max_connections: 1000,
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            ws_ping_interval: Duration::from_secs(30),
            ws_inactive_limit: Duration::from_secs(60),
            call_gas_cap: metis_executor::DEFAULT_CALL_GAS_CAP,
            call_timeout: Duration::from_secs(5),
            logs_max_range: 100_000,
            logs_max_results: 10_000,
        }
    }
}

/// What the server needs.
pub struct RpcContext {
    /// The node.
    pub core: Arc<Core>,
    /// Limits.
    pub limits: RpcLimits,
    /// Installed polling filters.
    pub filters: filters::Filters,
}

type Method = fn(&Core, Params) -> RpcResult<Value>;
type ContextMethod = fn(&RpcContext, Params) -> RpcResult<Value>;
type BlockingMethod = fn(&Core, &[Value], &RpcLimits) -> RpcResult<Value>;

fn register(module: &mut RpcModule<RpcContext>, name: &'static str, f: Method) {
    let res = module.register_method(name, move |params, ctx, _| {
        let t = Instant::now();
        let r = f(&ctx.core, params);
        ctx.core.metrics.rpc_call(name, t.elapsed(), r.is_err());
        r
    });
    // Names are distinct literals below.
    res.expect("method registered once");
}

fn register_ctx(module: &mut RpcModule<RpcContext>, name: &'static str, f: ContextMethod) {
    let res = module.register_method(name, move |params, ctx, _| {
        let t = Instant::now();
        let r = f(ctx, params);
        ctx.core.metrics.rpc_call(name, t.elapsed(), r.is_err());
        r
    });
    res.expect("method registered once");
}

fn register_blocking(module: &mut RpcModule<RpcContext>, name: &'static str, f: BlockingMethod) {
    let res = module.register_async_method(name, move |params, ctx, _| async move {
        let t = Instant::now();
        let p = match params::positional(&params) {
            Ok(p) => p,
            Err(e) => {
                ctx.core.metrics.rpc_call(name, t.elapsed(), true);
                return Err(e);
            }
        };
        let timeout = ctx.limits.call_timeout;
        let work = {
            let ctx = ctx.clone();
            tokio::task::spawn_blocking(move || f(&ctx.core, &p, &ctx.limits))
        };
        let r = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(error::internal(format!("worker failed: {e}"))),
            // The worker stops by itself: every call is bounded by the gas cap.
            Err(_) => Err(error::server(format!("execution aborted (timeout = {}s)", timeout.as_secs_f64()))),
        };
        ctx.core.metrics.rpc_call(name, t.elapsed(), r.is_err());
        r
    });
    res.expect("method registered once");
}

/// The module with every method.
pub fn module(ctx: RpcContext) -> RpcModule<RpcContext> {
    let mut m = RpcModule::new(ctx);
    register(&mut m, "web3_clientVersion", eth::client_version);
    register(&mut m, "net_version", eth::net_version);
    register(&mut m, "net_listening", eth::net_listening);
    register(&mut m, "net_peerCount", eth::net_peer_count);
    register(&mut m, "eth_chainId", eth::chain_id);
    register(&mut m, "eth_blockNumber", eth::block_number);
    register(&mut m, "eth_syncing", eth::syncing);
    register(&mut m, "eth_accounts", eth::accounts);
    register(&mut m, "eth_getBalance", eth::get_balance);
    register(&mut m, "eth_getTransactionCount", eth::get_transaction_count);
    register(&mut m, "eth_getCode", eth::get_code);
    register(&mut m, "eth_getStorageAt", eth::get_storage_at);
    register(&mut m, "eth_gasPrice", fees::gas_price);
    register(&mut m, "eth_maxPriorityFeePerGas", fees::max_priority_fee);
    register(&mut m, "eth_feeHistory", fees::fee_history);
    register(&mut m, "eth_sendRawTransaction", txs::send_raw_transaction);
    register(&mut m, "eth_getTransactionByHash", txs::get_transaction_by_hash);
    register(&mut m, "eth_getTransactionReceipt", txs::get_transaction_receipt);
    register(&mut m, "eth_getBlockByNumber", blocks::get_block_by_number);
    register(&mut m, "eth_getBlockByHash", blocks::get_block_by_hash);
    register(&mut m, "eth_getBlockTransactionCountByNumber", blocks::get_block_tx_count_by_number);
    register(&mut m, "eth_getProof", eth::get_proof);
    register_blocking(&mut m, "eth_call", call::eth_call);
    register_blocking(&mut m, "eth_estimateGas", call::estimate_gas);
    register_blocking(&mut m, "eth_getLogs", logs::get_logs);
    register_ctx(&mut m, "eth_newFilter", filters::new_filter);
    register_ctx(&mut m, "eth_newBlockFilter", filters::new_block_filter);
    register_ctx(&mut m, "eth_newPendingTransactionFilter", filters::new_pending_transaction_filter);
    register_ctx(&mut m, "eth_getFilterChanges", filters::get_filter_changes);
    register_ctx(&mut m, "eth_getFilterLogs", filters::get_filter_logs);
    register_ctx(&mut m, "eth_uninstallFilter", filters::uninstall_filter);
    subscribe::register(&mut m);
    m
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Serve WebSocket as well as HTTP on the same port.
    pub ws: bool,
    /// Limits.
    pub limits: RpcLimits,
}

/// Starts the server; returns its handle and the bound address.
pub async fn start(core: Arc<Core>, config: RpcConfig) -> Result<(ServerHandle, SocketAddr)> {
    let l = &config.limits;
    let mut cfg = ServerConfig::builder()
        .max_request_body_size(l.max_request_body)
        .max_response_body_size(l.max_response_body)
        .max_connections(l.max_connections)
        .set_batch_request_config(BatchRequestConfig::Limit(l.max_batch_len))
        .set_id_provider(subscribe::HexIdProvider)
        .enable_ws_ping(PingConfig::new().ping_interval(l.ws_ping_interval).inactive_limit(l.ws_inactive_limit));
    if !config.ws {
        cfg = cfg.http_only();
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| NodeError::Io { what: format!("binding the RPC server to {}", config.addr), source: e })?;
    let addr = listener
        .local_addr()
        .map_err(|e| NodeError::Io { what: "reading the RPC server address".into(), source: e })?;
    let services = Server::builder().set_config(cfg.build()).to_service_builder();
    let methods: jsonrpsee::Methods =
        module(RpcContext { core, limits: config.limits.clone(), filters: Default::default() }).into();
    let (stop, handle) = stop_channel();
    let make_service = {
        let stop = stop.clone();
        move || services.clone().build(methods.clone(), stop.clone())
    };
    tokio::spawn(listener::accept_loop(listener, config.limits, stop, make_service));
    Ok((handle, addr))
}
