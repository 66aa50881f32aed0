"""The one definition of a DID's canonical form, and its on-chain hash.

The contracts key grants by ``keccak256(utf8(canonical DID))``. Two spellings of the same identifier must
never give two hashes, so every DID string entering twinledger passes through :func:`canonical_did` first.
Canonical forms:

- ``did:key:z6Mk…`` — Ed25519 only, multibase base58btc (the did:key spec's only encoding). Other multibase
  encodings of the same key and other key types are refused.
- ``did:pkh:eip155:<chain id, decimal>:<EIP-55 address>`` — an all-lower or all-upper hex address is rewritten
  in its checksum spelling; a mixed-case address with a wrong checksum is refused (it is a typo, not a
  spelling).
- ``did:ethr:0x<chain id, lower-case hex>:<EIP-55 address>`` — the network is always explicit:
  ``did:ethr:0xAbc…`` and ``did:ethr:mainnet:0xAbc…`` become ``did:ethr:0x1:0xAbc…``. Public-key did:ethr
  identifiers are refused.

did:ethr and did:pkh for the same address stay distinct identifiers: a did:ethr's controlling key can be
changed in the ERC-1056 registry, so it does not always denote the address's key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from eth_utils import is_checksum_address, keccak, to_checksum_address
from multiformats import multibase, multicodec

from twinledger.identity.errors import MalformedDid, UnsupportedDid

# The contracts refuse anything shorter or without the scheme; refusing here gives the reason before a
# transaction.
MIN_DID_BYTES = 8
ED25519_PUB_CODEC = "ed25519-pub"

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DECIMAL_CHAIN_ID = re.compile(r"[1-9][0-9]{0,30}")
_HEX_CHAIN_ID = re.compile(r"0x[0-9a-fA-F]{1,30}")
# did:ethr network names didkit and ethr-did-resolver agree on, mapped to their chain ids.
_ETHR_NETWORKS = {"mainnet": 1, "goerli": 5, "sepolia": 11155111}


@dataclass(frozen=True)
class ParsedDid:
    """A canonical DID in parts: ``public_key`` for did:key, ``address`` for the Ethereum methods."""

    did: str
    method: str
    chain_id: int | None = None
    address: str | None = None
    public_key: bytes | None = None


def canonical_did(did: str) -> str:
    """Return the canonical spelling of ``did``; raise :class:`MalformedDid` or :class:`UnsupportedDid`."""
    return parse_did(did).did


@functools.lru_cache(maxsize=4096)  # keccak of the same few strings on every request
def did_hash(did: str) -> bytes:
    """The 32-byte ``keccak256(utf8(canonical DID))`` the contracts store."""
    return keccak(text=canonical_did(did))


def split_did_url(did_url: str) -> tuple[str, str]:
    """Split ``did#fragment`` into canonical DID and fragment; refuse queries, paths, empty fragments."""
    if not isinstance(did_url, str) or "#" not in did_url:
        raise MalformedDid(
            "a key id must be a DID URL with a fragment (did:…#key)",
            hint="use the signer's did_url, e.g. did:key:z6Mk…#z6Mk…",
        )
    did, fragment = did_url.split("#", 1)
    if not fragment or not re.fullmatch(r"[A-Za-z0-9._~\-]+", fragment):
        raise MalformedDid("the DID URL's fragment is empty or has characters outside [A-Za-z0-9._~-]")
    return canonical_did(did), fragment


@functools.lru_cache(maxsize=8192)
def parse_did(did: str) -> ParsedDid:
    """Validate ``did`` and return its canonical parts (memoised: a pure function of the string)."""
    if not isinstance(did, str):
        raise MalformedDid(f"a DID must be a string, not {type(did).__name__}")
    if did != did.strip() or any(ch.isspace() for ch in did):
        raise MalformedDid("the DID contains whitespace", hint="strip spaces and line breaks from the DID")
    if len(did.encode()) < MIN_DID_BYTES or not did.startswith("did:"):
        raise MalformedDid("a DID starts with 'did:' and is at least 8 bytes long")
    if "#" in did or "?" in did or "/" in did:
        raise MalformedDid(
            "a DID must not carry a fragment, query or path", hint="pass the bare DID, without #…, ?… or /…"
        )
    parts = did.split(":")
    method = parts[1]
    if method == "key":
        return _parse_did_key(parts)
    if method == "pkh":
        return _parse_did_pkh(parts)
    if method == "ethr":
        return _parse_did_ethr(parts)
    raise UnsupportedDid(
        f"DID method {method!r} is not supported", hint="use did:key (Ed25519), did:pkh:eip155 or did:ethr"
    )


