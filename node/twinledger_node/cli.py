"""`twinledger node up|config|migrate|reindex|backup|restore`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer

from twinledger.cli.output import JsonOption, console, print_json, print_mapping

app = typer.Typer(help="Run and inspect a twinledger node.", no_args_is_help=True)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


DataDirOption = typer.Option(
    None, "--data-dir", help="the node's data directory (env TWINLEDGER_DATA_DIR; default $TWINLEDGER_HOME/data)"
)
ConfigOption = typer.Option(None, "--config", envvar="TWINLEDGER_CONFIG", help="KEY=value settings file (.env style)")


@app.command()
def up(
    host: str | None = typer.Option(
        None, "--host", help="address to listen on (env TWINLEDGER_HOST; default 127.0.0.1)"
    ),
    port: int | None = typer.Option(None, "--port", help="port to listen on (env TWINLEDGER_PORT; default 8700)"),
    data_dir: Path | None = DataDirOption,
    config_file: Path | None = ConfigOption,
    log_level: LogLevel = typer.Option("info", "--log-level", help="how much the node logs"),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        help="HTTP API processes, plus one background process that indexes and anchors (env TWINLEDGER_WORKERS; "
        "default: one per core); 0: everything in this one process",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="a refusal to start (bad settings, a database or chain out of reach) as a problem object "
        "on stdout; the logs are JSON lines on stderr either way",
    ),
) -> None:
    """Run the node. With no settings: the local anvil (started or reused), contracts deployed if needed, the
    embedded block store in the data directory, serving on 127.0.0.1."""
    from twinledger_node import logs
    from twinledger_node.settings import resolve_settings

    del json_out  # read by twinledger.cli.main, which prints a refusal to start as a problem object under --json
    logs.configure(log_level.value)
    overrides = {"host": host, "port": port, "data_dir": str(data_dir) if data_dir else None, "workers": workers}
    settings = resolve_settings(config_file, **overrides)
    # one per core this process may use (its CPU affinity, not every core of the machine)
    count = len(os.sched_getaffinity(0)) if settings.workers is None else settings.workers
    if count == 0:
        from twinledger_node.app import create_app, node_server
        from twinledger_node.runtime import NodeRuntime

        app = create_app(NodeRuntime(settings))
        node_server(app, settings, host=settings.host, port=settings.port).run()
        return
    from twinledger_node.workers import Supervisor

    spec = {"config": str(config_file) if config_file else None,
            "overrides": {k: v for k, v in overrides.items() if v is not None}}  # fmt: skip
    supervisor = Supervisor(spec, workers=count, log_level=log_level, host=settings.host, port=settings.port,
                            metrics_dir=settings.data_dir / "node" / "metrics")  # fmt: skip
    raise typer.Exit(supervisor.run())


@app.command()
def config(
    data_dir: Path | None = DataDirOption, config_file: Path | None = ConfigOption,
    json_out: bool = JsonOption,
) -> None:  # fmt: skip
    """Print the effective settings (secrets shown only as set or unset)."""
    from twinledger_node.settings import resolve_settings

    view = resolve_settings(config_file, data_dir=data_dir).public_view()
    if json_out:
        print_json(view)
    else:
        print_mapping("node settings", view)


@app.command()
def migrate(
    data_dir: Path | None = DataDirOption, config_file: Path | None = ConfigOption,
    json_out: bool = JsonOption,
) -> None:  # fmt: skip
    """Bring the node's databases to this twinledger's schema. SQLite files do it by themselves at start; a shared
    PostgreSQL database (TWINLEDGER_DATABASE_URL) only here: stop the replicas of older versions first."""
    from twinledger_node.db.database import Database
    from twinledger_node.settings import resolve_settings

    settings = resolve_settings(config_file, data_dir=data_dir)
    versions: dict[str, object] = {"engine": "postgresql" if settings.database_url else "sqlite"}
    for database in ("index", "state"):
        opened = Database(settings.database_location(database), database, upgrade=True)
        versions[database] = opened.schema_version
        opened.close()
    if json_out:
        print_json(versions)
    else:
        print_mapping("schema versions", versions)


@app.command()
def reindex(
    data_dir: Path | None = DataDirOption, config_file: Path | None = ConfigOption,
    json_out: bool = JsonOption,
) -> None:  # fmt: skip
    """Rebuild the chain index from scratch (the node's own records are kept). Stop the node first."""
    from twinledger.errors import Unavailable
    from twinledger_node.runtime import NodeRuntime
    from twinledger_node.settings import resolve_settings

    runtime = NodeRuntime(resolve_settings(config_file, data_dir=data_dir))
    assert runtime.indexer is not None  # an embedded runtime has one
    # The index is rebuilt only where no node leads: its leader (of any replica, on any machine) writes it.
    leadership = runtime.state.lease("leader")
    if not leadership.acquire(wait=False):
        raise Unavailable(
            "a node is running on this database and indexes it: the index cannot be rebuilt under it",
            hint="stop every node (every replica) that uses this database, then run `twinledger node reindex` again",
        )
    started = time.monotonic()
    runtime.indexer.rebuild()
    result = runtime.indexer.sync_once()
    leadership.release()
    events = runtime.index.connection().execute("SELECT COUNT(*) FROM events").fetchone()[0]
    summary = {"events": events, "to_block": result.to_block, "seconds": round(time.monotonic() - started, 2)}
    if json_out:
        print_json(summary)
    else:
        console.print(f"index rebuilt: {events} events up to block {result.to_block} in {summary['seconds']}s")


# A block copy shorter than this is over before a progress bar would be read.
PROGRESS_FROM_BYTES = 64 * 1024 * 1024
PROGRESS_FROM_FILES = 2000


@contextmanager
def _byte_progress(label: str) -> Iterator[Callable[[int, int], Callable[[int], None]]]:
    """A factory the backup calls with the bytes and files it is about to copy: a progress bar on stderr (stdout
    stays JSON with --json) when the copy is long, nothing otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)  # fmt: skip

    def start(total: int, files: int) -> Callable[[int], None]:
        if total < PROGRESS_FROM_BYTES and files < PROGRESS_FROM_FILES:
            return lambda _done: None
        bar.start()
        task = bar.add_task(label, total=total)
        return lambda done: bar.advance(task, done)

    try:
        yield start
    finally:
        bar.stop()


def _print_summary(title: str, summary: dict[str, object], json_out: bool) -> None:
    if json_out:
        print_json(summary)
    else:
        print_mapping(title, {k: ", ".join(f"{n} {v}" for n, v in v.items()) if isinstance(v, dict) else v
                              for k, v in summary.items()})  # fmt: skip


@app.command()
def backup(
    file: Path = typer.Argument(..., help="the archive to write (a tar file, mode 0600)"),
    data_dir: Path | None = DataDirOption, config_file: Path | None = ConfigOption,
    force: bool = typer.Option(False, "--force", help="replace FILE if it exists"), json_out: bool = JsonOption,
) -> None:  # fmt: skip
    """Write the node's databases (a consistent snapshot, taken while the node runs), its keys and its embedded
    block store into one archive. FILE holds the node's private keys: keep it as secret as the data directory."""
    from twinledger_node.backup.create import create_backup
    from twinledger_node.settings import resolve_settings

    settings = resolve_settings(config_file, data_dir=data_dir)
    with _byte_progress("copying blocks") as progress:
        summary = create_backup(settings, file, force=force, progress=progress)
    _print_summary("backup written", summary, json_out)


@app.command()
def restore(
    file: Path = typer.Argument(..., help="an archive `twinledger node backup` wrote"),
    data_dir: Path | None = DataDirOption, config_file: Path | None = ConfigOption,
    json_out: bool = JsonOption,
) -> None:  # fmt: skip
    """Restore a backup into a fresh data directory and, with TWINLEDGER_DATABASE_URL, into a PostgreSQL database
    without the node's schemas. Every member is checked against the archive's manifest before anything is written."""
    from twinledger_node.backup.restore import restore_backup
    from twinledger_node.settings import resolve_settings

    settings = resolve_settings(config_file, data_dir=data_dir)
    with _byte_progress("restoring") as progress:
        summary = restore_backup(settings, file, progress=progress)
    _print_summary("backup restored", summary, json_out)
