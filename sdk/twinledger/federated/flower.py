"""Flower integration (extra `twinledger[flower]`): a strategy that wraps a FedAvg-style Flower strategy.

`ProvenanceStrategy(inner, ...)` is a `flwr.server.strategy.Strategy` like any other. It delegates client
selection, configuration and evaluation to `inner` unchanged, and adds provenance around aggregation:

* `initialize_parameters` opens the twinledger task with `inner`'s initial parameters as the initial model;
* `aggregate_fit` pins and commits every client's update for the client's twin (through the twin's
  `Participant`; a twin whose owner has not granted TRAIN is refused and reported in the round's metrics), lets
  the `Aggregator` verify, exclude, FedAvg and checkpoint the round, hands the included results (in twin order) to
  `inner.aggregate_fit` for its metrics, and returns the checkpointed model as the new global parameters.

The returned model is the deterministic weighted FedAvg the checkpoint commits to, so this wraps strategies whose
aggregation is weighted FedAvg (FedAvg, FedProx and their subclasses); a server-side optimizer (FedAdam, FedAvgM,
...) would produce a model the checkpoint does not describe, and is refused.

Client code does not change: a client's twin is found by `twin_of(client_proxy, fit_res)`; the default asks the
client's `get_properties()` for `"twin_id"` (deployment configuration, not training code).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetPropertiesIns,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAdagrad, FedAvg, FedAvgM, FedOpt, Strategy

from twinledger.errors import InvalidInput, TwinledgerError
from twinledger.federated.aggregator import Aggregator, RoundResult
from twinledger.federated.participant import Participant

TwinOf = Callable[[ClientProxy, FitRes], int]


def twin_from_properties(key: str = "twin_id") -> TwinOf:
    """Ask each client once for its twin id through `get_properties` (cached by client id)."""
    cache: dict[str, int] = {}

    def twin_of(proxy: ClientProxy, _: FitRes) -> int:
        if proxy.cid not in cache:
            properties = proxy.get_properties(GetPropertiesIns(config={}), timeout=None, group_id=None).properties
            if key not in properties:
                raise InvalidInput(
                    f"Flower client {proxy.cid} does not report {key!r} in get_properties()",
                    hint=f"return {{{key!r}: <twin id>}} from the client's get_properties, or pass twin_of=",
                )
            cache[proxy.cid] = int(properties[key])
        return cache[proxy.cid]

    return twin_of


def twin_from_metrics(key: str = "twin_id") -> TwinOf:
    """Read the twin id from the fit metrics the client returns."""

    def twin_of(_: ClientProxy, fit_res: FitRes) -> int:
        if key not in fit_res.metrics:
            raise InvalidInput(f"a fit result has no {key!r} metric", hint="report it from fit() or pass twin_of=")
        return int(fit_res.metrics[key])

    return twin_of


class ProvenanceStrategy(Strategy):
    """Wraps `inner` (a FedAvg-style Flower strategy) with pinning, on-chain commits and checkpoints."""

    def __init__(
        self,
        inner: Strategy,
        *,
        aggregator: Aggregator,
        participants: Mapping[int, Participant],
        aggregator_did: str,
        purpose: str | bytes,
        encrypt_updates: bool = False,
        twin_of: TwinOf | None = None,
    ) -> None:
        if not isinstance(inner, FedAvg) or isinstance(inner, FedOpt | FedAvgM | FedAdagrad):
            raise InvalidInput(
                f"{type(inner).__name__} does not aggregate by weighted FedAvg",
                hint="wrap FedAvg, FedProx or a subclass that keeps FedAvg's aggregation",
            )
        self.inner = inner
        self.aggregator = aggregator
        self.participants = dict(participants)
        self.aggregator_did = aggregator_did
        self.purpose = purpose
        self.encrypt_updates = encrypt_updates
        self.twin_of = twin_of or twin_from_properties()
        self.task_id: int | None = None
        self.rounds: list[RoundResult] = []

    def __repr__(self) -> str:
        return f"ProvenanceStrategy({self.inner!r}, task={self.task_id})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        parameters = self.inner.initialize_parameters(client_manager)
        if parameters is None:
            raise InvalidInput(
                "the wrapped strategy has no initial parameters; the task needs an initial model on chain",
                hint="pass initial_parameters=ndarrays_to_parameters(model) to the inner strategy",
            )
        spec = self.aggregator.open_task(
            self.aggregator_did,
            self.purpose,
            parameters_to_ndarrays(parameters),
            encrypt_updates=self.encrypt_updates,
        )
        self.task_id = spec.task_id
        return parameters

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        return list(self.inner.configure_fit(server_round, parameters, client_manager))

    def _task(self) -> int:
        if self.task_id is None:
            raise InvalidInput("the task is not open", hint="the server calls initialize_parameters first")
        return self.task_id

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        task_id = self._task()
        chain_round = self.aggregator.check_aggregator(task_id)
        committed: list[tuple[int, ClientProxy, FitRes]] = []
        refused: dict[str, Scalar] = {}
        for proxy, fit_res in results:
            try:
                twin = self.twin_of(proxy, fit_res)
                participant = self.participants.get(twin)
                if participant is None:
                    raise InvalidInput(f"no participant account is configured for twin {twin}")
                arrays = parameters_to_ndarrays(fit_res.parameters)
                participant.submit(task_id, chain_round, twin, arrays, int(fit_res.num_examples))
            except TwinledgerError as error:
                # A refused update (no consent, wrong shapes, ...) is left out of the round, like a failure.
                refused[f"refused:{proxy.cid}"] = error.message
                continue
            committed.append((twin, proxy, fit_res))
        if not committed:
            return None, refused
        result = self.aggregator.aggregate_round(task_id, chain_round)
        self.rounds.append(result)
        included = {u.twin_id for u in result.record.included}
        ordered = [(proxy, res) for twin, proxy, res in sorted(committed, key=lambda c: c[0]) if twin in included]
        _, inner_metrics = self.inner.aggregate_fit(server_round, ordered, failures)
        metrics: dict[str, Scalar] = {
            **inner_metrics,
            **refused,
            "twinledger_task": task_id,
            "twinledger_round": chain_round,
            "twinledger_model_digest": "0x" + result.record.model_digest.hex(),
            "twinledger_included": result.record.count,
            "twinledger_excluded": len(result.record.excluded),
        }
        return ndarrays_to_parameters(result.model), metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return list(self.inner.configure_evaluate(server_round, parameters, client_manager))

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return self.inner.aggregate_evaluate(server_round, results, failures)

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        return self.inner.evaluate(server_round, parameters)

    def __getattr__(self, name: str) -> Any:
        # Anything else a server or user reads from the strategy (e.g. FedAvg's settings) comes from `inner`.
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
