"""The node's own keys, created on first start and kept in the data directory with mode 0600:

- its identity, an Ed25519 did:key that signs manifests and receipts and unseals data keys;
- on a local development chain, when no key is configured, its chain account: a fresh secp256k1 key, never one of
  the chain's publicly known development keys (anyone could sign as those).
"""

from __future__ import annotations

import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from twinledger.errors import IntegrityError
from twinledger.identity import DidKey
from twinledger_node.private import private_dir


def _read_secret(path: Path) -> str | None:
    """The file's text, refusing a file that others can read; None when there is none yet."""
    if not path.exists():
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise IntegrityError(f"the node key {path} is readable by others (mode {mode:o})", hint=f"chmod 600 {path}")
    return path.read_text()


def _write_secret(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, mode 0600 from the start, in a directory only the node can enter."""
    private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def load_or_create_node_key(path: Path) -> DidKey:
    path = Path(path)
    existing = _read_secret(path)
    if existing is not None:
        return DidKey.from_jwk(existing)
    key = DidKey.generate()
    _write_secret(path, key.to_jwk())
    return key


def load_or_create_account_key(path: Path) -> LocalAccount:
    """The node's own chain account for a local development chain (hex private key in `path`)."""
    path = Path(path)
    existing = _read_secret(path)
    if existing is not None:
        return Account.from_key(existing.strip())
    account: LocalAccount = Account.create()
    _write_secret(path, "0x" + bytes(account.key).hex() + "\n")
    return account
