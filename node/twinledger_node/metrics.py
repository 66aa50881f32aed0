"""Prometheus metrics of one node: requests, consent decisions by outcome, refused reads, index lag, anchor queue
depth.

With `node up --workers N` the supervisor points PROMETHEUS_MULTIPROC_DIR at a directory it empties at start, so
the counters of every API process (each in its own memory-mapped file) add up in whichever process answers
/metrics. The gauges are read at scrape time from the files all processes share, so they are collected apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class _Gauges(Collector):
    """Gauges computed when scraped (never stored per process)."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (help_text, source) in self.sources.items():
            yield GaugeMetricFamily(name, help_text, value=source())


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "twinledger_requests", "HTTP requests served", ["method", "route", "status"], registry=self.registry
        )
        self.decisions = Counter(
            "twinledger_consent_decisions", "Consent decisions by outcome", ["outcome"], registry=self.registry
        )
        self.receipts = Counter("twinledger_access_receipts", "Access receipts written", registry=self.registry)
        # refused reads (services/denials.py): records written to twins' logs by kind (single, counted, aggregate),
        # denials folded into a counted record instead, and refusals of requests whose signer is not known
        self.denials_recorded = Counter(
            "twinledger_denials_recorded", "Denial records written to twins' logs", ["kind"], registry=self.registry
        )
        self.denials_aggregated = Counter(
            "twinledger_denials_aggregated", "Refused reads counted in a per-minute record, not recorded one by one",
            registry=self.registry,
        )  # fmt: skip
        self.denials_unattributed = Counter(
            "twinledger_denials_unattributed", "Signed-route requests refused before their signer was known "
            "(unsigned, forged, replayed): in no twin's log", ["reason"], registry=self.registry,
        )  # fmt: skip
        self.snapshots = Counter("twinledger_snapshots_ingested", "Snapshots accepted", registry=self.registry)
        self.group_commits = Counter(
            "twinledger_group_commits", "Group commits by path: one-trip (as expected) or careful (after a surprise: "
            "another replica appended to a twin, a replay; or the engine is SQLite)", ["path"], registry=self.registry,
        )  # fmt: skip
        self._gauges = _Gauges()
        self._gauge_registry = CollectorRegistry()
        self._gauge_registry.register(self._gauges)

    def bind(self, lag: Callable[[], float], age: Callable[[], float], queue: Callable[[], float]) -> None:
        self._gauges.sources = {
            "twinledger_index_lag_blocks": ("Chain head minus indexed block", lag),
            "twinledger_index_head_age_seconds": ("Seconds since the index last saw the chain head", age),
            "twinledger_anchor_queue_depth": ("Snapshots and receipts not yet anchored", queue),
        }

    def exposition(self) -> bytes:
        """The text format: this process's counters, or every API process's summed, and the gauges."""
        counters = self.registry
        if os.environ.get(MULTIPROC_DIR):
            counters = CollectorRegistry()
            MultiProcessCollector(counters)
        return generate_latest(counters) + generate_latest(self._gauge_registry)
