"""The account that signs transactions: env var, keystore file, or anvil's dev key on a local chain."""

from __future__ import annotations

import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from twinledger.chain.localchain import DEFAULT_CHAIN_ID, DEV_KEYS
from twinledger.errors import AuthError, InvalidInput, NotFound


def load_keystore(path: Path, passphrase: str) -> LocalAccount:
    """Decrypt an eth-account keystore v3 file (a damaged one, or not one, is said so: not a wrong passphrase)."""
    from twinledger.wallet.store import read_keystore

    data = read_keystore(Path(path))
    try:
        key = Account.decrypt(data, passphrase)
    except ValueError:
        raise AuthError(f"wrong passphrase for keystore {path}", hint="check TWINLEDGER_PASSPHRASE") from None
    return Account.from_key(key)


def signer_from_env(chain_id: int | None = None) -> LocalAccount | None:
    """The configured signer, or None.

    `TWINLEDGER_PRIVATE_KEY` (or the file `TWINLEDGER_PRIVATE_KEY_FILE` names), else `TWINLEDGER_KEYSTORE` with
    `TWINLEDGER_PASSPHRASE`, else on a local dev chain (chain id 31337) anvil's first dev key.
    """
    key = os.environ.get("TWINLEDGER_PRIVATE_KEY")
    key_file = os.environ.get("TWINLEDGER_PRIVATE_KEY_FILE")
    if not key and key_file:  # a Docker/Kubernetes secret file keeps the key out of the environment
        try:
            key = Path(key_file).read_text().strip()
        except OSError as error:
            raise NotFound(f"cannot read TWINLEDGER_PRIVATE_KEY_FILE {key_file}: {error.strerror}") from None
    if key:
        try:
            return Account.from_key(key)
        except ValueError:
            raise InvalidInput("TWINLEDGER_PRIVATE_KEY is not a valid private key", hint="32 bytes as hex") from None
    keystore = os.environ.get("TWINLEDGER_KEYSTORE")
    if keystore:
        passphrase = os.environ.get("TWINLEDGER_PASSPHRASE")
        if passphrase is None:
            raise AuthError("TWINLEDGER_KEYSTORE is set but TWINLEDGER_PASSPHRASE is not")
        return load_keystore(Path(keystore), passphrase)
    if chain_id == DEFAULT_CHAIN_ID:
        return Account.from_key(DEV_KEYS[0])
    return None
