"""Print a twin's audit trail, then verify its whole provenance against the chain (asyncio flavour).

TWINLEDGER_PASSPHRASE=... python examples/03_audit_and_verify.py TWIN_ID
"""

from __future__ import annotations

import asyncio
import sys

from _common import NODE, RPC, wallet

from twinledger.client import AsyncClient


async def main(twin_id: int) -> None:
    async with await AsyncClient.connect(NODE, RPC, wallet()) as tl:
        for entry in await tl.audit(twin_id):
            print(entry.time, entry.kind, entry.proof.get("txHash"))
        report = await tl.verify(twin_id, allow_pending=True, on_check=lambda line: print("  ok:", line))
        print(f"verified {report.snapshots} snapshots and {report.receipts} receipts")


asyncio.run(main(int(sys.argv[1])))
