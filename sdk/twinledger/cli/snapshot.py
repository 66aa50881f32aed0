"""`twinledger snapshot push|get|history|watch|open`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json, print_mapping, print_rows
from twinledger.cli.wallet import Session, wallet_options
from twinledger.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from twinledger.chain.ledger import TwinLedger
    from twinledger.identity import DidKey
    from twinledger.verify.export import ExportCar, OpenedSnapshot

app = typer.Typer(help="Push, read and list a twin's snapshots.", no_args_is_help=True)
PurposeOption = typer.Option(None, "--purpose", help="why you read (needed unless you own the twin)")


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=type(console)(stderr=True, emoji=False), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
@wallet_options
def push(
    twin_id: int = TwinArgument,
    file: Path = typer.Argument(..., help="the snapshot's content ('-': stdin)"),
    device_key: Path | None = typer.Option(
        None, "--device-key", help="push as the device: its private JWK file (`did new`; mode 0600)"
    ),
    purpose: str | None = typer.Option(None, "--purpose", help="push under a WRITE grant for this purpose"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Push a snapshot: as the twin's owner (your wallet), its device (--device-key), or under a WRITE grant."""
    from twinledger.identity.keyfile import read_key_file

    device = read_key_file(device_key) if device_key else None  # before reading stdin: a bad key wastes no input
    if str(file) != "-" and not file.is_file():
        raise InvalidInput(f"no file {file}", hint="give the path of the snapshot to push, or - for stdin")
    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    with (
        session.connect(wallet=not device) as tl,
        progress_bar(f"push {file.name}", not json_out) as progress,
    ):
        snapshot = tl.push_snapshot(twin_id, data, as_device=device, purpose=purpose, progress=progress)
    if json_out:
        print_json(snapshot.as_dict())
    else:
        console.print(
            f"pushed snapshot [bold]#{snapshot.seq}[/] of twin {twin_id}: {snapshot.size} bytes, manifest "
            f"{snapshot.manifest_cid} (anchoring queued)",
            highlight=False,
        )


