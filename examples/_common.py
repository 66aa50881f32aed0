"""Shared by the examples: where the node and chain are, and the wallet (env: TWINLEDGER_WALLET, _PASSPHRASE)."""

from __future__ import annotations

import os

from twinledger.wallet import Wallet, WalletStore

NODE = os.environ.get("TWINLEDGER_NODE_URL", "http://127.0.0.1:8700")
RPC = os.environ.get("TWINLEDGER_RPC_URL", "http://127.0.0.1:8545")


def wallet(name: str | None = None) -> Wallet:
    return WalletStore().unlock(
        name or os.environ.get("TWINLEDGER_WALLET", "default"), os.environ["TWINLEDGER_PASSPHRASE"]
    )
