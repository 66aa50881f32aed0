"""Packages whose public names load on first use (PEP 562), so importing one submodule does not import them all."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a submodule, relative or absolute)
    the first time ``name`` is asked for, and keeps the value as a module attribute afterwards.

    Python runs a package's ``__init__`` before any of its submodules: an ``__init__`` that imports everything it
    exports makes ``from pkg.small import x`` pay for the heaviest sibling (a web framework, an HTTP client)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
