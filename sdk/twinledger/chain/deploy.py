"""Deploy the ledger contracts once per chain and record where they are: deployments/<chainId>.json."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from web3 import Web3

from twinledger.chain import artifacts
from twinledger.chain.client import ChainClient
from twinledger.chain.ledger import FederatedLedger, TwinLedger
from twinledger.errors import IntegrityError, NotFound


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    twin_ledger: str
    federated_ledger: str
    deploy_block: int
    deployer: str
    artifacts: dict[str, str]  # contract name -> sha256 of the artifact deployed
    deployed_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise NotFound(f"no deployment file at {path}", hint="run `twinledger contracts deploy`") from None
        except (TypeError, json.JSONDecodeError) as error:
            raise IntegrityError(f"{path} is not a twinledger deployment file: {error}") from None

    def bind(self, client: ChainClient) -> tuple[TwinLedger, FederatedLedger]:
        return TwinLedger(client, self.twin_ledger), FederatedLedger(client, self.federated_ledger)


def deployment_path(directory: Path, chain_id: int) -> Path:
    return Path(directory) / f"{chain_id}.json"


def verify(client: ChainClient, deployment: Deployment) -> list[str]:
    """What is wrong with `deployment` on this chain (empty list: it matches the artifacts)."""
    problems = []
    if deployment.chain_id != client.chain_id:
        problems.append(f"deployment is for chain {deployment.chain_id}, the RPC serves chain {client.chain_id}")
    for name, address in (
        ("TwinLedger", deployment.twin_ledger),
        ("FederatedLedger", deployment.federated_ledger),
    ):
        code = bytes(client.w3.eth.get_code(Web3.to_checksum_address(address)))
        if not code:
            problems.append(f"no contract code at {name} {address}")
        elif not artifacts.runtime_code_matches(artifacts.load(name), code):
            problems.append(f"code at {name} {address} differs from contracts/artifacts/{name}.json")
    if not problems:
        wired = FederatedLedger(client, deployment.federated_ledger).ledger_address()
        if wired.lower() != deployment.twin_ledger.lower():
            problems.append(f"FederatedLedger is wired to {wired}, not to TwinLedger {deployment.twin_ledger}")
    return problems


def deploy(
    client: ChainClient, directory: Path = Path("deployments"), *, force: bool = False
) -> tuple[Deployment, bool]:
    """Deploy and wire the contracts unless this chain has them; returns (deployment, newly deployed)."""
    path = deployment_path(directory, client.chain_id)
    if path.exists() and not force:
        existing = Deployment.load(path)
        problems = verify(client, existing)
        if not problems:
            return existing, False
        if any(p.startswith("code at") or p.startswith("FederatedLedger is wired") for p in problems):
            raise IntegrityError(
                "the contracts recorded in " + str(path) + " do not match the artifacts: " + "; ".join(problems),
                hint="deploy anew with `twinledger contracts deploy --force`, or point at another chain",
            )
        # No code at the recorded addresses: the chain was reset. Deploy anew.
    # Where the record goes is made (or found unusable) before any gas is spent on contracts it could not record.
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger_address, first = client.deploy("TwinLedger")
    federated_address, _ = client.deploy("FederatedLedger", [Web3.to_checksum_address(ledger_address)])
    deployment = Deployment(
        chain_id=client.chain_id,
        twin_ledger=Web3.to_checksum_address(ledger_address),
        federated_ledger=Web3.to_checksum_address(federated_address),
        deploy_block=first.block_number,
        deployer=client.address,
        artifacts={name: artifacts.load(name).sha256 for name in artifacts.CONTRACTS},
        deployed_at=time.time(),
    )
    problems = verify(client, deployment)
    if problems:
        raise IntegrityError("deployment did not verify: " + "; ".join(problems))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(deployment.to_json())
    tmp.replace(path)
    return deployment, True
