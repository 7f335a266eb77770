//! A minimal HTTP endpoint that serves the Prometheus text on any GET.

use crate::core::Core;
use crate::error::{NodeError, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Binds `addr` and serves metrics until the task is dropped; returns the bound address.
pub async fn start(core: Arc<Core>, addr: SocketAddr) -> Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Io { what: format!("binding the metrics endpoint to {addr}"), source: e })?;
    let bound = listener.local_addr().map_err(|e| NodeError::Io { what: "metrics address".into(), source: e })?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { continue };
            let core = core.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // One request per connection; its content does not matter beyond the method.
                let n = match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf)).await {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let (status, body) = if buf[..n].starts_with(b"GET ") {
                    let c = core.clone();
                    let body = tokio::task::spawn_blocking(move || c.metrics.render(&c.db, &c.chain, &c.pool))
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
            });
        }
    });
    Ok((task, bound))
}
