"""`twinledger snapshot push|get|history|watch`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import typer

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json, print_mapping, print_rows
from twinledger.cli.wallet import Session, wallet_options
from twinledger.errors import InvalidInput, NotFound

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
