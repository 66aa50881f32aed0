"""`twinledger ipfs`: add, cat, get, pin, gc, car and stat against the configured store (embedded or Kubo)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer import _click  # typer >= 0.29 vendors click; its Command.parse_args takes this Context

from twinledger.cli.output import JsonOption, print_json
from twinledger.errors import InvalidInput

if TYPE_CHECKING:
    from twinledger.ipfs import BlockStore

app = typer.Typer(help="Content-addressed storage: Kubo-identical CIDs, pins, CAR files.", no_args_is_help=True)
pin_app = typer.Typer(help="Recursive pins: pinned DAGs survive gc.", no_args_is_help=True)
car_app = typer.Typer(help="CAR v1 archives of DAGs.", no_args_is_help=True)
app.add_typer(pin_app, name="pin")
app.add_typer(car_app, name="car")

RepoOption = Annotated[
    Path | None, typer.Option("--repo", help="embedded store directory (default $TWINLEDGER_IPFS_PATH)")
]


class KuboFlags(TyperCommand):
    """Boolean options as Kubo's parser takes them: bare (``--raw-leaves``, ``-n``) or ``--flag=true|false``.

    Click flags take no value, so ``--flag=VALUE`` is rewritten before parsing: to the flag for a true value,
    to its ``--no-`` form (or to nothing, for a flag that is off by default) for a false one. A bare flag never
    takes the next word, so ``--raw-leaves PATH`` leaves PATH the path, as in Kubo.
    """

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        flags: dict[str, tuple[str, str | None]] = {}
        for param in self.params:
            if getattr(param, "is_bool_flag", False):  # typer vendors click: no isinstance on click.Option
                on, off = param.opts[-1], (getattr(param, "secondary_opts", None) or [None])[0]
                for name in param.opts:
                    flags[name] = (on, off)
        rewritten: list[str] = []
        for index, arg in enumerate(args):
            if arg == "--":
                rewritten.extend(args[index:])
                break
            name, equals, value = arg.partition("=")
            if not equals or name not in flags:
                rewritten.append(arg)
                continue
            from twinledger.ipfs.options import parse_go_bool  # only when a flag has a value: --help stays light

            on, off = flags[name]
            if parse_go_bool(name, value):
                rewritten.append(on)
            elif off is not None:
                rewritten.append(off)
        return super().parse_args(ctx, rewritten)


def _said(data: object, text: str, json_out: bool) -> None:
    if json_out:
        print_json(data)
    elif text:
        typer.echo(text)


def _store(repo: Path | None) -> BlockStore:
    from twinledger.ipfs import IPFSConfig, open_store

    config = IPFSConfig.from_env()
    if repo is not None:
        config = IPFSConfig(backend="embedded", path=repo, kubo_addr=config.kubo_addr)
    return open_store(config)


@app.command(cls=KuboFlags)
def add(
    path: Annotated[Path, typer.Argument(help="file or directory to add")],
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="add a directory tree")] = False,
    quieter: Annotated[bool, typer.Option("-Q", "--quieter", help="print only the root CID")] = False,
    only_hash: Annotated[bool, typer.Option("-n", "--only-hash", help="compute the CID, store nothing")] = False,
    cid_version: Annotated[int | None, typer.Option("--cid-version", help="0 or 1 (default: 0, as Kubo's)")] = None,
    raw_leaves: Annotated[
        bool | None, typer.Option("--raw-leaves/--no-raw-leaves", help="raw leaf blocks (default: CID v1)")
    ] = None,
    chunker: Annotated[str | None, typer.Option("-s", "--chunker", help="size-N, N <= 2 MiB - 256")] = None,
    max_file_links: Annotated[
        int | None, typer.Option("--max-file-links", help="links per file node (default: 174)")
    ] = None,
    trickle: Annotated[bool, typer.Option("-t", "--trickle", help="trickle DAG layout")] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="as `ipfs config profile apply` would, before the flags: unixfs-v0-2015 | unixfs-v1-2025"
        ),
    ] = None,
    hidden: Annotated[bool, typer.Option("-H", "--hidden", help="include files whose names start with .")] = False,
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="pin the result (Kubo's default)")] = True,
    repo: RepoOption = None,
    json_out: bool = JsonOption,
) -> None:
    """Add a file or directory, like `ipfs add`, and print its CID. Boolean flags also take =true|false."""
    from twinledger.ipfs import ImportOptions, add_path, compute_cid

    flags: list[str] = []
    for name, value in (
        ("--cid-version", cid_version),
        ("--raw-leaves", None if raw_leaves is None else str(raw_leaves).lower()),
        ("--chunker", chunker),
        ("--max-file-links", max_file_links),
        ("--profile", profile),
    ):
        if value is not None:
            flags.append(f"{name}={value}")
    if trickle:
        flags.append("--trickle")
    if hidden:
        flags.append("--hidden")
    options = ImportOptions.from_kubo_flags(flags)
    if path.is_dir() and not recursive:
        raise InvalidInput(f"{path} is a directory", hint="add -r to add a directory tree")
    result = compute_cid(path, options) if only_hash else add_path(_store(repo), path, options, pin=pin)
    if json_out:
        print_json({"cid": str(result.cid), "name": path.name, "pinned": pin and not only_hash})
    else:
        typer.echo(str(result.cid) if quieter else f"added {result.cid} {path.name}")


@app.command("cat")
def cat_command(
    cid: str,
    repo: RepoOption = None,
    json_out: bool = typer.Option(
        False, "--json", help='print {"cid", "size", "base64"} instead of the raw bytes (errors as a problem object)'
    ),
) -> None:
    """Write a file's bytes to stdout (every block verified against its CID)."""
    import base64

    from twinledger.ipfs import cat, parse_cid

    root = parse_cid(cid)
    out = sys.stdout.buffer
    if not json_out:
        for chunk in cat(_store(repo), root):
            out.write(chunk)
        out.flush()
        return
    # Streamed into the JSON string in base64 groups of whole 3-byte units, so a large file is never held whole.
    out.write(b'{"cid": "%s", "base64": "' % str(root).encode())
    size, carry = 0, b""
    for chunk in cat(_store(repo), root):
        size += len(chunk)
        data = carry + chunk
        cut = len(data) - len(data) % 3
        out.write(base64.b64encode(data[:cut]))
        carry = data[cut:]
    out.write(base64.b64encode(carry) + b'", "size": %d}\n' % size)
    out.flush()


