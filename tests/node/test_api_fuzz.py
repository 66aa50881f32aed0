"""API fuzzing: schemathesis generates requests for every operation of the node's OpenAPI and sends them over
HTTP; no request may produce a 5xx or a response that contradicts the schema.

Every schemathesis check runs except `positive_data_acceptance`, which requires any schema-valid body to be
accepted: the node must refuse schema-valid requests that are semantically wrong (a signature past its deadline,
a grant for a twin that does not exist) with a 4xx problem, and the other checks hold those answers to the schema.

The operations are driven one by one through their Hypothesis strategies rather than schemathesis's pytest plugin,
which does not run under pytest 9.
"""

from __future__ import annotations

import schemathesis
import schemathesis.specs.openapi.checks as checks
from hypothesis import HealthCheck, given, settings

from tests.node.conftest import RunningNode

EXAMPLES_PER_OPERATION = 30


def test_no_server_errors_and_responses_match_the_schema(node: RunningNode) -> None:
    schema = schemathesis.openapi.from_url(f"{node.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=operation.as_strategy())
        def exercise(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(base_url=node.url, excluded_checks=[checks.positive_data_acceptance])

        try:
            exercise()
        except Exception as failure:  # collect every operation's first failure, report them together
            failures[operation.label] = f"{failure.__class__.__name__}: {str(failure)[:600]}"
    assert operations >= 12
    assert not failures, "\n\n".join(f"{label}\n{detail}" for label, detail in failures.items())
