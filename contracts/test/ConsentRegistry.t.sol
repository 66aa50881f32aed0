// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TwinLedger} from "../src/TwinLedger.sol";
import {IConsentRegistry} from "../src/interfaces/IConsentRegistry.sol";
import {DidStrings} from "../src/identity/DidStrings.sol";
import {Vm} from "./Vm.sol";

/// @notice What ConsentRegistry's assembly must equal, written in plain Solidity: `emit` for the Granted event.
contract ReferenceEmitter {
    function emitGranted(uint256 twinId, string calldata did, bytes32 purpose, uint8 scopes, uint64 expiry)
        external
    {
        emit IConsentRegistry.Granted(twinId, keccak256(bytes(did)), purpose, scopes, expiry, did);
    }
}

/// @notice In-EVM fuzzing of ConsentRegistry's assembly paths (grant slot packing, the Granted event's bytes, the
/// DID copies of grantBatch, the invalid-grant revert) against plain-Solidity references.
contract ConsentRegistryFuzzTest {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint8 private constant ALL_SCOPES = 0x1f;
    uint8 private constant RIGHTS = 0x17;
    uint256 private constant MAX_BATCH = 6;

    TwinLedger private ledger;
    ReferenceEmitter private emitter;
    address private immutable holder = address(0xB0B);
    uint256 private twin;

    function setUp() public {
        ledger = new TwinLedger();
        emitter = new ReferenceEmitter();
        twin = ledger.register(1, 0, bytes32(0), "");
        vm.warp(1_750_000_000);
    }

    // ------------------------------------------------------------ references

    /// @dev A DID of `length` characters (at least 8): "did:key:" then characters picked by `seed`.
    function _did(uint256 length, uint256 seed) internal pure returns (string memory) {
        bytes memory did = new bytes(length);
        bytes memory prefix = "did:key:";
        for (uint256 i = 0; i < length; ++i) {
            did[i] = i < prefix.length ? prefix[i] : bytes1(uint8(0x21 + uint256(keccak256(abi.encode(seed, i))) % 94));
        }
        return string(did);
    }

    /// @dev The grant slot as the documented layout packs it.
    function _packed(address grantor, uint8 scopes, uint64 expiry, uint256 period, uint256 grantedAt)
        internal
        pure
        returns (uint256)
    {
        return uint256(uint160(grantor)) | uint256(scopes) << 160 | uint256(expiry) << 168 | period << 208
            | uint256(uint32(grantedAt)) << 224;
    }

    function _slot(uint256 twinId, string memory did, bytes32 purpose) internal pure returns (bytes32) {
        return keccak256(abi.encode(twinId, keccak256(bytes(did)), purpose));
    }

    function _validScopes(uint8 scopes) internal pure returns (uint8) {
        scopes &= ALL_SCOPES;
        return scopes & RIGHTS == 0 ? scopes | 0x01 : scopes;
    }

    function _validExpiry(uint64 expiry) internal view returns (uint64) {
        return uint64(block.timestamp + 1 + uint256(expiry) % (type(uint40).max - block.timestamp));
    }

    function _validPurpose(bytes32 purpose) internal pure returns (bytes32) {
        return purpose == bytes32(0) ? bytes32(uint256(1)) : purpose;
    }

    /// @dev The error a grant must revert with, from IConsentRegistry's documented checks in order; empty: valid.
    function _expectedError(string memory did, bytes32 purpose, uint8 scopes, uint64 expiry)
        internal
        view
        returns (bytes memory)
    {
        bytes memory d = bytes(did);
        if (d.length < 8 || d[0] != "d" || d[1] != "i" || d[2] != "d" || d[3] != ":") {
            return abi.encodeWithSelector(DidStrings.InvalidDid.selector, did);
        }
        if (scopes & ~ALL_SCOPES != 0 || scopes & RIGHTS == 0) {
            return abi.encodeWithSelector(IConsentRegistry.InvalidScopes.selector, scopes);
        }
        if (expiry <= block.timestamp || expiry > type(uint40).max) {
            return abi.encodeWithSelector(IConsentRegistry.InvalidExpiry.selector, expiry, block.timestamp);
        }
        if (purpose == bytes32(0)) return abi.encodeWithSelector(IConsentRegistry.InvalidPurpose.selector);
        return "";
    }

    /// @dev Moves the twin out and back `trips` times: each leg is an ownership period.
    function _roundTrips(uint256 trips) internal returns (uint256 period) {
        (,,,, uint256 before) = ledger.twinOf(twin);
        for (uint256 i = 0; i < trips; ++i) {
            ledger.transferFrom(address(this), holder, twin);
            vm.prank(holder);
            ledger.transferFrom(holder, address(this), twin);
        }
        (,,,, period) = ledger.twinOf(twin);
        require(period == before + 2 * trips, "one period per transfer");
    }

    function _assertGrantOf(bytes32 didHash, bytes32 purpose, uint8 scopes, uint64 expiry, uint256 period)
        internal
        view
    {
        (address grantor, uint8 s, uint64 e, uint64 at, uint256 p) = ledger.grantOf(twin, didHash, purpose);
        require(grantor == address(this) && s == scopes && e == expiry, "grantOf fields");
        require(at == uint32(block.timestamp) && p == period, "grantOf period and time");
    }

    function _assertSameLog(Vm.Log memory got, Vm.Log memory want) internal view {
        require(got.emitter == address(ledger), "emitted by the ledger");
        require(got.topics.length == want.topics.length, "topic count");
        for (uint256 i = 0; i < got.topics.length; ++i) {
            require(got.topics[i] == want.topics[i], "topic");
        }
        require(keccak256(got.data) == keccak256(want.data), "event data differs from emit's");
        require(got.data.length == want.data.length, "event data length");
    }

    // ------------------------------------------------------------ properties

    /// @notice The slot _grant writes in assembly reads back, through vm.load and grantOf, as the layout says.
    function testFuzz_grantSlotRoundTrip(
        uint8 scopes,
        uint64 expiry,
        bytes32 purpose,
        uint8 length,
        uint256 seed,
        uint8 trips,
        uint32 elapsed
    ) public {
        uint256 period = _roundTrips(trips % 4);
        vm.warp(block.timestamp + elapsed);
        scopes = _validScopes(scopes);
        expiry = _validExpiry(expiry);
        purpose = _validPurpose(purpose);
        string memory did = _did(8 + uint256(length), seed);

        ledger.grant(twin, did, purpose, scopes, expiry);

        uint256 word = uint256(vm.load(address(ledger), _slot(twin, did, purpose)));
        require(word == _packed(address(this), scopes, expiry, period, block.timestamp), "packed slot");
        _assertGrantOf(keccak256(bytes(did)), purpose, scopes, expiry, period);
        require(ledger.isAuthorized(twin, keccak256(bytes(did)), purpose, scopes & RIGHTS), "live in its period");
        _roundTrips(1);
        require(!ledger.isAuthorized(twin, keccak256(bytes(did)), purpose, scopes & RIGHTS), "ends with it");
    }

    /// @notice The Granted event built in assembly has exactly the topics and data bytes of Solidity's `emit`.
    function testFuzz_grantEventEqualsEmit(uint8 scopes, uint64 expiry, bytes32 purpose, uint8 length, uint256 seed)
        public
    {
        scopes = _validScopes(scopes);
        expiry = _validExpiry(expiry);
        purpose = _validPurpose(purpose);
        string memory did = _did(8 + uint256(length), seed);

        vm.recordLogs();
        ledger.grant(twin, did, purpose, scopes, expiry);
        emitter.emitGranted(twin, did, purpose, scopes, expiry);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        require(logs.length == 2, "one event each");
        logs[1].emitter = address(ledger);
        _assertSameLog(logs[0], logs[1]);
    }

    /// @notice grantBatch with DIDs of mixed lengths (below, at and across 32-byte words): every slot and event
    /// equals the reference, so no DID copy leaks into the next one's memory.
    function testFuzz_grantBatchMixedDidLengths(uint8[MAX_BATCH] memory lengths, uint8 count, uint256 seed) public {
        uint256 n = 1 + uint256(count) % MAX_BATCH;
        IConsentRegistry.GrantRequest[] memory requests = new IConsentRegistry.GrantRequest[](n);
        for (uint256 i = 0; i < n; ++i) {
            requests[i] = IConsentRegistry.GrantRequest({
                twinId: twin,
                did: _did(8 + uint256(lengths[i]) % 120, seed ^ i),
                purpose: bytes32(i + 1), // distinct keys: each request keeps its own slot
                scopes: _validScopes(uint8(seed >> (8 * i))),
                expiry: _validExpiry(uint64(seed >> (16 * i)))
            });
        }
        vm.recordLogs();
        ledger.grantBatch(requests);
        for (uint256 i = 0; i < n; ++i) {
            IConsentRegistry.GrantRequest memory r = requests[i];
            emitter.emitGranted(r.twinId, r.did, r.purpose, r.scopes, r.expiry);
        }
        Vm.Log[] memory logs = vm.getRecordedLogs();
        require(logs.length == 2 * n, "one event per request, each");
        for (uint256 i = 0; i < n; ++i) {
            IConsentRegistry.GrantRequest memory r = requests[i];
            logs[n + i].emitter = address(ledger);
            _assertSameLog(logs[i], logs[n + i]);
            uint256 word = uint256(vm.load(address(ledger), _slot(twin, r.did, r.purpose)));
            require(word == _packed(address(this), r.scopes, r.expiry, 0, block.timestamp), "packed slot");
        }
    }

    /// @notice Any invalid grant reverts with the error its first failing check names, and writes nothing; a
    /// valid one is written.
    function testFuzz_invalidGrantRevertsWithItsError(
        uint8 scopes,
        uint64 expiry,
        bytes32 purpose,
        uint8 length,
        uint256 seed,
        bool brokenPrefix
    ) public {
        string memory did = _did(uint256(length) % 40, seed);
        if (brokenPrefix && bytes(did).length > 0) bytes(did)[0] = "D";
        if (seed % 3 == 0) expiry = uint64(block.timestamp + seed % 1000); // near now, also the past
        bytes memory expected = _expectedError(did, purpose, scopes, expiry);
        bytes32 slot = _slot(twin, did, purpose);
        if (expected.length == 0) {
            ledger.grant(twin, did, purpose, scopes, expiry);
            require(vm.load(address(ledger), slot) != bytes32(0), "a valid grant is written");
            return;
        }
        vm.expectRevert(expected);
        ledger.grant(twin, did, purpose, scopes, expiry);
        require(vm.load(address(ledger), slot) == bytes32(0), "nothing written");
    }

    /// @notice revoke clears the slot the assembly wrote.
    function testFuzz_revokeClearsTheSlot(bytes32 purpose, uint8 length, uint256 seed) public {
        purpose = _validPurpose(purpose);
        string memory did = _did(8 + uint256(length), seed);
        ledger.grant(twin, did, purpose, 0x01, uint64(block.timestamp + 1));
        ledger.revoke(twin, keccak256(bytes(did)), purpose);
        require(vm.load(address(ledger), _slot(twin, did, purpose)) == bytes32(0), "cleared");
    }
}
