"""Key holders: the private half of a DID, used by the HTTP signer, record signing and snapshot decryption.

:class:`DidKey` is an Ed25519 did:key (devices, services, people, the owner's recovery key);
:class:`EthereumDid` is a did:pkh:eip155 backed by an eth-account ``LocalAccount``. Both sign raw bytes; the
``algorithm`` names what a verifier must run. Neither ``repr`` nor any error ever includes the private key.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Final, Protocol, runtime_checkable

import didkit
import nacl.bindings
import nacl.public
import nacl.signing
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from twinledger.identity.did import canonical_did, did_key_from_public_key, parse_did
from twinledger.identity.errors import MalformedDid

ED25519: Final = "ed25519"
# RFC 9421 registers no algorithm for secp256k1 recoverable signatures. This one is EIP-191 personal_sign
# over the signature base (65 bytes r||s||v), checked by recovering the address and comparing it to the
# did:pkh account.
EIP191_SECP256K1: Final = "eip191-secp256k1"


@runtime_checkable
class DidSigner(Protocol):
    """Anything that can sign bytes as a DID: what the HTTP signer and record signing take."""

    @property
    def did(self) -> str: ...

    @property
    def did_url(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DidKey:
    """An Ed25519 did:key with its private key."""

    algorithm = ED25519

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise MalformedDid("an Ed25519 private key seed is 32 bytes")
        self._signing_key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._signing_key.verify_key)
        self.did: str = did_key_from_public_key(self.public_key)
        self.did_url: str = f"{self.did}#{self.did.removeprefix('did:key:')}"
        self._x25519: nacl.public.PrivateKey | None = None

    @classmethod
    def generate(cls) -> DidKey:
        """A fresh key from didkit's generator (the OS CSPRNG)."""
        return cls.from_jwk(didkit.generate_ed25519_key())

    @classmethod
    def from_jwk(cls, jwk: str) -> DidKey:
        """Load an Ed25519 private JWK (the form didkit and the wallet store)."""
        try:
            fields = json.loads(jwk)
            if fields.get("kty") != "OKP" or fields.get("crv") != "Ed25519" or "d" not in fields:
                raise ValueError("not an Ed25519 private JWK")
            key = cls(_b64url_decode(fields["d"]))
        except (ValueError, TypeError, AttributeError) as exc:
            # The JWK holds the secret: name the problem, never echo the input.
            raise MalformedDid(
                "not an Ed25519 private JWK", hint="export the key with `twinledger wallet` or didkit"
            ) from exc
        if "x" in fields and _b64url_decode(fields["x"]) != key.public_key:
            raise MalformedDid("the JWK's public part does not belong to its private part")
        return key

    def to_jwk(self) -> str:
        """The private JWK didkit signs with. Contains the secret: store it like one (mode 0600)."""
        return json.dumps(
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": _b64url(self.public_key),
                "d": _b64url(bytes(self._signing_key)),
            }
        )

    def sign(self, data: bytes) -> bytes:
        return self._signing_key.sign(data).signature

    def x25519_private_key(self) -> nacl.public.PrivateKey:
        """The X25519 key that opens snapshot keys sealed to this DID (libsodium's Ed25519→X25519 map).

        Converted once per key object: a node opens a sealed key on every read, and the conversion (a hash and
        a field inversion) cost more than the unsealing itself. The result lives exactly as long as the Ed25519
        key it derives from, in the same object."""
        if self._x25519 is None:
            sk64 = bytes(self._signing_key) + self.public_key
            self._x25519 = nacl.public.PrivateKey(nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(sk64))
        return self._x25519

    def x25519_public_key(self) -> nacl.public.PublicKey:
        return x25519_public_key_of(self.did)

    def __repr__(self) -> str:
        return f"DidKey({self.did!r})"


@functools.lru_cache(maxsize=1024)  # every push seals to the same few DIDs (node, owners' recovery keys)
def x25519_public_key_of(did: str) -> nacl.public.PublicKey:
    """The X25519 public key snapshots are sealed to for an Ed25519 did:key (no private key needed)."""
    parsed = parse_did(did)
    if parsed.public_key is None:
        raise MalformedDid(
            f"{parsed.method} DIDs have no X25519 key to seal to",
            hint="seal snapshot keys to an Ed25519 did:key",
        )
    return nacl.public.PublicKey(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(parsed.public_key))


class EthereumDid:
    """A did:pkh:eip155 for an Ethereum account; signs with EIP-191 ``personal_sign``."""

    algorithm = EIP191_SECP256K1

    def __init__(self, account: LocalAccount, chain_id: int) -> None:
        self._account = account
        self.chain_id = chain_id
        self.address: str = account.address
        self.did: str = canonical_did(f"did:pkh:eip155:{chain_id}:{account.address}")
        self.did_url: str = f"{self.did}#blockchainAccountId"

    def sign(self, data: bytes) -> bytes:
        signed = self._account.sign_message(encode_defunct(primitive=data))
        return bytes(signed.signature)

    def __repr__(self) -> str:
        return f"EthereumDid({self.did!r})"
