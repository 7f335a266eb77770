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
    pub const GT: u8 = 0x11;
    pub const EQ: u8 = 0x14;
    pub const AND: u8 = 0x16;
    pub const OR: u8 = 0x17;
    pub const SHL: u8 = 0x1b;
    pub const SHR: u8 = 0x1c;
    pub const ADDRESS: u8 = 0x30;
    pub const TIMESTAMP: u8 = 0x42;
    pub const MLOAD: u8 = 0x51;
    pub const GAS: u8 = 0x5a;
    pub const LOG1: u8 = 0xa1;
    pub const CALL: u8 = 0xf1;
    pub const RETURN: u8 = 0xf3;
    pub const STATICCALL: u8 = 0xfa;
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

/// keccak256("Sync(uint112,uint112)").
fn sync_topic() -> B256 {
    keccak256("Sync(uint112,uint112)")
}

/// keccak256("Swap(address,uint256,uint256,uint256,uint256,address)").
fn swap_topic() -> B256 {
    keccak256("Swap(address,uint256,uint256,uint256,uint256,address)")
}

const SEL_TRANSFER: u32 = 0xa9059cbb;
const SEL_TRANSFER_FROM: u32 = 0x23b872dd;
const SEL_BALANCE_OF: u32 = 0x70a08231;

