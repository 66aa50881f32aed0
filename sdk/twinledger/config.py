"""Where twinledger keeps its files, from the environment."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_KUBO_ADDR = "/ip4/127.0.0.1/tcp/5001/http"  # Kubo's RPC API, as its own default config has it


def home() -> Path:
    """`TWINLEDGER_HOME`, default `~/.twinledger`: wallets and per-user state."""
    return Path(os.environ.get("TWINLEDGER_HOME") or Path.home() / ".twinledger").expanduser()


def data_dir() -> Path:
    """`TWINLEDGER_DATA_DIR`, default `$TWINLEDGER_HOME/data`: chain state, node index, block store."""
    configured = os.environ.get("TWINLEDGER_DATA_DIR")
    return Path(configured).expanduser() if configured else home() / "data"


def repo_root() -> Path | None:
    """The source checkout this package runs from, if it runs from one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "contracts" / "artifacts").is_dir() else None
