"""Tasks read and write like dicts (as rhapsody-py's are): :class:`TaskMapping`, mixed into
:class:`~rhapsody.api.task.BaseTask`. Real fields are validated on assignment; other keys are
the task's extra fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import TaskValidationError
from .task_fields import check_extra, field_names


class TaskMapping:
    """``task["uid"]``, ``task["priority"] = "high"``, ``update``, ``keys``... for tasks."""

    __slots__ = ()
    _extra: dict[str, Any] | None

    def __getitem__(self, key: str) -> Any:
        if key in field_names(type(self)).public_set:
            return getattr(self, key)
        extra = self._extra
        if extra is not None and key in extra:
            return extra[key]
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        names = field_names(type(self))
        if key in names.init:
            setattr(self, key, value)  # validated like the constructor's argument
        elif key in names.results:
            raise TaskValidationError(
                key,
                "no value: results are written by the backend",
                value,
                owner=type(self).__name__,
            )
        else:
            check_extra(type(self), key, value)
            extra = self._extra
            if extra is None:
                extra = {}
                object.__setattr__(self, "_extra", extra)  # a slot of the task class
            extra[key] = value

    def __delitem__(self, key: str) -> None:
        extra = self._extra
        if extra is None or key not in extra:
            raise KeyError(f"{key!r}: only extra fields can be deleted")
        del extra[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and key in field_names(type(self)).public_set:
            return True
        return self._extra is not None and key in self._extra

    def get(self, key: str, default: Any = None) -> Any:
        """``task.get("uid")``: like ``dict.get``."""
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Like ``dict.setdefault``."""
        if key not in self:
            self[key] = default
        return self[key]

    def update(
        self, other: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, **more: Any
    ) -> None:
        """Set several fields (validated) or extra fields at once, like ``dict.update``."""
        items = other.items() if isinstance(other, Mapping) else other
        for key, value in items:
            self[key] = value
        for key, value in more.items():
            self[key] = value

    def keys(self) -> list[str]:
        """Public field names, then extra field names (so ``dict(task)`` works)."""
        names = list(field_names(type(self)).public)
        return names + list(self._extra) if self._extra else names

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    def values(self) -> list[Any]:
        return [self[key] for key in self.keys()]
