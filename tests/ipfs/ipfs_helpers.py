"""Test helpers: the Kubo vectors (tests/ipfs/data, required, never skipped), generator G1, store snapshots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from twinledger.ipfs import FileBlockStore

REPO_ROOT = Path(__file__).resolve().parents[2]
# The expected CIDs are the ones Kubo's own test suite publishes (its "source" field names the files); the
# inputs are literals or generator G1, so the vectors need nothing but this file.
VECTORS_PATH = Path(__file__).resolve().parent / "data" / "kubo_vectors.json"


def load_vectors() -> dict[str, Any]:
    return json.loads(VECTORS_PATH.read_text())


def g1(seed: str, size: int) -> bytes:
    """Generator G1 of the vectors file: the ChaCha20 keystream keyed by SHA-256(seed)."""
    key = hashlib.sha256(seed.encode()).digest()
    return Cipher(algorithms.ChaCha20(key, b"\0" * 16), None).encryptor().update(b"\0" * size)


def store_snapshot(store: FileBlockStore) -> tuple[list[str], str]:
    """Every block key and every pin: equal snapshots mean the store is unchanged."""
    keys = sorted(store.iter_keys())
    return keys, "\n".join(str(cid) for cid in store.pins())
