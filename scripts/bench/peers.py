"""Peer contracts, compiled here at our compiler settings and run on the benchmark's anvil beside the ledger.

scripts/bench/gas.py compares each ledger operation with what the contracts people would otherwise use spend on the
same job: OpenZeppelin's ERC721 and AccessControl (npm @openzeppelin/contracts, as the ledger imports it), the
Ethereum Attestation Service (vendored under contracts/peers/eas) and ethr-did-registry (npm). All of them are
compiled by scripts/compile.py's `compile_sources`, so with the same solc 0.8.28, optimizer runs and EVM version as
contracts/artifacts; nothing here is written to contracts/artifacts, so neither the node nor the SDK can load a peer.

Every peer operation runs once, in an order that puts its storage in the state its name says (a fresh slot where
ours writes a fresh slot, an existing one where ours updates one), with the same inputs as ours: the same 56-char
did:key, purpose code and expiry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_abi.packed import encode_packed
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk"))
sys.path.append(str(ROOT / "scripts"))  # for compile.py, after site-packages

from compile import collect_sources, compile_sources  # noqa: E402
from twinledger.chain.client import ChainClient, TxResult  # noqa: E402
from twinledger.chain.localchain import DEV_KEYS  # noqa: E402
from twinledger.chain.types import purpose_code  # noqa: E402

DEVICE_DID = "did:key:z6MkfXXpsrRGDxsSxf473MVmg9dtsDJuJKzMZztAA2jwWhws"  # 56 chars, a typical did:key
GRANTEE_DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
LEAVES_CID = "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"
# Peers that name grantees by address get one derived from the grantee's DID (20 non-zero bytes of calldata, as a
# real address would have).
GRANTEE_ADDRESS = to_checksum_address(keccak(text=GRANTEE_DID)[-20:])
DAY = 86_400


@dataclass(frozen=True)
class Peer:
    """A peer as the benchmark deploys it: its contracts (name → source unit) and what it runs on them."""

    label: str
    contracts: dict[str, str]
    run: Callable[[str, dict[str, Contract]], dict[str, TxResult]]


@dataclass(frozen=True)
class Compiled:
    abi: list[dict[str, Any]]
    bytecode: str


def compile_peers(peers: Iterable[Peer]) -> dict[str, Compiled]:
    """The peers' contracts, compiled in one solc run at scripts/compile.py's settings; by contract name."""
    wanted = {name: unit for peer in peers for name, unit in peer.contracts.items()}
    output, _ = compile_sources(collect_sources(sorted(set(wanted.values()))))
    compiled = {}
    for name, unit in wanted.items():
        data = output["contracts"][unit][name]
        compiled[name] = Compiled(data["abi"], "0x" + data["evm"]["bytecode"]["object"])
    return compiled


def measure_peers(rpc: str, peers: Iterable[Peer], compiled: dict[str, Compiled]) -> dict[str, TxResult]:
    """Deploy every peer from the first dev account and run its operations; results by peer operation name."""
    deployer = ChainClient(rpc, Account.from_key(DEV_KEYS[0]))
    done: dict[str, TxResult] = {}
    for peer in peers:
        deployed: dict[str, Contract] = {}
        for name in peer.contracts:
            args = [deployed["SchemaRegistry"].address] if name == "EAS" else []
            deployed[name] = _deploy(deployer, compiled[name], args)
        done.update(peer.run(rpc, deployed))
    return done


def _deploy(client: ChainClient, compiled: Compiled, args: list[Any]) -> Contract:
    factory = client.w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
    result = client.send(factory.constructor(*args))
    address = client.w3.eth.get_transaction_receipt(result.tx_hash)["contractAddress"]  # type: ignore[arg-type]
    return client.w3.eth.contract(address=address, abi=compiled.abi)


def _actors(rpc: str) -> tuple[LocalAccount, ChainClient, ChainClient]:
    """The twin owner's account and clients for it and for a relayer: the roles gas.py gives them."""
    owner, relayer = Account.from_key(DEV_KEYS[1]), Account.from_key(DEV_KEYS[2])
    return owner, ChainClient(rpc, owner), ChainClient(rpc, relayer)


# ---------------------------------------------------------------- OpenZeppelin ERC721 (vs register, transfer)

ERC721_MINT_NEW = "OpenZeppelin ERC721 mint (new owner)"
ERC721_MINT_EXISTING = "OpenZeppelin ERC721 mint (existing owner)"
ERC721_MINT_URI = "OpenZeppelin ERC721URIStorage mint + ipfs:// URI (new owner)"
ERC721_TRANSFER = "OpenZeppelin ERC721 safeTransferFrom (to a new holder)"


