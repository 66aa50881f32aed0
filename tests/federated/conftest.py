"""A federated setting on the session's anvil: an aggregator with a did:key, three twins of three owners."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import FederatedLedger, GrantRequest, TwinLedger
from twinledger.federated import Aggregator, DirectoryCatalog, Participant, Verifier
from twinledger.identity.keys import DidKey
from twinledger.ipfs import FileBlockStore

PURPOSE = "research"
# Fixed seed: the aggregator's did:key is the same in every run (any key would do).
AGGREGATOR_KEY = DidKey(bytes(range(32)))


def initial_model() -> list[np.ndarray]:
    return [np.zeros((4, 3)), np.zeros(3)]


def local_update(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(4, 3)), rng.normal(size=3)]


@dataclass
class Federation:
    store: FileBlockStore
    catalog: DirectoryCatalog
    aggregator: Aggregator
    verifier: Verifier
    owners: list[TwinLedger]
    twins: list[int]
    participants: list[Participant]
    cli_args: list[str]
    key_file: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `twinledger fl ARGS` against this federation's chain, store and catalog."""
        command = [sys.executable, "-m", "twinledger.cli", "fl", *args, *self.cli_args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def grant(self, index: int) -> None:
        owner = self.owners[index]
        expiry = owner.client.chain_time() + 86_400
        owner.grant(GrantRequest.of(self.twins[index], AGGREGATOR_KEY.did, PURPOSE, "train", expiry))

    def revoke(self, index: int) -> None:
        self.owners[index].revoke(self.twins[index], AGGREGATOR_KEY.did, PURPOSE)


@pytest.fixture
def federation(
    tmp_path: Path,
    anvil: str,
    deployment: Deployment,
    accounts: list[LocalAccount],
    ledger_as: Callable[[LocalAccount], TwinLedger],
    federated_as: Callable[[LocalAccount], FederatedLedger],
) -> Federation:
    store = FileBlockStore(tmp_path / "ipfs")
    aggregator_fed = federated_as(accounts[1])
    catalog = DirectoryCatalog(tmp_path / "catalog", aggregator_fed.client.chain_id, aggregator_fed.address)
    aggregator = Aggregator(aggregator_fed, ledger_as(accounts[1]), store, catalog)
    aggregator.key = AGGREGATOR_KEY
    verifier = Verifier(federated_as(accounts[0]), ledger_as(accounts[0]), store, catalog)
    verifier.key = AGGREGATOR_KEY
    owners = [ledger_as(accounts[i]) for i in (2, 3, 4)]
    twins = [owner.register("asset")[0] for owner in owners]
    participants = [Participant(federated_as(accounts[i]), ledger_as(accounts[i]), store, catalog) for i in (2, 3, 4)]
    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / f"{deployment.chain_id}.json").write_text(deployment.to_json())
    (tmp_path / "aggregator.jwk").write_text(AGGREGATOR_KEY.to_jwk())
    (tmp_path / "aggregator.jwk").chmod(0o600)  # a private key: `fl verify --key` refuses one others can read
    cli_args = ["--rpc-url", anvil, "--deployments-dir", str(tmp_path / "deployments")]
    cli_args += ["--store", str(tmp_path / "ipfs"), "--catalog", str(tmp_path / "catalog")]
    return Federation(
        store, catalog, aggregator, verifier, owners, twins, participants, cli_args, tmp_path / "aggregator.jwk"
    )
