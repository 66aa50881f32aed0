"""Flower with provenance: a Flower server and 10 clients on loopback gRPC, every round checkpointed on chain.

    make flower-example      (or: .venv-flower/bin/python examples/flower_numpy/run.py)

Starts a throw-away anvil, deploys the contracts, registers 10 twins (two per owner) of which 9 owners grant TRAIN
to the aggregator, runs 3 Flower rounds with `ProvenanceStrategy(FedAvg(...))`, then runs `twinledger fl verify`
for every round and `twinledger fl history`. Exits non-zero unless every round verifies.

Flower's simulation engine needs Ray, which is too heavy for this project; the server and clients therefore run
in-process with Flower's own gRPC transport (`start_server` / `start_client`) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from eth_account import Account
from flwr.client import start_client
from flwr.common import ndarrays_to_parameters
from flwr.server import ServerConfig, start_server
from flwr.server.strategy import FedAvg

from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import deploy
from twinledger.chain.ledger import FederatedLedger, GrantRequest, TwinLedger
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port
from twinledger.federated import Aggregator, DirectoryCatalog, Participant
from twinledger.federated.flower import ProvenanceStrategy
from twinledger.identity.keyfile import write_key_file
from twinledger.identity.keys import DidKey
from twinledger.ipfs import FileBlockStore

sys.path.insert(0, str(Path(__file__).parent))
from model import LinearClient, initial_model

PURPOSE = "research"
CLIENTS = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="keep chain, store and catalog here")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="twinledger-flower-"))
    chain = LocalChain(workdir / "chain", port=free_port())
    rpc_url = chain.up().rpc_url
    assert rpc_url is not None
    try:
        return run(rpc_url, workdir, args.rounds)
    finally:
        chain.down()


def connect_when_listening(address: str, client: LinearClient) -> None:
    """Flower's gRPC client gives up when the server is not up yet; wait for the port, then connect."""
    host, port = address.rsplit(":", 1)
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    start_client(server_address=address, client=client.to_client(), insecure=True)


def run(rpc_url: str, workdir: Path, rounds: int) -> int:
    accounts = [Account.from_key(k) for k in DEV_KEYS]
    deployment, _ = deploy(ChainClient(rpc_url, accounts[0]), workdir / "deployments")
    store = FileBlockStore(workdir / "ipfs")
    catalog = DirectoryCatalog(workdir / "fl", deployment.chain_id, deployment.federated_ledger)

    def bind(index: int) -> tuple[FederatedLedger, TwinLedger]:
        client = ChainClient(rpc_url, accounts[index])
        return FederatedLedger(client, deployment.federated_ledger), TwinLedger(client, deployment.twin_ledger)

    aggregator_key = DidKey.generate()
    aggregator = Aggregator(*bind(0), store, catalog)
    aggregator.key = aggregator_key
    participants: dict[int, Participant] = {}
    clients: list[LinearClient] = []
    for index in range(CLIENTS):
        federated, ledger = bind(1 + index // 2)  # owners: accounts 1..5, two twins each
        twin, _ = ledger.register("asset")
        if index != CLIENTS - 1:  # the last twin's owner never consents: its updates are refused
            expiry = ledger.client.chain_time() + 86_400
            ledger.grant(GrantRequest.of(twin, aggregator_key.did, PURPOSE, "train", expiry))
        participants[twin] = Participant(federated, ledger, store, catalog)
        clients.append(LinearClient(twin, seed=index, size=50 + 10 * index))

    strategy = ProvenanceStrategy(
        FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=1.0,
            min_fit_clients=CLIENTS,
            min_evaluate_clients=CLIENTS,
            min_available_clients=CLIENTS,
            initial_parameters=ndarrays_to_parameters(initial_model()),
        ),
        aggregator=aggregator,
        participants=participants,
        aggregator_did=aggregator_key.did,
        purpose=PURPOSE,
        encrypt_updates=True,
    )
    address = f"127.0.0.1:{free_port()}"
    threads = [threading.Thread(target=connect_when_listening, args=(address, c)) for c in clients]
    for thread in threads:
        thread.start()
    history = start_server(server_address=address, config=ServerConfig(num_rounds=rounds), strategy=strategy)
    for thread in threads:
        thread.join(timeout=60)
    print(f"task {strategy.task_id}: loss per round {[round(loss, 4) for _, loss in history.losses_distributed]}")
    for result in strategy.rounds:
        record = result.record
        print(
            f"round {record.round}: {record.count} updates, {record.total_samples} samples, "
            f"{len(record.excluded)} excluded, model 0x{record.model_digest.hex()[:16]}..."
        )

    key_file = workdir / "aggregator.jwk"
    write_key_file(key_file, aggregator_key, replace=True)  # mode 0600: `fl verify --key` refuses one others can read
    common = ["--rpc-url", rpc_url, "--deployments-dir", str(workdir / "deployments")]
    common += ["--store", str(workdir / "ipfs"), "--catalog", str(workdir / "fl")]
    twinledger = [sys.executable, "-m", "twinledger.cli", "fl"]
    failed = 0
    for round_ in range(1, len(strategy.rounds) + 1):
        command = [*twinledger, "verify", str(strategy.task_id), str(round_), *common, "--key", str(key_file)]
        failed += subprocess.run(command, check=False).returncode != 0
    subprocess.run([*twinledger, "history", str(strategy.task_id), *common], check=False)
    if len(strategy.rounds) != rounds or failed:
        print(f"FAILED: {len(strategy.rounds)} of {rounds} rounds checkpointed, {failed} failed verification")
        return 1
    print(f"fl verify passed for all {rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
