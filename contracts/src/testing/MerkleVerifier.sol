// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title MerkleVerifier
/// @notice Exposes OpenZeppelin's MerkleProof so tests can show that the SDK's trees verify on chain.
contract MerkleVerifier {
    /// @notice Whether `leaf` is in the tree of `root` by `proof` (sorted-pair keccak, as StandardMerkleTree).
    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }
}
