"""Task values in forms that travel: JSON-safe dicts, and pickling of functions and results.

``to_json_safe`` turns any value a task holds into JSON types (``from_json_safe`` undoes it):

* JSON's own types pass through (tuples become lists, NumPy numbers become Python numbers);
* a function importable by name becomes ``{"__function__": "module:qualname"}``;
* an exception becomes ``{"__exception__": "module:qualname", "args": [...], "attrs": {...}}``;
* a float that JSON cannot spell (``nan``, ``inf``) becomes ``{"__float__": "nan"}``;
* anything else is pickled with cloudpickle: ``{"__pickle__": "<base64>"}``, or, when even that
  fails, kept as its text: ``{"__repr__": "..."}`` (restored as that string).
"""

from __future__ import annotations

import base64
import importlib
import math
import numbers
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from .errors import RemoteTaskError

_MARKERS = ("__function__", "__exception__", "__float__", "__pickle__", "__repr__")
_PLAIN = (type(None), bool, int, str)


def importable_name(obj: Any) -> str | None:
    """``"module:qualname"`` when ``obj`` can be found again by importing that name, else None.

    Objects of ``__main__`` have no such name: they travel by value (cloudpickle).
    """
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    if "<locals>" in qualname or "<lambda>" in qualname:
        return None
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return f"{module}:{qualname}" if found is obj else None


def import_name(name: str) -> Any:
    """The object ``"module:qualname"`` names (the inverse of :func:`importable_name`)."""
    module, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _exception_to_json(exc: BaseException) -> dict[str, Any]:
    name = importable_name(type(exc)) or f"{type(exc).__module__}:{type(exc).__qualname__}"
    attrs = {k: to_json_safe(v) for k, v in getattr(exc, "__dict__", {}).items() if k[0] != "_"}
    return {"__exception__": name, "args": to_json_safe(list(exc.args)), "attrs": attrs}


def _exception_from_json(data: Mapping[str, Any]) -> BaseException:
    args = tuple(from_json_safe(data.get("args", [])))
    try:
        cls = import_name(data["__exception__"])
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(cls)
        # The exception's own __init__ may take other arguments than its args: rebuild it the
        # way unpickling does, without calling it.
        exc = cls.__new__(cls)
        exc.args = args
        for key, value in data.get("attrs", {}).items():
            setattr(exc, key, from_json_safe(value))
        return exc
    except Exception:  # noqa: BLE001 - a class that is gone: keep its name and message
        message = str(args[0]) if len(args) == 1 else str(args)
        return RemoteTaskError(str(data.get("__exception__")), message)


def to_json_safe(value: Any) -> Any:
    """``value`` built from JSON types only (see the module doc)."""
    if isinstance(value, _PLAIN):
        if isinstance(value, Enum):  # TaskState and friends: their value
            return to_json_safe(value.value)
        return value
    if type(value) is float or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        if isinstance(value, numbers.Integral):
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else {"__float__": repr(number)}
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return to_json_safe(value.item())  # a NumPy scalar (np.bool_, np.str_...)
    if isinstance(value, (list, tuple)):
        return [to_json_safe(item) for item in value]
    if isinstance(value, Mapping) and all(type(k) is str for k in value):
        if any(marker in value for marker in _MARKERS):  # a user dict that looks like ours
            return _pickled(dict(value))
        return {k: to_json_safe(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, BaseException):
        return _exception_to_json(value)
    if callable(value):
        name = importable_name(value)
        if name is not None:
            return {"__function__": name}
    return _pickled(value)


def _pickled(value: Any) -> dict[str, str]:
    try:
        return {"__pickle__": _b64(cloudpickle.dumps(value))}
    except Exception:  # noqa: BLE001 - not even cloudpickle: keep what it looked like
        return {"__repr__": repr(value)}


def from_json_safe(value: Any) -> Any:
    """The value :func:`to_json_safe` encoded."""
    if isinstance(value, list):
        return [from_json_safe(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "__function__" in value:
        return import_name(value["__function__"])
    if "__exception__" in value:
        return _exception_from_json(value)
    if "__float__" in value:
        return float(value["__float__"])
    if "__pickle__" in value:
        return pickle.loads(base64.b64decode(value["__pickle__"]))
    if "__repr__" in value:
        return value["__repr__"]
    return {k: from_json_safe(v) for k, v in value.items()}


class CloudPickled:
    """A value pickled by value (cloudpickle) inside an ordinary pickle: lambdas, closures,
    functions of ``__main__``."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def load(self) -> Any:
        return cloudpickle.loads(self.data)


def picklable_callable(fn: Callable[..., Any]) -> Any:
    """``fn`` itself when pickle can find it by name, else ``fn`` wrapped by value."""
    if importable_name(fn) is not None:
        return fn
    return CloudPickled(cloudpickle.dumps(fn))


class UnpicklableValue(str):
    """Stands in, after a pickle round trip, for a result that could not be pickled: its repr."""

    __slots__ = ()


_SIMPLE_RESULTS = (type(None), bool, int, float, str, bytes)


def picklable_result(value: Any) -> Any:
    """``value``, or an :class:`UnpicklableValue` when neither pickle nor cloudpickle take it."""
    if isinstance(value, _SIMPLE_RESULTS):
        return value
    try:
        pickle.dumps(value)
        return value
    except Exception:  # noqa: BLE001
        pass
    if isinstance(value, BaseException):
        return RemoteTaskError(type(value).__qualname__, str(value))
    try:
        return CloudPickled(cloudpickle.dumps(value))
    except Exception:  # noqa: BLE001
        return UnpicklableValue(repr(value))
