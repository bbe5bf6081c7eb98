"""Package exports imported on first use (PEP 562), so that importing a package for
one light name does not pay for its heavy neighbours."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module) for ``name``."""

    def __getattr__(name: str) -> Any:  # noqa: N807 (the name PEP 562 looks for)
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
