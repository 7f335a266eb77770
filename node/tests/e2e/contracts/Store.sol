// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// Test contract of the node's end-to-end test: storage, a mapping, events,
/// a revert with a reason and an endless loop (for the eth_call limits).
contract Store {
    uint256 public value; // slot 0
    mapping(address => uint256) public writes; // slot 1

    event ValueSet(address indexed who, uint256 indexed value, uint256 count);

    constructor(uint256 initial) {
        value = initial;
    }

    function set(uint256 v) external {
        value = v;
        writes[msg.sender] += 1;
        emit ValueSet(msg.sender, v, writes[msg.sender]);
    }

    function fail() external pure {
        revert("Store: always fails");
    }

    function spin() external pure returns (uint256 x) {
        while (true) {
            x++;
        }
    }

    function previousHash() external view returns (bytes32) {
        return blockhash(block.number - 1);
    }
}
