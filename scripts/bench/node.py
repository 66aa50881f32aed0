"""Node benchmark: what consent checking, sealing and indexing cost, each against a baseline in the same run.

    python scripts/bench/node.py [--reads 400] [--ingest-mib 16] [--events 1000]

1. consent-checked snapshot reads/s over HTTP, as a ratio to the same reads with the consent dependency replaced
   by a pass-through (same node, same signed requests, same decrypt and receipt; rounds interleaved);
2. p50/p99 latency of the authorization step alone (freshness guard + index decision);
3. ingest MB/s (hash, seal, import, manifest, queue) as a ratio to the block store's raw import of the same bytes;
4. index catch-up: events per second when rebuilding the index from the chain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from eth_account import Account
from fastapi import Request
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "sdk"), str(ROOT / "node")]

from twinledger.chain.client import ChainClient  # noqa: E402
from twinledger.chain.deploy import deploy  # noqa: E402
from twinledger.chain.ledger import GrantRequest, TwinLedger  # noqa: E402
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port  # noqa: E402
from twinledger.chain.types import Scope, purpose_code  # noqa: E402
from twinledger.identity import DidAuth, DidKey, did_hash  # noqa: E402
from twinledger.ipfs import FileBlockStore, ImportOptions, import_file  # noqa: E402
from twinledger.provenance import recovery_key_binding  # noqa: E402
from twinledger_node.api import snapshots as snapshot_api  # noqa: E402
from twinledger_node.api.deps import Consent  # noqa: E402
from twinledger_node.app import create_app  # noqa: E402
from twinledger_node.consent.decision import decide  # noqa: E402
from twinledger_node.runtime import ChainSetup, NodeRuntime  # noqa: E402
from twinledger_node.settings import NodeSettings  # noqa: E402


def serve(app, port: int) -> uvicorn.Server:  # type: ignore[no-untyped-def]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=400, help="reads per configuration")
    parser.add_argument("--ingest-mib", type=int, default=16)
    parser.add_argument("--events", type=int, default=1000, help="grant events to index")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        chain = LocalChain(tmp / "chain", port=free_port())
        rpc = str(chain.up().rpc_url)
        try:
            owner = Account.from_key(DEV_KEYS[1])
            deployment, _ = deploy(ChainClient(rpc, Account.from_key(DEV_KEYS[0])), tmp / "dep")
            ledger = TwinLedger(ChainClient(rpc, owner), deployment.twin_ledger)
            settings = NodeSettings(data_dir=tmp / "node", rpc_url=rpc, poll_interval=0.2, anchor_batch_size=256)
            runtime = NodeRuntime(
                settings, ChainSetup(ChainClient(rpc, Account.from_key(DEV_KEYS[9])), deployment, None)
            )
            device, reader, recovery = DidKey.generate(), DidKey.generate(), DidKey.generate()
            twin, _ = ledger.register("asset", device_did=device.did)
            ledger.grant(GrantRequest.of(twin, reader.did, "research", "read", ledger.client.chain_time() + 86_400))

            checked_port, open_port = free_port(), free_port()
            checked = serve(create_app(runtime), checked_port)
            unchecked_app = create_app(runtime, start_workers=False)
            consent_dependency = snapshot_api.ReadConsent.__metadata__[0].dependency

            def pass_through(twin_id: int, caller=None) -> Consent:  # type: ignore[no-untyped-def]
                return Consent(caller, runtime.snapshots.twin(twin_id), purpose_code("research"), Scope.READ, None)

            from twinledger_node.api.deps import authenticated  # the same signature check stays in

            async def caller_only(request: Request) -> Consent:
                caller = await authenticated(request)
                return pass_through(int(request.path_params["twin_id"]), caller)

            unchecked_app.dependency_overrides[consent_dependency] = caller_only
            unchecked = serve(unchecked_app, open_port)

            base = f"http://127.0.0.1:{checked_port}"
            binding = recovery_key_binding(owner, recovery.did, ledger.client.chain_id)
            with httpx.Client(base_url=base, auth=DidAuth(recovery)) as http:
                http.put("/v1/owners/recovery-key", json=binding).raise_for_status()
            with httpx.Client(base_url=base, auth=DidAuth(device)) as http:
                http.post(f"/v1/twins/{twin}/snapshots", content=os.urandom(64 * 1024)).raise_for_status()

            # 1. reads per second, interleaved rounds
            rates: dict[str, list[float]] = {"checked": [], "unchecked": []}
            clients = {
                "checked": httpx.Client(base_url=base, auth=DidAuth(reader)),
                "unchecked": httpx.Client(base_url=f"http://127.0.0.1:{open_port}", auth=DidAuth(reader)),
            }
            per_round = max(1, args.reads // 4)
            for _ in range(4):
                for name, client in clients.items():
                    started = time.perf_counter()
                    for _ in range(per_round):
                        client.get(
                            f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}
                        ).raise_for_status()
                    rates[name].append(per_round / (time.perf_counter() - started))
            checked_rate, open_rate = statistics.median(rates["checked"]), statistics.median(rates["unchecked"])
            rows.append(("consent-checked reads (64 KiB, HTTP)", f"{checked_rate:,.0f} /s",
                         f"{open_rate:,.0f} /s without the consent check", f"{checked_rate / open_rate:.2f}"))  # fmt: skip

            # 2. the authorization step alone
            conn = runtime.index.connection()
            key, purpose = did_hash(reader.did), purpose_code("research")
            samples = []
            for _ in range(5000):
                started = time.perf_counter()
                runtime.require_fresh()
                decision = decide(conn, twin, key, purpose, Scope.READ, runtime.chain_now())
                samples.append((time.perf_counter() - started) * 1000)
                assert decision.allowed
            samples.sort()
            p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
            rows.append(("authorization step p50 / p99", f"{p50:.3f} / {p99:.3f} ms", "goal: p99 < 2 ms", "–"))

            # 3. ingest vs raw import
            payload = os.urandom(args.ingest_mib * 1024 * 1024)
            store = FileBlockStore(tmp / "raw-store")
            started = time.perf_counter()
            with tempfile.TemporaryFile() as f:
                f.write(payload)
                f.seek(0)
                import_file(store, f, ImportOptions.profile("unixfs-v1-2025"))
            raw = len(payload) / (time.perf_counter() - started) / 2**20
            from twinledger_node.auth import Caller

            caller = Caller(did=device.did, key_id=device.did_url, algorithm="ed25519", created=0, expires=0, nonce="n",
                            signature_input="", signature="", content_digest="", signature_base=b"", method="POST",
                            target_uri="bench")  # fmt: skip
            started = time.perf_counter()
            runtime.snapshots.ingest(
                twin, payload, caller, None, runtime.chain_now(), require_fresh=runtime.require_fresh
            )
            ingest = len(payload) / (time.perf_counter() - started) / 2**20
            rows.append((f"ingest {args.ingest_mib} MiB (seal + import + manifest)", f"{ingest:,.1f} MiB/s",
                         f"{raw:,.1f} MiB/s raw store import", f"{ingest / raw:.2f}"))  # fmt: skip

            # 4. index catch-up
            batch = 50
            for start in range(0, args.events, batch):
                ledger.grant_batch([
                    GrantRequest.of(twin, DidKey.generate().did, "research", "read", ledger.client.chain_time() + 86_400)
                    for _ in range(min(batch, args.events - start))
                ])  # fmt: skip
            runtime.indexer.rebuild()
            started = time.perf_counter()
            runtime.indexer.sync_once()
            elapsed = time.perf_counter() - started
            events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            rows.append(("index catch-up (rebuild)", f"{events / elapsed:,.0f} events/s", f"{events} events",
                         "–"))  # fmt: skip
            for client in clients.values():
                client.close()
            checked.should_exit = unchecked.should_exit = True
            time.sleep(0.3)
        finally:
            chain.down()
    table = Table(title="twinledger node benchmark")
    for column in ("measure", "result", "baseline (same run)", "ratio"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(emoji=False).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
