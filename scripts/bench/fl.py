"""Provenance overhead of a federated round: pin + commit + checkpoint + verify, as a ratio to the plain FedAvg of
the same updates, for a 10 MB model and 10 clients; and the gas per round.

    .venv/bin/python scripts/bench/fl.py [--model-mb 10] [--clients 10] [--rounds 2]

Starts its own anvil in a temporary directory and stops it at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from eth_account import Account

from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import deploy
from twinledger.chain.ledger import FederatedLedger, GrantRequest, TwinLedger
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port
from twinledger.federated import Aggregator, DirectoryCatalog, Participant, Verifier, WeightedUpdate, fedavg, serialize
from twinledger.identity.keys import DidKey
from twinledger.ipfs import FileBlockStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-mb", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--encrypt", action="store_true", help="encrypt updates to the aggregator")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        chain = LocalChain(work / "chain", port=free_port())
        rpc = chain.up().rpc_url
        assert rpc is not None
        try:
            bench(rpc, work, args.model_mb, args.clients, args.rounds, args.encrypt)
        finally:
            chain.down()


def bench(rpc: str, work: Path, model_mb: float, clients: int, rounds: int, encrypt: bool) -> None:
    accounts = [Account.from_key(k) for k in DEV_KEYS]
    deployment, _ = deploy(ChainClient(rpc, accounts[0]), work / "deployments")
    store = FileBlockStore(work / "ipfs")
    catalog = DirectoryCatalog(work / "fl", deployment.chain_id, deployment.federated_ledger)

    def parts(i: int) -> tuple[FederatedLedger, TwinLedger, FileBlockStore, DirectoryCatalog]:
        client = ChainClient(rpc, accounts[i])
        return (
            FederatedLedger(client, deployment.federated_ledger),
            TwinLedger(client, deployment.twin_ledger),
            store,
            catalog,
        )

    key = DidKey(bytes(range(32)))
    aggregator = Aggregator(*parts(0))
    aggregator.key = key
    verifier = Verifier(*parts(0))
    verifier.key = key
    elements = int(model_mb * 1024 * 1024 / 8)
    rows = 1024
    shapes = [(rows, elements // rows), (elements % rows or 1,)]
    spec = aggregator.open_task(key.did, "research", [np.zeros(s) for s in shapes], encrypt_updates=encrypt)
    participants = []
    for index in range(clients):
        owner_index = 1 + index % (len(accounts) - 1)
        participant = Participant(*parts(owner_index))
        twin, _ = participant.ledger.register("asset")
        expiry = participant.ledger.client.chain_time() + 86_400
        participant.ledger.grant(GrantRequest.of(twin, key.did, "research", "train", expiry))
        participants.append((twin, participant))

    rng = np.random.default_rng(0)
    rows_out = []
    for round_ in range(1, rounds + 1):
        updates = [(twin, [rng.normal(size=s) for s in shapes], 100 + i) for i, (twin, _) in enumerate(participants)]
        weighted = [WeightedUpdate(t, a, n) for t, a, n in updates]
        timings = []
        for _ in range(5):  # best of 5: the first call pays numpy's warm-up, which is not aggregation
            started = time.perf_counter()
            fedavg(weighted)
            timings.append(time.perf_counter() - started)
        plain_s = min(timings)

        gas = 0
        started = time.perf_counter()
        for (twin, participant), (_, arrays, samples) in zip(participants, updates, strict=True):
            gas += participant.submit(spec.task_id, round_, twin, arrays, samples).tx.gas_used
        submit_s = time.perf_counter() - started
        started = time.perf_counter()
        result = aggregator.aggregate_round(spec.task_id)
        aggregate_s = time.perf_counter() - started
        gas += result.tx.gas_used
        started = time.perf_counter()
        report = verifier.verify_round(spec.task_id, round_)
        verify_s = time.perf_counter() - started
        assert report.ok, report.problems
        total = submit_s + aggregate_s + verify_s
        rows_out.append((round_, plain_s, submit_s, aggregate_s, verify_s, total, gas))

    model_bytes = len(serialize([np.zeros(s) for s in shapes]))
    print(f"model {model_bytes / 1e6:.1f} MB ({model_bytes} bytes), {clients} clients, encrypt={encrypt}")
    print(
        "| round | plain FedAvg (s) | pin+commit x clients (s) | collect+verify+FedAvg+pin+checkpoint (s) "
        "| fl verify (s) | provenance total (s) | ratio to plain | gas per round |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for round_, plain_s, submit_s, aggregate_s, verify_s, total, gas in rows_out:
        print(
            f"| {round_} | {plain_s:.3f} | {submit_s:.2f} | {aggregate_s:.2f} | {verify_s:.2f} | {total:.2f} "
            f"| {total / plain_s:.0f}x | {gas:,} |"
        )
    median_ratio = statistics.median(r[5] / r[1] for r in rows_out)
    print(f"median ratio {median_ratio:.0f}x")


if __name__ == "__main__":
    main()
