"""Names a package exports but imports on first use (a plugin's package stays cheap to import:
discovery imports it).

In the package's ``__init__``::

    __getattr__ = lazy_names(__name__, {"HeavyBackend": ".backend"})

or, with a ``__dir__`` that lists them too::

    __getattr__, __dir__ = lazy_exports(__name__, {"HeavyBackend": ".backend"})
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from the (relative) module ``where[name]``
    on first access and keeps it in the package's namespace."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            # ``package.submodule`` after ``import package``: it worked while the package
            # imported its submodules eagerly, so it still does
            if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
                return importlib.import_module(f"{package}.{name}")
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` (see :func:`lazy_names`) and a ``__dir__`` that lists the lazy
    names too: ``__getattr__, __dir__ = lazy_exports(__name__, {...})``."""

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return lazy_names(package, where), __dir__
