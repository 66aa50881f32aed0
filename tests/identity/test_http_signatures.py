import asyncio
import datetime
import time
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

from twinledger.identity import (
    BadSignature,
    ContentDigestMismatch,
    DidKey,
    EthereumDid,
    MalformedSignature,
    MissingContentDigest,
    MissingSignature,
    OutsideTimeWindow,
    UnresolvableDid,
    UnsupportedAlgorithm,
    UnsupportedDid,
    sign_request,
    verify_request,
)

URL = "https://node.example/twins/7/snapshots?seq=3"
SEED = bytes(range(32))
COVERED = ("@method", "@target-uri", "content-digest")


def verify(headers, body=b"payload", method="POST", url=URL, now=None):
    return asyncio.run(verify_request(method, url, headers, body, now=now))


@pytest.fixture(params=["ed25519", "eip191"])
def signer(request):
    return DidKey.generate() if request.param == "ed25519" else EthereumDid(Account.create(), 31337)


def test_round_trip_yields_canonical_did(signer):
    headers = sign_request(signer, "post", URL, b"payload")
    verified = verify(headers)
    assert verified.did == signer.did
    assert verified.key_id == signer.did_url
    assert verified.algorithm == signer.algorithm
    assert verified.signature_input == headers["Signature-Input"]


def test_signature_over_other_bytes_fails(signer):
    headers = sign_request(signer, "POST", URL, b"payload")
    with pytest.raises(BadSignature):
        verify(headers, method="PUT")
    with pytest.raises(BadSignature):
        verify(headers, url=URL.replace("seq=3", "seq=4"))


def test_signature_by_another_key_fails():
    alice, mallory = DidKey.generate(), DidKey.generate()
    headers = sign_request(mallory, "POST", URL, b"payload")
    forged = sign_request(alice, "POST", URL, b"payload")
    forged["Signature"] = headers["Signature"]
    with pytest.raises(BadSignature):
        verify(forged)


def test_body_swapped_under_a_valid_signature_fails(signer):
    headers = sign_request(signer, "POST", URL, b"payload")
    with pytest.raises(ContentDigestMismatch):
        verify(headers, body=b"other payload")


def test_missing_content_digest(signer):
    headers = sign_request(signer, "POST", URL, b"payload")
    del headers["Content-Digest"]
    with pytest.raises(MissingContentDigest):
        verify(headers)


def test_content_digest_not_covered():
    key = DidKey(SEED)
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    message = _message("POST", URL, b"payload")
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(private, None))
    message.headers["Content-Digest"] = sign_request(key, "POST", URL, b"payload")["Content-Digest"]
    signer.sign(
        message,
        key_id=key.did_url,
        nonce="n" * 20,
        expires=_in(60),
        covered_component_ids=COVERED[:2],
        use_existing_digest=True,
    )
    with pytest.raises(MissingContentDigest, match="does not cover"):
        verify(message.headers)


@pytest.mark.parametrize(
    ("created", "lifetime", "reason"),
    [(1000, 60, "future"), (-1000, 60, "expired"), (0, 3600, "longer than"), (0, 0, "before it was created")],
)
def test_outside_time_window(created, lifetime, reason):
    now = int(time.time())
    headers = sign_request(DidKey.generate(), "POST", URL, b"payload", created=now + created, lifetime_s=lifetime)
    with pytest.raises(OutsideTimeWindow, match=reason):
        verify(headers, now=now)


