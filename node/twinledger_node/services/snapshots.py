"""Snapshots: authenticated producers push plaintext; the node seals it, stores ciphertext, writes a signed,
hash-linked manifest and queues its anchor. Reads decrypt for readers the consent check let through."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from twinledger.chain.types import Scope
from twinledger.crypto import Envelope, seal_stream
from twinledger.crypto.envelope import unseal_data_key
from twinledger.crypto.stream import decrypt_stream
from twinledger.errors import IntegrityError, NotFound, Unavailable
from twinledger.identity import DidKey, canonical_did, did_hash, sign_record
from twinledger.ipfs import BlockStore, FileBlockStore, ImportOptions, cat, import_file, parse_cid
from twinledger.ipfs.cids import cid_text
from twinledger.ipfs.importer import import_stream
from twinledger.provenance import json_block, read_json_block
from twinledger.streams import HashingWriter, IteratorReader
from twinledger_node.consent.decision import decide
from twinledger_node.db.base import Row
from twinledger_node.indexer.db import IndexDB
from twinledger_node.problem import Problem
from twinledger_node.services.cache import LRU
from twinledger_node.services.commit import GroupCommitter, HeadMoved, PushWork
from twinledger_node.state import NodeState

if TYPE_CHECKING:
    from twinledger_node.auth import Caller, Nonce

MANIFEST_TYPE = "twinledger/snapshot-manifest"
CONTENT_PROFILE = "unixfs-v1-2025"
# Per process, bounded: a parsed manifest is a few KiB, a data key 32 bytes with its envelope.
MANIFEST_CACHE = 4096
KEY_CACHE = 4096
HEAD_ATTEMPTS = 8  # rebuilds of a push whose twin another process appended to meanwhile, before a 503
# Sealing is CPU work under the GIL: more threads than this only add GIL handoffs (with a thread per concurrent push,
# 8 devices cost ~190 futex calls per push). A push waits for its group commit on the event loop, holding no thread.
SEALING_THREADS = 2
# Up to this much plaintext is sealed (pushes) or opened (reads) on the event loop: a few page-cache block reads
# and ~50 µs of cipher cost less than a thread hop under load.
INLINE_BYTES = 128 * 1024


@dataclass(frozen=True)
class StoredSnapshot:
    twin_id: int
    seq: int
    manifest_cid: str
    content_cid: str
    size: int
    sha256: str
    created: int
    batch_root: str | None
    proof: list[str] | None
    anchor_tx: str | None
    period: int  # the twin's ownership period when it was pushed: grants of other periods never serve it

    @classmethod
    def from_row(cls, row: Row) -> StoredSnapshot:
        return cls(
            row["twin_id"], row["seq"], row["manifest_cid"], row["content_cid"], row["size"], row["sha256"],
            row["created"], row["batch_root"], json.loads(row["proof"]) if row["proof"] else None, row["anchor_tx"],
            row["period"],
        )  # fmt: skip

    @classmethod
    def pushed(cls, row: tuple[Any, ...]) -> StoredSnapshot:
        """The snapshot its push just committed (`row` in the commit's SNAPSHOT_COLUMNS order): not batched yet."""
        twin_id, seq, manifest_cid, content_cid, _digest, size, sha256, _producer, created, period = row
        return cls(twin_id, seq, manifest_cid, content_cid, size, sha256, created, None, None, None, period)

    def as_json(self) -> dict[str, Any]:
        return {
            "twinId": self.twin_id, "seq": self.seq, "manifestCid": self.manifest_cid,
            "contentCid": self.content_cid, "size": self.size, "sha256": self.sha256, "created": self.created,
            "period": self.period, "anchor": {"batchRoot": self.batch_root, "proof": self.proof, "tx": self.anchor_tx},
        }  # fmt: skip


def owner_did(chain_id: int, owner: str) -> str:
    return f"did:pkh:eip155:{chain_id}:{owner}"


class SnapshotService:
    def __init__(
        self,
        state: NodeState,
        index: IndexDB,
        store: BlockStore,
        node_key: DidKey,
        commits: GroupCommitter,
        *,
        chain_id: int,
        registry: str,
        anchorer: str | None,
    ) -> None:
        self.state, self.index, self.store, self.node_key = state, index, store, node_key
        self.commits = commits
        self._manifests: LRU[str, dict[str, Any]] = LRU(MANIFEST_CACHE)
        self._keys: LRU[str, tuple[Envelope, bytes]] = LRU(KEY_CACHE)
        self.chain_id, self.registry, self.anchorer = chain_id, registry, anchorer
        self.options = ImportOptions.profile(CONTENT_PROFILE)
        self._twin_locks: dict[int, tuple[asyncio.Lock, int]] = {}  # twin → (lock, pushes holding or awaiting it)
        self._sealers = ThreadPoolExecutor(SEALING_THREADS, thread_name_prefix="twinledger-seal")

    # ------------------------------------------------------------------ who

    def twin(self, twin_id: int) -> Row:
        row = self.index.connection().execute("SELECT * FROM twins WHERE twin_id = ?", (twin_id,)).fetchone()
        if row is None:
            raise Problem(404, "unknown-twin", "Unknown twin", f"twin {twin_id} is not registered on this chain")
        return row

    def is_owner(self, twin: Row, did: str) -> bool:
        if did == owner_did(self.chain_id, twin["owner"]):
            return True
        return self._recovery_did(twin["owner"]) == did

    def owners_recovered_by(self, did: str) -> list[str]:
        """The accounts that registered `did` as their recovery key (it speaks for them as their owner)."""
        rows = self.state.connection().execute("SELECT owner FROM recovery_keys WHERE did = ?", (did,)).fetchall()
        return [str(row["owner"]) for row in rows]

    def _recovery_did(self, owner: str) -> str | None:
        row = self.state.connection().execute("SELECT did FROM recovery_keys WHERE owner = ?", (owner,)).fetchone()
        return str(row["did"]) if row else None

    def producer_role(
        self, twin: Row, did: str, purpose: bytes | None, chain_now: int, require_fresh: Callable[[], None]
    ) -> str:
        """device, owner, or grant (WRITE for `purpose`, decided on a fresh index); else a 403 saying who may push."""
        if twin["device_did"] and canonical_did(twin["device_did"]) == did:
            return "device"
        if self.is_owner(twin, did):
            return "owner"
        if purpose is not None:
            require_fresh()
            decision = decide(self.index.connection(), twin["twin_id"], did_hash(did), purpose, Scope.WRITE, chain_now)
            if decision.allowed:
                return "grant"
        raise Problem(
            403, "producer-not-bound", "Not a producer of this twin",
            f"{did} is not the device bound to twin {twin['twin_id']}, not its owner, and holds no WRITE grant"
            + (" for this purpose" if purpose else " (no purpose given)"),
            hint="sign with the twin's device key, or ask the owner for a WRITE grant and pass ?purpose=",
        )  # fmt: skip

    def recovery_key(self, owner: str) -> str:
        did = self._recovery_did(owner)
        if did is None:
            raise Problem(
                409, "no-recovery-key", "Owner has no recovery key",
                f"the owner {owner} has not registered a recovery key, so a snapshot could not be sealed to them",
                hint="the owner runs `twinledger wallet register-recovery-key` (PUT /v1/owners/recovery-key)",
            )  # fmt: skip
        return did

    # ------------------------------------------------------------------ ingest

    @contextlib.asynccontextmanager
    async def _twin_lock(self, twin_id: int) -> AsyncIterator[None]:
        """Chains this process's pushes to one twin (one event loop: no thread lock); dropped when unused, so the
        table holds only twins being pushed to."""
        lock, users = self._twin_locks.get(twin_id, (asyncio.Lock(), 0))
        self._twin_locks[twin_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._twin_locks[twin_id]
            if users == 1:
                del self._twin_locks[twin_id]
            else:
                self._twin_locks[twin_id] = (lock, users - 1)

    async def ingest(
        self,
        twin_id: int,
        body: bytes,
        caller: Caller,
        purpose: bytes | None,
        chain_now: int,
        *,
        require_fresh: Callable[[], None],
        nonce: Nonce | None = None,
    ) -> StoredSnapshot:
        """Seal, stage and group-commit one snapshot; returns once its blocks, row, pins and nonce are durable.

        Shielded: a caller that goes away (a client disconnecting) does not cut a push short between staging and
        its commit; the push completes or fails as a whole, and what it staged is never left holding the store."""
        return await asyncio.shield(self._store(twin_id, body, caller, purpose, chain_now, require_fresh, nonce))

    def _producer(
        self, twin_id: int, caller: Caller, purpose: bytes | None, chain_now: int, require_fresh: Callable[[], None]
    ) -> tuple[Row, str, list[str], Row | None]:
        """The twin, the caller's role as its producer, the DIDs its data key is sealed to, and its newest snapshot
        (in one call of the query threads on PostgreSQL)."""
        twin = self.twin(twin_id)
        role = self.producer_role(twin, caller.did, purpose, chain_now, require_fresh)
        return twin, role, [self.node_key.did, self.recovery_key(twin["owner"])], self._head(twin_id)

    async def _store(
        self, twin_id: int, body: bytes, caller: Caller, purpose: bytes | None, chain_now: int,
        require_fresh: Callable[[], None], nonce: Nonce | None,
    ) -> StoredSnapshot:  # fmt: skip
        loop = asyncio.get_running_loop()
        # Another process's push to the same twin is caught in the commit (HeadMoved) and this one rebuilt on the
        # new head; this process's pushes to the twin queue on its lock.
        async with self._twin_lock(twin_id):
            twin, role, recipients, previous = await self.state.run(
                self._producer, twin_id, caller, purpose, chain_now, require_fresh
            )
            for attempt in range(HEAD_ATTEMPTS):
                if attempt:
                    previous = await self.state.run(self._head, twin_id)
                if len(body) <= INLINE_BYTES:
                    work = self._build(twin, body, caller, role, recipients, previous, nonce)
                else:
                    work = await loop.run_in_executor(
                        self._sealers, self._build, twin, body, caller, role, recipients, previous, nonce
                    )
                try:
                    await asyncio.wrap_future(self.commits.submit(work))
                except HeadMoved:
                    self._abandon(work)
                    continue
                except BaseException:
                    self._abandon(work)
                    raise
                return StoredSnapshot.pushed(work.row)
        raise Problem(
            503, "twin-busy", "Twin busy",
            f"twin {twin_id} took {HEAD_ATTEMPTS} pushes from other processes while this one was being stored",
            hint="retry the push; nothing of it was stored",
        )  # fmt: skip

    def anchored_and_latest(self, twin_id: int) -> tuple[int, int]:
        """The last snapshot anchored on chain (alone or in a batch; 0 for none) and the last stored. Reads the
        primary key backwards from the newest: as many rows as wait for their batch, not every snapshot stored."""
        db = self.state.connection()
        anchored = db.execute(
            "SELECT seq FROM snapshots WHERE twin_id = ? AND anchor_tx IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (twin_id,),
        ).fetchone()
        head = self._head(twin_id)
        return (int(anchored["seq"]) if anchored else 0), (int(head["seq"]) if head else 0)

    def _head(self, twin_id: int) -> Row | None:
        return (
            self.state.connection()
            .execute("SELECT seq, manifest_cid FROM snapshots WHERE twin_id = ? ORDER BY seq DESC LIMIT 1", (twin_id,))
            .fetchone()
        )

    def _build(
        self,
        twin: Row,
        body: bytes,
        caller: Caller,
        role: str,
        recipients: list[str],
        previous: Row | None,
        nonce: Nonce | None,
    ) -> PushWork:
        """The push's blocks staged (embedded store: made durable by its group's commit) and its row."""
        twin_id = int(twin["twin_id"])
        seq = (previous["seq"] if previous else 0) + 1
        staged = self.store.stage() if isinstance(self.store, FileBlockStore) else None
        try:
            # Small bodies are sealed in memory: a temporary file costs an inode allocation and a few syscalls.
            with io.BytesIO() if len(body) <= INLINE_BYTES else tempfile.TemporaryFile() as ciphertext:
                envelope = seal_stream(io.BytesIO(body), cast(BinaryIO, ciphertext), recipients)
                size = ciphertext.tell()
                ciphertext.seek(0)
                if staged is not None:
                    content = import_stream(staged, cast(BinaryIO, ciphertext), self.options)
                else:  # Kubo pins what it adds at once: a crash before the row leaves a pin gc will not take
                    content = import_file(self.store, cast(BinaryIO, ciphertext), self.options, pin=True)
            content_cid = cid_text(content.cid)
            created = int(time.time())
            manifest = {
                "type": MANIFEST_TYPE, "version": 1, "chainId": self.chain_id, "registry": self.registry,
                "anchorer": self.anchorer, "twinId": twin_id, "seq": seq,
                "previous": previous["manifest_cid"] if previous else None,
                "created": created,
                "content": {"cid": content_cid, "size": size, "profile": CONTENT_PROFILE},
                "plaintext": {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()},
                "envelope": envelope.to_dict(),
                "producer": {
                    "did": caller.did, "role": role,
                    "request": {
                        "method": caller.method, "target": caller.target_uri, "signatureInput": caller.signature_input,
                        "signature": caller.signature, "contentDigest": caller.content_digest,
                    },
                },
            }  # fmt: skip
            block = json_block(sign_record(manifest, self.node_key, created=created))
            if staged is not None:
                staged.put(block.cid, block.data)
            else:
                self.store.put(block.cid, block.data)
                self.store.pin(block.cid)
        except OSError as error:
            if staged is not None:
                staged.rollback()
            raise Unavailable(
                f"the block store could not write: {error.strerror or error}",
                hint="free disk space or fix the store's permissions, then retry; nothing was added",
            ) from error
        except BaseException:
            if staged is not None:
                staged.rollback()
            raise
        # The period of the index row that let the producer in: the index only lags the chain, so a snapshot is
        # never filed under a later period than the one it was pushed in.
        manifest_cid = cid_text(block.cid)
        row = (twin_id, seq, manifest_cid, content_cid, "0x" + block.digest.hex(), len(body),
               manifest["plaintext"]["sha256"], caller.did, created, twin["period"])  # type: ignore[index]  # fmt: skip
        return PushWork(twin_id, seq - 1, row, [manifest_cid, content_cid], staged, nonce)

    def _abandon(self, work: PushWork) -> None:
        """A push that was not stored: staged blocks dropped, or (Kubo) the pins it took released."""
        if work.staged is not None:
            work.staged.rollback()
            return
        for cid in work.pins:
            with contextlib.suppress(NotFound):
                self.store.unpin(parse_cid(cid))

    # ------------------------------------------------------------------ read

    def get(self, twin_id: int, seq: int | None = None, manifest_cid: str | None = None) -> StoredSnapshot:
        db = self.state.connection()
        if manifest_cid is not None:
            row = db.execute("SELECT * FROM snapshots WHERE twin_id = ? AND manifest_cid = ?",
                             (twin_id, cid_text(parse_cid(manifest_cid)))).fetchone()  # fmt: skip
        elif seq is None:
            row = db.execute(
                "SELECT * FROM snapshots WHERE twin_id = ? ORDER BY seq DESC LIMIT 1", (twin_id,)
            ).fetchone()
        else:
            row = db.execute("SELECT * FROM snapshots WHERE twin_id = ? AND seq = ?", (twin_id, seq)).fetchone()
        if row is None:
            which = manifest_cid or ("latest" if seq is None else f"#{seq}")
            raise Problem(404, "unknown-snapshot", "No such snapshot", f"twin {twin_id} has no snapshot {which}")
        return StoredSnapshot.from_row(row)

    def history(
        self, twin_id: int, *, after: int = 0, limit: int = 100, period: int | None = None
    ) -> list[StoredSnapshot]:
        """The twin's snapshots after `after`, in order; only those pushed in ownership period `period` if given."""
        return [StoredSnapshot.from_row(r) for r in self.history_rows(twin_id, after=after, limit=limit, period=period)]

    def history_rows(self, twin_id: int, *, after: int, limit: int, period: int | None = None) -> list[Row]:
        """`history`'s rows as stored (with the producer's DID, which `StoredSnapshot` leaves out)."""
        conn = self.state.connection()
        if period is None:
            query = "SELECT * FROM snapshots WHERE twin_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            return conn.execute(query, (twin_id, after, limit)).fetchall()
        query = "SELECT * FROM snapshots WHERE twin_id = ? AND seq > ? AND period = ? ORDER BY seq LIMIT ?"
        return conn.execute(query, (twin_id, after, period, limit)).fetchall()

    def head_seq(self, twin_id: int) -> int:
        """The twin's newest snapshot's sequence number (0: none yet)."""
        head = self._head(twin_id)
        return int(head["seq"]) if head else 0

    def head_seqs(self, twin_ids: list[int]) -> dict[int, int]:
        """`head_seq` of many twins in one statement: a row of one `MAX(seq)` subquery per twin, each a single seek
        of the (twin_id, seq) key (`… IN (…) GROUP BY twin_id` reads every row of each twin instead)."""
        if not twin_ids:
            return {}
        newest = ", ".join(["(SELECT MAX(seq) FROM snapshots WHERE twin_id = ?)"] * len(twin_ids))
        row = self.state.connection().execute(f"SELECT {newest}", twin_ids).fetchone()
        return {twin: int(seq or 0) for twin, seq in zip(twin_ids, row, strict=True)}

    def manifest(self, snapshot: StoredSnapshot) -> dict[str, Any]:
        """The parsed, signed manifest (cached by CID: a manifest block is immutable; callers must not mutate it)."""
        cached = self._manifests.get(snapshot.manifest_cid)
        if cached is None:
            cid = parse_cid(snapshot.manifest_cid)
            cached = read_json_block(cid, self.store.get(cid))
            self._manifests.put(snapshot.manifest_cid, cached)
        return cached

    def _data_key(self, snapshot: StoredSnapshot) -> tuple[dict[str, Any], Envelope, bytes]:
        """The manifest, its envelope and the snapshot's data key, unsealed once and then served from the cache."""
        manifest = self.manifest(snapshot)
        cached = self._keys.get(snapshot.manifest_cid)
        if cached is None:
            envelope = Envelope.from_dict(manifest["envelope"])
            cached = (envelope, unseal_data_key(envelope, self.node_key))
            self._keys.put(snapshot.manifest_cid, cached)
        return manifest, cached[0], cached[1]

    def forget_keys(self, manifest_cid: str) -> None:
        """Drop a snapshot's cached manifest and data key. Whatever destroys a snapshot's key material (crypto-
        shredding) must call this in every process, or a cached key would keep decrypting what was shredded. The
        node has no shred path today (an envelope is inside its content-addressed manifest); this is its hook."""
        self._keys.discard(manifest_cid)
        self._manifests.discard(manifest_cid)

    def decrypt_to(self, snapshot: StoredSnapshot, dst: IO[bytes]) -> int:
        """Write the plaintext of `snapshot` to `dst`, checked against the manifest's sha256."""
        manifest, envelope, key = self._data_key(snapshot)
        writer = HashingWriter(dst)
        chunks: Iterator[bytes] = cat(self.store, manifest["content"]["cid"])
        decrypt_stream(
            key, cast(BinaryIO, IteratorReader(chunks)), cast(BinaryIO, writer),
            chunk_size=envelope.chunk_size, associated_data=envelope.associated_data,
        )  # fmt: skip
        if writer.sha256.hexdigest() != manifest["plaintext"]["sha256"]:
            raise IntegrityError(f"snapshot {snapshot.manifest_cid} decrypted to bytes its manifest does not name")
        return writer.size
