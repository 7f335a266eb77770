//! Parsing of positional parameters: quantities, data, addresses, hashes,
//! block tags (EIP-1898 objects too) and call requests.

use super::error::{invalid_params, RpcResult};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use jsonrpsee::types::Params;
use serde_json::Value;

/// The positional parameters of a call (an empty list when absent).
pub fn positional(params: &Params<'_>) -> RpcResult<Vec<Value>> {
    match params.as_str() {
        None => Ok(Vec::new()),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(v)) => Ok(v),
            Ok(Value::Null) => Ok(Vec::new()),
            Ok(_) => Err(invalid_params("parameters must be a JSON array")),
            Err(e) => Err(invalid_params(format!("invalid parameters: {e}"))),
        },
    }
}

/// Parameter `i`, or an error naming it when missing.
pub fn required<'a>(p: &'a [Value], i: usize, what: &str) -> RpcResult<&'a Value> {
    match p.get(i) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(invalid_params(format!("missing value for required argument {i} ({what})"))),
    }
}

/// At most `n` parameters.
pub fn at_most(p: &[Value], n: usize) -> RpcResult<()> {
    if p.len() > n {
        return Err(invalid_params(format!("too many arguments, want at most {n}")));
    }
    Ok(())
}

fn hex_str<'a>(v: &'a Value, what: &str) -> RpcResult<&'a str> {
    let s = v.as_str().ok_or_else(|| invalid_params(format!("{what}: expected a hex string, got {v}")))?;
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| invalid_params(format!("{what}: hex string without 0x prefix")))
}

/// A 256-bit quantity.
pub fn u256(v: &Value, what: &str) -> RpcResult<U256> {
    let h = hex_str(v, what)?;
    if h.is_empty() || h.len() > 64 {
        return Err(invalid_params(format!("{what}: hex number must have 1 to 64 digits")));
    }
    U256::from_str_radix(h, 16).map_err(|_| invalid_params(format!("{what}: invalid hex number")))
}

/// A 64-bit quantity.
pub fn u64q(v: &Value, what: &str) -> RpcResult<u64> {
    let n = u256(v, what)?;
    u64::try_from(n).map_err(|_| invalid_params(format!("{what}: hex number > 64 bits")))
}

/// Arbitrary bytes.
pub fn bytes(v: &Value, what: &str) -> RpcResult<Bytes> {
    let h = hex_str(v, what)?;
    if h.len() % 2 == 1 {
        return Err(invalid_params(format!("{what}: hex string of odd length")));
    }
    hex::decode(h).map(Bytes::from).map_err(|_| invalid_params(format!("{what}: invalid hex string")))
}

/// A 20-byte address.
pub fn address(v: &Value, what: &str) -> RpcResult<Address> {
    let b = bytes(v, what)?;
    if b.len() != 20 {
        return Err(invalid_params(format!("{what}: hex string has length {}, want 40 for an address", b.len() * 2)));
    }
    Ok(Address::from_slice(&b))
}

/// A 32-byte hash.
pub fn hash(v: &Value, what: &str) -> RpcResult<B256> {
    let b = bytes(v, what)?;
    if b.len() != 32 {
        return Err(invalid_params(format!("{what}: hex string has length {}, want 64 for a hash", b.len() * 2)));
    }
    Ok(B256::from_slice(&b))
}

/// A storage slot: a quantity or 32 bytes of data, as go-ethereum accepts.
pub fn slot(v: &Value, what: &str) -> RpcResult<U256> {
    let h = hex_str(v, what)?;
    if h.len() > 64 || h.is_empty() {
        return Err(invalid_params(format!("{what}: storage slot must be 1 to 32 bytes of hex")));
    }
    U256::from_str_radix(h, 16).map_err(|_| invalid_params(format!("{what}: invalid hex")))
}

/// A block reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockId {
    /// A number.
    Number(u64),
    /// `latest`, `safe`, `finalized`.
    Latest,
    /// `pending`.
    Pending,
    /// `earliest`.
    Earliest,
    /// A hash (EIP-1898).
    Hash(B256),
}

/// A block tag, number or EIP-1898 object; `None` (absent) means latest.
pub fn block_id(v: Option<&Value>) -> RpcResult<BlockId> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(BlockId::Latest) };
    if let Some(obj) = v.as_object() {
        if let Some(h) = obj.get("blockHash") {
            return Ok(BlockId::Hash(hash(h, "blockHash")?));
        }
        if let Some(n) = obj.get("blockNumber") {
            return block_id(Some(n));
        }
        return Err(invalid_params("block object needs blockHash or blockNumber"));
    }
    match v.as_str() {
        Some("latest") | Some("safe") | Some("finalized") => Ok(BlockId::Latest),
        Some("pending") => Ok(BlockId::Pending),
        Some("earliest") => Ok(BlockId::Earliest),
        Some(_) => Ok(BlockId::Number(u64q(v, "block number")?)),
        None => Err(invalid_params(format!("invalid block reference {v}"))),
    }
}

