"""Merkle trees in OpenZeppelin's StandardMerkleTree format.

OpenZeppelin's `MerkleProof` verifies our proofs on chain and `@openzeppelin/merkle-tree` off chain.

Written here because no maintained Python library implements this exact format: leaves are
`keccak256(keccak256(abi.encode(types, values)))` (double hashing against second-preimage attacks),
sorted by hash, laid out as a complete binary tree in an array (leaves at the end, in reverse), and pairs
hashed in sorted order so proofs need no left/right flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak

from twinledger.errors import InvalidInput


def leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    return keccak(keccak(abi_encode(list(types), list(values))))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """What OpenZeppelin's `MerkleProof.verify(proof, root, leaf)` computes."""
    return process_proof(leaf, proof) == root


@dataclass(frozen=True)
class StandardMerkleTree:
    """A tree over `values`, each encoded as the ABI `types`."""

    types: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    tree: tuple[bytes, ...]
    # tree index of each value's leaf, in the order the values were given
    leaf_index: tuple[int, ...]

    @classmethod
    def of(cls, values: Sequence[Sequence[Any]], types: Sequence[str]) -> StandardMerkleTree:
        if not values:
            raise InvalidInput("a Merkle tree needs at least one leaf")
        hashed = [(leaf_hash(types, v), i) for i, v in enumerate(values)]
        hashed.sort(key=lambda pair: pair[0])
        size = 2 * len(hashed) - 1
        tree: list[bytes] = [b""] * size
        positions = [0] * len(values)
        for rank, (digest, original) in enumerate(hashed):
            index = size - 1 - rank
            tree[index] = digest
            positions[original] = index
        for index in range(size - 1 - len(hashed), -1, -1):
            tree[index] = hash_pair(tree[2 * index + 1], tree[2 * index + 2])
        return cls(tuple(types), tuple(tuple(v) for v in values), tuple(tree), tuple(positions))

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def leaf(self, i: int) -> bytes:
        return self.tree[self.leaf_index[i]]

    def proof(self, i: int) -> list[bytes]:
        """Sibling hashes from the leaf of value `i` up to the root."""
        index = self.leaf_index[i]
        path = []
        while index > 0:
            sibling = index - 1 if index % 2 == 0 else index + 1
            path.append(self.tree[sibling])
            index = (index - 1) // 2
        return path

    def dump(self) -> dict[str, Any]:
        """The JSON shape `StandardMerkleTree.load()` of @openzeppelin/merkle-tree reads."""
        return {
            "format": "standard-v1",
            "leafEncoding": list(self.types),
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [
                {"value": [_json_value(x) for x in value], "treeIndex": self.leaf_index[i]}
                for i, value in enumerate(self.values)
            ],
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value
