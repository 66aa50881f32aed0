"""The contracts pass Slither (no unexplained medium or high finding) and the in-EVM Foundry fuzz suite of
contracts/test, both run as `make test` runs them; and the exclusion logic does what scripts/slither.py says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contracts.helpers import reverts
from twinledger.chain.client import ChainClient

ROOT = Path(__file__).resolve().parents[2]
FORGE = ROOT / "node_modules" / ".bin" / "forge"


def _slither_script():
    spec = importlib.util.spec_from_file_location("twinledger_slither", ROOT / "scripts" / "slither.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)


def test_slither_reports_no_unexplained_medium_or_high_finding():
    assert (ROOT / ".venv-slither" / "bin" / "slither").exists(), "run `make install-slither` (part of `make test`)"
    done = _run([sys.executable, "scripts/slither.py"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("slither: 0 high,"), done.stdout


def test_forge_fuzz_suite_passes():
    assert FORGE.exists(), "run `make install` (npm ci installs @foundry-rs/forge-linux-amd64)"
    done = _run([str(FORGE), "test", "--color", "never"])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 failed" in done.stdout and "[FAIL" not in done.stdout, done.stdout[-6000:]
    for prop in ("grantSlotRoundTrip", "grantEventEqualsEmit", "grantBatchMixedDidLengths", "invalidGrantReverts"):
        assert f"[PASS] testFuzz_{prop}" in done.stdout, done.stdout[-6000:]  # each property ran


@pytest.fixture(scope="module")
def slither():
    return _slither_script()


def test_exclusions_explain_only_their_own_check_and_place_and_go_stale(slither):
    exclusion = slither.Exclusion("unused-return", "ConsentRegistry._useSignature", "reviewed")
    explained = slither.Finding("unused-return", "Medium", "ConsentRegistry._useSignature", "…")
    elsewhere = slither.Finding("unused-return", "Medium", "ConsentRegistry.grantBySig", "…")
    other_check = slither.Finding("reentrancy-no-eth", "Medium", "ConsentRegistry._useSignature", "…")
    low = slither.Finding("timestamp", "Low", "ConsentRegistry._covers", "…")
    unexplained, stale = slither.judge([explained, elsewhere, other_check, low], [exclusion])
    assert (unexplained, stale) == ([elsewhere, other_check], [])
    assert slither.judge([low], [exclusion]) == ([], [exclusion])  # the finding is gone: the entry must go too


def test_every_reviewed_exclusion_has_a_reason(slither):
    exclusions = slither.load_exclusions()
    assert exclusions and all(len(e.reason) > 40 for e in exclusions)


def test_federated_ledger_refuses_a_zero_ledger(anvil, accounts, fresh_state):
    """Slither's one real finding (missing-zero-check, low): a FederatedLedger wired to no ledger would revert
    every commit for its whole life, so the constructor refuses it."""
    client = ChainClient(anvil, accounts[0])
    reverts("ZeroLedger", lambda: client.deploy("FederatedLedger", ["0x" + "00" * 20]))
