"""Attacks performed for real: a node over HTTP on the session's anvil (fixtures shared with tests/node)."""

from tests.node.conftest import node, owner  # noqa: F401  (pytest fixtures, re-exported)
