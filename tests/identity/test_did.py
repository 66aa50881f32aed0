import asyncio
import json

import didkit
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from twinledger.identity import (
    DidKey,
    EthereumDid,
    MalformedDid,
    UnresolvableDid,
    UnsupportedDid,
    canonical_did,
    did_hash,
)
from twinledger.identity.resolve import DidResolver

ADDRESS = "0xB9C5714089478a327F09197987f16f9E5d936E8a"


def test_did_key_matches_didkit():
    jwk = didkit.generate_ed25519_key()
    key = DidKey.from_jwk(jwk)
    assert key.did == didkit.key_to_did("key", jwk)
    assert canonical_did(key.did) == key.did

    async def verification_method():
        return await didkit.key_to_verification_method("key", jwk)

    vm = asyncio.run(verification_method())
    assert key.did_url == vm


def test_did_hash_is_keccak_of_canonical_utf8():
    did = f"did:pkh:eip155:1:{ADDRESS.lower()}"
    expected = Web3.keccak(text=f"did:pkh:eip155:1:{ADDRESS}")
    assert did_hash(did) == bytes(expected)
    assert len(did_hash(did)) == 32


@pytest.mark.parametrize(
    "spelling",
    [
        f"did:pkh:eip155:1:{ADDRESS}",
        f"did:pkh:eip155:1:{ADDRESS.lower()}",
        "did:pkh:eip155:1:0x" + ADDRESS[2:].upper(),
    ],
)
def test_pkh_spellings_share_one_hash(spelling):
    assert canonical_did(spelling) == f"did:pkh:eip155:1:{ADDRESS}"
    assert did_hash(spelling) == did_hash(f"did:pkh:eip155:1:{ADDRESS}")


@pytest.mark.parametrize(
    "spelling",
    [
        f"did:ethr:{ADDRESS}",
        f"did:ethr:{ADDRESS.lower()}",
        f"did:ethr:mainnet:{ADDRESS}",
        f"did:ethr:0x1:{ADDRESS}",
        f"did:ethr:0x01:{ADDRESS.lower()}",
        f"did:ethr:0X1:{ADDRESS}".replace("0X1", "0x1"),
    ],
)
def test_ethr_spellings_share_one_canonical_form(spelling):
    assert canonical_did(spelling) == f"did:ethr:0x1:{ADDRESS}"


def test_ethr_other_network_is_explicit_hex():
    assert canonical_did(f"did:ethr:sepolia:{ADDRESS}") == f"did:ethr:0xaa36a7:{ADDRESS}"
    assert canonical_did(f"did:ethr:0xAA36A7:{ADDRESS}") == f"did:ethr:0xaa36a7:{ADDRESS}"


def test_pkh_and_ethr_of_one_address_stay_distinct():
    assert did_hash(f"did:pkh:eip155:1:{ADDRESS}") != did_hash(f"did:ethr:{ADDRESS}")


@pytest.mark.parametrize(
    ("did", "error", "reason"),
    [
        (" did:key:z6MkuS2JP7jY9EuMmP1G9edBeRYKH2Y52NGWwqu8uDzhAxPR", MalformedDid, "whitespace"),
        ("did:key:z6MkuS2JP7jY9EuMmP1G9edBeRYKH2Y52NGWwqu8uDzhAxPR\n", MalformedDid, "whitespace"),
        ("did:key:z6MkuS2JP7jY9EuMmP1G9edBeRYKH2Y52NGWwqu8uDzhAxPR#x", MalformedDid, "fragment"),
        (f"did:pkh:eip155:1:{ADDRESS}?service=x", MalformedDid, "query"),
        ("did:web:example.com", UnsupportedDid, "method 'web'"),
        ("did:a", MalformedDid, "8 bytes"),
        ("urn:uuid:123456789", MalformedDid, "starts with 'did:'"),
        ("did:key:z0OIl", MalformedDid, "base58btc"),
        ("did:key:uO2", MalformedDid, "base58btc"),
        ("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme", UnsupportedDid, "secp256k1-pub"),
        # one character too many or too few is a typo, not the key type its decoded prefix would name
        ("did:key:z6MkuS2JP7jY9EuMmP1G9edBeRYKH2Y52NGWwqu8uDzhAxPRx", MalformedDid, "added or lost"),
        ("did:key:z6MkuS2JP7jY9EuMmP1G9edBeRYKH2Y52NGWwqu8uDzhAxP", MalformedDid, "added or lost"),
        (f"did:pkh:eip155:1:{ADDRESS[:-1]}A", MalformedDid, "checksum"),
        (f"did:pkh:eip155:01:{ADDRESS}", MalformedDid, "leading zeros"),
        (f"did:pkh:solana:1:{ADDRESS}", UnsupportedDid, "namespace"),
        (f"did:pkh:eip155:1:{ADDRESS}00", MalformedDid, "40 hex"),
        (f"did:ethr:rinkeby:{ADDRESS}", UnsupportedDid, "network"),
        (f"did:ethr:0x0:{ADDRESS}", MalformedDid, "zero"),
        ("did:ethr:0x" + "02" * 33, UnsupportedDid, "public key"),
    ],
)
def test_bad_dids_are_refused_with_reason(did, error, reason):
    with pytest.raises(error, match=reason):
        canonical_did(did)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.integers(min_value=1, max_value=2**40))
def test_any_case_of_an_address_maps_to_checksum(raw, chain_id):
    address = "0x" + raw.hex()
    canonical = canonical_did(f"did:pkh:eip155:{chain_id}:{address}")
    assert canonical == canonical_did(f"did:pkh:eip155:{chain_id}:{address.upper().replace('0X', '0x')}")
    assert canonical == f"did:pkh:eip155:{chain_id}:{Web3.to_checksum_address(address)}"


def test_resolve_keys_through_didkit():
    resolver = DidResolver()
    key = DidKey.generate()
    account = Account.create()
    eth = EthereumDid(account, 1)

    async def resolve():
        ed = await resolver.resolve_key(key.did_url)
        pkh = await resolver.resolve_key(f"did:pkh:eip155:1:{account.address.lower()}#blockchainAccountId")
        ethr = await resolver.resolve_key(f"did:ethr:{account.address.lower()}#controller")
        return ed, pkh, ethr

    ed, pkh, ethr = asyncio.run(resolve())
    assert ed.ed25519_public_key == key.public_key
    assert ed.did == key.did
    assert pkh.did == eth.did
    assert pkh.ethereum_address == account.address
    assert ethr.did == f"did:ethr:0x1:{account.address}"
    assert ethr.ethereum_address == account.address
    ed.verify("ed25519", b"m", key.sign(b"m"))
    pkh.verify("eip191-secp256k1", b"m", eth.sign(b"m"))
    ethr.verify("eip191-secp256k1", b"m", eth.sign(b"m"))


def test_unknown_key_id_is_unresolvable():
    key = DidKey.generate()
    with pytest.raises(UnresolvableDid, match="no verification method"):
        asyncio.run(DidResolver().resolve_key(f"{key.did}#other"))
    with pytest.raises(MalformedDid, match="fragment"):
        asyncio.run(DidResolver().resolve_key(key.did))


def test_private_key_never_in_repr_or_errors():
    key = DidKey.generate()
    secret = json.loads(key.to_jwk())["d"]
    assert secret not in repr(key)
    bad = json.dumps({"kty": "OKP", "crv": "Ed25519", "d": secret + "AAAA"})
    with pytest.raises(MalformedDid) as info:
        DidKey.from_jwk(bad)
    assert secret not in str(info.value)
    assert DidKey.from_jwk(key.to_jwk()).did == key.did
