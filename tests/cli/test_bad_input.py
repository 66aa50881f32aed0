"""Every command, fed malformed arguments, files and wallets: an error with a documented exit code, never a
traceback, a JSON problem object under --json, and nothing sent to the chain.

Commands are found by walking the CLI itself, so a new command is swept as soon as it exists; a parameter the sweep
has no malformed value for is listed by `test_the_sweep_knows_every_parameter`, so it cannot be skipped silently.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import typer.main

from tests.cli.test_help import _commands
from tests.sdk.conftest import PASSPHRASE, Stack
from twinledger.cli import main
from twinledger.cli.main import app
from twinledger.identity import DidKey
from twinledger.wallet import WalletStore

EXIT_CODES = set(range(1, 8))  # the README's table: every malformed input is one of these, never 0
GOOD_DID = DidKey.generate().did
GOOD_CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"  # sha256 of "hello world", raw


@dataclass(frozen=True)
class Case:
    command: str
    args: tuple[str, ...]
    bad: str  # what is malformed, for the failure message


def _files(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    garbage = root / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 3)
    garbage.chmod(0o600)  # private, so a key or passphrase file is refused for what it holds, not its mode
    half_json = root / "half.json"
    half_json.write_text('{"kty": "OKP", "crv": "Ed')
    half_json.chmod(0o600)
    return {"missing": root / "no-such-file", "garbage": garbage, "half-json": half_json, "a-directory": root}


def _values(files: dict[str, Path]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(a plausible value per parameter name, the malformed values to try for it)."""
    file_cases = [str(files["missing"]), str(files["garbage"]), str(files["half-json"]), str(files["a-directory"])]
    not_a_dir = [str(files["garbage"])]
    nowhere = [str(files["missing"] / "sub" / "out")]
    plausible = {
        "twin_id": "1", "did": GOOD_DID, "device": GOOD_DID, "to": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "purpose": "research", "tx": "0x" + "ab" * 32, "seq": "1", "task": "1", "round_": "1", "cid": GOOD_CID,
        "key": "node", "file": str(files["garbage"]), "path": str(files["garbage"]), "out": str(files["missing"]),
        "output": str(files["missing"]), "twin": "1", "samples": "10", "update": str(files["garbage"]),
        "model": str(files["garbage"]), "car": str(files["garbage"]),
    }  # fmt: skip
    malformed = {
        "twin_id": ["0", "abc", str(2**41)], "seq": ["0", "x"], "task": ["0", "x"], "round_": ["-1", "x"],
        "did": ["did:key:z6MkBAD", "did:web:", "nodid"], "device": ["did:key:z6MkBAD"], "owner": ["0x12"],
        "to": ["0xdeadbeef", "0x90F79bf6EB2c4f870365E785982E1f101E93b907", "0x" + "0" * 40, "nobody-such"],
        "purpose": ["", "x" * 300], "scope": ["fly", ""], "expires": ["soon", "-5", "1999-01-01"], "tx": ["0x12"],
        "kind": ["spaceship"], "parent": ["-1", "x"], "cid": ["notacid", "Qm"], "ledger_address": ["0x12"],
        "port": ["abc", "70000"], "chain_id": ["x", "-1"], "workers": ["-1", "x"], "log_level": ["loud"],
        "cid_version": ["7"], "chunker": ["bogus-9"], "max_file_links": ["-1"], "rpc_url": ["notaurl"],
        "node": ["notaurl"], "name": ["broken", "truncated", "nosuch", "../escape"], "key": ["colour"],
        "file": file_cases, "path": [str(files["missing"])], "keystore": file_cases, "private_key_file": file_cases,
        "did_jwk_file": file_cases, "passphrase_file": file_cases, "new_passphrase_file": file_cases,
        "device_key": file_cases, "metadata": [str(files["missing"]), str(files["a-directory"])],
        "car": file_cases, "config_file": file_cases[:2], "out": nowhere, "output": nowhere, "save_car": nowhere,
        "data_dir": not_a_dir, "repo": not_a_dir, "store": not_a_dir, "catalog": not_a_dir,
        "deployments_dir": not_a_dir, "twin": ["0", "x"], "samples": ["0", "x"], "update": file_cases,
        "model": file_cases, "after": ["-1", "x"],
    }  # fmt: skip
    return plausible, malformed


# Flags and free-form values no input can make malformed (a profile name is any Kubo profile string, a JSON flag).
NOT_MALFORMABLE = {
    "json_out", "force", "yes", "offline", "relay", "private_key", "private", "require_anchor", "allow_pending",
    "allow_withheld", "recursive", "quieter", "only_hash", "raw_leaves", "trickle", "hidden", "pin", "pin_roots",
    "profile", "host", "every", "no_anchors", "encrypt",
}  # fmt: skip
# Values that are not malformed for that command: any text is a new wallet's passphrase, any name a new wallet's;
# commands that read only a wallet's public file neither need its passphrase nor mind a damaged keystore.
ACCEPTED = {
    ("wallet create", "name"): {"nosuch"}, ("wallet create", "passphrase_file"): {"half-json"},
    ("wallet show", "passphrase_file"): None, ("wallet export-did", "passphrase_file"): None,
    ("twin list", "passphrase_file"): None, ("twin list", "name"): {"truncated"},
    ("node config", "data_dir"): None,  # prints the settings; says nothing of the directory
    ("wallet show", "name"): {"truncated"}, ("wallet export-did", "name"): {"truncated"},
    ("wallet passwd", "new_passphrase_file"): {"half-json"},
}  # fmt: skip
# What would start a server or a chain if its one malformed value were accepted: only values that fail at parsing.
PARSE_ONLY = {"node up": {"port", "workers", "log_level", "config_file"}, "chain up": {"port", "chain_id"}}


