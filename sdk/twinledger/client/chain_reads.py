"""What the node's index answers about twins and grants, read from the chain alone: for an owner whose node is down.

Events are read with the paged log scanner from the deployment block (never from block 0, never one unbounded
range: public providers cap both), filtered by indexed topics so a read costs pages of the twin's or owner's own
logs, not of everyone's. What is live is then asked of the contract itself (`grantOf`, `twinOf`, `ownerOf`), so a
log a provider dropped or reordered cannot make a revoked grant look live.
"""

from __future__ import annotations

from twinledger.chain.client import ChainEvent
from twinledger.chain.ledger import TwinLedger
from twinledger.chain.logs import LogScanner, event_filter
from twinledger.chain.types import Scope
from twinledger.client.results import Grant, Twin


def _events(ledger: TwinLedger, name: str, deploy_block: int, *indexed: int | str | None) -> list[ChainEvent]:
    scanner = LogScanner(ledger.client.w3)
    found = []
    for entry in scanner.logs(event_filter(ledger.contract, name, *indexed), deploy_block):
        event = ledger.events.decode(entry)
        if event is not None:
            found.append(event)
    return found


def twin(ledger: TwinLedger, twin_id: int, deploy_block: int) -> Twin:
    """The twin's record, with the device DID its last DeviceBound event named."""
    record = ledger.twin(twin_id)
    bound = _events(ledger, "DeviceBound", deploy_block, twin_id)
    device = str(bound[-1].args["deviceDid"]) if bound else ""
    # how far it is anchored is the node's to say (most snapshots are anchored in batches, which name no twin)
    return Twin(twin_id, record.owner, record.kind.name.lower(), record.parent_id, device or None, None)


def twins_of(ledger: TwinLedger, owner: str, deploy_block: int) -> list[Twin]:
    """The twins `owner` holds now: those ever transferred (or minted) to it, kept where it is still the owner."""
    received = {int(event.args["tokenId"]) for event in _events(ledger, "Transfer", deploy_block, None, owner)}
    found = []
    for twin_id in sorted(received):
        record = ledger.twin(twin_id)
        if record.owner == owner:
            found.append(Twin(twin_id, record.owner, record.kind.name.lower(), record.parent_id, None, None))
    return found


def grants(ledger: TwinLedger, twin_id: int, deploy_block: int) -> list[Grant]:
    """Every grant the twin's events record, the latest per (DID, purpose), with its revocation if one followed."""
    events = _events(ledger, "Granted", deploy_block, twin_id) + _events(ledger, "Revoked", deploy_block, twin_id)
    events.sort(key=lambda e: (e.block_number, e.log_index))
    latest: dict[tuple[bytes, bytes], tuple[ChainEvent, str | None]] = {}
    for event in events:
        key = (bytes(event.args["didHash"]), bytes(event.args["purpose"]))
        if event.name == "Granted":
            latest[key] = (event, None)
        elif key in latest:
            latest[key] = (latest[key][0], event.tx_hash)
    record = ledger.twin(twin_id)
    now = ledger.client.chain_time()
    found = []
    for (_, purpose), (granted, revoked_tx) in latest.items():
        args = granted.args
        on_chain = ledger.grant_of(twin_id, str(args["did"]), purpose)
        live = on_chain.exists and on_chain.period == record.period and on_chain.expiry > now and revoked_tx is None
        found.append(
            Grant(
                twin_id,
                str(args["did"]),
                "0x" + purpose.hex(),
                Scope(int(args["scopes"])).names(),
                int(args["expiry"]),
                on_chain.grantor if on_chain.exists else "",
                live,
                granted.tx_hash,
                revoked_tx,
            )
        )
    return found
