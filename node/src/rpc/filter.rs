//! eth_getLogs filters: block range or hash, addresses, topic positions.

use super::error::{invalid_params, RpcResult};
use super::params::{self, BlockId};
use alloy_primitives::{Address, Bloom, BloomInput, Log, B256};
use serde_json::Value;

/// A parsed filter.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// First block.
    pub from: Option<BlockId>,
    /// Last block.
    pub to: Option<BlockId>,
    /// A single block by hash (excludes from/to).
    pub block_hash: Option<B256>,
    /// Any of these addresses (empty: any).
    pub addresses: Vec<Address>,
    /// Per position, any of these topics (empty: any).
    pub topics: Vec<Vec<B256>>,
}

impl LogFilter {
    /// Parses the filter object.
    pub fn parse(v: &Value) -> RpcResult<LogFilter> {
        let obj = v.as_object().ok_or_else(|| invalid_params("filter must be an object"))?;
        let field = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let mut f = LogFilter {
            from: field("fromBlock").map(|v| params::block_number_tag(Some(v))).transpose()?,
            to: field("toBlock").map(|v| params::block_number_tag(Some(v))).transpose()?,
            block_hash: field("blockHash").map(|v| params::hash(v, "blockHash")).transpose()?,
            ..LogFilter::default()
        };
        if f.block_hash.is_some() && (f.from.is_some() || f.to.is_some()) {
            return Err(invalid_params("cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"));
        }
        match field("address") {
            None => {}
            Some(Value::Array(a)) => {
                f.addresses = a.iter().map(|x| params::address(x, "address")).collect::<RpcResult<_>>()?
            }
            Some(a) => f.addresses = vec![params::address(a, "address")?],
        }
        match field("topics") {
            None => {}
            Some(Value::Array(positions)) => {
                if positions.len() > 4 {
                    return Err(invalid_params("too many topics in filter (at most 4 positions)"));
                }
                for pos in positions {
                    f.topics.push(match pos {
                        Value::Null => Vec::new(),
                        Value::Array(alts) => alts
                            .iter()
                            .filter(|x| !x.is_null())
                            .map(|x| params::hash(x, "topic"))
                            .collect::<RpcResult<_>>()?,
                        one => vec![params::hash(one, "topic")?],
                    });
                }
            }
            Some(_) => return Err(invalid_params("topics must be an array")),
        }
        Ok(f)
    }

    /// Whether a block with this bloom can hold a matching log.
    pub fn may_match(&self, bloom: &Bloom) -> bool {
        if !self.addresses.is_empty()
            && !self.addresses.iter().any(|a| bloom.contains_input(BloomInput::Raw(a.as_slice())))
        {
            return false;
        }
        self.topics
            .iter()
            .all(|alts| alts.is_empty() || alts.iter().any(|t| bloom.contains_input(BloomInput::Raw(t.as_slice()))))
    }

    /// Whether a log matches.
    pub fn matches(&self, log: &Log) -> bool {
        if !self.addresses.is_empty() && !self.addresses.contains(&log.address) {
            return false;
        }
        let topics = log.topics();
        self.topics
            .iter()
            .enumerate()
            .all(|(i, alts)| alts.is_empty() || topics.get(i).is_some_and(|t| alts.contains(t)))
    }
}