@app.command()
def get(
    cid: str,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="where to write (default: the CID)")] = None,
    repo: RepoOption = None,
    json_out: bool = JsonOption,
) -> None:
    """Write a file or directory tree out of the store."""
    from twinledger.ipfs import get_to_path, parse_cid

    root = parse_cid(cid)
    dest = output or Path(str(root))
    get_to_path(_store(repo), root, dest)
    _said({"cid": str(root), "path": str(dest)}, f"saved {root} to {dest}", json_out)


@app.command()
def stat(cid: str, repo: RepoOption = None, json_out: bool = JsonOption) -> None:
    """Size of one block."""
    from twinledger.ipfs import parse_cid

    info = _store(repo).stat(parse_cid(cid))
    _said({"cid": str(info.cid), "size": info.size}, f"Key: {info.cid}\nSize: {info.size}", json_out)


@app.command()
def gc(repo: RepoOption = None, json_out: bool = JsonOption) -> None:
    """Delete every block that no pin reaches."""
    removed = _store(repo).gc()
    lines = [f"removed {cid}" for cid in removed] + [f"{len(removed)} blocks removed"]
    _said({"removed": [str(cid) for cid in removed]}, "\n".join(lines), json_out)


@pin_app.command("add")
def pin_add(cid: str, repo: RepoOption = None, json_out: bool = JsonOption) -> None:
    """Pin a DAG recursively (all of it must be in the store)."""
    from twinledger.ipfs import parse_cid

    root = parse_cid(cid)
    _store(repo).pin(root)
    _said({"cid": str(root), "pinned": True}, f"pinned {root} recursively", json_out)


@pin_app.command("rm")
def pin_rm(cid: str, repo: RepoOption = None, json_out: bool = JsonOption) -> None:
    """Unpin a DAG (gc may then take what no other pin reaches)."""
    from twinledger.ipfs import parse_cid

    root = parse_cid(cid)
    _store(repo).unpin(root)
    _said({"cid": str(root), "pinned": False}, f"unpinned {root}", json_out)


@pin_app.command("ls")
def pin_ls(repo: RepoOption = None, json_out: bool = JsonOption) -> None:
    """Every pinned root (all pins are recursive)."""
    pins = [str(cid) for cid in _store(repo).pins()]
    _said([{"cid": cid, "type": "recursive"} for cid in pins], "\n".join(f"{cid} recursive" for cid in pins), json_out)


@car_app.command("export")
def car_export(
    cid: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="CAR file to write")],
    repo: RepoOption = None,
    json_out: bool = JsonOption,
) -> None:
    """Export the DAG under CID as a CAR v1 file (Kubo's block order)."""
    from twinledger.ipfs import export_car, parse_cid

    root = parse_cid(cid)
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("wb") as out:
            export_car(_store(repo), root, out)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    _said({"cid": str(root), "path": str(output)}, f"exported {root} to {output}", json_out)


@car_app.command("import", cls=KuboFlags)
def car_import(
    file: Path,
    pin_roots: Annotated[bool, typer.Option("--pin-roots/--no-pin-roots", help="pin the CAR's roots")] = True,
    repo: RepoOption = None,
    json_out: bool = JsonOption,
) -> None:
    """Import a CAR v1 file; every block is verified, a bad CAR changes nothing."""
    from twinledger.ipfs import import_car

    try:
        stream = file.open("rb")
    except OSError as error:
        raise InvalidInput(f"cannot read {file}: {error.strerror}", hint="check the path") from None
    with stream:
        roots = import_car(_store(repo), stream, pin_roots=pin_roots)
    _said({"roots": [str(root) for root in roots]}, "\n".join(f"imported root {root}" for root in roots), json_out)
