//! `metis`: the node and its tools.

mod db_cmd;
mod exec_cmd;
mod init_cmd;
mod node_cmd;
mod snapshot_cmd;
mod state_cmd;
mod synth;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// jemalloc unless built with `--features system-alloc` (see executor/BENCHMARKS.md).
#[cfg(all(feature = "jemalloc", not(feature = "system-alloc")))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "metis", version, about = "Metis node and MetisDB tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: `metis node --dev` starts the single-node dev chain with JSON-RPC.
    Node(node_cmd::NodeArgs),
    /// Benchmarks against a running node.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Same as `metis bench rpc`.
    #[command(hide = true)]
    BenchRpc(node_cmd::BenchRpcArgs),
    /// Create a database from a go-ethereum genesis file (version 0).
    Init(init_cmd::InitArgs),
    /// Run GeneralStateTests-format JSON files (every fork and index); prints failures, then `N passed, N failed, N skipped`.
    Statetest(exec_cmd::StatetestArgs),
    /// Replay mainnet block fixtures sequentially and on Block-STM; checks receipts root, gas used, logs bloom and seq == par.
    Replay(exec_cmd::ReplayArgs),
    /// Inspect, check and exercise a MetisDB database.
    Db {
        #[command(subcommand)]
        command: db_cmd::DbCommand,
    },
    /// Export, import and check state snapshots.
    Snapshot {
        #[command(subcommand)]
        command: snapshot_cmd::SnapshotCommand,
    },
    /// Create a database from a JSONL state dump (reth's init-state format).
    InitState(state_cmd::InitStateArgs),
    /// Write the state as a JSONL dump (reth's init-state format).
    ExportState(state_cmd::ExportStateArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Load a running node with signed transfers over JSON-RPC and report inclusion rate and latency.
    Rpc(node_cmd::BenchRpcArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Node(a) => node_cmd::run(a),
        Command::Bench { command: BenchCommand::Rpc(a) } | Command::BenchRpc(a) => node_cmd::run_bench(a),
        Command::Statetest(a) => exec_cmd::run_statetest(a),
        Command::Replay(a) => exec_cmd::run_replay(a),
        Command::Db { command } => db_cmd::run(command),
        Command::Init(a) => init_cmd::run(a),
        Command::Snapshot { command } => snapshot_cmd::run(command),
        Command::InitState(a) => state_cmd::run_init(a),
        Command::ExportState(a) => state_cmd::run_export(a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
