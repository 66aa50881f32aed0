"""The wallet: an Ethereum key (eth-account keystore v3, scrypt) and an Ed25519 did:key, under TWINLEDGER_HOME.

Example::

    from twinledger.wallet import WalletStore
    store = WalletStore()                       # $TWINLEDGER_HOME/wallets, default ~/.twinledger/wallets
    info = store.create("alice", "correct horse battery staple")
    wallet = store.unlock("alice", "correct horse battery staple")
    wallet.address, wallet.did_key.did, wallet.pkh(31337)
"""

from twinledger.wallet.store import (
    KDF_N_ENV,
    PASSPHRASE_ENV,
    Wallet,
    WalletInfo,
    WalletStore,
    read_passphrase_file,
)

__all__ = ["KDF_N_ENV", "PASSPHRASE_ENV", "Wallet", "WalletInfo", "WalletStore", "read_passphrase_file"]
