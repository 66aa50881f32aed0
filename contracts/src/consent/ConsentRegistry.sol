// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {StorageSlot} from "@openzeppelin/contracts/utils/StorageSlot.sol";
import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";
import {TwinRegistry} from "../twins/TwinRegistry.sol";
import {DidStrings} from "../identity/DidStrings.sol";

/// @title ConsentRegistry
/// @notice DID-bound grants keyed by (twin, DID hash, purpose), each packed in one slot, set by the twin's owner
/// directly or through an EIP-712 signature (EOA or ERC-1271 wallet) that anyone may submit.
/// @dev Lives in the same contract as the twin records: checking ownership through a cold call to another contract
/// costs about 5,000 gas per grant, a tenth of the grant's budget. A grant records its grantor and the twin's
/// ownership period; it is live only in that period, so a transfer ends every consent for good without touching it,
/// also when the twin later returns to the grantor.
abstract contract ConsentRegistry is TwinRegistry, EIP712, IConsentRegistry {
    uint8 public constant SCOPE_READ = 0x01;
    uint8 public constant SCOPE_WRITE = 0x02;
    uint8 public constant SCOPE_TRAIN = 0x04;
    uint8 public constant SCOPE_INHERIT = 0x08;
    uint8 public constant SCOPE_AUDIT = 0x10;
    uint8 private constant _ALL_SCOPES = 0x1f;
    uint8 private constant _RIGHTS = 0x17; // every scope but INHERIT

    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(uint256 twinId,string did,bytes32 purpose,uint8 scopes,uint64 expiry,uint256 nonce,uint256 deadline)"
    );
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(uint256 twinId,string did,bytes32 purpose,uint256 nonce,uint256 deadline)");

    // A grant is one slot, packed by hand: grantor (bits 0-159) | scopes (160-167) | expiry (168-207) |
    // ownership period (208-223) | grantedAt (224-255, seconds: until 2106). Packing by hand makes writing a grant
    // one SSTORE; a struct assignment compiles to a read-modify-write per field. grantedAt is on top so that the
    // shift alone cuts the timestamp to its 32 bits.
    uint256 private constant _SCOPES_SHIFT = 160;
    uint256 private constant _EXPIRY_SHIFT = 168;
    uint256 private constant _GRANT_PERIOD_SHIFT = 208;
    uint256 private constant _GRANTED_AT_SHIFT = 224;
    uint256 private constant _EXPIRY_LIMIT = 0x10000000000; // 2**40: an expiry must fit its 40 bits

    // Grants live at keccak256(abi.encode(twinId, didHash, purpose)), not in a nested mapping: one hash instead of
    // three (~90 gas on every grant and every check). The 96-byte preimage cannot collide with the compiler's own
    // slots, whose preimages are 32 or 64 bytes, short of a keccak collision. Reached through _grantAt, and
    // written by _grant in assembly.

    // ---------------------------------------------------------------- by the owner

    /// @inheritdoc IConsentRegistry
    function grant(uint256 twinId, string calldata did, bytes32 purpose, uint8 scopes, uint64 expiry) external {
        (address owner, uint256 period) = _requireOwner(twinId, msg.sender);
        _grant(_holder(owner, period), twinId, did, purpose, scopes, expiry);
    }

    /// @inheritdoc IConsentRegistry
    function revoke(uint256 twinId, bytes32 didHash, bytes32 purpose) external {
        _requireOwner(twinId, msg.sender);
        _revoke(twinId, didHash, purpose, msg.sender);
    }

    /// @inheritdoc IConsentRegistry
    function grantBatch(GrantRequest[] calldata requests) external {
        if (requests.length == 0) revert EmptyBatch();
        for (uint256 i = 0; i < requests.length; ++i) {
            GrantRequest calldata r = requests[i];
            (address owner, uint256 period) = _requireOwner(r.twinId, msg.sender);
            _grant(_holder(owner, period), r.twinId, r.did, r.purpose, r.scopes, r.expiry);
        }
    }

    /// @inheritdoc IConsentRegistry
    function revokeBatch(RevokeRequest[] calldata requests) external {
        if (requests.length == 0) revert EmptyBatch();
        for (uint256 i = 0; i < requests.length; ++i) {
            RevokeRequest calldata r = requests[i];
            _requireOwner(r.twinId, msg.sender);
            _revoke(r.twinId, r.didHash, r.purpose, msg.sender);
        }
    }

    // ---------------------------------------------------------------- by signature

    /// @inheritdoc IConsentRegistry
    function grantBySig(GrantRequest calldata request, uint256 nonce, uint256 deadline, bytes calldata signature)
        external
    {
        bytes32 didHash = DidStrings.hash(request.did);
        bytes32 structHash = keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                request.twinId,
                didHash,
                request.purpose,
                request.scopes,
                request.expiry,
                nonce,
                deadline
            )
        );
        (address owner, uint256 period) = _useSignature(request.twinId, structHash, nonce, deadline, signature);
        _grant(_holder(owner, period), request.twinId, request.did, request.purpose, request.scopes, request.expiry);
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySig(
        uint256 twinId,
        string calldata did,
        bytes32 purpose,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 didHash = DidStrings.hash(did);
        bytes32 structHash = keccak256(abi.encode(REVOKE_TYPEHASH, twinId, didHash, purpose, nonce, deadline));
        (address owner,) = _useSignature(twinId, structHash, nonce, deadline, signature);
        _revoke(twinId, didHash, purpose, owner); // the signer revoked; the relayer only carried it
    }

    /// @notice The EIP-712 domain separator (name "twinledger", version "1", this chain and contract).
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IConsentRegistry
    function isAuthorized(uint256 twinId, bytes32 didHash, bytes32 purpose, uint8 scope) external view returns (bool) {
        scope &= _RIGHTS;
        if (scope == 0) return false;
        Twin storage twin = _twin(twinId);
        address owner = twin.owner;
        if (owner == address(0)) return false;
        if (_covers(_loadGrant(twinId, didHash, purpose), twin.period, scope)) return true;
        // Grants on an ancestor reach this twin when they carry INHERIT and were given in the ancestor's current
        // ownership period by this twin's owner: consent never crosses from one owner's twins to another's.
        uint8 inherited = scope | SCOPE_INHERIT;
        uint256 current = twin.parent;
        for (uint256 depth = 0; depth < MAX_DEPTH && current != 0; ++depth) {
            Twin storage ancestor = _twin(current);
            if (ancestor.owner == owner && _covers(_loadGrant(current, didHash, purpose), ancestor.period, inherited)) {
                return true;
            }
            current = ancestor.parent;
        }
        return false;
    }

    /// @inheritdoc IConsentRegistry
    function grantOf(uint256 twinId, bytes32 didHash, bytes32 purpose)
        external
        view
        returns (address grantor, uint8 scopes, uint64 expiry, uint64 grantedAt, uint256 period)
    {
        uint256 g = _loadGrant(twinId, didHash, purpose);
        return (
            address(uint160(g)),
            uint8(g >> _SCOPES_SHIFT),
            uint40(g >> _EXPIRY_SHIFT),
            uint32(g >> _GRANTED_AT_SHIFT),
            uint16(g >> _GRANT_PERIOD_SHIFT)
        );
    }

    /// @inheritdoc IConsentRegistry
    function nonces(address owner) external view returns (uint256) {
        return _nonceOf(owner);
    }

    // ---------------------------------------------------------------- internal

    /// @dev Validates and writes a grant and emits Granted. `holder` is who gives it and when: see _holder. The DID
    /// is validated and hashed here, from the copy the event needs anyway.
    function _grant(
        uint256 holder,
        uint256 twinId,
        string calldata did,
        bytes32 purpose,
        uint8 scopes,
        uint64 expiry
    ) private {
        bool valid = DidStrings.isWellFormed(did);
        // Assembly throughout: a grant may spend about a thousand gas beyond its new slot, its event and its
        // calldata, and the compiler's checks, hashing and event encoding took 1,300 of them.
        assembly ("memory-safe") {
            valid := and(
                and(iszero(and(scopes, not(_ALL_SCOPES))), iszero(iszero(and(scopes, _RIGHTS)))),
                and(
                    and(gt(expiry, timestamp()), lt(expiry, _EXPIRY_LIMIT)),
                    and(iszero(iszero(purpose)), valid)
                )
            )
        }
        if (!valid) _revertInvalidGrant(did, purpose, scopes, expiry);
        bytes32 didHash;
        uint256 m; // where the event's data is built: scopes, expiry, offset of did, did (zero-padded), as `emit` would
        uint256 padded;
        assembly ("memory-safe") {
            m := mload(0x40)
            padded := and(add(did.length, 0x1f), not(0x1f))
            mstore(add(m, add(0x60, padded)), 0)
            calldatacopy(add(m, 0x80), did.offset, did.length)
            didHash := keccak256(add(m, 0x80), did.length)
        }
        bytes32 slot = _grantSlot(twinId, didHash, purpose); // scratch below m + 0x80: the DID copy stays
        bytes32 topic0 = Granted.selector;
        assembly ("memory-safe") {
            sstore(
                slot,
                or(or(holder, shl(_SCOPES_SHIFT, scopes)), or(shl(_EXPIRY_SHIFT, expiry), shl(_GRANTED_AT_SHIFT, timestamp())))
            )
            mstore(m, scopes)
            mstore(add(m, 0x20), expiry)
            mstore(add(m, 0x40), 0x60)
            mstore(add(m, 0x60), did.length)
            log4(m, add(0x80, padded), topic0, twinId, didHash, purpose)
        }
    }

    /// @dev The grantor and the ownership period at their places in a grant's slot: one word, because _grant has no
    /// stack slot left for a seventh argument.
    function _holder(address owner, uint256 period) private pure returns (uint256) {
        return uint256(uint160(owner)) | period << _GRANT_PERIOD_SHIFT;
    }

    /// @dev Names what made _grant's check fail. Ends in an unconditional revert: were it ever to disagree with
    /// that check, the grant still would not be written.
    function _revertInvalidGrant(string calldata did, bytes32 purpose, uint8 scopes, uint64 expiry) private view {
        DidStrings.requireWellFormed(did);
        if (scopes & ~_ALL_SCOPES != 0 || scopes & _RIGHTS == 0) revert InvalidScopes(scopes);
        if (expiry <= block.timestamp || expiry > type(uint40).max) revert InvalidExpiry(expiry, block.timestamp);
        assert(purpose == bytes32(0)); // the only check left
        revert InvalidPurpose();
    }

    /// @dev The storage of one grant: see the note where the grant layout is described.
    function _grantAt(uint256 twinId, bytes32 didHash, bytes32 purpose)
        private
        pure
        returns (StorageSlot.Uint256Slot storage)
    {
        return StorageSlot.getUint256Slot(_grantSlot(twinId, didHash, purpose));
    }

    /// @dev keccak256(abi.encode(twinId, didHash, purpose)), hashed in the free memory without allocating it.
    function _grantSlot(uint256 twinId, bytes32 didHash, bytes32 purpose) private pure returns (bytes32 slot) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, twinId)
            mstore(add(m, 0x20), didHash)
            mstore(add(m, 0x40), purpose)
            slot := keccak256(m, 0x60)
        }
    }

    function _loadGrant(uint256 twinId, bytes32 didHash, bytes32 purpose) private view returns (uint256) {
        return _grantAt(twinId, didHash, purpose).value;
    }

    function _revoke(uint256 twinId, bytes32 didHash, bytes32 purpose, address revoker) private {
        StorageSlot.Uint256Slot storage g = _grantAt(twinId, didHash, purpose);
        if (g.value == 0) revert GrantNotFound(twinId, didHash, purpose);
        delete g.value;
        emit Revoked(twinId, didHash, purpose, revoker);
    }

    /// @dev Checks deadline, owner signature and nonce of a signed request; returns the twin's owner and period.
    function _useSignature(
        uint256 twinId,
        bytes32 structHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) private returns (address owner, uint256 period) {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline, block.timestamp);
        (owner, period) = _ownerAndPeriod(twinId);
        if (owner == address(0)) revert TwinNotFound(twinId);
        bytes32 digest = _hashTypedDataV4(structHash);
        // ecrecover first: SignatureChecker.isValidSignatureNow starts with EXTCODESIZE on the signer, a cold account
        // access (2,600 gas) that EOA owners, the common case, never need.
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (
            (err != ECDSA.RecoverError.NoError || recovered != owner)
                && !SignatureChecker.isValidERC1271SignatureNow(owner, digest, signature)
        ) revert InvalidSigner(twinId, owner);
        if (!_useCheckedNonce(owner, nonce)) revert InvalidAccountNonce(owner, _nonceOf(owner));
    }

    /// @dev Whether grant `g` is live (given in ownership period `period`, unexpired) and holds every bit of
    /// `scope`. The period alone names the grantor: it was the owner throughout that period.
    function _covers(uint256 g, uint256 period, uint8 scope) private view returns (bool) {
        return uint16(g >> _GRANT_PERIOD_SHIFT) == period && uint8(g >> _SCOPES_SHIFT) & scope == scope
            && block.timestamp < uint40(g >> _EXPIRY_SHIFT);
    }
}
