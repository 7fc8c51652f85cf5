"""Filling a new task's slots at the cost of plain attribute stores.

A task class defines ``__setattr__`` (what a user assigns to a described field is validated), so
attrs' generated ``__attrs_init__`` fills each of a task's ~30 slots through
``object.__setattr__``: a C call that looks the name up, ~60-90 ns a slot, about half of what
making a ``ComputeTask`` costs. The filler made here does what that ``__attrs_init__`` does (the
same keyword arguments and defaults, factories, ``__attrs_post_init__``), but for the length of
the fill the instance is of a *twin* class: a subclass with the same slots and no
``__setattr__`` of its own, whose stores the interpreter specialises into direct slot writes.

Classes whose fields have attrs validators or converters (none of ours: their checks run in
``BaseTask.__init__``, on the given values only) keep attrs' own ``__attrs_init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

_set_class = object.__setattr__  # assigning __class__ past the task's own __setattr__
_FILLERS: dict[type, Callable[..., None]] = {}
_FACTORY: type = attrs.Factory  # type: ignore[assignment]  # a class at run time


def filler(cls: type) -> Callable[..., None]:
    """The function that fills a fresh ``cls`` instance from keyword arguments (made once per
    class)."""
    fill = _FILLERS.get(cls)
    if fill is None:
        fill = _FILLERS[cls] = _make_filler(cls)
    return fill


def _make_filler(cls: type) -> Callable[..., None]:
    fields = attrs.fields(cls)
    general: Callable[..., None] = cls.__attrs_init__  # type: ignore[attr-defined]
    if cls.__dictoffset__ or any(a.validator or a.converter for a in fields):
        return general  # not a plain slotted class: attrs' own way
    twin = type(
        f"_{cls.__name__}BeingFilled",
        (cls,),
        {"__slots__": (), "__setattr__": object.__setattr__, "__module__": cls.__module__},
    )
    names: dict[str, Any] = {
        "_Twin": twin,
        "_Cls": cls,
        "_set_class": _set_class,
        "NOTHING": attrs.NOTHING,
    }
    params, body = [], []
    for i, a in enumerate(fields):
        default = a.default
        factory = isinstance(default, _FACTORY)
        if factory:
            names[f"_factory_{i}"] = default.factory
            made = f"_factory_{i}({'self' if default.takes_self else ''})"
        if a.init:
            if factory:
                params.append(f"{a.alias}=NOTHING")
                body.append(f"self.{a.name} = {made} if {a.alias} is NOTHING else {a.alias}")
            elif default is attrs.NOTHING:
                params.append(a.alias)
                body.append(f"self.{a.name} = {a.alias}")
            else:
                names[f"_default_{i}"] = default
                params.append(f"{a.alias}=_default_{i}")
                body.append(f"self.{a.name} = {a.alias}")
        elif factory:
            body.append(f"self.{a.name} = {made}")
        elif default is not attrs.NOTHING:
            names[f"_default_{i}"] = default
            body.append(f"self.{a.name} = _default_{i}")
    # required parameters first in the signature (keyword-only: their order is free)
    required = [p for p in params if "=" not in p]
    optional = [p for p in params if "=" in p]
    lines = [
        f"def __attrs_init__(self, *, {', '.join(required + optional)}):",
        "    _set_class(self, '__class__', _Twin)",
        "    try:",
        *(f"        {line}" for line in body),
        "    finally:",
        "        _set_class(self, '__class__', _Cls)",
    ]
    if hasattr(cls, "__attrs_post_init__"):
        lines.append("    self.__attrs_post_init__()")
    exec("\n".join(lines), names)  # the source: built above from the fields
    fill: Callable[..., None] = names["__attrs_init__"]
    fill.__qualname__ = f"{cls.__qualname__}.__attrs_init__"
    return fill
