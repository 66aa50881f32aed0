"""Access receipts: one node-signed record per served read, hash-chained to the previous receipt of the same twin
(a twin's receipts name no other twin's, so its provenance can be handed out on its own).

A receipt is appended by the group committer (services/commit.py): many reads' receipts share one write
transaction and one fsync, each twin's head is read inside that transaction (so N processes sharing state.sqlite
chain one twin's receipts correctly), and the read's nonce is spent in the same transaction. The read's body is
sent only once that transaction is durable."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from twinledger.chain.types import Scope
from twinledger.identity import DidKey, sign_record
from twinledger_node.services.commit import GroupCommitter, ReceiptWork

if TYPE_CHECKING:
    from twinledger_node.auth import Caller, Nonce

RECEIPT_TYPE = "twinledger/access-receipt"


class ReceiptLog:
    def __init__(
        self, commits: GroupCommitter, node_key: DidKey, *, chain_id: int, registry: str, anchorer: str | None
    ) -> None:
        self.commits, self.node_key, self.chain_id, self.registry = commits, node_key, chain_id, registry
        self.anchorer = anchorer

    def append(
        self, *, twin_id: int, seq: int, manifest_cid: str, purpose: bytes, scope: Scope, caller: Caller,
        nonce: Nonce | None = None,
    ) -> Future[dict[str, Any]]:  # fmt: skip
        """Queue the receipt (and the read's nonce) for the next group commit; the future is the signed receipt,
        resolved once it is durable. Raises `Overloaded` when the commit queue is full."""

        def build(previous: str) -> dict[str, Any]:
            created = int(time.time())
            receipt = {
                "type": RECEIPT_TYPE, "version": 1, "chainId": self.chain_id, "registry": self.registry,
                "anchorer": self.anchorer, "twinId": twin_id, "seq": seq, "manifestCid": manifest_cid,
                "reader": caller.did,
                "purpose": "0x" + purpose.hex(), "scope": scope.names(), "time": created,
                "request": {
                    "method": caller.method, "target": caller.target_uri, "keyId": caller.key_id,
                    "signatureInput": caller.signature_input, "signature": caller.signature,
                },
                "previous": previous,
            }  # fmt: skip
            return sign_record(receipt, self.node_key, created=created)

        return self.commits.submit(ReceiptWork(twin_id, build, nonce))
