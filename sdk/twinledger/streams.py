"""Small stream adapters that keep memory flat: the node decrypting what it serves, the SDK what it opens."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any


class IteratorReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (e.g. blocks streamed out of the store)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class HashingWriter(io.RawIOBase):
    """Writes through to `target` while hashing (sha256) and counting what passes."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha256.update(chunk)
        self.size += len(chunk)
        self.target.write(chunk)
        return len(chunk)
