//! A minimal HTTP endpoint that serves the Prometheus text on any GET.

use crate::core::Core;
use crate::error::{NodeError, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Scrapes served at once: a scraper needs one; more are closed unanswered.
const MAX_CONNECTIONS: usize = 16;
/// Time for a whole exchange (request in, metrics out).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves metrics until the task is dropped; returns the bound address.
pub async fn start(core: Arc<Core>, addr: SocketAddr) -> Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Io { what: format!("binding the metrics endpoint to {addr}"), source: e })?;
    let bound = listener.local_addr().map_err(|e| NodeError::Io { what: "metrics address".into(), source: e })?;
    let task = tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let sock = crate::rpc::listener::accept_next(&listener).await;
            let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
            let core = core.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(sock, core)).await;
                drop(slot);
            });
        }
    });
    Ok((task, bound))
}

/// One request per connection; its content does not matter beyond the method.
async fn exchange(mut sock: TcpStream, core: Arc<Core>) {
    let mut buf = [0u8; 4096];
    let n = match sock.read(&mut buf).await {
        Ok(n) => n,
        Err(_) => return,
    };
    let (status, body) = if buf[..n].starts_with(b"GET ") {
        let body = tokio::task::spawn_blocking(move || core.metrics.render(&core.db, &core.chain, &core.pool))
            .await
            .unwrap_or_default();
        ("200 OK", body)
    } else {
        ("405 Method Not Allowed", String::new())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
}
