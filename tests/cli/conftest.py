"""The live stack of the SDK tests, shared."""

from tests.sdk.conftest import stack

__all__ = ["stack"]
