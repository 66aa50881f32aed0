import asyncio

import pytest
from eth_account import Account

from twinledger.identity import (
    BadSignature,
    DidKey,
    EthereumDid,
    MalformedSignature,
    canonical_json,
    sign_record,
    verify_record,
)

MANIFEST = {"twin": "7", "seq": 3, "content": "bafy…", "size": 1024, "nested": {"b": [1, 2], "a": "é"}}


@pytest.fixture(params=["ed25519", "eip191"])
def signer(request):
    return DidKey.generate() if request.param == "ed25519" else EthereumDid(Account.create(), 1)


def test_round_trip(signer):
    signed = sign_record(MANIFEST, signer, created=1_700_000_000)
    verified = asyncio.run(verify_record(signed, expected_signer=signer.did))
    assert verified.record == MANIFEST
    assert verified.signer == signer.did
    assert verified.created == 1_700_000_000


def test_key_order_does_not_matter(signer):
    signed = sign_record(MANIFEST, signer)
    reordered = dict(reversed(list(signed.items())))
    assert asyncio.run(verify_record(reordered)).signer == signer.did


def test_jcs_bytes():
    assert canonical_json({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: r.update({"seq": 4}),
        lambda r: r["nested"].update({"a": "e"}),
        lambda r: r["proof"].update({"created": r["proof"]["created"] + 1}),
    ],
)
def test_changed_content_fails(signer, tamper):
    import copy

    signed = copy.deepcopy(sign_record(MANIFEST, signer))
    tamper(signed)
    with pytest.raises(BadSignature):
        asyncio.run(verify_record(signed))


def test_wrong_expected_signer(signer):
    signed = sign_record(MANIFEST, signer)
    with pytest.raises(BadSignature, match="not by"):
        asyncio.run(verify_record(signed, expected_signer=DidKey.generate().did))


def test_malformed_proofs():
    signed = sign_record(MANIFEST, DidKey.generate())
    for broken in (
        {**signed, "proof": None},
        {**signed, "proof": {**signed["proof"], "extra": 1}},
        {**signed, "proof": {**signed["proof"], "created": "now"}},
    ):
        with pytest.raises(MalformedSignature):
            asyncio.run(verify_record(broken))
    with pytest.raises(MalformedSignature, match="integers"):
        sign_record({"x": 1.5}, DidKey.generate())
    with pytest.raises(MalformedSignature, match="already"):
        sign_record(signed, DidKey.generate())
