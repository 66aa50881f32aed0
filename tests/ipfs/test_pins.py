"""Pins are rows in SQLite: they survive reopening the store, gc walks them, and an old pins.json moves in once."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from twinledger.ipfs import FileBlockStore, ImportOptions, cat
from twinledger.ipfs.pins import PinIndex


def test_pins_survive_reopening_and_gc_keeps_pinned_dags(tmp_path: Path) -> None:
    options = ImportOptions.from_kubo_flags(["--chunker=size-512"])
    kept_bytes = os.urandom(3000)
    kept = FileBlockStore(tmp_path).add_stream(io.BytesIO(kept_bytes), options)
    dropped = FileBlockStore(tmp_path).add_stream(io.BytesIO(os.urandom(100)), ImportOptions(), pin=False)

    reopened = FileBlockStore(tmp_path)  # a new process: nothing but the database knows the pins
    assert reopened.pins() == [kept.cid]
    assert [bytes(c.digest) for c in reopened.gc()] == [bytes(dropped.cid.digest)]
    assert b"".join(cat(reopened, kept.cid)) == kept_bytes
    assert (tmp_path / "pins.sqlite").exists() and not (tmp_path / "pins.json").exists()


def test_a_store_with_another_pin_index_keeps_its_pins_there(tmp_path: Path) -> None:
    index = PinIndex(tmp_path / "state.sqlite")
    store = FileBlockStore(tmp_path / "ipfs", pins=index)
    result = store.add_stream(io.BytesIO(b"x" * 2000), ImportOptions())
    assert list(PinIndex(tmp_path / "state.sqlite")) == [result.cid]
    assert not (tmp_path / "ipfs" / "pins.sqlite").exists()
    assert store.gc() == []


def test_an_old_pins_json_is_migrated_once(tmp_path: Path) -> None:
    first = FileBlockStore(tmp_path)
    a = first.add_stream(io.BytesIO(b"a" * 700), ImportOptions(), pin=False)
    b = first.add_stream(io.BytesIO(b"b" * 700), ImportOptions(), pin=False)
    (tmp_path / "pins.sqlite").unlink()  # the store as an earlier version left it: pins in a JSON file
    (tmp_path / "pins.json").write_text(json.dumps({"version": 1, "recursive": [str(a.cid), str(b.cid)]}))

    migrated = FileBlockStore(tmp_path)
    assert sorted(map(str, migrated.pins())) == sorted([str(a.cid), str(b.cid)])
    assert not (tmp_path / "pins.json").exists() and (tmp_path / "pins.json.migrated").exists()
    migrated.unpin(a.cid)
    assert FileBlockStore(tmp_path).pins() == [b.cid]  # not migrated again: the unpin holds
    assert [bytes(c.digest) for c in FileBlockStore(tmp_path).gc()] == [bytes(a.cid.digest)]


def test_opening_the_root_again_finds_pins_kept_in_another_database(tmp_path: Path) -> None:
    """`twinledger ipfs gc` on a node's store must see the node's pins (kept in its state database)."""
    store = FileBlockStore(tmp_path / "ipfs", pins=PinIndex(tmp_path / "state.sqlite"))
    result = store.add_stream(io.BytesIO(b"y" * 3000), ImportOptions())
    assert FileBlockStore(tmp_path / "ipfs").pins() == [result.cid]
    assert FileBlockStore(tmp_path / "ipfs").gc() == []
