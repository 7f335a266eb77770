//! The RPC server's limits and error answers: malformed JSON, oversized
//! bodies, long batches, large responses, invalid params, unknown methods,
//! invalid transactions, endless eth_call, wide eth_getLogs. Each gets its
//! JSON-RPC error, nothing changes, and the node keeps serving.

mod common;

use alloy_primitives::{Address, Bytes, TxKind, U256};
use common::*;
use metis_node::dev::{dev_accounts, sign_eip1559};
use serde_json::json;
use std::time::Duration;

const GWEI: u128 = 1_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_errors_leave_the_node_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), Duration::from_millis(100), |c| {
        c.limits.max_request_body = 64 * 1024;
        c.limits.max_response_body = 16 * 1024;
        c.limits.max_batch_len = 10;
        c.limits.logs_max_range = 5;
        c.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let addr = node.rpc_addr;
    let metrics_addr = node.metrics_addr.expect("metrics endpoint");
    let accounts = dev_accounts(2).unwrap();
    let a0 = format!("{:#x}", accounts[0].address);
    let t = tokio::task::spawn_blocking(move || {
        let balance = || result(addr, "eth_getBalance", json!([a0, "latest"]));
        let before = balance();

        // Malformed JSON: parse error.
        let (_, body) = post(addr, b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], -32700, "{v}");
        // Not an object at all.
        let (_, body) = post(addr, b"42");
        assert!(body.contains("-32600") || body.contains("-32700"), "{body}");

        // Body over the limit: HTTP 413 and the oversized-request error.
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\",\"params\":[\"{}\"]}}",
            "a".repeat(70 * 1024)
        );
        let (status, body) = post(addr, big.as_bytes());
        assert_eq!(status, 413, "{body}");

        // A batch over the limit.
        let batch: Vec<_> =
            (0..11).map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_chainId","params":[]})).collect();
        let (_, body) = post(addr, serde_json::to_string(&batch).unwrap().as_bytes());
        assert!(body.contains("-32010"), "{body}");
        // A batch within the limit answers every call.
        let batch: Vec<_> =
            (0..10).map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_chainId","params":[]})).collect();
        let (_, body) = post(addr, serde_json::to_string(&batch).unwrap().as_bytes());
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(v.len(), 10);
        assert!(v.iter().all(|r| r["result"] == "0x539"));

        // Invalid params and unknown methods.
        assert_eq!(error(addr, "eth_getBalance", json!(["0x1234", "latest"]))["code"], -32602);
        assert_eq!(error(addr, "eth_getBalance", json!([]))["code"], -32602);
        assert_eq!(error(addr, "eth_getBlockByNumber", json!(["lastest", false]))["code"], -32602);
        assert_eq!(error(addr, "eth_getStorageAt", json!([a0, "0xzz", "latest"]))["code"], -32602);
        assert_eq!(error(addr, "eth_call", json!(["not an object"]))["code"], -32602);
        assert_eq!(error(addr, "eth_getBalance", json!([a0, "0xffffffff"]))["message"], "header not found");
        assert_eq!(error(addr, "eth_notAMethod", json!([]))["code"], -32601);

        // Invalid transactions.
        let raw = |nonce: u64, gas: u64, fee: u128, chain: u64| {
            let b = sign_eip1559(
                &accounts[0].signer,
                chain,
                nonce,
                TxKind::Call(Address::ZERO),
                U256::from(1),
                Bytes::new(),
                gas,
                fee,
                GWEI,
            );
            format!("0x{}", hex::encode(b))
        };
        let send_err =
            |raw: String| error(addr, "eth_sendRawTransaction", json!([raw]))["message"].as_str().unwrap().to_string();
        assert!(send_err(raw(0, 20_000, 10 * GWEI, 1337)).starts_with("intrinsic gas too low"));
        assert!(send_err(raw(0, 21_000, 10 * GWEI, 1)).starts_with("invalid chain id"));
        assert!(
            send_err(raw(0, 21_000, 10u128.pow(30), 1337)).starts_with("insufficient funds for gas * price + value")
        );
        assert!(send_err(raw(0, 20_000_000, 10 * GWEI, 1337)).starts_with("transaction gas limit too high"));
        assert!(send_err("0xdeadbeef".into()).starts_with("rlp"));
        assert!(send_err("0x".into()).starts_with("rlp"));

        // An endless loop in eth_call ends at the gas cap with an error.
        let spin = json!({"from": a0, "data": "0x5b600056", "gas": "0x2faf080"});
        let t0 = std::time::Instant::now();
        let e = error(addr, "eth_call", json!([spin, "latest"]));
        assert!(e["message"].as_str().unwrap().contains("out of gas"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(6));
        // Reverts carry their data; estimateGas reports them too.
        let revert = json!({"from": a0, "data": "0x60006000fd"});
        assert_eq!(error(addr, "eth_call", json!([revert, "latest"]))["code"], 3);
        assert_eq!(error(addr, "eth_estimateGas", json!([revert]))["code"], 3);
        assert_eq!(qty(&result(addr, "eth_estimateGas", json!([{"from": a0, "to": a0, "value": "0x1"}]))), 21_000);

        // Wide eth_getLogs and large responses.
        std::thread::sleep(Duration::from_millis(800));
        let e = error(addr, "eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest"}]));
        assert!(e["message"].as_str().unwrap().contains("max block range"), "{e}");
        assert_eq!(result(addr, "eth_getLogs", json!([{"fromBlock": "0x1", "toBlock": "0x3"}])), json!([]));
        // A call returning 20 KiB (PUSH2 0x5000 PUSH1 0 RETURN) exceeds the 16 KiB response limit.
        let e = error(addr, "eth_call", json!([{"from": a0, "data": "0x6150006000f3"}, "latest"]));
        assert_eq!(e["code"], -32008, "{e}");

        // Nothing changed, and the node still serves and produces blocks.
        let n0 = qty(&result(addr, "eth_blockNumber", json!([])));
        std::thread::sleep(Duration::from_millis(300));
        assert!(qty(&result(addr, "eth_blockNumber", json!([]))) > n0);
        assert_eq!(
            result(addr, "eth_getTransactionCount", json!([format!("{:#x}", accounts[0].address), "pending"])),
            "0x0"
        );
        assert_eq!(balance(), before);

        // The Prometheus endpoint counted all of it.
        let mut s = std::net::TcpStream::connect(metrics_addr).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        for needle in [
            "metis_rpc_requests_total{method=\"eth_sendRawTransaction\"}",
            "metis_rpc_errors_total{method=\"eth_call\"}",
            "metis_mempool_rejections_total{reason=\"intrinsic_gas_too_low\"} 1",
            "metis_mempool_rejections_total{reason=\"invalid_chain_id\"} 1",
            "metis_db_commits_total",
            "metis_db_file_size_bytes",
            "metis_blocks_produced_total",
            "metis_executor_txs_total 0",
            "metis_rpc_latency_seconds_bucket{method=\"eth_getBalance\",le=\"+Inf\"}",
        ] {
            assert!(text.contains(needle), "metrics lack {needle}");
        }
    });
    t.await.unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_transactions_and_receipts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = dev_accounts(2).unwrap();
    let node = start_node(dir.path(), Duration::from_millis(50), |_| {}).await;
    let addr = node.rpc_addr;
    let signer = accounts[0].signer.clone();
    let to = accounts[1].address;
    let (hashes, receipts) = tokio::task::spawn_blocking(move || {
        let mut hashes = Vec::new();
        for nonce in 0..20u64 {
            let b = sign_eip1559(
                &signer,
                1337,
                nonce,
                TxKind::Call(to),
                U256::from(nonce + 1),
                Bytes::new(),
                21_000,
                100 * GWEI,
                GWEI,
            );
            hashes.push(result(addr, "eth_sendRawTransaction", json!([format!("0x{}", hex::encode(b))])));
        }
        let receipts: Vec<_> = hashes.iter().map(|h| wait_receipt(addr, h.as_str().unwrap())).collect();
        (hashes, receipts)
    })
    .await
    .unwrap();
    let head_before = node.core.chain.head().number;
    node.stop().await;

    let node = start_node(dir.path(), Duration::from_millis(50), |_| {}).await;
    let addr = node.rpc_addr;
    assert!(node.core.chain.head().number >= head_before);
    tokio::task::spawn_blocking(move || {
        for (h, r) in hashes.iter().zip(&receipts) {
            let again = wait_receipt(addr, h.as_str().unwrap());
            assert_eq!(&again, r, "receipt after restart");
            let block = result(addr, "eth_getBlockByHash", json!([r["blockHash"], false]));
            assert!(block["transactions"].as_array().unwrap().contains(h));
            assert_eq!(block["number"], r["blockNumber"]);
        }
        let nonce = result(addr, "eth_getTransactionCount", json!([format!("{:#x}", accounts[0].address), "latest"]));
        assert_eq!(qty(&nonce), 20);
    })
    .await
    .unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_params_to_every_method_get_answers_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), Duration::from_millis(100), |_| {}).await;
    let addr = node.rpc_addr;
    tokio::task::spawn_blocking(move || {
        let methods = [
            "web3_clientVersion", "net_version", "eth_chainId", "eth_blockNumber", "eth_getBalance",
            "eth_getTransactionCount", "eth_getCode", "eth_getStorageAt", "eth_call", "eth_estimateGas",
            "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_feeHistory", "eth_sendRawTransaction",
            "eth_getTransactionByHash", "eth_getTransactionReceipt", "eth_getBlockByNumber", "eth_getBlockByHash",
            "eth_getLogs", "eth_getProof", "eth_subscribe",
        ];
        let shapes = [
            json!([]),
            json!([null]),
            json!(["0x"]),
            json!([{}]),
            json!([1, true]),
            json!([[], [], []]),
            json!(["0x00000000000000000000000000000000000000000000000000000000000000000000"]),
            json!(["latest", "latest", "latest", "latest"]),
            json!([{"fromBlock": "earliest", "toBlock": "pending", "topics": [[null, "0x1"]]}]),
            json!([{"to": "0x0000000000000000000000000000000000000001", "data": "0x", "value": "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}]),
            json!({"named": "object"}),
            json!("x".repeat(10_000)),
        ];
        for m in methods {
            for p in &shapes {
                let v = rpc(addr, m, p.clone());
                assert!(v.get("result").is_some() || v.get("error").is_some(), "{m} {p}: {v}");
            }
        }
        assert_eq!(result(addr, "eth_chainId", json!([])), "0x539");
    })
    .await
    .unwrap();
    node.stop().await;
}