def _accepted(command: str, param: str, value: str, files: dict[str, Path]) -> bool:
    names = {str(path): name for name, path in files.items()}
    accepted = ACCEPTED.get((command, param), set())
    return accepted is None or names.get(value, value) in accepted


def _cases(plausible: dict[str, str], malformed: dict[str, list[str]], files: dict[str, Path]) -> Iterator[Case]:
    for path, command in _commands(typer.main.get_command(app)):
        params = [p for p in command.params if p.name not in NOT_MALFORMABLE and p.name != "help"]
        for bad in params:
            if path in PARSE_ONLY and bad.name not in PARSE_ONLY[path]:
                continue
            for value in malformed.get(str(bad.name), []):
                if _accepted(path, str(bad.name), value, files):
                    continue
                args: list[str] = path.split()
                for param in command.params:
                    if param is bad:
                        given = value
                    elif param.required:
                        given = plausible[str(param.name)]
                    else:
                        continue
                    if param.param_type_name == "argument":
                        args.append(given)
                    else:
                        args += [param.opts[0], given]
                yield Case(path, tuple(args), f"{bad.name}={value!r}")


def test_the_sweep_knows_every_parameter(tmp_path: Path):
    plausible, malformed = _values(_files(tmp_path))
    unknown = sorted(
        f"{path} {param.name}"
        for path, command in _commands(typer.main.get_command(app))
        for param in command.params
        if param.name not in NOT_MALFORMABLE and param.name != "help"
        and param.name not in malformed and param.name not in plausible
    )  # fmt: skip
    assert unknown == [], "give these a malformed value in _values (or say why none exists)"


@pytest.fixture
def env(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    store = WalletStore(home)
    store.create("broken", PASSPHRASE)
    (home / "wallets" / "broken" / "wallet.json").write_text('{"name": "broken", "addr')
    store.create("truncated", PASSPHRASE)
    keystore = home / "wallets" / "truncated" / "ethereum.json"
    keystore.write_text(keystore.read_text()[:100])
    for name, value in {
        "TWINLEDGER_HOME": str(home), "TWINLEDGER_DATA_DIR": str(tmp_path / "data"),
        "TWINLEDGER_NODE_URL": stack.node.url, "TWINLEDGER_RPC_URL": stack.rpc_url,
        "TWINLEDGER_PASSPHRASE": PASSPHRASE, "TWINLEDGER_KDF_N": "1024", "COLUMNS": "200",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def _run(args: list[str]) -> tuple[int, str, str]:
    """The CLI's own entry (`main._run`: the error handling a user gets), in this process: a subprocess per case
    would cost an interpreter start each, hundreds of times. An exception that escapes is the traceback a user
    would have seen, and fails the test with it."""
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()  # `ipfs cat` writes bytes
    with (
        mock.patch.object(sys, "argv", ["twinledger", *args]),
        mock.patch.object(sys, "stdin", io.StringIO("")),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main._run()
        out.flush()
    return code, out.buffer.getvalue().decode(errors="replace"), err.getvalue()


def test_every_command_refuses_malformed_input_without_a_traceback(env: None, stack: Stack, tmp_path: Path):
    files = _files(tmp_path / "inputs")
    plausible, malformed = _values(files)
    cases = list(_cases(plausible, malformed, files))
    everything = {path for path, _ in _commands(typer.main.get_command(app))}
    # all but those without an input to get wrong (`config show`, `wallet list`: --json alone)
    assert everything - {case.command for case in cases} == {"config show", "wallet list"}
    block = stack.node.runtime.client.w3.eth.block_number
    failures = []
    for number, case in enumerate(cases):
        json_out = number % 2 == 1  # both ways of printing an error, over every command
        args = [*case.args, "--json"] if json_out else list(case.args)
        where = f"{' '.join(args)} [{case.bad}]"
        try:
            code, stdout, stderr = _run(args)
        except BaseException as error:
            failures.append(f"{where}: {error.__class__.__name__} escaped: {error}")
            continue
        if stack.node.runtime.client.w3.eth.block_number != block:  # nothing sent to the chain, ever
            failures.append(f"{where}: sent a transaction (exit {code})")
            block = stack.node.runtime.client.w3.eth.block_number
        if code not in EXIT_CODES:
            failures.append(f"{where}: exit {code}: {(stdout + stderr).strip()[-300:]}")
        elif json_out:
            try:
                problem = json.loads(stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                failures.append(f"{where}: under --json no problem object on stdout: {stdout[-200:]!r}")
                continue
            if problem.get("exitCode") != code or not problem.get("detail"):
                failures.append(f"{where}: problem object {problem} for exit {code}")
    assert failures == [], f"{len(failures)} of {len(cases)} runs:\n" + "\n".join(failures)
