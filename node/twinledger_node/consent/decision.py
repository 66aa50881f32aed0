"""Whether a DID may use a twin for a purpose with a scope, decided from the index alone (never the chain).

Mirrors ConsentRegistry.isAuthorized exactly: a grant is live while the twin is still in the ownership period the
grant was given in (no transfer since, so also not one there and back) and chain time is before its expiry; grants
on ancestors reach a twin when they carry INHERIT, are live on their ancestor, and that ancestor is owned by the
twin's own owner, up to MAX_DEPTH ancestors. Unlike the contract it says *why* a request is refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from twinledger.chain.types import Scope
from twinledger_node.db.base import Connection, Row

MAX_DEPTH = 8  # TwinRegistry.MAX_DEPTH
RIGHTS = Scope.READ | Scope.WRITE | Scope.TRAIN | Scope.AUDIT


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    UNKNOWN_TWIN = "unknown-twin"
    NO_GRANT = "no-grant"
    WRONG_PURPOSE = "wrong-purpose"
    WRONG_SCOPE = "wrong-scope"
    EXPIRED = "grant-expired"
    REVOKED = "grant-revoked"
    EARLIER_PERIOD = "grant-from-earlier-period"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    detail: str
    via_twin: int | None = None  # the twin whose grant allowed it (an ancestor when inherited)
    grant_tx: str | None = None
    expiry: int | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def decide(
    conn: Connection, twin_id: int, did_hash: bytes, purpose: bytes, scope: Scope, chain_now: int, *,
    twin: Row | None = None,
) -> Decision:  # fmt: skip
    """The index's decision for `did_hash` on `twin_id` (`twin`: its row, when the caller has read it already)."""
    scope = Scope(int(scope) & int(RIGHTS))
    if not scope:
        return Decision(Outcome.WRONG_SCOPE, "no right requested")
    if twin is None:
        twin = conn.execute("SELECT owner, parent_id, period FROM twins WHERE twin_id = ?", (twin_id,)).fetchone()
    if twin is None:
        return Decision(Outcome.UNKNOWN_TWIN, f"twin {twin_id} is not registered")
    owner = twin["owner"]
    chain: list[tuple[int, bool, int]] = [(twin_id, False, int(twin["period"]))]  # (twin, needs INHERIT, period)
    parent, depth = int(twin["parent_id"]), 0
    while parent and depth < MAX_DEPTH:
        row = conn.execute("SELECT owner, parent_id, period FROM twins WHERE twin_id = ?", (parent,)).fetchone()
        if row is None:
            break
        if row["owner"] == owner:  # consent never crosses from one owner's twins to another's
            chain.append((parent, True, int(row["period"])))
        parent, depth = int(row["parent_id"]), depth + 1
    refusal: Decision | None = None
    for candidate, inherited, period in chain:
        grant = conn.execute(
            "SELECT * FROM grants WHERE twin_id = ? AND did_hash = ? AND purpose = ?",
            (candidate, _hex(did_hash), _hex(purpose)),
        ).fetchone()
        if grant is None:
            continue
        needed = scope | Scope.INHERIT if inherited else scope
        where = f"twin {candidate}" + (" (inherited)" if inherited else "")
        if grant["revoked_block"] is not None:
            found = Decision(Outcome.REVOKED, f"the grant on {where} was revoked in block {grant['revoked_block']}")
        elif int(grant["period"]) != period:
            found = Decision(
                Outcome.EARLIER_PERIOD,
                f"the grant on {where} was given in ownership period {grant['period']} by {grant['grantor']}; the "
                f"twin has changed hands since (now in period {period}), which ends a grant for good",
            )
        elif chain_now >= int(grant["expiry"]):
            found = Decision(Outcome.EXPIRED, f"the grant on {where} expired at {grant['expiry']}")
        elif int(grant["scopes"]) & int(needed) != int(needed):
            have = ",".join(Scope(int(grant["scopes"])).names())
            found = Decision(Outcome.WRONG_SCOPE, f"the grant on {where} covers {have}, not {','.join(needed.names())}")
        else:
            return Decision(Outcome.ALLOWED, f"granted on {where}", candidate, grant["tx_hash"], int(grant["expiry"]))
        refusal = refusal or found
    if refusal is not None:
        return refusal
    other = conn.execute(
        "SELECT 1 FROM grants WHERE twin_id = ? AND did_hash = ? AND revoked_block IS NULL LIMIT 1",
        (twin_id, _hex(did_hash)),
    ).fetchone()
    if other is not None:
        return Decision(Outcome.WRONG_PURPOSE, f"grants on twin {twin_id} for this DID are for other purposes")
    return Decision(Outcome.NO_GRANT, f"no grant on twin {twin_id} for this DID and purpose")
