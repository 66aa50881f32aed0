"""Each process of `node up` imports what its part needs, no more: start-up at any size is mostly imports.

The supervisor resolves settings (which canonicalise DIDs) and starts the children; the background process indexes
and anchors and serves no HTTP; the API processes serve HTTP on the embedded block store. A module-level import of
a web framework, an HTTP client or the Kubo client in a module they share puts its cost back on every start-up, so
this checks what a fresh interpreter has imported after each process's own imports (not time).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import json, sys
    for statement in json.loads(sys.argv[1]):
        exec(statement)
    watched = json.loads(sys.argv[2])
    print(json.dumps(sorted(m for m in watched if m in sys.modules)))
    """
)

SUPERVISOR = [
    "from twinledger_node.settings import resolve_settings",
    "from twinledger_node.workers import Supervisor",
    # canonicalising the configured DIDs is the settings' one use of the identity layer
    "resolve_settings(None, fl_task_creators=['did:pkh:eip155:31337:0x' + 'ab' * 20])",
]
BACKGROUND = [
    "import twinledger_node.workers, twinledger_node.logs",
    "from twinledger_node.settings import resolve_settings",
    "from twinledger_node.private import private_dir",
    "from twinledger_node.runtime import NodeRuntime",
]
API = [
    *BACKGROUND,
    "import uvicorn",
    "from twinledger_node.app import create_app",
]

CASES = {
    "supervisor": (SUPERVISOR, ["web3", "eth_account", "py_ecc", "fastapi", "uvicorn", "httpx", "numpy", "didkit"]),
    # psycopg: only a node given a PostgreSQL URL loads it
    "background": (
        BACKGROUND,
        ["fastapi", "starlette", "uvicorn", "httpx", "ipfshttpclient", "numpy", "typer", "psycopg"],
    ),
    "api": (API, ["httpx", "ipfshttpclient", "typer", "psycopg"]),
}


def imported(statements: list[str], watched: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(statements), json.dumps(watched)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("process", sorted(CASES))
def test_a_node_process_imports_only_what_its_part_needs(process: str):
    statements, unneeded = CASES[process]
    assert imported(statements, unneeded) == []


def test_the_probe_sees_an_import():
    # the check can fail: the same probe reports what a process does import
    assert imported(API, ["fastapi", "web3"]) == ["fastapi", "web3"]
