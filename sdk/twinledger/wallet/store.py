"""Wallet files: one directory per wallet, everything in it mode 0600, the directory 0700.

``wallets/<name>/ethereum.json`` is a plain eth-account keystore v3 (scrypt), so any Ethereum tool (and
``--keystore`` / ``TWINLEDGER_KEYSTORE``) can use it. ``wallets/<name>/didkey.json`` holds the Ed25519 seed of the
did:key in the same keystore v3 format (scrypt + AES-128-CTR + MAC) under the same passphrase, with a ``did``
member instead of ``address``. ``wallets/<name>/wallet.json`` holds only public values (name, address, DID).
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinledger import config
from twinledger.errors import AuthError, InvalidInput, NotFound
from twinledger.private_files import check_private, write_private

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from twinledger.identity import DidKey, EthereumDid

# eth-account, eth-keyfile and the identity package (didkit, PyNaCl, web3) are imported by the methods that create
# or decrypt keys: listing wallets and reading their public files (`twinledger wallet list`) needs none of them.

PASSPHRASE_ENV = "TWINLEDGER_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
# Test-only: a lower scrypt work factor. Unset, eth-account's default (n = 2**18) is used.
KDF_N_ENV = "TWINLEDGER_KDF_N"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSPHRASE = 8


@dataclass(frozen=True)
class WalletInfo:
    """The public side of a wallet: what `wallet list` and `wallet show` print."""

    name: str
    address: str
    did: str
    created: int
    path: Path

    def pkh(self, chain_id: int) -> str:
        """The did:pkh of the Ethereum account on `chain_id` (how the node knows an owner)."""
        return f"did:pkh:eip155:{chain_id}:{self.address}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "did": self.did,
            "created": self.created,
            "path": str(self.path),
        }


@dataclass(frozen=True)
class Wallet:
    """An unlocked wallet: the Ethereum account that signs transactions and the did:key that signs requests,
    receives snapshot keys (the owner's recovery key) and issues consent receipts."""

    info: WalletInfo
    account: LocalAccount
    did_key: DidKey

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def address(self) -> str:
        return str(self.account.address)

    def ethereum_did(self, chain_id: int) -> EthereumDid:
        from twinledger.identity import EthereumDid

        return EthereumDid(self.account, chain_id)

    def pkh(self, chain_id: int) -> str:
        return self.info.pkh(chain_id)

    def __repr__(self) -> str:  # never the keys
        return f"Wallet({self.name!r}, {self.address}, {self.did_key.did})"


def read_passphrase_file(path: Path) -> str:
    """The first line of `path` (trailing newline dropped), refusing files others can read."""
    check_private(path, "passphrase file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"the passphrase file {path} is not text", hint="write the passphrase as its first line (UTF-8)"
        ) from None
    return text.splitlines()[0] if text else ""


def read_keystore(path: Path) -> dict[str, Any]:
    """A keystore v3 file's JSON, refused (not taken for a wrong passphrase) when it is damaged or not one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"no keystore at {path}") from None
    except (ValueError, UnicodeDecodeError):
        damaged = f"{path} is not a keystore: not JSON (truncated or damaged?)"
        raise InvalidInput(damaged, hint="restore it from a backup; no passphrase opens a damaged file") from None
    crypto = data.get("crypto", data.get("Crypto")) if isinstance(data, dict) else None
    if not isinstance(crypto, dict) or not {"cipher", "ciphertext", "kdf", "mac"} <= crypto.keys():
        raise InvalidInput(f"{path} is not a keystore v3 file: it has no complete 'crypto' section",
                           hint="give the keystore (UTC--… file) your Ethereum wallet exported")  # fmt: skip
    return data


def _kdf_n() -> int | None:
    raw = os.environ.get(KDF_N_ENV)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 2 or int(raw) & (int(raw) - 1):
        raise InvalidInput(f"{KDF_N_ENV}={raw} is not a power of two", hint=f"unset {KDF_N_ENV} (it is for tests)")
    return int(raw)


def _write_private(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2))


class WalletStore:
    """The wallets under `home` (default `$TWINLEDGER_HOME`, else `~/.twinledger`)."""

    def __init__(self, home: Path | None = None) -> None:
        self.root = (home or config.home()) / "wallets"

    def _dir(self, name: str) -> Path:
        if not NAME.match(name):
            raise InvalidInput(
                f"{name!r} is not a wallet name", hint="use letters, digits, '.', '_' or '-' (at most 64)"
            )
        return self.root / name

    # ------------------------------------------------------------------ create / import

    def create(
        self, name: str, passphrase: str, *, private_key: bytes | None = None, did_key: DidKey | None = None
    ) -> WalletInfo:
        """Create wallet `name` with a fresh (or the given) Ethereum key and did:key, both under `passphrase`.

        >>> WalletStore(tmp).create("alice", "a long passphrase")  # doctest: +SKIP
        WalletInfo(name='alice', address='0x…', did='did:key:z6Mk…', …)
        """
        from eth_account import Account

        from twinledger.identity import DidKey

        directory = self._dir(name)
        if len(passphrase) < MIN_PASSPHRASE:
            raise InvalidInput(
                f"the passphrase is shorter than {MIN_PASSPHRASE} characters", hint="choose a longer passphrase"
            )
        if directory.exists():
            raise InvalidInput(
                f"a wallet named {name!r} exists already at {directory}",
                hint="pick another --name, or `twinledger wallet show --name " + name + "`",
            )
        account = Account.from_key(private_key) if private_key is not None else Account.create()
        key = did_key or DidKey.generate()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{name}."))  # 0700; renamed when complete
        try:
            self._write_keys(staging, account, key, passphrase)
            info = WalletInfo(name, str(account.address), key.did, int(time.time()), directory)
            _write_private(staging / "wallet.json", {k: v for k, v in info.as_dict().items() if k != "path"})
            os.rename(staging, directory)
        except BaseException:
            for child in staging.glob("*"):
                child.unlink()
            staging.rmdir()
            raise
        return info

    def _write_keys(self, directory: Path, account: LocalAccount, key: DidKey, passphrase: str) -> None:
        import eth_keyfile
        from eth_account import Account

        n = _kdf_n()
        ethereum = Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=n)
        seed = base64.urlsafe_b64decode(json.loads(key.to_jwk())["d"] + "==")  # the 32-byte Ed25519 seed
        didkey = eth_keyfile.create_keyfile_json(seed, passphrase.encode(), kdf="scrypt", iterations=n)
        didkey.pop("address", None)  # eth_keyfile derives a secp256k1 address; meaningless for an Ed25519 seed
        didkey["did"] = key.did
        _write_private(directory / "ethereum.json", dict(ethereum))
        _write_private(directory / "didkey.json", didkey)

    # ------------------------------------------------------------------ read

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "wallet.json").is_file())

    def info(self, name: str) -> WalletInfo:
        directory = self._dir(name)
        path = directory / "wallet.json"
        if not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise NotFound(
                f"no wallet named {name!r} in {self.root} (wallets: {known})",
                hint="create one with `twinledger wallet create --name " + name + "`",
            )
        try:
            data = json.loads(path.read_text())
            return WalletInfo(data["name"], data["address"], data["did"], int(data["created"]), directory)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise InvalidInput(
                f"wallet {name!r} is damaged: {path} is not the wallet file twinledger wrote",
                hint=f"restore {directory} from a backup (its keys are ethereum.json and didkey.json)",
            ) from None

    def list(self) -> list[WalletInfo]:
        return [self.info(n) for n in self.names()]

    def survey(self) -> tuple[Sequence[WalletInfo], Sequence[InvalidInput]]:
        """Every wallet that can be read, and what is wrong with each that cannot (one damaged file must not hide
        the others)."""
        readable: list[WalletInfo] = []
        damaged: list[InvalidInput] = []
        for name in self.names():
            try:
                readable.append(self.info(name))
            except InvalidInput as error:
                damaged.append(error)
        return readable, damaged

    def unlock(self, name: str, passphrase: str) -> Wallet:
        """Decrypt both keys. Wrong passphrase → AuthError; files others can read → AuthError (nothing decrypted)."""
        import eth_keyfile
        from eth_account import Account

        from twinledger.identity import DidKey

        info = self.info(name)
        for file in ("ethereum.json", "didkey.json"):
            check_private(info.path / file, "keystore")
        ethereum, didkey = (read_keystore(info.path / file) for file in ("ethereum.json", "didkey.json"))
        try:
            eth_key = Account.decrypt(ethereum, passphrase)
            seed = eth_keyfile.decode_keyfile_json(didkey, passphrase.encode())
        except ValueError:
            raise AuthError(
                f"wrong passphrase for wallet {name!r}",
                hint=f"check the passphrase ({PASSPHRASE_ENV}, --passphrase-file or the prompt)",
            ) from None
        account = Account.from_key(eth_key)
        key = DidKey(bytes(seed))
        if account.address != info.address or key.did != info.did:
            raise AuthError(
                f"wallet {name!r} is inconsistent: its keys do not match wallet.json",
                hint="restore the wallet directory from a backup",
            )
        return Wallet(info, account, key)

    def change_passphrase(self, name: str, old: str, new: str) -> WalletInfo:
        """Re-encrypt both keys under `new` (each file replaced atomically, after both decrypted with `old`)."""
        wallet = self.unlock(name, old)
        if len(new) < MIN_PASSPHRASE:
            raise InvalidInput(f"the new passphrase is shorter than {MIN_PASSPHRASE} characters")
        self._write_keys(wallet.info.path, wallet.account, wallet.did_key, new)
        return wallet.info
