// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title ContractWallet
/// @notice A minimal smart-contract wallet for tests and demos: it owns twins, forwards calls from its signer, and
/// accepts ERC-1271 signatures made by that signer.
contract ContractWallet is IERC1271, IERC721Receiver {
    /// @notice The EOA whose signatures this wallet accepts.
    address public immutable signer;

    /// @dev Only the signer may make the wallet call out.
    error NotSigner(address caller);

    /// @param walletSigner the EOA that controls this wallet.
    constructor(address walletSigner) {
        signer = walletSigner;
    }

    /// @notice Calls `target` with `data` as this wallet.
    function execute(address target, bytes calldata data) external returns (bytes memory) {
        if (msg.sender != signer) revert NotSigner(msg.sender);
        (bool ok, bytes memory result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
        return result;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        return err == ECDSA.RecoverError.NoError && recovered == signer ? this.isValidSignature.selector : bytes4(0);
    }

    /// @inheritdoc IERC721Receiver
    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return this.onERC721Received.selector;
    }
}
