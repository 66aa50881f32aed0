"""A did:key kept in a file of its own (a device's key): its private JWK, mode 0600, refused when others can read
it, as the wallet's keystores and passphrase files are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from twinledger.errors import InvalidInput, NotFound
from twinledger.identity.errors import MalformedDid
from twinledger.private_files import check_private, write_private

if TYPE_CHECKING:
    from twinledger.identity.keys import DidKey

WHAT = "key file"
MAKE_ONE = "make one with `twinledger did new --out FILE`"


def read_key_file(path: Path) -> DidKey:
    """The did:key whose private JWK `path` holds; refused when missing, readable by others, or not such a JWK."""
    from twinledger.identity.keys import DidKey

    check_private(path, WHAT)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read the {WHAT} {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        return DidKey.from_jwk(text)
    except MalformedDid as error:
        raise MalformedDid(f"{path} does not hold a did:key private JWK: {error.message}", hint=MAKE_ONE) from None


def write_key_file(path: Path, key: DidKey, *, replace: bool = False) -> None:
    """`key`'s private JWK written to `path` (mode 0600, atomically); an existing file only with `replace`."""
    if not path.parent.is_dir():
        raise NotFound(f"no directory {path.parent} for the {WHAT}", hint="create it first, or choose another path")
    try:
        write_private(path, key.to_jwk() + "\n", replace=replace)
    except FileExistsError:
        hint = "choose another path, or --force to replace it (its key is lost)"
        raise InvalidInput(f"{path} already exists", hint=hint) from None
