"""Import options mean what Kubo's flags and profiles mean (Kubo 0.40: core/commands/add.go, config/profile.go,
boxo chunker/parse.go, go-ipfs-cmds' boolean parsing)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ipfs_helpers import g1

from twinledger.errors import InvalidInput
from twinledger.ipfs import FileBlockStore, ImportOptions, cat, compute_cid, export_car, import_car
from twinledger.ipfs.options import CHUNK_SIZE_LIMIT

HELLO_V1_DAG_PB = "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"
HELLO_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_true_values(text: str) -> None:
    assert ImportOptions.from_kubo_flags([f"--raw-leaves={text}"]).raw_leaves is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_false_values(text: str) -> None:
    assert ImportOptions.from_kubo_flags(["--cid-version=1", f"--raw-leaves={text}"]).raw_leaves is False


@pytest.mark.parametrize("text", ["yes", "no", "on", "tRuE", "", "2"])
def test_values_go_refuses_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match=f"--trickle={text} is not a boolean"):
        ImportOptions.from_kubo_flags([f"--trickle={text}"])


@pytest.mark.parametrize(
    "flags", [["--profile=unixfs-v0-2015", "--cid-version=1"], ["--cid-version=1", "--profile=unixfs-v0-2015"]]
)
def test_a_profile_sets_raw_leaves_so_cid_version_1_keeps_dag_pb_leaves(flags: list[str]) -> None:
    # Kubo: `ipfs config profile apply unixfs-v0-2015` sets Import.UnixFSRawLeaves=false, which add.go treats as
    # given explicitly; --cid-version=1 then no longer turns raw leaves on.
    options = ImportOptions.from_kubo_flags(flags)
    assert (options.cid_version, options.raw_leaves) == (1, False)
    assert str(compute_cid(b"hello world", options).cid) == HELLO_V1_DAG_PB


def test_without_a_profile_cid_version_1_turns_raw_leaves_on() -> None:
    options = ImportOptions.from_kubo_flags(["--cid-version=1"])
    assert options.raw_leaves is True
    assert str(compute_cid(b"hello world", options).cid) == HELLO_RAW


def test_flags_override_the_profile() -> None:
    options = ImportOptions.from_kubo_flags(["--profile=unixfs-v1-2025", "--cid-version=0", "--chunker=size-1024"])
    assert (options.cid_version, options.raw_leaves, options.chunk_size) == (0, True, 1024)
    assert ImportOptions.from_kubo_flags(["--profile=unixfs-v1-2025", "--raw-leaves=false"]).raw_leaves is False
    assert ImportOptions.from_kubo_flags(["--profile=legacy-cid-v0"]) == ImportOptions.profile("unixfs-v0-2015")


def test_profiles_write_kubos_import_configuration() -> None:
    # The values of config/profile.go's unixfs-v1-2025 Transform (Kubo 0.40), key by key.
    assert ImportOptions.profile("unixfs-v1-2025").kubo_import_config() == {
        "CidVersion": 1,
        "UnixFSRawLeaves": True,
        "UnixFSChunker": "size-1048576",
        "HashFunction": "sha2-256",
        "UnixFSFileMaxLinks": 1024,
        "UnixFSDirectoryMaxLinks": 0,
        "UnixFSHAMTDirectoryMaxFanout": 256,
        "UnixFSHAMTDirectorySizeThreshold": "262144",
        "UnixFSHAMTDirectorySizeEstimation": "block",
        "UnixFSDAGLayout": "balanced",
    }
    legacy = ImportOptions.profile("unixfs-v0-2015").kubo_import_config()
    assert (legacy["CidVersion"], legacy["UnixFSRawLeaves"], legacy["UnixFSChunker"]) == (0, False, "size-262144")
    assert (legacy["UnixFSFileMaxLinks"], legacy["UnixFSHAMTDirectorySizeEstimation"]) == (174, "links")


def test_chunk_size_limit_is_kubos() -> None:
    assert CHUNK_SIZE_LIMIT == 2 * 1024 * 1024 - 256  # boxo ChunkSizeLimit = BlockSizeLimit - ChunkOverheadBudget
    assert ImportOptions.from_kubo_flags([f"--chunker=size-{CHUNK_SIZE_LIMIT}"]).chunk_size == CHUNK_SIZE_LIMIT
    with pytest.raises(
        InvalidInput, match=r"--chunker=size-2097152: chunk size 2097152 is over Kubo's limit of 2096896"
    ):
        ImportOptions.from_kubo_flags(["--chunker=size-2097152"])


def test_largest_chunks_with_dag_pb_leaves_stay_within_the_block_limit(tmp_path: Path) -> None:
    # Kubo's test/cli/block_size_test.go: maxChunkSize*2 bytes, --raw-leaves=false, every block <= 2 MiB.
    data = g1("max-chunk", 2 * CHUNK_SIZE_LIMIT)
    options = ImportOptions.from_kubo_flags([f"--chunker=size-{CHUNK_SIZE_LIMIT}", "--raw-leaves=false"])
    store = FileBlockStore(tmp_path / "repo")
    root = store.add_stream(io.BytesIO(data), options).cid
    sizes = [store.stat(cid).size for cid in store.local_cids()]
    assert len(sizes) == 3 and max(sizes) <= 2 * 1024 * 1024 and max(sizes) > CHUNK_SIZE_LIMIT
    car = io.BytesIO()
    export_car(store, root, car)
    copy = FileBlockStore(tmp_path / "copy")
    assert import_car(copy, io.BytesIO(car.getvalue())) == [root]  # our CAR reader takes 2 MiB blocks
    assert b"".join(cat(copy, root)) == data


def test_chunker_spellings_are_boxos() -> None:
    """boxo's chunker.FromString: "" and "default" are 256 KiB; a bare "size" is no chunker at all."""
    assert ImportOptions.from_kubo_flags(["--chunker=default"]).chunk_size == 256 * 1024
    assert ImportOptions.from_kubo_flags(["--chunker="]).chunk_size == 256 * 1024
    for spec in ("size", "size-", "sizes-10"):
        with pytest.raises(InvalidInput, match=f"--chunker={spec}"):
            ImportOptions.from_kubo_flags([f"--chunker={spec}"])
