// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ISnapshotAnchors
/// @notice Commitments to off-chain data: a twin's snapshot head (one manifest digest per sequence number) or the
/// Merkle root of a batch of leaves (snapshots, access receipts, model updates) in OpenZeppelin StandardMerkleTree
/// format, with the CID of the batch's leaf list.
interface ISnapshotAnchors {
    /// @notice What the leaves of a batch are.
    enum BatchKind {
        Snapshots,
        AccessReceipts,
        ModelUpdates
    }

    /// @notice The head of a twin's snapshot chain was anchored.
    event SnapshotAnchored(uint256 indexed twinId, uint256 indexed seq, address indexed anchorer, bytes32 manifestDigest);

    /// @notice A Merkle batch was anchored.
    event BatchAnchored(
        bytes32 indexed root, BatchKind indexed kind, address indexed anchorer, uint256 count, string leavesCid
    );

    /// @dev `seq` must be greater than the twin's last anchored sequence number `headSeq`.
    error SnapshotSeqNotIncreasing(uint256 twinId, uint256 seq, uint256 headSeq);
    /// @dev Sequence numbers are uint32.
    error SnapshotSeqOverflow(uint256 seq);
    /// @dev A digest or root must not be zero.
    error ZeroDigest();
    /// @dev `anchorer` has anchored this root already.
    error BatchAlreadyAnchored(address anchorer, bytes32 root);
    /// @dev A batch needs at least one and at most 2^32-1 leaves.
    error InvalidBatchCount(uint256 count);
    /// @dev The kind value is outside BatchKind.
    error InvalidBatchKind(uint8 kind);
    /// @dev The leaf list CID must not be empty.
    error EmptyLeavesCid();

    /// @notice Anchors the manifest digest of snapshot `seq` of `twinId` (owner or approved operator).
    function anchorSnapshot(uint256 twinId, uint256 seq, bytes32 manifestDigest) external;

    /// @notice Anchors, under the caller, the Merkle root of a batch of `count` leaves listed at `leavesCid`. Anyone
    /// may anchor any root; each anchorer has its own record of it, so no one can take another's anchor over.
    function anchorBatch(uint8 kind, bytes32 root, uint256 count, string calldata leavesCid) external;

    /// @notice When `anchorer` anchored `root`, of which kind and with how many leaves (`anchoredAt` zero: not
    /// anchored by `anchorer`).
    function batchOf(address anchorer, bytes32 root)
        external
        view
        returns (uint256 anchoredAt, BatchKind kind, uint256 count);
}
