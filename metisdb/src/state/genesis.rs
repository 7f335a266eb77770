//! go-ethereum genesis files: parsing with errors that name the JSON path,
//! and writing the allocation as the first version of a database.
//!
//! Accepted like geth: `alloc` keys with or without `0x`; balances and
//! nonces as hex (`0x`) or decimal strings or JSON numbers; missing fields
//! take their defaults and unknown fields are ignored. Stricter than geth:
//! storage keys must be exactly 32 bytes (values up to 32 bytes, left
//! padded); a balance above 2^256-1 or a nonce above 2^64-1 is an error.
//! The state root is always computed; a `stateRoot` in the file is only
//! compared with it.

use super::{keccak256, AccountInfo, Address, StateWriter, B256, U256};
use crate::error::Result;
use metis_trie::KECCAK_EMPTY;
use serde_json::{Map, Value};

/// A problem in a genesis file, with the JSON path where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct GenesisError {
    /// JSON path, e.g. `alloc.0x00..01.balance`.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

fn err(path: &str, problem: impl Into<String>) -> GenesisError {
    GenesisError { path: path.to_string(), problem: problem.into() }
}

/// One allocated account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisAccount {
    /// Address.
    pub address: Address,
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// Bytecode.
    pub code: Vec<u8>,
    /// Storage: (slot, value), non-zero values only.
    pub storage: Vec<(U256, U256)>,
}

/// Header fields of the genesis block (defaults as in geth).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenesisHeader {
    /// Nonce field of the header.
    pub nonce: u64,
    /// Timestamp.
    pub timestamp: u64,
    /// Extra data.
    pub extra_data: Vec<u8>,
    /// Gas limit.
    pub gas_limit: u64,
    /// Difficulty.
    pub difficulty: U256,
    /// Mix hash.
    pub mix_hash: B256,
    /// Coinbase.
    pub coinbase: Address,
    /// Block number (normally 0).
    pub number: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Parent hash.
    pub parent_hash: B256,
    /// EIP-1559 base fee, if given.
    pub base_fee_per_gas: Option<U256>,
    /// EIP-4844 excess blob gas, if given.
    pub excess_blob_gas: Option<u64>,
    /// EIP-4844 blob gas used, if given.
    pub blob_gas_used: Option<u64>,
}

/// A parsed genesis file.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// The `config` object as given (chain id, fork blocks and times).
    pub config: Value,
    /// `config.chainId`, when present.
    pub chain_id: Option<u64>,
    /// Header fields.
    pub header: GenesisHeader,
    /// Allocation, sorted by address.
    pub alloc: Vec<GenesisAccount>,
    /// `stateRoot` stated by the file, if any.
    pub stated_root: Option<B256>,
}

fn strip0x(s: &str) -> &str {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s)
}

fn hex_bytes(path: &str, s: &str) -> Result<Vec<u8>, GenesisError> {
    let h = strip0x(s);
    let h = if h.len() % 2 == 1 { format!("0{h}") } else { h.to_string() };
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| err(path, format!("{s:?} is not hex"))))
        .collect()
}

fn u256(path: &str, v: &Value) -> Result<U256, GenesisError> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(U256::from(u));
            }
            u256(path, &Value::String(n.to_string()))
        }
        Value::String(s) if s.starts_with("0x") || s.starts_with("0X") => {
            let h = strip0x(s);
            if h.is_empty() {
                return Err(err(path, "empty hex number"));
            }
            if h.trim_start_matches('0').len() > 64 {
                return Err(err(path, format!("{s} exceeds 2^256-1")));
            }
            U256::from_str_radix(h, 16).map_err(|_| err(path, format!("{s:?} is not a hex number")))
        }
        Value::String(s) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(path, format!("{s:?} is not a decimal or 0x-hex number")));
            }
            U256::from_str_radix(s, 10).map_err(|_| err(path, format!("{s} exceeds 2^256-1")))
        }
        other => Err(err(path, format!("expected a number, found {other}"))),
    }
}

fn u64v(path: &str, v: &Value) -> Result<u64, GenesisError> {
    let x = u256(path, v)?;
    u64::try_from(x).map_err(|_| err(path, format!("{x} exceeds 2^64-1")))
}

