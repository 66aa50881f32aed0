"""Statements both engines run that SQLite and PostgreSQL spell differently, built in the syntax they share."""

from __future__ import annotations

from functools import cache


@cache
def upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    """An INSERT of `columns` (in order, as `?`) that replaces the row with the same `key`: SQLite's
    `INSERT OR REPLACE`, in the `ON CONFLICT … DO UPDATE` form PostgreSQL also has."""
    update = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = excluded.{c}" for c in update)
    action = f"DO UPDATE SET {sets}" if update else "DO NOTHING"
    placeholders = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT ({', '.join(key)}) {action}"  # noqa: S608
