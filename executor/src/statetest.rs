//! Runner of ethereum/tests GeneralStateTests: every test, every fork revm
//! supports, every (data, gas, value) index, through the Block-STM path. The
//! post-state root and the logs hash must match; `expectException` cases
//! must be rejected.

use crate::block::{execute_block, BlockInput, ExecutionMode};
use crate::evm::EvmEnv;
use crate::receipts::logs_hash;
use metisdb::pending::{InMemoryState, MissingBlockHash};
use revm::context::CfgEnv;
use revm::primitives::hardfork::SpecId;
use revm::primitives::U256;
use revm_statetest_types::{SpecName, TestSuite, TestUnit};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// One failed case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub path: PathBuf,
    pub test: String,
    pub fork: String,
    /// (data, gas, value) indices; `None` when the whole file failed to load.
    pub indexes: Option<(usize, usize, usize)>,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} :: {} [{}]", self.path.display(), self.test, self.fork)?;
        if let Some((d, g, v)) = self.indexes {
            write!(f, " d={d} g={g} v={v}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Counts of cases (one per fork and index triple).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Files revm's own runner (revme) skips, with the same reasons: storage
/// collisions on account creation (EIP-7610, which revm does not model on a
/// plain cache) and malformed values that revm's test types cannot load.
/// Their cases count as skipped.
fn skipped_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    path.to_string_lossy().contains("paris/eip7610_create_collision")
        || matches!(
            name,
            "RevertInCreateInInit_Paris.json"
                | "RevertInCreateInInit.json"
                | "dynamicAccountOverwriteEmpty.json"
                | "dynamicAccountOverwriteEmpty_Paris.json"
                | "RevertInCreateInInitCreate2Paris.json"
                | "create2collisionStorage.json"
                | "RevertInCreateInInitCreate2.json"
                | "create2collisionStorageParis.json"
                | "InitCollision.json"
                | "InitCollisionParis.json"
                | "test_init_collision_create_opcode.json"
                | "ValueOverflow.json"
                | "ValueOverflowParis.json"
        )
}

/// Forks whose tests revm does not run: `Constantinople` (the withdrawn
/// first version, revm only has Petersburg), `ByzantiumToConstantinopleAt5`
/// (a transition to it) and names revm does not know.
fn unsupported_fork(spec: &SpecName) -> bool {
    matches!(spec, SpecName::Constantinople | SpecName::ByzantiumToConstantinopleAt5 | SpecName::Unknown)
}

fn collect_json_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            collect_json_files(&child, out);
        }
    } else if path.extension().is_some_and(|e| e == "json") {
        out.push(path.to_path_buf());
    }
}

fn pre_state(unit: &TestUnit) -> InMemoryState {
    let mut state = InMemoryState { missing_block_hash: MissingBlockHash::KeccakOfNumber, ..InMemoryState::default() };
    for (address, account) in &unit.pre {
        state.insert_account(
            *address,
            account.nonce,
            account.balance,
            account.code.clone(),
            account.storage.iter().map(|(k, v)| (*k, *v)),
        );
    }
    state
}

/// Runs all cases of one file; returns (summary, failures).
fn run_file(path: &Path, filter: Option<&str>) -> (Summary, Vec<Failure>) {
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    let fail_file = |reason: String| Failure {
        path: path.to_path_buf(),
        test: String::new(),
        fork: String::new(),
        indexes: None,
        reason,
    };
    let suite: TestSuite = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(suite) => suite,
        Err(reason) => {
            summary.failed += 1;
            return (summary, vec![fail_file(reason)]);
        }
    };
    let skip_all = skipped_file(path);
    for (name, unit) in &suite.0 {
        if filter.is_some_and(|f| !name.contains(f) && !path.to_string_lossy().contains(f)) {
            continue;
        }
        let pre = pre_state(unit);
        for (spec_name, tests) in &unit.post {
            if skip_all || unsupported_fork(spec_name) {
                summary.skipped += tests.len();
                continue;
            }
            let mut cfg = CfgEnv::default();
            cfg.chain_id = unit.env.current_chain_id.unwrap_or(U256::ONE).try_into().unwrap_or(1);
            cfg.set_spec_and_mainnet_gas_params(spec_name.to_spec_id());
            cfg.set_max_blobs_per_tx(
                if cfg.spec.is_enabled_in(SpecId::PRAGUE) && !cfg.spec.is_enabled_in(SpecId::OSAKA) { 9 } else { 6 },
            );
            let block = unit.block_env(&mut cfg);
            let env = EvmEnv { cfg, block };
            for test in tests {
                let indexes = (test.indexes.data, test.indexes.gas, test.indexes.value);
                let failure = |reason: String| Failure {
                    path: path.to_path_buf(),
                    test: name.clone(),
                    fork: format!("{spec_name:?}"),
                    indexes: Some(indexes),
                    reason,
                };
                match run_case(&pre, &env, unit, test) {
                    Ok(()) => summary.passed += 1,
                    Err(reason) => {
                        summary.failed += 1;
                        failures.push(failure(reason));
                    }
                }
            }
        }
    }
    (summary, failures)
}

fn run_case(
    pre: &InMemoryState,
    env: &EvmEnv,
    unit: &TestUnit,
    test: &revm_statetest_types::Test,
) -> Result<(), String> {
    let tx = match test.tx_env(unit) {
        Ok(tx) => tx,
        Err(_) if test.expect_exception.is_some() => return Ok(()),
        Err(e) => return Err(format!("cannot build the transaction: {e}")),
    };
    let input =
        BlockInput { env: env.clone(), parent_beacon_block_root: None, parent_hash: None, withdrawals: Vec::new() };
    let outcome = execute_block(pre, &input, &[tx], ExecutionMode::Parallel { workers: 1 });
    let output = match (outcome, &test.expect_exception) {
        (Err(_), Some(_)) => return Ok(()),
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(expected)) => return Err(format!("expected exception {expected}, got none")),
        (Ok(output), None) => output,
    };
    let logs: Vec<_> = output.receipts.iter().flat_map(|r| r.logs.iter().cloned()).collect();
    let logs_root = logs_hash(&logs);
    if logs_root != test.logs {
        return Err(format!("logs hash {logs_root}, expected {}", test.logs));
    }
    let mut post = pre.clone();
    post.apply(&output.final_writes);
    let root = post.state_root();
    if root != test.hash {
        return Err(format!("state root {root}, expected {}", test.hash));
    }
    Ok(())
}

/// Runs every state-test JSON file under `paths` (files or directories),
/// on all available cores, calling `report` for each failure.
pub fn run_paths(paths: &[PathBuf], filter: Option<&str>, mut report: impl FnMut(&Failure)) -> Summary {
    let mut files = Vec::new();
    for path in paths {
        collect_json_files(path, &mut files);
    }
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len().max(1));
    let (sender, receiver) = mpsc::channel();
    let mut total = Summary::default();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            let (files, next) = (&files, &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let result = std::panic::catch_unwind(|| run_file(path, filter)).unwrap_or_else(|_| {
                    let failure = Failure {
                        path: path.clone(),
                        test: String::new(),
                        fork: String::new(),
                        indexes: None,
                        reason: "runner panicked".into(),
                    };
                    (Summary { failed: 1, ..Summary::default() }, vec![failure])
                });
                if sender.send(result).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        for (summary, failures) in receiver {
            total.passed += summary.passed;
            total.failed += summary.failed;
            total.skipped += summary.skipped;
            failures.iter().for_each(&mut report);
        }
    });
    total
}
