// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title PeerAccessControl
/// @notice The gas baseline for consent grants (scripts/bench/gas.py): OpenZeppelin's AccessControl as it ships,
/// with the deployer as the admin of every role. Not part of the ledger; never deployed by the node.
contract PeerAccessControl is AccessControl {
    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }
}
