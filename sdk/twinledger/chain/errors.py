"""Contract reverts as readable Python exceptions: `GrantNotFound(twinId=7, didHash=0x.., purpose=0x..)`."""

from __future__ import annotations

import functools
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from twinledger.chain import artifacts
from twinledger.errors import TwinledgerError

# What the user can do about each revert; the revert itself says what was wrong.
HINTS: dict[str, str] = {
    "NotTwinOwner": "only the twin's owner gives or withdraws consent: use the owner's key (approvals do not count)",
    "NotTwinController": "use the key of the twin's owner (a relayed update needs the owner's signed commit)",
    "TwinNotFound": "check the twin id (`twinledger twin list`)",
    "ERC721NonexistentToken": "check the twin id (`twinledger twin list`)",
    "InvalidExpiry": "give an expiry in the future, e.g. --expires 30d",
    "InvalidScopes": "use read, write, train or audit (inherit only together with one of them)",
    "InvalidPurpose": "name a purpose, e.g. --purpose research",
    "InvalidDid": "pass a canonical DID such as did:key:z6Mk... or did:pkh:eip155:1:0x...",
    "GrantNotFound": "list the twin's grants with `twinledger consent list TWIN`",
    "ExpiredSignature": "ask the owner to sign again with a later deadline",
    "InvalidSigner": "the request must be signed by the twin's current owner",
    "InvalidAccountNonce": "the signed request was used already or is out of order; sign a new one",
    "SnapshotSeqNotIncreasing": "anchor a sequence number above the twin's last anchored one",
    "BatchAlreadyAnchored": "this Merkle root is anchored already; nothing to do",
    "ParentCycle": "a twin cannot be linked under one of its own descendants",
    "HierarchyTooDeep": "link under a twin closer to the root of its hierarchy",
    "RoundNotOpen": "commit to or checkpoint the task's open round",
    "InvalidCommitSigner": "the twin's owner signs the commit (EIP-712 Commit) with the key that owns the twin",
    "TrainingNotAuthorized": "the twin's owner must grant TRAIN to the aggregator's DID for the purpose",
    "NotAggregator": "only the task's aggregator account may do this",
    "TaskIsClosed": "the task is closed; open a new one",
}


class ContractRevert(TwinledgerError):
    """A contract call reverted with the custom error `error` and its named `args`."""

    exit_code = 7

    def __init__(self, error: str, args: dict[str, Any]) -> None:
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in args.items())
        super().__init__(f"{error}({rendered})", hint=HINTS.get(error))
        self.error = error
        self.args_by_name = args


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


@functools.cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table: dict[bytes, tuple[str, list[str], list[str]]] = {
        function_signature_to_4byte_selector("Error(string)"): ("Error", ["string"], ["message"]),
        function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["uint256"], ["code"]),
    }
    for name in (*artifacts.CONTRACTS, "ContractWallet"):
        for item in artifacts.load(name).abi:
            if item["type"] != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], types, [i["name"] for i in item["inputs"]])
    return table


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


def decode_revert(data: bytes | str) -> ContractRevert:
    """Decode revert data into a ContractRevert naming the custom error and its arguments."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
    entry = _error_table().get(raw[:4])
    if entry is None:
        return ContractRevert("UnknownRevert", {"data": raw})
    name, types, names = entry
    decoded = abi_decode(types, raw[4:])
    values = [to_checksum_address(v) if t == "address" else v for t, v in zip(types, decoded, strict=True)]
    return ContractRevert(name, dict(zip(names, values, strict=True)))


def translate(error: Exception) -> Exception:
    """The readable form of an exception web3 raised for a reverted call, or the exception itself."""
    if isinstance(error, ContractCustomError | ContractLogicError):
        data = error.data
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return decode_revert(data)
        return ContractRevert("Reverted", {"message": error.message or str(error)})
    if isinstance(error, Web3RPCError):
        message = error.rpc_response.get("error", {}) if error.rpc_response else {}
        data = message.get("data") if isinstance(message, dict) else None
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return decode_revert(data)
    return error
