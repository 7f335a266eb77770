//! eth_subscribe / eth_unsubscribe over WebSocket: `newHeads`.

use super::error::invalid_params;
use super::json;
use super::RpcContext;
use jsonrpsee::server::RpcModule;
use jsonrpsee::server::{IdProvider, SubscriptionMessage};
use jsonrpsee::types::SubscriptionId;
use tokio::sync::broadcast::error::RecvError;

/// Subscription ids as go-ethereum makes them: `0x` and 32 hex digits.
#[derive(Debug, Clone, Copy)]
pub struct HexIdProvider;

impl IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = alloy_primitives::keccak256([seed.to_be_bytes().as_slice(), &n.to_be_bytes()].concat());
        SubscriptionId::Str(format!("0x{}", hex::encode(&id[..16])).into())
    }
}

pub(super) fn register(m: &mut RpcModule<RpcContext>) {
    let res = m.register_subscription("eth_subscribe", "eth_subscription", "eth_unsubscribe", new_heads);
    res.expect("subscription registered once");
}

async fn new_heads(
    params: jsonrpsee::types::Params<'static>,
    pending: jsonrpsee::PendingSubscriptionSink,
    ctx: std::sync::Arc<RpcContext>,
    _: jsonrpsee::Extensions,
) -> jsonrpsee::core::SubscriptionResult {
    let kind: Option<String> = params.sequence().next().ok();
    if kind.as_deref() != Some("newHeads") {
        pending
            .reject(invalid_params(format!("unsupported subscription {:?}: only newHeads", kind.unwrap_or_default())))
            .await;
        return Ok(());
    }
    let mut rx = ctx.core.heads.subscribe();
    let sink = pending.accept().await?;
    loop {
        tokio::select! {
            _ = sink.closed() => break,
            msg = rx.recv() => match msg {
                Ok(head) => {
                    let v = json::header(&head.header, &head.hash);
                    let raw = serde_json::value::to_raw_value(&v)?;
                    if sink.send(SubscriptionMessage::from(raw)).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}
