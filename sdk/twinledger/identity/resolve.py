"""Resolve a DID URL to the key that verifies its signatures, through didkit, and verify signatures with it.

did:key, did:pkh and did:ethr resolve offline (the document is a pure function of the identifier; did:ethr
without registry lookups), so a resolved key never changes and a bounded cache of them is safe.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

import didkit
import nacl.exceptions
import nacl.signing
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature as EthBadSignature
from eth_utils import to_checksum_address

from twinledger.identity.did import split_did_url
from twinledger.identity.errors import BadSignature, UnresolvableDid, UnsupportedAlgorithm
from twinledger.identity.keys import ED25519, EIP191_SECP256K1

# didkit ships no type information; name its exception once with a type mypy can check.
DIDKIT_ERROR = cast("type[Exception]", didkit.DIDKitException)


@dataclass(frozen=True)
class VerificationKey:
    """A resolved verification method: ``key_id`` is the canonical DID URL, ``did`` its controller."""

    key_id: str
    did: str
    algorithm: str
    ed25519_public_key: bytes | None = None
    ethereum_address: str | None = None

    def verify(self, algorithm: str, message: bytes, signature: bytes) -> None:
        """Raise :class:`BadSignature` unless ``signature`` by this key covers ``message``."""
        if algorithm != self.algorithm:
            raise UnsupportedAlgorithm(
                f"algorithm {algorithm!r} does not fit the key {self.key_id} (expects {self.algorithm!r})"
            )
        if self.ed25519_public_key is not None:
            try:
                nacl.signing.VerifyKey(self.ed25519_public_key).verify(message, signature)
            except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
                raise BadSignature(f"the Ed25519 signature by {self.key_id} does not verify") from exc
            return
        if len(signature) != 65:
            raise BadSignature(f"an {EIP191_SECP256K1} signature is 65 bytes, got {len(signature)}")
        try:
            recovered = Account.recover_message(encode_defunct(primitive=message), signature=signature)
        except (EthBadSignature, ValueError, TypeError) as exc:
            raise BadSignature(f"the {EIP191_SECP256K1} signature by {self.key_id} is not recoverable") from exc
        if recovered != self.ethereum_address:
            raise BadSignature(f"the {EIP191_SECP256K1} signature was not made by {self.key_id}")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_from_method(method: dict[str, Any], key_id: str, did: str) -> VerificationKey:
    jwk = method.get("publicKeyJwk")
    if isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        public_key = _b64url_decode(str(jwk.get("x", "")))
        if len(public_key) != 32:
            raise UnresolvableDid(f"{key_id} resolves to an Ed25519 key of the wrong length")
        return VerificationKey(key_id=key_id, did=did, algorithm=ED25519, ed25519_public_key=public_key)
    account = method.get("blockchainAccountId")
    if method.get("type") == "EcdsaSecp256k1RecoveryMethod2020" and isinstance(account, str):
        namespace, _, address = account.rpartition(":")
        if not namespace.startswith("eip155:"):
            raise UnresolvableDid(f"{key_id} names a non-Ethereum account")
        return VerificationKey(
            key_id=key_id, did=did, algorithm=EIP191_SECP256K1, ethereum_address=to_checksum_address(address)
        )
    raise UnresolvableDid(
        f"{key_id} resolves to a verification method of type {method.get('type')!r}, which cannot sign requests",
        hint="sign with the DID's Ed25519 key (did:key) or its Ethereum account key (#blockchainAccountId)",
    )


class DidResolver:
    """Resolves DID URLs to :class:`VerificationKey` with didkit; keeps the last ``max_entries`` results."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max_entries = max_entries
        self._cache: OrderedDict[str, VerificationKey] = OrderedDict()

    async def resolve_key(self, did_url: str) -> VerificationKey:
        """Resolve ``did#fragment``; raise MalformedDid / UnsupportedDid / UnresolvableDid."""
        did, fragment = split_did_url(did_url)
        key_id = f"{did}#{fragment}"
        cached = self._cache.get(key_id)
        if cached is not None:
            self._cache.move_to_end(key_id)
            return cached
        key = await self._resolve_uncached(did, key_id)
        self._cache[key_id] = key
        if len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return key

    async def _resolve_uncached(self, did: str, key_id: str) -> VerificationKey:
        try:
            document = json.loads(await didkit.resolve_did(did, "{}"))
        except DIDKIT_ERROR as exc:
            raise UnresolvableDid(f"{did} does not resolve ({exc})") from exc
        for method in document.get("verificationMethod", []):
            if isinstance(method, dict) and method.get("id") == key_id:
                if key_id not in document.get("authentication", []) and key_id not in document.get(
                    "assertionMethod", []
                ):
                    raise UnresolvableDid(f"{key_id} is not an authentication or assertion key of {did}")
                return _key_from_method(method, key_id, did)
        raise UnresolvableDid(
            f"{did} has no verification method {key_id}",
            hint="the key id is the DID URL of the signing key, e.g. the signer's did_url",
        )


_default_resolver = DidResolver()


def default_resolver() -> DidResolver:
    """The process-wide resolver (its cache is shared by every verifier that does not bring its own)."""
    return _default_resolver
