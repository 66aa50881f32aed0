"""Files that hold secrets (wallet keystores, device keys, passphrase files): written atomically with mode 0600,
and refused when others can read them."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from twinledger.errors import AuthError, InvalidInput, NotFound


def check_private(path: Path, what: str) -> None:
    """Raise unless `path` is a file only its owner can read (NotFound when missing)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise NotFound(f"no {what} at {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"the {what} {path} is not a file", hint=f"give the path of the {what} itself")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise AuthError(
            f"{what} {path} has permissions {mode:04o}: others may read it",
            hint=f"run `chmod 600 {path}` (and check who could have copied it)",
        )


def write_private(path: Path, text: str, *, replace: bool = True) -> None:
    """Atomically write `path` with mode 0600 (temp file in the same directory, fsync, rename); with
    `replace=False` an existing file is never overwritten (the rename is a link that fails if it exists)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError when `path` appeared meanwhile
    finally:
        Path(tmp).unlink(missing_ok=True)
