"""/v1/fl/tasks: federated tasks with the node as aggregator — create, submit an update, round status, checkpoint.

Every request is DID-signed. Tasks are opened only by DIDs the operator allows, and checkpointed only by the DID
that opened them. An update is submitted by the twin's owner (or its recovery did:key) together with the owner
account's EIP-712 signature of the commit, which the node's account relays (`commitUpdateBySig`): the node needs
no ERC-721 approval, so it can neither grant consent in the owner's name nor transfer the twin. The contract (and,
first, the node) refuses twins whose owner has not granted TRAIN for the task's purpose to the node's DID.
Committed updates appear in the twin's audit trail as federated uses (UpdateCommitted events). The gas the node
pays for each DID is bounded (429 when spent).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from twinledger.chain.ledger import SignedCommit
from twinledger.errors import AuthError, InvalidInput
from twinledger.federated import deserialize
from twinledger.federated.participant import CommitSignerMismatch
from twinledger_node.api.deps import MAX_TWIN_ID, AuthenticatedCaller, Runtime, parse_purpose
from twinledger_node.api.limits import upload
from twinledger_node.api.problems import Problem, problem_responses
from twinledger_node.runtime import NodeRuntime
from twinledger_node.services.federated import FederatedService

router = APIRouter(prefix="/v1/fl/tasks", tags=["federated"])
# The index keeps task ids, rounds and sample counts as SQLite integers: larger values name nothing it holds.
MAX_INDEXED = 2**63 - 1
TaskId = Annotated[int, Path(ge=1, le=MAX_INDEXED, description="task id")]
Round = Annotated[int, Path(ge=1, le=MAX_INDEXED, description="round number")]


@functools.cache
def _service(rt: NodeRuntime) -> FederatedService:
    return FederatedService(rt)


@router.post("", status_code=201, responses=problem_responses(400, 401, 403, 409, 413, 429, 503))
@upload
async def create_task(
    request: Request,
    rt: Runtime,
    caller: AuthenticatedCaller,
    purpose: Annotated[str | None, Query(description="what the model is trained for, e.g. research")] = None,
    encrypt: Annotated[bool, Query(description="participants encrypt updates to the node's did:key")] = False,
) -> dict[str, Any]:
    """Open a task aggregated by this node; the body is the initial model as a tensor file."""
    code = parse_purpose(purpose)
    assert code is not None
    arrays = deserialize(await request.body())
    # pinning and a chain transaction: blocking work, kept off the event loop
    spec = await run_in_threadpool(_service(rt).open_task, caller.did, code, arrays, encrypt=encrypt)
    return {**spec.to_json(), "createdBy": caller.did}


@router.post(
    "/{task_id}/rounds/{round_}/updates", status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)  # fmt: skip
@upload
async def submit_update(
    request: Request,
    rt: Runtime,
    caller: AuthenticatedCaller,
    task_id: TaskId,
    round_: Round,
    twin_id: Annotated[int, Query(alias="twinId", ge=1, le=MAX_TWIN_ID)],
    num_samples: Annotated[int, Query(alias="numSamples", ge=1, le=MAX_INDEXED)],
    sha256: Annotated[str | None, Header(alias="Twinledger-Update-Sha256")] = None,
    commit_signature: Annotated[str | None, Header(alias="Twinledger-Commit-Signature")] = None,
    commit_deadline: Annotated[int | None, Header(alias="Twinledger-Commit-Deadline")] = None,
) -> dict[str, Any]:
    """Submit twin `twinId`'s update (a tensor file) to the open round; only the twin's owner may, with the owner
    account's EIP-712 signature of the commit (`Commit(taskId, round, twinId, updateDigest, numSamples, deadline)`,
    domain "twinledger-federated") in `Twinledger-Commit-Signature` and its deadline in
    `Twinledger-Commit-Deadline`."""
    rt.require_fresh()
    twin = rt.snapshots.twin(twin_id)
    if not rt.snapshots.is_owner(twin, caller.did):
        raise Problem(403, "fl/not-owner", "Not the twin's owner", f"{caller.did} does not own twin {twin_id}",
                      hint="sign the request with the owner's did:pkh or registered recovery key")  # fmt: skip
    expected = None
    if sha256 is not None:
        try:
            expected = bytes.fromhex(sha256.removeprefix("0x"))
        except ValueError:
            raise InvalidInput("Twinledger-Update-Sha256 is not hex", hint="send the sha256 of the body") from None
    if commit_signature is None or commit_deadline is None:
        raise Problem(400, "fl/commit-signature-required", "Signed commit required",
                      f"the update of twin {twin_id} comes without the owner's signed commit "
                      f"(Twinledger-Commit-Signature {'missing' if commit_signature is None else 'given'}, "
                      f"Twinledger-Commit-Deadline {'missing' if commit_deadline is None else 'given'})",
                      hint="sign the commit with the twin owner's key (FederatedLedger.sign_commit) and send both "
                      "headers; the node relays it and needs no approval for the twin")  # fmt: skip
    try:
        signature = bytes.fromhex(commit_signature.removeprefix("0x"))
    except ValueError:
        raise Problem(400, "fl/bad-commit-signature", "Commit signature is not hex",
                      f"Twinledger-Commit-Signature {commit_signature[:20]!r} is not hex",
                      hint="send the 65-byte signature as 0x-prefixed hex") from None  # fmt: skip
    if commit_deadline <= rt.chain_now():
        raise Problem(400, "fl/commit-signature-expired", "Signed commit expired",
                      f"the commit's deadline {commit_deadline} has passed (chain time {rt.chain_now()})",
                      hint="sign the commit again with a deadline a few minutes ahead")  # fmt: skip
    body = await request.body()
    digest = expected if expected is not None else hashlib.sha256(body).digest()
    signed = SignedCommit(task_id, round_, twin_id, digest, num_samples, commit_deadline, signature)
    try:
        submitted = await run_in_threadpool(
            _service(rt).submit, caller.did, task_id, round_, twin_id, body, num_samples,
            expected_digest=expected, signed=signed,
        )  # fmt: skip
    except CommitSignerMismatch as error:
        raise Problem(403, "fl/bad-commit-signer", "Commit not signed by the owner", error.message,
                      hint=error.hint) from None  # fmt: skip
    except AuthError as error:
        raise Problem(403, "fl/not-authorized", "Training not authorized", error.message, hint=error.hint) from None
    return {
        "taskId": task_id,
        "round": round_,
        "twinId": twin_id,
        "digest": "0x" + submitted.digest.hex(),
        "numSamples": num_samples,
        "record": str(submitted.record_cid),
        "content": str(submitted.content_cid),
        "tx": submitted.tx.tx_hash,
    }


@router.get("/{task_id}/rounds/{round_}", responses=problem_responses(400, 401, 403, 404, 503))
def round_status(rt: Runtime, caller: AuthenticatedCaller, task_id: TaskId, round_: Round) -> dict[str, Any]:
    """The round's committed updates, its checkpoint (when there is one) and what was excluded and why; for the
    task's creator and the owners of twins that committed to it."""
    rt.require_fresh()
    service = _service(rt)
    service.require_member(caller.did, task_id)
    status = service.round_status(task_id, round_)
    if status is None:
        raise Problem(404, "fl/unknown-task", "Unknown task", f"task {task_id} is not indexed on this node")
    return status


@router.post("/{task_id}/rounds/{round_}/checkpoint", responses=problem_responses(400, 401, 403, 404, 409, 429))
def checkpoint(rt: Runtime, caller: AuthenticatedCaller, task_id: TaskId, round_: Round) -> dict[str, Any]:
    """Aggregate and checkpoint the open round, then verify it; only the DID that opened the task may (and the
    node's account must be the task's aggregator on chain)."""
    service = _service(rt)
    try:
        result = service.checkpoint(caller.did, task_id, round_)
    except AuthError as error:
        raise Problem(403, "fl/not-aggregator", "Not the aggregator", error.message, hint=error.hint) from None
    report = service.verifier.verify_round(task_id, round_)
    return {**result.record.to_json(), "record": str(result.record_cid), "tx": result.tx.tx_hash, "verified": report.ok}
