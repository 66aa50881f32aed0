"""CAR v1: Kubo's block order, verified import, refusal of bad CARs, interop with @ipld/car and ipfs-car."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ipfs_helpers import REPO_ROOT, store_snapshot

from twinledger.errors import IntegrityError
from twinledger.ipfs import FileBlockStore, ImportOptions, cat, export_car, import_car, parse_cid
from twinledger.ipfs.car import MAX_BLOCK_SIZE
from twinledger.ipfs.dagpb import uvarint

NODE_SCRIPT = Path(__file__).with_name("car_interop.mjs")
IPFS_CAR = REPO_ROOT / "node_modules" / ".bin" / "ipfs-car"


def _node(*args: str) -> dict[str, object]:
    node = shutil.which("node")
    assert node, "node is required (make install puts the npm dev dependencies in place)"
    done = subprocess.run([node, str(NODE_SCRIPT), *args], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    return json.loads(done.stdout)


def _small_tree(store: FileBlockStore, tmp_path: Path) -> tuple[Path, str]:
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    (top / "a.bin").write_bytes(b"same" * 300)
    (top / "sub" / "b.bin").write_bytes(b"same" * 300)  # a duplicate DAG: must appear once in the CAR
    (top / "c.bin").write_bytes(os.urandom(5000))
    options = ImportOptions.from_kubo_flags(["--chunker=size-1024"])
    return top, str(store.add_path(top, options).cid)


def test_export_is_depth_first_preorder_without_duplicates(store: FileBlockStore, tmp_path: Path) -> None:
    _, root = _small_tree(store, tmp_path)
    out = io.BytesIO()
    export_car(store, root, out)
    car = tmp_path / "tree.car"
    car.write_bytes(out.getvalue())
    listing = _node("read", str(car))
    cids = [block["cid"] for block in listing["blocks"]]  # type: ignore[index]
    assert listing["roots"] == [root]
    assert cids[0] == root
    assert len(cids) == len(set(cids))
    expected: list[str] = []
    seen: set[str] = set()

    def visit(cid: str) -> None:
        if cid in seen:
            return
        seen.add(cid)
        expected.append(cid)
        from twinledger.ipfs.dag import block_links

        parsed = parse_cid(cid)
        for child in block_links(parsed, store.get(parsed)):
            visit(str(child))

    visit(root)
    assert cids == expected


def test_round_trip_into_a_fresh_store(store: FileBlockStore, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    result = store.add_stream(io.BytesIO(data), ImportOptions())
    out = io.BytesIO()
    export_car(store, result.cid, out)
    fresh = FileBlockStore(tmp_path / "fresh")
    assert import_car(fresh, io.BytesIO(out.getvalue())) == [result.cid]
    assert b"".join(cat(fresh, result.cid)) == data
    assert fresh.pins() == [result.cid]


def test_car_written_by_ipld_car_is_imported(store: FileBlockStore, tmp_path: Path) -> None:
    car = tmp_path / "js.car"
    written = _node("write", str(car))
    roots = import_car(store, car.open("rb"))
    assert [str(root) for root in roots] == [written["root"]]
    assert store.get(parse_cid(written["leaves"][0])) == b"first leaf"  # type: ignore[index]


def test_ipfs_car_pack_is_imported_and_our_car_unpacks(store: FileBlockStore, tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(700_000))
    packed = tmp_path / "packed.car"
    subprocess.run([str(IPFS_CAR), "pack", str(source), "--no-wrap", "--output", str(packed)], check=True)
    (root,) = import_car(store, packed.open("rb"))
    assert b"".join(cat(store, root)) == source.read_bytes()
    ours = tmp_path / "ours.car"
    with ours.open("wb") as out:
        export_car(store, root, out)
    unpacked = tmp_path / "unpacked.bin"
    subprocess.run([str(IPFS_CAR), "unpack", str(ours), "--output", str(unpacked)], check=True)
    assert unpacked.read_bytes() == source.read_bytes()


def _one_block_car(data: bytes, claimed: bytes) -> bytes:
    from twinledger.ipfs.car import write_car
    from twinledger.ipfs.cids import RAW, block_cid, to_cid

    cid = to_cid(block_cid(claimed, codec=RAW, version=1))
    out = io.BytesIO()
    write_car(out, [cid], [(cid, data)])
    return out.getvalue()


@pytest.mark.parametrize(
    ("car", "message"),
    [
        (_one_block_car(b"tampered", b"original"), r"block #0 \(bafkrei\w+\): bytes do not hash"),
        (_one_block_car(b"original", b"original")[:-3], "truncated in block #0"),
        (b"", "empty"),
        (b"\x05\xa1\x61", "truncated in the header"),
    ],
    ids=["corrupt", "truncated", "empty", "truncated-header"],
)
def test_bad_car_is_refused_and_store_unchanged(store: FileBlockStore, car: bytes, message: str) -> None:
    store.add_stream(io.BytesIO(b"already here"), ImportOptions())
    before = store_snapshot(store)
    with pytest.raises(IntegrityError, match=message):
        import_car(store, io.BytesIO(car))
    assert store_snapshot(store) == before
    assert list(store.tmp_dir.iterdir()) == []


def test_oversized_section_is_refused(store: FileBlockStore) -> None:
    good = _one_block_car(b"original", b"original")
    header_len = good[0] + 1
    oversized = good[:header_len] + uvarint(MAX_BLOCK_SIZE + 1000) + b"\x00" * 16
    with pytest.raises(IntegrityError, match=r"block #0 is \d+ bytes, over the"):
        import_car(store, io.BytesIO(oversized))
    assert store_snapshot(store) == ([], "")


def test_refused_second_block_rolls_back_the_first(store: FileBlockStore) -> None:
    first = _one_block_car(b"fine", b"fine")
    second = _one_block_car(b"evil", b"good")
    header_len = second[0] + 1
    with pytest.raises(IntegrityError, match="block #1"):
        import_car(store, io.BytesIO(first + second[header_len:]))
    assert store_snapshot(store) == ([], "")
