#!/usr/bin/env python3
"""End-to-end test of the dev node through web3.py (a real client library).

Phase `run`: transfers (EIP-1559 and legacy), a contract deployment, calls,
events through eth_getLogs, balances and storage, eth_getProof verified
against the block's stateRoot with an independent MPT walker, header hashes
recomputed from the JSON fields, BLOCKHASH, fee history, newHeads over
WebSocket, invalid transactions rejected with go-ethereum's messages and
no state change. Phase `after-restart`: everything written in `run` is read
again from the restarted node and a new transaction continues the chain.

Usage: test_web3.py run|after-restart RPC_URL WS_URL STATE_FILE
"""
import asyncio
import json
import os
import sys
import time

from eth_account import Account
from web3 import AsyncWeb3, Web3
from web3.providers.persistent import WebSocketProvider

import mpt

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
]
CHAIN_ID = 1337
GWEI = 10**9
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def expect_error(fn, fragment):
    try:
        fn()
    except Exception as e:  # web3 raises Web3RPCError / ContractLogicError / ValueError by version
        check(fragment in str(e), f"expected an error containing {fragment!r}, got {e!r}")
        return str(e)
    raise AssertionError(f"expected an error containing {fragment!r}, but the call succeeded")


def contract_json(name):
    with open(os.path.join(HERE, "contracts", f"{name}.json")) as f:
        return json.load(f)


def send(w3, acct, tx):
    tx.setdefault("chainId", CHAIN_ID)
    tx.setdefault("nonce", w3.eth.get_transaction_count(acct.address, "pending"))
    if "gasPrice" not in tx:
        tx.setdefault("maxPriorityFeePerGas", w3.eth.max_priority_fee)
        tx.setdefault("maxFeePerGas", 2 * w3.eth.get_block("latest")["baseFeePerGas"] + tx["maxPriorityFeePerGas"])
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas({k: v for k, v in tx.items() if k != "chainId"} | {"from": acct.address})
    signed = acct.sign_transaction(tx)
    h = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.05)


def verify_proof(w3, address, slots, block_number):
    block = w3.eth.get_block(block_number)
    # The proof at the same block: with a tag like "latest" a new block may
    # land between the two requests.
    proof = w3.eth.get_proof(address, slots, block["number"])
    leaf = mpt.verify(bytes(block["stateRoot"]), bytes.fromhex(address[2:]), [bytes(n) for n in proof["accountProof"]])
    if leaf is None:
        check(proof["balance"] == 0 and proof["nonce"] == 0 and not slots, "exclusion proof of an absent account")
        return []
    nonce, balance, storage_root, code_hash = mpt.rlp.decode(leaf)
    check(int.from_bytes(balance, "big") == proof["balance"], "proof balance matches the leaf")
    check(int.from_bytes(nonce, "big") == proof["nonce"], "proof nonce matches the leaf")
    check(storage_root == bytes(proof["storageHash"]), "proof storage hash matches the leaf")
    check(code_hash == bytes(proof["codeHash"]), "proof code hash matches the leaf")
    values = []
    for sp in proof["storageProof"]:
        key = int(sp["key"].hex(), 16) if isinstance(sp["key"], bytes) else int(str(sp["key"]), 0)
        v = mpt.verify(storage_root, key.to_bytes(32, "big"), [bytes(n) for n in sp["proof"]])
        got = int.from_bytes(mpt.rlp.decode(v), "big") if v else 0
        want = int.from_bytes(sp["value"], "big") if isinstance(sp["value"], (bytes, bytearray)) else int(sp["value"])
        check(got == want, "storage proof value matches the proof's value")
        values.append(got)
    check(proof["balance"] == w3.eth.get_balance(address, block["number"]), "proof balance equals eth_getBalance")
    return values


def check_block_hashes(w3, numbers):
    for n in numbers:
        b = w3.eth.get_block(n)
        check(mpt.header_hash(b) == bytes(b["hash"]), f"block {n}: hash is keccak(rlp(header))")
        if n > 0:
            check(bytes(b["parentHash"]) == bytes(w3.eth.get_block(n - 1)["hash"]), f"block {n}: parent hash")


