"""Gasless consent: owners sign EIP-712 grants and revocations; the node checks them and pays to submit them."""

from __future__ import annotations

import time

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from web3 import Web3

from twinledger.chain.client import TxResult
from twinledger.chain.ledger import GRANT_TYPES, REVOKE_TYPES, SignedConsent, TwinLedger
from twinledger_node.db.base import Connection
from twinledger_node.indexer.db import IndexDB
from twinledger_node.problem import Problem
from twinledger_node.state import NodeState

ERC1271_MAGIC = bytes.fromhex("1626ba7e")  # isValidSignature(bytes32,bytes).selector
ERC1271_ABI = [
    {"type": "function", "name": "isValidSignature", "stateMutability": "view",
     "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
     "outputs": [{"name": "", "type": "bytes4"}]},
]  # fmt: skip


class RateLimiter:
    """At most `limit` events per `window` seconds per key (a sliding window), counted in the node's state database:
    the node's API processes and its replicas share one budget. Wall-clock times, as replicas share no other clock;
    a key never holds more than `limit` live rows, so a count reads at most that many."""

    def __init__(self, state: NodeState, limit: int, window: float = 60.0) -> None:
        self.state, self.limit, self.window = state, limit, window
        self._pruned = 0.0

    def _live(self, conn: Connection, key: str, now: float) -> int:
        if now - self._pruned > self.window:  # the rows of keys that never came back, once per window
            self._pruned = now
            conn.execute("DELETE FROM rate_events WHERE at <= ?", (now - self.window,))
        row = conn.execute("SELECT COUNT(*) FROM rate_events WHERE key = ? AND at > ?", (key, now - self.window))
        return int(row.fetchone()[0])

    def full(self, key: str) -> bool:
        now = time.time()
        row = self.state.connection().execute(
            "SELECT COUNT(*) FROM rate_events WHERE key = ? AND at > ?", (key, now - self.window)
        )
        return int(row.fetchone()[0]) >= self.limit

    def record(self, key: str) -> None:
        """Count an event whether or not the key is over its limit (refused traffic keeps a client limited)."""
        self.allow(key)

    def allow(self, key: str) -> bool:
        """Count the event if the key is under its limit; False (nothing counted) if it is not."""
        now = time.time()
        with self.state.write() as conn:  # count and insert under the database's writer lock: no two processes both
            if self._live(conn, key, now) >= self.limit:  # take the last slot
                return False
            conn.execute("INSERT INTO rate_events (key, at) VALUES (?, ?)", (key, now))
        return True


class Relayer:
    """Only a consent whose signature is verified is counted against its signer, once every check passed, and
    grants and revocations have separate quotas, so neither someone else's traffic nor the owner's own grants can
    starve a revocation. Refused consents are counted against the client address that sent them; once that budget
    is spent, the client's consents that do not verify locally (by ecrecover) are refused before any RPC call."""

    def __init__(
        self, ledger: TwinLedger, index: IndexDB, state: NodeState, *, per_signer_per_minute: int,
        unverified_per_client_per_minute: int,
    ) -> None:  # fmt: skip
        self.ledger, self.index = ledger, index
        self.limiter = RateLimiter(state, per_signer_per_minute)
        self.refused = RateLimiter(state, unverified_per_client_per_minute)

    def check(
        self, consent: SignedConsent, *, chain_id: int | None, contract: str | None, chain_now: int, client: str
    ) -> str:
        """Everything that can be checked before paying gas; returns the twin's owner."""
        try:
            owner = self._verified_owner(consent, chain_id=chain_id, contract=contract, chain_now=chain_now,
                                         client=client)  # fmt: skip
        except Problem as refusal:
            if refusal.slug != "relay/client-rate-limited":
                self.refused.record(client)
            raise
        if not self.limiter.allow(f"{owner.lower()}/{consent.action}"):
            raise Problem(429, "rate-limited", "Too many relayed consents",
                          f"the owner {owner} reached this node's limit of relayed {consent.action}s per minute",
                          hint="wait a minute, or submit the transaction yourself")  # fmt: skip
        return owner

    def _verified_owner(
        self, consent: SignedConsent, *, chain_id: int | None, contract: str | None, chain_now: int, client: str
    ) -> str:
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
        index = self.index.connection()
        row = index.execute("SELECT owner FROM twins WHERE twin_id = ?", (consent.twin_id,)).fetchone()
        if row is None:
            raise Problem(404, "unknown-twin", "Unknown twin", f"twin {consent.twin_id} is not registered")
        owner = str(row["owner"])
        signable = self._signable(consent)
        recovered = self._recover(signable, consent.signature)
        if recovered is None or recovered.lower() != owner.lower():
            # Not the owner's EOA signature: only an ERC-1271 wallet owner can still accept it, which takes RPC calls
            # that a client whose consents keep being refused no longer gets.
            if self.refused.full(client):
                raise Problem(429, "relay/client-rate-limited", "Too many refused consents from this client",
                              f"{client} sent more than {self.refused.limit} consents this node refused in a minute",
                              hint="wait a minute; consents signed by the twin's owner are still relayed")  # fmt: skip
            if not self._wallet_accepts(owner, signable, consent.signature):
                signer = f"recovers to {recovered}" if recovered else "is not a valid ECDSA signature"
                raise Problem(401, "not-owner-signature", "Not signed by the twin's owner",
                              f"the signature {signer}, but twin {consent.twin_id} is owned by {owner}",
                              hint="the current owner must sign; check the domain's chain id and contract")  # fmt: skip
        indexed = index.execute("SELECT next FROM nonces WHERE owner = ?", (owner,)).fetchone()
        # The index may lag the chain (then its nonce is lower): a consent below it is stale without asking the chain.
        nonce = self.ledger.nonce_of(owner) if consent.nonce >= (indexed["next"] if indexed else 0) else None
        if consent.nonce != nonce:
            expected = f"the owner's next nonce is {nonce}" if nonce is not None else "that nonce is used"
            raise Problem(409, "wrong-nonce", "Nonce already used or out of order",
                          f"the consent carries nonce {consent.nonce}; {expected}",
                          hint="sign a new consent with the current nonce")  # fmt: skip
        return owner

    def _signable(self, consent: SignedConsent) -> SignableMessage:
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
        return encode_typed_data(self.ledger.domain(), types, message)

    @staticmethod
    def _recover(signable: SignableMessage, signature: bytes) -> str | None:
        try:
            return str(Account.recover_message(signable, signature=signature))
        except Exception:  # not a 65-byte ECDSA signature: an ERC-1271 wallet may still accept it
            return None

    def _wallet_accepts(self, owner: str, signable: SignableMessage, signature: bytes) -> bool:
        """ERC-1271, as the contract checks it: the owner is a contract whose isValidSignature returns its selector."""
        digest = bytes(Web3.keccak(b"\x19" + signable.version + signable.header + signable.body))  # EIP-712 hash
        w3 = self.ledger.client.w3
        address = Web3.to_checksum_address(owner)
        if not w3.eth.get_code(address):
            return False
        wallet = w3.eth.contract(address=address, abi=ERC1271_ABI)
        try:
            return bytes(wallet.functions.isValidSignature(digest, signature).call()) == ERC1271_MAGIC
        except Exception:  # a reverting or non-conforming wallet accepts nothing
            return False

    def submit(
        self, consent: SignedConsent, *, chain_id: int | None, contract: str | None, chain_now: int, client: str
    ) -> TxResult:
        self.check(consent, chain_id=chain_id, contract=contract, chain_now=chain_now, client=client)
        return self.ledger.submit_signed(consent)
