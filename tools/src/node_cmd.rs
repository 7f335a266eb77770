//! `metis node --dev`: the dev node.

use clap::Args;
use metis_node::{Node, NodeConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Arguments of `metis node`.
#[derive(Args)]
pub struct NodeArgs {
    /// Run the single-node dev chain (chain id 1337, funded test accounts). Required.
    #[arg(long)]
    dev: bool,
    /// Data directory (created if missing; a restart continues the chain in it).
    #[arg(long, default_value = "./data")]
    datadir: PathBuf,
    /// Time between blocks, e.g. 1s, 250ms (at least 50ms).
    #[arg(long = "block-time", default_value = "1s", value_parser = parse_duration)]
    block_time: Duration,
    /// JSON-RPC listen address.
    #[arg(long = "http.addr", default_value = "127.0.0.1")]
    http_addr: IpAddr,
    /// JSON-RPC port (0: any free port, printed at start).
    #[arg(long = "http.port", default_value_t = 8545)]
    http_port: u16,
    /// Serve WebSocket (eth_subscribe) on the JSON-RPC port as well.
    #[arg(long)]
    ws: bool,
    /// Prometheus metrics endpoint, e.g. 127.0.0.1:9001.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Versions of historical state to keep (default: the database's, 256).
    #[arg(long = "state.retention")]
    retention: Option<u32>,
    /// Block-STM worker threads (1: sequential execution; default: all cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Block gas limit.
    #[arg(long = "gas-limit")]
    gas_limit: Option<u64>,
    /// sync: every block is on stable storage before it is published; async:
    /// flushed every second and at shutdown (a power loss may lose the last
    /// second of blocks, never corrupts the database).
    #[arg(long = "db.durability", default_value = "sync")]
    durability: metisdb::Durability,
}

/// Parses `1s`, `250ms`, `2.5s`, `1m`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.trim().parse().map_err(|_| format!("invalid duration {s:?}: expected e.g. 1s or 250ms"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("invalid duration unit {unit:?}: use ms, s or m")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the node until SIGINT or SIGTERM.
pub fn run(args: NodeArgs) -> Result<ExitCode> {
    if !args.dev {
        return Err("only the dev chain is available: run `metis node --dev`".into());
    }
    let mut config = NodeConfig::dev();
    config.datadir = args.datadir;
    config.block_time = args.block_time;
    config.http_addr = SocketAddr::new(args.http_addr, args.http_port);
    config.ws = args.ws;
    config.metrics_addr = args.metrics;
    config.retention = args.retention;
    if let Some(w) = args.workers {
        config.workers = w.max(1);
    }
    config.durability = args.durability;
    if let Some(g) = args.gas_limit {
        config.chain.gas_limit = g;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        // Handlers go in before the banner announces the RPC address: a
        // client that reads the banner and signals at once must get a clean
        // shutdown, not the default action of the signal.
        let stop_signal = ShutdownSignal::install()?;
        let node = Node::start(config.clone()).await?;
        print_banner(&node, &config)?;
        stop_signal.wait().await;
        println!("shutting down");
        node.stop().await;
        println!("stopped cleanly");
        Ok(ExitCode::SUCCESS)
    })
}

fn print_banner(node: &Node, config: &NodeConfig) -> Result<()> {
    let head = node.core.chain.head();
    let accounts = metis_node::dev::dev_accounts(metis_node::dev::DEV_ACCOUNTS)?;
    println!("metis dev node");
    println!("chain id      {}", config.chain.chain_id);
    println!("fork          {:?}", config.chain.spec);
    println!("datadir       {}", config.datadir.display());
    println!("head          block {} {:#x}", head.number, head.hash);
    println!("block time    {:?}", config.block_time);
    println!();
    println!("Accounts (mnemonic \"{}\", m/44'/60'/0'/0/i), 10000 ETH each at genesis", metis_node::dev::DEV_MNEMONIC);
    for (i, a) in accounts.iter().enumerate() {
        println!("({i}) {:#x}  private key {:#x}", a.address, a.key);
    }
    println!();
    let scheme = if config.ws { "http and ws" } else { "http" };
    println!("JSON-RPC ({scheme}) listening on {}", node.rpc_addr);
    if let Some(m) = node.metrics_addr {
        println!("metrics on http://{m}/metrics");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}

/// SIGTERM and SIGINT, caught from the moment `install` returns.
struct ShutdownSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1h").is_err());
    }
}

/// Arguments of `metis bench-rpc`.
#[derive(Args)]
pub struct BenchRpcArgs {
    /// JSON-RPC address of a running dev node.
    #[arg(long, default_value = "127.0.0.1:8545")]
    rpc: SocketAddr,
    /// transfer (ETH) or erc20 (Token.transfer).
    #[arg(long, default_value = "transfer")]
    workload: String,
    /// Sending accounts (funded by the run from dev account 0).
    #[arg(long, default_value_t = 200)]
    senders: usize,
    /// Transactions to send.
    #[arg(long, default_value_t = 20_000)]
    txs: usize,
    /// Target send rate, transactions per second.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Transactions per JSON-RPC batch.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Concurrent sending connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

/// Runs the RPC load generator against a running node.
pub fn run_bench(args: BenchRpcArgs) -> Result<ExitCode> {
    use metis_node::loadgen::{run, LoadConfig, Workload};
    let workload = match args.workload.as_str() {
        "transfer" => Workload::Transfer,
        "erc20" => Workload::Erc20,
        other => return Err(format!("unknown workload {other:?}: transfer or erc20").into()),
    };
    let cfg = LoadConfig {
        rpc: args.rpc,
        workload,
        senders: args.senders.max(1),
        txs: args.txs,
        rate: args.rate,
        batch: args.batch,
        connections: args.connections,
    };
    let r = run(&cfg)?;
    println!(
        "workload={} sent={} accepted={} rejected={} included={} blocks={} included_per_sec={:.0} latency_ms p50={:.1} p90={:.1} p99={:.1} max={:.1}",
        args.workload, args.txs, r.accepted, r.rejected, r.included, r.blocks, r.included_per_sec,
        r.latency_ms[0], r.latency_ms[1], r.latency_ms[2], r.latency_ms[3]
    );
    if let Some(e) = r.first_error {
        println!("first rejection: {e}");
    }
    Ok(ExitCode::SUCCESS)
}
