"""Prometheus metrics of one node: requests, consent decisions by outcome, index lag, anchor queue depth."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "twinledger_requests", "HTTP requests served", ["method", "route", "status"], registry=self.registry
        )
        self.decisions = Counter(
            "twinledger_consent_decisions", "Consent decisions by outcome", ["outcome"], registry=self.registry
        )
        self.index_lag = Gauge("twinledger_index_lag_blocks", "Chain head minus indexed block", registry=self.registry)
        self.index_age = Gauge(
            "twinledger_index_head_age_seconds",
            "Seconds since the index last saw the chain head",
            registry=self.registry,
        )
        self.anchor_queue = Gauge(
            "twinledger_anchor_queue_depth", "Snapshots and receipts not yet anchored", registry=self.registry
        )
        self.receipts = Counter("twinledger_access_receipts", "Access receipts written", registry=self.registry)
        self.snapshots = Counter("twinledger_snapshots_ingested", "Snapshots accepted", registry=self.registry)

    def bind(self, lag: Callable[[], float], age: Callable[[], float], queue: Callable[[], float]) -> None:
        self.index_lag.set_function(lag)
        self.index_age.set_function(age)
        self.anchor_queue.set_function(queue)
