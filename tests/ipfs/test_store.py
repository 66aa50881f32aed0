"""Block store: verification on every read and write, pins, gc, crash safety, concurrent writers."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ipfs_helpers import store_snapshot

from twinledger.errors import IntegrityError, InvalidInput, NotFound, Unavailable
from twinledger.ipfs import FileBlockStore, ImportOptions, cat, get_to_path, import_file, parse_cid
from twinledger.ipfs.cids import RAW, block_cid, block_key, to_cid
from twinledger.ipfs.dag import block_links
from twinledger.ipfs.dagpb import decode_node
from twinledger.ipfs.packed import PACKED_BLOCK_BYTES

HELLO_V1 = parse_cid("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")


def test_put_refuses_bytes_that_do_not_match(store: FileBlockStore) -> None:
    with pytest.raises(IntegrityError, match="do not hash"):
        store.put(HELLO_V1, b"hello worlD")
    assert not store.has(HELLO_V1)
    assert store_snapshot(store) == ([], "")


def test_corrupted_block_on_disk_is_detected(store: FileBlockStore) -> None:
    store.put(HELLO_V1, b"hello world")
    store._replace_raw(HELLO_V1, b"hello w0rld")
    with pytest.raises(IntegrityError, match=str(HELLO_V1)):
        store.get(HELLO_V1)


def test_missing_block_names_the_cid(store: FileBlockStore) -> None:
    with pytest.raises(NotFound, match=str(HELLO_V1)):
        store.get(HELLO_V1)


def test_bad_cid_text_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="'Qmnotacid' is not a CID"):
        parse_cid("Qmnotacid")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=40_000),
    chunk=st.integers(min_value=1, max_value=4096),
    links=st.integers(min_value=2, max_value=12),
    trickle=st.booleans(),
    cid_version=st.sampled_from([0, 1]),
)
def test_random_files_round_trip(
    tmp_path: Path, data: bytes, chunk: int, links: int, trickle: bool, cid_version: int
) -> None:
    store = FileBlockStore(tmp_path / "rt")
    flags = [f"--chunker=size-{chunk}", f"--max-file-links={links}", f"--cid-version={cid_version}"]
    options = ImportOptions.from_kubo_flags(flags + (["--trickle"] if trickle else []))
    result = store.add_stream(io.BytesIO(data), options)
    assert result.size == len(data)
    assert b"".join(cat(store, result.cid)) == data


def test_directory_with_hamt_round_trips(store: FileBlockStore, tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.mkdir()
    for index in range(4000):  # ~4000 * (names + 34-byte CIDs) passes the 256 KiB sharding estimate
        (source / f"entry-with-a-long-name-{index:05d}.txt").write_text(str(index))
    result = store.add_path(source, ImportOptions())
    _links, payload = decode_node(store.get(result.cid))
    assert payload == b"\x08\x05\x12\x20" + payload[4:36] + b"\x28\x22\x30\x80\x02"  # HAMTShard, murmur3, 256
    out = tmp_path / "out"
    get_to_path(store, result.cid, out)
    assert sorted(os.listdir(out)) == sorted(os.listdir(source))
    assert (out / "entry-with-a-long-name-01234.txt").read_text() == "1234"


def test_pins_and_gc(store: FileBlockStore) -> None:
    kept_bytes, dropped_bytes = os.urandom(7000), os.urandom(100)
    kept = store.add_stream(io.BytesIO(kept_bytes), ImportOptions.from_kubo_flags(["--chunker=size-512"]))
    dropped = store.add_stream(io.BytesIO(dropped_bytes), ImportOptions(), pin=False)
    removed = store.gc()
    assert [bytes(c.digest) for c in removed] == [bytes(dropped.cid.digest)]
    assert b"".join(cat(store, kept.cid)) == kept_bytes
    store.unpin(kept.cid)
    assert len(store.gc()) == 15  # 14 leaves of 512 bytes + the root
    assert store_snapshot(store) == ([], "")


def test_pin_of_incomplete_dag_is_refused(store: FileBlockStore) -> None:
    options = ImportOptions.from_kubo_flags(["--chunker=size-1000"])
    result = store.add_stream(io.BytesIO(os.urandom(3000)), options, pin=False)
    links = block_links(result.cid, store.get(result.cid))
    store.delete(links[1])
    before = store_snapshot(store)
    with pytest.raises(NotFound, match=str(links[1])):
        store.pin(result.cid)
    assert store_snapshot(store) == before


def test_delete_refuses_pinned_block(store: FileBlockStore) -> None:
    result = store.add_stream(io.BytesIO(b"pinned"), ImportOptions())
    with pytest.raises(InvalidInput, match="is pinned"):
        store.delete(result.cid)


_CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from twinledger.ipfs import FileBlockStore
    from twinledger.ipfs.cids import RAW, block_cid, to_cid
    import twinledger.ipfs.store as store_module

    real_write = os.write
    def half_then_hang(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        print("HALF", flush=True)
        time.sleep(600)   # the parent kills us here, mid-write, before fsync and rename
    store_module.os.write = half_then_hang
    data = b"crash" * 100000
    FileBlockStore(sys.argv[1]).put(to_cid(block_cid(data, codec=RAW, version=1)), data)
    """
)


