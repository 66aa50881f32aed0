"""Entry point of the `twinledger` command: one typer sub-app per concept."""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from twinledger.errors import InvalidInput, NotFound, TwinledgerError

app = typer.Typer(
    name="twinledger",
    help="Ownership, consent and provenance for digital twins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (module, command name): each module defines `app`, a typer.Typer for that concept. Every module is imported to
# build even `twinledger --help`, so a module imports its heavy libraries (web3, eth-account, didkit, httpx, the
# SDK's chain, client, identity, ipfs and federated packages...) inside the commands that use them, and names them
# at module level only under TYPE_CHECKING; tests/cli/test_startup.py fails when one of them is imported at start-up.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("twinledger.cli.config", "config"),
    ("twinledger.cli.chain", "chain"),
    ("twinledger.cli.contracts", "contracts"),
    ("twinledger.cli.ipfs", "ipfs"),
    ("twinledger.cli.wallet", "wallet"),
    ("twinledger.cli.did", "did"),
    ("twinledger.cli.twin", "twin"),
    ("twinledger.cli.consent", "consent"),
    ("twinledger.cli.snapshot", "snapshot"),
    ("twinledger.cli.audit", "audit"),
    ("twinledger.cli.verify", "verify"),
    ("twinledger.cli.export", "export"),
    ("twinledger.cli.fl", "fl"),
    # The node is a separate import package (the SDK never imports it); its command is composed in here.
    ("twinledger_node.cli", "node"),
]
for module_name, command in SUBCOMMANDS:
    app.add_typer(importlib.import_module(module_name).app, name=command)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"twinledger {version('twinledger')}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Ownership, consent and provenance for digital twins."""


def main() -> None:
    """Run the CLI; a TwinledgerError becomes a readable message and its exit code, not a traceback."""
    _exit(_run())


def _run() -> int:
    try:
        # Without standalone mode click returns a command's exit code (typer.Exit) instead of exiting.
        result = app(standalone_mode=False)
        return result if isinstance(result, int) else 0
    except TwinledgerError as error:
        return _report(error)
    except OSError as error:
        if error.filename is None:
            raise
        return _report(_file_error(error))
    except typer.Abort:
        return 130
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as click_error:  # click's usage errors carry their own exit code and message
        show = getattr(click_error, "show", None)
        if show is None:
            raise
        if _wants_json(sys.argv[1:]):
            usage = InvalidInput(click_error.format_message(), hint="see the command's --help")  # type: ignore[attr-defined]
            usage.exit_code = int(getattr(click_error, "exit_code", 2))
            return _report(usage)
        show()
        return int(getattr(click_error, "exit_code", 2))


def _report(error: TwinledgerError) -> int:
    if _wants_json(sys.argv[1:]):
        _print_problem(error)
        return error.exit_code
    err = Console(stderr=True, emoji=False, soft_wrap=True)  # an error is one line, whatever the terminal width
    err.print(f"[bold red]error:[/] {error.message}", highlight=False)
    if error.hint:
        err.print(f"[yellow]hint:[/] {error.hint}", highlight=False)
    return error.exit_code


def _file_error(error: OSError) -> TwinledgerError:
    """A path the command could not use (a directory given for a file, a file for a directory, a parent that does
    not exist, no permission), named as the user gave it. Commands check the paths they expect to be wrong; this
    is the net under the rest, so none of them ends in a traceback."""
    what = f"{error.filename}: {error.strerror or error.__class__.__name__}"
    if isinstance(error, FileNotFoundError):
        return NotFound(f"cannot use {what}", hint="check the path (and that its directory exists)")
    return InvalidInput(f"cannot use {what}", hint="check the path: a file where a file belongs, a directory where a "
                        "directory does")  # fmt: skip


def _wants_json(args: list[str]) -> bool:
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _print_problem(error: TwinledgerError) -> None:
    """The error as a problem object (RFC 9457's members, as the node answers), on stdout where --json output goes."""
    import json
    import re

    kind = getattr(error, "code", None) or re.sub(r"(?<!^)(?=[A-Z])", "-", type(error).__name__).lower()
    problem = {"type": kind, "title": type(error).__name__, "detail": error.message, "exitCode": error.exit_code}
    if error.hint:
        problem["hint"] = error.hint
    sys.stdout.write(json.dumps(problem) + "\n")


def _exit(code: int) -> None:
    if "didkit" in sys.modules:
        # didkit's native runtime can abort (SIGABRT) while the interpreter finalizes after it issued or verified
        # a credential, turning a finished command into exit status -6. Everything is written; leave directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
