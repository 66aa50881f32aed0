"""Everything a running node holds: chain connection, index, node state, block store, keys, workers."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from eth_account import Account

from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment, deploy, deployment_path, verify
from twinledger.chain.ledger import all_events
from twinledger.chain.localchain import DEFAULT_CHAIN_ID, DEV_KEYS, LocalChain
from twinledger.errors import IntegrityError, NotFound
from twinledger.identity import DidKey
from twinledger.ipfs import BlockStore, FileBlockStore, IPFSConfig, open_store
from twinledger.ipfs.pins import PinIndex
from twinledger_node.consent.guard import Freshness, freshness
from twinledger_node.db.leases import LeaseLock
from twinledger_node.db.pins import DatabasePins
from twinledger_node.indexer.db import IndexDB, set_meta
from twinledger_node.indexer.indexer import HeadView, Indexer
from twinledger_node.keys import load_or_create_account_key, load_or_create_node_key
from twinledger_node.metrics import NodeMetrics
from twinledger_node.problem import Problem
from twinledger_node.services.anchoring import AnchorWorker
from twinledger_node.services.commit import GroupCommitter, NonceWork
from twinledger_node.services.denials import DenialLog
from twinledger_node.services.receipts import ReceiptLog
from twinledger_node.services.relayer import Relayer
from twinledger_node.services.snapshots import CONTENT_PROFILE, SnapshotService
from twinledger_node.settings import NodeSettings
from twinledger_node.state import NodeState

if TYPE_CHECKING:
    from twinledger_node.auth import SignedRequestAuth

log = logging.getLogger("twinledger.node")
# On a local development chain the node's own account is funded from the last dev account (the user's CLI uses the
# first, so the two never race for nonces); the node never signs as a dev account itself.
LOCAL_FUNDER_KEY = DEV_KEYS[-1]
LOCAL_FUNDING_WEI = 100 * 10**18


@dataclass(frozen=True)
class ChainSetup:
    client: ChainClient
    deployment: Deployment
    local_chain: LocalChain | None


def connect_chain(settings: NodeSettings) -> ChainSetup:
    """The configured RPC (or the local anvil, started if needed) and the deployment of the contracts on it."""
    local = None
    rpc = settings.rpc_url
    if rpc is None:
        local = LocalChain(settings.data_dir / "chain")
        rpc = str(local.up().rpc_url)
    client = ChainClient(rpc)
    if settings.private_key is not None:
        client.account = Account.from_key(settings.private_key.get_secret_value())
    elif client.chain_id == DEFAULT_CHAIN_ID:
        client.account = load_or_create_account_key(account_key_path(settings.data_dir))
        fund_from_dev_account(client)
    configured = settings.deployments_file
    path = (
        configured
        if configured and configured.suffix == ".json"
        else deployment_path(configured or settings.data_dir / "deployments", client.chain_id)
    )
    if not path.exists():
        if client.chain_id != DEFAULT_CHAIN_ID:
            raise NotFound(f"no deployment file at {path}", hint="run `twinledger contracts deploy` and point "
                           "TWINLEDGER_DEPLOYMENTS_FILE at its output")  # fmt: skip
        deployment, _ = deploy(client, path.parent)
    else:
        deployment = Deployment.load(path)
        problems = verify(client, deployment)
        if problems:
            raise IntegrityError("the deployment does not match the chain: " + "; ".join(problems))
    return ChainSetup(client, deployment, local)


def account_key_path(data_dir: Path) -> Path:
    return data_dir / "node" / "account-key"


def fund_from_dev_account(client: ChainClient) -> None:
    """Give the node's fresh local account gas money from a development account (local chains only)."""
    assert client.account is not None
    if client.w3.eth.get_balance(client.account.address) >= LOCAL_FUNDING_WEI // 10:
        return
    funder = ChainClient(str(client.rpc_url), Account.from_key(LOCAL_FUNDER_KEY))
    to = client.account.address
    tx_hash = funder.send_raw(lambda base: {**base, "to": to, "value": LOCAL_FUNDING_WEI, "gas": 21_000,
                                            "gasPrice": funder.w3.eth.gas_price})  # fmt: skip
    funder.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)  # type: ignore[arg-type]
    log.info("funded the node's local account %s from a development account", to)


# What a process of the node does: "embedded" serves HTTP and runs the indexer and anchor worker as threads (one
# process, as in tests); with `node up --workers N`, N "api" processes serve HTTP and one "background" process runs
# the indexer and the anchor worker, the only writer of the index and the only sender of anchors.
Role = Literal["embedded", "api", "background"]
HEAD_KEY = "head"  # index meta: the head the background process last saw, for the API processes' freshness guard
HEAD_CACHE_SECONDS = 0.1  # how long an API process reuses the head it read (far below any freshness window)


