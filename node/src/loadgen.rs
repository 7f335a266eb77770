//! RPC load generator: signed ETH transfers or ERC-20 transfers sent over
//! JSON-RPC batches, with inclusion throughput and send-to-inclusion
//! latency (the time from a transaction's send until the first poll that
//! sees the block holding it; polls every 2 ms).

use crate::dev::{derive, sign_eip1559, DEV_MNEMONIC};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// 21,000-gas ETH transfers.
    Transfer,
    /// ERC-20 `transfer` calls on the Token contract.
    Erc20,
}

/// Load settings.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Node address.
    pub rpc: SocketAddr,
    /// Workload.
    pub workload: Workload,
    /// Sending accounts (derived from the dev mnemonic after the 10 funded ones).
    pub senders: usize,
    /// Transactions in total.
    pub txs: usize,
    /// Target send rate (transactions per second).
    pub rate: f64,
    /// Transactions per JSON-RPC batch.
    pub batch: usize,
    /// Concurrent connections sending.
    pub connections: usize,
}

/// Figures of a run.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Transactions sent and accepted.
    pub accepted: usize,
    /// Rejected by the node.
    pub rejected: usize,
    /// Included in blocks.
    pub included: usize,
    /// Included per second, from the first send to the last inclusion.
    pub included_per_sec: f64,
    /// Latency percentiles in milliseconds: p50, p90, p99, max.
    pub latency_ms: [f64; 4],
    /// Blocks that included the load.
    pub blocks: usize,
    /// First rejection message, if any.
    pub first_error: Option<String>,
}

/// A keep-alive HTTP/1.1 JSON-RPC connection.
pub struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects.
    pub fn new(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn { addr, reader: BufReader::new(s) })
    }

    /// Posts a JSON body and returns the parsed response.
    pub fn call(&mut self, body: &Value) -> std::io::Result<Value> {
        let body = serde_json::to_vec(body)?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(&body)?;
        let mut len = None;
        let mut chunked = false;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
                let mut chunk = vec![0u8; n + 2];
                self.reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        } else {
            let n = len.ok_or_else(|| std::io::Error::other("response without length"))?;
            out.resize(n, 0);
            self.reader.read_exact(&mut out)?;
        }
        serde_json::from_slice(&out).map_err(std::io::Error::other)
    }

    /// One call; the `result` or the error as a string.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let v = self
            .call(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .map_err(|e| e.to_string())?;
        match v.get("error") {
            Some(e) => Err(e.to_string()),
            None => Ok(v["result"].clone()),
        }
    }
}

fn qty(v: &Value) -> u64 {
    v.as_str().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()).unwrap_or(0)
}

fn raw_hex(b: &Bytes) -> String {
    format!("0x{}", hex::encode(b))
}

const GWEI: u128 = 1_000_000_000;
/// Init code of the Token contract (tests/e2e/contracts/Token.sol).
const TOKEN_JSON: &str = include_str!("../tests/e2e/contracts/Token.json");

/// Sends `txs` (raw) in batches and returns their hashes in order.
fn send_all(conn: &mut Conn, raws: &[Bytes], batch: usize) -> Result<Vec<B256>, String> {
    let mut hashes = Vec::new();
    for chunk in raws.chunks(batch.max(1)) {
        let req: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"jsonrpc":"2.0","id":i,"method":"eth_sendRawTransaction","params":[raw_hex(r)]}))
            .collect();
        let resp = conn.call(&Value::Array(req)).map_err(|e| e.to_string())?;
        for r in resp.as_array().ok_or("batch response is not an array")? {
            if let Some(e) = r.get("error") {
                return Err(e.to_string());
            }
            hashes.push(r["result"].as_str().and_then(|s| s.parse().ok()).ok_or("bad hash")?);
        }
    }
    Ok(hashes)
}