def test_crash_during_put_leaves_no_corrupt_block(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    child = subprocess.Popen([sys.executable, "-c", _CRASHING_WRITER, str(repo)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "HALF"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    store = FileBlockStore(repo)
    data = b"crash" * 100000
    cid = to_cid(block_cid(data, codec=RAW, version=1))
    assert not store.has(cid)
    assert list(store.iter_keys()) == []
    assert len(list(store.tmp_dir.iterdir())) == 1  # the half-written staging file, invisible as a block
    store.gc()
    assert list(store.tmp_dir.iterdir()) == []
    store.put(cid, data)
    assert store.get(cid) == data


def test_concurrent_threads_and_processes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    payloads = [os.urandom(20_000) for _ in range(40)]
    for index, payload in enumerate(payloads):
        (tmp_path / f"p{index}").write_bytes(payload)
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from twinledger.ipfs import FileBlockStore, ImportOptions
        store = FileBlockStore(sys.argv[1])
        for name in sys.argv[2:]:
            print(store.add_path(Path(name), ImportOptions.from_kubo_flags(["--chunker=size-4096"])).cid)
        """
    )
    files = [str(tmp_path / f"p{index}") for index in range(len(payloads))]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(repo), *files], stdout=subprocess.PIPE, text=True)]
    procs.append(
        subprocess.Popen([sys.executable, "-c", script, str(repo), *reversed(files)], stdout=subprocess.PIPE, text=True)
    )
    store = FileBlockStore(repo)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for payload in payloads[offset::2]:
                store.add_stream(io.BytesIO(payload), ImportOptions.from_kubo_flags(["--chunker=size-4096"]))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0
            outputs.append(out.split())
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    for thread in threads:
        thread.join()
    assert errors == []
    assert outputs[0] == list(reversed(outputs[1]))
    for cid_text, payload in zip(outputs[0], payloads, strict=True):
        assert b"".join(cat(store, cid_text)) == payload
    for cid in store.local_cids():
        store.get(cid)  # every stored block still hashes to its key
    assert len(store.pins()) == 40
    assert store.gc() == []


def test_small_blocks_are_rows_and_large_ones_files(store: FileBlockStore) -> None:
    small, large = os.urandom(PACKED_BLOCK_BYTES), os.urandom(PACKED_BLOCK_BYTES + 1)
    small_cid = to_cid(block_cid(small, codec=RAW, version=1))
    large_cid = to_cid(block_cid(large, codec=RAW, version=1))
    store.put(small_cid, small)
    store.put(large_cid, large)
    assert list(store.packed.stored_keys()) == [block_key(small_cid)]
    assert [p.name for p in store.blocks_dir.rglob("*.data")] == [f"{block_key(large_cid)}.data"]
    assert store.get(small_cid) == small and store.get(large_cid) == large
    assert store.stat(small_cid).size == len(small) and store.stat(large_cid).size == len(large)
    assert sorted(store.iter_keys()) == sorted([block_key(small_cid), block_key(large_cid)])
    store.delete(small_cid)
    assert not store.has(small_cid) and store.has(large_cid)
    store.put(small_cid, small)
    assert sorted(str(c) for c in store.gc()) == sorted(
        str(to_cid(b"\x01\x55" + c.digest)) for c in (small_cid, large_cid)
    )
    assert list(store.iter_keys()) == []


def test_corrupt_packed_row_names_where_it_is(store: FileBlockStore) -> None:
    store.put(HELLO_V1, b"hello world")
    store._replace_raw(HELLO_V1, b"hello w0rld")
    with pytest.raises(IntegrityError, match=r"blocks\.sqlite"):
        store.get(HELLO_V1)


def test_failed_packed_write_leaves_nothing_visible(store: FileBlockStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(rows: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.packed, "put", full)
    with pytest.raises(Unavailable, match="No space left on device"):
        import_file(store, io.BytesIO(b"tiny"), ImportOptions())
    monkeypatch.undo()
    assert list(store.iter_keys()) == [] and store.pins() == []


def test_packed_blocks_are_shared_between_processes(tmp_path: Path) -> None:
    store = FileBlockStore(tmp_path / "repo")
    script = textwrap.dedent(
        f"""
        import sys
        from twinledger.ipfs import FileBlockStore, import_file, ImportOptions
        import io
        store = FileBlockStore({str(tmp_path / "repo")!r})
        print(import_file(store, io.BytesIO(b"from another process"), ImportOptions()).cid)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert b"".join(cat(store, out)) == b"from another process"
    assert store.pins() == [parse_cid(out)]


def test_put_dag_stores_and_pins_in_one_transaction_and_checks_every_block(store: FileBlockStore) -> None:
    import dag_cbor

    leaves = [(to_cid(block_cid(d, codec=RAW, version=1)), d) for d in (b"one", b"two")]
    data = dag_cbor.encode({"records": [cid for cid, _ in leaves]})
    root = to_cid(block_cid(data, codec=0x71, version=1))
    with pytest.raises(IntegrityError):
        store.put_dag(root, [*leaves, (root, data + b"!")])
    assert store_snapshot(store) == ([], "")
    with pytest.raises(InvalidInput, match="root"):
        store.put_dag(root, leaves)
    assert store_snapshot(store) == ([], "")
    store.put_dag(root, [*leaves, (root, data)])
    assert store.pins() == [root]
    assert store.gc() == []
    assert sorted(store.iter_keys()) == sorted(block_key(c) for c, _ in [*leaves, (root, data)])
