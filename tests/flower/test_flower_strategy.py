"""ProvenanceStrategy with Flower's real server and clients on loopback gRPC (runs in .venv-flower)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from flwr.common import ndarrays_to_parameters
from flwr.server import ServerConfig, start_server
from flwr.server.strategy import FedAdam, FedAvg

from twinledger.chain.ledger import FederatedLedger, GrantRequest, TwinLedger
from twinledger.chain.localchain import free_port
from twinledger.errors import InvalidInput
from twinledger.federated import Aggregator, DirectoryCatalog, Participant, Verifier, WeightedUpdate, fedavg, serialize
from twinledger.federated.flower import ProvenanceStrategy
from twinledger.identity.keys import DidKey
from twinledger.ipfs import FileBlockStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "flower_numpy"))
from model import LinearClient, initial_model
from run import connect_when_listening

pytestmark = pytest.mark.chain
KEY = DidKey(bytes(range(32)))


def test_every_round_is_pinned_committed_checkpointed_and_verifies(
    tmp_path: Path,
    accounts: list[LocalAccount],
    ledger_as: Callable[[LocalAccount], TwinLedger],
    federated_as: Callable[[LocalAccount], FederatedLedger],
) -> None:
    store = FileBlockStore(tmp_path / "ipfs")
    fed0 = federated_as(accounts[0])
    catalog = DirectoryCatalog(tmp_path / "fl", fed0.client.chain_id, fed0.address)
    aggregator = Aggregator(fed0, ledger_as(accounts[0]), store, catalog)
    aggregator.key = KEY  # signs the task record: the aggregator DID vouches for account 0
    participants: dict[int, Participant] = {}
    clients = []
    for index in range(3):
        owner = ledger_as(accounts[1 + index])
        twin, _ = owner.register("asset")
        if index < 2:  # the third owner does not consent
            owner.grant(GrantRequest.of(twin, KEY.did, "research", "train", owner.client.chain_time() + 3600))
        participants[twin] = Participant(federated_as(accounts[1 + index]), owner, store, catalog)
        clients.append(LinearClient(twin, seed=index, size=20 + index))

    inner = FedAvg(
        min_fit_clients=3,
        min_evaluate_clients=3,
        min_available_clients=3,
        initial_parameters=ndarrays_to_parameters(initial_model()),
    )
    strategy = ProvenanceStrategy(
        inner, aggregator=aggregator, participants=participants, aggregator_did=KEY.did, purpose="research"
    )
    address = f"127.0.0.1:{free_port()}"
    threads = [threading.Thread(target=connect_when_listening, args=(address, c)) for c in clients]
    for thread in threads:
        thread.start()
    start_server(server_address=address, config=ServerConfig(num_rounds=2), strategy=strategy)
    for thread in threads:
        thread.join(timeout=60)

    assert strategy.task_id is not None
    assert [r.record.round for r in strategy.rounds] == [1, 2]
    verifier = Verifier(federated_as(accounts[5]), ledger_as(accounts[5]), store, catalog)
    consenting = [c.twin_id for c in clients[:2]]
    previous = initial_model()
    for result in strategy.rounds:
        assert [u.twin_id for u in result.record.included] == consenting
        # the checkpointed model is exactly the FedAvg of what the consenting clients trained this round
        expected = [
            WeightedUpdate(c.twin_id, c.fit([p.copy() for p in previous], {})[0], len(c.y)) for c in clients[:2]
        ]
        assert serialize(result.model) == serialize(fedavg(expected))
        assert verifier.verify_round(strategy.task_id, result.record.round).ok
        previous = [np.asarray(a) for a in result.model]


def test_strategies_that_do_not_fedavg_are_refused(tmp_path: Path) -> None:
    params = ndarrays_to_parameters(initial_model())
    with pytest.raises(InvalidInput, match="does not aggregate by weighted FedAvg"):
        ProvenanceStrategy(
            FedAdam(initial_parameters=params),
            aggregator=None,  # type: ignore[arg-type]
            participants={},
            aggregator_did=KEY.did,
            purpose="research",
        )
