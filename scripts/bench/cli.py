"""Benchmark the CLI's start-up: `twinledger --help`, `wallet --help` and `wallet list` against bare Python.

    .venv/bin/python scripts/bench/cli.py [--runs 5]

Each command runs --runs times as a fresh process (wall time, median reported). The machine's load moves every
figure, so the baselines are measured in the same run, interleaved with the commands, and every command is also
given as a ratio to `python -c pass`: `python -c pass`, `python -c "import typer"`, and a typer app of one group
with one command run the same two ways as the CLI (`GROUP --help`, `GROUP list`): what typer itself costs (its rich
help formatting, and pydantic, which it imports to convert any command's parameter values). `wallet list` lists
one wallet in a temporary TWINLEDGER_HOME (created before timing starts).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The smallest app with the CLI's shape: a root, a group, a command with one option.
TYPER_APP = """
import typer
app = typer.Typer(no_args_is_help=True)
group = typer.Typer(help="A group.", no_args_is_help=True)
app.add_typer(group, name="group")

@group.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="JSON.")) -> None:
    \"\"\"List nothing.\"\"\"

app(prog_name="app")
"""


def twinledger_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m twinledger.cli`."""
    script = shutil.which("twinledger", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "twinledger.cli"]


def wall_seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command; the median is reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="twinledger-bench-cli-") as home:
        env = {**os.environ, "TWINLEDGER_HOME": home, "TWINLEDGER_KDF_N": "1024"}
        from twinledger.wallet import WalletStore

        WalletStore(Path(home)).create("bench", "bench passphrase")  # so `wallet list` has a wallet to read
        cli = twinledger_command()
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            'python -c "import typer"': [sys.executable, "-c", "import typer"],
            "one-command typer app: `group --help`": [sys.executable, "-c", TYPER_APP, "group", "--help"],
            "one-command typer app: `group list`": [sys.executable, "-c", TYPER_APP, "group", "list"],
            "twinledger --help": [*cli, "--help"],
            "twinledger wallet --help": [*cli, "wallet", "--help"],
            "twinledger wallet list": [*cli, "wallet", "list"],
        }
        for argv in cases.values():  # warm the page cache and .pyc files; not timed
            wall_seconds(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved, so a burst of load hits every case alike
            for name, argv in cases.items():
                times[name].append(wall_seconds(argv, env))

    base = statistics.median(times["python -c pass"])
    print(f"| command (median of {args.runs}, wall) | seconds | min | max | × `python -c pass` |")
    print("|---|---|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        label = name if name.startswith("one-") else f"`{name}`"
        print(f"| {label} | {median:.3f} | {min(runs):.3f} | {max(runs):.3f} | {median / base:.1f} |")


if __name__ == "__main__":
    main()
