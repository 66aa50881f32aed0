"""Every option of every command says what it is for, in text that reaches the terminal."""

from __future__ import annotations

import re

import typer.main

from twinledger.cli.main import app

# What rich reads as a markup tag (and drops from the help): "[" then a lowercase letter, "#", "/" or "@".
RICH_TAG = re.compile(r"(?<!\\)\[[a-z#/@]")


def _commands(command, path=()):
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def test_every_option_has_help_that_rich_prints():
    silent, swallowed = [], []
    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            if not param.help:
                silent.append(f"{path} {param.opts[0]}")
            elif RICH_TAG.search(param.help):
                swallowed.append(f"{path} {param.opts[0]}: {param.help}")
    assert silent == [], "options without help text"
    assert swallowed == [], "help text rich would drop as markup (use parentheses)"


def test_every_command_takes_json():
    without = {path for path, command in _commands(typer.main.get_command(app))
               if not any(param.name == "json_out" for param in command.params)}  # fmt: skip
    assert without == set()
