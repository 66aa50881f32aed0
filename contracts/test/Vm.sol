// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The few Foundry cheatcodes the suite uses (npm's forge-std is too old for forge 1.7), at the address
/// forge serves them from.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function load(address target, bytes32 slot) external view returns (bytes32 data);
    function warp(uint256 timestamp) external;
    function prank(address sender) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function expectRevert(bytes calldata revertData) external;
}
