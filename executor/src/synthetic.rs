//! Synthetic blocks for property tests and benchmarks: raw transfers,
//! ERC-20-like token transfers, Uniswap-v2-like swaps on a few hot pools and
//! coinbase-balance readers, over an in-memory state. The contracts are
//! hand-assembled; their source is the assembly below.

use crate::block::BlockInput;
use crate::evm::EvmEnv;
use alloy_primitives::{keccak256, Address, Bytes, TxKind, B256, U256};
use metisdb::pending::InMemoryState;
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::primitives::hardfork::SpecId;

/// A tiny assembler: opcodes, pushes and forward jumps by label.
#[derive(Default)]
struct Asm {
    code: Vec<u8>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, usize)>,
}

mod op {
    pub const STOP: u8 = 0x00;
    pub const ADD: u8 = 0x01;
    pub const MUL: u8 = 0x02;
    pub const SUB: u8 = 0x03;
    pub const DIV: u8 = 0x04;
    pub const LT: u8 = 0x10;
    pub const ISZERO: u8 = 0x15;
    pub const SHA3: u8 = 0x20;
    pub const BALANCE: u8 = 0x31;
    pub const CALLER: u8 = 0x33;
    pub const CALLDATALOAD: u8 = 0x35;
    pub const COINBASE: u8 = 0x41;
    pub const POP: u8 = 0x50;
    pub const MSTORE: u8 = 0x52;
    pub const SLOAD: u8 = 0x54;
    pub const SSTORE: u8 = 0x55;
    pub const JUMPI: u8 = 0x57;
    pub const JUMPDEST: u8 = 0x5b;
    pub const PUSH1: u8 = 0x60;
    pub const PUSH2: u8 = 0x61;
    pub const PUSH32: u8 = 0x7f;
    pub const DUP1: u8 = 0x80;
    pub const DUP2: u8 = 0x81;
    pub const DUP3: u8 = 0x82;
    pub const DUP4: u8 = 0x83;
    pub const SWAP1: u8 = 0x90;
    pub const LOG3: u8 = 0xa3;
    pub const REVERT: u8 = 0xfd;
}

impl Asm {
    fn ops(&mut self, ops: &[u8]) -> &mut Self {
        self.code.extend_from_slice(ops);
        self
    }
    fn push1(&mut self, v: u8) -> &mut Self {
        self.ops(&[op::PUSH1, v])
    }
    fn push32(&mut self, v: B256) -> &mut Self {
        self.code.push(op::PUSH32);
        self.code.extend_from_slice(v.as_slice());
        self
    }
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn push_label(&mut self, label: usize) -> &mut Self {
        self.code.push(op::PUSH2);
        self.fixups.push((self.code.len(), label));
        self.code.extend_from_slice(&[0, 0]);
        self
    }
    fn place(&mut self, label: usize) -> &mut Self {
        self.labels[label] = Some(self.code.len());
        self.code.push(op::JUMPDEST);
        self
    }
    fn finish(mut self) -> Bytes {
        for (at, label) in &self.fixups {
            // Every label used is placed by the functions below.
            let target = self.labels[*label].unwrap_or(0) as u16;
            self.code[*at..*at + 2].copy_from_slice(&target.to_be_bytes());
        }
        self.code.into()
    }
    /// slot = keccak256(word on stack ‖ mapping index): the Solidity mapping
    /// layout. Consumes the key on the stack, leaves the slot.
    fn mapping_slot(&mut self, index: u8) -> &mut Self {
        self.push1(0).ops(&[op::MSTORE]).push1(index).push1(0x20).ops(&[op::MSTORE]);
        self.push1(0x40).push1(0).ops(&[op::SHA3])
    }
}

/// keccak256("Transfer(address,address,uint256)").
fn transfer_topic() -> B256 {
    keccak256("Transfer(address,address,uint256)")
}

/// ERC-20-like token. Calldata: `[4-byte selector][to][amount]`;
/// `balanceOf` is the mapping at index 0. Reverts on insufficient balance,
/// emits `Transfer(from, to, amount)`.
pub fn erc20_code() -> Bytes {
    let mut a = Asm::default();
    let fail = a.label();
    a.push1(0x24).ops(&[op::CALLDATALOAD]); // amount
    a.ops(&[op::CALLER]).mapping_slot(0); // from_slot amount
    a.ops(&[op::DUP1, op::SLOAD]); // from_bal from_slot amount
    a.ops(&[op::DUP1, op::DUP4, op::SWAP1, op::LT]); // from_bal<amount from_bal from_slot amount
    a.push_label(fail).ops(&[op::JUMPI]);
    a.ops(&[op::DUP3, op::SWAP1, op::SUB, op::SWAP1, op::SSTORE]); // amount
    a.push1(0x04).ops(&[op::CALLDATALOAD]).mapping_slot(0); // to_slot amount
    a.ops(&[op::DUP1, op::SLOAD, op::DUP3, op::ADD, op::SWAP1, op::SSTORE]); // amount
    a.push1(0).ops(&[op::MSTORE]);
    a.push1(0x04).ops(&[op::CALLDATALOAD, op::CALLER]).push32(transfer_topic());
    a.push1(0x20).push1(0).ops(&[op::LOG3, op::STOP]);
    a.place(fail).push1(0).ops(&[op::DUP1, op::REVERT]);
    a.finish()
}

