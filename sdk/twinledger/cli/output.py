"""How commands print: a rich table or line for people, JSON with --json for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(emoji=False)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
# The contracts number twins from 1 (uint40): 0 or a negative id is a typo, refused before anything is asked.
TwinArgument = typer.Argument(..., min=1, max=2**40 - 1, help="twin id")


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=_default))


def print_mapping(title: str, data: Mapping[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in data.items():
        table.add_row(key, _default(value) if isinstance(value, bytes) else str(value))
    console.print(table)


def print_rows(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console.print(table)
