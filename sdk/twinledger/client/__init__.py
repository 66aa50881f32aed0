"""The twinledger SDK for apps: `Client` (sync) and `AsyncClient` (asyncio), typed results, and errors.

Example::

    from twinledger.client import Client, parse_expiry
    from twinledger.wallet import WalletStore

    wallet = WalletStore().unlock("alice", passphrase)
    with Client("http://127.0.0.1:8700", "http://127.0.0.1:8545", wallet) as tl:
        twin = tl.register_twin("asset")
        tl.push_snapshot(twin.twin_id, b"...")
        tl.grant(twin.twin_id, "did:key:z6Mk...", purpose="research", scopes="read", expiry=parse_expiry("30d"))

Errors are `twinledger.errors` subclasses with a `hint`: NotOwner, ConsentDenied (AuthError), NotFound,
InvalidInput, Conflict, NodeUnavailable (Unavailable), VerificationFailed (IntegrityError).
"""

from twinledger.client.aio import AsyncClient
from twinledger.client.errors import Conflict, ConsentDenied, NodeUnavailable, NotOwner, VerificationFailed
from twinledger.client.expiry import parse_expiry
from twinledger.client.results import (
    Anchor,
    AuditEntry,
    ConsentResult,
    FetchedSnapshot,
    Grant,
    NodeInfo,
    Snapshot,
    Twin,
    TxOutcome,
    Verification,
)
from twinledger.client.sync import Client

__all__ = [
    "Anchor",
    "AsyncClient",
    "AuditEntry",
    "Client",
    "Conflict",
    "ConsentDenied",
    "ConsentResult",
    "FetchedSnapshot",
    "Grant",
    "NodeInfo",
    "NodeUnavailable",
    "NotOwner",
    "Snapshot",
    "Twin",
    "TxOutcome",
    "Verification",
    "VerificationFailed",
    "parse_expiry",
]
