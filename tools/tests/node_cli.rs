//! `metis node --dev` as a process: the banner, JSON-RPC on a free port,
//! blocks, a clean exit on SIGTERM and SIGINT, and a restart that continues
//! the chain.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(clippy::zombie_processes)] // the caller waits for the child in `stop`
fn start(datadir: &std::path::Path) -> (Child, SocketAddr, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_metis"))
        .args(["node", "--dev", "--block-time", "50ms", "--http.port", "0", "--datadir"])
        .arg(datadir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn metis node");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read banner") > 0, "node exited early: {lines:?}");
        lines.push(line.trim_end().to_string());
        if let Some(addr) = line.trim_end().strip_prefix("JSON-RPC (http) listening on ") {
            let addr = addr.parse().expect("address");
            // Keep draining stdout so the node never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return (child, addr, lines);
        }
        assert!(Instant::now() < deadline, "no RPC address in {lines:?}");
    }
}

fn block_number(addr: SocketAddr) -> u64 {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let v: serde_json::Value = serde_json::from_str(out.split_once("\r\n\r\n").expect("body").1).expect("json");
    u64::from_str_radix(v["result"].as_str().expect("result").trim_start_matches("0x"), 16).expect("hex")
}

fn stop(mut child: Child, signal: &str) -> String {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status} after {signal}");
            return format!("{status}");
        }
        assert!(Instant::now() < deadline, "node did not exit after {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dev_node_serves_stops_cleanly_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, addr, banner) = start(dir.path());
    assert!(banner.iter().any(|l| l.contains("chain id      1337")), "{banner:?}");
    assert!(banner.iter().any(|l| l.starts_with("(0) 0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")), "{banner:?}");
    assert_eq!(banner.iter().filter(|l| l.starts_with('(')).count(), 10);
    let first = block_number(addr);
    std::thread::sleep(Duration::from_millis(400));
    let before = block_number(addr);
    assert!(before > first, "blocks are produced");
    stop(child, "-TERM");

    let (child, addr, _) = start(dir.path());
    assert!(block_number(addr) >= before, "the restarted node continues the chain");
    stop(child, "-INT");

    // A signal sent the moment the banner names the RPC address is a clean
    // shutdown too: the handlers are in place before the banner is printed.
    for signal in ["-INT", "-TERM"] {
        let (child, _, _) = start(dir.path());
        stop(child, signal);
    }
}

/// `metis bench rpc` run again and again against one node: every run funds
/// 200 senders from dev account 0 (10,000 ETH), so a generator that sent
/// each sender 10 ETH per run would drain it by the fifth run.
#[test]
fn repeated_load_runs_against_one_node_keep_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, addr, _) = start(dir.path());
    let mut node = KillOnDrop(Some(child));
    for (run, workload) in ["erc20", "transfer", "transfer", "transfer", "transfer", "erc20"].iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_metis"))
            .args(["bench", "rpc", "--rpc", &addr.to_string(), "--workload", workload])
            .args(["--senders", "200", "--txs", "200", "--rate", "2000"])
            .output()
            .expect("run metis bench rpc");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "run {run} ({workload}): {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("included=200 "), "run {run} ({workload}): {stdout}");
    }
    stop(node.0.take().expect("still running"), "-TERM");
}

/// Kills the node when a failed assertion unwinds past it, so that no node
/// outlives its test.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
