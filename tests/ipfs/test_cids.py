"""The cached, validation-free CID paths (twinledger.ipfs.cids) agree with multiformats on every shape."""

from __future__ import annotations

import hashlib
import os

import pytest
from multiformats import CID, multihash

from twinledger.errors import IntegrityError, InvalidInput
from twinledger.ipfs.cids import DAG_CBOR, DAG_PB, RAW, block_cid, cid_text, parse_cid, to_cid, verify_block


def reference(binary: bytes) -> CID:
    cid = CID.decode(binary)
    return cid if cid.version == 0 else cid.set(base="base32")


SHAPES = [(DAG_PB, 0), (DAG_PB, 1), (RAW, 1), (DAG_CBOR, 1)]


@pytest.mark.parametrize(("codec", "version"), SHAPES)
def test_fast_paths_equal_multiformats(codec: int, version: int) -> None:
    for _ in range(50):
        data = os.urandom(40)
        binary = block_cid(data, codec=codec, version=version)
        expected = reference(binary)
        fast = to_cid(binary)
        assert fast == expected
        assert (fast.version, fast.codec, fast.hashfun, fast.digest, fast.base) == (
            expected.version, expected.codec, expected.hashfun, expected.digest, expected.base,
        )  # fmt: skip
        assert cid_text(fast) == str(expected)
        assert parse_cid(str(expected)) == expected
        assert str(parse_cid(str(expected))) == str(expected)
        assert parse_cid(binary) == expected
        verify_block(fast, data)
        with pytest.raises(IntegrityError):
            verify_block(fast, data + b"!")
        if version == 1:
            other_base = expected.set(base="base58btc")
            assert cid_text(other_base) == str(other_base)
            assert parse_cid(str(other_base)) == other_base


def test_other_hashes_and_codecs_take_the_general_path() -> None:
    data = b"hello"
    blake = CID("base32", 1, "raw", multihash.digest(data, "blake2b-256"))
    assert to_cid(bytes(blake)) == blake
    assert parse_cid(str(blake)) == blake
    assert cid_text(blake) == str(blake)
    verify_block(blake, data)
    with pytest.raises(IntegrityError):
        verify_block(blake, b"other")
    identity = CID("base32", 1, "raw", multihash.digest(data, "identity"))
    assert parse_cid(str(identity)) == identity
    verify_block(identity, data)
    json_codec = CID("base32", 1, "json", multihash.digest(data, "sha2-256"))
    assert to_cid(bytes(json_codec)) == json_codec
    assert parse_cid(str(json_codec)) == json_codec


@pytest.mark.parametrize(
    "text",
    ["", "b", "nope", "bafkrei" + "a" * 51 + "!", "Qm" + "1" * 44, "b" + "7" * 58, hashlib.sha256(b"x").hexdigest()],
)
def test_malformed_text_is_refused_with_the_text_named(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_cid(text)
    assert repr(text.strip())[1:-1] in refused.value.message or text.strip() in refused.value.message
