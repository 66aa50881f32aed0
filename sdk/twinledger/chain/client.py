"""A connection to an EVM chain and an optional signing account: transactions, reverts, events."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from twinledger.chain import artifacts
from twinledger.chain.errors import translate
from twinledger.errors import InvalidInput, Unavailable

GAS_MARGIN = 1.2
GAS_HEADROOM = 20_000


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract event with where it sits on the chain."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    events: list[ChainEvent] = field(default_factory=list)

    def event(self, name: str) -> ChainEvent:
        for ev in self.events:
            if ev.name == name:
                return ev
        raise LookupError(f"transaction {self.tx_hash} emitted no {name} event")


class EventDecoder:
    """Decodes the logs of the given contracts by topic0."""

    def __init__(self, contracts: Iterable[Contract]) -> None:
        self._by_topic: dict[tuple[str, bytes], Any] = {}
        for contract in contracts:
            for item in contract.abi:
                if item["type"] != "event":
                    continue
                event = contract.events[item["name"]]()
                topic = Web3.keccak(text=f"{item['name']}({','.join(_canonical_type(i) for i in item['inputs'])})")
                self._by_topic[(contract.address.lower(), bytes(topic))] = event

    def decode(self, log: Any) -> ChainEvent | None:
        topics = log["topics"]
        if not topics:
            return None
        event = self._by_topic.get((str(log["address"]).lower(), bytes(topics[0])))
        if event is None:
            return None
        data = event.process_log(log)
        return ChainEvent(
            name=data["event"],
            args={k: _plain(v) for k, v in data["args"].items()},
            address=str(log["address"]),
            block_number=int(log["blockNumber"]),
            block_hash="0x" + bytes(log["blockHash"]).hex(),
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            log_index=int(log["logIndex"]),
        )

    def decode_all(self, logs: Iterable[Any]) -> list[ChainEvent]:
        return [ev for ev in (self.decode(log) for log in logs) if ev is not None]


def _canonical_type(param: Any) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_canonical_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return str(param["type"])


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class ChainClient:
    """web3 connection plus the account that signs (None: read-only)."""

    def __init__(self, rpc_url: str, account: LocalAccount | None = None, *, timeout: float = 30.0) -> None:
        self.rpc_url = rpc_url
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        self.account = account
        self._send_lock: AbstractContextManager[Any] = threading.Lock()
        try:
            self.chain_id = int(self.w3.eth.chain_id)
        except Exception as error:  # connection refused, DNS, timeouts: all mean the same to the user
            raise Unavailable(
                f"cannot reach the chain at {rpc_url}: {error.__class__.__name__}",
                hint="start a local one with `twinledger chain up` or pass --rpc-url",
            ) from None

    def share_send_lock(self, lock: AbstractContextManager[Any]) -> None:
        """Serialise sends with other processes that use the same account: each takes its nonce from the chain's
        pending count, so two sends must never overlap."""
        self._send_lock = lock

    @classmethod
    def with_key(cls, rpc_url: str, private_key: str | bytes) -> ChainClient:
        return cls(rpc_url, Account.from_key(private_key))

    @property
    def address(self) -> str:
        if self.account is None:
            raise InvalidInput(
                "this operation sends a transaction but no account is configured",
                hint="set TWINLEDGER_PRIVATE_KEY or use a wallet (--name)",
            )
        return str(self.account.address)

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.load(name).abi)

    def call(self, fn: ContractFunction) -> Any:
        """A read-only call; a revert becomes a ContractRevert."""
        try:
            return fn.call()
        except (ContractCustomError, ContractLogicError, Web3RPCError) as error:
            raise translate(error) from None

    def send(
        self,
        fn: ContractFunction | ContractConstructor,
        decoder: EventDecoder | None = None,
        *,
        value: int = 0,
    ) -> TxResult:
        """Sign and send a contract call, wait for it, and decode its events.

        A revert raises ContractRevert before anything is sent: gas estimation runs the call first.
        """
        account = self.account
        if account is None:
            raise InvalidInput(
                "no account configured to send transactions",
                hint="set TWINLEDGER_PRIVATE_KEY or use a wallet (--name)",
            )
        with self._send_lock:
            try:
                tx: Any = fn.build_transaction(
                    {  # type: ignore[arg-type]
                        "from": account.address,
                        "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                        "chainId": self.chain_id,
                        "value": value,
                    }
                )
            except (ContractCustomError, ContractLogicError, Web3RPCError) as error:
                raise _refusal(translate(error), account.address) from None
            # The estimate runs against the latest block; the transaction lands in a later one whose timestamp
            # (and so what it writes, e.g. a grant's grantedAt) differs. A margin keeps such a transaction from
            # running out of gas; only the gas actually used is paid.
            tx["gas"] = int(tx["gas"] * GAS_MARGIN) + GAS_HEADROOM
            signed = account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as error:
                raise _refusal(error, account.address) from None
        return self.wait(tx_hash, decoder)

    def send_raw(self, build: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
        """Sign and send a plain transaction built by `build(base)`; returns the hash."""
        account = self.account
        if account is None:
            raise InvalidInput("no account configured to send transactions")
        with self._send_lock:
            base = {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                "chainId": self.chain_id,
            }
            signed = account.sign_transaction(build(base))
            return "0x" + bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction)).hex()

    def wait(self, tx_hash: Any, decoder: EventDecoder | None = None, timeout: float = 120.0) -> TxResult:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
        tx_hex = "0x" + bytes(receipt["transactionHash"]).hex()
        if receipt["status"] != 1:
            raise Unavailable(
                f"transaction {tx_hex} reverted on chain after it was sent",
                hint="the chain state changed between estimate and inclusion; retry",
            )
        events = decoder.decode_all(receipt["logs"]) if decoder else []
        return TxResult(tx_hex, int(receipt["blockNumber"]), int(receipt["gasUsed"]), events)

    def deploy(self, name: str, args: Sequence[Any] = ()) -> tuple[str, TxResult]:
        artifact = artifacts.load(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        result = self.send(factory.constructor(*args))
        receipt = self.w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
        return str(receipt["contractAddress"]), result

    def chain_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def _refusal(error: Exception, sender: str) -> Exception:
    """What the node's RPC refused a transaction for, said for the person who sent it (a revert stays a revert)."""
    if not isinstance(error, Web3RPCError):
        return error
    detail = error.rpc_response.get("error", {}) if error.rpc_response else {}
    message = str((detail.get("message") if isinstance(detail, dict) else None) or error)
    if "insufficient funds" in message.lower():
        return InvalidInput(
            f"the account {sender} cannot pay for the transaction's gas ({message})",
            hint="fund that account, or let the node's relayer pay with --relay where the command offers it",
        )
    return Unavailable(f"the chain refused the transaction from {sender}: {message}", hint="retry; if it persists, "
                       "check the account's nonce and balance with the chain's operator")  # fmt: skip
