"""Chunked authenticated encryption with libsodium's XChaCha20-Poly1305 secretstream.

Ciphertext layout: the 24-byte stream header, then one secretstream message per plaintext chunk. Every chunk
but the last holds exactly ``chunk_size`` plaintext bytes; the last (possibly empty) one carries
``TAG_FINAL``. Memory use is one chunk whatever the stream's size. secretstream's internal counter makes a
reordered, dropped or duplicated chunk fail authentication; a missing final tag means truncation.
``associated_data`` (the envelope's parameters) is authenticated with every chunk, so ciphertext cannot be
replayed under a different envelope description.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Final

import nacl.bindings as sodium
import nacl.exceptions

from twinledger.crypto.errors import TamperedCiphertext, TruncatedCiphertext

KEY_BYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
HEADER_BYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
A_BYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
TAG_FINAL: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
TAG_MESSAGE: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
DEFAULT_CHUNK_SIZE: Final = 64 * 1024


def new_data_key() -> bytes:
    return sodium.crypto_secretstream_xchacha20poly1305_keygen()


def _read_full(src: BinaryIO, size: int) -> bytes:
    # A raw stream may return short reads before EOF; keep reading so chunk boundaries stay exact.
    parts = []
    remaining = size
    while remaining:
        part = src.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def encrypt_stream(
    key: bytes,
    src: BinaryIO,
    dst: BinaryIO,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    associated_data: bytes = b"",
) -> int:
    """Encrypt ``src`` to ``dst``; return the number of plaintext bytes."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    dst.write(sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key))
    total = 0
    chunk = _read_full(src, chunk_size)
    while True:
        following = _read_full(src, chunk_size) if len(chunk) == chunk_size else b""
        tag = TAG_MESSAGE if following else TAG_FINAL
        dst.write(sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, associated_data or None, tag))
        total += len(chunk)
        if tag == TAG_FINAL:
            return total
        chunk = following


def decrypt_stream(
    key: bytes,
    src: BinaryIO,
    dst: BinaryIO,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    associated_data: bytes = b"",
) -> int:
    """Decrypt ``src`` to ``dst``; return the plaintext size. Raise on tampering or truncation.

    Plaintext chunks are written as they verify, so a consumer must discard ``dst`` when this raises.
    """
    header = _read_full(src, HEADER_BYTES)
    if len(header) != HEADER_BYTES:
        raise TruncatedCiphertext("the ciphertext is shorter than the secretstream header")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise TamperedCiphertext("the secretstream header or key is invalid") from exc
    total = 0
    while True:
        sealed = _read_full(src, chunk_size + A_BYTES)
        if not sealed:
            raise TruncatedCiphertext("the ciphertext ends before its final chunk")
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, associated_data or None)
        except (nacl.exceptions.CryptoError, ValueError) as exc:
            raise TamperedCiphertext(f"ciphertext chunk at plaintext offset {total} fails authentication") from exc
        dst.write(plain)
        total += len(plain)
        if tag == TAG_FINAL:
            if src.read(1):
                raise TamperedCiphertext("data follows the final chunk")
            return total
        if len(sealed) != chunk_size + A_BYTES:
            raise TruncatedCiphertext("a short chunk is not marked final")


def encrypt_bytes(
    key: bytes, data: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE, associated_data: bytes = b""
) -> bytes:
    out = io.BytesIO()
    encrypt_stream(key, io.BytesIO(data), out, chunk_size=chunk_size, associated_data=associated_data)
    return out.getvalue()


def decrypt_bytes(
    key: bytes, data: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE, associated_data: bytes = b""
) -> bytes:
    out = io.BytesIO()
    decrypt_stream(key, io.BytesIO(data), out, chunk_size=chunk_size, associated_data=associated_data)
    return out.getvalue()