impl Asm {
    fn push4(&mut self, v: u32) -> &mut Self {
        self.code.push(0x63);
        self.code.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn push_word(&mut self, v: U256) -> &mut Self {
        self.push32(B256::from(v))
    }
    /// mem[at] = top of stack.
    fn store_at(&mut self, at: u8) -> &mut Self {
        self.push1(at).ops(&[op::MSTORE])
    }
    /// Pushes mem[at].
    fn load_at(&mut self, at: u8) -> &mut Self {
        self.push1(at).ops(&[op::MLOAD])
    }
    /// Jumps to `label` if the top of stack is zero (consumes it).
    fn jump_if_zero(&mut self, label: usize) -> &mut Self {
        self.ops(&[op::ISZERO]).push_label(label).ops(&[op::JUMPI])
    }
    /// Pushes the 4-byte selector of the calldata.
    fn selector(&mut self) -> &mut Self {
        self.push1(0).ops(&[op::CALLDATALOAD]).push1(0xe0).ops(&[op::SHR])
    }
    /// Reverts with empty data at this point.
    fn revert_here(&mut self) -> &mut Self {
        self.push1(0).ops(&[op::DUP1, op::REVERT])
    }
}

/// An ERC-20 token in the layout solc gives OpenZeppelin's ERC20:
/// `balanceOf` is the mapping at slot 0, `allowance[owner][spender]` the
/// nested mapping at slot 1. Dispatches on the selector:
/// `transfer(to, amount)`, `transferFrom(from, to, amount)` (spends the
/// caller's allowance unless it is unlimited) and `balanceOf(owner)`. Reverts
/// on insufficient balance or allowance, emits `Transfer(from, to, amount)`.
pub fn erc20_code() -> Bytes {
    // Memory: 0x00..0x40 hashing scratch, 0x80 from, 0xa0 to, 0xc0 amount.
    const FROM: u8 = 0x80;
    const TO: u8 = 0xa0;
    const AMOUNT: u8 = 0xc0;
    let mut a = Asm::default();
    let fail = a.label();
    let not_balance_of = a.label();
    let not_transfer_from = a.label();
    let do_transfer = a.label();
    let unlimited = a.label();
    // balanceOf(owner)
    a.selector().push4(SEL_BALANCE_OF).ops(&[op::EQ]).jump_if_zero(not_balance_of);
    a.push1(0x04).ops(&[op::CALLDATALOAD]).mapping_slot(0).ops(&[op::SLOAD]).store_at(0);
    a.push1(0x20).push1(0).ops(&[op::RETURN]);
    a.place(not_balance_of);
    a.selector().push4(SEL_TRANSFER_FROM).ops(&[op::EQ]).jump_if_zero(not_transfer_from);
    // transferFrom(from, to, amount)
    a.push1(0x04).ops(&[op::CALLDATALOAD]).store_at(FROM);
    a.push1(0x24).ops(&[op::CALLDATALOAD]).store_at(TO);
    a.push1(0x44).ops(&[op::CALLDATALOAD]).store_at(AMOUNT);
    // allowance slot = keccak(caller . keccak(from . 1))
    a.load_at(FROM).mapping_slot(1); // inner
    a.push1(0x20).ops(&[op::MSTORE]).ops(&[op::CALLER]).push1(0).ops(&[op::MSTORE]);
    a.push1(0x40).push1(0).ops(&[op::SHA3]); // aslot
    a.ops(&[op::DUP1, op::SLOAD]); // allowance aslot
    a.ops(&[op::DUP1]).push_word(U256::MAX).ops(&[op::EQ]).push_label(unlimited).ops(&[op::JUMPI]);
    a.ops(&[op::DUP1]).load_at(AMOUNT).ops(&[op::GT]).push_label(fail).ops(&[op::JUMPI]); // amount > allowance
    a.load_at(AMOUNT).ops(&[op::SWAP1, op::SUB, op::SWAP1, op::SSTORE]);
    a.push1(1).push_label(do_transfer).ops(&[op::JUMPI]);
    a.place(unlimited).ops(&[op::POP, op::POP]);
    a.push1(1).push_label(do_transfer).ops(&[op::JUMPI]);
    // transfer(to, amount)
    a.place(not_transfer_from);
    a.ops(&[op::CALLER]).store_at(FROM);
    a.push1(0x04).ops(&[op::CALLDATALOAD]).store_at(TO);
    a.push1(0x24).ops(&[op::CALLDATALOAD]).store_at(AMOUNT);
    a.place(do_transfer);
    a.load_at(FROM).mapping_slot(0); // fslot
    a.ops(&[op::DUP1, op::SLOAD]); // fbal fslot
    a.ops(&[op::DUP1]).load_at(AMOUNT).ops(&[op::GT]).push_label(fail).ops(&[op::JUMPI]); // amount > fbal
    a.load_at(AMOUNT).ops(&[op::SWAP1, op::SUB, op::SWAP1, op::SSTORE]);
    a.load_at(TO).mapping_slot(0); // tslot
    a.ops(&[op::DUP1, op::SLOAD]).load_at(AMOUNT).ops(&[op::ADD, op::SWAP1, op::SSTORE]);
    a.load_at(AMOUNT).store_at(0);
    a.load_at(TO).load_at(FROM).push32(transfer_topic()).push1(0x20).push1(0).ops(&[op::LOG3]);
    a.push1(1).store_at(0).push1(0x20).push1(0).ops(&[op::RETURN]);
    a.place(fail).revert_here();
    a.finish()
}

/// Storage slots of the Uniswap V2 pair, as solc lays out UniswapV2Pair
/// (UniswapV2ERC20's five slots first).
pub mod pair_slots {
    /// `token0`.
    pub const TOKEN0: u8 = 6;
    /// `token1`.
    pub const TOKEN1: u8 = 7;
    /// `reserve0 (uint112) | reserve1 (uint112) << 112 | blockTimestampLast (uint32) << 224`.
    pub const RESERVES: u8 = 8;
    /// `price0CumulativeLast`.
    pub const PRICE0: u8 = 9;
    /// `price1CumulativeLast`.
    pub const PRICE1: u8 = 10;
    /// The reentrancy lock (`unlocked`, 1 when free).
    pub const UNLOCKED: u8 = 12;
}

/// A Uniswap V2 pair swap with the storage and call pattern of
/// `UniswapV2Pair.swap` behind a router's `swapExactTokensForTokens`, in one
/// contract. Calldata: `[selector][amountIn]`; swaps token0 for token1.
///
/// 1. takes the lock (`unlocked` 1 -> 0), reads the packed reserves;
/// 2. computes the output with the 0.3% fee (`getAmountOut`);
/// 3. `token0.transferFrom(caller, pair, amountIn)` (CALL: allowance,
///    two balances, Transfer event), `token1.transfer(caller, out)` (CALL);
/// 4. `token0.balanceOf(pair)`, `token1.balanceOf(pair)` (STATICCALLs) and
///    the constant-product check on the new balances;
/// 5. `_update`: the two price accumulators when the timestamp moved, the
///    packed reserves, `Sync`; then `Swap`; releases the lock.
///
/// About 100k gas per swap, like a real router swap on a pair.
pub fn pair_code() -> Bytes {
    use pair_slots::*;
    // Memory: 0x00..0x40 scratch, 0x80 r0, 0xa0 r1, 0xc0 ts_last, 0xe0 amountIn,
    // 0x100 out, 0x120 b0, 0x140 b1, 0x160 ts, 0x200.. call data, 0x300 return data.
    const R0: u8 = 0x80;
    const R1: u8 = 0xa0;
    const TS_LAST: u8 = 0xc0;
    const AMOUNT_IN: u8 = 0xe0;
    let mut a = Asm::default();
    let fail = a.label();
    let same_block = a.label();
    let m112 = (U256::from(1) << 112) - U256::from(1);
    // 1. lock
    a.push1(UNLOCKED).ops(&[op::SLOAD]).push1(1).ops(&[op::EQ]).jump_if_zero(fail);
    a.push1(0).push1(UNLOCKED).ops(&[op::SSTORE]);
    a.push1(RESERVES).ops(&[op::SLOAD]); // packed
    a.ops(&[op::DUP1]).push_word(m112).ops(&[op::AND]).store_at(R0);
    a.ops(&[op::DUP1]).push1(112).ops(&[op::SHR]).push_word(m112).ops(&[op::AND]).store_at(R1);
    a.push1(224).ops(&[op::SHR]).store_at(TS_LAST);
    a.push1(0x04).ops(&[op::CALLDATALOAD]).store_at(AMOUNT_IN);
    // 2. out = in*997*r1 / (r0*1000 + in*997)
    a.load_at(AMOUNT_IN).push2_997().ops(&[op::MUL]); // inFee
    a.ops(&[op::DUP1]).load_at(R0).push2_1000().ops(&[op::MUL, op::ADD]); // den inFee
    a.ops(&[op::SWAP1]).load_at(R1).ops(&[op::MUL, op::DIV]); // out
    a.ops(&[op::DUP1, op::ISZERO]).push_label(fail).ops(&[op::JUMPI]);
    a.push2(0x01a0).ops(&[op::MSTORE]); // out
                                        // 3. token0.transferFrom(caller, this, amountIn)
    a.push4(SEL_TRANSFER_FROM).push1(0xe0).ops(&[op::SHL]).push2(0x200).ops(&[op::MSTORE]);
    a.ops(&[op::CALLER]).push2(0x204).ops(&[op::MSTORE]);
    a.ops(&[op::ADDRESS]).push2(0x224).ops(&[op::MSTORE]);
    a.load_at(AMOUNT_IN).push2(0x244).ops(&[op::MSTORE]);
    a.call(TOKEN0, 0x64, op::CALL, fail);
    // token1.transfer(caller, out)
    a.push4(SEL_TRANSFER).push1(0xe0).ops(&[op::SHL]).push2(0x200).ops(&[op::MSTORE]);
    a.ops(&[op::CALLER]).push2(0x204).ops(&[op::MSTORE]);
    a.push2(0x01a0).ops(&[op::MLOAD]).push2(0x224).ops(&[op::MSTORE]);
    a.call(TOKEN1, 0x44, op::CALL, fail);
    // 4. balances
    a.push4(SEL_BALANCE_OF).push1(0xe0).ops(&[op::SHL]).push2(0x200).ops(&[op::MSTORE]);
    a.ops(&[op::ADDRESS]).push2(0x204).ops(&[op::MSTORE]);
    a.call(TOKEN0, 0x24, op::STATICCALL, fail);
    a.push2(0x300).ops(&[op::MLOAD]).push2(0x120).ops(&[op::MSTORE]); // b0
    a.call(TOKEN1, 0x24, op::STATICCALL, fail);
    a.push2(0x300).ops(&[op::MLOAD]).push2(0x140).ops(&[op::MSTORE]); // b1
                                                                      // (b0*1000 - in*3) * (b1*1000) >= r0*r1*1e6
    a.load_at(R1).load_at(R0).ops(&[op::MUL]).push_word(U256::from(1_000_000u64)).ops(&[op::MUL]); // k
    a.push2(0x140).ops(&[op::MLOAD]).push2_1000().ops(&[op::MUL]); // b1a k
    a.load_at(AMOUNT_IN).push1(3).ops(&[op::MUL]); // in3 b1a k
    a.push2(0x120).ops(&[op::MLOAD]).push2_1000().ops(&[op::MUL, op::SUB, op::MUL]); // lhs k
    a.ops(&[op::LT]).push_label(fail).ops(&[op::JUMPI]);
    // 5. _update
    a.ops(&[op::TIMESTAMP]).push4(0xffff_ffff).ops(&[op::AND]).push2(0x160).ops(&[op::MSTORE]);
    a.push2(0x160).ops(&[op::MLOAD]).load_at(TS_LAST).ops(&[op::EQ]).push_label(same_block).ops(&[op::JUMPI]);
    // elapsed = ts - ts_last; price0 += (r1 << 112) / r0 * elapsed; price1 likewise
    a.load_at(TS_LAST).push2(0x160).ops(&[op::MLOAD, op::SUB]); // elapsed
    a.ops(&[op::DUP1]).load_at(R0).load_at(R1).push1(112).ops(&[op::SHL, op::DIV, op::MUL]); // p0 elapsed
    a.push1(PRICE0).ops(&[op::SLOAD, op::ADD]).push1(PRICE0).ops(&[op::SSTORE]); // elapsed
    a.load_at(R1).load_at(R0).push1(112).ops(&[op::SHL, op::DIV, op::MUL]); // p1
    a.push1(PRICE1).ops(&[op::SLOAD, op::ADD]).push1(PRICE1).ops(&[op::SSTORE]);
    a.place(same_block);
    a.push2(0x160).ops(&[op::MLOAD]).push1(224).ops(&[op::SHL]);
    a.push2(0x140).ops(&[op::MLOAD]).push1(112).ops(&[op::SHL, op::OR]);
    a.push2(0x120).ops(&[op::MLOAD, op::OR]).push1(RESERVES).ops(&[op::SSTORE]);
    // Sync(b0, b1): data at 0x120..0x160
    a.push32(sync_topic()).push1(0x40).push2(0x120).ops(&[op::LOG1]);
    // Swap(sender, amount0In, amount1In, amount0Out, amount1Out, to)
    a.load_at(AMOUNT_IN).push2(0x200).ops(&[op::MSTORE]);
    a.push1(0).push2(0x220).ops(&[op::MSTORE]);
    a.push1(0).push2(0x240).ops(&[op::MSTORE]);
    a.push2(0x01a0).ops(&[op::MLOAD]).push2(0x260).ops(&[op::MSTORE]);
    a.ops(&[op::CALLER, op::CALLER]).push32(swap_topic()).push1(0x80).push2(0x200).ops(&[op::LOG3]);
    a.push1(1).push1(UNLOCKED).ops(&[op::SSTORE]);
    a.ops(&[op::STOP]);
    a.place(fail).revert_here();
    a.finish()
}

impl Asm {
    fn push2(&mut self, v: u16) -> &mut Self {
        self.code.push(op::PUSH2);
        self.code.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Calls the token whose address is in storage slot `token_slot` with
    /// `len` bytes of call data at 0x200, one return word at 0x300;
    /// jumps to `fail` unless the call succeeded.
    fn call(&mut self, token_slot: u8, len: u8, kind: u8, fail: usize) -> &mut Self {
        self.push1(0x20).push2(0x300).push1(len).push2(0x200);
        if kind == op::CALL {
            self.push1(0); // value
        }
        self.push1(token_slot).ops(&[op::SLOAD, op::GAS, kind]);
        self.jump_if_zero(fail)
    }
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
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
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
/// token1 of every pair (token0 is `TOKEN`).
const TOKEN1: Address = Address::new([0x71; 20]);
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
    let word = |a: Address| B256::left_padding_from(a.as_slice());
    let balance_slot = |holder: Address| U256::from_be_bytes(keccak256([word(holder).0, B256::ZERO.0].concat()).0);
    let allowance_slot = |owner: Address, spender: Address| {
        let inner = keccak256([word(owner).0, B256::from(U256::from(1)).0].concat());
        U256::from_be_bytes(keccak256([word(spender).0, inner.0].concat()).0)
    };
    let mut token_storage = Vec::new();
    let mut token1_storage = Vec::new();
    for i in 0..senders {
        state.insert_account(address(1, i), 0, rich, Bytes::new(), []);
        // Swappers buy token1 they do not hold yet (its balance slot is created).
        token_storage.push((balance_slot(address(1, i)), token_supply));
    }
    let pools = spec.pools.max(1);
    let reserve = U256::from(10u128.pow(24));
    let timestamp = 1_720_000_000u64;
    let m32 = U256::from(u32::MAX);
    let packed = reserve | (reserve << 112) | ((U256::from(timestamp - 12) & m32) << 224);
    for p in 0..pools {
        let pair = address(2, p);
        let slots = [
            (U256::from(pair_slots::TOKEN0), U256::from_be_bytes(word(TOKEN).0)),
            (U256::from(pair_slots::TOKEN1), U256::from_be_bytes(word(TOKEN1).0)),
            (U256::from(pair_slots::RESERVES), packed),
            (U256::from(pair_slots::PRICE0), U256::from(1) << 120),
            (U256::from(pair_slots::PRICE1), U256::from(1) << 120),
            (U256::from(pair_slots::UNLOCKED), U256::from(1)),
        ];
        state.insert_account(pair, 1, U256::ZERO, pair_code(), slots);
        token_storage.push((balance_slot(pair), reserve));
        token1_storage.push((balance_slot(pair), reserve));
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
                let pair = address(2, pool);
                // A finite approval, spent by each swap (as most wallets grant).
                token_storage.push((allowance_slot(address(1, sender), pair), token_supply));
                tx.kind = TxKind::Call(pair);
                let amount_in = U256::from(10u128.pow(18) + rng.below(1_000_000) as u128);
                let mut data = vec![0x02, 0x2c, 0x0d, 0x9f];
                data.extend_from_slice(B256::from(amount_in).as_slice());
                tx.data = data.into();
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
    state.insert_account(TOKEN, 1, U256::ZERO, erc20_code(), token_storage);
    state.insert_account(TOKEN1, 1, U256::ZERO, erc20_code(), token1_storage);
    let gas_limit = txs.iter().map(|t| t.gas_limit).sum::<u64>().max(30_000_000);
    let mut cfg = CfgEnv::default();
    cfg.chain_id = 1;
    cfg.set_spec_and_mainnet_gas_params(SpecId::CANCUN);
    let block = BlockEnv {
        number: U256::from(20_000_000u64),
        beneficiary: COINBASE,
        timestamp: U256::from(timestamp),
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