@app.command()
@wallet_options
def get(
    twin_id: int = TwinArgument,
    seq: int | None = typer.Argument(None, help="sequence number (default latest)"),
    out: Path | None = typer.Option(None, "-o", "--out", help="write the content here (default stdout)"),
    purpose: str | None = PurposeOption,
    require_anchor: bool = typer.Option(False, "--require-anchor", help="refuse a snapshot not anchored yet"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Read a snapshot, verified (content hash, manifest, producer signature, on-chain anchor) before it is written."""
    if out is not None and out.exists():
        raise InvalidInput(f"{out} exists", hint="choose a new path with -o")
    if out is not None and not out.parent.is_dir():  # checked before the read: a read is receipted once served
        raise NotFound(f"no directory {out.parent} to write {out.name} into", hint="create it, or choose another -o")
    with session.connect() as tl, progress_bar("get", out is not None) as progress:
        fetched = tl.fetch_snapshot(
            twin_id, seq, purpose=purpose, out=out, progress=progress, require_anchor=require_anchor
        )
    v = fetched.verification
    if json_out:
        print_json(fetched.as_dict())
    elif out is None:
        sys.stdout.buffer.write(fetched.data or b"")
        sys.stdout.buffer.flush()
    else:
        print_mapping(
            f"snapshot #{fetched.seq} of twin {twin_id} → {out}",
            {
                "bytes": fetched.size,
                "sha256": v.plaintext_sha256,
                "manifest": v.manifest_cid,
                "producer": f"{v.producer} (signature verified)",
                "anchor": f"batch {v.batch_root} in {v.anchor_tx} (Merkle proof verified)"
                if v.anchored
                else "not anchored yet",
            },
        )


@app.command()
@wallet_options
def history(
    twin_id: int = TwinArgument,
    purpose: str | None = PurposeOption,
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """A twin's snapshots, oldest first, with their anchors."""
    with session.connect() as tl:
        snapshots = tl.history(twin_id, purpose=purpose)
    if json_out:
        print_json([s.as_dict() for s in snapshots])
        return
    rows = [
        (
            s.seq,
            datetime.fromtimestamp(s.created, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            s.size,
            s.manifest_cid,
            (s.anchor.tx or "")[:18] + "…" if s.anchor.anchored else "pending",
        )
        for s in snapshots
    ]
    print_rows(f"snapshots of twin {twin_id}", ["seq", "created (UTC)", "bytes", "manifest", "anchor tx"], rows)


@app.command()
@wallet_options
def watch(
    twin_id: int = TwinArgument,
    purpose: str | None = PurposeOption,
    out: Path | None = typer.Option(None, "-o", "--out", help="write each snapshot's content to DIR/<seq>"),
    after: int | None = typer.Option(
        None, "--after", min=0, help="start after this sequence number (default: only snapshots pushed from now on)"
    ),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Follow a twin live: each new snapshot is read and verified as `get` does (one access receipt each), one line
    per snapshot (--json: one JSON object per line), until the grant ends (exit 7) or Ctrl-C (exit 0)."""
    if out is not None and not out.is_dir():  # checked first: every snapshot the watch reads is receipted
        raise NotFound(f"no directory {out} to write the snapshots into", hint="create it, or choose another -o")
    try:
        with session.connect() as tl:
            for fetched in tl.watch(twin_id, purpose=purpose, after=after):
                path = None
                if out is not None:
                    path = out / str(fetched.seq)
                    path.write_bytes(fetched.data or b"")
                v = fetched.verification
                if json_out:
                    line = {**fetched.as_dict(), "twinId": twin_id, "path": str(path) if path else None}
                    typer.echo(json.dumps(line, sort_keys=True))
                else:
                    where = f" → {path}" if path else ""
                    anchored = "anchored" if v.anchored else "not anchored yet"
                    console.print(
                        f"snapshot #{fetched.seq} of twin {twin_id}: {fetched.size} bytes, manifest {v.manifest_cid}, "
                        f"producer {v.producer} (verified, {anchored}){where}",
                        highlight=False,
                        soft_wrap=True,
                    )
    except KeyboardInterrupt:  # Ctrl-C is how a watch is meant to end
        return


@app.command("open")
@wallet_options
def open_(
    seq: int | None = typer.Argument(None, min=1, help="sequence number (default the latest)"),
    car: Path = typer.Option(..., "--car", help="an export CAR (`twinledger export TWIN -o FILE`)"),
    out: Path = typer.Option(..., "-o", "--out", help="the file to write (with --all: a new directory)"),
    every: bool = typer.Option(False, "--all", help="write every snapshot into the directory -o, one file per seq"),
    twin_id: int | None = typer.Option(None, "--twin", min=1, help="refuse the CAR unless it is this twin's"),
    no_anchors: bool = typer.Option(
        False, "--no-anchors", help="do not ask the chain: signatures and hash links only, anchors NOT checked"
    ),
    allow_pending: bool = typer.Option(False, "--allow-pending", help="accept records not anchored yet"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Open snapshots from an export CAR with your wallet's did:key alone, no node: the manifests' node and
    producer signatures, the hash links, the access receipts and the on-chain anchors (--rpc-url) are verified,
    then each content block is checked against its CID and the manifest before the plaintext is written."""
    from twinledger.cli.export import new_path
    from twinledger.cli.wallet import unlock
    from twinledger.verify.export import ExportCar

    if every and seq is not None:
        raise InvalidInput("give SEQ or --all, not both", hint="--all writes every snapshot into the directory -o")
    new_path(out, "snapshots" if every else "snapshot")
    try:
        file = car.open("rb")
    except (FileNotFoundError, IsADirectoryError):
        raise NotFound(f"no CAR file {car}", hint="export one with `twinledger export TWIN -o FILE`") from None
    with file:
        export = ExportCar(file)
        if twin_id is not None and export.twin_id != twin_id:
            raise InvalidInput(f"{car} is an export of twin {export.twin_id}, not twin {twin_id}",
                               hint="pass the CAR of the twin you mean, or drop --twin")  # fmt: skip
        holder = unlock(session.name, session.passphrase_file).did_key  # a wrong wallet is said before the checks
        ledger = (
            None if no_anchors else _ledger(session.node, session.rpc_url, export.index.chain_id, export.index.registry)
        )
        echo = None if json_out else (lambda line: console.print(f"[green]✓[/] {line}", highlight=False))
        report = export.verify(ledger, allow_pending=allow_pending, on_check=echo)
        seqs = list(range(1, export.latest + 1)) if every else [seq or export.latest]
        opened, skipped = _open_all(export, seqs, holder, out, every)
    if json_out:
        print_json({"twinId": export.twin_id, "anchorsChecked": report.anchors_checked, "pending": report.pending,
                    "opened": [o.as_dict() | {"file": str(f)} for o, f in opened], "skipped": skipped})  # fmt: skip
        return
    for snapshot, path in opened:
        console.print(f"snapshot #{snapshot.seq} of twin {export.twin_id} → {path}: {snapshot.size} bytes, sha256 "
                      f"{snapshot.sha256} (signed by {snapshot.producer}, verified)", highlight=False)  # fmt: skip
    for item in skipped:
        console.print(f"[yellow]skipped[/] snapshot #{item['seq']}: {item['reason']}", highlight=False)
    if not report.anchors_checked:
        console.print("[yellow]anchors NOT checked[/] (--no-anchors): signatures and hash links only", highlight=False)


def _ledger(node: str | None, rpc_url: str | None, chain_id: int, registry: str) -> TwinLedger:
    """The CAR's registry on the chain (the option's, the profile's, ...), which must be the CAR's chain and hold
    the contract."""
    from twinledger.chain.client import ChainClient
    from twinledger.chain.ledger import TwinLedger
    from twinledger.errors import Unavailable
    from twinledger.profile import ChainFacts, chain_url, check_chain

    try:
        client = ChainClient(chain_url(node, rpc_url))
    except (Unavailable, InvalidInput) as error:
        raise Unavailable(
            f"{error.message}: the export's anchors cannot be checked",
            hint=f"pass --rpc-url of chain {chain_id}, or --no-anchors to open it unanchored (signatures and hash "
            "links still checked)",
        ) from None
    check_chain(client, ChainFacts(chain_id, registry), f"the export (registry {registry})")
    return TwinLedger(client, registry)


def _open_all(
    export: ExportCar, seqs: list[int], holder: DidKey, out: Path, every: bool
) -> tuple[list[tuple[OpenedSnapshot, Path]], list[dict[str, object]]]:
    """Each snapshot into its file, which appears only once verified; with --all, one not sealed to `holder`
    (pushed under another owner) is skipped and reported, not fatal."""
    import os
    import tempfile

    from twinledger.crypto.errors import NotARecipient

    if every:
        out.mkdir()
    opened: list[tuple[OpenedSnapshot, Path]] = []
    skipped: list[dict[str, object]] = []
    for seq in seqs:
        path = out / f"{seq:06d}" if every else out
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as sink:
                try:
                    opened.append((export.open(seq, holder, sink), path))
                except NotARecipient as error:
                    if not every:
                        raise
                    skipped.append({"seq": seq, "reason": error.message})
                    continue
            os.link(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return opened, skipped