fn fixed<const N: usize>(path: &str, v: &Value, exact: bool) -> Result<[u8; N], GenesisError> {
    let Value::String(s) = v else { return Err(err(path, format!("expected a hex string, found {v}"))) };
    let b = hex_bytes(path, s)?;
    if b.len() > N || (exact && b.len() != N) {
        return Err(err(path, format!("expected {N} bytes, found {}", b.len())));
    }
    let mut out = [0u8; N];
    out[N - b.len()..].copy_from_slice(&b);
    Ok(out)
}

fn field<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| obj.get(*n)).filter(|v| !v.is_null())
}

/// Parses a genesis file.
pub fn parse(bytes: &[u8]) -> Result<Genesis, GenesisError> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| err("$", format!("invalid JSON: {e}")))?;
    let Value::Object(top) = &root else { return Err(err("$", "expected a JSON object")) };
    let config = top.get("config").cloned().unwrap_or(Value::Object(Map::new()));
    if !config.is_object() {
        return Err(err("config", "expected an object"));
    }
    let chain_id = match config.get("chainId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(u64v("config.chainId", v)?),
    };
    let get_u64 = |names: &[&str], default: u64| -> Result<u64, GenesisError> {
        field(top, names).map_or(Ok(default), |v| u64v(names[0], v))
    };
    let header = GenesisHeader {
        nonce: get_u64(&["nonce"], 0)?,
        timestamp: get_u64(&["timestamp"], 0)?,
        extra_data: match field(top, &["extraData"]) {
            Some(Value::String(s)) => hex_bytes("extraData", s)?,
            Some(v) => return Err(err("extraData", format!("expected a hex string, found {v}"))),
            None => Vec::new(),
        },
        gas_limit: get_u64(&["gasLimit"], 5000)?,
        difficulty: field(top, &["difficulty"]).map_or(Ok(U256::ZERO), |v| u256("difficulty", v))?,
        mix_hash: field(top, &["mixHash", "mixhash"]).map_or(Ok([0; 32]), |v| fixed("mixHash", v, true))?.into(),
        coinbase: field(top, &["coinbase"]).map_or(Ok([0; 20]), |v| fixed("coinbase", v, true))?.into(),
        number: get_u64(&["number"], 0)?,
        gas_used: get_u64(&["gasUsed"], 0)?,
        parent_hash: field(top, &["parentHash"]).map_or(Ok([0; 32]), |v| fixed("parentHash", v, true))?.into(),
        base_fee_per_gas: field(top, &["baseFeePerGas"]).map(|v| u256("baseFeePerGas", v)).transpose()?,
        excess_blob_gas: field(top, &["excessBlobGas"]).map(|v| u64v("excessBlobGas", v)).transpose()?,
        blob_gas_used: field(top, &["blobGasUsed"]).map(|v| u64v("blobGasUsed", v)).transpose()?,
    };
    let stated_root =
        field(top, &["stateRoot"]).map(|v| fixed::<32>("stateRoot", v, true)).transpose()?.map(B256::from);
    let mut alloc = Vec::new();
    match field(top, &["alloc"]) {
        None => {}
        Some(Value::Object(accounts)) => {
            for (addr, acct) in accounts {
                let path = format!("alloc.{addr}");
                let a = strip0x(addr);
                if a.len() != 40 {
                    return Err(err(
                        &path,
                        format!("address must be 20 bytes (40 hex digits), found {} digits", a.len()),
                    ));
                }
                let address = Address::from(fixed::<20>(&path, &Value::String(addr.clone()), true)?);
                let Value::Object(o) = acct else { return Err(err(&path, "expected an object")) };
                let balance = field(o, &["balance"]).map_or(Ok(U256::ZERO), |v| u256(&format!("{path}.balance"), v))?;
                let nonce = field(o, &["nonce"]).map_or(Ok(0), |v| u64v(&format!("{path}.nonce"), v))?;
                let code = match field(o, &["code"]) {
                    Some(Value::String(s)) => hex_bytes(&format!("{path}.code"), s)?,
                    Some(v) => return Err(err(&format!("{path}.code"), format!("expected a hex string, found {v}"))),
                    None => Vec::new(),
                };
                let mut storage = Vec::new();
                match field(o, &["storage"]) {
                    None => {}
                    Some(Value::Object(slots)) => {
                        for (k, v) in slots {
                            let kp = format!("{path}.storage.{k}");
                            let key = fixed::<32>(&kp, &Value::String(k.clone()), true)?;
                            let val = fixed::<32>(&kp, v, false)?;
                            let val = U256::from_be_bytes(val);
                            if !val.is_zero() {
                                storage.push((U256::from_be_bytes(key), val));
                            }
                        }
                    }
                    Some(v) => return Err(err(&format!("{path}.storage"), format!("expected an object, found {v}"))),
                }
                alloc.push(GenesisAccount { address, balance, nonce, code, storage });
            }
        }
        Some(v) => return Err(err("alloc", format!("expected an object, found {v}"))),
    }
    alloc.sort_by_key(|a| a.address);
    if let Some(w) = alloc.windows(2).find(|w| w[0].address == w[1].address) {
        return Err(err(&format!("alloc.{:#x}", w[0].address), "address listed twice"));
    }
    Ok(Genesis { config, chain_id, header, alloc, stated_root })
}

