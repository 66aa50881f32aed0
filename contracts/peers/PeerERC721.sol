// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";

/// @title PeerERC721
/// @notice The gas baseline for twin registration and transfer (scripts/bench/gas.py): OpenZeppelin's ERC721 with
/// the one thing it lacks to be deployable, a mint, shaped like `TwinRegistry.register` (open to anyone, to the
/// caller, ids from a counter that starts at 1). Not part of the ledger; never deployed by the node.
contract PeerERC721 is ERC721URIStorage {
    uint256 private _nextTokenId = 1;

    constructor() ERC721("peer", "PEER") {}

    /// @notice Mints the next token to the caller.
    function mint() external returns (uint256 tokenId) {
        tokenId = _nextTokenId++;
        _mint(msg.sender, tokenId);
    }

    /// @notice Mints the next token to the caller with `uri` stored as its token URI (ERC721URIStorage).
    function mintWithURI(string calldata uri) external returns (uint256 tokenId) {
        tokenId = _nextTokenId++;
        _mint(msg.sender, tokenId);
        _setTokenURI(tokenId, uri);
    }
}