def did_key_from_public_key(public_key: bytes) -> str:
    """The did:key of a 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise MalformedDid("an Ed25519 public key is 32 bytes")
    identifier = multibase.encode(multicodec.wrap(ED25519_PUB_CODEC, public_key), "base58btc")
    return f"did:key:{identifier}"


ED25519_PREFIX, ED25519_LENGTH = "z6Mk", 48  # base58btc of 0xed01 + 32 bytes: always 47 digits after the "z"


def _parse_did_key(parts: list[str]) -> ParsedDid:
    if len(parts) != 3 or not parts[2]:
        raise MalformedDid("did:key has the form did:key:<multibase key>")
    identifier = parts[2]
    if not identifier.startswith("z"):
        raise MalformedDid(
            "did:key must use multibase base58btc (prefix 'z')",
            hint="re-encode the key as base58btc; other encodings of the same key are not accepted",
        )
    if identifier.startswith(ED25519_PREFIX) and len(identifier) != ED25519_LENGTH:
        # every Ed25519 did:key is z6Mk and 44 more characters: a character too many or too few is a typo, not
        # the other key type its decoded prefix would name
        raise MalformedDid(
            f"did:key:{identifier[:12]}… is {len(identifier)} characters after 'did:key:', an Ed25519 did:key has "
            f"{ED25519_LENGTH}: a character was added or lost",
            hint="copy the DID again from its holder (`twinledger wallet export-did` or `twinledger did show`)",
        )
    try:
        raw = multibase.decode(identifier)
        codec, public_key = multicodec.unwrap(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedDid("did:key identifier is not valid base58btc multicodec data") from exc
    if codec.name != ED25519_PUB_CODEC:
        raise UnsupportedDid(
            f"did:key with key type {codec.name!r} is not supported", hint="use an Ed25519 did:key (z6Mk…)"
        )
    if len(public_key) != 32:
        raise MalformedDid("the did:key's Ed25519 public key is not 32 bytes")
    canonical = did_key_from_public_key(public_key)
    if canonical != f"did:key:{identifier}":
        # base58btc is bijective, so this only triggers on non-minimal varint prefixes: another spelling of
        # the key.
        raise MalformedDid("did:key identifier is not the minimal encoding of its key")
    return ParsedDid(did=canonical, method="key", public_key=public_key)


def _checksum_address(address: str, what: str) -> str:
    if not _ADDRESS.fullmatch(address):
        raise MalformedDid(f"{what}: the account must be 0x followed by 40 hex digits")
    body = address[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(address):
        raise MalformedDid(
            f"{what}: the address's EIP-55 checksum is wrong",
            hint="copy the address again, or write it all in lower case",
        )
    return str(to_checksum_address(address))


def _parse_did_pkh(parts: list[str]) -> ParsedDid:
    if len(parts) != 5:
        raise MalformedDid("did:pkh has the form did:pkh:eip155:<chain id>:<address>")
    namespace, chain_ref, address = parts[2], parts[3], parts[4]
    if namespace != "eip155":
        raise UnsupportedDid(
            f"did:pkh namespace {namespace!r} is not supported",
            hint="only eip155 (Ethereum) accounts are accepted",
        )
    if not _DECIMAL_CHAIN_ID.fullmatch(chain_ref):
        raise MalformedDid("did:pkh:eip155 chain id must be a decimal number without leading zeros")
    checksum = _checksum_address(address, "did:pkh")
    chain_id = int(chain_ref)
    return ParsedDid(did=f"did:pkh:eip155:{chain_id}:{checksum}", method="pkh", chain_id=chain_id, address=checksum)


def _parse_did_ethr(parts: list[str]) -> ParsedDid:
    if len(parts) == 3:
        network, address = "mainnet", parts[2]
    elif len(parts) == 4:
        network, address = parts[2], parts[3]
    else:
        raise MalformedDid("did:ethr has the form did:ethr[:<network or 0x chain id>]:<address>")
    if network in _ETHR_NETWORKS:
        chain_id = _ETHR_NETWORKS[network]
    elif _HEX_CHAIN_ID.fullmatch(network):
        chain_id = int(network, 16)
        if chain_id == 0:
            raise MalformedDid("did:ethr chain id must not be zero")
    else:
        raise UnsupportedDid(
            f"did:ethr network {network!r} is not known",
            hint=f"use a hex chain id (0x…) or one of {', '.join(sorted(_ETHR_NETWORKS))}",
        )
    if len(address) == 68 and address.startswith("0x"):
        raise UnsupportedDid("did:ethr with a public key is not supported", hint="use the address form did:ethr:0x…")
    checksum = _checksum_address(address, "did:ethr")
    return ParsedDid(did=f"did:ethr:{hex(chain_id)}:{checksum}", method="ethr", chain_id=chain_id, address=checksum)
