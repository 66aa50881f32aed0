"""Register a twin with a device, push a reading as the device, read it back verified.

TWINLEDGER_PASSPHRASE=... python examples/01_register_and_push.py
"""

from __future__ import annotations

import json

from _common import NODE, RPC, wallet

from twinledger.client import Client
from twinledger.identity import DidKey

device = DidKey.generate()  # a real device keeps this key in its secure element
with Client(NODE, RPC, wallet()) as tl:
    twin = tl.register_twin("asset", device_did=device.did)
    print(f"twin {twin.twin_id} registered in {twin.tx_hash}")
    pushed = tl.push_snapshot(twin.twin_id, json.dumps({"temperature": 71.5}).encode(), as_device=device)
    print(f"snapshot #{pushed.seq}: manifest {pushed.manifest_cid}")
    fetched = tl.fetch_snapshot(twin.twin_id)
    print(f"read back {fetched.data!r}, producer {fetched.verification.producer} verified")
