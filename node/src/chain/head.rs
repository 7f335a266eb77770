//! The head of the chain as readers see it, and the recent block hashes
//! that BLOCKHASH needs.

use super::ChainConfig;
use alloy_consensus::Header;
use alloy_primitives::B256;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

/// The newest committed block.
#[derive(Clone, Debug)]
pub struct Head {
    /// Number (= MetisDB version).
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Header.
    pub header: Header,
}

/// Shared chain state: configuration, head, last 256 hashes.
#[derive(Debug)]
pub struct Chain {
    /// Chain parameters.
    pub config: ChainConfig,
    head: RwLock<Arc<Head>>,
    recent: RwLock<VecDeque<(u64, B256)>>,
}

/// BLOCKHASH reaches 256 blocks back.
const RECENT: usize = 256;

impl Chain {
    /// A chain whose head is `head`, with the hashes of the blocks before it (oldest first).
    pub fn new(config: ChainConfig, head: Head, mut recent: Vec<(u64, B256)>) -> Chain {
        recent.push((head.number, head.hash));
        let skip = recent.len().saturating_sub(RECENT);
        Chain {
            config,
            head: RwLock::new(Arc::new(head)),
            recent: RwLock::new(recent.into_iter().skip(skip).collect()),
        }
    }

    /// The current head.
    pub fn head(&self) -> Arc<Head> {
        // A poisoned lock still holds a consistent Arc (assignment is atomic).
        self.head.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Publishes a new head (the block is committed).
    pub fn set_head(&self, head: Head) {
        {
            let mut recent = self.recent.write().unwrap_or_else(|e| e.into_inner());
            recent.push_back((head.number, head.hash));
            while recent.len() > RECENT {
                recent.pop_front();
            }
        }
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(head);
    }

    /// Hashes of the last 256 blocks, by number.
    pub fn recent_hashes(&self) -> BTreeMap<u64, B256> {
        self.recent.read().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }
}
