"""Model files people bring: numpy's `.npy` (one array) and `.npz` (several, in archive order), or a tensor file
(`tensors`), each read without unpickling and turned into the tensor file the chain's digests name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from twinledger.errors import InvalidInput, NotFound
from twinledger.federated import tensors

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive of .npy members (the second: empty)
FORMATS = ".npy (one array), .npz (several arrays, in archive order) or a twinledger tensor file (TLFT)"


def read_tensor_file(path: Path) -> bytes:
    """The tensor file of the model or update in `path`, recognised by its content (not its name).

    Refused with InvalidInput: any other content, pickled (object) arrays, and arrays that are not finite real
    numbers (complex, boolean, text, NaN); the shapes are the task's business (the node checks them)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no file {path}", hint="check the path of the tensor file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory, not a tensor file", hint=f"give a file: {FORMATS}") from None
    try:
        if data.startswith(tensors.MAGIC):
            tensors.deserialize(data)  # says what is malformed and where
            return data
        if data.startswith(NPY_MAGIC):
            return tensors.serialize([np.load(io.BytesIO(data), allow_pickle=False)])
        if data[:4] in ZIP_MAGICS:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                return tensors.serialize([archive[name] for name in archive.files])
    except InvalidInput as error:
        raise InvalidInput(f"{path}: {error.message}", hint=error.hint or f"give {FORMATS}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        # numpy's own complaints: a damaged header, a truncated array, an object array (which needs pickle)
        raise InvalidInput(f"{path} is not a readable numpy file: {error}", hint=f"give {FORMATS}") from None
    raise InvalidInput(f"{path} is not a tensor file (its first bytes are {data[:8]!r})", hint=f"give {FORMATS}")
