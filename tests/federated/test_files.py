"""The model and update files the CLI accepts: .npy, .npz (archive order) and tensor files, read without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twinledger.errors import InvalidInput, NotFound
from twinledger.federated import deserialize, serialize
from twinledger.federated.files import read_tensor_file


def test_npy_npz_and_tensor_files_give_the_tensor_file(tmp_path: Path) -> None:
    weights, bias = np.arange(12, dtype=np.int32).reshape(4, 3), np.ones(3, dtype=np.float32)
    np.save(tmp_path / "one.npy", weights)
    assert read_tensor_file(tmp_path / "one.npy") == serialize([weights])
    np.savez(tmp_path / "two.npz", weights=weights, bias=bias)  # archive order, not alphabetical
    arrays = deserialize(read_tensor_file(tmp_path / "two.npz"))
    assert [a.shape for a in arrays] == [(4, 3), (3,)] and np.array_equal(arrays[0], weights)
    (tmp_path / "model.bin").write_bytes(serialize([bias]))
    assert read_tensor_file(tmp_path / "model.bin") == serialize([bias])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "not a readable numpy file"),
        (lambda p: np.save(p, np.ones(3) * 1j), "complex128"),
        (lambda p: np.save(p, np.array(["text"])), "not a real number type"),
        (lambda p: np.save(p, np.array([np.nan])), "NaN"),
        (lambda p: np.savez(p), "1..65536 arrays"),
        (lambda p: p.write_bytes(b"TLFT\x01\x01\x00\x00"), "too short"),
        (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"), "not a readable numpy file"),
        (lambda p: p.write_text("weights: 1, 2, 3"), "is not a tensor file"),
    ],
)
def test_anything_else_is_refused_saying_why(tmp_path: Path, content, says: str) -> None:
    path = tmp_path / "update.npy"
    content(path)
    if not path.exists():  # np.savez appends .npz
        path = path.with_suffix(".npy.npz")
    with pytest.raises(InvalidInput) as refused:
        read_tensor_file(path)
    assert says in refused.value.message and str(path) in refused.value.message
    assert refused.value.hint  # says what to give instead


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        read_tensor_file(tmp_path / "nothing.npy")
