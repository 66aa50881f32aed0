"""Federated learning with provenance: consent-gated rounds, verifiable FedAvg, Flower integration.

* ``Participant(federated, ledger, store, catalog).submit(task, round, twin, arrays, num_samples)`` serializes the
  locally trained parameters (``tensors``), pins them (encrypted to the aggregator when the task says so) with an
  update record, and commits the digest for the twin; refused before anything is pinned when the round is not open,
  the account does not control the twin or the owner has not granted TRAIN to the aggregator for the purpose.
* ``Aggregator(...).open_task(did, purpose, initial_model)``, ``.aggregate_round(task)``: collects the round's
  commits from the chain and the store, excludes (and records why) what fails verification or lacks consent at the
  round's consent block, FedAvg in float64 in ascending twin order, pins the model and a round record, checkpoints.
* ``Verifier(...).verify_round(task, round)`` recomputes a round; ``.history(task)`` lists the rounds.
* ``twinledger.federated.flower.ProvenanceStrategy`` wraps a Flower FedAvg-style strategy (extra ``[flower]``).

Formats are documented in ``tensors`` (the tensor file) and ``records`` (task, update and round records).
"""

from twinledger.federated.aggregator import Aggregator, RoundResult, WeightedUpdate, fedavg, updates_tree
from twinledger.federated.participant import Participant, SubmittedUpdate
from twinledger.federated.records import (
    UPDATE_LEAF_TYPES,
    Catalog,
    DirectoryCatalog,
    ExcludedUpdate,
    IncludedUpdate,
    RoundRecord,
    TaskSpec,
    UpdateRecord,
)
from twinledger.federated.tensors import MalformedTensorFile, deserialize, serialize
from twinledger.federated.verify import RoundHistory, RoundVerification, Verifier

__all__ = [
    "UPDATE_LEAF_TYPES",
    "Aggregator",
    "Catalog",
    "DirectoryCatalog",
    "ExcludedUpdate",
    "IncludedUpdate",
    "MalformedTensorFile",
    "Participant",
    "RoundHistory",
    "RoundRecord",
    "RoundResult",
    "RoundVerification",
    "SubmittedUpdate",
    "TaskSpec",
    "UpdateRecord",
    "Verifier",
    "WeightedUpdate",
    "deserialize",
    "fedavg",
    "serialize",
    "updates_tree",
]
