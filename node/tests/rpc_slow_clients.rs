//! Clients that hold connections: more connections than the limit, request
//! headers or bodies sent a byte at a time, kept-alive connections left
//! idle, WebSockets that answer no ping. Each is answered or cut within its
//! time limit, its connection slot comes back, and well-behaved clients are
//! served throughout (the test prints their p99 latency and the process's
//! peak RSS during the attack).

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const CHAIN_ID: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;

/// A request's head for a body of `len` bytes, kept alive.
fn head(addr: SocketAddr, len: usize) -> String {
    format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    s
}

/// Sends eth_chainId on `s`, kept alive, and returns the first read of the
/// answer.
fn call(s: &mut TcpStream, addr: SocketAddr) -> std::io::Result<String> {
    s.write_all(head(addr, CHAIN_ID.len()).as_bytes())?;
    s.write_all(CHAIN_ID)?;
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Reads until the server closes the connection (or resets it); returns
/// what came and how long the close took from `since`.
fn read_until_closed(s: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&out).into_owned(), since.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `bytes` one every 100 ms for at most 5 s from `since`; true if
/// the server cut the connection meanwhile.
fn trickle(s: &mut TcpStream, bytes: &[u8], since: Instant) -> bool {
    for byte in bytes {
        if s.write_all(&[*byte]).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        if since.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    false
}

/// True if a fresh client gets eth_chainId answered.
fn served(addr: SocketAddr) -> bool {
    post(addr, CHAIN_ID).1.contains("\"result\"")
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_excess_connections_are_cut_and_others_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), Duration::from_millis(200), |c| {
        c.limits.max_connections = 8;
        c.limits.header_timeout = Duration::from_secs(1);
        c.limits.request_timeout = Duration::from_secs(1);
        c.limits.ws_ping_interval = Duration::from_millis(200);
        c.limits.ws_inactive_limit = Duration::from_millis(500);
        c.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let addr = node.rpc_addr;
    let metrics = node.metrics_addr.expect("metrics endpoint");
    let t = tokio::task::spawn_blocking(move || {
        assert!(served(addr));

        // Headers a byte at a time: cut once the header time is up, though
        // bytes keep coming.
        let mut slow_head = connect(addr);
        let started = Instant::now();
        let cut = trickle(&mut slow_head, head(addr, CHAIN_ID.len()).as_bytes(), started);
        let (_, took) = read_until_closed(&mut slow_head, started);
        assert!(cut || took < Duration::from_secs(5), "slow headers held for {took:?}");

        // A body a byte at a time: cut at the request time.
        let mut slow_body = connect(addr);
        slow_body.write_all(head(addr, CHAIN_ID.len()).as_bytes()).unwrap();
        let started = Instant::now();
        let cut = trickle(&mut slow_body, &CHAIN_ID[..CHAIN_ID.len() - 1], started);
        let (answer, took) = read_until_closed(&mut slow_body, started);
        assert!(cut || took < Duration::from_secs(5), "slow body held for {took:?}");
        assert!(!answer.contains("\"result\""), "a request cut short was answered: {answer}");

        // A kept-alive connection left idle after its answer: closed.
        let mut idle = connect(addr);
        idle.write_all(head(addr, CHAIN_ID.len()).as_bytes()).unwrap();
        idle.write_all(CHAIN_ID).unwrap();
        let started = Instant::now();
        let (answer, took) = read_until_closed(&mut idle, started);
        assert!(answer.contains("\"result\""), "{answer}");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(5),
            "idle connection closed after {took:?}"
        );

        // A WebSocket client that never answers the pings: closed.
        let mut ws = connect(addr);
        let upgrade = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.write_all(upgrade.as_bytes()).unwrap();
        let started = Instant::now();
        let (got, took) = read_until_closed(&mut ws, started);
        assert!(got.starts_with("HTTP/1.1 101"), "{got}");
        assert!(took < Duration::from_secs(5), "a WebSocket answering no ping held for {took:?}");

        // More connections than the limit: the ones over it are refused
        // with 503, those within it still work, and once they are cut
        // (silent: the header time) the slots come back.
        let held: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
        std::thread::sleep(Duration::from_millis(200));
        let (status, body) = post(addr, CHAIN_ID);
        assert_eq!(status, 503, "{body}");
        let mut held_rest = held;
        let mut within = held_rest.pop().unwrap();
        assert!(call(&mut within, addr).unwrap().contains("\"result\""));
        std::thread::sleep(Duration::from_millis(1500));
        // Every slot back: as many connections as the limit, each answered.
        let again: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
        for mut s in again {
            let answer = call(&mut s, addr).unwrap_or_default();
            assert!(answer.contains("\"result\""), "a slot was not given back: {answer}");
        }
        drop(held_rest);

        // An attack while a well-behaved client calls in a loop: six
        // clients trickling headers (reconnecting whenever cut) and bursts
        // of fifty connections over the limit. Calls within the limit are
        // answered; the bursts get 503 at once, not a hang.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let running =
            |stop: &std::sync::Arc<std::sync::atomic::AtomicBool>| !stop.load(std::sync::atomic::Ordering::Relaxed);
        let tricklers: Vec<_> = (0..6)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while running(&stop) {
                        let Ok(mut s) = TcpStream::connect(addr) else { continue };
                        for byte in head(addr, 64).as_bytes() {
                            if !running(&stop) || s.write_all(&[*byte]).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
            })
            .collect();
        let flood = stop.clone();
        let flood = std::thread::spawn(move || {
            let (mut refused, mut slowest) = (0, Duration::ZERO);
            while running(&flood) {
                let burst: Vec<TcpStream> = (0..50).filter_map(|_| TcpStream::connect(addr).ok()).collect();
                for mut s in burst {
                    let t = Instant::now();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let (answer, _) = read_until_closed(&mut s, t);
                    if answer.starts_with("HTTP/1.1 503") {
                        refused += 1;
                        slowest = slowest.max(t.elapsed());
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (refused, slowest.as_millis())
        });
        let (mut latencies, mut turned_away) = (Vec::new(), 0);
        let attack = Instant::now();
        while attack.elapsed() < Duration::from_secs(4) {
            let t = Instant::now();
            let mut s = connect(addr);
            let answered = call(&mut s, addr).is_ok_and(|answer| answer.contains("\"result\""));
            assert!(answered || t.elapsed() < Duration::from_secs(1), "a call within the limit hung");
            if answered {
                latencies.push(t.elapsed());
            } else {
                turned_away += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        tricklers.into_iter().for_each(|t| t.join().unwrap());
        let (refused, slowest_refusal_ms) = flood.join().unwrap();
        latencies.sort();
        let p99 = latencies.get(latencies.len().saturating_sub(1) * 99 / 100).copied().unwrap_or_default();
        println!(
            "during the attack: {} calls answered, p99 {:.1} ms, {turned_away} turned away while the slots were full; {refused} connections over the limit refused (slowest {slowest_refusal_ms} ms); \
             peak RSS {} MiB",
            latencies.len(),
            p99.as_secs_f64() * 1e3,
            peak_rss_kib() / 1024
        );
        assert!(latencies.len() >= 20, "only {} calls answered in 4 s", latencies.len());
        assert!(refused > 0, "no connection over the limit was refused");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(served(addr), "not serving after the attack");
        assert_eq!(result(addr, "eth_chainId", json!([])), json!("0x539"));

        // The metrics endpoint: sixteen silent scrapers at once; one more
        // is closed unanswered; once they leave, a scrape is answered.
        let scrape = || {
            let mut s = connect(metrics);
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            read_until_closed(&mut s, Instant::now()).0
        };
        let silent: Vec<TcpStream> = (0..16).map(|_| connect(metrics)).collect();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(scrape(), "", "a scrape over the limit was answered");
        drop(silent);
        std::thread::sleep(Duration::from_millis(200));
        assert!(scrape().starts_with("HTTP/1.1 200"), "metrics not served once the silent scrapers left");
    });
    t.await.unwrap();
    node.stop().await;
}
