"""The denial log on its own, on a real group committer and state database, with a clock the test moves: counted
denials are written when their minute is over (what the flusher thread does), chained to the twin's receipts, and
a full commit queue makes a denial counted, never lost."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from twinledger.chain.types import Scope
from twinledger.identity import DidKey
from twinledger.provenance import RECEIPT_GENESIS, receipt_digest
from twinledger_node.problem import Problem
from twinledger_node.services.commit import GroupCommitter
from twinledger_node.services.denials import WINDOW_S, DenialLog
from twinledger_node.state import NodeState

NO_GRANT = Problem(403, "consent/no-grant", "No grant", "no grant")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * WINDOW_S + 1.0

    def __call__(self) -> float:
        return self.now


def caller(did: str) -> Any:
    """What the log reads of a verified caller (auth.Caller): who, and the signed request to keep."""
    return SimpleNamespace(did=did, replay=None, method="GET", target_uri="http://node/v1/twins/1/snapshots/latest",
                           key_id=did + "#k", signature_input="sig=()", signature="sig=:AA==:")  # fmt: skip


def records(state: NodeState, twin: int) -> list[dict[str, Any]]:
    rows = state.connection().execute("SELECT body FROM receipts WHERE twin_id = ? ORDER BY id", (twin,))
    return [json.loads(row["body"]) for row in rows]


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The state database on each engine in turn (on PostgreSQL the committer takes its one-trip path)."""
    return tmp_path / "state.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def make(where: Path | str, clock: Clock, **bounds: int) -> tuple[NodeState, GroupCommitter, DenialLog]:
    state = NodeState(where)
    commits = GroupCommitter(state, object(), capacity=bounds.pop("capacity", 64))
    log = DenialLog(commits, DidKey.generate(), chain_id=31337, registry="0x" + "11" * 20,
                    anchorer="0x" + "22" * 20, clock=clock, **bounds)  # type: ignore[arg-type]  # fmt: skip
    log._ensure_running = lambda: None  # type: ignore[method-assign]  # the test calls flush itself
    return state, commits, log


def test_counts_are_written_when_their_minute_is_over_and_chain_with_the_rest(where: Path | str) -> None:
    clock = Clock()
    state, commits, log = make(where, clock, per_did=2, per_twin=10)
    for _ in range(5):
        log.refused(caller("did:key:zA"), 1, b"\x01" * 32, Scope.READ, NO_GRANT)
    log.flush()  # the minute is not over: nothing counted is written yet
    commits.stop()
    assert [r.get("count") for r in records(state, 1)] == [None, None]  # two on their own
    clock.now += WINDOW_S
    log.flush()
    commits.stop()
    written = records(state, 1)
    assert [r.get("count") for r in written] == [None, None, 3]
    counted = written[-1]
    assert counted["requester"] == "did:key:zA" and counted["window"]["start"] == 1_000 * WINDOW_S
    assert counted["reasons"] == {"urn:twinledger:problem:consent/no-grant": 3}
    assert counted["time"] == (1_000 + 1) * WINDOW_S  # dated to the end of its minute
    previous = RECEIPT_GENESIS
    for record in written:  # one chain, as receipts
        assert record["previous"] == previous
        previous = "0x" + receipt_digest(record).hex()
    log.flush()
    commits.stop()
    assert len(records(state, 1)) == 3  # written once
    state.close()


def test_a_full_commit_queue_makes_a_denial_counted_not_lost(where: Path | str) -> None:
    clock = Clock()
    state, commits, log = make(where, clock, per_did=5, per_twin=10, capacity=1)
    started = commits._ensure_running
    commits._ensure_running = lambda: None  # type: ignore[method-assign]  # the queue stays full until started
    log.refused(caller("did:key:zA"), 1, b"\x01" * 32, Scope.READ, NO_GRANT)  # takes the one place
    log.refused(caller("did:key:zA"), 1, b"\x01" * 32, Scope.READ, NO_GRANT)  # no room: counted
    clock.now += WINDOW_S
    log.flush()  # still no room: kept for the next pass
    assert log._unsent
    commits._ensure_running = started  # type: ignore[method-assign]
    started()
    commits.stop()
    log.close()  # the stop writes what is left
    commits.stop()
    assert [r.get("count") for r in records(state, 1)] == [None, 1]
    state.close()


def test_fresh_dids_past_the_twins_cap_make_one_aggregate_and_no_new_tracking(where: Path | str) -> None:
    clock = Clock()
    state, commits, log = make(where, clock, per_did=1, per_twin=3)
    for i in range(40):
        log.refused(caller(f"did:key:z{i}"), 1, b"\x01" * 32, Scope.READ, NO_GRANT)
    assert log._current is not None and len(log._current.seen) == 3  # memory holds the cap's DIDs, not 40
    log.close()
    commits.stop()
    written = records(state, 1)
    assert [r.get("requester") for r in written] == ["did:key:z0", "did:key:z1", "did:key:z2", None]
    assert written[-1]["count"] == 37
    state.close()
