// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";
import {IFederatedLedger} from "../interfaces/IFederatedLedger.sol";
import {ITwinRegistry} from "../interfaces/ITwinRegistry.sol";
import {DidStrings} from "../identity/DidStrings.sol";

/// @title FederatedLedger
/// @notice Provenance of federated learning: which model updates went into which round, and that each
/// participating twin's owner consented to training by the task's aggregator for the task's purpose.
/// @dev Update commits are events only: no on-chain logic reads them, and the checkpoint's Merkle root binds the
/// included digests. Consent is checked against the TwinLedger at commit time.
contract FederatedLedger is IFederatedLedger {
    uint8 private constant _SCOPE_TRAIN = 0x04;

    /// @dev Two slots of identity, one of state.
    struct Task {
        address aggregator;
        uint32 openRound;
        bool closed;
        bytes32 aggregatorDidHash;
        bytes32 purpose;
    }

    /// @notice The TwinLedger holding twins and consent.
    address public immutable ledger;

    mapping(uint256 taskId => Task) private _tasks;
    uint256 private _taskCount;

    /// @dev The TwinLedger address is zero: every commit would revert, for the contract's whole life.
    error ZeroLedger();

    /// @param twinLedger address of the TwinLedger (twin registry and consent registry).
    constructor(address twinLedger) {
        if (twinLedger == address(0)) revert ZeroLedger();
        ledger = twinLedger;
    }

    /// @inheritdoc IFederatedLedger
    function createTask(string calldata aggregatorDid, bytes32 purpose, bytes32 initialModelDigest)
        external
        returns (uint256 taskId)
    {
        bytes32 didHash = DidStrings.hash(aggregatorDid);
        if (purpose == bytes32(0)) revert InvalidPurpose();
        if (initialModelDigest == bytes32(0)) revert ZeroDigest();
        taskId = ++_taskCount;
        _tasks[taskId] = Task({
            aggregator: msg.sender,
            openRound: 1,
            closed: false,
            aggregatorDidHash: didHash,
            purpose: purpose
        });
        emit TaskCreated(taskId, msg.sender, purpose, didHash, initialModelDigest, aggregatorDid);
    }

    /// @inheritdoc IFederatedLedger
    function commitUpdate(uint256 taskId, uint256 round, uint256 twinId, bytes32 updateDigest, uint256 numSamples)
        external
    {
        Task storage task = _openTask(taskId, round);
        if (updateDigest == bytes32(0)) revert ZeroDigest();
        if (numSamples == 0 || numSamples > type(uint64).max) revert InvalidSampleCount(numSamples);
        if (!ITwinRegistry(ledger).isController(twinId, msg.sender)) revert NotTwinController(twinId, msg.sender);
        if (!IConsentRegistry(ledger).isAuthorized(twinId, task.aggregatorDidHash, task.purpose, _SCOPE_TRAIN)) {
            revert TrainingNotAuthorized(taskId, twinId);
        }
        emit UpdateCommitted(taskId, round, twinId, msg.sender, updateDigest, numSamples);
    }

    /// @inheritdoc IFederatedLedger
    function checkpoint(
        uint256 taskId,
        uint256 round,
        bytes32 modelDigest,
        bytes32 updatesRoot,
        uint256 count,
        uint256 totalSamples
    ) external {
        Task storage task = _openTask(taskId, round);
        if (msg.sender != task.aggregator) revert NotAggregator(taskId, msg.sender);
        if (modelDigest == bytes32(0) || updatesRoot == bytes32(0)) revert ZeroDigest();
        if (count == 0) revert EmptyRound(taskId, round);
        if (totalSamples < count) revert InvalidSampleCount(totalSamples);
        unchecked {
            task.openRound = uint32(round + 1);
        }
        emit RoundCheckpointed(taskId, round, modelDigest, updatesRoot, count, totalSamples);
    }

    /// @inheritdoc IFederatedLedger
    function closeTask(uint256 taskId) external {
        Task storage task = _tasks[taskId];
        if (task.aggregator == address(0)) revert TaskNotFound(taskId);
        if (msg.sender != task.aggregator) revert NotAggregator(taskId, msg.sender);
        if (task.closed) revert TaskIsClosed(taskId);
        task.closed = true;
        emit TaskClosed(taskId, task.openRound - 1);
    }

    /// @inheritdoc IFederatedLedger
    function taskOf(uint256 taskId)
        external
        view
        returns (address aggregator, uint256 openRound, bool closed, bytes32 aggregatorDidHash, bytes32 purpose)
    {
        Task storage task = _tasks[taskId];
        if (task.aggregator == address(0)) revert TaskNotFound(taskId);
        return (task.aggregator, task.openRound, task.closed, task.aggregatorDidHash, task.purpose);
    }

    /// @dev The task, if it exists, is open, and `round` is its open round.
    function _openTask(uint256 taskId, uint256 round) private view returns (Task storage task) {
        task = _tasks[taskId];
        if (task.aggregator == address(0)) revert TaskNotFound(taskId);
        if (task.closed) revert TaskIsClosed(taskId);
        if (round != task.openRound) revert RoundNotOpen(taskId, round, task.openRound);
    }
}
