"""Access receipts: one node-signed record per served read, hash-chained to the previous receipt of the same twin
(a twin's receipts name no other twin's, so its provenance can be handed out on its own)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from twinledger.chain.types import Scope
from twinledger.identity import DidKey, sign_record
from twinledger.provenance import RECEIPT_GENESIS, receipt_digest
from twinledger_node.auth import Caller
from twinledger_node.state import NodeState

RECEIPT_TYPE = "twinledger/access-receipt"


class ReceiptLog:
    def __init__(
        self, state: NodeState, node_key: DidKey, *, chain_id: int, registry: str, anchorer: str | None
    ) -> None:
        self.state, self.node_key, self.chain_id, self.registry = state, node_key, chain_id, registry
        self.anchorer = anchorer
        self._lock = threading.Lock()  # one chain: appends are serialised

    def append(
        self, *, twin_id: int, seq: int, manifest_cid: str, purpose: bytes, scope: Scope, caller: Caller
    ) -> dict[str, Any]:
        with self._lock:
            last = (
                self.state.connection()
                .execute("SELECT digest FROM receipts WHERE twin_id = ? ORDER BY id DESC LIMIT 1", (twin_id,))
                .fetchone()
            )
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
                "previous": last["digest"] if last else RECEIPT_GENESIS,
            }  # fmt: skip
            signed = sign_record(receipt, self.node_key, created=created)
            digest = "0x" + receipt_digest(signed).hex()
            with self.state.write() as db:
                db.execute(
                    "INSERT INTO receipts (twin_id, seq, reader, purpose, digest, body, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (twin_id, seq, caller.did, "0x" + purpose.hex(), digest, json.dumps(signed), created),
                )
            return signed
