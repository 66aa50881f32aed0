// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsentRegistry
/// @notice Consent of a twin's owner for one DID, for one purpose, with a set of scopes, until an expiry.
/// A grant belongs to the twin's ownership period it was given in (see ITwinRegistry.twinOf): it is live while that
/// period lasts and the chain's time is before its expiry, so a transfer ends every consent for good, also when the
/// twin later comes back to the grantor.
interface IConsentRegistry {
    /// @notice One grant to set (batch and signed variants take the same fields).
    struct GrantRequest {
        uint256 twinId;
        string did;
        bytes32 purpose;
        uint8 scopes;
        uint64 expiry;
    }

    /// @notice One grant to remove.
    struct RevokeRequest {
        uint256 twinId;
        bytes32 didHash;
        bytes32 purpose;
    }

    /// @notice Consent was given (or replaced) by the twin's owner at that block (the grantor, recorded in storage).
    event Granted(
        uint256 indexed twinId, bytes32 indexed didHash, bytes32 indexed purpose, uint8 scopes, uint64 expiry, string did
    );

    /// @notice Consent was withdrawn by `revoker`: the owner, who sent or signed it (revokeBySig).
    event Revoked(uint256 indexed twinId, bytes32 indexed didHash, bytes32 indexed purpose, address revoker);

    /// @dev Scopes must be a subset of READ|WRITE|TRAIN|INHERIT|AUDIT with at least one right besides INHERIT.
    error InvalidScopes(uint8 scopes);
    /// @dev The expiry must be in the future and fit in uint40.
    error InvalidExpiry(uint64 expiry, uint256 chainTime);
    /// @dev The purpose code must not be zero.
    error InvalidPurpose();
    /// @dev There is no grant for this key.
    error GrantNotFound(uint256 twinId, bytes32 didHash, bytes32 purpose);
    /// @dev The signed request is past its deadline.
    error ExpiredSignature(uint256 deadline, uint256 chainTime);
    /// @dev The signature is not the twin owner's (EOA or ERC-1271 contract wallet).
    error InvalidSigner(uint256 twinId, address owner);
    /// @dev The nonce is not the owner's current one.
    error InvalidAccountNonce(address account, uint256 currentNonce);
    /// @dev A batch must not be empty.
    error EmptyBatch();

    /// @notice Grants `did` the `scopes` on `twinId` for `purpose` until `expiry` (the owner alone: an ERC-721
    /// approval does not let an operator give consent).
    function grant(uint256 twinId, string calldata did, bytes32 purpose, uint8 scopes, uint64 expiry) external;

    /// @notice Removes the grant for (`twinId`, `didHash`, `purpose`) (the owner alone).
    function revoke(uint256 twinId, bytes32 didHash, bytes32 purpose) external;

    /// @notice Sets several grants in one transaction (each on a twin the sender owns).
    function grantBatch(GrantRequest[] calldata requests) external;

    /// @notice Removes several grants in one transaction (each on a twin the sender owns).
    function revokeBatch(RevokeRequest[] calldata requests) external;

    /// @notice Sets a grant the twin's owner signed off-chain (EIP-712); anyone may submit it.
    function grantBySig(GrantRequest calldata request, uint256 nonce, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Removes a grant the twin's owner signed off-chain (EIP-712); anyone may submit it.
    function revokeBySig(
        uint256 twinId,
        string calldata did,
        bytes32 purpose,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Whether `didHash` may use `twinId` for `purpose` with every right in `scope` now.
    function isAuthorized(uint256 twinId, bytes32 didHash, bytes32 purpose, uint8 scope) external view returns (bool);

    /// @notice The stored grant (grantor zero: none) and the ownership period it belongs to. It may be dead: see
    /// `isAuthorized`.
    function grantOf(uint256 twinId, bytes32 didHash, bytes32 purpose)
        external
        view
        returns (address grantor, uint8 scopes, uint64 expiry, uint64 grantedAt, uint256 period);

    /// @notice The next EIP-712 nonce of `owner`.
    function nonces(address owner) external view returns (uint256);
}
