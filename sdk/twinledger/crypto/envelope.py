"""Snapshot envelopes: a fresh data key per snapshot, sealed (X25519 sealed box) to each recipient's did:key.

Envelope JSON (version 1)::

    {"version": 1, "alg": "xchacha20poly1305-secretstream", "chunk_size": 65536,
     "key_wrap": "x25519-sealedbox",
     "recipients": [{"kid": "did:key:z6Mk…#z6Mk…", "sealed_key": "<base64url>"}, …]}

Recipients are Ed25519 did:keys; their X25519 key is libsodium's birational map of the Ed25519 key, so the
owner's wallet key opens every snapshot sealed to it, without the node. The version, algorithm and chunk size
are authenticated with every ciphertext chunk. Dropping the recipients (:func:`shred`) leaves no copy of the
data key: the ciphertext becomes unreadable by anyone (crypto-shredding).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Final

import nacl.exceptions
import nacl.public

from twinledger.crypto.errors import MalformedEnvelope, NotARecipient, TamperedEnvelope
from twinledger.crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    KEY_BYTES,
    decrypt_stream,
    encrypt_stream,
    new_data_key,
)
from twinledger.identity.did import parse_did, split_did_url
from twinledger.identity.keys import DidKey, x25519_public_key_of

VERSION: Final = 1
ALGORITHM: Final = "xchacha20poly1305-secretstream"
KEY_WRAP: Final = "x25519-sealedbox"
MAX_CHUNK_SIZE: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class SealedKey:
    kid: str
    sealed_key: bytes


@dataclass(frozen=True)
class Envelope:
    chunk_size: int = DEFAULT_CHUNK_SIZE
    recipients: tuple[SealedKey, ...] = field(default_factory=tuple)
    version: int = VERSION
    alg: str = ALGORITHM
    key_wrap: str = KEY_WRAP

    @property
    def associated_data(self) -> bytes:
        return f"twinledger-snapshot/v{self.version}/{self.alg}/{self.chunk_size}".encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "alg": self.alg,
            "chunk_size": self.chunk_size,
            "key_wrap": self.key_wrap,
            "recipients": [{"kid": r.kid, "sealed_key": _b64url(r.sealed_key)} for r in self.recipients],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        if not isinstance(data, dict) or set(data) != {
            "version",
            "alg",
            "chunk_size",
            "key_wrap",
            "recipients",
        }:
            raise MalformedEnvelope("an envelope has exactly version, alg, chunk_size, key_wrap and recipients")
        if data["version"] != VERSION or data["alg"] != ALGORITHM or data["key_wrap"] != KEY_WRAP:
            raise MalformedEnvelope(
                f"unsupported envelope (version {data['version']!r}, alg {data['alg']!r},"
                f" key_wrap {data['key_wrap']!r})",
                hint=f"this twinledger reads version {VERSION}, {ALGORITHM}, {KEY_WRAP}",
            )
        chunk_size = data["chunk_size"]
        if type(chunk_size) is not int or not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise MalformedEnvelope(f"chunk_size must be an integer in 1..{MAX_CHUNK_SIZE}")
        if not isinstance(data["recipients"], list):
            raise MalformedEnvelope("recipients must be a list")
        recipients = []
        for entry in data["recipients"]:
            if not isinstance(entry, dict) or set(entry) != {"kid", "sealed_key"}:
                raise MalformedEnvelope("each recipient has exactly kid and sealed_key")
            if not isinstance(entry["kid"], str) or not isinstance(entry["sealed_key"], str):
                raise MalformedEnvelope("a recipient's kid and sealed_key are strings")
            try:
                padded = entry["sealed_key"] + "=" * (-len(entry["sealed_key"]) % 4)
                sealed = base64.b64decode(padded, altchars=b"-_", validate=True)
            except (ValueError, binascii.Error) as exc:
                raise MalformedEnvelope("a sealed_key is not base64url") from exc
            recipients.append(SealedKey(kid=entry["kid"], sealed_key=sealed))
        if len({r.kid for r in recipients}) != len(recipients):
            raise MalformedEnvelope("a recipient appears twice")
        return cls(chunk_size=chunk_size, recipients=tuple(recipients))

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeError) as exc:
            raise MalformedEnvelope("the envelope is not JSON") from exc
        return cls.from_dict(data)


def recipient_key_id(did_or_url: str) -> str:
    """The canonical DID URL snapshots are sealed to, for a did:key or its key id."""
    did = split_did_url(did_or_url)[0] if "#" in did_or_url else parse_did(did_or_url).did
    return f"{did}#{did.removeprefix('did:key:')}"


def seal_stream(
    src: BinaryIO, dst: BinaryIO, recipients: Iterable[str], *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Envelope:
    """Encrypt ``src`` to ``dst`` under a fresh data key sealed to each recipient did:key."""
    kids = list(dict.fromkeys(recipient_key_id(r) for r in recipients))
    if not kids:
        raise MalformedEnvelope("a snapshot needs at least one recipient", hint="seal to the node and the owner")
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise MalformedEnvelope(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}")
    data_key = new_data_key()
    sealed = tuple(
        SealedKey(
            kid=kid,
            sealed_key=nacl.public.SealedBox(x25519_public_key_of(kid.split("#")[0])).encrypt(data_key),
        )
        for kid in kids
    )
    envelope = Envelope(chunk_size=chunk_size, recipients=sealed)
    encrypt_stream(data_key, src, dst, chunk_size=chunk_size, associated_data=envelope.associated_data)
    return envelope


def open_stream(envelope: Envelope, src: BinaryIO, dst: BinaryIO, holder: DidKey) -> int:
    """Decrypt a snapshot with ``holder``'s key; return the plaintext size."""
    data_key = unseal_data_key(envelope, holder)
    return decrypt_stream(data_key, src, dst, chunk_size=envelope.chunk_size, associated_data=envelope.associated_data)


def unseal_data_key(envelope: Envelope, holder: DidKey) -> bytes:
    entry = next((r for r in envelope.recipients if r.kid == holder.did_url), None)
    if entry is None:
        raise NotARecipient(
            f"the snapshot has no sealed key for {holder.did_url}",
            hint="ask the owner to re-share it; a shredded snapshot cannot be read by anyone",
        )
    try:
        data_key = nacl.public.SealedBox(holder.x25519_private_key()).decrypt(entry.sealed_key)
    except nacl.exceptions.CryptoError as exc:
        raise TamperedEnvelope(f"the sealed key for {holder.did_url} does not open") from exc
    if len(data_key) != KEY_BYTES:
        raise TamperedEnvelope("the sealed data key has the wrong length")
    return data_key


def seal_bytes(
    data: bytes, recipients: Iterable[str], *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> tuple[Envelope, bytes]:
    out = io.BytesIO()
    envelope = seal_stream(io.BytesIO(data), out, recipients, chunk_size=chunk_size)
    return envelope, out.getvalue()


def open_bytes(envelope: Envelope, ciphertext: bytes, holder: DidKey) -> bytes:
    out = io.BytesIO()
    open_stream(envelope, io.BytesIO(ciphertext), out, holder)
    return out.getvalue()


def shred(envelope: Envelope, kids: Iterable[str] | None = None) -> Envelope:
    """Drop the sealed keys of ``kids`` (all when ``None``); without any, the snapshot is unreadable."""
    if kids is None:
        return replace(envelope, recipients=())
    drop = {recipient_key_id(k) for k in kids}
    return replace(envelope, recipients=tuple(r for r in envelope.recipients if r.kid not in drop))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
