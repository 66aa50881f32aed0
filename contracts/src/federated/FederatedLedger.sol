// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";
import {IFederatedLedger} from "../interfaces/IFederatedLedger.sol";
import {ITwinRegistry} from "../interfaces/ITwinRegistry.sol";
import {DidStrings} from "../identity/DidStrings.sol";

/// @title FederatedLedger
/// @notice Provenance of federated learning: which model updates went into which round, and that each
/// participating twin's owner consented to training by the task's aggregator for the task's purpose.
/// @dev Update commits are events only: no on-chain logic reads them, and the checkpoint's Merkle root binds the
/// included digests. Consent is checked against the TwinLedger at commit time. A commit is the owner's act: sent
/// by the twin's controller, or relayed (`commitUpdateBySig`) with the owner's EIP-712 signature, so a node that
/// relays owners' updates needs no ERC-721 approval, which would also let it grant consent and transfer the twin.
contract FederatedLedger is IFederatedLedger, EIP712 {
    uint8 private constant _SCOPE_TRAIN = 0x04;
    bytes32 private constant _COMMIT_TYPEHASH = keccak256(
        "Commit(uint256 taskId,uint256 round,uint256 twinId,bytes32 updateDigest,uint256 numSamples,uint256 deadline)"
    );

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
    constructor(address twinLedger) EIP712("twinledger-federated", "1") {
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
        _checkUpdate(updateDigest, numSamples);
        if (!ITwinRegistry(ledger).isController(twinId, msg.sender)) revert NotTwinController(twinId, msg.sender);
        _commit(task, taskId, round, twinId, msg.sender, updateDigest, numSamples);
    }

    /// @inheritdoc IFederatedLedger
    function commitUpdateBySig(
        uint256 taskId,
        uint256 round,
        uint256 twinId,
        bytes32 updateDigest,
        uint256 numSamples,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline, block.timestamp);
        Task storage task = _openTask(taskId, round);
        _checkUpdate(updateDigest, numSamples);
        (address owner,,,,) = ITwinRegistry(ledger).twinOf(twinId);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(_COMMIT_TYPEHASH, taskId, round, twinId, updateDigest, numSamples, deadline))
        );
        // ecrecover first: EOA owners, the common case, never need the ERC-1271 call's cold account access.
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (
            (err != ECDSA.RecoverError.NoError || recovered != owner)
                && !SignatureChecker.isValidERC1271SignatureNow(owner, digest, signature)
        ) revert InvalidCommitSigner(twinId, owner);
        // No nonce (it would cost a storage write per commit): until its deadline a signature can be replayed in its
        // own round, re-committing the owner's signed update over a later one of the same twin; keep deadlines short.
        _commit(task, taskId, round, twinId, owner, updateDigest, numSamples);
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

    /// @dev An update names a non-zero digest and a positive uint64 sample count.
    function _checkUpdate(bytes32 updateDigest, uint256 numSamples) private pure {
        if (updateDigest == bytes32(0)) revert ZeroDigest();
        if (numSamples == 0 || numSamples > type(uint64).max) revert InvalidSampleCount(numSamples);
    }

    /// @dev Emits the commit once the twin's owner is found to have granted TRAIN to the aggregator's DID.
    function _commit(
        Task storage task,
        uint256 taskId,
        uint256 round,
        uint256 twinId,
        address committer,
        bytes32 updateDigest,
        uint256 numSamples
    ) private {
        if (!IConsentRegistry(ledger).isAuthorized(twinId, task.aggregatorDidHash, task.purpose, _SCOPE_TRAIN)) {
            revert TrainingNotAuthorized(taskId, twinId);
        }
        emit UpdateCommitted(taskId, round, twinId, committer, updateDigest, numSamples);
    }

    /// @dev The task, if it exists, is open, and `round` is its open round.
    function _openTask(uint256 taskId, uint256 round) private view returns (Task storage task) {
        task = _tasks[taskId];
        if (task.aggregator == address(0)) revert TaskNotFound(taskId);
        if (task.closed) revert TaskIsClosed(taskId);
        if (round != task.openRound) revert RoundNotOpen(taskId, round, task.openRound);
    }
}
