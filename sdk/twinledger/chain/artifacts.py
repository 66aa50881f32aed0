"""Compiled contract artifacts (ABI, bytecode, compiler) as committed in contracts/artifacts."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinledger import config
from twinledger.errors import NotFound

CONTRACTS = ("TwinLedger", "FederatedLedger")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    immutable_ranges: tuple[tuple[int, int], ...]  # (start, length) in the runtime code, filled at deploy time
    sha256: str  # of the artifact file: identifies exactly what was deployed


def artifacts_dir() -> Path:
    configured = os.environ.get("TWINLEDGER_ARTIFACTS")
    if configured:
        return Path(configured)
    root = config.repo_root()
    if root is None:
        raise NotFound(
            "contract artifacts not found",
            hint="run from a twinledger checkout or set TWINLEDGER_ARTIFACTS to its contracts/artifacts",
        )
    return root / "contracts" / "artifacts"


def runtime_code_matches(artifact: Artifact, code: bytes) -> bool:
    """Whether on-chain runtime `code` is the artifact's, ignoring the immutables set by the constructor."""
    expected = bytearray(bytes.fromhex(artifact.deployed_bytecode.removeprefix("0x")))
    actual = bytearray(code)
    if len(expected) != len(actual):
        return False
    for start, length in artifact.immutable_ranges:
        expected[start : start + length] = actual[start : start + length]
    return expected == actual


@functools.cache
def load(name: str) -> Artifact:
    path = artifacts_dir() / f"{name}.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no artifact for contract {name} at {path}", hint="run `make contracts`") from None
    data = json.loads(raw)
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler_version=data["compiler"]["version"],
        immutable_ranges=tuple(
            (int(r["start"]), int(r["length"])) for refs in data.get("immutableReferences", {}).values() for r in refs
        ),
        sha256=hashlib.sha256(raw).hexdigest(),
    )
