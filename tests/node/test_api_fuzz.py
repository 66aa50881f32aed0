"""API fuzzing: schemathesis generates requests for every operation of the node's OpenAPI and sends them over
HTTP; no request may produce a 5xx or a response that contradicts the schema.

Each operation is fuzzed with schema-valid (positive) and schema-violating (negative) data, unsigned and signed
(as the owner's recovery key, so the handlers behind the authentication are reached too). Negative data must be
refused with a 4xx (`negative_data_rejection`). Every schemathesis check runs except `positive_data_acceptance`,
which requires any schema-valid body to be accepted: the node must refuse schema-valid requests that are
semantically wrong (a signature past its deadline, a grant for a twin that does not exist) with a 4xx problem, and
the other checks hold those answers to the schema.

The operations are driven one by one through their Hypothesis strategies rather than schemathesis's pytest plugin,
which does not run under pytest 9.
"""

from __future__ import annotations

import requests
import schemathesis
import schemathesis.specs.openapi.checks as checks
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.node.conftest import Owner, RunningNode
from twinledger.identity import DidKey
from twinledger.identity.http_signatures import sign_request

EXAMPLES_PER_OPERATION = 20  # per operation, generation mode and signer


class Signed(requests.auth.AuthBase):
    """Signs each request (RFC 9421) as `key`, as the SDK's DidAuth does for httpx."""

    def __init__(self, key: DidKey) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        request.headers.update(sign_request(self.key, str(request.method), str(request.url), body))
        return request


def test_no_server_errors_and_responses_match_the_schema(node: RunningNode, owner: Owner) -> None:
    schema = schemathesis.openapi.from_url(f"{node.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    sessions = {"unsigned": requests.Session(), "signed": requests.Session()}
    sessions["signed"].auth = Signed(owner.recovery)
    answers: dict[str, list[tuple[str, int]]] = {signer: [] for signer in sessions}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/snapshots/stream"):  # an endless response when let in (tests/node/test_watch.py)
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for signer, session in sessions.items():
                exercise = _fuzz(operation, mode, session, node.url, answers[signer])
                try:
                    exercise()
                except Unsatisfiable:  # no parameter or body to get wrong (e.g. GET /healthz in negative mode)
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except (Exception, BaseExceptionGroup) as failure:  # collect every operation's first failure
                    label = f"{operation.label} [{mode.value}, {signer}]"
                    failures[label] = f"{failure.__class__.__name__}: {str(failure)[:800]}"
    assert operations >= 12
    # the signed requests got past authentication: the handlers behind it were fuzzed too
    behind_auth = [status for label, status in answers["signed"] if label.startswith("GET /v1/twins/{twin_id}/snap")]
    assert any(status not in (400, 401) for status in behind_auth), sorted(set(behind_auth))
    assert not failures, "\n\n".join(f"{label}\n{detail}" for label, detail in failures.items())


def _fuzz(operation, mode: GenerationMode, session: requests.Session, base_url: str, answers: list):  # type: ignore[no-untyped-def]
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
        database=None,
    )  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call_and_validate(
            base_url=base_url, session=session, excluded_checks=[checks.positive_data_acceptance]
        )
        answers.append((operation.label, response.status_code))

    return exercise
