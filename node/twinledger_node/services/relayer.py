"""Gasless consent: owners sign EIP-712 grants and revocations; the node checks them and pays to submit them."""

from __future__ import annotations

import collections
import threading
import time

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from twinledger.chain.client import TxResult
from twinledger.chain.ledger import GRANT_TYPES, REVOKE_TYPES, SignedConsent, TwinLedger
from twinledger_node.api.problems import Problem
from twinledger_node.indexer.db import IndexDB


class RateLimiter:
    """At most `limit` events per `window` seconds per key (sliding window, in memory)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._events: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events[key]
            while events and now - events[0] > self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True


class Relayer:
    def __init__(self, ledger: TwinLedger, index: IndexDB, *, per_signer_per_minute: int) -> None:
        self.ledger, self.index = ledger, index
        self.limiter = RateLimiter(per_signer_per_minute)

    def check(self, consent: SignedConsent, *, chain_id: int | None, contract: str | None, chain_now: int) -> str:
        """Everything that can be checked before paying gas; returns the twin's owner."""
        if chain_id is not None and chain_id != self.ledger.client.chain_id:
            raise Problem(400, "wrong-chain", "Signed for another chain",
                          f"the consent was signed for chain {chain_id}; this node relays to chain "
                          f"{self.ledger.client.chain_id}", hint="sign again with this node's chain id")  # fmt: skip
        if contract is not None and contract.lower() != self.ledger.address.lower():
            raise Problem(400, "wrong-contract", "Signed for another contract",
                          f"the consent names {contract}; this node relays to {self.ledger.address}")  # fmt: skip
        if consent.deadline < chain_now:
            raise Problem(400, "signature-expired", "Signature past its deadline",
                          f"the deadline {consent.deadline} is before chain time {chain_now}",
                          hint="ask the owner to sign again with a later deadline")  # fmt: skip
        row = (
            self.index.connection().execute("SELECT owner FROM twins WHERE twin_id = ?", (consent.twin_id,)).fetchone()
        )
        if row is None:
            raise Problem(404, "unknown-twin", "Unknown twin", f"twin {consent.twin_id} is not registered")
        owner = str(row["owner"])
        if not self.limiter.allow(owner.lower()):
            raise Problem(429, "rate-limited", "Too many relayed consents",
                          f"the owner {owner} reached this node's limit of relayed consents per minute",
                          hint="wait a minute, or submit the transaction yourself")  # fmt: skip
        code = self.ledger.client.w3.eth.get_code(Web3.to_checksum_address(owner))
        if not code:  # an EOA owner: the signature must recover to it (contract wallets are checked by simulation)
            recovered = self._recover(consent)
            if recovered.lower() != owner.lower():
                raise Problem(401, "not-owner-signature", "Not signed by the twin's owner",
                              f"the signature recovers to {recovered}, but twin {consent.twin_id} is owned by {owner}",
                              hint="the current owner must sign; check the domain's chain id and contract")  # fmt: skip
        nonce = self.ledger.nonce_of(owner)
        if consent.nonce != nonce:
            raise Problem(409, "wrong-nonce", "Nonce already used or out of order",
                          f"the consent carries nonce {consent.nonce}; the owner's next nonce is {nonce}",
                          hint="sign a new consent with the current nonce")  # fmt: skip
        return owner

    def _recover(self, consent: SignedConsent) -> str:
        if consent.action == "grant":
            types, message = GRANT_TYPES, {
                "twinId": consent.twin_id, "did": consent.did, "purpose": consent.purpose,
                "scopes": int(consent.scopes), "expiry": consent.expiry, "nonce": consent.nonce,
                "deadline": consent.deadline,
            }  # fmt: skip
        else:
            types, message = REVOKE_TYPES, {
                "twinId": consent.twin_id, "did": consent.did, "purpose": consent.purpose,
                "nonce": consent.nonce, "deadline": consent.deadline,
            }  # fmt: skip
        try:
            signable = encode_typed_data(self.ledger.domain(), types, message)
            return str(Account.recover_message(signable, signature=consent.signature))
        except Exception:  # malformed signatures of every kind
            raise Problem(400, "malformed-signature", "Malformed signature",
                          "the signature is not a 65-byte ECDSA signature") from None  # fmt: skip

    def submit(self, consent: SignedConsent, *, chain_id: int | None, contract: str | None, chain_now: int) -> TxResult:
        self.check(consent, chain_id=chain_id, contract=contract, chain_now=chain_now)
        return self.ledger.submit_signed(consent)
