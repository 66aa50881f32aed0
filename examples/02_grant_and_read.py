"""The owner grants a researcher READ for research (gasless, through the node's relayer); the researcher reads.

TWINLEDGER_PASSPHRASE=... python examples/02_grant_and_read.py TWIN_ID RESEARCHER_WALLET
"""

from __future__ import annotations

import sys

from _common import NODE, RPC, wallet

from twinledger.client import Client, parse_expiry

twin_id, researcher_name = int(sys.argv[1]), sys.argv[2]
researcher = wallet(researcher_name)
with Client(NODE, RPC, wallet()) as owner:
    result = owner.grant(
        twin_id, researcher.did_key.did, purpose="research", scopes="read", expiry=parse_expiry("30d"), relay=True
    )
    print(f"granted in {result.tx_hash} (relayed: {result.relayed})")
with Client(NODE, RPC, researcher) as reader:
    fetched = reader.fetch_snapshot(twin_id, purpose="research")
    print(f"snapshot #{fetched.seq}: {fetched.size} bytes, anchored: {fetched.verification.anchored}")
