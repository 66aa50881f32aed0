"""Fixtures of the ipfs tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinledger.ipfs import FileBlockStore


@pytest.fixture
def store(tmp_path: Path) -> FileBlockStore:
    return FileBlockStore(tmp_path / "repo")
