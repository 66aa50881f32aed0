// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ITwinRegistry
/// @notice Ownership and structure of digital twins: every twin is an ERC-721 token with a kind, an optional parent
/// twin and an optional device DID. Everything an auditor needs travels in events; storage holds only what on-chain
/// logic reads (owner, parent, kind, last anchored sequence number).
interface ITwinRegistry {
    /// @notice What a twin mirrors. A system twin is made of asset twins, an asset of component twins.
    enum TwinKind {
        Component,
        Asset,
        System,
        Process
    }

    /// @notice A twin was minted.
    /// @param deviceDidHash keccak256 of the canonical device DID, zero when no device is bound.
    /// @param deviceDid the canonical device DID string ("" when none), so audits can show it.
    event TwinRegistered(
        uint256 indexed twinId,
        address indexed owner,
        uint256 indexed parentId,
        TwinKind kind,
        bytes32 metadataDigest,
        bytes32 deviceDidHash,
        string deviceDid
    );

    /// @notice The device whose key signs the data of a twin changed (`deviceDidHash` zero: unbound).
    event DeviceBound(uint256 indexed twinId, bytes32 indexed deviceDidHash, address indexed by, string deviceDid);

    /// @notice A twin was linked under another twin (`newParentId` zero: detached).
    event ParentChanged(uint256 indexed twinId, uint256 indexed previousParentId, uint256 indexed newParentId);

    /// @dev The twin does not exist.
    error TwinNotFound(uint256 twinId);
    /// @dev `caller` is neither the owner of `twinId` nor approved for it.
    error NotTwinController(uint256 twinId, address caller);
    /// @dev `caller` is not the owner of `twinId`, and only the owner gives or withdraws consent (approvals do not).
    error NotTwinOwner(uint256 twinId, address caller);
    /// @dev Linking `twinId` under `parentId` would make a twin its own ancestor.
    error ParentCycle(uint256 twinId, uint256 parentId);
    /// @dev The ancestry of `parentId` is longer than the registry follows.
    error HierarchyTooDeep(uint256 parentId, uint256 maxDepth);
    /// @dev The kind value is outside TwinKind.
    error InvalidTwinKind(uint8 kind);
    /// @dev Twin identifiers are exhausted (uint40).
    error TwinIdOverflow();
    /// @dev The twin has been transferred as often as its ownership-period counter (uint16) can count.
    error OwnershipPeriodsExhausted(uint256 twinId);

    /// @notice Mints a twin to the caller.
    function register(uint8 kind, uint256 parentId, bytes32 metadataDigest, string calldata deviceDid)
        external
        returns (uint256 twinId);

    /// @notice Binds (or with "" unbinds) the device DID whose key signs the twin's data.
    function bindDevice(uint256 twinId, string calldata deviceDid) external;

    /// @notice Links a twin under a parent twin, or detaches it with `parentId` zero.
    function setParent(uint256 twinId, uint256 parentId) external;

    /// @notice The stored record of a twin. `period` is its ownership period: 0 from the mint, one more with
    /// every transfer; a grant belongs to the period it was given in.
    function twinOf(uint256 twinId)
        external
        view
        returns (address owner, uint256 parentId, TwinKind kind, uint256 headSeq, uint256 period);

    /// @notice Whether `account` may act for `twinId`: its owner or an ERC-721 approved operator.
    function isController(uint256 twinId, address account) external view returns (bool);

    /// @notice Number of twins registered so far.
    function totalTwins() external view returns (uint256);
}
