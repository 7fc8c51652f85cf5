"""What a task asks for: :class:`ResourceRequest`, and the converters/validators of its fields."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs

GPU_UNITS = 1000  # GPUs are counted in thousandths, so that shares add up exactly

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_memory(value: Any) -> int | None:
    """Bytes from an int (bytes) or a string such as ``"512MB"`` or ``"4GiB"``; None if neither."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is str:
        match = _MEMORY.fullmatch(value)
        if match is not None:
            unit = _UNITS.get(match.group(2).lower())
            if unit is not None:
                return int(float(match.group(1)) * unit)
    return None


def format_bytes(size: int) -> str:
    """``"1.5 GiB"``: a size for messages."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


@attrs.frozen(slots=True, cache_hash=True)
class ResourceRequest:
    """A task's resource request, with the defaults filled in.

    ``gpus_per_rank`` below 1 is a share of one GPU (several ranks may use it); from 1 up it is
    a whole number of GPUs of their own.
    """

    ranks: int = 1
    cores_per_rank: int = 1
    gpus_per_rank: float = 0
    mem_per_rank: int | None = None  # bytes

    @property
    def gpu_units(self) -> int:
        """GPUs per rank in thousandths of a GPU."""
        return round(self.gpus_per_rank * GPU_UNITS)

    @property
    def cores(self) -> int:
        """Cores of the whole job."""
        return self.ranks * self.cores_per_rank

    @property
    def gpus(self) -> float:
        """GPUs of the whole job (shares added up)."""
        return self.ranks * self.gpus_per_rank

    def describe(self) -> str:
        text = f"ranks={self.ranks}, cores_per_rank={self.cores_per_rank}"
        if self.gpus_per_rank:
            text += f", gpus_per_rank={self.gpus_per_rank:g}"
        if self.mem_per_rank is not None:
            text += f", mem_per_rank={format_bytes(self.mem_per_rank)}"
        return text


# -- the task fields' converters and validators -----------------------------------------------


def _fail(inst: Any, attribute: Any, expected: str, value: Any) -> None:
    # imported here: rhapsody.api (whose tasks use these checks) imports this module
    from ..api.errors import TaskValidationError

    raise TaskValidationError(attribute.name, expected, value, owner=type(inst).__name__)


def to_count(value: Any) -> Any:
    """NumPy integers and integral floats (``2.0``) become ints; the rest is for the validator."""
    if value is None or type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    from ..api.validators import integer

    number = integer(value)
    return value if number is None else number


def positive_count(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and not (type(value) is int and value >= 1):
        _fail(inst, attribute, "an integer >= 1, or None (not requested)", value)


def to_gpus(value: Any) -> Any:
    if value is None or type(value) is int:
        return value
    from ..api.validators import real

    number = real(value)
    if number is None:
        return value
    if type(number) is float and number.is_integer():
        return int(number)
    return number


GPUS_EXPECTED = (
    "a number of GPUs: an integer >= 0, or a share of one GPU in (0, 1) in steps of 0.001; "
    "or None (not requested)"
)


def gpu_count(inst: Any, attribute: Any, value: Any) -> None:
    if value is None or (type(value) is int and value >= 0):
        return
    if (
        type(value) is float
        and 0 < value < 1
        and math.isclose(value * GPU_UNITS, round(value * GPU_UNITS))
    ):
        return
    _fail(inst, attribute, GPUS_EXPECTED, value)


def to_memory(value: Any) -> Any:
    if value is None or type(value) is int or type(value) is not str:
        return value
    parsed = parse_memory(value)
    return value if parsed is None else parsed


def memory(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and not (type(value) is int and value > 0):
        _fail(
            inst,
            attribute,
            "bytes per rank: an integer > 0 or a size such as '512MB' or '4GiB'; or None",
            value,
        )


# How each field is converted and checked (attrs metadata of ComputeTask's fields: applied to
# the values given at construction, and to those assigned later).
RANKS = {"convert": to_count, "validate": positive_count}
CORES = {"convert": to_count, "validate": positive_count}
GPUS = {"convert": to_gpus, "validate": gpu_count}
MEMORY = {"convert": to_memory, "validate": memory}
FIELDS = ("ranks", "cores_per_rank", "gpus_per_rank", "mem_per_rank")


_INTERNED: dict[tuple[Any, ...], ResourceRequest] = {}


def request_of(ranks: Any, cores: Any, gpus: Any, memory: Any) -> ResourceRequest:
    """The (shared) request with these values, defaults filled in: tasks asking alike share one
    object, so checks and scheduling can treat them as one."""
    key = (ranks, cores, gpus, memory)
    request = _INTERNED.get(key)
    if request is None:
        request = ResourceRequest(ranks or 1, cores or 1, gpus or 0, memory)
        if len(_INTERNED) < 4096:
            _INTERNED[key] = request
    return request
