"""What `Client.watch` and `AsyncClient.watch` share: reading the node's snapshot stream (Server-Sent Events), the
resume point, and when to reconnect.

The stream's events name snapshots (`id:` is the seq) without their plaintext; the watcher then reads each one with
the normal verified read (`fetch_snapshot`), which is what the node receipts. A dropped connection, a clean end (the
node process stopping) or a 5xx (the node's index is catching up) is retried with `Last-Event-ID` after a backoff; a
problem event or a 4xx refusal (consent revoked or expired, no grant) ends the watch with the mapped error.

The events are parsed here by hand: the node is their only producer and sends three fields (`id`, `event`, one
`data` line) and comments; the parsing is the dozen lines of the SSE spec's rules below, not worth a dependency
in every lock file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from twinledger.client.errors import NodeUnavailable, from_problem
from twinledger.errors import TwinledgerError

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
RETRIES = 8  # consecutive failed connections before the watch gives up (~40 s with the delays above)


@dataclass
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass
class EventParser:
    """Lines of a text/event-stream in, events out (https://html.spec.whatwg.org/#event-stream-interpretation)."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    last_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:  # a blank line dispatches what came before it
            if not self._data:
                self._event = ""
                return None
            done = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return done
        if line.startswith(":"):  # a comment: the node's keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = self.last_id = value
        return None


class WatchCursor:
    """Where a watch stands (the last snapshot it delivered) and how long to wait before reconnecting."""

    def __init__(self, twin_id: int, after: int | None, *, retries: int = RETRIES) -> None:
        self.twin_id, self.after, self.retries = int(twin_id), after, retries
        self.last: int | None = None  # the last snapshot delivered: where a reconnection resumes
        self.failures = 0
        self.parser = EventParser()

    @property
    def path(self) -> str:
        return f"/v1/twins/{self.twin_id}/snapshots/stream"

    def params(self, purpose: str | None) -> dict[str, object]:
        return {"purpose": purpose, "after": self.after}

    def headers(self) -> dict[str, str]:
        return {"Accept": "text/event-stream"} | ({"Last-Event-ID": str(self.last)} if self.last is not None else {})

    def connected(self) -> None:
        self.failures = 0
        self.parser = EventParser()

    def feed(self, line: str) -> int | None:
        """The seq of a snapshot event completed by `line`; raises the mapped error for a problem event."""
        event = self.parser.feed(line)
        if event is None:
            return None
        if event.event == "problem":
            problem = json.loads(event.data)
            error = from_problem(httpx.Response(int(problem.get("status", 500)), json=problem))
            if isinstance(error, NodeUnavailable):
                raise Reconnect(error)
            raise error
        if event.event != "snapshot" or event.id is None:
            return None
        return int(event.id)

    def delivered(self, seq: int) -> None:
        self.last = seq

    def failed(self, error: TwinledgerError) -> float:
        """The wait before the next attempt; raises `error` once `retries` attempts in a row have failed."""
        self.failures += 1
        if self.failures > self.retries:
            raise error
        return min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (self.failures - 1))

    def lost(self, error: BaseException | None, node_url: str) -> float:
        """The wait before reconnecting after a connection ended (`error` None: the node ended it cleanly, e.g. its
        process stopping) or failed with one of `RETRYABLE`; raises once `retries` attempts in a row have failed."""
        if isinstance(error, Reconnect):
            return self.failed(error.error)
        if isinstance(error, NodeUnavailable):
            return self.failed(error)
        cause = "the node ended it" if error is None else error.__class__.__name__
        return self.failed(
            NodeUnavailable(
                f"lost the snapshot stream of twin {self.twin_id} from {node_url}: {cause}",
                hint="check that the node is up (`/readyz`); the watch resumes after the last snapshot it delivered",
            )
        )


class Reconnect(Exception):
    """The node said to retry (a 5xx problem event): reconnect after the backoff."""

    def __init__(self, error: TwinledgerError) -> None:
        super().__init__(error.message)
        self.error = error


RETRYABLE = (Reconnect, NodeUnavailable, httpx.TransportError)  # what `WatchCursor.lost` reconnects after
