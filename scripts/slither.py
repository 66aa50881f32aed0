"""Static analysis of contracts/src with Slither; fails on any finding of medium or high impact not explained in
contracts/slither-exclusions.toml, and on an exclusion that no longer matches anything.

    python scripts/slither.py            # the report; exit 1 on an unexplained medium/high finding
    python scripts/slither.py --json F   # also keep Slither's own JSON output in F

Slither runs from its own virtualenv (`make install-slither`: it needs web3<8, the main lock has 8) on the solc-js
of package.json, through scripts/solcjs-wrapper, with the settings of scripts/compile.py: crytic-compile's
standard-JSON platform is given an input that names every source of contracts/src by `urls`. OpenZeppelin is
analysed as a dependency but its own findings are filtered out (`--filter-paths node_modules`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SLITHER = ROOT / ".venv-slither" / "bin" / "slither"
EXCLUSIONS = ROOT / "contracts" / "slither-exclusions.toml"
WRAPPER = ROOT / "scripts" / "solcjs-wrapper"
FAILING_IMPACTS = ("High", "Medium")


def _compile_settings() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("twinledger_compile", ROOT / "scripts" / "compile.py")
    if spec is None or spec.loader is None:
        sys.exit("cannot load scripts/compile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {k: v for k, v in module.SETTINGS.items() if k != "outputSelection"}  # crytic-compile picks its own


def standard_json_input() -> dict[str, Any]:
    """Every contract source by path (solc-js reads them, and OpenZeppelin's, below the repository root)."""
    sources = {
        path.relative_to(ROOT).as_posix(): {"urls": [path.relative_to(ROOT).as_posix()]}
        for path in sorted((ROOT / "contracts" / "src").rglob("*.sol"))
    }
    settings = {**_compile_settings(), "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"]}
    return {"language": "Solidity", "sources": sources, "settings": settings}


@dataclass(frozen=True)
class Finding:
    check: str
    impact: str
    where: str  # Contract.function (or Contract.variable) of the first element, as Slither names it
    description: str

    @classmethod
    def from_json(cls, result: dict[str, Any]) -> Finding:
        description = str(result["description"]).strip()
        return cls(result["check"], result["impact"], description.split(" ", 1)[0].split("(", 1)[0], description)


@dataclass(frozen=True)
class Exclusion:
    check: str
    where: str
    reason: str

    def explains(self, finding: Finding) -> bool:
        return finding.check == self.check and finding.where == self.where


def load_exclusions(path: Path = EXCLUSIONS) -> list[Exclusion]:
    entries = tomllib.loads(path.read_text()).get("exclusion", [])
    exclusions = []
    for entry in entries:
        missing = {"check", "where", "reason"} - entry.keys()
        if missing or not str(entry.get("reason", "")).strip():
            sys.exit(f"{path.name}: every [[exclusion]] needs check, where and a reason (got {entry})")
        exclusions.append(Exclusion(entry["check"], entry["where"], entry["reason"]))
    return exclusions


def judge(findings: list[Finding], exclusions: list[Exclusion]) -> tuple[list[Finding], list[Exclusion]]:
    """(medium/high findings no exclusion explains, exclusions that explain no finding)."""
    unexplained = [f for f in findings if f.impact in FAILING_IMPACTS and not any(e.explains(f) for e in exclusions)]
    stale = [e for e in exclusions if not any(e.explains(f) for f in findings)]
    return unexplained, stale


def run_slither(json_out: Path) -> list[Finding]:
    if not SLITHER.exists():
        sys.exit(f"Slither is not installed at {SLITHER}: run `make install-slither`")
    # The input must lie inside the project: crytic-compile walks up from it to the foundry.toml it also finds from
    # the working directory, and asserts when the two disagree (an input in /tmp, as on a clean clone before forge
    # has made build/, crashed it).
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        target = Path(tmp) / "slither-input.json"
        target.write_text(json.dumps(standard_json_input(), indent=1))
        # crytic-compile looks for a framework above the target and, finding foundry.toml, asks `forge config`:
        # the npm forge answers it (same remappings and settings as the input).
        env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(
            [str(SLITHER), str(target), "--compile-force-framework", "solc-json", "--solc", str(WRAPPER),
             "--filter-paths", "node_modules", "--json", str(json_out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
    if not json_out.exists():
        sys.exit(f"Slither produced no report (exit {done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(json_out.read_text())
    if not report.get("success"):
        sys.exit(f"Slither failed: {report.get('error')}\n{done.stderr[-4000:]}")
    return [Finding.from_json(r) for r in report.get("results", {}).get("detectors", [])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="keep Slither's JSON report here")
    args = parser.parse_args()
    exclusions = load_exclusions()
    with tempfile.TemporaryDirectory() as tmp:
        findings = run_slither(args.json or Path(tmp) / "slither.json")
    unexplained, stale = judge(findings, exclusions)
    counts = {
        impact: sum(f.impact == impact for f in findings) for impact in ("High", "Medium", "Low", "Informational")
    }
    print("slither: " + ", ".join(f"{n} {impact.lower()}" for impact, n in counts.items()))
    for finding in findings:
        if finding.impact in FAILING_IMPACTS:
            explained = next((e for e in exclusions if e.explains(finding)), None)
            note = f"explained: {explained.reason}" if explained else "UNEXPLAINED"
            print(f"  [{finding.impact}] {finding.check} {finding.where}: {note}")
    for finding in unexplained:
        print(f"\n{finding.impact} {finding.check}:\n{finding.description}")
    for exclusion in stale:
        print(
            f"\nstale exclusion ({exclusion.check} {exclusion.where}) matches no finding: remove it from {EXCLUSIONS.name}"
        )
    if unexplained:
        print(
            f"\n{len(unexplained)} medium/high finding(s): fix them, or explain them in {EXCLUSIONS.name} after review"
        )
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main())
