"""What the node pays for others, bounded per DID: each DID may make the node spend at most `per_did` gas per
window (24 h) on transactions sent for it (federated tasks, relayed commits, checkpoints).

Before a transaction the caller's budget must still hold the operation's ceiling, which is reserved at once (so
concurrent requests cannot overdraw it); afterwards the reservation is replaced by the gas actually used. One row
per DID, so the check costs the same however much has been spent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twinledger.chain.client import TxResult
from twinledger.chain.ledger import FederatedLedger
from twinledger_node.db.statements import upsert
from twinledger_node.problem import Problem
from twinledger_node.state import NodeState

WINDOW_SECONDS = 24 * 3600
_meter = threading.local()


class MeteredFederatedLedger(FederatedLedger):
    """FederatedLedger bindings that report the gas of every transaction to the budget being spent, if any."""

    def _send(self, fn: Any) -> TxResult:
        result = super()._send(fn)
        used: list[int] | None = getattr(_meter, "used", None)
        if used is not None:
            used.append(result.gas_used)
        return result


class GasBudget:
    def __init__(self, state: NodeState, per_did: int, *, window: float = WINDOW_SECONDS) -> None:
        self.state, self.per_did, self.window = state, per_did, window
        self._lock = threading.Lock()

    def spent(self, did: str) -> int:
        row = self.state.connection().execute("SELECT * FROM gas_spent WHERE did = ?", (did,)).fetchone()
        return 0 if row is None or time.time() - row["window_start"] >= self.window else int(row["gas"])

    @contextmanager
    def spend(self, did: str, ceiling: int) -> Iterator[None]:
        """Reserve `ceiling` gas of `did`'s budget (429 problem if it does not fit), run the block (whose
        FederatedLedger transactions in this thread are metered), then charge what they used."""
        with self._lock:
            now = time.time()
            row = self.state.connection().execute("SELECT * FROM gas_spent WHERE did = ?", (did,)).fetchone()
            start, gas = (now, 0) if row is None or now - row["window_start"] >= self.window else (
                row["window_start"], int(row["gas"]))  # fmt: skip
            if gas + ceiling > self.per_did:
                raise Problem(
                    429, "fl/gas-budget-exhausted", "Gas budget exhausted",
                    f"{did} has had this node spend {gas:,} of its {self.per_did:,} gas per 24 h; this request may "
                    f"need up to {ceiling:,} more",
                    hint="retry after the budget window ends, or pay for the transaction with your own account",
                    did=did, budget=self.per_did, spent=gas, retryAfter=int(start + self.window - now) + 1,
                )  # fmt: skip
            self._write(did, start, gas + ceiling)
        used: list[int] = []
        _meter.used = used
        try:
            yield
        finally:
            _meter.used = None
            with self._lock:
                row = self.state.connection().execute("SELECT * FROM gas_spent WHERE did = ?", (did,)).fetchone()
                self._write(did, row["window_start"], max(0, int(row["gas"]) - ceiling + sum(used)))

    def _write(self, did: str, start: float, gas: int) -> None:
        with self.state.write() as db:
            db.execute(upsert("gas_spent", ("did", "window_start", "gas"), ("did",)), (did, start, gas))
