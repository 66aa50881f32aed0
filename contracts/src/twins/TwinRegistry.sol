// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {ERC721Utils} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Utils.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC165, IERC165} from "@openzeppelin/contracts/utils/introspection/ERC165.sol";
import {ITwinRegistry} from "../interfaces/ITwinRegistry.sol";
import {DidStrings} from "../identity/DidStrings.sol";

/// @title TwinRegistry
/// @notice Digital twins as ERC-721 tokens: kind, parent twin, bound device DID.
/// @dev Written instead of inheriting OpenZeppelin's ERC721 because the gas targets need packed storage that
/// OpenZeppelin keeps private: the twin record packs owner, parent, kind and the last anchored snapshot sequence into
/// one slot, and the account record packs the ERC-721 balance with the EIP-712 consent nonce, so a twin owner's first
/// signed consent does not pay for a fresh nonce slot. Behaviour follows OpenZeppelin's ERC721 (errors from
/// IERC6093, receiver checks from ERC721Utils); twins are never burned.
abstract contract TwinRegistry is ERC165, IERC721, IERC721Errors, ITwinRegistry {
    /// @notice How many ancestors the registry follows, both for cycle checks and for inherited consent.
    uint256 public constant MAX_DEPTH = 8;

    /// @dev One slot per twin. `period` counts the twin's transfers: the ownership period a grant belongs to.
    struct Twin {
        address owner;
        uint40 parent;
        TwinKind kind;
        uint32 headSeq;
        uint16 period;
    }

    // Where `Twin.period` sits in the twin's slot (owner 160 + parent 40 + kind 8 + headSeq 32 bits below it), for
    // the assembly that reads owner and period in one SLOAD.
    uint256 private constant _TWIN_PERIOD_SHIFT = 240;
    uint256 private constant _OWNER_MASK = 0x00ffffffffffffffffffffffffffffffffffffffff;
    // parent, kind and headSeq: what a transfer keeps of the slot
    uint256 private constant _KEPT_BY_TRANSFER = 0x0000ffffffffffffffffffff0000000000000000000000000000000000000000;

    /// @dev One slot per account.
    struct Account {
        uint64 balance;
        uint64 nonce;
    }

    mapping(uint256 twinId => Twin) private _twins;
    mapping(address account => Account) private _accounts;
    mapping(uint256 twinId => address) private _tokenApprovals;
    mapping(address owner => mapping(address operator => bool)) private _operatorApprovals;
    // Starts at 1 so that registering never pays for a zero-to-nonzero counter write.
    uint40 private _nextTwinId = 1;

    // ---------------------------------------------------------------- twins

    /// @inheritdoc ITwinRegistry
    function register(uint8 kind, uint256 parentId, bytes32 metadataDigest, string calldata deviceDid)
        external
        returns (uint256 twinId)
    {
        if (kind > uint8(type(TwinKind).max)) revert InvalidTwinKind(kind);
        bytes32 deviceDidHash = _optionalDidHash(deviceDid);
        if (parentId != 0) {
            _requireController(parentId, msg.sender);
            _requireShallowAncestry(0, parentId);
        }
        uint40 id = _nextTwinId;
        if (id == type(uint40).max) revert TwinIdOverflow();
        unchecked {
            _nextTwinId = id + 1;
            _accounts[msg.sender].balance += 1;
        }
        _twins[id] = Twin({owner: msg.sender, parent: uint40(parentId), kind: TwinKind(kind), headSeq: 0, period: 0});
        twinId = id;
        emit Transfer(address(0), msg.sender, twinId);
        emit TwinRegistered(twinId, msg.sender, parentId, TwinKind(kind), metadataDigest, deviceDidHash, deviceDid);
    }

    /// @inheritdoc ITwinRegistry
    function bindDevice(uint256 twinId, string calldata deviceDid) external {
        _requireController(twinId, msg.sender);
        emit DeviceBound(twinId, _optionalDidHash(deviceDid), msg.sender, deviceDid);
    }

    /// @inheritdoc ITwinRegistry
    function setParent(uint256 twinId, uint256 parentId) external {
        Twin storage twin = _twins[twinId];
        _requireController(twinId, msg.sender);
        if (parentId != 0) {
            _requireController(parentId, msg.sender);
            _requireShallowAncestry(twinId, parentId);
        }
        uint256 previous = twin.parent;
        twin.parent = uint40(parentId);
        emit ParentChanged(twinId, previous, parentId);
    }

    /// @inheritdoc ITwinRegistry
    function twinOf(uint256 twinId)
        external
        view
        returns (address owner, uint256 parentId, TwinKind kind, uint256 headSeq, uint256 period)
    {
        Twin storage twin = _twins[twinId];
        if (twin.owner == address(0)) revert TwinNotFound(twinId);
        return (twin.owner, twin.parent, twin.kind, twin.headSeq, twin.period);
    }

    /// @inheritdoc ITwinRegistry
    function isController(uint256 twinId, address account) external view returns (bool) {
        address owner = _twins[twinId].owner;
        return owner != address(0) && _isOwnerOrApproved(owner, account, twinId);
    }

    /// @inheritdoc ITwinRegistry
    function totalTwins() external view returns (uint256) {
        return _nextTwinId - 1;
    }

    // ---------------------------------------------------------------- ERC-721

    /// @notice Collection name shown by wallets.
    function name() external pure returns (string memory) {
        return "twinledger twin";
    }

    /// @notice Collection symbol shown by wallets.
    function symbol() external pure returns (string memory) {
        return "TWIN";
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) public view virtual override(ERC165, IERC165) returns (bool) {
        return interfaceId == type(IERC721).interfaceId || interfaceId == type(ITwinRegistry).interfaceId
            || super.supportsInterface(interfaceId);
    }

    /// @inheritdoc IERC721
    function balanceOf(address owner) external view returns (uint256) {
        if (owner == address(0)) revert ERC721InvalidOwner(address(0));
        return _accounts[owner].balance;
    }

    /// @inheritdoc IERC721
    function ownerOf(uint256 twinId) public view returns (address) {
        address owner = _twins[twinId].owner;
        if (owner == address(0)) revert ERC721NonexistentToken(twinId);
        return owner;
    }

    /// @inheritdoc IERC721
    function approve(address to, uint256 twinId) external {
        address owner = ownerOf(twinId);
        if (msg.sender != owner && !_operatorApprovals[owner][msg.sender]) revert ERC721InvalidApprover(msg.sender);
        _tokenApprovals[twinId] = to;
        emit Approval(owner, to, twinId);
    }

    /// @inheritdoc IERC721
    function getApproved(uint256 twinId) external view returns (address) {
        ownerOf(twinId);
        return _tokenApprovals[twinId];
    }

    /// @inheritdoc IERC721
    function setApprovalForAll(address operator, bool approved) external {
        if (operator == address(0)) revert ERC721InvalidOperator(operator);
        _operatorApprovals[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    /// @inheritdoc IERC721
    function isApprovedForAll(address owner, address operator) external view returns (bool) {
        return _operatorApprovals[owner][operator];
    }

    /// @inheritdoc IERC721
    function transferFrom(address from, address to, uint256 twinId) public {
        if (to == address(0)) revert ERC721InvalidReceiver(address(0));
        bytes32 slot = _twinSlot(twinId);
        uint256 word;
        assembly ("memory-safe") {
            word := sload(slot)
        }
        address owner = address(uint160(word));
        if (owner == address(0)) revert ERC721NonexistentToken(twinId);
        if (owner != from) revert ERC721IncorrectOwner(from, twinId, owner);
        if (!_isOwnerOrApproved(owner, msg.sender, twinId)) revert ERC721InsufficientApproval(msg.sender, twinId);
        if (_tokenApprovals[twinId] != address(0)) delete _tokenApprovals[twinId];
        // A new ownership period: every grant of the one that ends stays dead, also if the twin comes back. A
        // counter, not a timestamp, so that a round trip inside one block still ends them; at its limit the twin
        // stays with its owner rather than wrap around into a period whose grants would revive.
        uint256 period = word >> _TWIN_PERIOD_SHIFT;
        if (period == type(uint16).max) revert OwnershipPeriodsExhausted(twinId);
        unchecked {
            _accounts[from].balance -= 1;
            _accounts[to].balance += 1;
        }
        // owner and period in one SSTORE: field by field, the compiler reads and writes the slot once per field
        assembly ("memory-safe") {
            sstore(slot, or(and(word, _KEPT_BY_TRANSFER), or(to, shl(_TWIN_PERIOD_SHIFT, add(period, 1)))))
        }
        emit Transfer(from, to, twinId);
    }

    /// @inheritdoc IERC721
    function safeTransferFrom(address from, address to, uint256 twinId) external {
        safeTransferFrom(from, to, twinId, "");
    }

    /// @inheritdoc IERC721
    function safeTransferFrom(address from, address to, uint256 twinId, bytes memory data) public {
        transferFrom(from, to, twinId);
        ERC721Utils.checkOnERC721Received(msg.sender, from, to, twinId, data);
    }

    // ---------------------------------------------------------------- internal

    /// @dev Reverts unless `account` owns `twinId` or is approved for it; returns the owner and the ownership
    /// period.
    function _requireController(uint256 twinId, address account) internal view returns (address owner, uint256 period) {
        (owner, period) = _ownerAndPeriod(twinId);
        bool isOwner;
        // The owner acting is the common case, on the hot paths (grant, anchor): approvals are read only when
        // someone else acts.
        assembly ("memory-safe") {
            isOwner := and(eq(owner, account), iszero(iszero(owner)))
        }
        if (!isOwner) {
            if (owner == address(0)) revert TwinNotFound(twinId);
            if (!_isOwnerOrApproved(owner, account, twinId)) revert NotTwinController(twinId, account);
        }
    }

    /// @dev Reverts unless `account` is the owner of `twinId` itself: consent is given and withdrawn by the owner
    /// alone, so an ERC-721 approval (which lets an operator anchor and transfer) does not count here. Returns the
    /// owner and the ownership period.
    function _requireOwner(uint256 twinId, address account) internal view returns (address owner, uint256 period) {
        (owner, period) = _ownerAndPeriod(twinId);
        if (owner != account) {
            if (owner == address(0)) revert TwinNotFound(twinId);
            revert NotTwinOwner(twinId, account);
        }
    }

    function _isOwnerOrApproved(address owner, address account, uint256 twinId) internal view returns (bool) {
        return account == owner || _operatorApprovals[owner][account] || _tokenApprovals[twinId] == account;
    }

    /// @dev Owner (zero: no such twin) and ownership period of a twin, from one SLOAD in assembly: the compiler
    /// reads a packed struct's fields one SLOAD each.
    function _ownerAndPeriod(uint256 twinId) internal view returns (address owner, uint256 period) {
        bytes32 slot = _twinSlot(twinId);
        assembly ("memory-safe") {
            let word := sload(slot)
            owner := and(word, _OWNER_MASK)
            period := shr(_TWIN_PERIOD_SHIFT, word)
        }
    }

    /// @dev Where `_twins[twinId]` is stored.
    function _twinSlot(uint256 twinId) private view returns (bytes32 slot) {
        mapping(uint256 => Twin) storage twins = _twins;
        assembly ("memory-safe") {
            mstore(0x00, twinId)
            mstore(0x20, twins.slot)
            slot := keccak256(0x00, 0x40)
        }
    }

    /// @dev The record of a twin; the zero record (owner zero) when it does not exist.
    function _twin(uint256 twinId) internal view returns (Twin storage) {
        return _twins[twinId];
    }

    /// @dev Consumes the EIP-712 nonce of `owner` if it equals `nonce`.
    function _useCheckedNonce(address owner, uint256 nonce) internal returns (bool) {
        Account storage account = _accounts[owner];
        uint64 current = account.nonce;
        if (nonce != current) return false;
        unchecked {
            account.nonce = current + 1;
        }
        return true;
    }

    function _nonceOf(address owner) internal view returns (uint256) {
        return _accounts[owner].nonce;
    }

    /// @dev Reverts unless `parentId` reaches a root within MAX_DEPTH steps without passing `twinId`.
    function _requireShallowAncestry(uint256 twinId, uint256 parentId) private view {
        uint256 current = parentId;
        for (uint256 depth = 0; depth < MAX_DEPTH; ++depth) {
            if (current == twinId) revert ParentCycle(twinId, parentId);
            current = _twins[current].parent;
            if (current == 0) return;
        }
        revert HierarchyTooDeep(parentId, MAX_DEPTH);
    }

    /// @dev keccak256 of a DID string, zero for "", reverting on strings that cannot be a DID.
    function _optionalDidHash(string calldata did) internal pure returns (bytes32) {
        if (bytes(did).length == 0) return bytes32(0);
        return DidStrings.hash(did);
    }
}
