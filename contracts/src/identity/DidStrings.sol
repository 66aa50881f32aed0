// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title DidStrings
/// @notice The one place the contracts check and hash a DID string. On chain a DID is only checked for shape
/// ("did:" and at least 8 characters) and hashed; its canonical form is the caller's job (the SDK's `canonical_did`).
/// @dev In assembly: checking the prefix through a calldata slice costs ~350 gas of bounds checks, a third of what a
/// grant may spend beyond its storage slot, its event and its calldata.
library DidStrings {
    /// @dev The string is not a DID: it must start with "did:" and have at least 8 characters.
    error InvalidDid(string did);

    uint256 private constant _PREFIX = 0x6469643a; // "did:"
    uint256 private constant _MIN_LENGTH = 8; // "did:" + method + ":" + id

    /// @dev Whether `did` has the shape of a DID.
    function isWellFormed(string calldata did) internal pure returns (bool wellFormed) {
        assembly ("memory-safe") {
            wellFormed := and(iszero(lt(did.length, _MIN_LENGTH)), eq(shr(224, calldataload(did.offset)), _PREFIX))
        }
    }

    /// @dev Reverts with InvalidDid when `did` is not shaped like a DID.
    function requireWellFormed(string calldata did) internal pure {
        if (!isWellFormed(did)) revert InvalidDid(did);
    }

    /// @dev keccak256 of `did`, reverting with InvalidDid when it is not shaped like a DID.
    function hash(string calldata did) internal pure returns (bytes32 digest) {
        requireWellFormed(did);
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, did.offset, did.length)
            digest := keccak256(m, did.length)
        }
    }
}
