"""Every CID Kubo's own test suite publishes, through the importer and through the store."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from ipfs_helpers import g1, load_vectors

from twinledger.ipfs import FileBlockStore, ImportOptions, add_path, cat, compute_cid, import_car, parse_cid

VECTORS = load_vectors()


def _materialise(vector: dict[str, Any], tmp_path: Path) -> Path | bytes:
    source = vector["input"]
    if source["kind"] == "literal":
        return source["utf8"].encode()
    if source["kind"] == "g1":
        return g1(source["seed"], source["size"])
    assert source["kind"] == "dir", source
    for relative, text in source["files"].items():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (top,) = {relative.split("/")[0] for relative in source["files"]}
    return tmp_path / top


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_cid_matches_kubo(vector: dict[str, Any], tmp_path: Path) -> None:
    source = _materialise(vector, tmp_path)
    options = ImportOptions.from_kubo_flags(vector["flags"])
    assert str(compute_cid(source, options).cid) == vector["cid"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_stored_vector_reads_back(vector: dict[str, Any], tmp_path: Path) -> None:
    store = FileBlockStore(tmp_path / "repo")
    source = _materialise(vector, tmp_path)
    options = ImportOptions.from_kubo_flags(vector["flags"])
    if isinstance(source, bytes):
        result = store.add_stream(io.BytesIO(source), options)
        assert b"".join(cat(store, result.cid)) == source
    else:
        result = add_path(store, source, options)
    assert str(result.cid) == vector["cid"]
    assert [str(pin) for pin in store.pins()] == [vector["cid"]]


def test_go_car_fixture_imports(store: FileBlockStore) -> None:
    fixture = VECTORS["car_fixture"]
    roots = import_car(store, io.BytesIO(bytes.fromhex(fixture["hex"])))
    assert [str(root) for root in roots] == [fixture["root"]]
    assert store.get(parse_cid(fixture["root"])) == bytes.fromhex("a165646f646779f5")  # {'dodgy': true}
