"""Offline verification: a twin's provenance checked against the chain, trusting no node.

Example::

    from twinledger.verify import verify_twin
    with open("twin-7.car", "rb") as car:
        report = verify_twin(ledger, 7, car)   # raises VerificationFailed at the first mismatch
    print(report.snapshots, report.receipts, report.batches, report.withheld)
"""

from twinledger.verify.bundle import (
    PROVENANCE_TYPE,
    Anchor,
    Entry,
    ProvenanceIndex,
    index_blocks,
    index_page,
    index_root,
    read_bundle,
    read_bundle_file,
    write_bundle,
)
from twinledger.verify.checks import VerificationFailed
from twinledger.verify.offline import VerifyReport, verify_bundle, verify_twin

__all__ = [
    "PROVENANCE_TYPE",
    "Anchor",
    "Entry",
    "ProvenanceIndex",
    "VerificationFailed",
    "VerifyReport",
    "index_blocks",
    "index_page",
    "index_root",
    "read_bundle",
    "read_bundle_file",
    "verify_bundle",
    "verify_twin",
    "write_bundle",
]
