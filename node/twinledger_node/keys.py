"""The node's own identity: an Ed25519 did:key that signs manifests and receipts and unseals data keys.

Created on first start and kept in the data directory with mode 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

from twinledger.errors import IntegrityError
from twinledger.identity import DidKey
from twinledger_node.private import private_dir


def load_or_create_node_key(path: Path) -> DidKey:
    path = Path(path)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise IntegrityError(f"the node key {path} is readable by others (mode {mode:o})", hint=f"chmod 600 {path}")
        return DidKey.from_jwk(path.read_text())
    key = DidKey.generate()
    private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key.to_jwk())
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return key