async def new_head(ws_url):
    async with AsyncWeb3(WebSocketProvider(ws_url)) as aw3:
        check(await aw3.eth.chain_id == CHAIN_ID, "chain id over WebSocket")
        sub = await aw3.eth.subscribe("newHeads")
        async for msg in aw3.socket.process_subscriptions():
            head = msg["result"]
            await aw3.eth.unsubscribe(sub)
            return head


def run(w3, ws_url, state_file):
    a0, a1, a2 = (Account.from_key(k) for k in KEYS)
    check(w3.eth.chain_id == CHAIN_ID, "eth_chainId")
    check(w3.net.version == str(CHAIN_ID), "net_version")
    check(w3.client_version.startswith("metis/"), "web3_clientVersion")
    check(w3.eth.get_balance(a2.address, 0) == 10_000 * 10**18, "dev account funded at genesis")
    start = w3.eth.block_number
    time.sleep(0.3)
    check(w3.eth.block_number > start, "blocks are produced")

    # EIP-1559 transfer, exact balance accounting.
    before0, before1 = w3.eth.get_balance(a0.address), w3.eth.get_balance(a1.address)
    r = send(w3, a0, {"to": a1.address, "value": 10**18, "gas": 21_000})
    check(r["status"] == 1 and r["gasUsed"] == 21_000, "transfer receipt")
    n = r["blockNumber"]
    cost = r["gasUsed"] * r["effectiveGasPrice"]
    check(w3.eth.get_balance(a0.address, n) == before0 - 10**18 - cost, "sender pays value + gas")
    check(w3.eth.get_balance(a1.address, n) == before1 + 10**18, "recipient gets value")
    check(w3.eth.get_balance(a0.address, n - 1) == before0, "historical balance at the parent block")
    tx = w3.eth.get_transaction(r["transactionHash"])
    check(tx["blockNumber"] == n and tx["from"] == a0.address and tx["type"] == 2, "eth_getTransactionByHash")
    block = w3.eth.get_block(n, full_transactions=True)
    check(any(t["hash"] == r["transactionHash"] for t in block["transactions"]), "full block holds the tx")
    check(r["transactionHash"] in w3.eth.get_block(block["hash"])["transactions"], "block by hash holds the tx")

    # Legacy (EIP-155) transfer.
    r_legacy = send(w3, a1, {"to": a2.address, "value": 12345, "gas": 21_000, "gasPrice": w3.eth.gas_price})
    check(r_legacy["status"] == 1 and r_legacy["type"] == 0, "legacy transfer")

    # Contract deployment, calls, state.
    store = contract_json("Store")
    Store = w3.eth.contract(abi=store["abi"], bytecode=store["bytecode"])
    deploy = Store.constructor(42).build_transaction({"from": a0.address, "nonce": w3.eth.get_transaction_count(a0.address, "pending")})
    r_deploy = send(w3, a0, deploy)
    addr = r_deploy["contractAddress"]
    check(r_deploy["status"] == 1 and addr, "deployment")
    check(w3.eth.get_code(addr) == bytes.fromhex(store["deployedBytecode"][2:]), "eth_getCode is the runtime code")
    c = w3.eth.contract(address=addr, abi=store["abi"])
    check(c.functions.value().call() == 42, "constructor stored the value")
    block_filter = w3.eth.filter("latest")
    event_filter = c.events.ValueSet.create_filter(from_block="latest")
    r_set = send(w3, a0, c.functions.set(7).build_transaction({"from": a0.address, "nonce": w3.eth.get_transaction_count(a0.address, "pending")}))
    r_set2 = send(w3, a1, c.functions.set(9).build_transaction({"from": a1.address, "nonce": w3.eth.get_transaction_count(a1.address, "pending")}))
    check(r_set["status"] == 1 and r_set2["status"] == 1, "set() receipts")
    check(c.functions.value().call() == 9, "value after set")
    new_blocks = block_filter.get_new_entries()
    check(r_set2["blockHash"] in new_blocks and r_set["blockHash"] in new_blocks, "block filter reports new blocks")
    check(block_filter.get_new_entries() == [] or r_set["blockHash"] not in block_filter.get_new_entries(), "block filter reports a block once")
    seen = [(e["args"]["who"], e["args"]["value"]) for e in event_filter.get_new_entries()]
    check(seen == [(a0.address, 7), (a1.address, 9)], f"event filter changes: {seen}")
    check(event_filter.get_new_entries() == [], "event filter reports a log once")
    check(w3.eth.uninstall_filter(event_filter.filter_id), "eth_uninstallFilter")
    check(c.functions.value().call(block_identifier=r_set["blockNumber"]) == 7, "call at an older block")
    check(int.from_bytes(w3.eth.get_storage_at(addr, 0), "big") == 9, "eth_getStorageAt slot 0")
    check(c.functions.writes(a0.address).call() == 1, "mapping read")
    expect_error(lambda: c.functions.fail().call(), "Store: always fails")
    expect_error(lambda: c.functions.set(1).estimate_gas({"from": a0.address, "gas": 22_000}), "gas required exceeds")
    expect_error(lambda: c.functions.spin().call({"gas": 30_000_000}), "out of gas")
    check(w3.eth.block_number > 0, "the node serves after an endless loop call")

    # Events.
    events = c.events.ValueSet().get_logs(from_block=r_deploy["blockNumber"])
    check([(e["args"]["who"], e["args"]["value"]) for e in events] == [(a0.address, 7), (a1.address, 9)], "ValueSet events")
    topic = Web3.keccak(text="ValueSet(address,uint256,uint256)")
    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": addr,
                            "topics": [topic, "0x" + "00" * 12 + a1.address[2:].lower()]})
    check(len(logs) == 1 and logs[0]["transactionHash"] == r_set2["transactionHash"], "eth_getLogs by topic")
    check(logs[0]["logIndex"] == r_set2["logs"][0]["logIndex"], "log index agrees with the receipt")
    check(w3.eth.get_logs({"fromBlock": 0, "address": a2.address}) == [], "no logs for an EOA")

    # Proofs against the stateRoot.
    values = verify_proof(w3, addr, [0, 1], r_set2["blockNumber"])
    check(values[0] == 9, "proved slot 0")
    verify_proof(w3, a0.address, [], r_set["blockNumber"])
    check(verify_proof(w3, Account.create().address, [], "latest") == [], "exclusion proof of an unknown account")

    # Header hashes and BLOCKHASH.
    check_block_hashes(w3, [0, 1, n, r_set2["blockNumber"]])
    m = r_set2["blockNumber"]
    check(c.functions.previousHash().call(block_identifier=m) == bytes(w3.eth.get_block(m - 1)["hash"]), "BLOCKHASH")

    # Fee market.
    fh = w3.eth.fee_history(4, "latest", [25, 75])
    check(len(fh["baseFeePerGas"]) == 5 and len(fh["reward"]) == 4, "eth_feeHistory shape")
    check(w3.eth.gas_price >= w3.eth.get_block("latest")["baseFeePerGas"], "gas price covers the base fee")

    # Invalid transactions: go-ethereum's messages, nothing changes.
    nonce0 = w3.eth.get_transaction_count(a0.address)
    bal0 = w3.eth.get_balance(a0.address)
    base = {"to": a2.address, "value": 1, "gas": 21_000, "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": GWEI, "chainId": CHAIN_ID}
    raw = lambda acct, **kw: acct.sign_transaction(base | kw).raw_transaction
    expect_error(lambda: w3.eth.send_raw_transaction(raw(a0, nonce=0)), "nonce too low")
    poor = Account.create()
    expect_error(lambda: w3.eth.send_raw_transaction(raw(poor, nonce=0)), "insufficient funds for gas * price + value")
    expect_error(lambda: w3.eth.send_raw_transaction(raw(a0, nonce=nonce0, gas=20_000)), "intrinsic gas too low")
    expect_error(lambda: w3.eth.send_raw_transaction(raw(a0, nonce=nonce0, chainId=1)), "invalid chain id")
    expect_error(lambda: w3.eth.send_raw_transaction(raw(a0, nonce=nonce0, maxPriorityFeePerGas=200 * GWEI)), "max priority fee per gas higher than max fee per gas")
    future = raw(a0, nonce=nonce0 + 50)
    w3.eth.send_raw_transaction(future)  # held as a future nonce
    expect_error(lambda: w3.eth.send_raw_transaction(future), "already known")
    expect_error(lambda: w3.eth.send_raw_transaction(raw(a0, nonce=nonce0 + 50, value=2)), "replacement transaction underpriced")
    w3.eth.send_raw_transaction(raw(a0, nonce=nonce0 + 50, maxFeePerGas=120 * GWEI, maxPriorityFeePerGas=2 * GWEI))
    resp = w3.provider.make_request("eth_sendRawTransaction", ["0x1234"])
    check("rlp" in resp.get("error", {}).get("message", ""), f"undecodable bytes: {resp}")
    time.sleep(0.5)
    check(w3.eth.get_transaction_count(a0.address) == nonce0, "rejected and future transactions change no nonce")
    check(w3.eth.get_balance(a0.address) == bal0, "rejected transactions change no balance")
    check(w3.eth.get_transaction_count(a0.address, "pending") == nonce0, "a gapped future nonce is not pending")

    head = asyncio.run(new_head(ws_url))
    check(int(head["number"], 16) if isinstance(head["number"], str) else head["number"] > 0, "newHeads notification")

    state = {
        "store": addr,
        "txs": [h.to_0x_hex() for h in (r["transactionHash"], r_legacy["transactionHash"], r_deploy["transactionHash"], r_set["transactionHash"], r_set2["transactionHash"])],
        "blocks": {str(x["blockNumber"]): x["blockHash"].to_0x_hex() for x in (r, r_legacy, r_deploy, r_set, r_set2)},
        "balance_a0_at": [n, w3.eth.get_balance(a0.address, n)],
        "set2_block": r_set2["blockNumber"],
        "head": w3.eth.block_number,
        "nonce_a0": w3.eth.get_transaction_count(a0.address),
    }
    with open(state_file, "w") as f:
        json.dump(state, f)


