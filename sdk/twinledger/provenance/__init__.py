"""Provenance records shared by the node (which writes them) and `twinledger verify` (which checks them):
snapshot manifests, access receipts, denial records, and the Merkle leaves that anchor them on chain."""

from twinledger.provenance.records import (
    DENIAL_TYPE,
    RECEIPT_GENESIS,
    RECEIPT_LEAF_TYPES,
    SNAPSHOT_LEAF_TYPES,
    JsonBlock,
    json_block,
    read_json_block,
    receipt_digest,
    receipt_leaf,
    recovery_key_binding,
    recovery_key_message,
    snapshot_leaf,
)

__all__ = [
    "DENIAL_TYPE",
    "RECEIPT_GENESIS",
    "RECEIPT_LEAF_TYPES",
    "SNAPSHOT_LEAF_TYPES",
    "JsonBlock",
    "json_block",
    "read_json_block",
    "receipt_digest",
    "receipt_leaf",
    "recovery_key_binding",
    "recovery_key_message",
    "snapshot_leaf",
]
