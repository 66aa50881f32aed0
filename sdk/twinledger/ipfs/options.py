"""Import options: Kubo's `ipfs add` profiles and flags, parsed into one frozen value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from twinledger.errors import InvalidInput

CHUNK_SIZE_LIMIT = 1 << 20  # boxo refuses larger chunks: a leaf must fit a 1 MiB block plus framing
Layout = Literal["balanced", "trickle"]
SizeEstimation = Literal["links", "block"]


@dataclass(frozen=True)
class ImportOptions:
    """How bytes become a UnixFS DAG. The defaults are Kubo's default profile, unixfs-v0-2015."""

    cid_version: int = 0
    raw_leaves: bool = False
    chunk_size: int = 256 * 1024
    max_links: int = 174
    layout: Layout = "balanced"
    # Directories switch to a HAMT when their estimated size passes this many bytes (boxo HAMTShardingSize).
    hamt_threshold: int = 256 * 1024
    # "links": boxo's legacy estimate (name + CID bytes per link); "block": the encoded directory block size.
    hamt_size_estimation: SizeEstimation = "links"
    hamt_fanout: int = 256
    hidden: bool = False

    @classmethod
    def profile(cls, name: str) -> ImportOptions:
        try:
            return PROFILES[name]
        except KeyError:
            raise InvalidInput(
                f"unknown import profile '{name}'", hint=f"use one of: {', '.join(sorted(PROFILES))}"
            ) from None

    @classmethod
    def from_kubo_flags(cls, flags: Sequence[str]) -> ImportOptions:
        """Options from Kubo `ipfs add` flags, e.g. ["--cid-version=1", "--chunker=size-1024", "--trickle"].

        As in Kubo, a profile sets defaults and explicit flags override them whatever their order, and
        ``--cid-version=1`` turns raw leaves on unless ``--raw-leaves`` is given explicitly.
        """
        values: dict[str, str] = {}
        for flag in flags:
            name, _, value = flag.partition("=")
            canonical = _FLAG_ALIASES.get(name)
            if canonical is None:
                raise InvalidInput(
                    f"unknown ipfs add flag '{flag}'",
                    hint="supported: " + ", ".join(sorted(set(_FLAG_ALIASES.values()))),
                )
            values[canonical] = value if _ else "true"
        options = cls.profile(values.get("--profile", "unixfs-v0-2015"))
        changes: dict[str, object] = {}
        if "--cid-version" in values:
            version = _parse_int("--cid-version", values["--cid-version"])
            if version not in (0, 1):
                raise InvalidInput(f"--cid-version={version} is not a CID version", hint="use 0 or 1")
            changes["cid_version"] = version
            if version == 1:
                changes["raw_leaves"] = True
        if "--raw-leaves" in values:
            changes["raw_leaves"] = _parse_bool("--raw-leaves", values["--raw-leaves"])
        if "--chunker" in values:
            changes["chunk_size"] = parse_chunker(values["--chunker"])
        if "--max-file-links" in values:
            links = _parse_int("--max-file-links", values["--max-file-links"])
            if links < 2:
                raise InvalidInput(f"--max-file-links={links} is too small", hint="use 2 or more")
            changes["max_links"] = links
        if "--trickle" in values and _parse_bool("--trickle", values["--trickle"]):
            changes["layout"] = "trickle"
        if "--hidden" in values:
            changes["hidden"] = _parse_bool("--hidden", values["--hidden"])
        for ignored in ("--recursive",):  # the path decides file vs directory; accepted for Kubo parity
            values.pop(ignored, None)
        return replace(options, **changes)  # type: ignore[arg-type]

    def kubo_params(self) -> dict[str, str]:
        """The same options as Kubo RPC `add` query parameters."""
        params = {
            "cid-version": str(self.cid_version),
            "raw-leaves": str(self.raw_leaves).lower(),
            "chunker": f"size-{self.chunk_size}",
            "max-file-links": str(self.max_links),
            "trickle": str(self.layout == "trickle").lower(),
            "hidden": str(self.hidden).lower(),
        }
        return params


PROFILES: dict[str, ImportOptions] = {
    "unixfs-v0-2015": ImportOptions(),
    "unixfs-v1-2025": ImportOptions(
        cid_version=1, raw_leaves=True, chunk_size=1 << 20, max_links=1024, hamt_size_estimation="block"
    ),
}

_FLAG_ALIASES = {
    "--cid-version": "--cid-version",
    "--raw-leaves": "--raw-leaves",
    "--chunker": "--chunker",
    "-s": "--chunker",
    "--max-file-links": "--max-file-links",
    "--trickle": "--trickle",
    "-t": "--trickle",
    "--profile": "--profile",
    "-r": "--recursive",
    "--recursive": "--recursive",
    "-H": "--hidden",
    "--hidden": "--hidden",
}


def parse_chunker(spec: str) -> int:
    """Chunk size of a Kubo chunker spec; only fixed-size chunking (size-N) is supported."""
    kind, _, size_text = spec.partition("-")
    if kind != "size":
        raise InvalidInput(
            f"chunker '{spec}' is not supported", hint="use a fixed-size chunker: size-N, e.g. size-262144"
        )
    size = _parse_int("--chunker", size_text) if size_text else 256 * 1024
    if not 0 < size <= CHUNK_SIZE_LIMIT:
        raise InvalidInput(f"chunker size {size} is out of range", hint=f"use size-N with 1 <= N <= {CHUNK_SIZE_LIMIT}")
    return size


def _parse_int(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{flag}={text} is not a whole number", hint=f"write {flag}=N") from None


def _parse_bool(flag: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{flag}={text} is not true or false", hint=f"write {flag}=true or {flag}=false")