def publish_head(index: IndexDB, head: HeadView) -> None:
    """Write the indexer's view of the head where every process of the node, and every replica, reads it. Its times
    go as wall-clock times: replicas on other machines share no monotonic clock (so replicas need their clocks in
    sync, as NTP keeps them; a reader whose clock runs behind the leader's sees the head as fresher by the skew)."""
    offset = time.time() - time.monotonic()
    wall = [t + offset if t else 0.0 for t in (head.seen_monotonic, head.changed_monotonic)]
    with index.write() as conn:
        set_meta(conn, HEAD_KEY, json.dumps([head.number, head.timestamp, wall[0], head.indexed_to, wall[1]]))


class SharedHead:
    """The head as the background process last published it. Fail closed: a background process that stops
    publishing stops moving `seen_monotonic`, so the index goes stale for the freshness guard and reads get 503."""

    def __init__(self, index: IndexDB) -> None:
        self.index = index
        self._cached, self._read_at = HeadView(), -1.0
        self._lock = threading.Lock()

    def get(self, *, refresh: bool = False) -> HeadView:
        now = time.monotonic()
        with self._lock:
            if refresh or now - self._read_at >= HEAD_CACHE_SECONDS:
                raw = self.index.get_meta(HEAD_KEY)
                self._cached = HeadView()
                if raw:
                    number, timestamp, seen, indexed_to, changed = json.loads(raw)
                    offset = time.monotonic() - time.time()  # back to this process's monotonic clock
                    seen, changed = (t + offset if t else 0.0 for t in (seen, changed))
                    self._cached = HeadView(number, timestamp, seen, indexed_to, changed)
                self._read_at = now
            return self._cached


IDENTITY_KEY = "identity"


def claim_identity(state: NodeState, did: str, anchorer: str | None) -> None:
    """Record the node's identity in its database at the first start, and refuse a process (another replica, or this
    node with other keys) whose identity differs: its data keys are sealed to the node's key, and every record names
    the account whose anchors prove it."""
    mine = json.dumps({"did": did, "anchorer": anchorer})
    recorded = state.get_meta(IDENTITY_KEY)
    if recorded is None:
        with state.write() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                         (IDENTITY_KEY, mine))  # fmt: skip
        recorded = state.get_meta(IDENTITY_KEY)
    if recorded != mine:
        theirs = json.loads(recorded or "{}")
        raise IntegrityError(
            f"this node's database belongs to node {theirs.get('did')} anchoring as {theirs.get('anchorer')}; this "
            f"process is {did} anchoring as {anchorer}",
            hint="give every replica the same TWINLEDGER_NODE_KEY and TWINLEDGER_PRIVATE_KEY (or start from the data "
            "directory whose keys made this database)",
        )


