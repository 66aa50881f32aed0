"""Dependencies shared by the routers: the runtime, the authenticated caller, and the consent check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query, Request

from twinledger.chain.types import Scope, purpose_code
from twinledger.errors import InvalidInput
from twinledger.identity import did_hash
from twinledger_node.api.problems import Problem
from twinledger_node.auth import AuthProblem, Caller
from twinledger_node.consent.decision import Decision, Outcome, decide
from twinledger_node.db.base import Row
from twinledger_node.problem import PROBLEM_TYPE_BASE
from twinledger_node.runtime import NodeRuntime

TITLES = {
    Outcome.UNKNOWN_TWIN: (404, "Unknown twin"),
    Outcome.NO_GRANT: (403, "No grant"),
    Outcome.WRONG_PURPOSE: (403, "No grant for this purpose"),
    Outcome.WRONG_SCOPE: (403, "Grant does not cover this scope"),
    Outcome.EXPIRED: (403, "Grant expired"),
    Outcome.REVOKED: (403, "Grant revoked"),
    Outcome.EARLIER_PERIOD: (403, "Grant given in an earlier ownership period"),
}


# The contracts' bounds (TwinRegistry stores ids as uint40, sequence numbers as uint32); larger values cannot name
# anything and would overflow SQLite's 64-bit integers.
MAX_TWIN_ID = 2**40 - 1
MAX_SEQ = 2**32 - 1
TwinId = Annotated[int, Path(ge=1, le=MAX_TWIN_ID, description="twin id")]
Seq = Annotated[int, Path(ge=1, le=MAX_SEQ, description="snapshot sequence number")]
After = Annotated[int, Query(ge=0, le=MAX_SEQ, description="position to continue after (from `next`)")]
Limit = Annotated[int, Query(ge=1, le=1000)]


# Dependencies are async where their work is CPU-light (or a few indexed SQLite reads): FastAPI runs a sync
# dependency in a worker thread, and on the read path those hops cost more than the work.
def runtime_of(request: Request) -> NodeRuntime:
    return request.app.state.runtime


async def runtime(request: Request) -> NodeRuntime:
    return runtime_of(request)


Runtime = Annotated[NodeRuntime, Depends(runtime)]


async def authenticated(request: Request) -> Caller:
    rt = runtime_of(request)
    try:
        return await rt.auth(request)
    except AuthProblem as problem:  # nobody to name: counted, never written to a twin's log (services/denials.py)
        rt.metrics.denials_unattributed.labels(str(problem.problem["type"]).removeprefix(PROBLEM_TYPE_BASE)).inc()
        raise


# Its nonce is spent durably by the end of the request whatever the route did: by the route's own commit, or else
# by auth.SpendLeftoverNonces.
AuthenticatedCaller = Annotated[Caller, Depends(authenticated)]


async def optional_caller(request: Request) -> Caller | None:
    """The verified caller of a route that serves the public anyway and a signed caller more: None when the request
    carries no signature; one that carries a bad one is refused, as everywhere (it is not taken for anonymous)."""
    if "signature" not in request.headers and "signature-input" not in request.headers:
        return None
    return await authenticated(request)


OptionalCaller = Annotated[Caller | None, Depends(optional_caller)]


def parse_purpose(purpose: str | None, *, required: bool = True) -> bytes | None:
    if purpose is None or not purpose.strip():
        if required:
            raise Problem(400, "purpose-required", "Purpose required", "say what the data is for: ?purpose=...",
                          hint="e.g. ?purpose=research, or a DPV IRI such as dpv:ScientificResearch")  # fmt: skip
        return None
    try:
        return purpose_code(purpose)
    except InvalidInput as error:
        raise Problem(400, "bad-purpose", "Bad purpose", error.message) from None


@dataclass(frozen=True)
class Consent:
    """A caller let through for a twin: as its owner, or by a live grant."""

    caller: Caller
    twin: Row
    purpose: bytes
    scope: Scope
    decision: Decision | None  # None when the caller is the owner

    @property
    def as_owner(self) -> bool:
        return self.decision is None


PurposeQuery = Annotated[str | None, Query(description="why the data is used, e.g. research")]
T = TypeVar("T")


def consent_required(scope: Scope):
    """A dependency that admits the twin's owner, or a DID whose live grant covers `scope` for `?purpose=`."""

    async def check(rt: Runtime, caller: AuthenticatedCaller, twin_id: TwinId, purpose: PurposeQuery = None) -> Consent:
        consent, _ = await admitted(rt, caller, twin_id, purpose, scope, lambda _: None)
        return consent

    return check