def after_restart(w3, state_file):
    with open(state_file) as f:
        s = json.load(f)
    a0, a1 = Account.from_key(KEYS[0]), Account.from_key(KEYS[1])
    check(w3.eth.block_number >= s["head"], "the chain continues after the restart")
    for h in s["txs"]:
        r = w3.eth.get_transaction_receipt(h)
        check(r is not None and r["status"] == 1, f"receipt {h} after restart")
        check(s["blocks"][str(r["blockNumber"])] == r["blockHash"].to_0x_hex(), "same block hash after restart")
        check(w3.eth.get_transaction(h)["hash"].to_0x_hex() == h, "transaction after restart")
    for num, hsh in s["blocks"].items():
        check(w3.eth.get_block(int(num))["hash"].to_0x_hex() == hsh, "block by number after restart")
        check(w3.eth.get_block(hsh)["number"] == int(num), "block by hash after restart")
    check_block_hashes(w3, [int(x) for x in s["blocks"]])
    store = contract_json("Store")
    c = w3.eth.contract(address=s["store"], abi=store["abi"])
    check(c.functions.value().call() == 9, "contract state after restart")
    events = c.events.ValueSet().get_logs(from_block=0)
    check(len(events) == 2, "events after restart")
    n, bal = s["balance_a0_at"]
    check(w3.eth.get_balance(a0.address, n) == bal, "historical balance after restart")
    check(verify_proof(w3, s["store"], [0], s["set2_block"])[0] == 9, "proof after restart")
    check(w3.eth.get_transaction_count(a0.address) == s["nonce_a0"], "nonce after restart")
    r = send(w3, a0, {"to": a1.address, "value": 1, "gas": 21_000})
    check(r["status"] == 1 and r["blockNumber"] > s["head"], "a new transaction after restart")


def main():
    phase, rpc, ws, state_file = sys.argv[1:5]
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    if phase == "run":
        run(w3, ws, state_file)
    else:
        after_restart(w3, state_file)
    print(f"{phase}: {checks} checks passed")


if __name__ == "__main__":
    main()
