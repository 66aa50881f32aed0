"""`Client`: one object for an app or a person — the node over DID-signed HTTP, the chain through a wallet.

Every method that sends a transaction checks first (the DID parses, the wallet controls the twin, the expiry lies
ahead) so a refused call sends nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import httpx

from twinledger.chain.client import ChainClient
from twinledger.chain.errors import ContractRevert
from twinledger.chain.ledger import GrantRequest, TwinLedger, recipient_address
from twinledger.chain.types import BatchKind, Scope, TwinKind, purpose_code
from twinledger.client import chain_reads
from twinledger.client.errors import NodeUnavailable, NotOwner, from_problem
from twinledger.client.results import (
    AuditEntry,
    ConsentResult,
    FetchedSnapshot,
    Grant,
    NodeInfo,
    Snapshot,
    Twin,
    TxOutcome,
    Verification,
)
from twinledger.client.watch import RETRIES, RETRYABLE, WatchCursor
from twinledger.errors import Declined, InvalidInput, NotFound
from twinledger.identity import ConsentGrant, DidSigner, canonical_did, issue_consent_receipt, sign_request
from twinledger.identity.credentials import owner_key_evidence
from twinledger.ipfs import parse_cid
from twinledger.profile import ChainFacts, check_chain
from twinledger.provenance import json_block, recovery_key_binding
from twinledger.verify import VerifyReport, verify_twin
from twinledger.verify.checks import (
    check_anchor,
    check_node_signature,
    check_plaintext,
    check_producer,
    read_manifest,
    record_anchorer,
    run,
)
from twinledger.verify.consent import grant_transaction
from twinledger.wallet import Wallet

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)
CHUNK = 64 * 1024
RELAY_DEADLINE_S = 600


def _source(data: bytes | Path | BinaryIO) -> bytes:
    # The body must be complete before sending: its Content-Digest is part of the producer's signature.
    if isinstance(data, bytes):
        return data
    if isinstance(data, Path):
        try:
            return data.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no file {data}", hint="check the path") from None
    return data.read()


class Client:
    """The twinledger SDK, synchronous. See `AsyncClient` for the same calls as coroutines.

    >>> from twinledger import Client
    >>> from twinledger.wallet import WalletStore
    >>> wallet = WalletStore().unlock("alice", "a long passphrase")          # doctest: +SKIP
    >>> with Client("http://127.0.0.1:8700", "http://127.0.0.1:8545", wallet) as tl:  # doctest: +SKIP
    ...     twin = tl.register_twin("asset")
    ...     tl.push_snapshot(twin.twin_id, b'{"temperature": 21}')
    ...     tl.fetch_snapshot(twin.twin_id).data
    b'{"temperature": 21}'

    `wallet` may be None for a read-only client or a device that only pushes (`push_snapshot(..., as_device=key)`),
    and `rpc_url` None to use the RPC URL the node publishes; calls that need them say so.

    The node is asked who it is (`/v1/node`) on first need. `known` (what the node said earlier, e.g. from the
    profile) lets the consent and twin calls work with the chain alone while the node cannot be reached: grants and
    revocations are sent, checked and listed on chain, and `via()` says which of node and chain were used.
    """

    def __init__(
        self,
        node_url: str,
        rpc_url: str | None = None,
        wallet: Wallet | None = None,
        *,
        signer: DidSigner | None = None,
        known: ChainFacts | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.node_url = node_url.rstrip("/")
        self.wallet = wallet
        self._signer = signer
        # A node that is down is known within the connect timeout, not the read timeout: loopback refuses at once,
        # a remote host that is gone would otherwise hold every chain-only command for a minute.
        self._http = httpx.Client(base_url=self.node_url, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self._known = known
        self._node: NodeInfo | None = None
        self._node_down: NodeUnavailable | None = None
        self._rpc_url = rpc_url
        self._ledger: TwinLedger | None = None

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        signer: DidSigner | None = None,
        body: bytes = b"",
        params: dict[str, Any] | None = None,
        stream: bool = False,
        progress: Progress | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = httpx.URL(self.node_url + path, params={k: v for k, v in (params or {}).items() if v is not None})
        given = headers or {}
        headers = {"Content-Length": str(len(body))} if method != "GET" else {}
        if method != "GET" and "/snapshots" not in path:  # everything but a snapshot's plaintext is JSON
            headers["Content-Type"] = "application/json"
        headers |= given
        if signer is not None:
            headers |= sign_request(signer, method, str(url), body)
        content: Any = body if progress is None or method == "GET" else self._chunks(body, progress)
        try:
            request = self._http.build_request(
                method, url, headers=headers, content=content if method != "GET" else None
            )
            response = self._http.send(request, stream=stream)
        except httpx.TransportError as error:
            raise NodeUnavailable(
                f"cannot reach the node at {self.node_url}: {error.__class__.__name__}",
                hint="start it with `twinledger node up` or pass --node URL",
            ) from None
        if response.status_code >= 400:
            if stream:
                response.read()
            raise from_problem(response)
        return response

    @staticmethod
    def _chunks(body: bytes, progress: Progress) -> Iterator[bytes]:
        for start in range(0, len(body), CHUNK):
            yield body[start : start + CHUNK]
            progress(min(start + CHUNK, len(body)), len(body))
        if not body:
            progress(0, 0)

    @property
    def node(self) -> NodeInfo:
        """Who the node is (`/v1/node`), asked once; NodeUnavailable when it cannot be reached."""
        if self._node is None:
            if self._node_down is not None:
                raise self._node_down
            try:
                self._node = NodeInfo.from_json(self.node_url, self._request("GET", "/v1/node").json())
            except NodeUnavailable as error:
                self._node_down = error
                raise
        return self._node

    def node_reachable(self) -> bool:
        try:
            self.node  # noqa: B018 - asked for its side effect
        except NodeUnavailable:
            return False
        return True

    @property
    def facts(self) -> ChainFacts:
        """The node's chain and contracts: from the node, else (node unreachable) what it said earlier (`known`)."""
        if self._known is not None and not self.node_reachable():
            return self._known
        return self.node.facts

    def via(self) -> dict[str, str | None]:
        """Which node and chain this client has used: None for one it did not (or could not) use."""
        return {
            "node": self.node_url if self._node is not None else None,
            "chain": self._ledger.client.rpc_url if self._ledger is not None else None,
        }

    @property
    def ledger(self) -> TwinLedger:
        """The node's TwinLedger contract (`facts`), on the RPC's chain (the given one, else the one the node
        publishes), sending from the wallet. Refuses an RPC on another chain, naming both."""
        if self._ledger is None:
            facts = self.facts
            rpc_url = self._rpc_url or facts.rpc_url
            whose = f"the node {self.node_url}" + ("" if self._node is not None else " (as last seen)")
            if rpc_url is None:
                raise InvalidInput(
                    f"this call needs the chain, and {whose} publishes no RPC URL",
                    hint="pass --rpc-url (TWINLEDGER_RPC_URL) or set it once: `twinledger config set --rpc-url URL`",
                )
            chain = ChainClient(rpc_url, self.wallet.account if self.wallet else None)
            check_chain(chain, facts, whose)
            self._ledger = TwinLedger(chain, facts.twin_ledger)
        return self._ledger

    def _wallet(self) -> Wallet:
        if self.wallet is None:
            raise InvalidInput("this call needs a wallet", hint="create one with `twinledger wallet create`")
        return self.wallet

    def identity(self, twin_id: int | None = None) -> DidSigner:
        """Who signs requests: an explicit signer; else the wallet's did:pkh for a twin it owns, its did:key
        otherwise (the DID grantees give owners)."""
        if self._signer is not None:
            return self._signer
        wallet = self._wallet()
        if twin_id is not None and (self._rpc_url or self.facts.rpc_url) and self._owns(twin_id):
            return wallet.ethereum_did(self.facts.chain_id)
        return wallet.did_key

    def _owns(self, twin_id: int) -> bool:
        try:
            return self.ledger.twin(twin_id).owner == self._wallet().address
        except ContractRevert:
            return False

    def _owner_of(self, twin_id: int) -> str:
        """The twin's owner on chain; NotFound when no such twin was ever registered (or it was burnt)."""
        try:
            return self.ledger.owner_of(twin_id)
        except ContractRevert:
            raise NotFound(
                f"twin {twin_id} does not exist on chain {self.facts.chain_id}",
                hint="list your twins with `twinledger twin list`",
            ) from None

    def _require_owner(self, twin_id: int, action: str) -> None:
        wallet = self._wallet()
        owner = self._owner_of(twin_id)
        controls = self.ledger.is_controller(twin_id, wallet.address)
        if not controls:
            raise NotOwner(
                f"wallet {wallet.name} ({wallet.address}) does not own twin {twin_id} (owner {owner}); cannot {action}",
                hint="use the owner's wallet (--name), or ask the owner",
            )

    def _until_indexed(self, what: str, seen: Callable[[], bool], timeout: float = 60.0) -> bool:
        """Wait until the node's index shows a transaction just mined, so the next call reads its own write.
        False, at once, when the node cannot be reached: the chain has it, the node applies it once it indexes it."""
        if not self.node_reachable():
            return False
        deadline = time.monotonic() + timeout
        while True:
            try:
                if seen():
                    return True
            except NotFound:
                pass
            if time.monotonic() > deadline:
                raise NodeUnavailable(
                    f"the node has not indexed {what} after {timeout:.0f} s (it is on chain)",
                    hint="check the node's /readyz; it may be behind the chain",
                )
            time.sleep(0.1)

    def _grant_indexed(self, twin_id: int, tx_hash: str) -> bool:
        return any(tx_hash in (g.tx_hash, g.revoked_tx) for g in self.grants(twin_id))

    # ------------------------------------------------------------------ twins

    def ensure_recovery_key(self) -> str:
        """Register the wallet's did:key with the node as the key this owner's snapshots are sealed to
        (`PUT /v1/owners/recovery-key`, signed by the did:key). Idempotent; returns the did:key."""
        wallet = self._wallet()
        body = json.dumps(recovery_key_binding(wallet.account, wallet.did_key.did, self.node.chain_id)).encode()
        self._request("PUT", "/v1/owners/recovery-key", signer=wallet.did_key, body=body)
        return wallet.did_key.did

    def register_twin(
        self,
        kind: TwinKind | str = "asset",
        *,
        parent_id: int = 0,
        device_did: str | None = None,
        metadata: bytes | None = None,
    ) -> Twin:
        """Register a twin owned by the wallet (and make sure the node can seal its snapshots to the wallet).

        >>> tl.register_twin("asset", device_did="did:key:z6Mk…")  # doctest: +SKIP
        Twin(twin_id=1, owner='0x…', kind='asset', …)
        """
        kind = TwinKind.parse(kind)
        device = canonical_did(device_did) if device_did else ""
        if parent_id:
            self._require_owner(parent_id, f"register a child of twin {parent_id}")
        self.ensure_recovery_key()  # before the transaction: a node that refuses it leaves nothing half-done
        digest = hashlib.sha256(metadata).digest() if metadata else b"\x00" * 32
        twin_id, tx = self.ledger.register(kind, parent_id=parent_id, metadata_digest=digest, device_did=device)
        self._until_indexed(f"twin {twin_id}", lambda: self.twin(twin_id) is not None)
        return Twin(twin_id, self._wallet().address, kind.name.lower(), parent_id, device or None, 0, tx.tx_hash, 0)

    def twin(self, twin_id: int, *, purpose: str | None = None, signed: bool = False) -> Twin:
        """The twin as the node indexed it; from the chain alone while the node cannot be reached. With `signed`
        (the owner, or a READ or AUDIT grantee for `purpose`) the node also tells its last anchored and last stored
        snapshot, which are not public; otherwise those are None."""
        if not self.node_reachable() and self._known is not None:
            self._owner_of(twin_id)
            return chain_reads.twin(self.ledger, twin_id, self.facts.deploy_block)
        signer = self.identity(twin_id) if signed else None
        data = self._request("GET", f"/v1/twins/{int(twin_id)}", signer=signer, params={"purpose": purpose}).json()
        return Twin(
            twin_id, data["owner"], data["kind"], data["parentId"], data.get("deviceDid"), data.get("anchoredSeq"),
            latest_seq=data.get("latestSeq"),
        )  # fmt: skip

    def twins(self, owner: str | None = None) -> list[Twin]:
        """Twins owned by `owner` (default: the wallet), read from the chain."""
        owner = recipient_address(owner) if owner else self._wallet().address
        return chain_reads.twins_of(self.ledger, owner, self.facts.deploy_block)

    def bind_device(self, twin_id: int, device_did: str) -> TxOutcome:
        """Bind the device whose did:key signs this twin's data ("" unbinds)."""
        device = canonical_did(device_did) if device_did else ""
        self._require_owner(twin_id, "bind a device")
        tx = self.ledger.bind_device(twin_id, device)
        self._until_indexed(f"the device of twin {twin_id}", lambda: self.twin(twin_id).device_did == (device or None))
        return TxOutcome(tx.tx_hash, tx.block_number, {"twinId": twin_id, "deviceDid": device or None})

    def transfer(
        self, twin_id: int, to: str, *, confirm: Callable[[str, list[Grant]], bool] | None = None
    ) -> TxOutcome:
        """Transfer the twin to address `to`; every consent the wallet gave for it ends. With `confirm`, once the
        transfer is known to be valid it is asked (the new owner, the live grants that would end); False declines
        (`Declined`) and nothing is sent."""
        self._require_owner(twin_id, "transfer it")
        _, new_owner = self.ledger.check_recipient(twin_id, to)
        if confirm is not None and not confirm(new_owner, [g for g in self.grants(twin_id) if g.live]):
            raise Declined(f"twin {twin_id} was not transferred", hint="run it again and confirm, or pass --yes")
        tx = self.ledger.transfer(twin_id, new_owner)
        self._until_indexed(f"the transfer of twin {twin_id}", lambda: self.twin(twin_id).owner == new_owner)
        return TxOutcome(tx.tx_hash, tx.block_number, {"twinId": twin_id, "to": new_owner})

    # ------------------------------------------------------------------ snapshots

    def push_snapshot(
        self,
        twin_id: int,
        data: bytes | Path | BinaryIO,
        *,
        as_device: DidSigner | None = None,
        purpose: str | None = None,
        progress: Progress | None = None,
    ) -> Snapshot:
        """Push a snapshot's plaintext: as the twin's device (`as_device`), as its owner (the wallet), or as a
        holder of a WRITE grant for `purpose`. The node encrypts, stores, and anchors it.

        >>> tl.push_snapshot(7, Path("reading.json"), as_device=device_key)  # doctest: +SKIP
        Snapshot(twin_id=7, seq=1, manifest_cid='bafkrei…', …)
        """
        body = _source(data)
        signer = as_device or self.identity(twin_id)
        response = self._request(
            "POST",
            f"/v1/twins/{int(twin_id)}/snapshots",
            signer=signer,
            body=body,
            params={"purpose": purpose},
            progress=progress,
        )
        return Snapshot.from_json(response.json())

    def history(self, twin_id: int, *, purpose: str | None = None) -> list[Snapshot]:
        """Every snapshot's metadata and anchor proof, oldest first."""
        snapshots: list[Snapshot] = []
        after = 0
        while True:
            page = self._request(
                "GET",
                f"/v1/twins/{int(twin_id)}/snapshots",
                signer=self.identity(twin_id),
                params={"purpose": purpose, "after": after, "limit": 1000},
            ).json()
            snapshots += [Snapshot.from_json(s) for s in page["snapshots"]]
            if page["next"] is None:
                return snapshots
            after = page["next"]

    def fetch_snapshot(
        self,
        twin_id: int,
        seq: int | None = None,
        *,
        purpose: str | None = None,
        out: IO[bytes] | Path | None = None,
        progress: Progress | None = None,
        require_anchor: bool = False,
    ) -> FetchedSnapshot:
        """Read a snapshot (the latest when `seq` is None) and verify it before returning: the plaintext against
        the manifest's sha256, the manifest against its CID and the node's signature, the producer's own signature
        of what it pushed, and — once anchored — the Merkle proof to a batch root the chain holds.
        `require_anchor=True` refuses a snapshot not yet anchored. With `out`, the data goes there (after the
        checks) instead of into `.data`.

        >>> tl.fetch_snapshot(7, purpose="research").data  # doctest: +SKIP
        """
        signer = self.identity(twin_id)
        path = f"/v1/twins/{int(twin_id)}/snapshots/" + ("latest" if seq is None else str(int(seq)))
        buffer = io.BytesIO()
        digest = hashlib.sha256()
        response = self._request("GET", path, signer=signer, params={"purpose": purpose}, stream=True)
        try:
            total = int(response.headers.get("content-length", 0)) or None
            for chunk in response.iter_bytes(CHUNK):
                buffer.write(chunk)
                digest.update(chunk)
                if progress:
                    progress(buffer.tell(), total)
            headers = response.headers
        finally:
            response.close()
        served_seq = int(headers["twinledger-seq"])
        manifest_cid = headers["twinledger-manifest-cid"]
        anchor = json.loads(headers.get("twinledger-anchor") or "{}")
        manifest_json = self._request(
            "GET",
            f"/v1/twins/{int(twin_id)}/snapshots/{served_seq}/manifest",
            signer=signer,
            params={"purpose": purpose},
        ).json()
        verification = self._verify_fetched(
            twin_id, served_seq, manifest_cid, manifest_json, digest.digest(), buffer.tell(), anchor, require_anchor
        )
        data = buffer.getvalue()
        if out is None:
            return FetchedSnapshot(served_seq, len(data), manifest_json, verification, data)
        if isinstance(out, Path):
            out.write_bytes(data)
        else:
            out.write(data)
        return FetchedSnapshot(served_seq, len(data), manifest_json, verification)

    def watch(
        self, twin_id: int, *, purpose: str | None = None, after: int | None = None, retries: int = RETRIES
    ) -> Iterator[FetchedSnapshot]:
        """The twin's new snapshots as they are pushed (after `after`, else from now on), each read and verified as
        `fetch_snapshot` reads it (one access receipt each), until consent ends: then the mapped error is raised
        (ConsentDenied for a revoked or expired grant). A dropped connection is resumed with Last-Event-ID after a
        backoff; `retries` failed attempts in a row raise NodeUnavailable.

        >>> for snapshot in tl.watch(7, purpose="research"):  # doctest: +SKIP
        ...     print(snapshot.seq, snapshot.data)
        """
        cursor = WatchCursor(twin_id, after, retries=retries)
        while True:
            try:
                for seq in self._stream_once(cursor, purpose):
                    yield self.fetch_snapshot(twin_id, seq, purpose=purpose)
                    cursor.delivered(seq)
                delay = cursor.lost(None, self.node_url)
            except RETRYABLE as error:
                delay = cursor.lost(error, self.node_url)
            time.sleep(delay)

    def _stream_once(self, cursor: WatchCursor, purpose: str | None) -> Iterator[int]:
        """One connection's snapshot seqs (raises for its problem event, or a refused open)."""
        response = self._request(
            "GET", cursor.path, signer=self.identity(cursor.twin_id), params=cursor.params(purpose),
            headers=cursor.headers(), stream=True,
        )  # fmt: skip
        try:
            cursor.connected()
            for line in response.iter_lines():
                seq = cursor.feed(line)
                if seq is not None:
                    yield seq
        finally:
            response.close()

    def _verify_fetched(
        self,
        twin_id: int,
        seq: int,
        manifest_cid: str,
        manifest_json: dict[str, Any],
        sha256: bytes,
        size: int,
        anchor: dict[str, Any],
        require_anchor: bool,
    ) -> Verification:
        what = f"snapshot #{seq} of twin {twin_id}"
        block = json_block(manifest_json)
        if str(block.cid) != str(parse_cid(manifest_cid)):
            raise _verification(f"{what}: the manifest served hashes to {block.cid}, not {manifest_cid}")
        manifest = read_manifest(
            block.cid, block.data, twin_id=twin_id, chain_id=self.node.chain_id, registry=self.node.twin_ledger
        )
        if manifest["seq"] != seq:
            raise _verification(f"{what}: the manifest is for snapshot #{manifest['seq']}")
        check_plaintext(manifest, sha256, size, what)
        node = run(check_node_signature(manifest, what))
        producer = run(check_producer(manifest, what))
        anchored = bool(anchor.get("batchRoot") and anchor.get("tx")) and anchor.get("proof") is not None
        if anchored:
            check_anchor(
                self.ledger,
                BatchKind.SNAPSHOTS,
                (twin_id, seq, block.digest),
                anchor["batchRoot"],
                anchor["proof"],
                what,
                anchorer=record_anchorer(manifest, what),
            )
        elif require_anchor:
            raise _verification(
                f"{what} is not anchored on chain yet", hint="the node anchors in batches; retry shortly"
            )
        return Verification(
            sha256.hex(), str(block.cid), producer, node, anchored, anchor.get("batchRoot"), anchor.get("tx")
        )

    def wait_anchored(self, twin_id: int, seq: int, *, timeout: float = 120.0, purpose: str | None = None) -> Snapshot:
        """Poll the history until snapshot `seq` is anchored on chain."""
        deadline = time.monotonic() + timeout
        while True:
            for snapshot in self.history(twin_id, purpose=purpose):
                if snapshot.seq == seq and snapshot.anchor.anchored:
                    return snapshot
            if time.monotonic() > deadline:
                raise NodeUnavailable(
                    f"snapshot #{seq} of twin {twin_id} was not anchored within {timeout:.0f} s",
                    hint="check the node's anchor worker (`/metrics`, its log)",
                )
            time.sleep(0.5)

    # ------------------------------------------------------------------ consent

    def _grant_request(
        self, twin_id: int, did: str, purpose: str, scopes: Scope | str | int, expiry: int
    ) -> GrantRequest:
        request = GrantRequest.of(twin_id, did, purpose, scopes, expiry)  # checks DID, purpose, scopes
        self._require_owner(twin_id, "grant consent for it")
        now = self.ledger.client.chain_time()
        if request.expiry <= now:
            raise InvalidInput(
                f"the expiry {request.expiry} is not in the future (chain time {now})", hint="use e.g. --expires 30d"
            )
        return request

    def grant(
        self, twin_id: int, did: str, *, purpose: str, scopes: Scope | str | int, expiry: int, relay: bool = False
    ) -> ConsentResult:
        """Consent for `did` to use the twin for `purpose` with `scopes` until `expiry` (unix seconds).
        `relay=True` signs an EIP-712 grant and lets the node's relayer pay the gas.

        >>> tl.grant(7, "did:key:z6Mk…", purpose="research", scopes="read,train", expiry=parse_expiry("30d"))
        ... # doctest: +SKIP
        """
        request = self._grant_request(twin_id, did, purpose, scopes, expiry)
        if relay:
            now = self.ledger.client.chain_time()
            signed = self.ledger.sign_grant(self._wallet().account, request, deadline=now + RELAY_DEADLINE_S)
            tx_hash, block = self._relay(signed.as_json())
        else:
            tx = self.ledger.grant(request)
            tx_hash, block = tx.tx_hash, tx.block_number
        indexed = self._until_indexed(f"grant {tx_hash}", lambda: self._grant_indexed(twin_id, tx_hash))
        return ConsentResult(
            "grant",
            twin_id,
            request.did,
            "0x" + request.purpose.hex(),
            request.scopes.names(),
            request.expiry,
            tx_hash,
            block,
            relay,
            indexed,
        )

    def revoke(self, twin_id: int, did: str, *, purpose: str, relay: bool = False) -> ConsentResult:
        """End the grant of `did` for `purpose` (directly, or signed and relayed by the node)."""
        did = canonical_did(did)
        self._require_owner(twin_id, "revoke consent for it")
        record = self.ledger.grant_of(twin_id, did, purpose)
        if not record.exists:
            raise NotFound(
                f"twin {twin_id} has no grant for {did} with purpose {purpose}",
                hint=f"list its grants with `twinledger consent list {twin_id}`",
            )
        if relay:
            now = self.ledger.client.chain_time()
            signed = self.ledger.sign_revoke(
                self._wallet().account, twin_id, did, purpose, deadline=now + RELAY_DEADLINE_S
            )
            tx_hash, block = self._relay(signed.as_json())
        else:
            tx = self.ledger.revoke(twin_id, did, purpose)
            tx_hash, block = tx.tx_hash, tx.block_number
        indexed = self._until_indexed(f"revocation {tx_hash}", lambda: self._grant_indexed(twin_id, tx_hash))
        return ConsentResult(
            "revoke", twin_id, did, "0x" + purpose_code(purpose).hex(), [], 0, tx_hash, block, relay, indexed
        )

    def _relay(self, consent: dict[str, Any]) -> tuple[str, int]:
        body = {**consent, "chainId": self.facts.chain_id, "verifyingContract": self.facts.twin_ledger}
        result = self._request("POST", "/v1/consents", body=json.dumps(body).encode()).json()
        return result["txHash"], int(result["blockNumber"])

    def grants(self, twin_id: int) -> list[Grant]:
        """Every grant recorded for the twin, live or not: from the node's index, or from the chain's events while
        the node cannot be reached."""
        if not self.node_reachable() and self._known is not None:
            self._owner_of(twin_id)
            return chain_reads.grants(self.ledger, twin_id, self.facts.deploy_block)
        data = self._request("GET", f"/v1/twins/{int(twin_id)}/grants").json()
        return [
            Grant(
                twin_id,
                g["did"],
                g["purpose"],
                g["scopes"],
                g["expiry"],
                g["grantor"],
                g["live"],
                g["txHash"],
                g.get("revokedTx"),
            )
            for g in data["grants"]
        ]

    def check(self, twin_id: int, did: str, *, purpose: str, scope: Scope | str | int = "read") -> bool:
        """Whether the chain authorizes `did` for `scope` and `purpose` on the twin right now (NotFound for a twin
        that does not exist: nobody is authorized on it, and saying so would hide the typo)."""
        self._owner_of(twin_id)
        return self.ledger.is_authorized(twin_id, canonical_did(did), purpose, scope)

    def issue_consent_receipt(self, twin_id: int, did: str, *, purpose: str, tx_hash: str) -> dict[str, Any]:
        """A W3C verifiable credential, issued by the wallet's did:key, describing the grant that `tx_hash` made
        for `did` and `purpose` (scopes, expiry and block from the chain).

        Only the twin's owner issues one, and only for a grant in force: the transaction must hold the registry's
        `Granted` event of exactly this twin, DID and purpose, not revoked or replaced since, not expired. The
        credential carries the owner's Ethereum signature naming the issuing did:key."""
        wallet = self._wallet()
        owner = self.ledger.owner_of(twin_id)
        if wallet.account.address != owner:
            raise NotOwner(
                f"only the owner of twin {twin_id} ({owner}) issues its consent receipts; this wallet is "
                f"{wallet.account.address}",
                hint="run it with the owner's wallet (--name); a grantee shows `twinledger consent check` instead",
            )
        on_chain = grant_transaction(self.ledger, twin_id, did, purpose, tx_hash)
        grant = ConsentGrant(
            twin_id,
            on_chain.did,
            purpose,
            int(on_chain.scopes),
            on_chain.expiry,
            self.ledger.client.chain_id,
            self.ledger.address,
            on_chain.tx_hash,
            block_number=on_chain.block_number,
        )
        evidence = owner_key_evidence(wallet.account, wallet.did_key.did, grant.chain_id)
        return run(issue_consent_receipt(wallet.did_key, grant, evidence=evidence))

    # ------------------------------------------------------------------ audit and verification

    def audit(self, twin_id: int, *, purpose: str | None = None) -> list[AuditEntry]:
        """The twin's audit trail: chain events, snapshots and reads, each with its proof (owner or AUDIT grant)."""
        entries: list[AuditEntry] = []
        after = 0
        while True:
            page = self._request(
                "GET",
                f"/v1/twins/{int(twin_id)}/audit",
                signer=self.identity(twin_id),
                params={"purpose": purpose, "after": after, "limit": 1000},
            ).json()
            entries += [
                AuditEntry(e["kind"], int(e["time"]), e["data"], e["proof"], e.get("event")) for e in page["entries"]
            ]
            if page["next"] is None:
                return entries
            after = page["next"]

    def provenance_car(self, twin_id: int, *, purpose: str | None = None) -> bytes:
        """The twin's provenance CAR (its manifests, receipts and their Merkle proofs) for offline verification."""
        return self._request(
            "GET",
            f"/v1/twins/{int(twin_id)}/provenance.car",
            signer=self.identity(twin_id),
            params={"purpose": purpose},
        ).content

    def export(self, twin_id: int, out: Path | IO[bytes], *, progress: Progress | None = None) -> int:
        """Stream the twin's export CAR (the owner only: every snapshot's content blocks, manifests, receipts and
        Merkle proofs) to `out`, a new file or a binary stream; returns the bytes written. A file appears only once
        complete. Open it with no node: `twinledger.verify.open_export` (CLI: `twinledger snapshot open --car`).

        >>> tl.export(7, Path("twin-7.car"))  # doctest: +SKIP
        """
        response = self._request(
            "GET", f"/v1/twins/{int(twin_id)}/export.car", signer=self.identity(twin_id), stream=True
        )
        try:
            if not isinstance(out, Path):
                return _copy(response, out, progress)
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as sink:
                    written = _copy(response, sink, progress)
                    sink.flush()
                    os.fsync(sink.fileno())
                os.link(tmp, out)  # never over an existing file (FileExistsError)
            finally:
                Path(tmp).unlink(missing_ok=True)
            return written
        finally:
            response.close()

    def verify(
        self,
        twin_id: int,
        *,
        car: bytes | None = None,
        purpose: str | None = None,
        allow_pending: bool = False,
        allow_withheld: bool = False,
        on_check: Callable[[str], None] | None = None,
    ) -> VerifyReport:
        """Verify the twin's whole provenance against the chain; the node (or `car`) only supplies the blocks.

        `allow_withheld` accepts the CAR an AUDIT-only grantee gets, without the manifests (see `verify_twin`)."""
        data = car if car is not None else self.provenance_car(twin_id, purpose=purpose)
        return verify_twin(
            self.ledger, twin_id, io.BytesIO(data), allow_pending=allow_pending, allow_withheld=allow_withheld,
            on_check=on_check,
        )  # fmt: skip


def _copy(response: httpx.Response, sink: IO[bytes], progress: Progress | None) -> int:
    written = 0
    try:
        for chunk in response.iter_bytes(CHUNK):
            sink.write(chunk)
            written += len(chunk)
            if progress:
                progress(written, None)
    except httpx.HTTPError as error:  # the node broke off a stream it had begun (its answer was already 200)
        raise NodeUnavailable(
            f"the node broke off the download after {written} bytes: {error.__class__.__name__}",
            hint="retry; a file download leaves no partial file",
        ) from None
    return written


def _verification(message: str, hint: str | None = None) -> Exception:
    from twinledger.verify import VerificationFailed

    return VerificationFailed(message, hint=hint or "do not trust this data; report it to the node's operator")
