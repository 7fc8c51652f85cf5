"""What a plugin declares (:class:`BackendSpec`) and what discovery knows (:class:`BackendInfo`)."""

from __future__ import annotations

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


@attrs.frozen
class BackendSpec:
    """A backend as a plugin declares it from ``rhapsody_register_backends``."""

    name: str = attrs.field(validator=_check_name)
    cls: type[Backend] = attrs.field(validator=_check_class)
    kind: BackendKind = attrs.field(validator=_check_kind)


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

    def __bool__(self) -> bool:
        return self.available