async def admitted(
    rt: NodeRuntime, caller: Caller, twin_id: int, purpose: str | None, scope: Scope, then: Callable[[Consent], T]
) -> tuple[Consent, T]:
    """The consent decision (`admit`), then `then(consent)`: what the route reads once the caller is let in, in the
    same call of the database's query threads on PostgreSQL (each trip from the event loop to them and back waits
    for a pass of a busy loop: a read's decision and row lookup take one, not two)."""
    rt.require_fresh()
    code = parse_purpose(purpose, required=False)

    def both() -> tuple[Consent, T]:
        consent = admit(rt, caller, twin_id, code, purpose, scope)
        return consent, then(consent)

    return await rt.index.run(both)


def admit(
    rt: NodeRuntime, caller: Caller, twin_id: int, code: bytes | None, purpose: str | None, scope: Scope
) -> Consent:
    """The consent decision of `consent_required`: the twin's owner, or a live grant covering `scope`."""
    twin = rt.snapshots.twin(twin_id)
    if rt.snapshots.is_owner(twin, caller.did):
        rt.metrics.decisions.labels("owner").inc()
        return Consent(caller, twin, code or NO_PURPOSE, scope, None)
    if code is None:
        if acts_as_an_owner(rt, caller.did):  # e.g. the owner before a transfer: say so, not "give a purpose"
            raise refused(rt, caller, twin_id, NO_PURPOSE, scope, Problem(
                403, "not-owner", "Not the twin's owner",
                f"{caller.did} does not own twin {twin_id}; {twin['owner']} does (a transfer ends the previous "
                "owner's access to the twin, its snapshots included)",
                hint="read under a grant of the current owner: they run `twinledger consent grant ...`, you pass "
                "a purpose (?purpose=...)",
            ))  # fmt: skip
        parse_purpose(purpose)  # raises the purpose-required problem
        raise AssertionError("unreachable")
    decision = decide(rt.index.connection(), twin_id, did_hash(caller.did), code, scope, rt.chain_now(), twin=twin)
    rt.metrics.decisions.labels(decision.outcome.value).inc()
    if not decision.allowed:
        status, title = TITLES[decision.outcome]
        grant_cmd = f"twinledger consent grant {twin_id} {caller.did} --scope {','.join(scope.names())} --purpose ..."
        problem = Problem(status, f"consent/{decision.outcome.value}", title, decision.detail,
                          hint=f"ask the twin's owner to run `{grant_cmd}`")  # fmt: skip
        raise refused(rt, caller, twin_id, code, scope, problem)
    return Consent(caller, twin, code, scope, decision)


NO_PURPOSE = b"\x00" * 32  # what a record names when the caller gave none (as an owner's read does)


def refused(rt: NodeRuntime, caller: Caller, twin_id: int, purpose: bytes, scope: Scope, problem: Problem) -> Problem:
    """`problem`, the refusal of a verified caller's read of a registered twin, once noted in the twin's log
    (services/denials.py: a signed denial record, or a count past its bounds; nothing is waited for)."""
    rt.denials.refused(caller, twin_id, purpose, scope, problem)
    return problem


def owner_required(action: str):
    """A dependency that admits the twin's owner alone (its account's did:pkh or its registered recovery key), on a
    fresh index: no grant, whatever its scopes, lets anyone else `action`."""

    async def check(rt: Runtime, caller: AuthenticatedCaller, twin_id: TwinId) -> Consent:
        rt.require_fresh()

        def owner() -> Consent:
            twin = rt.snapshots.twin(twin_id)
            if not rt.snapshots.is_owner(twin, caller.did):
                raise refused(rt, caller, twin_id, NO_PURPOSE, Scope.READ, Problem(
                    403, "not-owner", "Not the twin's owner",
                    f"{caller.did} does not own twin {twin_id} ({twin['owner']} does); only its owner may {action}",
                    hint="sign with the owner's wallet; a grantee reads snapshots one by one (`twinledger snapshot "
                    "get TWIN SEQ --purpose ...`)",
                ))  # fmt: skip
            rt.metrics.decisions.labels("owner").inc()
            return Consent(caller, twin, NO_PURPOSE, Scope.READ, None)

        return await rt.index.run(owner)

    return check


def acts_as_an_owner(rt: NodeRuntime, did: str) -> bool:
    """Whether `did` speaks for an account (did:pkh) or is some account's registered recovery key: a caller who
    reads with no purpose believes they own the twin."""
    return did.startswith("did:pkh:") or bool(rt.snapshots.owners_recovered_by(did))


def sees_plaintext_facts(rt: NodeRuntime, consent: Consent) -> bool:
    """Whether `consent` may see what is derived from a snapshot's plaintext: its sha256 and size, the ciphertext's
    CID (and so its length), the manifest that names them. The owner may, and so may a DID whose grant for this
    purpose also covers READ (it could read the plaintext itself); an AUDIT-only grantee may not, as a sha256 or a
    size is enough to confirm a guessed low-entropy reading."""
    if consent.as_owner:
        return True
    read = decide(
        rt.index.connection(), int(consent.twin["twin_id"]), did_hash(consent.caller.did), consent.purpose,
        Scope.READ, rt.chain_now(),
    )  # fmt: skip
    return read.allowed
