//! Helpers of the node's integration tests: an in-process node on a free
//! port and a raw HTTP/1.1 JSON-RPC client (so malformed and oversized
//! requests can be sent as they are).

#![allow(dead_code)]

use metis_node::{Node, NodeConfig};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// A node on 127.0.0.1 with a free port, in `dir`.
pub async fn start_node(dir: &Path, block_time: Duration, tweak: impl FnOnce(&mut NodeConfig)) -> Node {
    let mut config = NodeConfig::dev();
    config.datadir = dir.to_path_buf();
    config.block_time = block_time;
    config.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.ws = true;
    config.workers = 2;
    tweak(&mut config);
    Node::start(config).await.expect("node starts")
}

/// Sends `body` as one HTTP POST and returns (status, body).
pub fn post(addr: SocketAddr, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    // The server may answer (413) before the whole body is sent.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // Chunked bodies: keep the JSON part.
    let body = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
        (Some(a), Some(b)) if b >= a => body[a..=b].to_string(),
        _ => body,
    };
    (status, body)
}

/// One JSON-RPC call; returns the whole response object.
pub fn rpc(addr: SocketAddr, method: &str, params: Value) -> Value {
    let req = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (_, body) = post(addr, req.to_string().as_bytes());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method}: response {body:?} is not JSON: {e}"))
}

/// The `result` of a call, panicking on an error.
pub fn result(addr: SocketAddr, method: &str, params: Value) -> Value {
    let v = rpc(addr, method, params);
    match v.get("error") {
        Some(e) => panic!("{method} failed: {e}"),
        None => v["result"].clone(),
    }
}

/// The error object of a call, panicking on success.
pub fn error(addr: SocketAddr, method: &str, params: Value) -> Value {
    let v = rpc(addr, method, params);
    v.get("error").cloned().unwrap_or_else(|| panic!("{method} succeeded: {v}"))
}

/// A hex quantity as u64.
pub fn qty(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex string").trim_start_matches("0x"), 16).expect("hex quantity")
}

/// Waits until the receipt of `hash` exists.
pub fn wait_receipt(addr: SocketAddr, hash: &str) -> Value {
    for _ in 0..400 {
        let r = result(addr, "eth_getTransactionReceipt", serde_json::json!([hash]));
        if !r.is_null() {
            return r;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no receipt for {hash}");
}
