"""Consent receipts say only what is true on chain, and anyone can check one offline against the chain.

Attacks performed through the CLI, as real processes, against the session's anvil and a node over HTTP: a receipt
naming a transaction that is not the grant; a grantee issuing a receipt about its own grant; a receipt for a grant
that has expired; and receipts forged with the SDK (by the grantee's key, or naming another transaction) that
`twinledger consent receipt verify` must refuse.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import increase_time
from tests.sdk import conftest as sdk_conftest
from tests.sdk.conftest import PASSPHRASE, Stack, client_for

stack = sdk_conftest.stack  # the live stack of tests/sdk and tests/cli: a node over HTTP on the session's anvil

PURPOSE = "research"


@pytest.fixture(scope="module")
def env(stack: Stack) -> dict[str, str]:
    return {
        **os.environ,
        "TWINLEDGER_HOME": str(stack.home),
        "TWINLEDGER_NODE_URL": stack.node.url,
        "TWINLEDGER_RPC_URL": stack.rpc_url,
        "TWINLEDGER_PASSPHRASE": PASSPHRASE,
        "TWINLEDGER_KDF_N": "1024",
        "COLUMNS": "200",
    }


def tl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinledger.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Refused with `words` in the message: under --json the CLI prints it as a problem object on stdout."""
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr
    if "--json" in result.args:
        problem = json.loads(result.stdout)
        assert problem["exitCode"] == result.returncode
        message = f"{problem['detail']} {problem.get('hint', '')}"
    for word in words:
        assert word.lower() in message.lower(), message


@pytest.fixture(scope="module")
def granted(stack: Stack) -> dict[str, Any]:
    """A twin of `owner` with a READ+AUDIT grant to `researcher`, and an unrelated transaction."""
    researcher = stack.store.unlock("researcher", PASSPHRASE).did_key.did
    with client_for(stack, "owner") as tl_owner:
        registered = tl_owner.register_twin("asset")
        twin = registered.twin_id
        grant = tl_owner.grant(twin, researcher, purpose=PURPOSE, scopes="read,audit", expiry=_in(stack, 3600))
        other = tl_owner.register_twin("asset")  # a real transaction of the owner, but no grant
    return {"twin": twin, "did": researcher, "tx": grant.tx_hash, "other_tx": other.tx_hash}


def _in(stack: Stack, seconds: int) -> int:
    with client_for(stack, "owner") as tl_owner:
        return tl_owner.ledger.client.chain_time() + seconds


def _issue(env: dict[str, str], granted: dict[str, Any], tx: str, name: str, out: Path) -> subprocess.CompletedProcess:
    return tl(
        env, "consent", "receipt", str(granted["twin"]), granted["did"], "--purpose", PURPOSE, "--tx", tx,
        "--name", name, "-o", str(out), "--json",
    )  # fmt: skip


def test_a_receipt_names_the_grants_own_transaction(env, granted, tmp_path: Path):
    for tx in (granted["other_tx"], "0x" + "ab" * 32):
        result = _issue(env, granted, tx, "owner", tmp_path / "r.json")
        _refused(result, tx)
        assert not (tmp_path / "r.json").exists()  # nothing half-written


def test_the_grantee_cannot_issue_a_receipt_about_itself(env, granted, tmp_path: Path):
    _refused(_issue(env, granted, granted["tx"], "researcher", tmp_path / "r.json"), "owner")
    assert not (tmp_path / "r.json").exists()


def test_no_receipt_for_an_expired_grant(stack: Stack, env, tmp_path: Path):
    researcher = stack.store.unlock("researcher", PASSPHRASE).did_key.did
    with client_for(stack, "owner") as tl_owner:
        twin = tl_owner.register_twin("asset").twin_id
        tx = tl_owner.grant(twin, researcher, purpose=PURPOSE, scopes="read", expiry=_in(stack, 60)).tx_hash
    increase_time(stack.rpc_url, 120)
    result = _issue(env, {"twin": twin, "did": researcher}, tx, "owner", tmp_path / "r.json")
    _refused(result, "expired")


def test_a_genuine_receipt_has_scopes_in_words_and_verifies_offline(env, granted, tmp_path: Path):
    out = tmp_path / "receipt.json"
    issued = _issue(env, granted, granted["tx"], "owner", out)
    assert issued.returncode == 0, issued.stderr
    credential = json.loads(out.read_text())
    assert credential["credentialSubject"]["scopes"] == ["READ", "AUDIT"]
    checked = tl(env, "consent", "receipt", "verify", str(out), "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["verified"] is True and report["scopes"] == ["READ", "AUDIT"]
    assert report["txHash"] == granted["tx"] and report["twinId"] == granted["twin"]


def test_verify_refuses_forged_receipts_and_a_revoked_grant(stack: Stack, env, granted, tmp_path: Path):
    from twinledger.identity import ConsentGrant, issue_consent_receipt
    from twinledger.identity.credentials import owner_key_evidence

    owner = stack.store.unlock("owner", PASSPHRASE)
    researcher = stack.store.unlock("researcher", PASSPHRASE)
    with client_for(stack, "owner") as tl_owner:
        chain_id, registry = tl_owner.node.chain_id, tl_owner.node.twin_ledger
    expiry = _in(stack, 3000)

    def forge(key, account, tx: str) -> Path:
        grant = ConsentGrant(granted["twin"], granted["did"], PURPOSE, 0x11, expiry, chain_id, registry, tx)
        evidence = owner_key_evidence(account, key.did, chain_id)
        path = tmp_path / f"forged-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(asyncio.run(issue_consent_receipt(key, grant, evidence=evidence))))
        return path

    # the grantee's own key, vouched for by the grantee's own (funded) account: not the twin's owner
    other = stack.store.unlock("other", PASSPHRASE)
    _refused(tl(env, "consent", "receipt", "verify", str(forge(researcher.did_key, other.account, granted["tx"]))),
             "owner")  # fmt: skip
    # the owner's key, naming a transaction that is not this grant
    _refused(tl(env, "consent", "receipt", "verify", str(forge(owner.did_key, owner.account, granted["other_tx"]))),
             granted["other_tx"])  # fmt: skip
    # a genuine receipt stops verifying once the grant is revoked
    out = tmp_path / "genuine.json"
    assert _issue(env, granted, granted["tx"], "owner", out).returncode == 0
    with client_for(stack, "owner") as tl_owner:
        tl_owner.revoke(granted["twin"], granted["did"], purpose=PURPOSE)
    _refused(tl(env, "consent", "receipt", "verify", str(out)), "revoked")
