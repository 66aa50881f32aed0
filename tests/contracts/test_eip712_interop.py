"""EIP-712 consent signed off-chain by ethers.js v6 and submitted by a relayer, as a JS client would do it.

The typed data is signed by `js/sign_typed_data.mjs` (ethers `Wallet.signTypedData`) and submitted through the
SDK's `TwinLedger.submit_signed` from an account that does not own the twin; the refusals are checked by the
exact custom error, and the SDK's own signer must produce the very same bytes as ethers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.conftest import REPO
from twinledger.chain.client import ChainClient
from twinledger.chain.errors import ContractRevert
from twinledger.chain.ledger import GRANT_TYPES, REVOKE_TYPES, GrantRequest, SignedConsent, TwinLedger
from twinledger.chain.types import Scope, purpose_code
from twinledger.identity import did_hash

SIGNER_SCRIPT = REPO / "tests" / "contracts" / "js" / "sign_typed_data.mjs"
DAY = 24 * 3600
DID = "did:key:z6MkwHFjgoM6JMGCYWfqXC7DFpPYYwanfUZBok24Kqf92h3g"
PURPOSE = "research"
# Not one of anvil's funded accounts: signs only, never sends.
STRANGER = Account.from_key("0x" + "5a" * 32)

Ledgers = Callable[[LocalAccount], TwinLedger]


# ---------------------------------------------------------------------- signing with ethers


def ethers_sign(account: LocalAccount, domain: dict[str, Any], types: dict[str, Any], message: dict[str, Any]):
    """ethers v6 `Wallet.signTypedData` in node: {signature, signer, digest, domainSeparator}."""
    payload = {
        "privateKey": "0x" + bytes(account.key).hex(),
        "domain": domain,
        "types": types,
        "message": message,
    }
    done = subprocess.run(
        ["node", str(SIGNER_SCRIPT)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=60,
    )
    result = json.loads(done.stdout)
    assert result["signer"] == account.address
    return result


def _json_domain(ledger: TwinLedger, chain_id: int | None = None) -> dict[str, Any]:
    domain = ledger.domain()
    return {**domain, "chainId": domain["chainId"] if chain_id is None else chain_id}


def ethers_grant(
    ledger: TwinLedger,
    signer: LocalAccount,
    request: GrantRequest,
    *,
    nonce: int,
    deadline: int,
    chain_id: int | None = None,
) -> SignedConsent:
    """A grant signed by `signer` with ethers, as the SDK's SignedConsent (uint256s travel as strings)."""
    message = {
        "twinId": str(request.twin_id),
        "did": request.did,
        "purpose": "0x" + request.purpose.hex(),
        "scopes": int(request.scopes),
        "expiry": str(request.expiry),
        "nonce": str(nonce),
        "deadline": str(deadline),
    }
    signed = ethers_sign(signer, _json_domain(ledger, chain_id), GRANT_TYPES, message)
    return SignedConsent(
        "grant", request.twin_id, request.did, request.purpose, request.scopes, request.expiry,
        nonce, deadline, bytes.fromhex(signed["signature"][2:]), signer.address,
    )  # fmt: skip


def ethers_revoke(
    ledger: TwinLedger,
    signer: LocalAccount,
    twin_id: int,
    did: str,
    purpose: str,
    *,
    nonce: int,
    deadline: int,
) -> SignedConsent:
    code = purpose_code(purpose)
    message = {
        "twinId": str(twin_id),
        "did": did,
        "purpose": "0x" + code.hex(),
        "nonce": str(nonce),
        "deadline": str(deadline),
    }
    signed = ethers_sign(signer, _json_domain(ledger), REVOKE_TYPES, message)
    return SignedConsent(
        "revoke", twin_id, did, code, Scope(0), 0, nonce, deadline, bytes.fromhex(signed["signature"][2:]),
        signer.address,
    )  # fmt: skip