/// A block tag or number (no hashes: eth_getBlockByNumber, eth_getLogs).
pub fn block_number_tag(v: Option<&Value>) -> RpcResult<BlockId> {
    match block_id(v)? {
        BlockId::Hash(_) => Err(invalid_params("a block number or tag is required here")),
        id => Ok(id),
    }
}

/// The transaction object of eth_call and eth_estimateGas.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    /// Sender (zero when absent).
    pub from: Option<Address>,
    /// Recipient; `None` creates a contract.
    pub to: Option<Address>,
    /// Gas limit.
    pub gas: Option<u64>,
    /// Legacy gas price.
    pub gas_price: Option<u128>,
    /// EIP-1559 fee cap.
    pub max_fee_per_gas: Option<u128>,
    /// EIP-1559 tip cap.
    pub max_priority_fee_per_gas: Option<u128>,
    /// Value.
    pub value: U256,
    /// Input (`input` or `data`).
    pub input: Bytes,
    /// Nonce.
    pub nonce: Option<u64>,
    /// EIP-2930 access list.
    pub access_list: Option<alloy_eips::eip2930::AccessList>,
}

fn u128q(v: &Value, what: &str) -> RpcResult<u128> {
    let n = u256(v, what)?;
    u128::try_from(n).map_err(|_| invalid_params(format!("{what}: hex number > 128 bits")))
}

/// Parses a call request object.
pub fn call_request(v: &Value) -> RpcResult<CallRequest> {
    let obj = v.as_object().ok_or_else(|| invalid_params("transaction argument must be an object"))?;
    let field = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let mut r = CallRequest {
        from: field("from").map(|v| address(v, "from")).transpose()?,
        to: field("to").map(|v| address(v, "to")).transpose()?,
        gas: field("gas").map(|v| u64q(v, "gas")).transpose()?,
        gas_price: field("gasPrice").map(|v| u128q(v, "gasPrice")).transpose()?,
        max_fee_per_gas: field("maxFeePerGas").map(|v| u128q(v, "maxFeePerGas")).transpose()?,
        max_priority_fee_per_gas: field("maxPriorityFeePerGas")
            .map(|v| u128q(v, "maxPriorityFeePerGas"))
            .transpose()?,
        value: field("value").map(|v| u256(v, "value")).transpose()?.unwrap_or_default(),
        input: Bytes::new(),
        nonce: field("nonce").map(|v| u64q(v, "nonce")).transpose()?,
        access_list: field("accessList")
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| invalid_params(format!("accessList: {e}"))))
            .transpose()?,
    };
    let input = field("input").map(|v| bytes(v, "input")).transpose()?;
    let data = field("data").map(|v| bytes(v, "data")).transpose()?;
    if let (Some(i), Some(d)) = (&input, &data) {
        if i != d {
            return Err(invalid_params(
                "both \"data\" and \"input\" are set and not equal. Please use \"input\" to pass transaction call data",
            ));
        }
    }
    r.input = input.or(data).unwrap_or_default();
    if r.gas_price.is_some() && (r.max_fee_per_gas.is_some() || r.max_priority_fee_per_gas.is_some()) {
        return Err(invalid_params("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified"));
    }
    Ok(r)
}

impl CallRequest {
    /// Kind of the call.
    pub fn kind(&self) -> TxKind {
        self.to.map_or(TxKind::Create, TxKind::Call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_numbers_and_objects() {
        assert_eq!(block_id(None).unwrap(), BlockId::Latest);
        assert_eq!(block_id(Some(&json!("0x10"))).unwrap(), BlockId::Number(16));
        assert_eq!(block_id(Some(&json!("finalized"))).unwrap(), BlockId::Latest);
        assert_eq!(block_id(Some(&json!({"blockNumber": "0x1"}))).unwrap(), BlockId::Number(1));
        assert!(block_id(Some(&json!("lastest"))).is_err());
        assert!(block_id(Some(&json!(12))).is_err());
        assert!(u64q(&json!("0x10000000000000000"), "n").is_err());
        assert!(address(&json!("0x1234"), "a").is_err());
        assert!(bytes(&json!("0xabc"), "b").is_err());
    }
}
