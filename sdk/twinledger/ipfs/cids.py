"""CID helpers on top of ``multiformats``: parsing with readable errors, hashing blocks, binary forms."""

from __future__ import annotations

import base64
import hashlib

from multiformats import CID, multihash

from twinledger.errors import IntegrityError, InvalidInput

DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
SHA2_256 = 0x12
IDENTITY = 0x00
_CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw", DAG_CBOR: "dag-cbor"}


def parse_cid(text: str | bytes | CID) -> CID:
    """Parse a CID from its string or binary form; a malformed one is an InvalidInput naming it."""
    if isinstance(text, CID):
        return text
    try:
        cid = CID.decode(text.strip() if isinstance(text, str) else text)
    except (ValueError, LookupError, TypeError):  # LookupError: a lone multibase prefix raises IndexError
        shown = text if isinstance(text, str) else text.hex()
        raise InvalidInput(
            f"'{shown}' is not a CID",
            hint="pass a CID such as Qm... (v0) or bafy... (v1), as printed by `twinledger ipfs add`",
        ) from None
    return cid if cid.version == 0 or isinstance(text, str) else cid.set(base="base32")


def block_cid(data: bytes, *, codec: int, version: int) -> bytes:
    """Binary sha2-256 CID of ``data``; CIDv0 is only possible for dag-pb (a raw block is always v1)."""
    mh = b"\x12\x20" + hashlib.sha256(data).digest()
    if version == 0 and codec == DAG_PB:
        return mh
    return b"\x01" + bytes((codec,)) + mh if codec < 0x80 else bytes(CID("base32", 1, codec, mh))


def to_cid(binary: bytes) -> CID:
    """A binary CID as Kubo prints it: base58btc for v0, base32 for v1."""
    cid = CID.decode(binary)
    return cid if cid.version == 0 else cid.set(base="base32")


def multihash_of(cid: CID) -> bytes:
    return bytes(cid.digest)


def block_key(cid: CID) -> str:
    """Store key: base32 of the multihash (as Kubo's flatfs), so v0 and v1 of a block share one file."""
    return base64.b32encode(multihash_of(cid)).decode().rstrip("=")


def verify_block(cid: CID, data: bytes) -> None:
    """Raise IntegrityError naming ``cid`` unless ``data`` hashes to it."""
    code = cid.hashfun.code
    if code == SHA2_256:
        ok = hashlib.sha256(data).digest() == cid.raw_digest
    elif code == IDENTITY:
        ok = data == cid.raw_digest
    else:
        try:
            ok = bytes(multihash.digest(data, cid.hashfun, size=len(cid.raw_digest))) == bytes(cid.digest)
        except (KeyError, ValueError) as error:
            raise InvalidInput(
                f"block {cid}: hash function {cid.hashfun.name} cannot be checked here ({error})",
                hint="use sha2-256 CIDs",
            ) from None
    if not ok:
        raise IntegrityError(
            f"block {cid}: bytes do not hash to the CID",
            hint="the copy is corrupt; delete it and fetch the block again from a trusted source",
        )


def codec_name(cid: CID) -> str:
    return _CODEC_NAMES.get(cid.codec.code, cid.codec.name)