def expect_revert(error: str, action: Callable[[], object]) -> ContractRevert:
    """The ContractRevert `action` raises, checked to be `error` (its address arguments come lower-case)."""
    with pytest.raises(ContractRevert) as caught:
        action()
    assert caught.value.error == error, caught.value
    return caught.value


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def owner(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


@pytest.fixture
def owner_ledger(ledger_as: Ledgers, owner: LocalAccount) -> TwinLedger:
    return ledger_as(owner)


@pytest.fixture
def relayer(ledger_as: Ledgers, accounts: list[LocalAccount]) -> TwinLedger:
    """Submits what owners signed and pays the gas; owns nothing."""
    return ledger_as(accounts[5])


@pytest.fixture
def twin(owner_ledger: TwinLedger) -> int:
    twin_id, _ = owner_ledger.register("asset")
    return twin_id


def _request(ledger: TwinLedger, twin_id: int, scopes: str = "read,train") -> GrantRequest:
    return GrantRequest.of(twin_id, DID, PURPOSE, scopes, ledger.client.chain_time() + 30 * DAY)


def _deadline(ledger: TwinLedger) -> int:
    return ledger.client.chain_time() + 3600


# ---------------------------------------------------------------------- accepted


def test_ethers_signed_grant_is_accepted_from_a_relayer(
    owner_ledger: TwinLedger, relayer: TwinLedger, owner: LocalAccount, twin: int
) -> None:
    request = _request(owner_ledger, twin)
    assert not relayer.is_authorized(twin, DID, PURPOSE, "read")
    nonce = owner_ledger.nonce_of(owner.address)
    signed = ethers_grant(owner_ledger, owner, request, nonce=nonce, deadline=_deadline(owner_ledger))

    result = relayer.submit_signed(signed)

    assert result.event("Granted").args == {
        "twinId": twin,
        "didHash": did_hash(DID),
        "purpose": purpose_code(PURPOSE),
        "scopes": int(Scope.READ | Scope.TRAIN),
        "expiry": request.expiry,
        "did": DID,
    }
    assert relayer.is_authorized(twin, DID, PURPOSE, "read,train")
    assert not relayer.is_authorized(twin, DID, PURPOSE, "write")
    stored = relayer.grant_of(twin, DID, PURPOSE)
    assert stored.grantor == owner.address  # the signer's consent, not the relayer's
    assert (stored.scopes, stored.expiry) == (Scope.READ | Scope.TRAIN, request.expiry)
    assert relayer.nonce_of(owner.address) == nonce + 1


def test_python_signer_matches_ethers_byte_for_byte(owner_ledger: TwinLedger, owner: LocalAccount, twin: int) -> None:
    request = _request(owner_ledger, twin, "read,train,inherit")
    deadline = _deadline(owner_ledger)
    ours = owner_ledger.sign_grant(owner, request, deadline=deadline, nonce=7)
    theirs = ethers_grant(owner_ledger, owner, request, nonce=7, deadline=deadline)
    assert ours.signature == theirs.signature  # RFC 6979: the same key and digest give the same signature
    assert len(ours.signature) == 65

    ours_revoke = owner_ledger.sign_revoke(owner, twin, DID, PURPOSE, deadline=deadline, nonce=3)
    theirs_revoke = ethers_revoke(owner_ledger, owner, twin, DID, PURPOSE, nonce=3, deadline=deadline)
    assert ours_revoke.signature == theirs_revoke.signature


def test_contract_domain_separator_is_the_one_ethers_computes(owner_ledger: TwinLedger, owner: LocalAccount) -> None:
    message = {"twinId": "1", "did": DID, "purpose": "0x" + "11" * 32, "nonce": "0", "deadline": "1"}
    signed = ethers_sign(owner, _json_domain(owner_ledger), REVOKE_TYPES, message)
    on_chain = owner_ledger.client.call(owner_ledger.contract.functions.DOMAIN_SEPARATOR())
    assert "0x" + bytes(on_chain).hex() == signed["domainSeparator"]


def test_ethers_signed_revoke_is_accepted_from_a_relayer(
    owner_ledger: TwinLedger, relayer: TwinLedger, owner: LocalAccount, twin: int
) -> None:
    owner_ledger.grant(_request(owner_ledger, twin))
    assert relayer.is_authorized(twin, DID, PURPOSE, "read")
    nonce = relayer.nonce_of(owner.address)
    signed = ethers_revoke(owner_ledger, owner, twin, DID, PURPOSE, nonce=nonce, deadline=_deadline(owner_ledger))

    result = relayer.submit_signed(signed)

    revoked = result.event("Revoked").args
    assert (revoked["twinId"], revoked["didHash"], revoked["purpose"]) == (
        twin,
        did_hash(DID),
        purpose_code(PURPOSE),
    )
    assert not relayer.is_authorized(twin, DID, PURPOSE, "read")
    assert not relayer.grant_of(twin, DID, PURPOSE).exists
    assert relayer.nonce_of(owner.address) == nonce + 1
    # A second signed revocation (next nonce) finds nothing left to revoke.
    again = ethers_revoke(owner_ledger, owner, twin, DID, PURPOSE, nonce=nonce + 1, deadline=_deadline(owner_ledger))
    expect_revert("GrantNotFound", lambda: relayer.submit_signed(again))


def test_signed_revoke_names_the_owner_as_revoker(
    owner_ledger: TwinLedger, relayer: TwinLedger, owner: LocalAccount, twin: int
) -> None:
    owner_ledger.grant(_request(owner_ledger, twin))
    signed = ethers_revoke(owner_ledger, owner, twin, DID, PURPOSE, nonce=0, deadline=_deadline(owner_ledger))
    result = relayer.submit_signed(signed)
    assert result.event("Revoked").args["revoker"] == owner.address


def test_grant_signed_for_a_contract_wallet_owner_is_accepted(
    anvil: str, owner_ledger: TwinLedger, relayer: TwinLedger, owner: LocalAccount, twin: int
) -> None:
    """ERC-1271: the twin belongs to a ContractWallet; its signer EOA signs with ethers."""
    wallet, _ = ChainClient(anvil, owner).deploy("ContractWallet", [owner.address])
    owner_ledger.transfer(twin, wallet)  # safeTransferFrom: the wallet accepts ERC-721s
    assert relayer.owner_of(twin) == wallet
    request = _request(owner_ledger, twin, "train")
    deadline = _deadline(owner_ledger)
    nonce = relayer.nonce_of(wallet)

    forged = ethers_grant(owner_ledger, STRANGER, request, nonce=nonce, deadline=deadline)
    refused = expect_revert("InvalidSigner", lambda: relayer.submit_signed(forged))
    assert refused.args_by_name == {"twinId": twin, "owner": wallet}

    signed = ethers_grant(owner_ledger, owner, request, nonce=nonce, deadline=deadline)
    result = relayer.submit_signed(signed)
    assert result.event("Granted").args["scopes"] == int(Scope.TRAIN)
    assert relayer.is_authorized(twin, DID, PURPOSE, "train")
    assert relayer.grant_of(twin, DID, PURPOSE).grantor == wallet
    assert relayer.nonce_of(wallet) == nonce + 1
    assert relayer.nonce_of(owner.address) == 0  # the wallet's nonce was used, not its signer's


# ---------------------------------------------------------------------- refused


def test_signature_for_another_chain_is_refused(
    owner_ledger: TwinLedger, relayer: TwinLedger, owner: LocalAccount, twin: int
) -> None:
    signed = ethers_grant(
        owner_ledger,
        owner,
        _request(owner_ledger, twin),
        nonce=0,
        deadline=_deadline(owner_ledger),
        chain_id=owner_ledger.client.chain_id + 1,
    )
    refused = expect_revert("InvalidSigner", lambda: relayer.submit_signed(signed))
    assert refused.args_by_name == {"twinId": twin, "owner": owner.address}
    assert not relayer.is_authorized(twin, DID, PURPOSE, "read")
    assert relayer.nonce_of(owner.address) == 0


def test_reused_nonce_is_refused(owner_ledger: TwinLedger, relayer: TwinLedger, owner: LocalAccount, twin: int) -> None:
    signed = ethers_grant(owner_ledger, owner, _request(owner_ledger, twin), nonce=0, deadline=_deadline(owner_ledger))
    relayer.submit_signed(signed)
    owner_ledger.revoke(twin, DID, PURPOSE)  # so that a replay would be visible as a revived grant

    refused = expect_revert("InvalidAccountNonce", lambda: relayer.submit_signed(signed))
    assert refused.args_by_name == {"account": owner.address, "currentNonce": 1}
    assert not relayer.is_authorized(twin, DID, PURPOSE, "read")


def test_expired_deadline_is_refused(
    owner_ledger: TwinLedger, relayer: TwinLedger, owner: LocalAccount, twin: int
) -> None:
    deadline = owner_ledger.client.chain_time() - 1
    signed = ethers_grant(owner_ledger, owner, _request(owner_ledger, twin), nonce=0, deadline=deadline)
    refused = expect_revert("ExpiredSignature", lambda: relayer.submit_signed(signed))
    assert refused.args_by_name["deadline"] == deadline
    assert refused.args_by_name["chainTime"] > deadline
    assert relayer.nonce_of(owner.address) == 0


def test_signature_by_someone_other_than_the_owner_is_refused(
    owner_ledger: TwinLedger,
    relayer: TwinLedger,
    owner: LocalAccount,
    accounts: list[LocalAccount],
    twin: int,
) -> None:
    other = accounts[2]
    request = _request(owner_ledger, twin)
    for signer, nonce in ((other, 0), (STRANGER, 0)):
        signed = ethers_grant(owner_ledger, signer, request, nonce=nonce, deadline=_deadline(owner_ledger))
        refused = expect_revert("InvalidSigner", lambda signed=signed: relayer.submit_signed(signed))
        assert refused.args_by_name == {"twinId": twin, "owner": owner.address}
    # The previous owner's signature stops working once the twin is transferred.
    owner_ledger.transfer(twin, other.address)
    signed = ethers_grant(owner_ledger, owner, request, nonce=0, deadline=_deadline(owner_ledger))
    refused = expect_revert("InvalidSigner", lambda: relayer.submit_signed(signed))
    assert refused.args_by_name == {"twinId": twin, "owner": other.address}
    assert not relayer.is_authorized(twin, DID, PURPOSE, "read")
