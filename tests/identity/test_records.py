import asyncio

import pytest
import rfc8785
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

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


# canonical_json's C-encoder path must give exactly the bytes of the RFC 8785 reference (rfc8785), on every value
# it takes; values it does not take (non-ASCII keys, integers past 2**53) go to the reference itself.
_json_text = st.text(st.characters(codec="utf-8"), max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_canonical_json_is_rfc8785(value):
    assert canonical_json(value) == rfc8785.dumps(value)


def test_canonical_json_edge_cases_match_rfc8785():
    cases = [
        {"\u20ac": 1, "\U0001f600": 2, "\ufb33": 3, "a": 4},  # UTF-16 order differs from code point order
        {"control": '\x00\x01\x1f\b\t\n\f\r"\\/\x7f\u2028\u2029'},
        {"big": 2**53 - 1, "neg": -(2**53) + 1},
        [True, False, None, "", [], {}],
    ]
    for value in cases:
        assert canonical_json(value) == rfc8785.dumps(value)
    with pytest.raises(MalformedSignature):
        canonical_json({"big": 2**64})
    with pytest.raises(MalformedSignature):
        canonical_json({"x": 1.5})
