"""`make demo`'s script runs the whole lifecycle on a fresh data directory and ends with verify passing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twinledger.chain.localchain import LocalChain

REPO = Path(__file__).resolve().parents[2]


def test_demo_tells_the_whole_story(tmp_path):
    env = {**os.environ, "TWINLEDGER_DEMO_DIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("TWINLEDGER_HOME", None)
    try:
        run = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "demo.py")], env=env, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
    finally:
        LocalChain(tmp_path / "chain").down()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for expected in (
        "relayed: True",  # gasless consent through the relayer
        '{"temperature": 71.5, "rpm": 1480}',  # the researcher's read
        "3 updates included",  # the federated round over three twins
        "fl verify: passed",
        "refused: the grant on twin",  # the read after the revocation
        "federated-use",  # the audit timeline
        "denial",  # the refused read, in the owner's audit timeline
        # offline verify, nothing pending, the refused read's denial record included
        "verified: 1 snapshots, 1 access receipts, 1 denial records (refused reads)",
    ):
        assert expected in out, f"missing {expected!r} in the demo's output:\n{out[-3000:]}"
