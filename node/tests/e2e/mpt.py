"""An independent check of EIP-1186 proofs and header hashes (no node code):
walks the proof nodes from the state root with keccak and RLP only."""
import rlp
from eth_hash.auto import keccak


def _nibbles(b: bytes):
    out = []
    for x in b:
        out += [x >> 4, x & 15]
    return out


def _hp_decode(b: bytes):
    nib = _nibbles(b)
    flag = nib[0]
    leaf = flag >= 2
    path = nib[2:] if flag % 2 == 0 else nib[1:]
    return path, leaf


def verify(root: bytes, key: bytes, proof: list):
    """Returns the value stored under keccak(key) (None if the proof shows absence); raises on a bad proof."""
    path = _nibbles(keccak(key))
    expected = root
    for i, node_bytes in enumerate(proof):
        if len(node_bytes) >= 32 or i == 0:
            if keccak(node_bytes) != expected:
                raise ValueError(f"proof node {i} does not hash to its reference")
        elif node_bytes != expected:
            raise ValueError(f"inline node {i} differs")
        node = rlp.decode(node_bytes)
        if len(node) == 17:
            if not path:
                return node[16] or None
            child = node[path[0]]
            path = path[1:]
        elif len(node) == 2:
            part, leaf = _hp_decode(node[0])
            if path[: len(part)] != part:
                return None
            path = path[len(part):]
            if leaf:
                return node[1] if not path else None
            child = node[1]
        else:
            raise ValueError(f"node {i} has {len(node)} items")
        if child == b"":
            return None
        if isinstance(child, list):
            raise ValueError("embedded list nodes are not expected in these tries")
        expected = child
    raise ValueError("proof ends before the key's leaf")


def _int(v):
    return int(v, 16) if isinstance(v, str) else int(v)


def _b(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    return bytes.fromhex(v[2:] if str(v).startswith("0x") else str(v))


def header_hash(block) -> bytes:
    """keccak of the RLP header built from the JSON fields (Prague/Osaka layout)."""
    def num(v):
        n = _int(v)
        return n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""

    fields = [
        _b(block["parentHash"]), _b(block["sha3Uncles"]), _b(block["miner"]), _b(block["stateRoot"]),
        _b(block["transactionsRoot"]), _b(block["receiptsRoot"]), _b(block["logsBloom"]), num(block["difficulty"]),
        num(block["number"]), num(block["gasLimit"]), num(block["gasUsed"]), num(block["timestamp"]),
        _b(block["extraData"]), _b(block["mixHash"]), _b(block["nonce"]), num(block["baseFeePerGas"]),
        _b(block["withdrawalsRoot"]), num(block["blobGasUsed"]), num(block["excessBlobGas"]),
        _b(block["parentBeaconBlockRoot"]), _b(block["requestsHash"]),
    ]
    return keccak(rlp.encode(fields))
