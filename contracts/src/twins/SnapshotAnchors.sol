// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ISnapshotAnchors} from "../interfaces/ISnapshotAnchors.sol";
import {TwinRegistry} from "./TwinRegistry.sol";

/// @title SnapshotAnchors
/// @notice Anchors of twin snapshot heads and of Merkle batches (OpenZeppelin StandardMerkleTree roots).
/// @dev The snapshot sequence lives in the twin's own record, so anchoring writes a slot that is already warm from
/// the ownership check. A batch costs one slot whatever its size: (anchorer, root) maps to when and how many leaves,
/// so `MerkleProof.verify` against `batchOf` works on chain and off. Batches are keyed by their anchorer because
/// anyone may anchor any root: were the root alone the key, whoever saw a pending `anchorBatch` could anchor the
/// same root first (as another kind, with another leaf list) and own it for good. Keyed by anchorer, a copy lands
/// under the copier's address and leaves the original anchorer's record untouched; verifiers look a root up under
/// the account that the signed records name as their anchorer.
abstract contract SnapshotAnchors is TwinRegistry, ISnapshotAnchors {
    /// @dev One slot per (anchorer, root); `anchoredAt` is never zero once anchored.
    struct Batch {
        uint40 anchoredAt;
        BatchKind kind;
        uint32 count;
    }

    mapping(address anchorer => mapping(bytes32 root => Batch)) private _batches;

    /// @inheritdoc ISnapshotAnchors
    function anchorSnapshot(uint256 twinId, uint256 seq, bytes32 manifestDigest) external {
        _requireController(twinId, msg.sender);
        if (manifestDigest == bytes32(0)) revert ZeroDigest();
        Twin storage twin = _twin(twinId);
        uint256 head = twin.headSeq;
        if (seq <= head) revert SnapshotSeqNotIncreasing(twinId, seq, head);
        if (seq > type(uint32).max) revert SnapshotSeqOverflow(seq);
        twin.headSeq = uint32(seq);
        emit SnapshotAnchored(twinId, seq, msg.sender, manifestDigest);
    }

    /// @inheritdoc ISnapshotAnchors
    function anchorBatch(uint8 kind, bytes32 root, uint256 count, string calldata leavesCid) external {
        if (kind > uint8(type(BatchKind).max)) revert InvalidBatchKind(kind);
        if (root == bytes32(0)) revert ZeroDigest();
        if (count == 0 || count > type(uint32).max) revert InvalidBatchCount(count);
        if (bytes(leavesCid).length == 0) revert EmptyLeavesCid();
        Batch storage batch = _batches[msg.sender][root];
        if (batch.anchoredAt != 0) revert BatchAlreadyAnchored(msg.sender, root);
        (batch.anchoredAt, batch.kind, batch.count) = (uint40(block.timestamp), BatchKind(kind), uint32(count));
        emit BatchAnchored(root, BatchKind(kind), msg.sender, count, leavesCid);
    }

    /// @inheritdoc ISnapshotAnchors
    function batchOf(address anchorer, bytes32 root)
        external
        view
        returns (uint256 anchoredAt, BatchKind kind, uint256 count)
    {
        Batch storage batch = _batches[anchorer][root];
        return (batch.anchoredAt, batch.kind, batch.count);
    }
}
