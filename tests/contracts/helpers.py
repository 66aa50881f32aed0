"""Small helpers for contract tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from twinledger.chain.errors import ContractRevert

DID_A = "did:key:z6MkfXXpsrRGDxsSxf473MVmg9dtsDJuJKzMZztAA2jwWhws"
DID_B = "did:pkh:eip155:31337:0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DIGEST = b"\x11" * 32


def reverts(error: str, action: Callable[[], Any], **expected_args: Any) -> ContractRevert:
    """Run `action`, expect the custom error `error` (and these argument values)."""
    with pytest.raises(ContractRevert) as caught:
        action()
    assert caught.value.error == error, str(caught.value)
    for name, value in expected_args.items():
        assert caught.value.args_by_name[name] == value, (name, caught.value.args_by_name)
    return caught.value
