"""What participants, aggregators and verifiers share: the contracts, the block store, the catalog."""

from __future__ import annotations

import io
from dataclasses import dataclass

from multiformats import CID

from twinledger.chain.ledger import FederatedLedger, TwinLedger
from twinledger.crypto.envelope import Envelope, open_bytes
from twinledger.errors import IntegrityError, NotFound
from twinledger.federated import tensors
from twinledger.federated.records import (
    ROUND_RECORD,
    TASK_RECORD,
    UPDATE_RECORD,
    Catalog,
    RoundRecord,
    TaskSpec,
    UpdateRecord,
    load_json,
)
from twinledger.identity.keys import DidKey
from twinledger.ipfs import BlockStore, ImportOptions, cat, import_file


@dataclass
class FederatedContext:
    federated: FederatedLedger
    ledger: TwinLedger
    store: BlockStore
    catalog: Catalog

    def pin_bytes(self, data: bytes) -> CID:
        """Pin `data` as a UnixFS file (Kubo's default import) and return its CID."""
        return import_file(self.store, io.BytesIO(data), ImportOptions(), pin=True).cid

    def read_bytes(self, cid: CID | str) -> bytes:
        return b"".join(cat(self.store, cid))

    def task_spec(self, task_id: int) -> TaskSpec:
        cid = self.catalog.task(task_id)
        if cid is None:
            raise NotFound(
                f"no task record of task {task_id} in the catalog",
                hint="the aggregator announces it when it opens the task; point --catalog at its catalog",
            )
        spec = TaskSpec.from_json(load_json(self.store, cid, TASK_RECORD))
        if spec.task_id != task_id:
            raise IntegrityError(f"the catalog's task record {cid} describes task {spec.task_id}, not {task_id}")
        return spec

    def round_record(self, task_id: int, round_: int) -> tuple[CID, RoundRecord]:
        cid = self.catalog.round(task_id, round_)
        if cid is None:
            raise NotFound(
                f"no round record of task {task_id} round {round_} in the catalog",
                hint="the round is not checkpointed yet, or the catalog is not the aggregator's",
            )
        record = RoundRecord.from_json(load_json(self.store, cid, ROUND_RECORD))
        if (record.task_id, record.round) != (task_id, round_):
            raise IntegrityError(f"round record {cid} describes task {record.task_id} round {record.round}")
        return cid, record

    def update_record(self, cid: CID | str) -> UpdateRecord:
        return UpdateRecord.from_json(load_json(self.store, cid, UPDATE_RECORD))

    def global_model_file(self, task_id: int, round_: int) -> tuple[bytes, bytes]:
        """(tensor file, digest) of the model round `round_` trains on: the initial model or the last checkpoint's."""
        if round_ <= 1:
            spec = self.task_spec(task_id)
            cid, expected = spec.initial_model_cid, spec.initial_model_digest
        else:
            _, previous = self.round_record(task_id, round_ - 1)
            cid, expected = previous.model_cid, previous.model_digest
        data = self.read_bytes(cid)
        if tensors.digest(data) != expected:
            raise IntegrityError(f"the pinned global model {cid} does not hash to its recorded digest")
        return data, expected

    def global_model(self, task_id: int, round_: int) -> tensors.Arrays:
        return tensors.deserialize(self.global_model_file(task_id, round_)[0])

    def update_plaintext(self, record: UpdateRecord, key: DidKey | None) -> bytes:
        """The tensor file an update record points at, decrypted with `key` when it was pinned encrypted."""
        content = self.read_bytes(record.content_cid)
        if record.envelope is None:
            return content
        if key is None:
            raise NotFound(
                f"update of twin {record.twin_id} is encrypted to the aggregator",
                hint="pass the aggregator's did:key (--key) to open it",
            )
        return open_bytes(Envelope.from_dict(record.envelope), content, key)