fn wait_included(conn: &mut Conn, hash: &B256) -> Result<Value, String> {
    for _ in 0..3000 {
        let r = conn.request("eth_getTransactionReceipt", json!([hash]))?;
        if !r.is_null() {
            return Ok(r);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("transaction {hash} was not included"))
}

/// Funds the senders (and, for ERC-20, deploys the token and hands it out).
/// Returns the token address for ERC-20.
fn setup(cfg: &LoadConfig, senders: &[Address]) -> Result<Option<Address>, String> {
    let mut conn = Conn::new(cfg.rpc).map_err(|e| e.to_string())?;
    let chain_id = qty(&conn.request("eth_chainId", json!([]))?);
    let funder = derive(DEV_MNEMONIC, 0)?;
    let first_nonce = qty(&conn.request("eth_getTransactionCount", json!([funder.address, "pending"]))?);
    let fee = fee_cap(&mut conn)?;
    let mut raws = Vec::new();
    let mut nonce = first_nonce;
    // What the pool requires of the funding account: every setup
    // transaction's gas limit at the fee cap, plus the value it sends.
    let mut needed = U256::ZERO;
    let mut send = |to: TxKind, value: U256, data: Bytes, gas_limit: u64| {
        raws.push(sign_eip1559(&funder.signer, chain_id, nonce, to, value, data, gas_limit, fee, GWEI));
        nonce += 1;
        needed += value + U256::from(gas_limit as u128 * fee);
    };
    let mut token = None;
    if cfg.workload == Workload::Erc20 {
        let j: Value = serde_json::from_str(TOKEN_JSON).map_err(|e| e.to_string())?;
        let code = hex::decode(j["bytecode"].as_str().unwrap_or_default().trim_start_matches("0x"))
            .map_err(|e| e.to_string())?;
        let mut init = code;
        init.extend_from_slice(&U256::from(10u64).pow(U256::from(30u64)).to_be_bytes::<32>());
        // The deployment is the funding account's first transaction here.
        token = Some(funder.address.create(first_nonce));
        send(TxKind::Create, U256::ZERO, init.into(), 2_000_000);
    }
    // Top senders up to 10 ETH rather than sending 10 ETH each time, so that
    // repeated runs against one node do not drain the funding account.
    let target = U256::from(10u64).pow(U256::from(19u64));
    let balances = balances_of(&mut conn, senders)?;
    for (s, balance) in senders.iter().zip(balances) {
        let top_up = target.saturating_sub(balance);
        if !top_up.is_zero() {
            send(TxKind::Call(*s), top_up, Bytes::new(), 21_000);
        }
        if let Some(t) = token {
            send(TxKind::Call(t), U256::ZERO, erc20_transfer(*s, U256::from(10u64).pow(U256::from(24u64))), 100_000);
        }
    }
    let have = balances_of(&mut conn, &[funder.address])?[0];
    if have < needed {
        return Err(format!(
            "the funding account {} holds {have} wei; the setup ({} transactions) needs {needed}: \
             start the node on a fresh --datadir",
            funder.address,
            raws.len()
        ));
    }
    let hashes = send_all(&mut conn, &raws, 200)?;
    if let Some(last) = hashes.last() {
        let r = wait_included(&mut conn, last)?;
        if r["status"] != "0x1" {
            return Err(format!("setup transaction failed: {r}"));
        }
    }
    Ok(token)
}

/// The fee cap of every transaction sent: twice the node's gas price, as
/// wallets do, and at least 10 gwei. It sets what the pool reserves of each
/// sender's balance (gas limit times fee cap), so it stays modest.
fn fee_cap(conn: &mut Conn) -> Result<u128, String> {
    let price = qty(&conn.request("eth_gasPrice", json!([]))?) as u128;
    Ok((2 * price).max(10 * GWEI))
}

/// Latest balances of `addrs`, in one batch.
fn balances_of(conn: &mut Conn, addrs: &[Address]) -> Result<Vec<U256>, String> {
    let req: Vec<Value> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"jsonrpc":"2.0","id":i,"method":"eth_getBalance","params":[a, "latest"]}))
        .collect();
    let resp = conn.call(&Value::Array(req)).map_err(|e| e.to_string())?;
    let mut out = vec![U256::ZERO; addrs.len()];
    for r in resp.as_array().ok_or("batch response is not an array")? {
        let i = r["id"].as_u64().filter(|&i| (i as usize) < addrs.len()).ok_or("bad id in batch response")?;
        out[i as usize] =
            r["result"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| format!("eth_getBalance: {r}"))?;
    }
    Ok(out)
}

fn erc20_transfer(to: Address, amount: U256) -> Bytes {
    let mut d = vec![0xa9, 0x05, 0x9c, 0xbb];
    d.extend_from_slice(&[0u8; 12]);
    d.extend_from_slice(to.as_slice());
    d.extend_from_slice(&amount.to_be_bytes::<32>());
    d.into()
}

