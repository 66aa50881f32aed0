import time
from typing import Annotated

import pytest
from eth_account import Account
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from twinledger.identity import DidAuth, DidKey, EthereumDid, ReplayedNonce, sign_request
from twinledger_node.auth import (
    PROBLEM_MEDIA_TYPE,
    AuthSettings,
    Caller,
    ReplayCache,
    ReplayCacheFull,
    SignedRequestAuth,
    install_auth_problem_handler,
)

BASE = "http://testserver"


def make_app(auth: SignedRequestAuth):
    app = FastAPI()
    install_auth_problem_handler(app)
    seen: list[Caller] = []

    @app.post("/twins/{twin_id}/read")
    async def read(twin_id: int, caller: Annotated[Caller, Depends(auth)]):
        seen.append(caller)
        return {"did": caller.did, "twin": twin_id}

    return TestClient(app), seen


@pytest.fixture
def auth(tmp_path):
    return SignedRequestAuth(AuthSettings(replay_db_dir=tmp_path))


@pytest.mark.parametrize("kind", ["ed25519", "eip191"])
def test_signed_request_yields_caller(auth, kind):
    signer = DidKey.generate() if kind == "ed25519" else EthereumDid(Account.create(), 31337)
    client, seen = make_app(auth)
    response = client.post("/twins/7/read?purpose=x", content=b'{"q":1}', auth=DidAuth(signer))
    assert response.status_code == 200, response.text
    assert response.json() == {"did": signer.did, "twin": 7}
    [caller] = seen
    assert caller.key_id == signer.did_url
    assert caller.target_uri == f"{BASE}/twins/7/read?purpose=x"
    assert caller.signature_input.startswith("sig1=(")


def _post(client, headers, body=b"body", path="/twins/1/read"):
    return client.post(path, content=body, headers=headers)


def _problem(response, status, code):
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["type"] == f"urn:twinledger:problem:{code}"
    assert problem["status"] == status
    return problem


def test_replayed_nonce_is_refused(auth):
    client, seen = make_app(auth)
    headers = sign_request(DidKey.generate(), "POST", f"{BASE}/twins/1/read", b"body")
    assert _post(client, headers).status_code == 200
    _problem(_post(client, headers), 401, "replayed-nonce")
    assert len(seen) == 1


def test_replay_refused_after_restart(tmp_path):
    headers = sign_request(DidKey.generate(), "POST", f"{BASE}/twins/1/read", b"body")
    first, _ = make_app(SignedRequestAuth(AuthSettings(replay_db_dir=tmp_path)))
    assert _post(first, headers).status_code == 200
    restarted, seen = make_app(SignedRequestAuth(AuthSettings(replay_db_dir=tmp_path)))
    _problem(_post(restarted, headers), 401, "replayed-nonce")
    assert seen == []


def test_same_nonce_from_two_signers_is_not_a_replay(auth):
    client, _ = make_app(auth)
    for signer in (DidKey.generate(), DidKey.generate()):
        headers = sign_request(signer, "POST", f"{BASE}/twins/1/read", b"body", nonce="shared-nonce-0123456789")
        assert _post(client, headers).status_code == 200


def test_failed_request_stores_nothing(auth):
    client, _ = make_app(auth)
    headers = sign_request(DidKey.generate(), "POST", f"{BASE}/twins/1/read", b"body")
    _problem(_post(client, headers, body=b"tampered"), 400, "content-digest-mismatch")
    assert len(auth.replay_cache) == 0
    assert _post(client, headers).status_code == 200


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda h: h.pop("Content-Digest"), 400, "missing-content-digest"),
        (lambda h: h.pop("Signature"), 401, "missing-signature"),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace("did:key:z", "did:key:y")}),
            400,
            "malformed-did",
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace("did:key:", "did:web:")}),
            400,
            "unsupported-did",
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace("#z6Mk", "#k")}),
            401,
            "unresolvable-did",
        ),
        (
            lambda h: h.update({"Signature-Input": h["Signature-Input"].replace('"ed25519"', '"rsa-pss-sha512"')}),
            400,
            "unsupported-algorithm",
        ),
        (
            lambda h: h.update(
                {"Signature": h["Signature"][:10] + ("B" if h["Signature"][10] != "B" else "C") + h["Signature"][11:]}
            ),
            401,
            "bad-signature",
        ),
    ],
)
def test_failures_answer_problem_json(auth, mutate, status, code):
    client, seen = make_app(auth)
    headers = sign_request(DidKey.generate(), "POST", f"{BASE}/twins/1/read", b"body")
    mutate(headers)
    problem = _problem(_post(client, headers), status, code)
    assert problem["detail"]
    assert seen == []
    assert len(auth.replay_cache) == 0


def test_outside_window_is_401(auth):
    client, _ = make_app(auth)
    headers = sign_request(DidKey.generate(), "POST", f"{BASE}/twins/1/read", b"body", created=int(time.time()) - 3600)
    _problem(_post(client, headers), 401, "outside-time-window")


def test_signed_for_another_path_is_refused(auth):
    client, _ = make_app(auth)
    headers = sign_request(DidKey.generate(), "POST", f"{BASE}/twins/2/read", b"body")
    _problem(_post(client, headers), 401, "bad-signature")


def test_unsigned_request_is_refused(auth):
    client, _ = make_app(auth)
    _problem(client.post("/twins/1/read", content=b"x"), 401, "missing-signature")


def test_public_base_url_is_what_clients_sign(tmp_path):
    auth = SignedRequestAuth(AuthSettings(replay_db_dir=tmp_path, public_base_url="https://node.example/"))
    client, _ = make_app(auth)
    headers = sign_request(DidKey.generate(), "POST", "https://node.example/twins/1/read", b"body")
    assert _post(client, headers).status_code == 200


def test_memory_cache_is_bounded_and_prunes():
    cache = ReplayCache(None, max_entries=2)
    cache.check_and_store("did:a", "n1", expires_at=100, now=0)
    cache.check_and_store("did:a", "n2", expires_at=200, now=0)
    with pytest.raises(ReplayCacheFull):
        cache.check_and_store("did:a", "n3", expires_at=200, now=0)
    with pytest.raises(ReplayedNonce):
        cache.check_and_store("did:a", "n1", expires_at=100, now=50)
    cache.check_and_store("did:a", "n3", expires_at=300, now=150)  # n1 expired and was pruned
    assert len(cache) == 2


def test_sqlite_cache_keeps_memory_bounded_without_forgetting(tmp_path):
    cache = ReplayCache(tmp_path, max_entries=2)
    for i in range(5):
        cache.check_and_store("did:a", f"n{i}", expires_at=1000, now=0)
    assert len(cache) == 2
    with pytest.raises(ReplayedNonce):
        cache.check_and_store("did:a", "n0", expires_at=1000, now=1)
    cache.check_and_store("did:a", "n0", expires_at=3000, now=2000)  # expired entries are pruned from SQLite too
    cache.close()
