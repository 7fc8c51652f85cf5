"""What a plugin declares (:class:`BackendSpec`) and what discovery knows (:class:`BackendInfo`)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from ..backends.base import Backend

BackendKind = Literal["execution", "inference"]
KINDS: tuple[str, ...] = ("execution", "inference")


def _check_kind(_inst: Any, _attr: Any, value: Any) -> None:
    if value not in KINDS:
        raise ValueError(f"BackendSpec.kind: expected one of {KINDS}, got {value!r}")


def _check_name(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not str or not value.isidentifier():
        raise ValueError(f"BackendSpec.name: expected an identifier-like string, got {value!r}")


_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _check_class(_inst: Any, _attr: Any, value: Any) -> None:
    if isinstance(value, str):
        if not _REF.match(value):
            raise TypeError(
                f"BackendSpec.cls: expected a Backend subclass or a 'package.module:Class' "
                f"reference, got {value!r}"
            )
        return
    from ..backends.base import Backend  # here: a reference must not import the task API

    if not (isinstance(value, type) and issubclass(value, Backend)):
        raise TypeError(f"BackendSpec.cls: expected a subclass of rhapsody Backend, got {value!r}")


def _check_requires(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not tuple or not all(type(m) is str and m for m in value):
        raise ValueError(f"BackendSpec.requires: expected a tuple of module names, got {value!r}")


def class_ref(cls: type[Any] | str) -> str:
    """``package.module:Class`` for a class or a reference (the same backend, however named)."""
    return cls if isinstance(cls, str) else f"{cls.__module__}:{cls.__qualname__}"


def load_class(ref: str) -> type[Backend]:
    """Import the class a ``package.module:Class`` reference names (once: modules are cached)."""
    from ..backends.base import Backend

    module_name, _, name = ref.partition(":")
    cls = getattr(importlib.import_module(module_name), name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{ref} is not a rhapsody Backend class: {cls!r}")
    return cls


def _check_aliases(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not tuple or not all(type(a) is str and a.isidentifier() for a in value):
        raise ValueError(f"BackendSpec.aliases: expected a tuple of identifiers, got {value!r}")


def _check_ready(_inst: Any, _attr: Any, value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"BackendSpec.ready: expected a function or None, got {value!r}")


@attrs.frozen
class BackendSpec:
    """A backend as a plugin declares it from ``rhapsody_register_backends``.

    ``aliases`` are other names it answers to: in ``get_backend(...)`` and as
    ``rhapsody.backends.<alias>`` (older names, such as rhapsody-py's ``"dragon_v3"``).
    ``ready``, when given, returns ``None`` when the backend can run in this process, or a short
    note saying what it needs (``rhapsody backends`` shows it).

    ``cls`` may be a ``"package.module:Class"`` reference instead of the class: the module is
    imported when the backend is first used, not at discovery, so that finding backends stays
    fast however heavy their dependencies. ``requires`` names the modules it needs (found, not
    imported, at discovery: a missing one makes the backend unavailable, with the reason).
    """

    name: str = attrs.field(validator=_check_name)
    cls: type[Backend] | str = attrs.field(validator=_check_class)
    kind: BackendKind = attrs.field(validator=_check_kind)
    aliases: tuple[str, ...] = attrs.field(default=(), validator=_check_aliases)
    ready: Callable[[], str | None] | None = attrs.field(default=None, validator=_check_ready)
    requires: tuple[str, ...] = attrs.field(default=(), validator=_check_requires)


@attrs.frozen
class BackendInfo:
    """A discovered backend (or a plugin that failed to load). Truthy when available."""

    name: str
    kind: str | None
    class_name: str | None
    plugin: str
    distribution: str | None
    version: str | None
    available: bool
    reason: str | None = None
    cls: type[Backend] | None = attrs.field(default=None, repr=False)
    aliases: tuple[str, ...] = ()
    ready: Callable[[], str | None] | None = attrs.field(default=None, repr=False)
    ref: str | None = attrs.field(default=None, repr=False)  # package.module:Class

    def backend_class(self) -> type[Backend]:
        """The backend's class, imported on first use when it was declared by reference."""
        if self.cls is None:
            if self.ref is None:
                raise LookupError(f"backend {self.name!r} has no class ({self.reason})")
            object.__setattr__(self, "cls", load_class(self.ref))  # a cache of a frozen field
        assert self.cls is not None
        return self.cls

    def note(self) -> str | None:
        """What the backend needs to run in this process, if anything (see BackendSpec.ready)."""
        if self.ready is None:
            return None
        try:
            return self.ready()
        except Exception as exc:  # noqa: BLE001 - a broken check is itself the note
            return f"could not tell whether it can run here: {type(exc).__name__}: {exc}"

    def __bool__(self) -> bool:
        return self.available