class NodeRuntime:
    def __init__(self, settings: NodeSettings, chain: ChainSetup | None = None, *, role: Role = "embedded") -> None:
        self.settings, self.role = settings, role
        data = settings.data_dir
        chain = chain or connect_chain(settings)
        self.client, self.deployment, self.local_chain = chain.client, chain.deployment, chain.local_chain
        self.ledger, self.federated = self.deployment.bind(self.client)
        # SQLite files in the data directory, or the schemas of the PostgreSQL database replicas share
        self.index = IndexDB(settings.database_location("index"))
        # An API process never writes the index: it has no indexer and reads the head the background one publishes.
        self.indexer: Indexer | None = None
        self._shared_head: SharedHead | None = None
        if role == "api":
            self._shared_head = SharedHead(self.index)
        else:
            self.indexer = Indexer(
                self.index, self.client, all_events(self.ledger, self.federated),
                [self.deployment.twin_ledger, self.deployment.federated_ledger],
                start_block=self.deployment.deploy_block, confirmations=settings.confirmations,
                log_chunk=settings.log_chunk,
                on_head=(lambda head: publish_head(self.index, head)) if role == "background" else None,
            )  # fmt: skip
        self.state = NodeState(settings.database_location("state"))
        if role != "embedded":  # the node's processes, and its replicas, send with one account
            self.client.share_send_lock(LeaseLock(self.state.lease("send")))
        # A Kubo backend is refused here if too old, and gets the content profile as its Import.* configuration.
        ipfs = IPFSConfig(
            backend=settings.ipfs_backend,
            path=settings.block_store_path,
            kubo_addr=settings.ipfs_kubo_addr,
            import_profile=CONTENT_PROFILE,
        )
        # The embedded store keeps its pins in state.sqlite, so a snapshot's pins commit with its row.
        embedded = ipfs.backend == "embedded"
        pins = PinIndex(self.state.path) if self.state.path is not None else DatabasePins(self.state)
        self.store: BlockStore = FileBlockStore(ipfs.path, pins=pins) if embedded else open_store(ipfs)
        self.node_key = (
            DidKey.from_jwk(settings.node_key.get_secret_value())
            if settings.node_key is not None
            else load_or_create_node_key(data / "node" / "node-key.json")
        )
        self.commits = GroupCommitter(self.state, self.store, capacity=settings.commit_queue)
        chain_id, registry = self.client.chain_id, self.deployment.twin_ledger
        # the account that anchors the node's batches, named in every record the node signs (see anchoring.py)
        anchorer = self.client.account.address if self.client.account else None
        claim_identity(self.state, self.node_key.did, anchorer)
        self.snapshots = SnapshotService(
            self.state, self.index, self.store, self.node_key, self.commits,
            chain_id=chain_id, registry=registry, anchorer=anchorer,
        )  # fmt: skip
        self.receipts = ReceiptLog(self.commits, self.node_key, chain_id=chain_id, registry=registry, anchorer=anchorer)
        self.anchors = AnchorWorker(
            self.state, self.store, self.ledger,
            batch_size=settings.anchor_batch_size, batch_seconds=settings.anchor_batch_seconds,
            deploy_block=self.deployment.deploy_block, log_page=settings.log_chunk,
        )  # fmt: skip
        self.relayer = Relayer(
            self.ledger, self.index, self.state, per_signer_per_minute=settings.relay_per_signer_per_minute,
            unverified_per_client_per_minute=settings.relay_unverified_per_client_per_minute,
        )  # fmt: skip
        self.metrics = NodeMetrics()
        self.commits.on_commit = lambda path: self.metrics.group_commits.labels(path).inc()
        self.denials = DenialLog(
            self.commits, self.node_key, chain_id=chain_id, registry=registry, anchorer=anchorer,
            per_did=settings.denials_per_did_per_minute, per_twin=settings.denials_per_twin_per_minute,
            metrics=self.metrics,
        )  # fmt: skip
        self.metrics.bind(
            lag=lambda: max(0, self.head.number - self.head.indexed_to) if self.head.number >= 0 else -1,
            age=lambda: min(self.head.age(), 1e9),
            queue=lambda: self.anchors.queue_depth(),
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @functools.cached_property
    def auth(self) -> SignedRequestAuth:
        """Signed-request authentication for the HTTP API; built on first use, so the background process (which
        serves no HTTP) never imports FastAPI."""
        from twinledger_node.auth import AuthSettings, SignedRequestAuth

        settings = self.settings
        return SignedRequestAuth(
            AuthSettings(
                max_signature_lifetime_s=settings.signature_window,
                max_body_bytes=settings.max_body_bytes, public_base_url=settings.public_url,
            ),
            durable_nonces=lambda nonce: self.commits.submit(NonceWork(nonce)),
        )  # fmt: skip

    # ------------------------------------------------------------------ lifecycle

    @property
    def head(self) -> HeadView:
        """What the index has seen of the chain head: this process's indexer's, or the one the background process
        published (API processes)."""
        if self._shared_head is not None:
            return self._shared_head.get()
        assert self.indexer is not None
        return self.indexer.head

    def start(self, *, workers: bool = True) -> None:
        """Start this process's part: nothing for an API process; otherwise a first index sync and, with `workers`,
        the indexer and anchor worker threads (start-up reads no pins: they are rows, committed with their
        snapshots)."""
        indexer = self.indexer
        if indexer is None:
            return
        try:
            indexer.sync_once()
        except Exception as error:  # the chain may be down at start: the guard keeps reads closed until it is back
            log.warning("first index sync failed: %s", error)
        if workers:
            self._stop.clear()
            for name, target in (
                ("indexer", lambda: indexer.run(self._stop, self.settings.poll_interval)),
                ("anchors", lambda: self.anchors.run(self._stop, self.settings.poll_interval)),
            ):
                thread = threading.Thread(target=target, name=f"twinledger-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        self.denials.close()  # the counted denials join the queue, committed below
        self.commits.stop()  # what is queued is committed (and answered) first
        # Every thread's sessions end here (on PostgreSQL, a stopped node's would otherwise hold server slots).
        self.index.close()
        self.state.close()

    # ------------------------------------------------------------------ guards

    def chain_now(self) -> int:
        return self.head.chain_now()

    def index_freshness(self) -> Freshness:
        """Whether the index has seen the chain head within the freshness window. An API process that finds its
        cached copy of the published head stale reads the published one once more before it says so: another
        process may already have answered from the newer head (e.g. `/readyz` 200), and a refusal must not rest on
        a view older than theirs."""
        state = freshness(self.head, self.settings.freshness_window)
        if not state.fresh and self._shared_head is not None:
            state = freshness(self._shared_head.get(refresh=True), self.settings.freshness_window)
        return state

    def require_fresh(self) -> None:
        """Fail closed: no consent decision on an index that has not seen the chain head recently."""
        state = self.index_freshness()
        if not state.fresh:
            raise Problem(503, "index-stale", "Consent cannot be checked now", state.reason,
                          hint="the node is catching up with the chain or cannot reach it; retry shortly")  # fmt: skip


def data_paths(data_dir: Path) -> dict[str, Path]:
    return {"index": data_dir / "node" / "index.sqlite", "state": data_dir / "node" / "state.sqlite",
            "store": data_dir / "ipfs", "node key": data_dir / "node" / "node-key.json",
            "node account key": account_key_path(data_dir)}  # fmt: skip