/// Uniswap-v2-like constant-product pool. Calldata: `[selector][amountIn]`.
/// Reserves at slots 0 and 1; the output (0.3% fee) is credited to the
/// caller's balance in the mapping at index 2. `rounds` keccak rounds stand
/// for the router and token-call overhead of a real swap.
pub fn swap_pool_code(rounds: u8) -> Bytes {
    let mut a = Asm::default();
    let loop_start = a.label();
    let loop_end = a.label();
    // Overhead loop: counter on the stack.
    a.push1(rounds);
    a.place(loop_start);
    a.ops(&[op::DUP1, op::ISZERO]).push_label(loop_end).ops(&[op::JUMPI]);
    a.ops(&[op::DUP1]).push1(0).ops(&[op::MSTORE]).push1(0x20).push1(0).ops(&[op::SHA3, op::POP]);
    a.push1(1).ops(&[op::SWAP1, op::SUB]).push_label(loop_start);
    a.push1(1).ops(&[op::SWAP1]).ops(&[op::JUMPI]); // jump back always
    a.place(loop_end).ops(&[op::POP]);
    // in = amountIn * 997
    a.push1(0x04).ops(&[op::CALLDATALOAD]).push2_997().ops(&[op::MUL]); // in
                                                                        // out = in * r1 / (r0 * 1000 + in)
    a.ops(&[op::DUP1]).push1(1).ops(&[op::SLOAD, op::MUL]); // in*r1 in
    a.ops(&[op::DUP2]).push2_1000().push1(0).ops(&[op::SLOAD, op::MUL, op::ADD]); // den num in
    a.ops(&[op::SWAP1, op::DIV]); // out in
                                  // r0 += amountIn; r1 -= out
    a.push1(0x04).ops(&[op::CALLDATALOAD]).push1(0).ops(&[op::SLOAD, op::ADD]).push1(0).ops(&[op::SSTORE]);
    a.ops(&[op::DUP1]).push1(1).ops(&[op::SLOAD, op::SUB]).push1(1).ops(&[op::SSTORE]); // out in
                                                                                        // balance[caller] += out
    a.ops(&[op::CALLER]).mapping_slot(2); // slot out in
    a.ops(&[op::DUP1, op::SLOAD, op::DUP3, op::ADD, op::SWAP1, op::SSTORE]);
    a.ops(&[op::POP, op::POP, op::STOP]);
    a.finish()
}

/// Stores the coinbase balance it sees under the caller's slot: its result
/// depends on the exact sequential value of the lazily paid beneficiary.
pub fn coinbase_reader_code() -> Bytes {
    let mut a = Asm::default();
    a.ops(&[op::COINBASE, op::BALANCE, op::CALLER, op::SSTORE, op::STOP]);
    a.finish()
}

impl Asm {
    fn push2_997(&mut self) -> &mut Self {
        self.ops(&[op::PUSH2, 0x03, 0xe5])
    }
    fn push2_1000(&mut self) -> &mut Self {
        self.ops(&[op::PUSH2, 0x03, 0xe8])
    }
}

/// Shape of a synthetic block.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticSpec {
    pub txs: usize,
    /// Senders to draw from: fewer senders make longer same-sender chains.
    pub senders: usize,
    /// Share (0..=1) of transactions aimed at one hot key (recipient, token
    /// holder or pool).
    pub hot_ratio: f64,
    /// Pools that the non-hot swaps spread over.
    pub pools: usize,
    pub seed: u64,
}

/// What each transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    RawTransfers,
    Erc20,
    Swaps,
    /// All of the above plus coinbase readers and transfers to the coinbase.
    Mixed,
}

/// A deterministic pseudo-random generator (splitmix64): no dependency, same
/// blocks on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

fn address(kind: u8, i: usize) -> Address {
    let mut bytes = [0u8; 20];
    bytes[0] = kind;
    bytes[12..20].copy_from_slice(&(i as u64).to_be_bytes());
    Address::from(bytes)
}

pub const COINBASE: Address = Address::new([0xc0; 20]);
const TOKEN: Address = Address::new([0x70; 20]);
const COINBASE_READER: Address = Address::new([0xcb; 20]);
const GAS_PRICE: u128 = 2_000_000_000;
const BASE_FEE: u64 = 1_000_000_000;

