// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ConsentRegistry} from "./consent/ConsentRegistry.sol";
import {SnapshotAnchors} from "./twins/SnapshotAnchors.sol";
import {TwinRegistry} from "./twins/TwinRegistry.sol";

/// @title TwinLedger
/// @notice The deployed ledger of twins: ownership and structure (TwinRegistry), snapshot and batch anchors
/// (SnapshotAnchors) and consent (ConsentRegistry), sharing one storage so that consent checks read ownership
/// without a cross-contract call.
contract TwinLedger is SnapshotAnchors, ConsentRegistry {
    constructor() EIP712("twinledger", "1") {}

    /// @inheritdoc TwinRegistry
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
