// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IFederatedLedger
/// @notice Federated-learning tasks whose rounds are provable: participants commit the digest of each model update
/// (only for twins whose owner granted TRAIN to the task's aggregator DID for the task's purpose), and the aggregator
/// checkpoints every round with the new global model digest and the Merkle root of the included update digests.
interface IFederatedLedger {
    /// @notice A task was opened; round 1 accepts updates.
    event TaskCreated(
        uint256 indexed taskId,
        address indexed aggregator,
        bytes32 indexed purpose,
        bytes32 aggregatorDidHash,
        bytes32 initialModelDigest,
        string aggregatorDid
    );

    /// @notice A model update for `twinId` was committed. A later commit of the same twin in the same round
    /// supersedes an earlier one.
    event UpdateCommitted(
        uint256 indexed taskId,
        uint256 indexed round,
        uint256 indexed twinId,
        address committer,
        bytes32 updateDigest,
        uint256 numSamples
    );

    /// @notice A round was closed by its aggregator; the next round accepts updates.
    event RoundCheckpointed(
        uint256 indexed taskId,
        uint256 indexed round,
        bytes32 modelDigest,
        bytes32 updatesRoot,
        uint256 count,
        uint256 totalSamples
    );

    /// @notice The aggregator closed the task; no more rounds.
    event TaskClosed(uint256 indexed taskId, uint256 lastRound);

    /// @dev No such task.
    error TaskNotFound(uint256 taskId);
    /// @dev The task is closed.
    error TaskIsClosed(uint256 taskId);
    /// @dev Only the round `openRound` accepts updates or a checkpoint.
    error RoundNotOpen(uint256 taskId, uint256 round, uint256 openRound);
    /// @dev Only the task's aggregator may checkpoint or close it.
    error NotAggregator(uint256 taskId, address caller);
    /// @dev `caller` neither owns `twinId` nor is approved for it.
    error NotTwinController(uint256 twinId, address caller);
    /// @dev The twin's owner has not granted TRAIN for the task's purpose to the aggregator's DID (or it lapsed).
    error TrainingNotAuthorized(uint256 taskId, uint256 twinId);
    /// @dev A digest or root must not be zero.
    error ZeroDigest();
    /// @dev Sample counts must be positive and fit in uint64.
    error InvalidSampleCount(uint256 numSamples);
    /// @dev A checkpoint must include at least one update.
    error EmptyRound(uint256 taskId, uint256 round);
    /// @dev The purpose code must not be zero.
    error InvalidPurpose();
    /// @dev A signed commit is past its deadline.
    error ExpiredSignature(uint256 deadline, uint256 chainTime);
    /// @dev The commit signature is not by the twin's owner `owner`.
    error InvalidCommitSigner(uint256 twinId, address owner);

    /// @notice Opens a task aggregated by the caller, acting as `aggregatorDid`, for `purpose`.
    function createTask(string calldata aggregatorDid, bytes32 purpose, bytes32 initialModelDigest)
        external
        returns (uint256 taskId);

    /// @notice Commits the digest of a model update trained on `twinId` in the open `round` (the twin's controller).
    function commitUpdate(uint256 taskId, uint256 round, uint256 twinId, bytes32 updateDigest, uint256 numSamples)
        external;

    /// @notice Commits an update the twin's owner signed (EIP-712 `Commit`, domain "twinledger-federated" "1");
    /// anyone may relay it, and the relayer gains no power over the twin. The committer recorded is the owner.
    function commitUpdateBySig(
        uint256 taskId,
        uint256 round,
        uint256 twinId,
        bytes32 updateDigest,
        uint256 numSamples,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Closes the open `round` with the new global model and the root of the included update digests.
    function checkpoint(
        uint256 taskId,
        uint256 round,
        bytes32 modelDigest,
        bytes32 updatesRoot,
        uint256 count,
        uint256 totalSamples
    ) external;

    /// @notice Closes the task; no further rounds.
    function closeTask(uint256 taskId) external;

    /// @notice The stored record of a task.
    function taskOf(uint256 taskId)
        external
        view
        returns (address aggregator, uint256 openRound, bool closed, bytes32 aggregatorDidHash, bytes32 purpose);
}