fn selector_call(data: &[B256]) -> Bytes {
    let mut out = vec![0xa9, 0x05, 0x9c, 0xbb];
    for word in data {
        out.extend_from_slice(word.as_slice());
    }
    out.into()
}

/// A generated block with its parent state.
pub struct SyntheticBlock {
    pub state: InMemoryState,
    pub input: BlockInput,
    pub txs: Vec<TxEnv>,
}

/// Builds a block of `spec.txs` transactions of `workload` kind.
pub fn synthetic_block(workload: Workload, spec: &SyntheticSpec) -> SyntheticBlock {
    let mut rng = Rng(spec.seed);
    let mut state = InMemoryState::default();
    let senders = spec.senders.max(1);
    let rich = U256::from(10u128.pow(24));
    let token_supply = U256::from(10u128.pow(30));
    let mut token_storage = Vec::new();
    for i in 0..senders {
        state.insert_account(address(1, i), 0, rich, Bytes::new(), []);
        let slot = keccak256([B256::left_padding_from(address(1, i).as_slice()).0, B256::ZERO.0].concat());
        token_storage.push((U256::from_be_bytes(slot.0), token_supply));
    }
    state.insert_account(TOKEN, 1, U256::ZERO, erc20_code(), token_storage);
    let pools = spec.pools.max(1);
    let reserve = U256::from(10u128.pow(27));
    for p in 0..pools {
        state.insert_account(
            address(2, p),
            1,
            U256::ZERO,
            swap_pool_code(40),
            [(U256::ZERO, reserve), (U256::from(1), reserve)],
        );
    }
    state.insert_account(COINBASE_READER, 1, U256::ZERO, coinbase_reader_code(), []);

    let mut nonces = vec![0u64; senders];
    let mut txs = Vec::with_capacity(spec.txs);
    for i in 0..spec.txs {
        let sender = rng.below(senders);
        let hot = rng.chance(spec.hot_ratio);
        let kind = match workload {
            Workload::Mixed => [Workload::RawTransfers, Workload::Erc20, Workload::Swaps][rng.below(3)],
            other => other,
        };
        let mut tx = TxEnv {
            caller: address(1, sender),
            nonce: nonces[sender],
            gas_price: GAS_PRICE,
            gas_priority_fee: Some(GAS_PRICE),
            tx_type: 2,
            chain_id: Some(1),
            ..TxEnv::default()
        };
        nonces[sender] += 1;
        match kind {
            Workload::RawTransfers | Workload::Mixed => {
                let to = if hot { address(3, 0) } else { address(3, i + 1) };
                tx.kind = TxKind::Call(to);
                tx.value = U256::from(1_000 + rng.below(1_000));
                tx.gas_limit = 21_000;
            }
            Workload::Erc20 => {
                let to = if hot { address(3, 0) } else { address(3, i + 1) };
                tx.kind = TxKind::Call(TOKEN);
                tx.data = selector_call(&[
                    B256::left_padding_from(to.as_slice()),
                    B256::from(U256::from(1 + rng.below(1_000))),
                ]);
                tx.gas_limit = 100_000;
            }
            Workload::Swaps => {
                let pool = if hot { 0 } else { rng.below(pools) };
                tx.kind = TxKind::Call(address(2, pool));
                tx.data = selector_call(&[B256::from(U256::from(1_000_000 + rng.below(1_000_000)))]);
                tx.gas_limit = 200_000;
            }
        }
        if workload == Workload::Mixed && rng.chance(0.05) {
            // Reads of the lazily credited coinbase, and transfers that touch it.
            if rng.chance(0.5) {
                tx.kind = TxKind::Call(COINBASE_READER);
                tx.data = Bytes::new();
                tx.value = U256::ZERO;
                tx.gas_limit = 60_000;
            } else {
                tx.kind = TxKind::Call(COINBASE);
                tx.data = Bytes::new();
                tx.gas_limit = 21_000;
            }
        }
        txs.push(tx);
    }
    let gas_limit = txs.iter().map(|t| t.gas_limit).sum::<u64>().max(30_000_000);
    let mut cfg = CfgEnv::default();
    cfg.chain_id = 1;
    cfg.set_spec_and_mainnet_gas_params(SpecId::CANCUN);
    let block = BlockEnv {
        number: U256::from(20_000_000u64),
        beneficiary: COINBASE,
        timestamp: U256::from(1_720_000_000u64),
        gas_limit,
        basefee: BASE_FEE,
        prevrandao: Some(B256::ZERO),
        ..BlockEnv::default()
    };
    let input = BlockInput {
        env: EvmEnv { cfg, block },
        parent_beacon_block_root: None,
        parent_hash: None,
        withdrawals: Vec::new(),
    };
    SyntheticBlock { state, input, txs }
}
