"""Fail closed: decide on consent only while the index has seen the chain head recently."""

from __future__ import annotations

from dataclasses import dataclass

from twinledger_node.indexer.indexer import HeadView


@dataclass(frozen=True)
class Freshness:
    fresh: bool
    reason: str
    age_seconds: float


def freshness(head: HeadView, window: float) -> Freshness:
    age = head.age()
    if head.number < 0:
        return Freshness(False, "the index has not reached the chain yet", age)
    if age > window:
        return Freshness(False, f"the index last saw the chain head {age:.1f}s ago (limit {window:.0f}s)", age)
    return Freshness(True, "index fresh", age)