def test_clock_skew_within_tolerance_passes():
    now = int(time.time())
    headers = sign_request(DidKey.generate(), "POST", URL, b"payload", created=now + 20)
    assert verify(headers, now=now).created == now + 20


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda h: h.pop("Signature"), MissingSignature),
        (lambda h: h.pop("Signature-Input"), MissingSignature),
        (lambda h: h.update({"Signature-Input": "sig1=(("}), MalformedSignature),
        (lambda h: h.update({"Signature": "other=:AAAA:"}), MalformedSignature),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace(";alg=", ";foo=1;alg=")}),
            MalformedSignature,
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace('"@method" ', "")}),
            MalformedSignature,
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace('alg="ed25519"', 'alg="hmac-sha256"')}),
            UnsupportedAlgorithm,
        ),
        (
            lambda h: h.update(
                {"Signature-Input": h["Signature-Input"].replace('alg="ed25519"', 'alg="eip191-secp256k1"')}
            ),
            UnsupportedAlgorithm,
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace("#z6Mk", "#other")}),
            UnresolvableDid,
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace("did:key:", "did:web:")}),
            UnsupportedDid,
        ),
        (lambda h: h.update({"Content-Digest": "sha-256=:AAAA:"}), BadSignature),
        (lambda h: h.update({"Content-Digest": "md5=:AAAA:"}), BadSignature),
    ],
)
def test_each_malformation_has_its_error(mutate, error):
    headers = sign_request(DidKey(SEED), "POST", URL, b"payload")
    mutate(headers)
    with pytest.raises(error):
        verify(headers)


def test_short_nonce_refused():
    headers = sign_request(DidKey(SEED), "POST", URL, b"payload", nonce="abc")
    with pytest.raises(MalformedSignature, match="nonce"):
        verify(headers)


# --- interoperability with http-message-signatures, an independent RFC 9421 implementation ---


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, private, public):
        self.private, self.public = private, public

    def resolve_private_key(self, key_id):
        return self.private

    def resolve_public_key(self, key_id):
        return self.public


class _EIP191(HTTPSignatureAlgorithm):
    algorithm_id = "eip191-secp256k1"

    def __init__(self, public_key=None, private_key=None):
        self.public_key, self.private_key = public_key, private_key

    def sign(self, message):
        return bytes(Account.sign_message(encode_defunct(primitive=message), private_key=self.private_key).signature)

    def verify(self, signature, message):
        if Account.recover_message(encode_defunct(primitive=message), signature=signature) != self.public_key.decode():
            raise InvalidSignature("wrong signer")


def _message(method, url, body):
    return SimpleNamespace(method=method, url=url, headers={}, body=body)


def _in(seconds):
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


def test_independent_ed25519_signature_verifies_here():
    key = DidKey(SEED)
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    message = _message("POST", URL, b"payload")
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(private, None))
    signer.sign(
        message,
        key_id=key.did_url,
        nonce="independent-nonce-1",
        expires=_in(60),
        covered_component_ids=COVERED,
        body=b"payload",
    )
    verified = verify(message.headers)
    assert verified.did == key.did
    assert verified.nonce == "independent-nonce-1"


def test_our_ed25519_signature_verifies_there():
    key = DidKey(SEED)
    message = _message("POST", URL, b"payload")
    message.headers.update(sign_request(key, "POST", URL, b"payload"))
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(None, public))
    [result] = verifier.verify(message, body=b"payload", require_components=COVERED)
    assert result.parameters["keyid"] == key.did_url


def test_independent_eip191_signature_verifies_here():
    account = Account.create()
    eth = EthereumDid(account, 1)
    message = _message("GET", URL, b"")
    signer = HTTPMessageSigner(signature_algorithm=_EIP191, key_resolver=_Keys(account.key, None))
    signer.sign(
        message,
        key_id=eth.did_url,
        nonce="independent-nonce-2",
        expires=_in(60),
        covered_component_ids=COVERED,
        body=b"",
    )
    assert verify(message.headers, body=b"", method="GET").did == eth.did


def test_our_eip191_signature_verifies_there():
    account = Account.create()
    eth = EthereumDid(account, 1)
    message = _message("GET", URL, b"")
    message.headers.update(sign_request(eth, "GET", URL, b""))
    verifier = HTTPMessageVerifier(signature_algorithm=_EIP191, key_resolver=_Keys(None, account.address.encode()))
    [result] = verifier.verify(message, body=b"", require_components=COVERED)
    assert result.parameters["alg"] == "eip191-secp256k1"
