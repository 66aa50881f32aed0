"""Snapshot encryption: secretstream content encryption and sealed-key envelopes.

Public API::

    seal_stream(src: BinaryIO, dst: BinaryIO, recipients: Iterable[str], *, chunk_size: int = 65536)
        -> Envelope
    open_stream(envelope: Envelope, src: BinaryIO, dst: BinaryIO, holder: DidKey) -> int
    seal_bytes(data: bytes, recipients: Iterable[str], *, chunk_size: int = 65536) -> tuple[Envelope, bytes]
    open_bytes(envelope: Envelope, ciphertext: bytes, holder: DidKey) -> bytes
    unseal_data_key(envelope: Envelope, holder: DidKey) -> bytes
    shred(envelope: Envelope, kids: Iterable[str] | None = None) -> Envelope
    Envelope.to_json() -> str / Envelope.from_json(text) -> Envelope
    encrypt_stream / decrypt_stream / encrypt_bytes / decrypt_bytes (key, …, chunk_size, associated_data)

Recipients are Ed25519 did:keys (the node's key and the owner's recovery key). Errors: TamperedCiphertext,
TruncatedCiphertext, MalformedEnvelope, TamperedEnvelope, NotARecipient.
"""

from twinledger.crypto.envelope import (
    Envelope,
    SealedKey,
    open_bytes,
    open_stream,
    recipient_key_id,
    seal_bytes,
    seal_stream,
    shred,
    unseal_data_key,
)
from twinledger.crypto.errors import (
    MalformedEnvelope,
    NotARecipient,
    TamperedCiphertext,
    TamperedEnvelope,
    TruncatedCiphertext,
)
from twinledger.crypto.stream import (
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    new_data_key,
)

__all__ = [
    "Envelope",
    "MalformedEnvelope",
    "NotARecipient",
    "SealedKey",
    "TamperedCiphertext",
    "TamperedEnvelope",
    "TruncatedCiphertext",
    "decrypt_bytes",
    "decrypt_stream",
    "encrypt_bytes",
    "encrypt_stream",
    "new_data_key",
    "open_bytes",
    "open_stream",
    "recipient_key_id",
    "seal_bytes",
    "seal_stream",
    "shred",
    "unseal_data_key",
]
