//! Why the pool refuses a transaction, in go-ethereum's words: client
//! libraries match on these strings.

use alloy_primitives::U256;

/// A refused transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Not a decodable transaction.
    #[error("{0}")]
    Decode(String),
    /// The same transaction is in the pool.
    #[error("already known")]
    AlreadyKnown,
    /// The nonce is below the account's.
    #[error("nonce too low: next nonce {next}, tx nonce {tx}")]
    NonceTooLow {
        /// The account's nonce.
        next: u64,
        /// The transaction's.
        tx: u64,
    },
    /// The nonce is too far ahead of the account's.
    #[error("nonce too high: next nonce {next}, tx nonce {tx}, at most {gap} ahead are held")]
    NonceTooHigh {
        /// The account's nonce.
        next: u64,
        /// The transaction's.
        tx: u64,
        /// Largest accepted distance.
        gap: u64,
    },
    /// Balance below gas limit * fee cap + value.
    #[error("insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, overshot {overshot}")]
    InsufficientFunds {
        /// The account's balance.
        balance: U256,
        /// What the transaction may cost.
        cost: U256,
        /// The difference.
        overshot: U256,
    },
    /// A transaction with the same nonce is there and this one does not pay enough more.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// Gas limit below the intrinsic gas.
    #[error("intrinsic gas too low: gas {gas}, minimum needed {needed}")]
    IntrinsicGasTooLow {
        /// The transaction's gas limit.
        gas: u64,
        /// Intrinsic gas.
        needed: u64,
    },
    /// Gas limit above the block's.
    #[error("exceeds block gas limit")]
    ExceedsBlockGasLimit,
    /// Gas limit above the EIP-7825 cap.
    #[error("transaction gas limit too high (cap: {cap}, tx: {gas})")]
    GasLimitTooHigh {
        /// The cap.
        cap: u64,
        /// The transaction's gas limit.
        gas: u64,
    },
    /// Priority fee above the fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// Signed for another chain.
    #[error("invalid chain id for signer: have {have}, want {want}")]
    InvalidChainId {
        /// Chain id of the transaction.
        have: u64,
        /// This chain.
        want: u64,
    },
    /// A legacy transaction without EIP-155 protection.
    #[error("only replay-protected (EIP-155) transactions allowed over RPC")]
    Unprotected,
    /// Larger than the pool accepts.
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Init code over EIP-3860's limit.
    #[error("max initcode size exceeded: code size {size}, limit {limit}")]
    InitCodeTooLarge {
        /// Init code size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Blob transactions need a sidecar network this node does not have.
    #[error("transaction type not supported")]
    TypeNotSupported,
    /// The sender holds too many transactions.
    #[error("account limit exceeded")]
    AccountLimit,
    /// The pool is full and this transaction pays no more than the cheapest.
    #[error("txpool is full")]
    PoolFull,
}

impl PoolError {
    /// Label of the `reason` dimension of the rejection counter.
    pub fn reason(&self) -> &'static str {
        match self {
            PoolError::Decode(_) => "decode",
            PoolError::AlreadyKnown => "already_known",
            PoolError::NonceTooLow { .. } => "nonce_too_low",
            PoolError::NonceTooHigh { .. } => "nonce_too_high",
            PoolError::InsufficientFunds { .. } => "insufficient_funds",
            PoolError::ReplacementUnderpriced => "replacement_underpriced",
            PoolError::IntrinsicGasTooLow { .. } => "intrinsic_gas_too_low",
            PoolError::ExceedsBlockGasLimit => "exceeds_block_gas_limit",
            PoolError::GasLimitTooHigh { .. } => "gas_limit_too_high",
            PoolError::TipAboveFeeCap => "tip_above_fee_cap",
            PoolError::InvalidChainId { .. } => "invalid_chain_id",
            PoolError::Unprotected => "unprotected",
            PoolError::Oversized { .. } => "oversized",
            PoolError::InitCodeTooLarge { .. } => "initcode_too_large",
            PoolError::TypeNotSupported => "type_not_supported",
            PoolError::AccountLimit => "account_limit",
            PoolError::PoolFull => "pool_full",
        }
    }
}
