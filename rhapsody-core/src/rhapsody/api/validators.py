"""attrs validators whose errors name the field, what was expected and what was given."""

from __future__ import annotations

import math
import numbers
import operator
import os
from collections.abc import Callable, Mapping
from typing import Any

from .errors import TaskValidationError

Validator = Callable[[Any, Any, Any], None]


def _fail(inst: Any, attribute: Any, expected: str, value: Any) -> None:
    raise TaskValidationError(attribute.name, expected, value, owner=type(inst).__name__)


def optional_str(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and (type(value) is not str or not value):
        _fail(inst, attribute, "a non-empty string or None", value)


def non_empty_str(inst: Any, attribute: Any, value: Any) -> None:
    if type(value) is not str or not value:
        _fail(inst, attribute, "a non-empty string", value)


# A uid names the files the runtime writes for a task ({uid}.stdout ...): it must be one safe
# file-name component, so that no uid can reach outside the session's directory.
UID_MAX_LENGTH = 200
_UID_EXPECTED = (
    f"a non-empty name of at most {UID_MAX_LENGTH} characters, without '/', NUL or control "
    "characters, and not '.' or '..'"
)


def unsafe_name(value: Any) -> bool:
    """True unless ``value`` is a string usable as one file-name component (see uids)."""
    return (
        type(value) is not str
        or not value
        or len(value) > UID_MAX_LENGTH
        or value in (".", "..")
        or "/" in value
        or (os.altsep is not None and os.altsep in value)
        or not value.isprintable()
    )


def uid(inst: Any, attribute: Any, value: Any) -> None:
    if unsafe_name(value):
        _fail(inst, attribute, _UID_EXPECTED, value)


def os_string_problem(value: str | bytes) -> str | None:
    """Why the operating system would refuse ``value`` in a path, argv or environment (NUL)."""
    found = "\0" in value if isinstance(value, str) else b"\0" in value
    return "contains a NUL byte" if found else None


def optional_path(inst: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not (isinstance(value, (str, os.PathLike)) and os.fspath(value)):
        _fail(inst, attribute, "a non-empty str or os.PathLike, or None", value)
    if os_string_problem(os.fspath(value)):
        _fail(inst, attribute, "a path without NUL bytes", value)


def optional_callable(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and not callable(value):
        _fail(inst, attribute, "a callable (sync or async function) or None", value)


def str_sequence(inst: Any, attribute: Any, value: Any) -> None:
    if type(value) not in (list, tuple):
        _fail(inst, attribute, "a list or tuple of strings", value)
    for item in value:
        if not isinstance(item, (str, os.PathLike)):
            _fail(inst, attribute, "a list or tuple of strings", value)
        if os_string_problem(os.fspath(item)):
            _fail(inst, attribute, "a list or tuple of strings without NUL bytes", value)


def optional_str_sequence(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        str_sequence(inst, attribute, value)


def positional_args(inst: Any, attribute: Any, value: Any) -> None:
    if type(value) not in (tuple, list):
        _fail(inst, attribute, "a tuple or list of positional arguments", value)


def mapping(inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, Mapping):
        _fail(inst, attribute, "a dict", value)


def str_keyed_mapping(inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(type(k) is str for k in value):
        _fail(inst, attribute, "a dict with string keys", value)


def boolean(inst: Any, attribute: Any, value: Any) -> None:
    if type(value) is not bool:
        _fail(inst, attribute, "True or False", value)


def _is_number(value: Any) -> bool:
    # ints are never NaN (and may be too large for a float: isnan would overflow)
    return type(value) is int or (type(value) is float and not math.isnan(value))


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def optional_timeout(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and not (_is_number(value) and value > 0 and _finite(value)):
        _fail(inst, attribute, "a finite number of seconds > 0, or None", value)


def number_in_range(lo: float, hi: float, *, lo_open: bool = False) -> Validator:
    """Optional number within [lo, hi] (or (lo, hi] when ``lo_open``)."""
    lo_bracket = "(" if lo_open else "["
    expected = f"a number in {lo_bracket}{lo}, {hi}], or None"

    def check(inst: Any, attribute: Any, value: Any) -> None:
        if value is None:
            return
        if not _is_number(value) or value > hi or value < lo or (lo_open and value == lo):
            _fail(inst, attribute, expected, value)

    return check


def optional_positive_int(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and not (type(value) is int and value >= 1):
        _fail(inst, attribute, "an integer >= 1, or None", value)


def optional_top_k(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and not (type(value) is int and (value >= 1 or value == -1)):
        _fail(inst, attribute, "an integer >= 1 (or -1 for no limit), or None", value)


def prompt(inst: Any, attribute: Any, value: Any) -> None:
    if type(value) is str:
        if not value.strip():
            _fail(inst, attribute, "a non-empty prompt string or a non-empty list of them", value)
        return
    if type(value) not in (list, tuple) or not value:
        _fail(inst, attribute, "a non-empty prompt string or a non-empty list of them", value)
    for item in value:
        if type(item) is not str or not item.strip():
            _fail(inst, attribute, "a non-empty prompt string or a non-empty list of them", value)


# Converters: NumPy (or any numbers.Real) numbers become Python ones; everything else is left
# for the validator to judge (bool stays bool, and is refused where a number is meant).
def to_real(value: Any) -> Any:
    if value is None or type(value) is float or type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, numbers.Integral):
        return operator.index(value)
    return float(value)


def to_int(value: Any) -> Any:
    if value is None or type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return operator.index(value)
    return value


def integer(value: Any) -> int | None:
    """``value`` as a Python int when it is an integer (an int or a NumPy integer; not a
    bool), else None. For backends' own checks of counts and limits."""
    if type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return operator.index(value)
    return None


def real(value: Any) -> int | float | None:
    """``value`` as a Python int or float when it is a real number (NumPy ones too; not a
    bool), else None. NaN comes back as a float NaN: check the range yourself."""
    if type(value) is int or type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return operator.index(value) if isinstance(value, numbers.Integral) else float(value)
