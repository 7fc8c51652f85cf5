"""Name-based access to registered backend classes, with install hints for first-party ones."""

from __future__ import annotations

import dis
import importlib.util
import sys
from types import FrameType
from typing import Any

from ..api.errors import RhapsodyError

# First-party backends that live in sibling distributions: class name -> (distribution, extra).
FIRST_PARTY: dict[str, tuple[str, str]] = {
    "DaskExecutionBackend": ("rhapsody-dask", "dask"),
    "DragonExecutionBackend": ("rhapsody-dragon", "dragon"),
    "DragonExecutionBackendV3": ("rhapsody-dragon", "dragon"),
    "DragonVllmInferenceBackend": ("rhapsody-vllm", "vllm"),
    "VllmInferenceBackend": ("rhapsody-vllm", "vllm"),
}
# Their backend names (as get_backend() and `rhapsody backends` know them) -> (class, kind).
FIRST_PARTY_NAMES: dict[str, tuple[str, str]] = {
    "dask": ("DaskExecutionBackend", "execution"),
    "dragon": ("DragonExecutionBackend", "execution"),
    "vllm": ("VllmInferenceBackend", "inference"),
    "dragon_vllm": ("DragonVllmInferenceBackend", "inference"),
}
FIRST_PARTY_ALIASES: dict[str, str] = {"dragon_v3": "dragon"}

_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


class BackendNotInstalledError(ImportError, RhapsodyError):
    """A backend was asked for whose plugin is not installed or failed to load.

    An ``ImportError``, so ``from rhapsody.backends import X`` fails with the install hint.
    """


class BackendNotFoundError(AttributeError, RhapsodyError):
    """``rhapsody.backends.X`` (outside an import statement) for a backend that is not there:
    an ``AttributeError`` carrying the same hint, so ``hasattr(rhapsody.backends, "X")`` is
    False and ``getattr(..., default)`` works."""


def install_hint(class_name: str) -> str | None:
    """Why first-party backend class ``class_name`` is missing and how to get it (else None)."""
    from ..plugins.manager import get_plugin_host

    if class_name not in FIRST_PARTY:
        return None
    dist, extra = FIRST_PARTY[class_name]
    host = get_plugin_host()
    if extra in host.blocked:
        return (
            f"{class_name} is installed ({dist}) but its plugin {extra!r} is not loaded: "
            "see the RHAPSODY_LOAD_PLUGINS / RHAPSODY_BLOCK_PLUGINS environment variables"
        )
    failure = host.failed().get(extra)
    if failure is not None:
        return (
            f"{class_name} is unavailable: its plugin {extra!r} ({dist}) failed to load: "
            f"{failure.reason}"
        )
    return (
        f"{class_name} is provided by the {dist!r} distribution, which is not installed: "
        f"pip install 'rhapsody-core[{extra}]' (or pip install {dist})"
    )


def missing_backend_error(name: str) -> Exception:
    """The error for ``get_backend(name)`` when no usable backend has that name."""
    from ..plugins.manager import get_plugin_host

    host = get_plugin_host()
    info = host.find(name)
    first_party = FIRST_PARTY_NAMES.get(FIRST_PARTY_ALIASES.get(name, name))
    if first_party is not None and (info is None or not info.available):
        hint = install_hint(first_party[0])
        return BackendNotInstalledError(f"backend {name!r}: {hint}", name=name)
    if info is not None and not info.available:
        return BackendNotInstalledError(
            f"backend {name!r} is unavailable: {info.reason}", name=name
        )
    known = sorted(k for k, v in host.backends().items() if v)
    return ValueError(
        f"no backend named {name!r}; available: {known} (`rhapsody backends` lists them, and "
        "the first-party ones that are not installed)"
    )


def _in_import_statement(frame: FrameType | None) -> bool:
    # `from rhapsody.backends import X` reads X with IMPORT_FROM, which turns an AttributeError
    # into a bare "cannot import name": there, raise the ImportError that carries the hint.
    if frame is None:
        return False
    code, at = frame.f_code.co_code, frame.f_lasti
    return 0 <= at < len(code) and code[at] == _IMPORT_FROM


def is_submodule(package: str, name: str) -> bool:
    """Whether ``package.name`` is a module: ``from package import name`` probes the package's
    attribute first, and that probe must not load every plugin (a plugin being imported may be
    the one asking)."""
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except (ImportError, ValueError):
        return False


def backend_class(
    class_name: str, kind: str | None, module: str, *, importing: bool = False
) -> type[Any]:
    """The registered backend class called ``class_name`` (of ``kind``, when given), as the
    module ``__getattr__`` of :mod:`rhapsody.backends` (and its kind sub-packages) looks it up.

    A missing one raises :class:`BackendNotInstalledError` (an ``ImportError``) in an import
    statement or with ``importing=True``, else :class:`BackendNotFoundError`
    (an ``AttributeError``).
    """
    from ..plugins.manager import get_plugin_host

    for info in get_plugin_host().available(kind):
        if info.available and (info.class_name == class_name or class_name in info.aliases):
            return info.backend_class()
    message = install_hint(class_name) or (
        f"module {module!r} has no backend {class_name!r}; `rhapsody backends` lists the "
        "installed ones"
    )
    if importing or _in_import_statement(sys._getframe(2)):
        raise BackendNotInstalledError(message, name=class_name)
    raise BackendNotFoundError(message, name=class_name)


def backend_class_names(kind: str | None) -> list[str]:
    from ..plugins.manager import get_plugin_host

    return sorted(i.class_name for i in get_plugin_host().available(kind) if i.class_name)
