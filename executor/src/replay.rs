//! Replay of mainnet block fixtures (block.json, pre_state.json,
//! bytecodes.json, block_hashes.json): receipts root, gas used and logs bloom
//! against the header; parallel post-state against sequential.
//!
//! Pre-Byzantium receipts carry an intermediate state root that a partial
//! pre-state cannot reproduce: for those blocks only gas used and the logs
//! bloom are checked. Block and uncle rewards are not applied (they change no
//! receipt), nor is the DAO fork's irregular state change.

use crate::block::{execute_block, BlockInput, BlockOutput, ExecutionMode, Withdrawal};
use crate::error::ExecutorError;
use crate::evm::EvmEnv;
use crate::spec::mainnet_spec;
use alloy_primitives::{Address, Bloom, Bytes, TxKind, B256, U256};
use metisdb::pending::{InMemoryState, StateKey, StateValue};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::transaction::{AccessList, AccessListItem};
use revm::primitives::hardfork::SpecId;
use serde_json::Value;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

/// Which paths to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayMode {
    Seq,
    Par,
    Both,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlockReport {
    pub number: u64,
    pub txs: usize,
    pub seq_ms: Option<f64>,
    pub par_ms: Option<f64>,
    /// seq_ms / par_ms when both ran.
    pub speedup: Option<f64>,
    pub ok: bool,
    pub mismatches: Vec<String>,
}

/// A block fixture loaded into executor inputs.
pub struct BlockFixture {
    pub number: u64,
    pub input: BlockInput,
    pub txs: Vec<TxEnv>,
    pub state: InMemoryState,
    pub expected_receipts_root: B256,
    pub expected_gas_used: u64,
    pub expected_logs_bloom: Bloom,
}

fn fixture_error(path: &Path, reason: impl Into<String>) -> ExecutorError {
    ExecutorError::Fixture { path: path.to_path_buf(), reason: reason.into() }
}

fn read_json(path: &Path) -> Result<Value, ExecutorError> {
    let text = std::fs::read_to_string(path).map_err(|e| fixture_error(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fixture_error(path, e.to_string()))
}

/// Field accessors that turn a missing or malformed field into an error
/// naming it.
struct Fields<'a> {
    path: &'a Path,
    value: &'a Value,
}

impl<'a> Fields<'a> {
    fn opt<T: FromStr>(&self, key: &str) -> Result<Option<T>, ExecutorError> {
        match self.value.get(key).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => {
                s.parse::<T>().map(Some).map_err(|_| fixture_error(self.path, format!("malformed field {key}: {s}")))
            }
        }
    }
    fn get<T: FromStr>(&self, key: &str) -> Result<T, ExecutorError> {
        self.opt(key)?.ok_or_else(|| fixture_error(self.path, format!("missing field {key}")))
    }
    fn u64(&self, key: &str) -> Result<u64, ExecutorError> {
        Ok(self.get::<U256>(key)?.saturating_to())
    }
    fn opt_u64(&self, key: &str) -> Result<Option<u64>, ExecutorError> {
        Ok(self.opt::<U256>(key)?.map(|v| v.saturating_to()))
    }
}

