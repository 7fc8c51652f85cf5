"""Which names a task class takes, and the checks on the extra fields a task carries.

A task accepts, besides its own fields, *extra* fields (``ComputeTask(..., priority="high")``,
as rhapsody-py does): they are kept on the task, read as ``task["priority"]``, and travel with it
(``to_dict``, pickle). An extra name that is one letter away from a real field is refused: it is
far more likely a typo than a new field.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import TaskValidationError

_NOTHING: dict[str, Any] = {}


class EmptyMapping(Mapping[str, Any]):
    """The shared, immutable, picklable empty mapping: the default of ``kwargs`` and
    ``task_backend_specific_kwargs`` (a task that passes none costs no dict of its own)."""

    __slots__ = ()
    _instance: EmptyMapping | None = None

    def __new__(cls) -> EmptyMapping:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    # Mapping's own versions raise and catch a KeyError: backends ask every task's options.
    def __contains__(self, key: object) -> bool:
        return False

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def __iter__(self) -> Any:
        return iter(())

    # Views of a real empty dict: ``f(**kwargs)`` and ``dict(kwargs)`` call keys() once and walk
    # it in C (Mapping's views walk this mapping in Python: ~1 µs per task).
    def keys(self) -> Any:
        return _NOTHING.keys()

    def items(self) -> Any:
        return _NOTHING.items()

    def values(self) -> Any:
        return _NOTHING.values()

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (EmptyMapping, ())

    def __copy__(self) -> EmptyMapping:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> EmptyMapping:
        return self


EMPTY_MAPPING: Mapping[str, Any] = EmptyMapping()


@attrs.frozen
class FieldNames:
    """The names of one task class, computed once per class."""

    init: frozenset[str]  # what the constructor takes
    results: frozenset[str]  # what backends write (state, stdout, return_value...)
    public: tuple[str, ...]  # every public field, in declaration order
    public_set: frozenset[str]
    positional: tuple[str, ...]  # constructor arguments accepted by position (rhapsody-py order)
    none_is_default: frozenset[str]  # fields whose default is not None: None means "default"


_NAMES: dict[type, FieldNames] = {}

# Every result field of every task kind: a task dict written by rhapsody-py carries all of them
# (``response`` on a compute task too), with None until the task ran.
ALL_RESULTS = frozenset(
    {"state", "return_value", "stdout", "stderr", "exit_code", "exception", "traceback"}
    | {"submitted_at", "started_at", "ended_at", "host", "worker"}
    | {"response", "usage"}
)
# Keys a rhapsody-py session or backend stamps on a task dict; they describe nothing.
IGNORED_KEYS = frozenset({"type", "task_type", "future"})


def field_names(cls: type) -> FieldNames:
    names = _NAMES.get(cls)
    if names is None:
        fields = [a for a in attrs.fields(cls) if a.name[0] != "_"]
        names = FieldNames(
            init=frozenset(a.alias for a in fields if a.init),
            results=frozenset(a.name for a in fields if not a.init),
            public=tuple(a.name for a in fields),
            public_set=frozenset(a.name for a in fields),
            positional=getattr(cls, "positional_fields", ()),
            none_is_default=frozenset(a.alias for a in fields if a.init and a.default is not None),
        )
        _NAMES[cls] = names
    return names


def checked(
    validate: Callable[[Any, Any, Any], None], convert: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """A described field's checks, as the field's metadata.

    Not attrs validators: those run on every field at every construction, defaults included
    (about 40% of the cost of making a task). The task's constructor runs these on the values
    it was given, and assignment runs them on the value assigned (see :func:`assignment_checks`).
    """
    return {"validate": validate, "convert": convert}


ASSIGNMENT_CHECKS: dict[type, dict[str, Callable[[Any, Any], Any]]] = {}


def assignment_checks(cls: type) -> dict[str, Callable[[Any, Any], Any]]:
    """Per described (init) field of ``cls``: convert and validate a given or assigned value."""

    def make(field: Any) -> Callable[[Any, Any], Any]:
        convert = field.converter or field.metadata.get("convert")
        validate = field.validator or field.metadata.get("validate")

        def check(inst: Any, value: Any) -> Any:
            if convert is not None:
                value = convert(value)
            if validate is not None:
                validate(inst, field, value)
            return value

        return check

    checks = {f.name: make(f) for f in attrs.fields(cls) if f.init}
    ASSIGNMENT_CHECKS[cls] = checks
    return checks


def merge_positional(cls: type, args: tuple[Any, ...], fields: dict[str, Any]) -> dict[str, Any]:
    """Map positional arguments onto names, in the order rhapsody-py's constructors use."""
    order = field_names(cls).positional
    if len(args) > len(order):
        raise TaskValidationError(
            "arguments",
            f"at most {len(order)} positional arguments ({', '.join(order)})",
            args,
            owner=cls.__name__,
        )
    for name, value in zip(order, args, strict=False):
        if name in fields:
            raise TaskValidationError(
                name, "one value (given by position and by name)", value, owner=cls.__name__
            )
        fields[name] = value
    return fields


def check_extra(cls: type, key: Any, value: Any) -> None:
    """Refuse an extra field name that is not a plain name, is private, or looks like a typo."""
    owner = cls.__name__
    if type(key) is not str or not key.isidentifier():
        raise TaskValidationError("extra field", "a field name (an identifier)", key, owner=owner)
    if key[0] == "_":
        raise TaskValidationError(
            key, "a public field name (not starting with '_')", value, owner=owner
        )
    names = field_names(cls)
    if key in ALL_RESULTS and key not in names.results:
        return  # another kind's result (response=None on a compute task dict): kept as extra
    close = difflib.get_close_matches(key, [*names.init, *names.results], n=1, cutoff=0.85)
    if close:
        raise TaskValidationError(
            key,
            f"a field of {owner} (did you mean {close[0]!r}?) or an extra field with a "
            "clearly different name",
            value,
            owner=owner,
        )