def _run_erc721(rpc: str, deployed: dict[str, Contract]) -> dict[str, TxResult]:
    nft = deployed["PeerERC721"].functions
    owner, as_owner, as_relayer = _actors(rpc)
    new_holder = Account.from_key(DEV_KEYS[5]).address
    return {
        ERC721_MINT_NEW: as_owner.send(nft.mint()),
        ERC721_MINT_EXISTING: as_owner.send(nft.mint()),
        ERC721_MINT_URI: as_relayer.send(nft.mintWithURI("ipfs://" + LEAVES_CID)),
        ERC721_TRANSFER: as_owner.send(nft.safeTransferFrom(owner.address, new_holder, 2)),
    }


# ---------------------------------------------------------------- OpenZeppelin AccessControl (vs grant, revoke)

ROLE_GRANT = "OpenZeppelin AccessControl grantRole"
ROLE_REVOKE = "OpenZeppelin AccessControl revokeRole"


def _run_access_control(rpc: str, deployed: dict[str, Contract]) -> dict[str, TxResult]:
    # The deployer is the admin of every role; it grants as the twin owner grants: a purpose to a grantee.
    roles = deployed["PeerAccessControl"].functions
    admin = ChainClient(rpc, Account.from_key(DEV_KEYS[0]))
    role = purpose_code("research")
    return {
        ROLE_GRANT: admin.send(roles.grantRole(role, GRANTEE_ADDRESS)),
        ROLE_REVOKE: admin.send(roles.revokeRole(role, GRANTEE_ADDRESS)),
    }


# ---------------------------------------------------------------- EAS (vs grant, grantBySig, revoke, anchors)

EAS_ATTEST_GRANT = "EAS attest (a grant's fields)"
EAS_REVOKE = "EAS revoke"
EAS_DELEGATED_FIRST = "EAS attestByDelegation (attester's first)"
EAS_DELEGATED_LATER = "EAS attestByDelegation (later)"
EAS_ATTEST_SNAPSHOT = "EAS attest (a snapshot's fields)"
EAS_ATTEST_BATCH = "EAS attest (a batch's fields)"

# A grant, a snapshot anchor and a batch anchor as EAS schemas: the fields our events carry, with the expiry in
# the attestation's own expirationTime.
GRANT_SCHEMA = "uint256 twinId,string grantee,bytes32 purpose,uint8 scopes"
SNAPSHOT_SCHEMA = "uint256 twinId,uint256 seq,bytes32 manifestDigest"
BATCH_SCHEMA = "bytes32 root,uint8 kind,uint32 count,string leavesCid"
NO_RESOLVER = "0x" + "00" * 20
ZERO = b"\0" * 32
ATTEST_TYPES = {
    "Attest": [
        {"name": "attester", "type": "address"},
        {"name": "schema", "type": "bytes32"},
        {"name": "recipient", "type": "address"},
        {"name": "expirationTime", "type": "uint64"},
        {"name": "revocable", "type": "bool"},
        {"name": "refUID", "type": "bytes32"},
        {"name": "data", "type": "bytes"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint64"},
    ]
}


def _run_eas(rpc: str, deployed: dict[str, Contract]) -> dict[str, TxResult]:
    registry, eas = deployed["SchemaRegistry"], deployed["EAS"]
    owner, as_owner, as_relayer = _actors(rpc)
    schemas = {}
    for schema in (GRANT_SCHEMA, SNAPSHOT_SCHEMA, BATCH_SCHEMA):
        as_owner.send(registry.functions.register(schema, NO_RESOLVER, True))
        schemas[schema] = keccak(encode_packed(["string", "address", "bool"], [schema, NO_RESOLVER, True]))
    now = as_owner.chain_time()

    def request(schema: str, types: list[str], values: list[Any], expiry: int = 0) -> tuple[Any, ...]:
        data = (NO_RESOLVER, expiry, True, ZERO, encode(types, values), 0)
        return (schemas[schema], data)

    def grant_request(twin_id: int, purpose: str) -> tuple[Any, ...]:
        return request(GRANT_SCHEMA, ["uint256", "string", "bytes32", "uint8"],
                       [twin_id, GRANTEE_DID, purpose_code(purpose), 1], now + DAY)  # fmt: skip

    def delegated(twin_id: int, purpose: str, nonce: int) -> tuple[Any, ...]:
        schema, (recipient, expiry, revocable, ref, data, value) = grant_request(twin_id, purpose)
        domain = {"name": "EAS", "version": "1.4.0", "chainId": as_owner.chain_id, "verifyingContract": eas.address}
        message = {
            "attester": owner.address, "schema": schema, "recipient": recipient, "expirationTime": expiry,
            "revocable": revocable, "refUID": ref, "data": data, "value": value, "nonce": nonce,
            "deadline": now + 3600,
        }  # fmt: skip
        signed = owner.sign_typed_data(domain, ATTEST_TYPES, message)
        signature = (signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))
        return (schema, (recipient, expiry, revocable, ref, data, value), signature, owner.address, now + 3600)

    done = {EAS_ATTEST_GRANT: as_owner.send(eas.functions.attest(grant_request(1, "research")))}
    uid = eas.events.Attested().process_receipt(as_owner.w3.eth.get_transaction_receipt(done[EAS_ATTEST_GRANT].tx_hash))
    done[EAS_REVOKE] = as_owner.send(eas.functions.revoke((schemas[GRANT_SCHEMA], (uid[0]["args"]["uid"], 0))))
    for label, purpose, nonce in ((EAS_DELEGATED_FIRST, "research", 0), (EAS_DELEGATED_LATER, "maintenance", 1)):
        done[label] = as_relayer.send(eas.functions.attestByDelegation(delegated(2, purpose, nonce)))
    snapshot = request(SNAPSHOT_SCHEMA, ["uint256", "uint256", "bytes32"], [1, 1, keccak(b"m1")])
    done[EAS_ATTEST_SNAPSHOT] = as_owner.send(eas.functions.attest(snapshot))
    batch = request(BATCH_SCHEMA, ["bytes32", "uint8", "uint32", "string"], [keccak(b"root"), 0, 10_000, LEAVES_CID])
    done[EAS_ATTEST_BATCH] = as_owner.send(eas.functions.attest(batch))
    return done


