"""Operations: liveness, readiness, metrics, and what this node is."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

import twinledger
from twinledger_node.api.deps import Runtime
from twinledger_node.api.models import Health, NodeInfo
from twinledger_node.api.problems import Problem, problem_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, responses={503: {"description": "not ready (problem+json)"}})
def readyz(rt: Runtime) -> Response:
    """Ready when the index has seen the chain head within the freshness window and the store is writable."""
    fresh = rt.index_freshness()
    if not fresh.fresh:
        return problem_response(Problem(503, "not-ready", "Not ready", fresh.reason))
    try:
        with tempfile.TemporaryFile(dir=rt.settings.data_dir):
            pass
    except OSError as error:
        return problem_response(Problem(503, "not-ready", "Not ready", f"the data directory is not writable: {error}"))
    return JSONResponse({"status": "ready", "detail": fresh.reason})


@router.get("/metrics", response_class=Response)
def metrics(rt: Runtime) -> Response:
    """Prometheus metrics."""
    return Response(rt.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/node", response_model=NodeInfo, response_model_by_alias=True)
def node_info(rt: Runtime) -> dict[str, object]:
    """This node's DID (snapshots are sealed to it), chain, contracts and relayer account, and the RPC URL clients
    may use (the operator's public one, or the local anvil's)."""
    local = rt.local_chain
    return {
        "did": rt.node_key.did, "chainId": rt.client.chain_id, "twinLedger": rt.deployment.twin_ledger,
        "federatedLedger": rt.deployment.federated_ledger, "deployBlock": rt.deployment.deploy_block,
        "rpcUrl": rt.settings.public_rpc_url or (rt.client.rpc_url if local is not None else None),
        "relayer": rt.client.account.address if rt.client.account else None, "version": twinledger.__version__,
    }  # fmt: skip
