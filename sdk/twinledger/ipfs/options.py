"""Import options: Kubo's `ipfs add` profiles and flags, parsed into one frozen value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from twinledger.errors import InvalidInput

# boxo >= 0.37 (Kubo >= 0.40, chunker/parse.go ChunkSizeLimit): the 2 MiB bitswap block limit minus 256 bytes
# kept for the dag-pb/UnixFS framing of a non-raw leaf.
CHUNK_SIZE_LIMIT = (2 << 20) - 256
Layout = Literal["balanced", "trickle"]
SizeEstimation = Literal["links", "block"]


@dataclass(frozen=True)
class ImportOptions:
    """How bytes become a UnixFS DAG. The defaults are a fresh Kubo's (the values of unixfs-v0-2015)."""

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
                f"--profile={name} is not an import profile", hint=f"use one of: {', '.join(sorted(PROFILES))}"
            ) from None

    @classmethod
    def from_kubo_flags(cls, flags: Sequence[str]) -> ImportOptions:
        """Options from Kubo `ipfs add` flags, e.g. ["--cid-version=1", "--chunker=size-1024", "--trickle"].

        Kubo has no `ipfs add --profile`: ``--profile=NAME`` here means what ``ipfs config profile apply NAME``
        followed by ``ipfs add <the other flags>`` means in Kubo. A profile sets every ``Import.*`` key, and Kubo's
        add treats a configured ``Import.UnixFSRawLeaves`` as given explicitly (core/commands/add.go), so
        ``--cid-version=1`` turns raw leaves on only without a profile and without ``--raw-leaves``. Explicit
        flags override the profile whatever their order. Booleans take Go's strconv.ParseBool values, as Kubo.
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
        profile = values.get("--profile")
        options = cls.profile(profile) if profile is not None else cls()
        # Import.UnixFSRawLeaves is set when a profile was applied: --cid-version no longer decides the leaves.
        raw_leaves_set = profile is not None or "--raw-leaves" in values
        changes: dict[str, object] = {}
        if "--cid-version" in values:
            version = _parse_int("--cid-version", values["--cid-version"])
            if version not in (0, 1):
                raise InvalidInput(f"--cid-version={version} is not a CID version", hint="use 0 or 1")
            changes["cid_version"] = version
            if version == 1 and not raw_leaves_set:
                changes["raw_leaves"] = True
        if "--raw-leaves" in values:
            changes["raw_leaves"] = parse_go_bool("--raw-leaves", values["--raw-leaves"])
        if "--chunker" in values:
            changes["chunk_size"] = parse_chunker(values["--chunker"])
        if "--max-file-links" in values:
            links = _parse_int("--max-file-links", values["--max-file-links"])
            if links < 2:
                raise InvalidInput(f"--max-file-links={links} is too small", hint="use 2 or more")
            changes["max_links"] = links
        if "--trickle" in values:
            changes["layout"] = "trickle" if parse_go_bool("--trickle", values["--trickle"]) else "balanced"
        if "--hidden" in values:
            changes["hidden"] = parse_go_bool("--hidden", values["--hidden"])
        for ignored in ("--recursive",):  # the path decides file vs directory; accepted for Kubo parity
            values.pop(ignored, None)
        return replace(options, **changes)  # type: ignore[arg-type]

    def kubo_params(self) -> dict[str, str]:
        """Every Kubo RPC `add` parameter these options decide, so that no daemon configuration changes the CID.

        The HAMT threshold and its size estimation have no `add` parameter: see ``kubo_import_config``.
        """
        return {
            "cid-version": str(self.cid_version),
            "raw-leaves": _go_bool(self.raw_leaves),
            "chunker": f"size-{self.chunk_size}",
            "hash": "sha2-256",
            "max-file-links": str(self.max_links),
            "max-directory-links": "0",  # boxo: 0 = no limit; a basic directory only turns into a HAMT by size
            "max-hamt-fanout": str(self.hamt_fanout),
            "trickle": _go_bool(self.layout == "trickle"),
            "hidden": _go_bool(self.hidden),
        }

    def kubo_import_config(self) -> dict[str, object]:
        """The same options as Kubo's ``Import.*`` configuration keys (what `ipfs config profile apply` sets).

        ``UnixFSHAMTDirectorySizeThreshold`` and ``UnixFSHAMTDirectorySizeEstimation`` exist only here; Kubo reads
        the threshold once, when the daemon starts (core/node/groups.go sets boxo's HAMTShardingSize).
        """
        return {
            "CidVersion": self.cid_version,
            "UnixFSRawLeaves": self.raw_leaves,
            "UnixFSChunker": f"size-{self.chunk_size}",
            "HashFunction": "sha2-256",
            "UnixFSFileMaxLinks": self.max_links,
            "UnixFSDirectoryMaxLinks": 0,
            "UnixFSHAMTDirectoryMaxFanout": self.hamt_fanout,
            "UnixFSHAMTDirectorySizeThreshold": str(self.hamt_threshold),
            "UnixFSHAMTDirectorySizeEstimation": self.hamt_size_estimation,
            "UnixFSDAGLayout": self.layout,
        }


# Kubo's IPIP-499 profiles (config/profile.go); legacy-cid-v0 is Kubo's alias of unixfs-v0-2015.
PROFILES: dict[str, ImportOptions] = {
    "unixfs-v0-2015": ImportOptions(),
    "legacy-cid-v0": ImportOptions(),
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
    """Chunk size of a Kubo chunker spec; only fixed-size chunking is supported ("default" or size-N).

    Spellings as boxo's chunker.FromString: "" and "default" are 256 KiB, "size-N" is N bytes; anything else
    (a bare "size" included) is not a fixed-size chunker.
    """
    if spec in ("", "default"):
        return 256 * 1024
    if not spec.startswith("size-"):
        raise InvalidInput(
            f"--chunker={spec} is not supported", hint="use a fixed-size chunker: size-N, e.g. size-262144"
        )
    size_text = spec.removeprefix("size-")
    try:
        size = int(size_text)
    except ValueError:
        raise InvalidInput(f"--chunker={spec}: {size_text!r} is not a whole number", hint="use size-N") from None
    if size <= 0:
        raise InvalidInput(f"--chunker={spec}: the chunk size must be at least 1 byte", hint="use size-N with N >= 1")
    if size > CHUNK_SIZE_LIMIT:
        raise InvalidInput(
            f"--chunker={spec}: chunk size {size} is over Kubo's limit of {CHUNK_SIZE_LIMIT} bytes (2 MiB - 256)",
            hint=f"use size-N with N <= {CHUNK_SIZE_LIMIT}",
        )
    return size


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def _parse_int(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{flag}={text} is not a whole number", hint=f"write {flag}=N") from None


# Go's strconv.ParseBool, which Kubo's command parser (go-ipfs-cmds) applies to every boolean option.
GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(flag: str, text: str) -> bool:
    """A boolean flag value as Kubo reads it; anything else names the flag and the value."""
    if text in GO_TRUE:
        return True
    if text in GO_FALSE:
        return False
    raise InvalidInput(
        f"{flag}={text} is not a boolean",
        hint=f"write {flag}, {flag}=true or {flag}=false (Kubo also takes 1/0, t/f, T/F, TRUE/FALSE, True/False)",
    )