# ---------------------------------------------------------------- ethr-did-registry (vs bindDevice, grant, transfer)

ETHR_ATTRIBUTE_FIRST = "ethr-did-registry setAttribute (identity's first change)"
ETHR_ATTRIBUTE = "ethr-did-registry setAttribute (later)"
ETHR_DELEGATE = "ethr-did-registry addDelegate"
ETHR_REVOKE = "ethr-did-registry revokeDelegate"
ETHR_SIGNED_FIRST = "ethr-did-registry addDelegateSigned (owner's first)"
ETHR_SIGNED_LATER = "ethr-did-registry addDelegateSigned (later)"
ETHR_CHANGE_OWNER = "ethr-did-registry changeOwner (first)"

DEVICE_ATTRIBUTE = b"did/svc/DeviceDID".ljust(32, b"\0")
SIG_AUTH = b"sigAuth".ljust(32, b"\0")


def _run_ethr(rpc: str, deployed: dict[str, Contract]) -> dict[str, TxResult]:
    registry = deployed["EthereumDIDRegistry"]
    did = registry.functions
    owner, as_owner, as_relayer = _actors(rpc)
    identity = owner.address  # an identity starts owned by its own address

    def signed_delegate(delegate: str, nonce: int) -> Any:
        # The registry's own scheme (not EIP-712): keccak of 0x1900, registry, nonce, identity, "addDelegate", args.
        digest = keccak(
            encode_packed(
                ["bytes1", "bytes1", "address", "uint256", "address", "string", "bytes32", "address", "uint256"],
                [b"\x19", b"\0", registry.address, nonce, identity, "addDelegate", SIG_AUTH, delegate, DAY],
            )
        )
        sig = Account.unsafe_sign_hash(digest, owner.key)
        return did.addDelegateSigned(identity, sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"),
                                     SIG_AUTH, delegate, DAY)  # fmt: skip

    device = DEVICE_DID.encode()
    delegates = [to_checksum_address(keccak(text=f"{GRANTEE_DID}#{i}")[-20:]) for i in (1, 2)]
    return {
        ETHR_ATTRIBUTE_FIRST: as_owner.send(did.setAttribute(identity, DEVICE_ATTRIBUTE, device, DAY)),
        ETHR_ATTRIBUTE: as_owner.send(did.setAttribute(identity, DEVICE_ATTRIBUTE, device, DAY)),
        ETHR_DELEGATE: as_owner.send(did.addDelegate(identity, SIG_AUTH, GRANTEE_ADDRESS, DAY)),
        ETHR_REVOKE: as_owner.send(did.revokeDelegate(identity, SIG_AUTH, GRANTEE_ADDRESS)),
        ETHR_SIGNED_FIRST: as_relayer.send(signed_delegate(delegates[0], 0)),
        ETHR_SIGNED_LATER: as_relayer.send(signed_delegate(delegates[1], 1)),
        ETHR_CHANGE_OWNER: as_owner.send(did.changeOwner(identity, Account.from_key(DEV_KEYS[5]).address)),
    }


PEERS = [
    Peer("OpenZeppelin ERC721 5.4.0", {"PeerERC721": "contracts/peers/PeerERC721.sol"}, _run_erc721),
    Peer(
        "OpenZeppelin AccessControl 5.4.0",
        {"PeerAccessControl": "contracts/peers/PeerAccessControl.sol"},
        _run_access_control,
    ),
    Peer(
        "EAS 1.9.0",
        {"SchemaRegistry": "contracts/peers/eas/SchemaRegistry.sol", "EAS": "contracts/peers/eas/EAS.sol"},
        _run_eas,
    ),
    Peer(
        "ethr-did-registry 1.3.0",
        {"EthereumDIDRegistry": "ethr-did-registry/contracts/EthereumDIDRegistry.sol"},
        _run_ethr,
    ),
]