fn parse_tx(path: &Path, value: &Value) -> Result<TxEnv, ExecutorError> {
    let f = Fields { path, value };
    let tx_type = f.opt_u64("type")?.unwrap_or(0) as u8;
    let chain_id = match f.opt_u64("chainId")? {
        Some(id) => Some(id),
        // EIP-155 legacy signatures encode the chain in v.
        None => f.opt_u64("v")?.filter(|v| *v >= 35).map(|v| (v - 35) / 2),
    };
    let access_list = match value.get("accessList").and_then(Value::as_array) {
        None => AccessList::default(),
        Some(items) => AccessList(
            items
                .iter()
                .map(|item| {
                    let fi = Fields { path, value: item };
                    let keys = item
                        .get("storageKeys")
                        .and_then(Value::as_array)
                        .map(|keys| {
                            keys.iter().filter_map(|k| k.as_str().and_then(|s| s.parse::<B256>().ok())).collect()
                        })
                        .unwrap_or_default();
                    Ok(AccessListItem { address: fi.get("address")?, storage_keys: keys })
                })
                .collect::<Result<_, ExecutorError>>()?,
        ),
    };
    let blob_hashes = value
        .get("blobVersionedHashes")
        .and_then(Value::as_array)
        .map(|hashes| hashes.iter().filter_map(|h| h.as_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default();
    let gas_price: u128 = match f.opt::<U256>("maxFeePerGas")? {
        Some(max_fee) => max_fee.saturating_to(),
        None => f.get::<U256>("gasPrice")?.saturating_to(),
    };
    Ok(TxEnv {
        tx_type,
        caller: f.get::<Address>("from")?,
        gas_limit: f.u64("gas")?,
        gas_price,
        gas_priority_fee: f.opt::<U256>("maxPriorityFeePerGas")?.map(|v| v.saturating_to()),
        kind: match f.opt::<Address>("to")? {
            Some(to) => TxKind::Call(to),
            None => TxKind::Create,
        },
        value: f.get("value")?,
        data: f.get::<Bytes>("input")?,
        nonce: f.u64("nonce")?,
        chain_id,
        access_list,
        blob_hashes,
        max_fee_per_blob_gas: f.opt::<U256>("maxFeePerBlobGas")?.map_or(0, |v| v.saturating_to()),
        ..TxEnv::default()
    })
}

fn load_state(dir: &Path) -> Result<InMemoryState, ExecutorError> {
    let mut state = InMemoryState::default();
    let codes_path = dir.join("bytecodes.json");
    let codes = read_json(&codes_path)?;
    for (hash, entry) in codes.as_object().into_iter().flatten() {
        let f = Fields { path: &codes_path, value: entry };
        let hash: B256 = hash.parse().map_err(|_| fixture_error(&codes_path, format!("bad hash {hash}")))?;
        // Stored in revm's analysed form: padded past `original_len`.
        let mut code = f.get::<Bytes>("bytecode")?;
        if let Some(len) = entry.get("original_len").and_then(Value::as_u64) {
            if len as usize > code.len() {
                return Err(fixture_error(&codes_path, format!("code {hash} shorter than its original_len {len}")));
            }
            code.truncate(len as usize);
        }
        if alloy_primitives::keccak256(&code) != hash {
            return Err(fixture_error(&codes_path, format!("code {hash} does not hash to its key")));
        }
        state.codes.insert(hash, code);
    }
    let pre_path = dir.join("pre_state.json");
    let pre = read_json(&pre_path)?;
    for (address, account) in pre.as_object().into_iter().flatten() {
        let address: Address =
            address.parse().map_err(|_| fixture_error(&pre_path, format!("bad address {address}")))?;
        let basic = Fields { path: &pre_path, value: account.get("basic").unwrap_or(&Value::Null) };
        let nonce = match account.get("basic").and_then(|b| b.get("nonce")) {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            _ => basic.opt_u64("nonce")?.unwrap_or(0),
        };
        let f = Fields { path: &pre_path, value: account };
        let code_hash = f.opt::<B256>("code_hash")?.unwrap_or(metisdb::pending::EMPTY_CODE_HASH);
        if let Some(code) = f.opt::<Bytes>("code")? {
            state.codes.insert(code_hash, code);
        }
        let mut storage = alloy_primitives::map::HashMap::default();
        for (slot, value) in account.get("storage").and_then(Value::as_object).into_iter().flatten() {
            let slot: U256 = slot.parse().map_err(|_| fixture_error(&pre_path, format!("bad slot {slot}")))?;
            let value: U256 = value
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| fixture_error(&pre_path, format!("bad value of slot {slot}")))?;
            if !value.is_zero() {
                storage.insert(slot, value);
            }
        }
        let basic = metisdb::pending::AccountBasic { nonce, balance: basic.get("balance")?, code_hash };
        state.accounts.insert(address, metisdb::pending::InMemoryAccount { basic, storage });
    }
    let hashes_path = dir.join("block_hashes.json");
    if hashes_path.exists() {
        let hashes = read_json(&hashes_path)?;
        for (number, hash) in hashes.as_object().into_iter().flatten() {
            let number: u64 =
                number.parse().map_err(|_| fixture_error(&hashes_path, format!("bad number {number}")))?;
            let hash: B256 = hash
                .as_str()
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| fixture_error(&hashes_path, format!("bad hash of {number}")))?;
            state.block_hashes.insert(number, hash);
        }
    }
    Ok(state)
}

/// Loads a block directory.
pub fn load_block_dir(dir: &Path) -> Result<BlockFixture, ExecutorError> {
    let block_path = dir.join("block.json");
    let block = read_json(&block_path)?;
    let f = Fields { path: &block_path, value: &block };
    let number = f.u64("number")?;
    let timestamp = f.u64("timestamp")?;
    let spec = mainnet_spec(number, timestamp);
    let mut cfg = CfgEnv::default();
    cfg.chain_id = 1;
    cfg.set_spec_and_mainnet_gas_params(spec);
    let mut block_env = BlockEnv {
        number: U256::from(number),
        beneficiary: f.get("miner")?,
        timestamp: U256::from(timestamp),
        gas_limit: f.u64("gasLimit")?,
        basefee: f.opt_u64("baseFeePerGas")?.unwrap_or(0),
        difficulty: f.get("difficulty")?,
        prevrandao: if spec.is_enabled_in(SpecId::MERGE) { f.opt("mixHash")? } else { None },
        ..BlockEnv::default()
    };
    if let Some(excess) = f.opt_u64("excessBlobGas")? {
        block_env.set_blob_excess_gas_and_price(excess, cfg.blob_base_fee_update_fraction());
    }
    let txs = block
        .get("transactions")
        .and_then(Value::as_array)
        .ok_or_else(|| fixture_error(&block_path, "missing transactions"))?
        .iter()
        .map(|tx| parse_tx(&block_path, tx))
        .collect::<Result<Vec<_>, _>>()?;
    let withdrawals = block
        .get("withdrawals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            let fw = Fields { path: &block_path, value: w };
            Ok(Withdrawal { address: fw.get("address")?, amount_gwei: fw.u64("amount")? })
        })
        .collect::<Result<Vec<_>, ExecutorError>>()?;
    Ok(BlockFixture {
        number,
        input: BlockInput {
            env: EvmEnv { cfg, block: block_env },
            parent_beacon_block_root: f.opt("parentBeaconBlockRoot")?,
            parent_hash: f.opt("parentHash")?,
            withdrawals,
        },
        txs,
        state: load_state(dir)?,
        expected_receipts_root: f.get("receiptsRoot")?,
        expected_gas_used: f.u64("gasUsed")?,
        expected_logs_bloom: f.get("logsBloom")?,
    })
}

