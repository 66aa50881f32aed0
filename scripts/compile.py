"""Compile contracts/src into contracts/artifacts, or check that the committed artifacts are current.

    python scripts/compile.py            # write artifacts
    python scripts/compile.py --check    # exit 1 when a fresh compile differs from the committed artifacts

py-solc-x drives the compiler: a native solc of the pinned version when one is installed, otherwise the solc-js
from npm behind scripts/solcjs-wrapper. Both produce the same bytecode (the metadata records the version without
the platform suffix), so artifacts do not depend on which one ran.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

import solcx
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "contracts" / "src"
ARTIFACTS = ROOT / "contracts" / "artifacts"
NODE_MODULES = ROOT / "node_modules"
WRAPPER = ROOT / "scripts" / "solcjs-wrapper"

SETTINGS: dict = {
    "optimizer": {"enabled": True, "runs": 10000},
    "viaIR": False,
    "evmVersion": "cancun",
    "outputSelection": {
        "*": {
            "*": [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.deployedBytecode.immutableReferences",
                "storageLayout",
                "devdoc",
            ]
        }
    },
}
IMPORT_RE = re.compile(r'^\s*import\s+(?:[^"\']*\s+from\s+)?["\']([^"\']+)["\']\s*;', re.MULTILINE)


def pinned_version() -> Version:
    package = json.loads((ROOT / "package.json").read_text())
    return Version(package["dependencies"]["solc"])


def find_compiler(version: Version) -> Path:
    """A native solc of exactly `version` if installed (PATH or py-solc-x's store), else the solc-js wrapper."""
    candidates = [shutil.which("solc")]
    candidates += [str(solcx.get_executable(v)) for v in solcx.get_installed_solc_versions() if v == version]
    for candidate in filter(None, candidates):
        try:
            if solcx.wrapper.get_solc_version(candidate) == version:
                return Path(candidate)
        except (OSError, subprocess.SubprocessError, solcx.exceptions.SolcError):
            continue
    if not (NODE_MODULES / ".bin" / "solcjs").exists():
        sys.exit("solc-js is not installed: run `make install` (npm ci) first")
    return WRAPPER


def project_units() -> list[str]:
    """Every source file of the ledger, as a source unit name."""
    return [f"contracts/src/{p.relative_to(SOURCES).as_posix()}" for p in sorted(SOURCES.rglob("*.sol"))]


def collect_sources(units: list[str]) -> dict[str, dict[str, str]]:
    """The given source units and, transitively, every file they import (from node_modules for packages)."""
    pending = list(units)
    sources: dict[str, dict[str, str]] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = ROOT / unit if unit.startswith("contracts/") else NODE_MODULES / unit
        if not path.is_file():
            sys.exit(f"cannot resolve import {unit!r}: expected {path} (is the npm package installed?)")
        text = path.read_text()
        sources[unit] = {"content": text}
        for imported in IMPORT_RE.findall(text):
            if imported.startswith("."):
                imported = posixpath.normpath(posixpath.join(posixpath.dirname(unit), imported))
            pending.append(imported)
    return dict(sorted(sources.items()))


def compile_sources(sources: dict[str, dict[str, str]]) -> tuple[dict, Version]:
    """solc's standard-JSON output for `sources` at SETTINGS with the pinned compiler, and that compiler's version.

    Exits with solc's messages on a compile error; prints its warnings.
    """
    compiler = find_compiler(pinned_version())
    output = solcx.compile_standard(
        {"language": "Solidity", "sources": sources, "settings": SETTINGS},
        solc_binary=compiler,
        allow_empty=True,
    )
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        sys.exit("\n".join(e["formattedMessage"] for e in errors))
    warnings = [e for e in output.get("errors", []) if e["severity"] == "warning"]
    for warning in warnings:
        print(warning["formattedMessage"], file=sys.stderr)
    return output, solcx.wrapper.get_solc_version(compiler, with_commit_hash=True)


def compile_artifacts() -> dict[str, str]:
    """Compile and return {file name: JSON text} for every deployable contract of this project."""
    sources = collect_sources(project_units())
    output, long_version = compile_sources(sources)
    settings = {k: v for k, v in SETTINGS.items() if k != "outputSelection"}
    artifacts: dict[str, str] = {}
    for unit, contracts in output["contracts"].items():
        if not unit.startswith("contracts/src/"):
            continue
        for name, data in contracts.items():
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:  # interfaces and abstract contracts
                continue
            if not any(entry["type"] == "function" for entry in data["abi"]):
                continue  # a library of internal functions: compiled into the contracts that use it

            artifact = {
                "contractName": name,
                "sourceName": unit,
                "sourceHash": "0x" + hashlib.sha256(sources[unit]["content"].encode()).hexdigest(),
                "compiler": {"version": str(long_version).split("+")[0] + "+" + _commit(long_version)},
                "settings": settings,
                "abi": data["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "immutableReferences": data["evm"]["deployedBytecode"].get("immutableReferences", {}),
                "storageLayout": data["storageLayout"],
                "devdoc": data["devdoc"],
            }
            artifacts[f"{name}.json"] = json.dumps(artifact, indent=2, sort_keys=True) + "\n"
    return artifacts


def _commit(version: Version) -> str:
    # "0.8.28+commit.7893614a.Emscripten.clang" -> "commit.7893614a": the platform suffix is not part of the
    # compiler's identity and would make artifacts depend on native vs solc-js.
    local = version.local or ""
    parts = local.split(".")
    return ".".join(parts[:2]) if parts[:1] == ["commit"] else local


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when committed artifacts are stale")
    args = parser.parse_args()
    fresh = compile_artifacts()
    current = {p.name: p.read_text() for p in ARTIFACTS.glob("*.json")}
    if args.check:
        stale = sorted(n for n in fresh.keys() | current.keys() if fresh.get(n) != current.get(n))
        if stale:
            print("contract artifacts are stale (run `make contracts` and commit): " + ", ".join(stale))
            return 1
        print(f"contract artifacts are current ({len(fresh)} contracts)")
        return 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in current.keys() - fresh.keys():
        (ARTIFACTS / name).unlink()
    for name, text in fresh.items():
        (ARTIFACTS / name).write_text(text)
    print(f"wrote {len(fresh)} artifacts to {ARTIFACTS.relative_to(ROOT)}: {', '.join(sorted(fresh))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
