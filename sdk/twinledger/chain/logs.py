"""eth_getLogs over any block range, in pages a public provider accepts.

Providers cap both the block range of one eth_getLogs ("block range too large", "exceed maximum block range: 1000")
and the number of logs it returns ("query returned more than 10000 results", "Log response size exceeded"), each
with its own numbers and wording. So a scan asks for `page` blocks at a time and, when the provider answers a
page with an error, halves it and asks again, down to a single block; a page that worked lets the next one grow
back. The size it settles on is kept for the scanner's next scan. The node's indexer, the anchor worker's recovery
scan and the federated chain view all scan through this one implementation, from the deployment block (or a later
block they know), never from block 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import event_abi_to_log_topic
from requests.exceptions import HTTPError
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import Web3RPCError
from web3.types import FilterParams, LogReceipt

from twinledger.errors import InvalidInput

log = logging.getLogger("twinledger.chain.logs")
DEFAULT_PAGE = 2000


@dataclass(frozen=True)
class LogPage:
    """The logs of blocks `from_block`..`to_block` (inclusive), in the provider's (chain) order."""

    from_block: int
    to_block: int
    logs: Sequence[LogReceipt]


def event_filter(contract: Contract, name: str, *indexed: int | bytes | str | None) -> dict[str, Any]:
    """eth_getLogs params for `name` events of `contract` whose leading indexed arguments equal `indexed`
    (integers, 32-byte values such as a bytes32, or 0x addresses; None matches any value in that place)."""
    topic0 = "0x" + event_abi_to_log_topic(contract.events[name].abi).hex()
    topics: list[str | None] = [topic0]
    for value in indexed:
        if value is None:
            topics.append(None)
            continue
        if isinstance(value, str):  # an address: left-padded to a word, as the EVM logs it
            value = bytes(12) + bytes.fromhex(value.removeprefix("0x"))
        word = value if isinstance(value, bytes) else int(value).to_bytes(32, "big")
        if len(word) != 32:
            raise InvalidInput(f"an indexed event argument is 32 bytes, not {len(word)}")
        topics.append("0x" + word.hex())
    return {"address": contract.address, "topics": topics}


def _refused(error: Exception) -> bool:
    """Whether the provider answered (an error response, or an HTTP 4xx) rather than could not be reached.

    Which answers mean "too much" is not standard, so every answer counts: a page refused for another reason fails
    again at one block, and that error is raised."""
    if isinstance(error, HTTPError):
        return error.response is not None and 400 <= error.response.status_code < 500
    return isinstance(error, Web3RPCError)


class LogScanner:
    """Pages eth_getLogs for `w3`, remembering the page size the provider accepts."""

    def __init__(self, w3: Web3, *, page: int = DEFAULT_PAGE) -> None:
        if page < 1:
            raise InvalidInput(f"a log page is at least one block, not {page}")
        self.w3, self.max_page = w3, page
        self.page = page

    def pages(
        self, params: Mapping[str, Any], from_block: int, to_block: int, *, newest_first: bool = False
    ) -> Iterator[LogPage]:
        """Every page of logs matching `params` (address, topics) in `from_block`..`to_block`, oldest first (or
        newest first, to find the latest match without reading the whole range)."""
        low, high = int(from_block), int(to_block)
        while low <= high:
            size = min(self.page, high - low + 1)
            start, end = (high - size + 1, high) if newest_first else (low, low + size - 1)
            query: FilterParams = {**params, "fromBlock": start, "toBlock": end}  # type: ignore[typeddict-item]
            try:
                logs = self.w3.eth.get_logs(query)
            except (Web3RPCError, HTTPError) as error:
                if size == 1 or not _refused(error):
                    raise
                self.page = max(1, size // 2)
                log.debug("eth_getLogs %d..%d refused (%s); pages of %d blocks", start, end, error, self.page)
                continue
            yield LogPage(start, end, logs)
            self.page = min(self.max_page, self.page * 2)
            if newest_first:
                high = start - 1
            else:
                low = end + 1

    def logs(self, params: Mapping[str, Any], from_block: int, to_block: int | str = "latest") -> list[LogReceipt]:
        """All logs matching `params` in the range, in chain order (`to_block` "latest": the head now)."""
        end = self.w3.eth.block_number if to_block == "latest" else int(to_block)
        return [entry for page in self.pages(params, from_block, end) for entry in page.logs]

    def latest(self, params: Mapping[str, Any], from_block: int) -> LogReceipt | None:
        """The newest log matching `params` from `from_block` to the head, reading back only as far as it is."""
        for page in self.pages(params, from_block, self.w3.eth.block_number, newest_first=True):
            if page.logs:
                return page.logs[-1]
        return None
