"""The tensor file: a deterministic, pickle-free serialization of a list of numpy arrays.

Layout (every integer little-endian)::

    offset  size        field
    0       4           magic b"TLFT"
    4       1           version, 1
    5       1           dtype code, 1 = float64 (IEEE 754 binary64, little-endian)
    6       2           reserved, 0
    8       4           count of arrays N (0 < N <= 65536)
    12      per array   ndim (u32, <= 32), then ndim dimensions (u64 each)
    ...     per array   the array's elements in C order, 8 bytes each

Nothing else follows the last array. Every array is stored as float64 whatever its input dtype (integer and
floating inputs are converted; complex, boolean and object arrays are refused), and only finite values are
allowed, so the same parameters always give the same bytes and sha256 of those bytes names them on chain.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from twinledger.errors import InvalidInput

MAGIC = b"TLFT"
VERSION = 1
DTYPE_FLOAT64 = 1
MAX_ARRAYS = 65536
MAX_NDIM = 32
_HEAD = struct.Struct("<4sBBHI")
_LE_F64 = np.dtype("<f8")

Arrays = list[NDArray[np.float64]]
Shapes = list[tuple[int, ...]]


class MalformedTensorFile(InvalidInput):
    """The bytes are not a valid tensor file."""


def _as_float64(index: int, array: object) -> NDArray[np.float64]:
    value = np.asarray(array)
    if value.dtype.kind not in "iuf":
        raise InvalidInput(
            f"array {index} has dtype {value.dtype}, not a real number type",
            hint="pass integer or floating-point numpy arrays",
        )
    converted = np.array(value, dtype=_LE_F64, order="C")  # ascontiguousarray would turn 0-d into 1-d
    if not np.isfinite(converted).all():
        raise InvalidInput(f"array {index} holds NaN or infinite values", hint="only finite parameters can be shared")
    return converted


def serialize(arrays: Sequence[object]) -> bytes:
    """The tensor file of `arrays` (see the module docstring for the layout)."""
    if not 0 < len(arrays) <= MAX_ARRAYS:
        raise InvalidInput(f"a tensor file holds 1..{MAX_ARRAYS} arrays, got {len(arrays)}")
    converted = [_as_float64(i, a) for i, a in enumerate(arrays)]
    parts = [_HEAD.pack(MAGIC, VERSION, DTYPE_FLOAT64, 0, len(converted))]
    for array in converted:
        if array.ndim > MAX_NDIM:
            raise InvalidInput(f"an array has {array.ndim} dimensions; at most {MAX_NDIM} are allowed")
        parts.append(struct.pack(f"<I{array.ndim}Q", array.ndim, *array.shape))
    parts.extend(array.tobytes(order="C") for array in converted)
    return b"".join(parts)


def deserialize(data: bytes) -> Arrays:
    """Parse a tensor file; anything malformed raises MalformedTensorFile saying what and where."""
    hint = "the file must be written by twinledger.federated.tensors.serialize"
    if len(data) < _HEAD.size:
        raise MalformedTensorFile(f"tensor file too short ({len(data)} bytes)", hint=hint)
    magic, version, dtype, reserved, count = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise MalformedTensorFile(f"not a tensor file (magic {magic!r}, expected {MAGIC!r})", hint=hint)
    if version != VERSION or dtype != DTYPE_FLOAT64 or reserved != 0:
        raise MalformedTensorFile(f"unsupported tensor file version {version} / dtype code {dtype}", hint=hint)
    if not 0 < count <= MAX_ARRAYS:
        raise MalformedTensorFile(f"tensor file declares {count} arrays; 1..{MAX_ARRAYS} are allowed", hint=hint)
    offset = _HEAD.size
    shapes: Shapes = []
    for index in range(count):
        if offset + 4 > len(data):
            raise MalformedTensorFile(f"tensor file ends inside the header of array {index}", hint=hint)
        (ndim,) = struct.unpack_from("<I", data, offset)
        if ndim > MAX_NDIM or offset + 4 + 8 * ndim > len(data):
            raise MalformedTensorFile(f"array {index} has a bad or truncated shape (ndim {ndim})", hint=hint)
        shapes.append(tuple(int(d) for d in struct.unpack_from(f"<{ndim}Q", data, offset + 4)))
        offset += 4 + 8 * ndim
    sizes = [int(np.prod(shape, dtype=np.uint64)) if shape else 1 for shape in shapes]
    expected = offset + 8 * sum(sizes)
    if expected != len(data):
        raise MalformedTensorFile(
            f"tensor file is {len(data)} bytes but its header describes {expected}", hint=hint + " (truncated?)"
        )
    arrays: Arrays = []
    for index, (shape, size) in enumerate(zip(shapes, sizes, strict=True)):
        array = np.frombuffer(data, dtype=_LE_F64, count=size, offset=offset).reshape(shape)
        if not np.isfinite(array).all():
            raise MalformedTensorFile(f"array {index} holds NaN or infinite values", hint=hint)
        arrays.append(array.astype(np.float64, copy=False))
        offset += 8 * size
    return arrays


def shapes_of(arrays: Sequence[NDArray[np.float64]]) -> Shapes:
    return [tuple(int(d) for d in a.shape) for a in arrays]


def check_shapes(arrays: Sequence[NDArray[np.float64]], expected: Shapes, *, what: str = "update") -> None:
    """Raise InvalidInput when `arrays` do not have exactly the shapes of the global model."""
    actual = shapes_of(arrays)
    if actual == expected:
        return
    if len(actual) != len(expected):
        detail = f"{len(actual)} arrays, the global model has {len(expected)}"
    else:
        index = next(i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if a != e)
        detail = f"array {index} has shape {actual[index]}, the global model's is {expected[index]}"
    raise InvalidInput(f"the {what} does not fit the global model: {detail}", hint="train on the round's global model")


def digest(data: bytes) -> bytes:
    """sha256 of a tensor file: what goes on chain as an update or model digest."""
    return hashlib.sha256(data).digest()