/// Runs the load and measures it.
pub fn run(cfg: &LoadConfig) -> Result<LoadReport, String> {
    let keys: Vec<_> = (0..cfg.senders as u32).map(|i| derive(DEV_MNEMONIC, 1000 + i)).collect::<Result<_, _>>()?;
    let addrs: Vec<Address> = keys.iter().map(|k| k.address).collect();
    let token = setup(cfg, &addrs)?;
    let mut conn = Conn::new(cfg.rpc).map_err(|e| e.to_string())?;
    let chain_id = qty(&conn.request("eth_chainId", json!([]))?);
    let mut nonces = Vec::new();
    for a in &addrs {
        nonces.push(qty(&conn.request("eth_getTransactionCount", json!([a, "pending"]))?));
    }
    // Pre-sign, round-robin over senders so every batch spreads across accounts.
    let fee = fee_cap(&mut conn)?;
    let mut raws = Vec::with_capacity(cfg.txs);
    for i in 0..cfg.txs {
        let s = i % keys.len();
        // Recipients never send, so transfers do not chain through balances.
        let to = Address::from_word(alloy_primitives::keccak256((i % 1000).to_be_bytes()));
        let raw = match token {
            None => sign_eip1559(
                &keys[s].signer,
                chain_id,
                nonces[s],
                TxKind::Call(to),
                U256::from(1),
                Bytes::new(),
                21_000,
                fee,
                GWEI,
            ),
            Some(t) => sign_eip1559(
                &keys[s].signer,
                chain_id,
                nonces[s],
                TxKind::Call(t),
                U256::ZERO,
                erc20_transfer(to, U256::from(1)),
                60_000,
                fee,
                GWEI,
            ),
        };
        nonces[s] += 1;
        raws.push(raw);
    }
    let start_block = qty(&conn.request("eth_blockNumber", json!([]))?);
    let sent: Arc<Mutex<HashMap<B256, Instant>>> = Arc::new(Mutex::new(HashMap::with_capacity(cfg.txs)));
    let errors: Arc<Mutex<(usize, Option<String>)>> = Arc::new(Mutex::new((0, None)));
    let t0 = Instant::now();
    let per_conn: Vec<Vec<Bytes>> = {
        let mut v = vec![Vec::new(); cfg.connections.max(1)];
        for (i, chunk) in raws.chunks(cfg.batch.max(1)).enumerate() {
            let n = v.len();
            v[i % n].extend_from_slice(chunk);
        }
        v
    };
    let rate_per_conn = cfg.rate / per_conn.len() as f64;
    let senders: Vec<_> = per_conn
        .into_iter()
        .map(|mine| {
            let (sent, errors, addr, batch) = (sent.clone(), errors.clone(), cfg.rpc, cfg.batch.max(1));
            std::thread::spawn(move || {
                let Ok(mut c) = Conn::new(addr) else { return };
                for (k, chunk) in mine.chunks(batch).enumerate() {
                    // Open-loop pacing: batch k leaves at k * batch / rate.
                    let due = t0 + Duration::from_secs_f64(k as f64 * batch as f64 / rate_per_conn);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let req: Vec<Value> = chunk.iter().enumerate().map(|(i, r)| json!({"jsonrpc":"2.0","id":i,"method":"eth_sendRawTransaction","params":[raw_hex(r)]})).collect();
                    let at = Instant::now();
                    let Ok(resp) = c.call(&Value::Array(req)) else { continue };
                    let mut s = sent.lock().unwrap_or_else(|e| e.into_inner());
                    for r in resp.as_array().into_iter().flatten() {
                        match r["result"].as_str().and_then(|h| h.parse::<B256>().ok()) {
                            Some(h) => {
                                s.insert(h, at);
                            }
                            None => {
                                let mut e = errors.lock().unwrap_or_else(|e| e.into_inner());
                                e.0 += 1;
                                e.1.get_or_insert_with(|| r["error"].to_string());
                            }
                        }
                    }
                }
            })
        })
        .collect();
    // Watch blocks until every accepted transaction is seen or 60 s pass without progress.
    let mut seen: HashMap<B256, Instant> = HashMap::with_capacity(cfg.txs);
    let mut next = start_block + 1;
    let mut blocks = 0;
    let mut last_inclusion = t0;
    let mut last_progress = Instant::now();
    let mut senders = Some(senders);
    loop {
        let head = qty(&conn.request("eth_blockNumber", json!([]))?);
        let seen_at = Instant::now();
        while next <= head {
            let b = conn.request("eth_getBlockByNumber", json!([format!("{next:#x}"), false]))?;
            let txs = b["transactions"].as_array().cloned().unwrap_or_default();
            let n = txs.len();
            for h in txs.iter().filter_map(|h| h.as_str()?.parse::<B256>().ok()) {
                seen.insert(h, seen_at);
            }
            if n > 0 {
                blocks += 1;
                last_inclusion = seen_at;
                last_progress = Instant::now();
            }
            next += 1;
        }
        let done_sending = senders.as_ref().is_some_and(|v| v.iter().all(|h| h.is_finished()));
        if done_sending {
            for h in senders.take().into_iter().flatten() {
                let _ = h.join();
            }
        }
        if senders.is_none() {
            let s = sent.lock().unwrap_or_else(|e| e.into_inner());
            if s.keys().all(|h| seen.contains_key(h)) {
                break;
            }
        }
        if last_progress.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let accepted = sent.len();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(h, at)| seen.get(h).map(|t| t.saturating_duration_since(*at).as_secs_f64() * 1000.0))
        .collect();
    let (rejected, first_error) = errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let last_inclusion = sent.keys().filter_map(|h| seen.get(h)).max().copied().unwrap_or(last_inclusion);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let elapsed = last_inclusion.duration_since(t0).as_secs_f64().max(1e-9);
    Ok(LoadReport {
        accepted,
        rejected,
        included: latencies.len(),
        included_per_sec: latencies.len() as f64 / elapsed,
        latency_ms: [pct(0.5), pct(0.9), pct(0.99), latencies.last().copied().unwrap_or(0.0)],
        blocks,
        first_error,
    })
}