fn check_header(fixture: &BlockFixture, output: &BlockOutput, label: &str, mismatches: &mut Vec<String>) {
    if output.gas_used != fixture.expected_gas_used {
        mismatches.push(format!("{label}: gas used {} != header {}", output.gas_used, fixture.expected_gas_used));
    }
    if output.logs_bloom != fixture.expected_logs_bloom {
        mismatches.push(format!("{label}: logs bloom differs from the header"));
    }
    if let Some(root) = output.receipts_root {
        if root != fixture.expected_receipts_root {
            mismatches.push(format!("{label}: receipts root {root} != header {}", fixture.expected_receipts_root));
        }
    }
}

/// Differences between two post-states, key by key (accounts, slots, code).
pub fn diff_writes(seq: &[(StateKey, StateValue)], par: &[(StateKey, StateValue)]) -> Vec<String> {
    let seq: std::collections::BTreeMap<_, _> = seq.iter().cloned().collect();
    let par: std::collections::BTreeMap<_, _> = par.iter().cloned().collect();
    let mut diffs = Vec::new();
    for key in seq.keys().chain(par.keys().filter(|k| !seq.contains_key(k))) {
        let (a, b) = (seq.get(key), par.get(key));
        if a != b {
            diffs.push(format!("{key:?}: sequential {a:?}, parallel {b:?}"));
        }
    }
    diffs
}

fn timed(fixture: &BlockFixture, mode: ExecutionMode) -> (Result<BlockOutput, ExecutorError>, f64) {
    let start = Instant::now();
    let output = execute_block(&fixture.state, &fixture.input, &fixture.txs, mode);
    (output, start.elapsed().as_secs_f64() * 1e3)
}

/// Executes a loaded fixture and checks it; the parallel run is Block-STM
/// with `workers` workers.
pub fn run_fixture(fixture: &BlockFixture, mode: ReplayMode, workers: usize) -> BlockReport {
    run_fixture_in(fixture, mode, ExecutionMode::Parallel { workers })
}

/// [`run_fixture`] with the parallel run in `parallel` mode (e.g.
/// [`ExecutionMode::Auto`], which may fall back to sequential).
pub fn run_fixture_in(fixture: &BlockFixture, mode: ReplayMode, parallel: ExecutionMode) -> BlockReport {
    let mut mismatches = Vec::new();
    let mut outputs = Vec::new();
    let (mut seq_ms, mut par_ms) = (None, None);
    let runs: &[(ExecutionMode, &str)] = &[(ExecutionMode::Sequential, "sequential"), (parallel, "parallel")];
    for (exec_mode, label) in runs {
        let wanted = match exec_mode {
            ExecutionMode::Sequential => mode != ReplayMode::Par,
            _ => mode != ReplayMode::Seq,
        };
        if !wanted {
            continue;
        }
        let (output, ms) = timed(fixture, *exec_mode);
        match exec_mode {
            ExecutionMode::Sequential => seq_ms = Some(ms),
            _ => par_ms = Some(ms),
        }
        match output {
            Ok(output) => {
                check_header(fixture, &output, label, &mut mismatches);
                outputs.push(output);
            }
            Err(e) => mismatches.push(format!("{label}: {e}")),
        }
    }
    if let [seq, par] = outputs.as_slice() {
        if seq.receipts != par.receipts {
            mismatches.push("receipts differ between sequential and parallel".into());
        }
        mismatches.extend(diff_writes(&seq.final_writes, &par.final_writes));
    }
    BlockReport {
        number: fixture.number,
        txs: fixture.txs.len(),
        seq_ms,
        par_ms,
        speedup: seq_ms.zip(par_ms).map(|(s, p)| s / p),
        ok: mismatches.is_empty(),
        mismatches,
    }
}

/// Loads, executes and checks one block directory.
pub fn run_block_dir(dir: &Path, mode: ReplayMode, workers: usize) -> BlockReport {
    match load_block_dir(dir) {
        Ok(fixture) => run_fixture(&fixture, mode, workers),
        Err(e) => BlockReport {
            number: dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).unwrap_or(0),
            txs: 0,
            seq_ms: None,
            par_ms: None,
            speedup: None,
            ok: false,
            mismatches: vec![e.to_string()],
        },
    }
}