impl Genesis {
    /// Writes the allocation into a state transaction.
    pub fn write(&self, w: &mut StateWriter<'_>) -> Result<()> {
        for a in &self.alloc {
            let code_hash = if a.code.is_empty() { KECCAK_EMPTY } else { keccak256(&a.code) };
            if !a.code.is_empty() {
                w.set_code(&code_hash, &a.code)?;
            }
            w.set_account(&a.address, Some(AccountInfo { nonce: a.nonce, balance: a.balance, code_hash }))?;
            for (slot, value) in &a.storage {
                w.set_storage(&a.address, slot, value)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_json_path() {
        let cases: &[(&str, &str)] = &[
            (r#"{"alloc": {"0x01": {}}}"#, "alloc.0x01"),
            (
                r#"{"alloc": {"0000000000000000000000000000000000000001": {"balance": "0x1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}}}"#,
                "alloc.0000000000000000000000000000000000000001.balance",
            ),
            (
                r#"{"alloc": {"0000000000000000000000000000000000000001": {"balance": "12a"}}}"#,
                "alloc.0000000000000000000000000000000000000001.balance",
            ),
            (
                r#"{"alloc": {"0000000000000000000000000000000000000001": {"storage": {"0x01": "0x01"}}}}"#,
                "alloc.0000000000000000000000000000000000000001.storage.0x01",
            ),
            (
                r#"{"alloc": {"0000000000000000000000000000000000000001": {"nonce": "0x10000000000000000"}}}"#,
                "alloc.0000000000000000000000000000000000000001.nonce",
            ),
            (r#"{"config": {"chainId": "x"}}"#, "config.chainId"),
            (r#"[1]"#, "$"),
            (r#"{"alloc": 5}"#, "alloc"),
        ];
        for (json, path) in cases {
            let e = parse(json.as_bytes()).unwrap_err();
            assert_eq!(e.path, *path, "{json}: {e}");
        }
    }

    #[test]
    fn accepts_geth_forms() {
        let g = parse(
            br#"{"config": {"chainId": 1337, "unknownFork": 5}, "gasLimit": "0x1c9c380", "unknownField": true,
                "alloc": {"0x0000000000000000000000000000000000000002": {"balance": "1000"},
                          "0000000000000000000000000000000000000001": {"balance": "0xff", "nonce": "0x1", "code": "6000",
                             "storage": {"0x0000000000000000000000000000000000000000000000000000000000000001": "0x02"}}}}"#,
        )
        .unwrap();
        assert_eq!(g.chain_id, Some(1337));
        assert_eq!(g.header.gas_limit, 30_000_000);
        assert_eq!(g.alloc.len(), 2);
        assert_eq!(g.alloc[0].balance, U256::from(255));
        assert_eq!(g.alloc[1].balance, U256::from(1000));
        assert_eq!(g.alloc[0].storage, vec![(U256::from(1), U256::from(2))]);
    }
}
