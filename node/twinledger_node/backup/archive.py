"""The backup archive: a plain tar whose last member, manifest.json, names every other member with its size and
sha256. Written to FILE.tmp (mode 0600 from its creation), synced, then renamed, so a FILE that exists is complete;
read twice on restore: once to check every member against the manifest before anything is written, once to extract.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

from twinledger.errors import IntegrityError, InvalidInput, NotFound
from twinledger.ipfs.store import fsync_dir

FORMAT = 1
MANIFEST = "manifest.json"
# Member names start with one of these: anything else in an archive (an absolute path, `..`) is refused.
ROOTS = ("databases", "keys", "ipfs", "deployments")
_CHUNK = 1024 * 1024

Advance = Callable[[int], None]
# Progress(total bytes, files) → advance(bytes): how the CLI shows a long copy.
Progress = Callable[[int, int], Advance]


class _Hashing:
    """Reads through to `raw`, hashing and counting what passes (tarfile reads a member's bytes through it)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.sha256, self.size = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data


class ArchiveWriter:
    """Members added one by one; `finish` appends the manifest and puts the archive in place. Leaving the `with`
    block on an error removes the partial FILE.tmp, so a failed backup leaves nothing behind."""

    def __init__(self, target: Path, *, force: bool = False) -> None:
        self.target = target
        self.tmp = target.with_name(target.name + ".tmp")
        self.members: dict[str, dict[str, Any]] = {}
        if target.exists() and not force:
            raise InvalidInput(f"{target} already exists", hint="name a new file, or pass --force to replace it")
        if not target.parent.is_dir():
            raise NotFound(f"no directory {target.parent} to write the backup in", hint="create it first")
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise InvalidInput(
                f"{self.tmp} exists: another backup is writing it, or one was killed before it finished",
                hint=f"remove {self.tmp} if no backup is running",
            ) from None
        self._file = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:
            self.abort()

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, int(time.time())
        return info

    def add_file(self, name: str, path: Path, advance: Advance | None = None) -> int:
        """Add the file at `path` as `name`; returns its size."""
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            reader = _Hashing(source)
            self._tar.addfile(self._info(name, size), reader)  # only read() is used
        self.members[name] = {"size": size, "sha256": reader.sha256.hexdigest()}
        if advance is not None:
            advance(size)
        return size

    def add_bytes(self, name: str, data: bytes) -> None:
        import io

        self._tar.addfile(self._info(name, len(data)), io.BytesIO(data))
        self.members[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def finish(self, manifest: dict[str, Any]) -> int:
        """Append the manifest (with every member's size and sha256), sync, rename into place; returns the size."""
        import io

        data = json.dumps({**manifest, "members": self.members}, indent=2, sort_keys=True).encode()
        self._tar.addfile(self._info(MANIFEST, len(data)), io.BytesIO(data))
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.tmp, self.target)
        fsync_dir(self.target.parent)
        return self.target.stat().st_size

    def abort(self) -> None:
        for closing in (self._tar.close, self._file.close):
            with contextlib.suppress(OSError):
                closing()
        self.tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Manifest:
    data: dict[str, Any]

    @property
    def members(self) -> dict[str, dict[str, Any]]:
        return dict(self.data["members"])

    @property
    def engine(self) -> str:
        return str(self.data["engine"])

    @property
    def schema(self) -> dict[str, int]:
        return {name: int(version) for name, version in self.data["schema"].items()}


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return name == MANIFEST or (
        len(parts) >= 2 and parts[0] in ROOTS and not PurePosixPath(name).is_absolute() and ".." not in parts
    )


def _members(path: Path) -> Iterator[tuple[tarfile.TarInfo, _Hashing, tarfile.TarFile]]:
    """Every member of the archive at `path` with a hashing reader of its bytes; refuses what a backup never holds."""
    try:
        tar = tarfile.open(path, mode="r:")  # noqa: SIM115
    except FileNotFoundError:
        raise NotFound(f"no backup at {path}", hint="pass the file `twinledger node backup` wrote") from None
    except tarfile.TarError:
        raise IntegrityError(f"{path} is not a twinledger backup (not a tar archive)") from None
    with tar:
        try:
            for info in tar:
                if not info.isfile() or not _safe_name(info.name):
                    raise IntegrityError(f"{path} holds {info.name!r}, which no twinledger backup holds",
                                         hint="restore only archives `twinledger node backup` wrote")  # fmt: skip
                raw = tar.extractfile(info)
                assert raw is not None  # a regular file
                yield info, _Hashing(raw), tar
        except tarfile.TarError as error:
            raise IntegrityError(
                f"{path} is damaged: {error}", hint="restore from another copy of the backup"
            ) from None


def read_verified(path: Path) -> Manifest:
    """The archive's manifest, once every member is found to have the size and sha256 it lists (and nothing is
    missing or extra). Nothing is written."""
    found: dict[str, str] = {}
    manifest: dict[str, Any] | None = None
    for info, reader, _tar in _members(path):
        if info.name in found or (info.name == MANIFEST and manifest is not None):
            raise IntegrityError(f"{path} holds {info.name} twice", hint="restore from another copy of the backup")
        if info.name == MANIFEST:
            try:
                manifest = json.loads(reader.read())
            except ValueError:
                raise IntegrityError(f"the manifest of {path} is not JSON") from None
            continue
        while reader.read(_CHUNK):
            pass
        found[info.name] = reader.sha256.hexdigest()
    if not isinstance(manifest, dict) or "members" not in manifest:
        raise IntegrityError(f"{path} has no manifest: not a complete twinledger backup",
                             hint="a backup is complete only once `twinledger node backup` has finished")  # fmt: skip
    if manifest.get("format") != FORMAT:
        raise IntegrityError(f"{path} is a backup of format {manifest.get('format')}; this twinledger reads {FORMAT}",
                             hint="restore it with the twinledger version that wrote it")  # fmt: skip
    listed = {name: str(entry["sha256"]) for name, entry in manifest["members"].items()}
    for name in sorted(set(listed) | set(found)):
        if name not in found:
            raise IntegrityError(f"{path} lacks {name}, which its manifest lists", hint="the archive is incomplete")
        if name not in listed:
            raise IntegrityError(f"{path} holds {name}, which its manifest does not list")
        if found[name] != listed[name]:
            raise IntegrityError(
                f"{name} in {path} does not match its sha256 in the manifest: the archive was altered or damaged",
                hint="restore from another copy of the backup; nothing was written",
            )
    return Manifest(manifest)


def extract(path: Path, manifest: Manifest, into: Path, advance: Advance | None = None) -> list[Path]:
    """Write every member (bar the manifest) under `into`, files 0600 in 0700 directories, each checked again
    against the manifest as it is written (the file may have changed since `read_verified`); returns the paths."""
    listed, written = manifest.members, []
    for info, reader, _tar in _members(path):
        if info.name == MANIFEST:
            continue
        target = into / info.name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := reader.read(_CHUNK):
                out.write(chunk)
        if info.name not in listed or reader.sha256.hexdigest() != listed[info.name]["sha256"]:
            raise IntegrityError(f"{info.name} in {path} changed while it was restored", hint="nothing was restored")
        written.append(target)
        if advance is not None:
            advance(reader.size)
    return written
