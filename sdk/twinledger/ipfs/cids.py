"""CID helpers on top of ``multiformats``: parsing with readable errors, hashing blocks, binary forms."""

from __future__ import annotations

import base64
import functools
import hashlib

from multiformats import CID, multibase, multicodec, multihash

from twinledger.errors import IntegrityError, InvalidInput

DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
SHA2_256 = 0x12
IDENTITY = 0x00
_CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw", DAG_CBOR: "dag-cbor"}
_SHA2_256_PREFIX = bytes((SHA2_256, 32))
# multiformats type-checks every argument at run time (typing-validation): decoding a CID costs ~100 µs, printing one
# as much and `raw_digest` ~40 µs, which was most of the node's CPU per read. A CID is an immutable value, so its
# decoded and printed forms are cached here and block checks compare multihash bytes; the cache bounds memory.
_CACHED_CIDS = 65_536


_BASE32, _BASE58 = multibase.get("base32"), multibase.get("base58btc")
_SHA2_256_HASH = multihash.get(code=SHA2_256)
_CODECS = {code: multicodec.get(code=code) for code in (RAW, DAG_PB, DAG_CBOR)}


def _decode_binary(binary: bytes) -> CID:
    """The sha2-256 CIDs this project mints (v0, and v1 raw / dag-pb / dag-cbor), built from their bytes without
    multiformats' validation; any other CID through ``CID.decode``. ``CID._new_instance`` is what ``CID.decode``
    itself ends in (multiformats is pinned; tests/ipfs/test_cids.py compares both on every shape)."""
    if len(binary) == 34 and binary[:2] == _SHA2_256_PREFIX:
        return CID._new_instance(CID, _BASE58, 0, _CODECS[DAG_PB], _SHA2_256_HASH, binary)
    if len(binary) == 36 and binary[0] == 1 and binary[1] in _CODECS and binary[2:4] == _SHA2_256_PREFIX:
        return CID._new_instance(CID, _BASE32, 1, _CODECS[binary[1]], _SHA2_256_HASH, binary[2:])
    cid = CID.decode(binary)
    return cid if cid.version == 0 else cid.set(base="base32")


@functools.lru_cache(maxsize=_CACHED_CIDS)
def _decode(text: str | bytes) -> CID:
    if isinstance(text, bytes):
        return _decode_binary(text)
    if text[:1] == "b" and len(text) == 59 and text[1:].islower():  # base32 CIDv1 of a 36-byte binary CID
        try:
            return _decode_binary(base64.b32decode(text[1:].upper() + "=" * 5))
        except ValueError:
            pass  # not base32 after all: multiformats names what is wrong
    return CID.decode(text)


def parse_cid(text: str | bytes | CID) -> CID:
    """Parse a CID from its string or binary form; a malformed one is an InvalidInput naming it."""
    if isinstance(text, CID):
        return text
    try:
        return _decode(text.strip() if isinstance(text, str) else bytes(text))
    except (ValueError, LookupError, TypeError):  # LookupError: a lone multibase prefix raises IndexError
        shown = text if isinstance(text, str) else text.hex()
        raise InvalidInput(
            f"'{shown}' is not a CID",
            hint="pass a CID such as Qm... (v0) or bafy... (v1), as printed by `twinledger ipfs add`",
        ) from None


def block_cid(data: bytes, *, codec: int, version: int) -> bytes:
    """Binary sha2-256 CID of ``data``; CIDv0 is only possible for dag-pb (a raw block is always v1)."""
    mh = b"\x12\x20" + hashlib.sha256(data).digest()
    if version == 0 and codec == DAG_PB:
        return mh
    return b"\x01" + bytes((codec,)) + mh if codec < 0x80 else bytes(CID("base32", 1, codec, mh))


def to_cid(binary: bytes) -> CID:
    """A binary CID as Kubo prints it: base58btc for v0, base32 for v1."""
    return _decode(bytes(binary))


def cid_text(cid: CID) -> str:
    """``str(cid)``, without multiformats' per-call cost: base32 CIDv1 (what the node mints) directly, others
    cached."""
    if cid.version == 1 and cid.base.name == "base32":
        return "b" + base64.b32encode(bytes(cid)).decode("ascii").lower().rstrip("=")
    return _printed(cid, cid.base.name)


@functools.lru_cache(maxsize=_CACHED_CIDS)
def _printed(cid: CID, base: str) -> str:  # `base` in the key: CIDs that differ only in base may compare equal
    return str(cid)


def multihash_of(cid: CID) -> bytes:
    return bytes(cid.digest)


def block_key(cid: CID) -> str:
    """Store key: base32 of the multihash (as Kubo's flatfs), so v0 and v1 of a block share one file."""
    return base64.b32encode(multihash_of(cid)).decode().rstrip("=")


def verify_block(cid: CID, data: bytes) -> None:
    """Raise IntegrityError naming ``cid`` unless ``data`` hashes to it."""
    multihash_bytes = cid.digest
    code = cid.hashfun.code
    if code == SHA2_256 and multihash_bytes[:2] == _SHA2_256_PREFIX:
        ok = hashlib.sha256(data).digest() == multihash_bytes[2:]
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
