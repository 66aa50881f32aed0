"""An owner's export CAR (`twinledger export`) opened with no node: the whole provenance verified as
`twinledger verify` does (signatures, hash links and, given the chain, the anchors), then each snapshot's content
checked against its signed manifest and decrypted with the owner's did:key.

Example::

    with open("twin-7.car", "rb") as file:
        export = ExportCar(file)
        export.verify(ledger)                       # raises VerificationFailed at the first mismatch
        opened = export.open(None, wallet.did_key, out)   # the latest snapshot's plaintext into `out`
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from twinledger.chain.ledger import TwinLedger
from twinledger.crypto import Envelope
from twinledger.crypto.envelope import unseal_data_key
from twinledger.crypto.errors import NotARecipient
from twinledger.crypto.stream import decrypt_stream
from twinledger.errors import IntegrityError, InvalidInput, NotFound, TwinledgerError
from twinledger.identity import DidKey
from twinledger.ipfs import parse_cid
from twinledger.ipfs.dag import cat_blocks
from twinledger.streams import HashingWriter, IteratorReader
from twinledger.verify.bundle import Entry, read_bundle_file
from twinledger.verify.checks import _fail, check_plaintext, read_manifest
from twinledger.verify.offline import VerifyReport, verify_bundle


@dataclass(frozen=True)
class OpenedSnapshot:
    """One snapshot decrypted from an export: what its manifest says, checked against the bytes written."""

    seq: int
    size: int
    sha256: str
    manifest_cid: str
    producer: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "size": self.size, "sha256": self.sha256, "manifestCid": self.manifest_cid,
                "producer": self.producer}  # fmt: skip


class ExportCar:
    """An export CAR read from a seekable file; its blocks stay in the file (one is held at a time)."""

    def __init__(self, file: BinaryIO) -> None:
        try:
            self.index, self.blocks = read_bundle_file(file)
        except IntegrityError as error:
            raise IntegrityError(
                error.message, hint="the file is damaged or not an export: nothing was written; export the twin again"
            ) from None
        self.twin_id = self.index.twin_id
        if self.index.snapshots and all(entry.content is None for entry in self.index.snapshots):
            raise InvalidInput(
                f"the CAR is twin {self.twin_id}'s provenance CAR without the snapshots' content, not an export",
                hint=f"as the owner, export everything with `twinledger export {self.twin_id} -o FILE`",
            )

    @property
    def latest(self) -> int:
        return len(self.index.snapshots)

    def verify(
        self, ledger: TwinLedger | None, *, allow_pending: bool = False, on_check: Callable[[str], None] | None = None
    ) -> VerifyReport:
        """Everything `twinledger verify --car` checks; without `ledger`, all but the anchors (the report says so)."""
        return verify_bundle(ledger, self.twin_id, self.index, self.blocks, allow_pending=allow_pending,
                             on_check=on_check)  # fmt: skip

    def open(self, seq: int | None, holder: DidKey, out: BinaryIO) -> OpenedSnapshot:
        """Write snapshot `seq`'s plaintext (the latest when None) to `out`, decrypted with `holder`'s key.

        The content's blocks are re-hashed as they are read, must form the DAG the signed manifest names and be as
        long as it says; the ciphertext authenticates every chunk; the plaintext must have the manifest's sha256
        and size. On any error what was written to `out` must be discarded."""
        seq = self.latest if seq is None else seq
        if not 1 <= seq <= self.latest:
            raise NotFound(
                f"twin {self.twin_id}'s export holds snapshots 1..{self.latest}, not #{seq}",
                hint="omit SEQ for the latest, or pass --all",
            )
        entry = self.index.snapshots[seq - 1]
        what = f"snapshot #{seq} of twin {self.twin_id}"
        manifest = read_manifest(
            entry.cid, self.blocks.get(entry.cid),
            twin_id=self.twin_id, chain_id=self.index.chain_id, registry=self.index.registry,
        )  # fmt: skip
        content = self._content(entry, manifest, what)
        envelope = Envelope.from_dict(manifest["envelope"])
        try:
            key = unseal_data_key(envelope, holder)
        except NotARecipient:
            sealed_to = ", ".join(r.kid.split("#")[0] for r in envelope.recipients)
            raise NotARecipient(
                f"{what} is sealed to {sealed_to}, not to your wallet's {holder.did}",
                hint="open it with the wallet of the owner who held the twin when it was pushed (--name)",
            ) from None
        ciphertext = _Counted(cat_blocks(content, self._block_of(what)))
        writer = HashingWriter(out)
        decrypt_stream(
            key, cast(BinaryIO, IteratorReader(iter(ciphertext))), cast(BinaryIO, writer),
            chunk_size=envelope.chunk_size, associated_data=envelope.associated_data,
        )  # fmt: skip
        if ciphertext.size != manifest["content"]["size"]:
            raise _fail(
                f"{what}: its content is {ciphertext.size} bytes, the manifest says {manifest['content']['size']}"
            )
        check_plaintext(manifest, writer.sha256.digest(), writer.size, what)
        return OpenedSnapshot(seq, writer.size, writer.sha256.hexdigest(), str(entry.cid), manifest["producer"]["did"])

    def _content(self, entry: Entry, manifest: dict[str, Any], what: str) -> Any:
        """The content root the signed manifest names, which the (unsigned) index must link and the CAR hold."""
        named = parse_cid(str(manifest["content"]["cid"]))
        if entry.content is None:
            raise InvalidInput(f"the export holds no content for {what}",
                               hint=f"export the twin again: `twinledger export {self.twin_id} -o FILE`")  # fmt: skip
        if bytes(entry.content) != bytes(named):
            raise _fail(f"{what}: the CAR's index links content {entry.content}, its manifest names {named}")
        return named

    def _block_of(self, what: str) -> Callable[[Any], bytes]:
        def get(cid: Any) -> bytes:
            try:
                return self.blocks.get(cid)
            except NotFound:
                raise _fail(f"{what}: block {cid} of its content is not in the export",
                            hint="the CAR is incomplete: export the twin again") from None  # fmt: skip
            except TwinledgerError as error:
                raise _fail(f"{what}: block {cid} of its content: {error.message}") from None

        return get


class _Counted:
    """The ciphertext's chunks, counted as they pass."""

    def __init__(self, chunks: Any) -> None:
        self.chunks, self.size = chunks, 0

    def __iter__(self) -> Any:
        for chunk in self.chunks:
            self.size += len(chunk)
            yield chunk


__all__ = ["ExportCar", "OpenedSnapshot"]
