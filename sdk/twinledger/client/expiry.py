"""Expiry parsing for grants: `30d`, `12h`, `90m`, `3600s`, an ISO date or date-time, or unix seconds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from twinledger.errors import InvalidInput

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str, *, now: int | None = None) -> int:
    """Unix seconds for `text`.

    >>> parse_expiry("30d", now=0)
    2592000
    >>> parse_expiry("2030-01-01")
    1893456000
    >>> parse_expiry("1893456000")
    1893456000
    """
    value = text.strip().lower()
    now = int(time.time()) if now is None else now
    relative = _RELATIVE.match(value)
    if relative:
        return now + int(relative.group(1)) * _UNIT_S[relative.group(2)]
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"cannot read the expiry {text!r}", hint="use 30d, 12h, 90m, an ISO date (2030-01-01) or unix seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())
