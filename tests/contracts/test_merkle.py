"""Our StandardMerkleTree equals @openzeppelin/merkle-tree's; OpenZeppelin's MerkleProof verifies it."""

from __future__ import annotations

import json
import subprocess

import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from twinledger import merkle
from twinledger.chain.client import ChainClient
from twinledger.errors import InvalidInput

TYPES = ["uint256", "bytes32", "string"]
SCRIPT = REPO / "tests" / "contracts" / "js" / "merkle_tree.mjs"


def _js(payload: dict) -> dict:
    out = subprocess.run(
        ["node", str(SCRIPT)], input=json.dumps(payload), capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(out.stdout)


def _values(n: int) -> list[list]:
    return [[i * 7 + 1, keccak(str(i).encode()), f"bafy-{i}"] for i in range(n)]


@pytest.mark.parametrize("count", [1, 2, 3, 8, 13])
def test_root_and_proofs_match_openzeppelin_merkle_tree(count):
    values = _values(count)
    tree = merkle.StandardMerkleTree.of(values, TYPES)
    js = _js({"values": [[str(v[0]), "0x" + v[1].hex(), v[2]] for v in values], "types": TYPES})
    assert "0x" + tree.root.hex() == js["root"]
    assert [["0x" + p.hex() for p in tree.proof(i)] for i in range(count)] == js["proofs"]
    assert all(merkle.verify(tree.root, tree.leaf(i), tree.proof(i)) for i in range(count))


def test_openzeppelin_loads_our_dump():
    tree = merkle.StandardMerkleTree.of(_values(5), TYPES)
    js = _js({"dump": tree.dump()})
    assert js["root"] == "0x" + tree.root.hex() and js["verified"] == [True] * 5


def test_openzeppelin_merkle_proof_verifies_on_chain(anvil, accounts):
    client = ChainClient(anvil, accounts[0])
    address, _ = client.deploy("MerkleVerifier")
    verifier = client.contract("MerkleVerifier", address)
    tree = merkle.StandardMerkleTree.of(_values(6), TYPES)
    for i in range(6):
        assert verifier.functions.verify(tree.proof(i), tree.root, tree.leaf(i)).call()
    assert not verifier.functions.verify(tree.proof(0), tree.root, tree.leaf(1)).call()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True), st.data())
def test_every_leaf_proves_and_a_foreign_leaf_does_not(digests, data):
    tree = merkle.StandardMerkleTree.of([[d] for d in digests], ["bytes32"])
    i = data.draw(st.integers(0, len(digests) - 1))
    assert merkle.verify(tree.root, tree.leaf(i), tree.proof(i))
    assert not merkle.verify(
        tree.root, merkle.leaf_hash(["bytes32"], [b"\xff" * 33][:0] or [keccak(b"x")]), tree.proof(i)
    )


def test_empty_tree_is_refused():
    with pytest.raises(InvalidInput):
        merkle.StandardMerkleTree.of([], TYPES)
