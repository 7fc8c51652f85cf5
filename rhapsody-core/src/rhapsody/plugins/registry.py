"""What a plugin declares (:class:`BackendSpec`) and what discovery knows (:class:`BackendInfo`)."""

from __future__ import annotations

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


def _check_class(_inst: Any, _attr: Any, value: Any) -> None:
    from ..backends.base import Backend

    if not (isinstance(value, type) and issubclass(value, Backend)):
        raise TypeError(f"BackendSpec.cls: expected a subclass of rhapsody Backend, got {value!r}")


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
    """

    name: str = attrs.field(validator=_check_name)
    cls: type[Backend] = attrs.field(validator=_check_class)
    kind: BackendKind = attrs.field(validator=_check_kind)
    aliases: tuple[str, ...] = attrs.field(default=(), validator=_check_aliases)
    ready: Callable[[], str | None] | None = attrs.field(default=None, validator=_check_ready)


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
